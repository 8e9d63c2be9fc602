from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from calls.carriers.simulator import INCOMING_BEHAVIOURS, JID_RE
from calls.carriers.simulator.carrier import JID_RULE
from calls.models import Call, CallState, Direction, Session
from calls.snapshots import call_snapshot, session_snapshot
from config.api.serializers import ApiModelSerializer, TimestampField
from config.errors import InvalidRequest
from recordings.selectors import recording_summaries_for_call
from streams.api.serializers import stream_list_field


class LastErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    at = serializers.CharField()


class EndDetailSerializer(serializers.Serializer):
    carrier = serializers.CharField()
    code = serializers.CharField()
    message = serializers.CharField()


class SessionSerializer(ApiModelSerializer):
    """A session as the API shows it: the core snapshot (``calls.snapshots``)."""

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

    def to_representation(self, instance: Session) -> dict[str, Any]:
        return session_snapshot(instance)


def _carrier_settings_fields() -> dict[str, serializers.Field]:
    """One settings object per carrier, named after it (``sip: {...}``)."""
    return {
        name: serializers.DictField(
            required=False,
            help_text=f"Settings of the `{name}` carrier (credentials are write-only).",
        )
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
    """A call as the API shows it: the core snapshot plus its recordings."""

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
    duration_ms = serializers.IntegerField(read_only=True)
    recordings = serializers.ListField(child=serializers.DictField(), read_only=True)

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


def validate_jid(value: str) -> None:
    if not JID_RE.match(value):
        raise serializers.ValidationError(JID_RULE)


class IncomingCallSerializer(serializers.Serializer):
    from_ = serializers.CharField(validators=[validate_jid])
    behavior = serializers.ChoiceField(
        choices=INCOMING_BEHAVIOURS, required=False, default="echo"
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields
