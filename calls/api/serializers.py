from __future__ import annotations

import re
from typing import Any

from djangorestframework_camel_case.util import camelize
from rest_framework import serializers

from calls.models import Call, CallState, Direction, Session
from config.api.serializers import ApiModelSerializer, TimestampField
from recordings.selectors import recording_summaries_for_call
from streams.api.serializers import stream_list_field

JID_RE = re.compile(r"^\d{6,15}@s\.whatsapp\.net$")


class SessionSerializer(ApiModelSerializer):
    session_id = serializers.UUIDField(source="public_id", read_only=True)
    status = serializers.CharField(read_only=True)
    connected = serializers.BooleanField(read_only=True)
    phone_jid = serializers.SerializerMethodField()

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
            "created_at",
            "updated_at",
            "connected_at",
        ]

    def get_phone_jid(self, session: Session) -> str | None:
        return session.phone_jid or None


class SessionCreateSerializer(serializers.Serializer):
    display_name = serializers.CharField(max_length=100)
    device_browser = serializers.CharField(
        max_length=100, required=False, allow_blank=True, default=""
    )


class QrSerializer(serializers.Serializer):
    qr = serializers.CharField()
    ttl_ms = serializers.IntegerField()
    created_at = TimestampField()


class PairingCodeRequestSerializer(serializers.Serializer):
    phone_number = serializers.RegexField(
        r"^\+?\d{6,15}$",
        error_messages={
            "invalid": "Give the phone number in digits, e.g. +15551230000."
        },
    )


class PairingCodeSerializer(serializers.Serializer):
    code = serializers.CharField()


class CallSerializer(ApiModelSerializer):
    call_id = serializers.UUIDField(source="public_id", read_only=True)
    session_id = serializers.UUIDField(source="session.public_id", read_only=True)
    media_type = serializers.SerializerMethodField()
    transport = serializers.SerializerMethodField()
    end_reason = serializers.SerializerMethodField()
    duration_ms = serializers.IntegerField(read_only=True)
    recordings = serializers.SerializerMethodField()

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
            "transport",
            "audio_muted",
            "record",
            "created_at",
            "ringing_at",
            "answered_at",
            "ended_at",
            "duration_ms",
            "recordings",
        ]

    def get_media_type(self, call: Call) -> str:
        return "audio"

    def get_transport(self, call: Call) -> str:
        return "websocket"

    def get_end_reason(self, call: Call) -> str | None:
        return call.end_reason or None

    def get_recordings(self, call: Call) -> list[dict[str, Any]]:
        """``[{recordingId, kind, durationMs}]``, once the ended call is finalised."""
        return recording_summaries_for_call(call)


def call_snapshot(call: Call) -> dict[str, Any]:
    """The camelCase call snapshot used in events, socket frames and command replies."""
    return camelize(CallSerializer(call).data)


def session_snapshot(session: Session) -> dict[str, Any]:
    return camelize(SessionSerializer(session).data)


def validate_jid(value: str) -> None:
    if not JID_RE.match(value):
        raise serializers.ValidationError(
            "Must be a WhatsApp JID: <digits>@s.whatsapp.net (6 to 15 digits)."
        )


class CallCreateSerializer(serializers.Serializer):
    to = serializers.CharField(validators=[validate_jid])
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


BEHAVIORS = ["echo", "talker", "hangup_after_5s", "caller_gives_up"]


class IncomingCallSerializer(serializers.Serializer):
    from_ = serializers.CharField(validators=[validate_jid])
    behavior = serializers.ChoiceField(
        choices=BEHAVIORS, required=False, default="echo"
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields
