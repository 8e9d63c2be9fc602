"""The asyncio client: ``AsyncSwitchboard(base_url, api_key)``, the twin of
``Switchboard`` (same resources and arguments; every call is awaited and lists are
async iterators)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeVar, cast

import httpx

from switchboard_sdk import _ops as ops
from switchboard_sdk import types as t
from switchboard_sdk._http import (
    DEFAULT_TIMEOUT,
    TRANSFER_TIMEOUT,
    auth_headers,
    check,
    data_of,
    media_socket_url,
    page_of,
    request_headers,
    server_root,
    upload_file,
)
from switchboard_sdk.media import MediaSocket
from switchboard_sdk.sse import AsyncEventStream

T = TypeVar("T")


class AsyncSwitchboard:
    """Switchboard's REST API, for asyncio. ``base_url`` is the server
    (``http://127.0.0.1:8000``, with or without ``/api/v1``); ``api_key`` an
    ``sb_test_…`` or ``sb_live_…`` key. Use with ``async with``, or ``await aclose()``."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = server_root(base_url)
        self.api_key = api_key
        self._headers = auth_headers(api_key)
        self._http = http_client or httpx.AsyncClient(timeout=timeout)
        self._owns_http = http_client is None
        self.sessions = Sessions(self)
        self.test_helpers = TestHelpers(self)
        self.calls = Calls(self)
        self.streams = Streams(self)
        self.assets = Assets(self)
        self.recordings = Recordings(self)
        self.events = Events(self)
        self.webhooks = Webhooks(self)
        self.environment = EnvironmentSettings(self)

    async def __aenter__(self) -> AsyncSwitchboard:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def send(self, op: ops.Op[T]) -> T:
        """Send one operation; return the ``data`` of its answer."""
        response = await self._http.request(
            op.method,
            self.base_url + op.path,
            params=dict(op.params),
            json=op.json,
            headers={**self._headers, **request_headers(op)},
        )
        return cast(T, data_of(response))

    async def paginate(self, op: ops.PageOp[T]) -> AsyncIterator[T]:
        """Every item of a list, asking for the next page as the last one runs out."""
        params = dict(op.params)
        while True:
            response = await self._http.get(
                self.base_url + op.path, params=params, headers=self._headers
            )
            items, cursor = page_of(response)
            for item in cast(list[T], items):
                yield item
            if not cursor:
                return
            params[op.cursor_param] = cursor

    def media(
        self, call: str | t.Call, call_id: str | None = None, **options: Any
    ) -> MediaSocket:
        """The call's live media socket; use it with ``async with`` (it is async).

        ``media(call)`` takes the call's snapshot and opens its ``mediaUrl``, at the
        server process hosting the call; ``media(session_id, call_id)`` opens it at
        ``base_url`` (and follows the server's word if the call lives elsewhere)."""
        url = media_socket_url(self.base_url, call, call_id)
        return MediaSocket(url, self.api_key, **options)


class _Resource:
    def __init__(self, client: AsyncSwitchboard) -> None:
        self._client = client


class Sessions(_Resource):
    async def create(
        self,
        display_name: str,
        *,
        device_browser: str | None = None,
        carrier: str | None = None,
        idempotency_key: str | None = None,
        **carrier_settings: Mapping[str, Any],
    ) -> t.Session:
        """Create a session; a carrier's settings go under its name (``sip={...}``)."""
        return await self._client.send(
            ops.session_create(
                display_name, device_browser, carrier, carrier_settings, idempotency_key
            )
        )

    def list(self, *, limit: int | None = None) -> AsyncIterator[t.Session]:
        return self._client.paginate(ops.session_list(limit))

    async def get(self, session_id: str) -> t.Session:
        return await self._client.send(ops.session_get(session_id))

    async def update(
        self,
        session_id: str,
        *,
        display_name: str | None = None,
        device_browser: str | None = None,
        **carrier_settings: Mapping[str, Any],
    ) -> t.Session:
        return await self._client.send(
            ops.session_update(
                session_id, display_name, device_browser, carrier_settings
            )
        )

    async def delete(self, session_id: str) -> t.Session:
        return await self._client.send(ops.session_delete(session_id))

    async def connect(self, session_id: str) -> t.Session:
        return await self._client.send(ops.session_action(session_id, "connect"))

    async def disconnect(self, session_id: str) -> t.Session:
        return await self._client.send(ops.session_action(session_id, "disconnect"))

    async def logout(self, session_id: str) -> t.Session:
        return await self._client.send(ops.session_action(session_id, "logout"))

    async def qr(self, session_id: str) -> t.QrCode:
        return await self._client.send(ops.session_qr(session_id))

    async def pairing_code(self, session_id: str, phone_number: str) -> t.PairingCode:
        return await self._client.send(
            ops.session_pairing_code(session_id, phone_number)
        )


class TestHelpers(_Resource):
    """The simulated network of test environments (404 with a live key)."""

    __test__ = False  # not a pytest test class

    async def scan(self, session_id: str) -> t.Session:
        return await self._client.send(ops.helper_scan(session_id))

    async def incoming_call(
        self,
        session_id: str,
        from_: str,
        *,
        behavior: str | None = None,
        idempotency_key: str | None = None,
    ) -> t.Call:
        return await self._client.send(
            ops.helper_incoming_call(session_id, from_, behavior, idempotency_key)
        )

    async def drop(self, session_id: str) -> t.Session:
        return await self._client.send(ops.helper_drop(session_id))


class Calls(_Resource):
    async def place(
        self,
        session_id: str,
        to: str,
        *,
        record: bool | None = None,
        streams: Sequence[t.StreamOptions] | None = None,
        idempotency_key: str | None = None,
    ) -> t.Call:
        return await self._client.send(
            ops.call_place(session_id, to, record, streams, idempotency_key)
        )

    def list(
        self,
        session_id: str | None = None,
        *,
        state: str | None = None,
        direction: str | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[t.Call]:
        """A session's calls, or the environment's; newest first, every page."""
        return self._client.paginate(
            ops.call_list(
                session_id, state, direction, created_after, created_before, limit
            )
        )

    async def get(self, session_id: str, call_id: str) -> t.Call:
        return await self._client.send(ops.call_get(session_id, call_id))

    async def wait(
        self,
        session_id: str,
        call_id: str,
        states: Sequence[str] = ("active",),
        *,
        interval: float = 0.1,
    ) -> t.Call:
        """Poll until the call is in one of ``states`` or has ended; return it.
        Bound it with ``asyncio.timeout()``."""
        while True:
            call = await self.get(session_id, call_id)
            if call.get("state") in states or call.get("state") == "ended":
                return call
            await asyncio.sleep(interval)

    async def accept(
        self,
        session_id: str,
        call_id: str,
        *,
        streams: Sequence[t.StreamOptions] | None = None,
    ) -> t.Call:
        return await self._client.send(ops.call_accept(session_id, call_id, streams))

    async def reject(self, session_id: str, call_id: str) -> t.Call:
        return await self._client.send(ops.call_action(session_id, call_id, "reject"))

    async def end(self, session_id: str, call_id: str) -> t.Call:
        return await self._client.send(ops.call_action(session_id, call_id, "end"))

    async def mute(self, session_id: str, call_id: str, muted: bool = True) -> t.Call:
        return await self._client.send(ops.call_mute(session_id, call_id, muted))

    async def dtmf(self, session_id: str, call_id: str, digits: str) -> t.Call:
        return await self._client.send(ops.call_dtmf(session_id, call_id, digits))

    async def play(
        self,
        session_id: str,
        call_id: str,
        asset_id: str,
        *,
        mode: str | None = None,
        idempotency_key: str | None = None,
    ) -> t.Playback:
        """Play a ready asset into the call (``mode``: ``queue`` or ``interrupt``)."""
        return await self._client.send(
            ops.call_play(session_id, call_id, asset_id, mode, idempotency_key)
        )

    async def stop_audio(self, session_id: str, call_id: str) -> t.PlaybackStopped:
        return await self._client.send(ops.call_stop_audio(session_id, call_id))


class Streams(_Resource):
    """A call's dial-out media streams (DESIGN §6)."""

    async def create(
        self,
        session_id: str,
        call_id: str,
        options: t.StreamOptions,
        *,
        idempotency_key: str | None = None,
    ) -> t.Stream:
        return await self._client.send(
            ops.stream_create(session_id, call_id, options, idempotency_key)
        )

    def list(self, session_id: str, call_id: str) -> AsyncIterator[t.Stream]:
        return self._client.paginate(ops.stream_list(session_id, call_id))

    async def get(self, session_id: str, call_id: str, stream_id: str) -> t.Stream:
        return await self._client.send(
            ops.stream_one("GET", session_id, call_id, stream_id)
        )

    async def delete(self, session_id: str, call_id: str, stream_id: str) -> t.Stream:
        return await self._client.send(
            ops.stream_one("DELETE", session_id, call_id, stream_id)
        )


class Assets(_Resource):
    async def upload(
        self,
        file: str | Path | bytes | IO[bytes],
        *,
        filename: str | None = None,
        content_type: str | None = None,
        idempotency_key: str | None = None,
    ) -> t.Asset:
        """Upload an audio file (a path, its bytes or an open binary file)."""
        headers = dict(self._client._headers)
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        response = await self._client._http.post(
            self._client.base_url + ops.ASSET_UPLOAD_PATH,
            files=upload_file(file, filename, content_type),
            headers=headers,
            timeout=TRANSFER_TIMEOUT,
        )
        return cast(t.Asset, data_of(response))

    def list(
        self, *, status: str | None = None, limit: int | None = None
    ) -> AsyncIterator[t.Asset]:
        return self._client.paginate(ops.asset_list(status, limit))

    async def get(self, asset_id: str) -> t.Asset:
        return await self._client.send(ops.asset_one("GET", asset_id))

    async def delete(self, asset_id: str) -> t.Asset:
        return await self._client.send(ops.asset_one("DELETE", asset_id))

    async def wait_ready(self, asset_id: str, *, interval: float = 0.2) -> t.Asset:
        """Poll until decoding has ended: ``ready`` or ``failed`` (see ``error``).
        Bound it with ``asyncio.timeout()``."""
        while True:
            asset = await self.get(asset_id)
            if asset.get("status") != "processing":
                return asset
            await asyncio.sleep(interval)


class Recordings(_Resource):
    def list(
        self,
        *,
        call_id: str | None = None,
        kind: str | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[t.Recording]:
        return self._client.paginate(ops.recording_list(call_id, kind, limit))

    async def get(self, recording_id: str) -> t.Recording:
        return await self._client.send(ops.recording_one("GET", recording_id))

    async def delete(self, recording_id: str) -> t.Recording:
        return await self._client.send(ops.recording_one("DELETE", recording_id))

    async def download(self, recording_id: str, to: str | Path | None = None) -> bytes:
        """The recording's WAV (following a redirect to signed storage, without the
        key); also written to ``to`` when given."""
        async with self._client._http.stream(
            "GET",
            self._client.base_url + ops.recording_audio_path(recording_id),
            headers=self._client._headers,
            follow_redirects=True,  # httpx drops Authorization when leaving the host
            timeout=TRANSFER_TIMEOUT,
        ) as response:
            await response.aread()
            check(response)
            wav = response.content
        if to is not None:
            await asyncio.to_thread(Path(to).write_bytes, wav)
        return wav


class Events(_Resource):
    def list(
        self,
        *,
        after: str | None = None,
        session_id: str | None = None,
        types: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[t.Event]:
        """The event log, oldest first. With ``after`` (an event id): every event since
        it, page after page; without: the latest ``limit`` (25) events."""
        return self._client.paginate(ops.event_list(after, session_id, types, limit))

    def stream(
        self,
        *,
        session_id: str | None = None,
        last_event_id: str | None = None,
        reconnect: bool = True,
        retry: float | None = None,
        max_retry: float = 30.0,
        read_timeout: float = 45.0,
    ) -> AsyncEventStream:
        """Live events over SSE, resumed after ``last_event_id`` and across drops.

        ``retry`` overrides the server's reconnection delay (seconds); failures back
        off from it up to ``max_retry``. A connection silent for ``read_timeout``
        (the server pings every 15 s) counts as dropped.
        """
        return AsyncEventStream(
            self._client._http,
            self._client.base_url + ops.event_stream_path(session_id),
            self._client._headers,
            last_event_id=last_event_id,
            reconnect=reconnect,
            retry=retry,
            max_retry=max_retry,
            read_timeout=read_timeout,
        )


class Webhooks(_Resource):
    async def create(
        self,
        url: str,
        events: Sequence[str] = ("*",),
        *,
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> t.WebhookWithSecret:
        """Create an endpoint; its ``secret`` (``whsec_…``) is in this answer only."""
        return await self._client.send(
            ops.webhook_create(url, events, description, idempotency_key)
        )

    def list(self, *, limit: int | None = None) -> AsyncIterator[t.Webhook]:
        return self._client.paginate(ops.webhook_list(limit))

    async def get(self, webhook_id: str) -> t.Webhook:
        return await self._client.send(ops.webhook_one("GET", webhook_id))

    async def update(
        self,
        webhook_id: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
    ) -> t.Webhook:
        return await self._client.send(
            ops.webhook_update(webhook_id, url, events, description, enabled)
        )

    async def delete(self, webhook_id: str) -> t.Webhook:
        return await self._client.send(ops.webhook_one("DELETE", webhook_id))

    async def rotate_secret(self, webhook_id: str) -> t.WebhookWithSecret:
        return await self._client.send(ops.webhook_rotate_secret(webhook_id))

    def deliveries(
        self, webhook_id: str, *, status: str | None = None, limit: int | None = None
    ) -> AsyncIterator[t.Delivery]:
        return self._client.paginate(ops.delivery_list(webhook_id, status, limit))

    async def retry_delivery(self, webhook_id: str, delivery_id: str) -> t.Delivery:
        return await self._client.send(ops.delivery_retry(webhook_id, delivery_id))


class EnvironmentSettings(_Resource):
    """The key's environment: recording retention, recording default, signing secret."""

    async def get(self) -> t.Environment:
        return await self._client.send(ops.environment_get())

    async def update(
        self,
        *,
        recording_retention_days: int | None = None,
        record_calls: bool | None = None,
        event_retention_days: int | None = None,
        call_retention_days: int | None = None,
        end_call_when_client_gone_after_s: int | None = None,
    ) -> t.Environment:
        return await self._client.send(
            ops.environment_update(
                recording_retention_days,
                record_calls,
                event_retention_days,
                call_retention_days,
                end_call_when_client_gone_after_s,
            )
        )

    async def rotate_signing_secret(self) -> t.SigningSecret:
        return await self._client.send(ops.environment_rotate_signing_secret())
