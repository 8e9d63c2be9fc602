"""Every API operation once, as data: method, path, query and body.

The sync and async clients send the same ``Op``\\ s; only how they wait differs. An
``Op[T]`` carries the type its unwrapped ``data`` has, so both clients stay typed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from switchboard_sdk import types as t

T = TypeVar("T")

API = "/api/v1"


@dataclass(frozen=True)
class Op(Generic[T]):
    """One request whose answer is ``{"data": T}``."""

    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class PageOp(Generic[T]):
    """A list: ``{"data": [T, ...], "nextCursor"}``, followed page after page.

    ``cursor_param`` names the query parameter the next page is asked for with:
    ``cursor`` for every list but the event log, which pages forward with ``after``.
    """

    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    cursor_param: str = "cursor"


def _id(value: str) -> str:
    return quote(str(value), safe="")


def _query(**values: Any) -> dict[str, str]:
    """Query parameters, camelCased by the caller, with None left out."""
    query: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            query[name] = "true" if value else "false"
        elif isinstance(value, datetime):
            query[name] = value.isoformat()
        elif isinstance(value, list | tuple):
            query[name] = ",".join(str(item) for item in value)
        else:
            query[name] = str(value)
    return query


def _body(**values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def session_path(session_id: str) -> str:
    return f"{API}/sessions/{_id(session_id)}"


def call_path(session_id: str, call_id: str) -> str:
    return f"{session_path(session_id)}/calls/{_id(call_id)}"


def media_path(session_id: str, call_id: str) -> str:
    return f"{call_path(session_id, call_id)}/media"


# ---------------------------------------------------------------- sessions


def session_create(
    display_name: str,
    device_browser: str | None,
    carrier: str | None,
    carrier_settings: Mapping[str, Mapping[str, Any]],
    idempotency_key: str | None,
) -> Op[t.Session]:
    body = _body(
        displayName=display_name, deviceBrowser=device_browser, carrier=carrier
    )
    body.update(carrier_settings)
    return Op("POST", f"{API}/sessions", json=body, idempotency_key=idempotency_key)


def session_list(limit: int | None) -> PageOp[t.Session]:
    return PageOp(f"{API}/sessions", _query(limit=limit))


def session_get(session_id: str) -> Op[t.Session]:
    return Op("GET", session_path(session_id))


def session_update(
    session_id: str,
    display_name: str | None,
    device_browser: str | None,
    carrier_settings: Mapping[str, Mapping[str, Any]],
) -> Op[t.Session]:
    body = _body(displayName=display_name, deviceBrowser=device_browser)
    body.update(carrier_settings)
    return Op("PATCH", session_path(session_id), json=body)


def session_delete(session_id: str) -> Op[t.Session]:
    return Op("DELETE", session_path(session_id))


def session_action(session_id: str, action: str) -> Op[t.Session]:
    """``connect``, ``disconnect`` or ``logout``."""
    return Op("POST", f"{session_path(session_id)}/{action}")


def session_qr(session_id: str) -> Op[t.QrCode]:
    return Op("GET", f"{session_path(session_id)}/auth/qr")


def session_pairing_code(session_id: str, phone_number: str) -> Op[t.PairingCode]:
    return Op(
        "POST",
        f"{session_path(session_id)}/auth/pairing-code",
        json={"phoneNumber": phone_number},
    )


# ---------------------------------------------------------------- test helpers


def helper_scan(session_id: str) -> Op[t.Session]:
    return Op("POST", f"{API}/test-helpers/sessions/{_id(session_id)}/scan")


def helper_drop(session_id: str) -> Op[t.Session]:
    return Op("POST", f"{API}/test-helpers/sessions/{_id(session_id)}/drop")


def helper_incoming_call(
    session_id: str, from_: str, behavior: str | None, idempotency_key: str | None
) -> Op[t.Call]:
    return Op(
        "POST",
        f"{API}/test-helpers/sessions/{_id(session_id)}/incoming-calls",
        json=_body(**{"from": from_, "behavior": behavior}),
        idempotency_key=idempotency_key,
    )


# ---------------------------------------------------------------- calls


def call_place(
    session_id: str,
    to: str,
    record: bool | None,
    streams: Sequence[t.StreamOptions] | None,
    idempotency_key: str | None,
) -> Op[t.Call]:
    body = _body(to=to, record=record, streams=list(streams) if streams else None)
    return Op(
        "POST",
        f"{session_path(session_id)}/calls",
        json=body,
        idempotency_key=idempotency_key,
    )


def call_list(
    session_id: str | None,
    state: str | None,
    direction: str | None,
    created_after: datetime | str | None,
    created_before: datetime | str | None,
    limit: int | None,
) -> PageOp[t.Call]:
    path = f"{session_path(session_id)}/calls" if session_id else f"{API}/calls"
    return PageOp(
        path,
        _query(
            state=state,
            direction=direction,
            createdAfter=created_after,
            createdBefore=created_before,
            limit=limit,
        ),
    )


def call_get(session_id: str, call_id: str) -> Op[t.Call]:
    return Op("GET", call_path(session_id, call_id))


def call_accept(
    session_id: str, call_id: str, streams: Sequence[t.StreamOptions] | None
) -> Op[t.Call]:
    body = {"streams": list(streams)} if streams else None
    return Op("POST", f"{call_path(session_id, call_id)}/accept", json=body)


def call_action(session_id: str, call_id: str, action: str) -> Op[t.Call]:
    """``reject`` or ``end``."""
    return Op("POST", f"{call_path(session_id, call_id)}/{action}")


def call_mute(session_id: str, call_id: str, muted: bool) -> Op[t.Call]:
    return Op("POST", f"{call_path(session_id, call_id)}/mute", json={"muted": muted})


def call_dtmf(session_id: str, call_id: str, digits: str) -> Op[t.Call]:
    return Op("POST", f"{call_path(session_id, call_id)}/dtmf", json={"digits": digits})


def call_play(
    session_id: str,
    call_id: str,
    asset_id: str,
    mode: str | None,
    idempotency_key: str | None,
) -> Op[t.Playback]:
    return Op(
        "POST",
        f"{call_path(session_id, call_id)}/audio/play",
        json=_body(assetId=asset_id, mode=mode),
        idempotency_key=idempotency_key,
    )


def call_stop_audio(session_id: str, call_id: str) -> Op[t.PlaybackStopped]:
    return Op("POST", f"{call_path(session_id, call_id)}/audio/stop")


# ---------------------------------------------------------------- dial-out streams


def stream_create(
    session_id: str, call_id: str, options: t.StreamOptions, idempotency_key: str | None
) -> Op[t.Stream]:
    return Op(
        "POST",
        f"{call_path(session_id, call_id)}/streams",
        json=dict(options),
        idempotency_key=idempotency_key,
    )


def stream_list(session_id: str, call_id: str) -> PageOp[t.Stream]:
    return PageOp(f"{call_path(session_id, call_id)}/streams")


def stream_one(
    method: str, session_id: str, call_id: str, stream_id: str
) -> Op[t.Stream]:
    return Op(method, f"{call_path(session_id, call_id)}/streams/{_id(stream_id)}")


# ---------------------------------------------------------------- assets


def asset_list(status: str | None, limit: int | None) -> PageOp[t.Asset]:
    return PageOp(f"{API}/call-audio-assets", _query(status=status, limit=limit))


def asset_one(method: str, asset_id: str) -> Op[t.Asset]:
    return Op(method, f"{API}/call-audio-assets/{_id(asset_id)}")


ASSET_UPLOAD_PATH = f"{API}/call-audio-assets"


# ---------------------------------------------------------------- recordings


def recording_list(
    call_id: str | None, kind: str | None, limit: int | None
) -> PageOp[t.Recording]:
    return PageOp(f"{API}/recordings", _query(callId=call_id, kind=kind, limit=limit))


def recording_one(method: str, recording_id: str) -> Op[t.Recording]:
    return Op(method, f"{API}/recordings/{_id(recording_id)}")


def recording_audio_path(recording_id: str) -> str:
    return f"{API}/recordings/{_id(recording_id)}/audio"


# ---------------------------------------------------------------- events


def event_list(
    after: str | None,
    session_id: str | None,
    types: Sequence[str] | None,
    limit: int | None,
) -> PageOp[t.Event]:
    query = _query(
        after=after,
        sessionId=session_id,
        type=list(types) if types else None,
        limit=limit,
    )
    return PageOp(f"{API}/events", query, cursor_param="after")


def event_stream_path(session_id: str | None) -> str:
    return f"{session_path(session_id)}/events" if session_id else f"{API}/events"


# ---------------------------------------------------------------- webhooks


def webhook_create(
    url: str,
    events: Sequence[str],
    description: str | None,
    idempotency_key: str | None,
) -> Op[t.WebhookWithSecret]:
    return Op(
        "POST",
        f"{API}/webhooks",
        json=_body(url=url, events=list(events), description=description),
        idempotency_key=idempotency_key,
    )


def webhook_list(limit: int | None) -> PageOp[t.Webhook]:
    return PageOp(f"{API}/webhooks", _query(limit=limit))


def webhook_one(method: str, webhook_id: str) -> Op[t.Webhook]:
    return Op(method, f"{API}/webhooks/{_id(webhook_id)}")


def webhook_update(
    webhook_id: str,
    url: str | None,
    events: Sequence[str] | None,
    description: str | None,
    enabled: bool | None,
) -> Op[t.Webhook]:
    body = _body(
        url=url,
        events=list(events) if events is not None else None,
        description=description,
        enabled=enabled,
    )
    return Op("PATCH", f"{API}/webhooks/{_id(webhook_id)}", json=body)


def webhook_rotate_secret(webhook_id: str) -> Op[t.WebhookWithSecret]:
    return Op("POST", f"{API}/webhooks/{_id(webhook_id)}/rotate-secret")


def delivery_list(
    webhook_id: str, status: str | None, limit: int | None
) -> PageOp[t.Delivery]:
    return PageOp(
        f"{API}/webhooks/{_id(webhook_id)}/deliveries",
        _query(status=status, limit=limit),
    )


def delivery_retry(webhook_id: str, delivery_id: str) -> Op[t.Delivery]:
    return Op(
        "POST",
        f"{API}/webhooks/{_id(webhook_id)}/deliveries/{_id(delivery_id)}/retry",
    )


# ---------------------------------------------------------------- environment


def environment_get() -> Op[t.Environment]:
    return Op("GET", f"{API}/environment")


def environment_update(
    recording_retention_days: int | None,
    record_calls: bool | None,
    event_retention_days: int | None = None,
    call_retention_days: int | None = None,
    end_call_when_client_gone_after_s: int | None = None,
) -> Op[t.Environment]:
    body = _body(
        recordingRetentionDays=recording_retention_days,
        recordCalls=record_calls,
        eventRetentionDays=event_retention_days,
        callRetentionDays=call_retention_days,
        endCallWhenClientGoneAfterS=end_call_when_client_gone_after_s,
    )
    return Op("PATCH", f"{API}/environment", json=body)


def environment_rotate_signing_secret() -> Op[t.SigningSecret]:
    return Op("POST", f"{API}/environment/signing-secret")
