from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.validators import RegexValidator
from rest_framework import serializers

from calls.carriers.simulator import INCOMING_BEHAVIOURS, JID_RE
from calls.carriers.simulator.carrier import JID_RULE
from calls.models import (
    Call,
    CallState,
    ConnectionState,
    Direction,
    EndReason,
    Session,
)
from calls.snapshots import call_snapshot, session_snapshot
from config.api.schema import example, wire
from config.api.serializers import ApiModelSerializer, TimestampField
from config.errors import InvalidRequest
from recordings.models import RecordingKind
from recordings.selectors import (
    recording_summaries_for_call,
    recording_summaries_for_calls,
)
from streams.api.serializers import StreamSerializer, stream_list_field


class LastErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    at = serializers.CharField()


class EndDetailSerializer(serializers.Serializer):
    carrier = serializers.CharField()
    code = serializers.CharField()
    message = serializers.CharField()


class SessionSerializer(ApiModelSerializer):
    """A session: a linked line and the state of its connection."""

    # Rendered as the core snapshot (calls.snapshots); the fields document it.

    session_id = serializers.UUIDField(source="public_id", read_only=True)
    status = serializers.CharField(read_only=True)
    connected = serializers.BooleanField(read_only=True)
    phone_jid = serializers.CharField(allow_null=True, read_only=True)
    carrier = serializers.CharField(read_only=True)
    last_error = LastErrorSerializer(allow_null=True, read_only=True)

    class Meta:
        model = Session
        fields = [
            "session_id",
            "display_name",
            "device_browser",
            "status",
            "paired",
            "active",
            "connected",
            "connection_state",
            "phone_jid",
            "carrier",
            "last_error",
            "created_at",
            "updated_at",
            "connected_at",
        ]

    def get_fields(self) -> dict[str, serializers.Field]:
        # A session of a carrier with settings shows them under the carrier's name.
        return {**super().get_fields(), **_carrier_settings_fields(shown=True)}

    def to_representation(self, instance: Session) -> dict[str, Any]:
        return session_snapshot(instance)


def _carrier_settings_fields(*, shown: bool = False) -> dict[str, serializers.Field]:
    """One settings object per carrier, named after it (``sip: {...}``)."""
    help_text = (
        "Settings of the `{}` carrier, on its sessions only (credentials appear as "
        "`hasX` or their last 4 characters)."
        if shown
        else "Settings of the `{}` carrier (credentials are write-only)."
    )
    return {
        name: serializers.DictField(required=False, help_text=help_text.format(name))
        for name in settings.CARRIERS
        if name != "simulator"
    }


class SessionCreateSerializer(serializers.Serializer):
    display_name = serializers.CharField(max_length=100)
    device_browser = serializers.CharField(
        max_length=100, required=False, allow_blank=True, default=""
    )
    carrier = serializers.CharField(
        required=False,
        help_text="simulator (test environments), or a carrier this deployment enables.",
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        return {**super().get_fields(), **_carrier_settings_fields()}

    def carrier_settings(self, carrier: str) -> dict[str, Any] | None:
        """The settings object given under ``carrier``'s name; an object under another
        carrier's name is a mistake worth a 400 rather than silence."""
        data = self.validated_data
        for name in _carrier_settings_fields():
            if carrier in settings.CARRIERS and name != carrier and name in data:
                raise InvalidRequest(
                    f"The session's carrier is {carrier!r}; settings for {name!r} "
                    "do not apply.",
                    param=name,
                )
        return data.get(carrier)


class SessionUpdateSerializer(serializers.Serializer):
    display_name = serializers.CharField(max_length=100, required=False)
    device_browser = serializers.CharField(
        max_length=100, required=False, allow_blank=True
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        return {**super().get_fields(), **_carrier_settings_fields()}


class QrSerializer(serializers.Serializer):
    qr = serializers.CharField()
    ttl_ms = serializers.IntegerField()
    created_at = TimestampField()


class PhoneNumberSerializer(serializers.Serializer):
    phone_number = serializers.RegexField(
        r"^\+?\d{6,15}$",
        error_messages={
            "invalid": "Give the phone number in digits, e.g. +15551230000."
        },
    )


class PairingCodeSerializer(serializers.Serializer):
    code = serializers.CharField()


class RecordingSummarySerializer(serializers.Serializer):
    recording_id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=RecordingKind.choices)
    duration_ms = serializers.IntegerField()


class CallSerializer(ApiModelSerializer):
    """A call's snapshot, with its recordings once it has ended."""

    # Rendered as the core snapshot (calls.snapshots) plus what only the API shows.

    call_id = serializers.UUIDField(source="public_id", read_only=True)
    session_id = serializers.UUIDField(source="session.public_id", read_only=True)
    peer_jid = serializers.CharField(read_only=True)
    media_type = serializers.CharField(read_only=True)
    end_reason = serializers.CharField(allow_null=True, read_only=True)
    end_detail = EndDetailSerializer(allow_null=True, read_only=True)
    carrier = serializers.CharField(read_only=True)
    transport = serializers.CharField(
        allow_null=True,
        read_only=True,
        help_text="The client transport attached now: websocket, stream, or null.",
    )
    media_url = serializers.CharField(
        read_only=True,
        help_text="The call's live media socket (ws:// or wss://). While the call is "
        "live and its hosting process has an address of its own "
        "(SWITCHBOARD_PROCESS_URL), at that process: open it there and the call's "
        "audio never crosses processes. Otherwise under SWITCHBOARD_PUBLIC_URL.",
    )
    duration_ms = serializers.IntegerField(read_only=True)
    recordings = RecordingSummarySerializer(
        many=True,
        read_only=True,
        help_text="The call's recordings, once the ended call is finalised.",
    )

    class Meta:
        model = Call
        fields = [
            "call_id",
            "session_id",
            "peer_jid",
            "direction",
            "media_type",
            "state",
            "end_reason",
            "end_detail",
            "carrier",
            "transport",
            "media_url",
            "audio_muted",
            "record",
            "created_at",
            "ringing_at",
            "answered_at",
            "ended_at",
            "duration_ms",
            "recordings",
        ]

    def to_representation(self, instance: Call) -> dict[str, Any]:
        # ``[{recordingId, kind, durationMs}]``, once the ended call is finalised.
        return {
            **call_snapshot(instance),
            "recordings": recording_summaries_for_call(instance),
        }


class CallWithStreamsSerializer(CallSerializer):
    """A call placed or accepted with `streams`: its snapshot and those streams."""

    streams = StreamSerializer(
        many=True,
        required=False,
        help_text="The dial-out streams given with the request (only when some were).",
    )

    class Meta(CallSerializer.Meta):
        fields = [*CallSerializer.Meta.fields, "streams"]


def calls_data(calls: Sequence[Call]) -> list[dict[str, Any]]:
    """A page of calls as ``CallSerializer`` renders each, their recordings read at once."""
    recordings = recording_summaries_for_calls(calls)
    return [
        {**call_snapshot(call), "recordings": recordings.get(call.pk, [])}
        for call in calls
    ]


def call_data(call: Call, snapshot: dict[str, Any] | None = None) -> dict[str, Any]:
    """A call as every call body shows it; ``snapshot`` is the runtime's newest."""
    if snapshot is None:
        return CallSerializer(call).data
    call.refresh_from_db()
    return {**snapshot, "recordings": recording_summaries_for_call(call)}


class CallCreateSerializer(serializers.Serializer):
    # Checked and normalised by the session's carrier (400 naming `to`).
    to = serializers.CharField(max_length=255)
    record = serializers.BooleanField(required=False, allow_null=True, default=None)
    # Dial-out streams (DESIGN §6), started when the call is answered.
    streams = stream_list_field()


class CallFilterSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=CallState.choices, required=False)
    direction = serializers.ChoiceField(choices=Direction.choices, required=False)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)


class MuteSerializer(serializers.Serializer):
    muted = serializers.BooleanField()


class DtmfSerializer(serializers.Serializer):
    digits = serializers.RegexField(
        r"^[0-9*#A-Da-d]{1,32}$",
        help_text="1 to 32 of 0-9, *, #, A-D, sent in order (RFC 4733 on SIP).",
        error_messages={
            "invalid": 'digits are 1 to 32 of 0-9, *, #, A-D (e.g. "12#").'
        },
    )


class IncomingCallSerializer(serializers.Serializer):
    from_ = serializers.CharField(
        validators=[RegexValidator(JID_RE, JID_RULE)],
        help_text="The caller's WhatsApp JID, `<digits>@s.whatsapp.net`.",
    )
    behavior = serializers.ChoiceField(
        choices=INCOMING_BEHAVIOURS, required=False, default="echo"
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


# ---------------------------------------------------------------- schema examples

EXAMPLE_TIME = datetime(2025, 6, 2, 9, 30, tzinfo=UTC)


def example_session() -> Session:
    """The paired line of the README's first call, in memory."""
    return Session(
        public_id=UUID("0197a5c0-3f1e-7b2a-9c4d-5e6f7a8b9c0d"),
        display_name="My line",
        carrier="simulator",
        connection_state=ConnectionState.CONNECTED,
        paired=True,
        active=True,
        address="15550009999@s.whatsapp.net",
        created_at=EXAMPLE_TIME,
        updated_at=EXAMPLE_TIME + timedelta(seconds=4),
        connected_at=EXAMPLE_TIME + timedelta(seconds=4),
    )


def example_call() -> Call:
    """The README's first call to the echo peer, hung up through the API."""
    answered = EXAMPLE_TIME + timedelta(seconds=9)
    return Call(
        public_id=UUID("0197a5c1-0a2b-7c3d-8e4f-5a6b7c8d9e0f"),
        session=example_session(),
        peer_address="15550000001@s.whatsapp.net",
        direction=Direction.OUTGOING,
        state=CallState.ENDED,
        end_reason=EndReason.COMPLETED,
        # Recorded calls list their recordings, which live in the database.
        record=False,
        created_at=EXAMPLE_TIME + timedelta(seconds=5),
        ringing_at=EXAMPLE_TIME + timedelta(seconds=5.3),
        answered_at=answered,
        ended_at=answered + timedelta(seconds=12.48),
        updated_at=answered + timedelta(seconds=12.48),
    )


@example("Session")
def _session_example() -> Any:
    return wire(SessionSerializer(example_session()).data)


@example("Call")
def _call_example() -> Any:
    return wire(CallSerializer(example_call()).data)


@example("Qr")
def _qr_example() -> Any:
    # Shaped like the simulator's: a linked-device ref and two keys, comma separated.
    qr = "2@mX0pVq8r1T3bYc5dZe7fAg9hBi2jCk4l,Dm6nEo8pFq0rGs2tHu4vIw6xJy8zKa0b,Lc2dMe4f"
    return wire(
        QrSerializer({"qr": qr, "ttl_ms": 17250, "created_at": EXAMPLE_TIME}).data
    )


@example("PairingCode")
def _pairing_code_example() -> Any:
    return wire(PairingCodeSerializer({"code": "ABCD-1234"}).data)
