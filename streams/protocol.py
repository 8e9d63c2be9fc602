"""The frames of dial-out streams in their two dialects (DESIGN §6). No Django here.

Switchboard sends JSON text frames, in order: ``connected``, ``start``, ``media``…,
``mark`` (echoes), ``stop``. The ``wavix`` dialect uses snake_case and puts
``event``, ``sequence_number``, ``event_time``, ``call_id`` and ``stream_id`` on every
frame; the ``twilio`` dialect reproduces Twilio Media Streams' messages field for field
(string sequence numbers, chunks and timestamps; ``streamSid``/``callSid``/``accountSid``).

Sequence numbers count the frames of one connection; chunks count one track's media
frames of one connection; ``timestamp`` is milliseconds of call media since the stream
first started, and keeps counting across reconnections.

Receivers may send ``media`` (twoway streams), ``mark`` and ``clear`` in either dialect,
with or without the stream's id (``streamSid``, ``stream_id`` or ``streamId``).
"""

from __future__ import annotations

import abc
import base64
import binascii
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streams.formats import WireFormat
from streams.sids import account_sid, call_sid, stream_sid

INBOUND = "inbound"
OUTBOUND = "outbound"
TRACKS_OF_CHANNEL = {
    "inbound": (INBOUND,),
    "outbound": (OUTBOUND,),
    "both": (INBOUND, OUTBOUND),
}
MAX_MARK_NAME = 256
PROTOCOL_VERSION = "1.0.0"


@dataclass(frozen=True)
class StreamIdentity:
    """What a stream's frames say about it."""

    call_id: str
    stream_id: str
    session_id: str
    environment_id: str
    type: str
    channel: str
    format: WireFormat
    custom_parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def tracks(self) -> tuple[str, ...]:
        return TRACKS_OF_CHANNEL[self.channel]

    @property
    def account_sid(self) -> str:
        return account_sid(self.environment_id)

    @property
    def call_sid(self) -> str:
        return call_sid(self.call_id)

    @property
    def stream_sid(self) -> str:
        return stream_sid(self.stream_id)

    @property
    def own_ids(self) -> frozenset[str]:
        """The ids a receiver may name this stream by, in either dialect."""
        return frozenset({self.stream_id, self.stream_sid})


class Dialect(abc.ABC):
    name = ""

    def __init__(self, identity: StreamIdentity) -> None:
        self.identity = identity
        self.sequence = 0

    def begin(self) -> None:
        """A new connection: sequence numbers start again."""
        self.sequence = 0

    def _next(self) -> int:
        self.sequence += 1
        return self.sequence

    @abc.abstractmethod
    def connected(self) -> str:
        """Render this dialect's frame."""

    @abc.abstractmethod
    def start(self, *, reconnect: bool) -> str:
        """Render this dialect's frame."""

    @abc.abstractmethod
    def media(self, track: str, chunk: int, timestamp_ms: int, payload: str) -> str:
        """Render this dialect's frame."""

    @abc.abstractmethod
    def mark(self, name: str, *, cleared: bool = False) -> str:
        """Render this dialect's frame."""

    @abc.abstractmethod
    def stop(self, reason: str) -> str:
        """Render this dialect's frame."""

    @abc.abstractmethod
    def dtmf(self, digit: str, duration_ms: int) -> str:
        """Render this dialect's frame: a key the peer pressed."""


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


class _EventClock:
    """ISO-8601 UTC with milliseconds; formatted at most once per millisecond."""

    def __init__(self) -> None:
        self._ms = -1
        self._text = ""

    def now(self) -> str:
        ms = time.time_ns() // 1_000_000
        if ms != self._ms:
            moment = datetime.fromtimestamp(ms / 1000, UTC)
            self._text = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
            self._ms = ms
        return self._text


_clock = _EventClock()


class WavixDialect(Dialect):
    name = "wavix"

    def _head(self, event: str) -> dict[str, Any]:
        return {
            "event": event,
            "sequence_number": self._next(),
            "event_time": _clock.now(),
            "call_id": self.identity.call_id,
            "stream_id": self.identity.stream_id,
        }

    def connected(self) -> str:
        return _dumps(
            {**self._head("connected"), "protocol": "Call", "version": PROTOCOL_VERSION}
        )

    def start(self, *, reconnect: bool) -> str:
        ident = self.identity
        fmt = ident.format
        return _dumps(
            {
                **self._head("start"),
                # Where Wavix's documentation puts them, beside the nested copies.
                "stream_type": ident.type,
                "channel": ident.channel,
                "start": {
                    "call_id": ident.call_id,
                    "stream_id": ident.stream_id,
                    "session_id": ident.session_id,
                    "type": ident.type,
                    "channel": ident.channel,
                    "tracks": list(ident.tracks),
                    "media_format": {
                        "format": fmt.name,
                        "encoding": fmt.encoding,
                        "sample_rate": fmt.rate,
                        "channels": 1,
                        "chunk_ms": 20,
                    },
                    "custom_parameters": ident.custom_parameters,
                    "reconnect": reconnect,
                },
            }
        )

    def media(self, track: str, chunk: int, timestamp_ms: int, payload: str) -> str:
        # Built by hand: this runs for every 20 ms chunk. Every value is a number, a
        # UUID, a track name, an ISO time or base64, none of which JSON needs to escape.
        ident = self.identity
        return (
            f'{{"event":"media","sequence_number":{self._next()},'
            f'"event_time":"{_clock.now()}","call_id":"{ident.call_id}",'
            f'"stream_id":"{ident.stream_id}","media":{{"track":"{track}",'
            f'"chunk":{chunk},"timestamp":{timestamp_ms},"payload":"{payload}"}}}}'
        )

    def mark(self, name: str, *, cleared: bool = False) -> str:
        mark: dict[str, Any] = {"name": name}
        if cleared:
            mark["cleared"] = True
        return _dumps({**self._head("mark"), "mark": mark})

    def stop(self, reason: str) -> str:
        return _dumps({**self._head("stop"), "stop": {"reason": reason}})

    def dtmf(self, digit: str, duration_ms: int) -> str:
        return _dumps(
            {
                **self._head("dtmf"),
                "dtmf": {"track": "inbound", "digit": digit, "duration": duration_ms},
            }
        )


class TwilioDialect(Dialect):
    """Twilio Media Streams' messages, exactly as Twilio documents them."""

    name = "twilio"

    def connected(self) -> str:
        # Twilio's connected message carries no sequence number; `start` is "1".
        return _dumps(
            {"event": "connected", "protocol": "Call", "version": PROTOCOL_VERSION}
        )

    def start(self, *, reconnect: bool) -> str:
        ident = self.identity
        start: dict[str, Any] = {
            "accountSid": ident.account_sid,
            "streamSid": ident.stream_sid,
            "callSid": ident.call_sid,
            "tracks": list(ident.tracks),
            "customParameters": ident.custom_parameters,
            "mediaFormat": {
                "encoding": ident.format.encoding,
                "sampleRate": ident.format.rate,
                "channels": 1,
            },
        }
        if reconnect:
            # Not in Twilio's protocol (Twilio never reconnects); extra fields are
            # ignored by Twilio clients.
            start["reconnect"] = True
        return _dumps(
            {
                "event": "start",
                "sequenceNumber": str(self._next()),
                "start": start,
                "streamSid": ident.stream_sid,
            }
        )

    def media(self, track: str, chunk: int, timestamp_ms: int, payload: str) -> str:
        return (
            f'{{"event":"media","sequenceNumber":"{self._next()}",'
            f'"media":{{"track":"{track}","chunk":"{chunk}",'
            f'"timestamp":"{timestamp_ms}","payload":"{payload}"}},'
            f'"streamSid":"{self.identity.stream_sid}"}}'
        )

    def dtmf(self, digit: str, duration_ms: int) -> str:
        # As Twilio sends a key the caller pressed (no duration in its message).
        return _dumps(
            {
                "event": "dtmf",
                "streamSid": self.identity.stream_sid,
                "sequenceNumber": str(self._next()),
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    def mark(self, name: str, *, cleared: bool = False) -> str:
        # Twilio answers a cleared mark with the same message as a played one.
        return _dumps(
            {
                "event": "mark",
                "sequenceNumber": str(self._next()),
                "streamSid": self.identity.stream_sid,
                "mark": {"name": name},
            }
        )

    def stop(self, reason: str) -> str:
        ident = self.identity
        return _dumps(
            {
                "event": "stop",
                "sequenceNumber": str(self._next()),
                "streamSid": ident.stream_sid,
                "stop": {"accountSid": ident.account_sid, "callSid": ident.call_sid},
            }
        )


DIALECTS: dict[str, type[Dialect]] = {
    WavixDialect.name: WavixDialect,
    TwilioDialect.name: TwilioDialect,
}

# ---------------------------------------------------------------- from the receiver


@dataclass(frozen=True)
class MediaIn:
    payload: bytes


@dataclass(frozen=True)
class MarkIn:
    name: str


@dataclass(frozen=True)
class ClearIn:
    pass


@dataclass(frozen=True)
class Invalid:
    reason: str


Incoming = MediaIn | MarkIn | ClearIn | Invalid


def parse_incoming(text: str, own_ids: frozenset[str]) -> Incoming:
    """Read one text frame from a receiver; anything unusable becomes Invalid."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
        return Invalid("a text frame that is not JSON")
    if not isinstance(message, dict):
        return Invalid("a JSON frame that is not an object")
    event = message.get("event")
    named = message.get("streamSid", message.get("stream_id", message.get("streamId")))
    if named is not None and named not in own_ids:
        return Invalid(f"a {event!s:.32} frame for another stream ({named!s:.64})")
    if event == "media":
        media = message.get("media")
        payload = media.get("payload") if isinstance(media, dict) else None
        if not isinstance(payload, str) or not payload:
            return Invalid("a media frame without media.payload")
        try:
            return MediaIn(base64.b64decode(payload, validate=True))
        except (binascii.Error, ValueError):
            return Invalid("a media frame whose payload is not base64")
    if event == "mark":
        mark = message.get("mark")
        name = mark.get("name") if isinstance(mark, dict) else None
        if not isinstance(name, str) or not 0 < len(name) <= MAX_MARK_NAME:
            return Invalid(f"a mark without a mark.name of 1 to {MAX_MARK_NAME} chars")
        return MarkIn(name)
    if event == "clear":
        return ClearIn()
    return Invalid(f"an unsupported event {event!s:.32}")
