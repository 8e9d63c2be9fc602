"""The SIP leg's own buffering, tick by tick, against the stack's two PCM rings held in
memory: how much received audio it keeps queued before playing, and how it drains a
send backlog. The same leg against the real stack and a real peer: ``test_sip.py``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from audio import FRAME_SAMPLES
from calls.carriers.sip import leg as sip_leg
from calls.carriers.sip.leg import SipLeg

FRAME_BYTES = FRAME_SAMPLES * 2


class Rings:
    """One call's ``call.audio`` as the stack keeps it: a receive ring the far end's
    decoded audio lands in (16 kHz here, so samples pass unresampled) and a send ring
    the stack's send thread takes 20 ms from every 20 ms."""

    def __init__(self, rate: int = 16_000) -> None:
        self.rx = bytearray()
        self.tx = bytearray()
        self.sent = bytearray()
        self.rate = rate
        # Set when a renegotiation replaced the streams: the next read or write (the
        # one named) raises AudioRestarted, as the stack's do, and the rings are new.
        self.restart_on: str | None = None

    def _restarted(self, operation: str) -> None:
        if self.restart_on == operation:
            from baresip.errors import AudioRestarted

            self.restart_on = None
            raise AudioRestarted("renegotiated")

    def write(self, pcm: bytes) -> int:
        self._restarted("write")
        self.tx += pcm
        return len(pcm)

    def read(self, size: int) -> bytes:
        self._restarted("read")
        data = bytes(self.rx[:size])
        del self.rx[:size]
        return data

    def info(self) -> Any:
        return SimpleNamespace(
            rx_ready=True,
            rx_sample_rate=self.rate,
            rx_channels=1,
            tx_buffered=len(self.tx),
        )

    def arrive(self, samples: np.ndarray) -> None:
        self.rx += samples.astype("<i2").tobytes()

    def send_frame(self) -> None:
        self.sent += self.tx[:FRAME_BYTES]
        del self.tx[:FRAME_BYTES]


def answered_leg(rate: int = 16_000) -> tuple[SipLeg, Rings]:
    rings = Rings(rate)
    leg = SipLeg(SimpleNamespace(audio=rings), incoming=False)
    leg.established = True
    return leg, rings


SILENCE = np.zeros(FRAME_SAMPLES, dtype=np.float32)


def tone_frame(index: int) -> np.ndarray:
    t = (np.arange(FRAME_SAMPLES) + index * FRAME_SAMPLES) / 16_000
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def test_received_audio_waits_for_slack_and_the_slack_grows_after_running_dry() -> None:
    leg, rings = answered_leg()
    # What the far end sends: distinct samples, so order and loss show.
    sent = (np.arange(60 * FRAME_SAMPLES) % 20_000 + 1).astype(np.int16)
    # Frames delivered per tick: steady, then a stall of two ticks made up at once.
    pattern = [1, 1, 1, 0, 0, 3] * 10
    played: list[np.ndarray] = []
    silent_ticks = []
    delivered = 0
    for tick, count in enumerate(pattern):
        rings.arrive(
            sent[delivered * FRAME_SAMPLES : (delivered + count) * FRAME_SAMPLES]
        )
        delivered += count
        out = leg.exchange(SILENCE).copy()
        if out.any():
            played.append(out)
        else:
            silent_ticks.append(tick)

    # Nothing plays until a frame and 10 ms more are queued (the first tick has 20 ms).
    assert silent_ticks[0] == 0
    # The first stall drains the 10 ms of slack: one silent frame, and the slack grows
    # to 20 ms; from then on the same stalls are absorbed.
    assert leg.underruns == 1 and silent_ticks[1:] == [4]
    assert leg.preroll == sip_leg.PREROLL_MIN + sip_leg.PREROLL_STEP
    # Every sample the far end sent so far came out once, in order.
    heard = np.concatenate(played)
    expected = sent[: len(heard)].astype(np.float32) / 32768
    np.testing.assert_array_equal(heard, expected)
    assert len(heard) >= delivered * FRAME_SAMPLES - 2 * FRAME_SAMPLES


def test_the_receive_slack_never_grows_past_40_ms() -> None:
    leg, rings = answered_leg()
    audio = np.full(FRAME_SAMPLES, 1000, dtype=np.int16)
    for _ in range(20):
        # A frame now and then with long silences between: the queue keeps running dry.
        for _ in range(4):
            rings.arrive(audio)
        for _ in range(8):
            leg.exchange(SILENCE)

    assert leg.underruns >= 10
    assert leg.preroll == sip_leg.PREROLL_MAX == 16_000 // 25


def received_steadily(
    backlog: np.ndarray, sent: np.ndarray, ticks: int
) -> tuple[SipLeg, np.ndarray]:
    """``backlog`` waiting in the stack before the leg's first read, then ``sent`` a
    frame a tick, as the far end's stream goes on: everything the leg played."""
    leg, rings = answered_leg()
    rings.arrive(backlog)
    played = []
    for tick in range(ticks):
        rings.arrive(sent[tick * FRAME_SAMPLES : (tick + 1) * FRAME_SAMPLES])
        played.append(leg.exchange(SILENCE).copy())
    return leg, np.concatenate(played)


def test_a_standing_backlog_of_silence_is_dropped_and_latency_returns_to_the_slack() -> (
    None
):
    # 160 ms waited before the first read; the far end then goes on in real time:
    # silence for 30 frames, then speech (distinct samples, so loss and order show).
    speech = (np.arange(40 * FRAME_SAMPLES) % 20_000 + 1).astype(np.int16)
    sent = np.concatenate([np.zeros(30 * FRAME_SAMPLES, np.int16), speech])
    leg, played = received_steadily(np.zeros(8 * FRAME_SAMPLES, np.int16), sent, 70)

    # After the first 200 ms the standing 160 ms (less the slack and its margin) went.
    standing = 8 * FRAME_SAMPLES + FRAME_SAMPLES
    kept = leg.preroll + sip_leg.RX_TRIM_MARGIN
    assert leg.preroll == sip_leg.PREROLL_MIN and leg.underruns == 0
    assert leg.trimmed_samples == (standing - FRAME_SAMPLES - kept) // FRAME_SAMPLES * (
        FRAME_SAMPLES
    )
    assert leg.dropped_samples == 0
    # Speech comes out whole and in order, a frame after it arrived instead of nine.
    first = int(np.flatnonzero(played)[0])
    assert first == (30 + 1) * FRAME_SAMPLES
    heard = played[first:]
    np.testing.assert_array_equal(
        heard, speech[: len(heard)].astype(np.float32) / 32768
    )
    assert len(heard) == (70 - 31) * FRAME_SAMPLES


def test_a_standing_backlog_of_speech_is_kept_whole() -> None:
    speech = (np.arange(60 * FRAME_SAMPLES) % 20_000 + 1).astype(np.int16)
    leg, played = received_steadily(
        speech[: 8 * FRAME_SAMPLES], speech[8 * FRAME_SAMPLES :], 50
    )

    assert leg.trimmed_samples == 0 and leg.dropped_samples == 0
    np.testing.assert_array_equal(
        played, speech[: len(played)].astype(np.float32) / 32768
    )
    assert len(played) == 50 * FRAME_SAMPLES


def burst(leg: SipLeg, frames: int) -> list[np.ndarray]:
    """The media clock catching up after a stall: several ticks at once."""
    written = [tone_frame(index) for index in range(frames)]
    for frame in written:
        leg.exchange(frame)
    return written


def test_a_send_backlog_drains_in_the_next_silence() -> None:
    leg, rings = answered_leg()
    burst(leg, 10)
    assert len(rings.tx) == 10 * FRAME_BYTES

    ticks = 0
    while len(rings.tx) > sip_leg.TX_TARGET_BYTES and ticks < 200:
        leg.exchange(SILENCE)
        rings.send_frame()
        ticks += 1

    # Back at target within the check interval plus the frames to drain.
    assert len(rings.tx) <= sip_leg.TX_TARGET_BYTES
    assert ticks <= sip_leg.TX_CHECK_TICKS + 10
    assert leg.tx_trimmed_frames >= 10 - sip_leg.TX_TARGET_BYTES // FRAME_BYTES - 1
    # Then silence is written again, one frame a tick, and the queue holds steady.
    before = leg.tx_trimmed_frames
    for _ in range(3 * sip_leg.TX_CHECK_TICKS):
        leg.exchange(SILENCE)
        rings.send_frame()
    assert leg.tx_trimmed_frames == before
    assert 0 < len(rings.tx) <= sip_leg.TX_TARGET_BYTES


def test_speech_is_never_left_out_however_long_the_backlog() -> None:
    leg, rings = answered_leg()
    written = burst(leg, 10)
    for index in range(10, 10 + 5 * sip_leg.TX_CHECK_TICKS):
        frame = tone_frame(index)
        written.append(frame)
        leg.exchange(frame)
        rings.send_frame()

    assert leg.tx_trimmed_frames == 0
    assert len(rings.tx) == 10 * FRAME_BYTES
    # What the stack sent and still holds is every frame written, in order.
    expected = b"".join(
        (np.clip(f, -1, 1) * 32767.0).astype("<i2").tobytes() for f in written
    )
    assert bytes(rings.sent + rings.tx) == expected


def tone(rate: int, hz: float, frames: int) -> np.ndarray:
    t = np.arange(frames * rate // 50) / rate
    return (9000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * 16_000 / len(samples))


@pytest.mark.parametrize("first", ["write", "read"])
def test_a_renegotiation_to_another_rate_is_heard_at_the_new_rate(first: str) -> None:
    """A re-INVITE moves the call from PCMU (8 kHz) to G.722 (16 kHz): the audio after
    it plays at its own rate, not through the first stream's resampler (which would
    halve its pitch and double its length)."""
    leg, rings = answered_leg(rate=8_000)
    before = tone(8_000, 440, 50)
    for index in range(50):
        rings.arrive(before[index * 160 : (index + 1) * 160])
        leg.exchange(SILENCE)
        rings.send_frame()
    assert leg._rx_rate == 8_000

    rings.rate, rings.restart_on = 16_000, first
    rings.rx.clear()
    after = tone(16_000, 440, 100)
    played = []
    for index in range(100):
        rings.arrive(after[index * FRAME_SAMPLES : (index + 1) * FRAME_SAMPLES])
        played.append(leg.exchange(SILENCE).copy())
        rings.send_frame()

    assert rings.restart_on is None  # the stack's notice was taken
    heard = np.concatenate(played[-50:])
    assert abs(dominant_hz(heard) - 440) < 10
    assert leg.dropped_samples == 0  # arriving no faster than it plays
