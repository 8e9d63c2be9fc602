"""Frames, codecs and signatures of dial-out streams, without sockets or a database."""

from __future__ import annotations

import base64
import json
import time
import uuid

import numpy as np
import pytest

from audio.resample import SteadyResampler
from calls.tests.media_client import chirp
from streams.formats import FORMATS, TrackDecoder, TrackEncoder, WireFormat
from streams.protocol import (
    ClearIn,
    Invalid,
    MarkIn,
    MediaIn,
    StreamIdentity,
    TwilioDialect,
    WavixDialect,
    parse_incoming,
)
from streams.sids import account_sid, call_sid, parse_sid, stream_sid
from streams.signing import handshake_signature, verify_handshake_signature

CALL = "01a1fc4a-0000-7000-8000-00000000c411"
STREAM = "01a1fc4a-0000-7000-8000-0000000057e4"
ENV = "01a1fc4a-0000-7000-8000-0000000000e7"
SESSION = "01a1fc4a-0000-7000-8000-000000005e55"


def identity(channel: str = "both", fmt: str = "pcm16_16000") -> StreamIdentity:
    return StreamIdentity(
        call_id=CALL,
        stream_id=STREAM,
        session_id=SESSION,
        environment_id=ENV,
        type="oneway",
        channel=channel,
        format=FORMATS[fmt],
        custom_parameters={"FirstName": "Jane"},
    )


def test_wavix_frames_are_snake_case_and_numbered_per_connection() -> None:
    dialect = WavixDialect(identity())
    frames = [
        json.loads(dialect.connected()),
        json.loads(dialect.start(reconnect=False)),
        json.loads(dialect.media("outbound", 1, 40, "AAAA")),
        json.loads(dialect.mark("m", cleared=True)),
        json.loads(dialect.stop("requested")),
    ]
    assert [f["event"] for f in frames] == [
        "connected",
        "start",
        "media",
        "mark",
        "stop",
    ]
    assert [f["sequence_number"] for f in frames] == [1, 2, 3, 4, 5]
    for frame in frames:
        assert frame["call_id"] == CALL and frame["stream_id"] == STREAM
        assert frame["event_time"].endswith("Z") and len(frame["event_time"]) == 24
    # Wavix documents the stream's type and channel at the top of `start`.
    assert (frames[1]["stream_type"], frames[1]["channel"]) == ("oneway", "both")
    assert frames[1]["start"] == {
        "call_id": CALL,
        "stream_id": STREAM,
        "session_id": SESSION,
        "type": "oneway",
        "channel": "both",
        "tracks": ["inbound", "outbound"],
        "media_format": {
            "format": "pcm16_16000",
            "encoding": "pcm_s16le",
            "sample_rate": 16000,
            "channels": 1,
            "chunk_ms": 20,
        },
        "custom_parameters": {"FirstName": "Jane"},
        "reconnect": False,
    }
    assert frames[2]["media"] == {
        "track": "outbound",
        "chunk": 1,
        "timestamp": 40,
        "payload": "AAAA",
    }
    assert frames[3]["mark"] == {"name": "m", "cleared": True}
    assert frames[4]["stop"] == {"reason": "requested"}
    dialect.begin()
    assert json.loads(dialect.connected())["sequence_number"] == 1


def test_twilio_start_says_reconnect_only_when_reconnecting() -> None:
    dialect = TwilioDialect(identity(channel="inbound", fmt="mulaw_8000"))
    first = json.loads(dialect.start(reconnect=False))
    assert "reconnect" not in first["start"]
    again = json.loads(dialect.start(reconnect=True))
    assert again["start"]["reconnect"] is True
    assert first["start"]["mediaFormat"] == {
        "encoding": "audio/x-mulaw",
        "sampleRate": 8000,
        "channels": 1,
    }
    marks = json.loads(dialect.mark("x", cleared=True))
    assert marks["mark"] == {"name": "x"}


def test_sids_are_reversible_and_twilio_shaped() -> None:
    assert account_sid(ENV) == "AC" + uuid.UUID(ENV).hex
    assert call_sid(CALL).startswith("CA") and len(call_sid(CALL)) == 34
    assert parse_sid("MZ", stream_sid(STREAM)) == uuid.UUID(STREAM)
    assert parse_sid("CA", stream_sid(STREAM)) is None
    assert parse_sid("CA", "CA" + "Z" * 32) is None


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"event": "media", "media": {"payload": "AAEC"}}, MediaIn(b"\x00\x01\x02")),
        (
            {
                "event": "media",
                "streamSid": stream_sid(STREAM),
                "media": {"payload": "AA=="},
            },
            MediaIn(b"\x00"),
        ),
        ({"event": "mark", "stream_id": STREAM, "mark": {"name": "a"}}, MarkIn("a")),
        ({"event": "clear", "streamSid": stream_sid(STREAM)}, ClearIn()),
        ({"event": "clear"}, ClearIn()),
    ],
)
def test_receivers_may_send_media_mark_and_clear_in_either_dialect(
    message: dict, expected: object
) -> None:
    assert parse_incoming(json.dumps(message), identity().own_ids) == expected


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1]",
        json.dumps({"event": "dtmf", "dtmf": {"digit": "1"}}),
        json.dumps({"event": "media", "media": {"payload": "***"}}),
        json.dumps({"event": "media", "media": {}}),
        json.dumps({"event": "mark", "mark": {"name": ""}}),
        json.dumps({"event": "mark"}),
        json.dumps({"event": "clear", "streamSid": "MZ" + "0" * 32}),
    ],
)
def test_anything_else_from_a_receiver_is_invalid_not_an_exception(text: str) -> None:
    assert isinstance(parse_incoming(text, identity().own_ids), Invalid)


def test_the_handshake_signature_verifies_only_for_its_url_secret_and_time() -> None:
    url = "wss://bot.example.com/stream?x=1"
    now = int(time.time())
    header = handshake_signature("sbsig_secret", url, now)
    assert header.startswith(f"t={now},v1=")
    assert verify_handshake_signature(header, url=url, secret="sbsig_secret")
    assert not verify_handshake_signature(header, url=url + "2", secret="sbsig_secret")
    assert not verify_handshake_signature(header, url=url, secret="sbsig_other")
    stale = handshake_signature("sbsig_secret", url, now - 3600)
    assert not verify_handshake_signature(stale, url=url, secret="sbsig_secret")
    assert not verify_handshake_signature("garbage", url=url, secret="sbsig_secret")


def encoded(wire: WireFormat, signal: np.ndarray) -> list[bytes]:
    """The call's 20 ms frames of ``signal`` as the wire format's chunks."""
    encoder = TrackEncoder(wire)
    return [
        chunk
        for i in range(0, len(signal), 320)
        for chunk in encoder.encode(signal[i : i + 320])
    ]


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_encoders_cut_exact_20_ms_chunks_and_decoders_restore_the_audio(
    fmt: str,
) -> None:
    wire = FORMATS[fmt]
    signal = chirp(1.0, amplitude=0.4)
    decoder = TrackDecoder(wire)
    chunks = encoded(wire, signal)
    assert all(len(chunk) == wire.chunk_bytes for chunk in chunks)
    # Resampled formats lag a little inside the filter; nothing is lost or repeated.
    assert len(signal) // 320 - 7 <= len(chunks) <= len(signal) // 320
    decoded = np.concatenate(
        [decoder.decode(chunk) for chunk in chunks] + [decoder.flush()]
    )
    if fmt == "f32_16000":
        assert np.array_equal(decoded, signal)
    elif fmt == "pcm16_16000":
        assert np.abs(decoded - signal).max() <= 1 / 32768 + 1e-7
    else:
        n = min(len(decoded), len(signal)) - 800
        error = signal[800:n] - decoded[800:n]
        snr = 10 * np.log10(np.sum(signal[800:n] ** 2) / np.sum(error**2))
        assert snr > (30 if fmt == "pcm16_24000" else 25), snr


def test_mulaw_chunks_are_within_mulaw_quantisation_of_the_band_limited_signal() -> (
    None
):
    wire = FORMATS["mulaw_8000"]
    signal = chirp(0.5, amplitude=0.5)
    down = SteadyResampler(16000, 8000)  # the encoder's own resampler
    reference = down.process(signal)
    chunks = encoded(wire, signal)
    decoded = np.concatenate([wire.decode(c) for c in chunks])
    n = len(decoded)
    # G.711 μ-law keeps each sample within half a step of its segment: at most 1/32
    # of its value, and 4/32768 around zero (where the steps are 8/32768).
    error = np.abs(decoded - reference[:n])
    assert np.all(error <= np.abs(reference[:n]) / 32 + 4.5 / 32768)
    assert base64.b64encode(chunks[0])


@pytest.mark.parametrize("fmt", ["mulaw_8000", "pcm16_24000"])
def test_a_receivers_20_ms_chunks_reach_the_call_as_20_ms_at_once(fmt: str) -> None:
    """A twoway bot speaking in real time is heard in step with what it sends: 20 ms of
    16 kHz audio for every 20 ms chunk, a few milliseconds behind, never held back in
    100 ms bursts; a mark releases the rest, so nothing sent before it is missing."""
    wire = FORMATS[fmt]
    signal = chirp(1.0, amplitude=0.4)
    decoder = TrackDecoder(wire)
    chunks = encoded(wire, signal)
    sizes = [len(decoder.decode(chunk)) for chunk in chunks]

    assert 0 < 320 - sizes[0] <= 64
    assert all(size == 320 for size in sizes[1:])
    tail = decoder.flush()
    assert sum(sizes) + len(tail) == len(chunks) * 320
