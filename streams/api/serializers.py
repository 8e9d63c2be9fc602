from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from rest_framework import serializers

from config.api.errors import WireName
from config.api.schema import documented, example, url_schema, wire
from config.api.serializers import ApiModelSerializer
from streams import targets
from streams.models import (
    OnDisconnect,
    Stream,
    StreamChannel,
    StreamDialect,
    StreamFormat,
    StreamState,
    StreamType,
)

MAX_HEADERS = 32
MAX_HEADER_VALUE = 4096
MAX_CUSTOM_PARAMETERS = 64
MAX_CUSTOM_PARAMETER_CHARS = 1024
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}$")
# The handshake's own headers, and ours: a customer header may not replace them.
RESERVED_HEADERS = {
    "host",
    "connection",
    "upgrade",
    "content-length",
    "transfer-encoding",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
    "user-agent",
}


class StreamSerializer(ApiModelSerializer):
    stream_id = serializers.UUIDField(source="public_id", read_only=True)
    call_id = serializers.UUIDField(source="call.public_id", read_only=True)
    session_id = serializers.UUIDField(source="call.session.public_id", read_only=True)
    reason = serializers.SerializerMethodField()
    last_error = serializers.SerializerMethodField()
    status_callback = serializers.SerializerMethodField()

    class Meta:
        model = Stream
        fields = [
            "stream_id",
            "call_id",
            "session_id",
            "url",
            "type",
            "channel",
            "format",
            "dialect",
            "headers",
            "custom_parameters",
            "on_disconnect",
            "status_callback",
            "state",
            "reason",
            "frames_sent",
            "frames_received",
            "frames_dropped",
            "protocol_errors",
            "reconnects",
            "last_error",
            "created_at",
            "started_at",
            "stopped_at",
            "updated_at",
        ]

    def get_reason(self, stream: Stream) -> str | None:
        return stream.reason or None

    def get_last_error(self, stream: Stream) -> str | None:
        return stream.last_error or None

    def get_status_callback(self, stream: Stream) -> str | None:
        return stream.status_callback or None


def _vet(value: str, schemes: tuple[str, ...]) -> str:
    try:
        targets.vet(value, schemes, allow_private=settings.STREAM_ALLOW_PRIVATE)
    except targets.TargetRefused as refusal:
        raise serializers.ValidationError(str(refusal)) from None
    return value


class StreamListSerializer(serializers.ListSerializer):
    """A list of streams whose errors name items as ``streams[1].url``."""

    def to_internal_value(self, data: Any) -> Any:
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            detail: Any = exc.detail
            if (
                isinstance(detail, dict)
                and detail
                and all(isinstance(key, int) for key in detail)
            ):
                # DRF reports items by index in a dict; as a list, the problem's
                # `param` reads `streams[1].url` like any other list.
                size = max(detail) + 1
                raise serializers.ValidationError(
                    [detail.get(index, {}) for index in range(size)]
                ) from None
            raise


# Wavix's names for three options, as its users send them: accepted in their place.
WAVIX_NAMES = {"stream_url": "url", "stream_type": "type", "stream_channel": "channel"}


class StreamOptionsSerializer(serializers.Serializer):
    """The options of one dial-out stream; an unknown option is refused by name.

    Wavix's `stream_url`, `stream_type` and `stream_channel` stand for `url`, `type`
    and `channel`; an error about one names it as it was sent.
    """

    # The schema says so (additionalProperties: false); Wavix's names are described.
    refuses_unknown_fields = True

    class Meta:
        list_serializer_class = StreamListSerializer

    url = documented(
        serializers.CharField(
            max_length=targets.MAX_URL_LENGTH,
            help_text="The receiver's WebSocket, ws:// or wss://. Signed in the "
            "handshake (X-Switchboard-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "
            "'<t>.<url>'>, keyed with the environment's signing secret). Production "
            "refuses private addresses. Wavix's name for it, `stream_url`, works too.",
        ),
        url_schema("wss", "ws"),
    )
    type = serializers.ChoiceField(
        choices=StreamType.choices,
        required=False,
        default=StreamType.ONEWAY,
        help_text="oneway: the call's audio goes out. twoway: the receiver's `media` "
        "also plays into the call (1 twoway and 5 oneway live streams per call). "
        "Wavix's name for it, `stream_type`, works too.",
    )
    channel = serializers.ChoiceField(
        choices=StreamChannel.choices,
        required=False,
        default=StreamChannel.INBOUND,
        help_text="inbound: the peer's audio; outbound: what the call sends to the peer "
        "(live socket and playback); both. A twoway stream is inbound only. Wavix's "
        "name for it, `stream_channel`, works too.",
    )
    format = serializers.ChoiceField(
        choices=StreamFormat.choices,
        required=False,
        help_text="Payload encoding, in 20 ms chunks. Default: mulaw_8000 for the "
        "twilio dialect, pcm16_16000 (little-endian) for wavix.",
    )
    dialect = serializers.ChoiceField(
        choices=StreamDialect.choices,
        required=False,
        default=StreamDialect.WAVIX,
        help_text="Frame shapes: wavix (snake_case) or twilio (Twilio Media Streams' "
        "messages, for clients written for Twilio).",
    )
    headers = serializers.DictField(
        child=serializers.CharField(
            allow_blank=True, max_length=MAX_HEADER_VALUE, trim_whitespace=False
        ),
        required=False,
        default=dict,
        help_text="Extra handshake headers, sent verbatim (names are not camelised).",
    )
    custom_parameters = serializers.DictField(
        required=False,
        default=dict,
        help_text="Given back verbatim in the `start` frame (keys are not camelised).",
    )
    on_disconnect = serializers.ChoiceField(
        choices=OnDisconnect.choices,
        required=False,
        default=OnDisconnect.CONTINUE,
        help_text="When the receiver drops mid-call: continue (the stream stops, the "
        "call goes on), hangup (the call ends) or reconnect (a fresh `start` with "
        "reconnect: true; timestamps continue).",
    )
    status_callback = documented(
        serializers.CharField(
            max_length=targets.MAX_URL_LENGTH,
            required=False,
            help_text="An http(s) URL that receives the stream's call.stream.* events, "
            "signed with Standard Webhooks headers (key: the environment's signing "
            "secret).",
        ),
        url_schema("https", "http"),
    )

    def run_validation(self, data: Any = serializers.empty) -> Any:
        sent_as: dict[str, str] = {}
        if isinstance(data, dict):
            data = dict(data)
            for alias, name in WAVIX_NAMES.items():
                if alias not in data:
                    continue
                if name in data:
                    raise serializers.ValidationError(
                        {WireName(alias): [f"Give {name} or {alias}, not both."]}
                    )
                data[name] = data.pop(alias)
                sent_as[name] = alias
        try:
            return super().run_validation(data)
        except serializers.ValidationError as exc:
            if not sent_as or not isinstance(exc.detail, dict):
                raise
            raise serializers.ValidationError(
                {
                    WireName(sent_as[key]) if key in sent_as else key: value
                    for key, value in exc.detail.items()
                }
            ) from None

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: ["Not a stream option."] for name in unknown}
                )
        return super().to_internal_value(data)

    def validate_url(self, value: str) -> str:
        return _vet(value, ("wss", "ws"))

    def validate_status_callback(self, value: str) -> str:
        return _vet(value, ("https", "http"))

    def validate_headers(self, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_HEADERS:
            raise serializers.ValidationError(f"At most {MAX_HEADERS} headers.")
        for name, header in value.items():
            lowered = name.lower()
            if not _TOKEN.match(name):
                raise serializers.ValidationError(f"{name!r} is not a header name.")
            if (
                lowered in RESERVED_HEADERS
                or lowered.startswith("sec-websocket-")
                or lowered.startswith("x-switchboard-")
            ):
                raise serializers.ValidationError(
                    f"{name} is set by Switchboard and cannot be given."
                )
            if any(char in header for char in "\r\n\x00"):
                raise serializers.ValidationError(
                    f"The value of {name} may not contain line breaks."
                )
        return value

    def validate_custom_parameters(self, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > MAX_CUSTOM_PARAMETERS:
            raise serializers.ValidationError(
                f"At most {MAX_CUSTOM_PARAMETERS} custom parameters."
            )
        for name, item in value.items():
            if not isinstance(item, str | int | float | bool) or item is None:
                raise serializers.ValidationError(
                    f"{name}: values are strings, numbers or booleans."
                )
            if len(name) > 256 or len(str(item)) > MAX_CUSTOM_PARAMETER_CHARS:
                raise serializers.ValidationError(
                    f"{name!s:.64}: names are at most 256 characters, values "
                    f"{MAX_CUSTOM_PARAMETER_CHARS}."
                )
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if (
            attrs["type"] == StreamType.TWOWAY
            and attrs["channel"] != StreamChannel.INBOUND
        ):
            raise serializers.ValidationError(
                {
                    "channel": [
                        "A twoway stream carries the inbound track only: "
                        "channel must be inbound."
                    ]
                }
            )
        return attrs


def stream_list_field() -> StreamListSerializer:
    """``streams: [...]`` on call start and on accept (limits are checked as 409s)."""
    return StreamListSerializer(
        child=StreamOptionsSerializer(), required=False, max_length=20
    )


class CallAcceptSerializer(serializers.Serializer):
    streams = stream_list_field()


@example("Stream")
def _stream_example() -> Any:
    from calls.api.serializers import EXAMPLE_TIME, example_call

    call = example_call()
    started = EXAMPLE_TIME + timedelta(seconds=9.2)
    stopped = EXAMPLE_TIME + timedelta(seconds=21.48)  # with the call
    stream = Stream(
        public_id=UUID("0197a5c1-1b3c-7d4e-9f50-6a7b8c9d0e1f"),
        call=call,
        url="wss://bot.example.com/media",
        type=StreamType.TWOWAY,
        channel=StreamChannel.INBOUND,
        format=StreamFormat.PCM16_16000,
        dialect=StreamDialect.WAVIX,
        on_disconnect=OnDisconnect.CONTINUE,
        headers={"X-Bot-Token": "t0k3n"},
        custom_parameters={"agent": "support"},
        state=StreamState.STOPPED,
        reason="call_ended",
        frames_sent=624,
        frames_received=598,
        created_at=EXAMPLE_TIME + timedelta(seconds=5),
        started_at=started,
        stopped_at=stopped,
        updated_at=stopped,
    )
    return wire(StreamSerializer(stream).data)
