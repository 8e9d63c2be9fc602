"""One SIP call's leg: signalling mapped to the runtime, audio through the stack's buffers.

The stack (libre + baresip) runs RTP, the codecs and a jitter buffer on its own threads;
per call it keeps two PCM rings (``call.audio``) that never block. ``exchange`` runs on
the media clock's tick: it writes the tick's 20 ms (16 kHz mono, which the stack
resamples for the codec) and takes what the stack decoded, at the codec's rate, through a
polyphase resampler whose output keeps step with its input (soxr's streaming filters
hand 8 → 16 kHz over in 100 ms bursts) into a short queue it reads 320 samples from.

Both directions keep their latency bounded on their own:

- Received audio: the stack hands decoded audio over on its own 20 ms timer, whose phase
  wanders against the media clock's under load. The queue starts playing once it holds a
  frame plus a little slack (10 ms), and each time it runs dry anyway the slack grows by
  10 ms, up to 40 ms: a call pays for the jitter it has, not for the worst case. What
  stays queued beyond that slack (and 10 ms more) for 200 ms on end (audio that arrived before the leg
  first read, a burst the stack delivered late) is a standing delay the rest of the call
  would hear: silent frames at the front are dropped until it is gone, speech never.
- Sent audio: the stack's send thread takes 20 ms every 20 ms, so whatever the media
  clock wrote in a burst while catching up after a stall would stay queued, and the far
  end would hear us that much later for the rest of the call. Past two frames queued,
  silent frames are left out until the queue is back to them; speech is never dropped.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from django.conf import settings

from audio import FRAME_SAMPLES, SAMPLE_RATE, Frame
from audio.codecs import pcm16_to_float
from audio.resample import SteadyResampler, StreamResampler
from calls.carriers.base import CarrierError, CarrierLeg
from config import priority

if TYPE_CHECKING:
    from baresip import StackEvent

logger = logging.getLogger(__name__)

# The received audio waiting to be read is kept under this: a backlog past it (the
# stack delivered a burst) is dropped from the front, so latency stays bounded.
MAX_QUEUED_SAMPLES = SAMPLE_RATE // 5  # 200 ms
# Received audio taken per tick: this much until the call's rate is known, then 100 ms
# of it (a backlog is taken over the next ticks, five times faster than it comes). The
# stack's read zero-fills a buffer of the size asked for on every call, so asking for
# no more than that keeps each tick's read from sweeping 16 KB of cache per call.
READ_BYTES = 16_384
READ_MS = 100
# Slack kept queued beyond a frame before received audio plays (see the module's doc).
PREROLL_MIN = SAMPLE_RATE // 100  # 10 ms
PREROLL_STEP = SAMPLE_RATE // 100
PREROLL_MAX = SAMPLE_RATE // 25  # 40 ms
# Sent audio the stack may hold before silent frames are left out (16-bit samples).
TX_TARGET_BYTES = 2 * FRAME_SAMPLES * 2  # 40 ms
# Received audio: the queue's low point is looked at every this many ticks (200 ms);
# what stood beyond the slack the whole time is dropped where it is silent.
RX_TRIM_TICKS = 10
# ... and left that much beyond the slack: the low point of the last 200 ms is not the
# lowest the queue will go.
RX_TRIM_MARGIN = SAMPLE_RATE // 100  # 10 ms
# A frame whose peak is under this (-60 dBFS) is silence.
SILENCE_PEAK = 1e-3
# While under target, the stack's send queue is looked at every this many ticks.
TX_CHECK_TICKS = 25
# The stack's threads on the receive path: its SIP/RTP thread (receiving, decoding, the
# jitter buffer) and each call's player, which moves decoded audio into the ring this
# leg reads. With a real-time media loop they run just below it (config/priority.py).
RECEIVE_THREADS = frozenset({"baresip-re", "aumem_play"})
# Each call's send thread: it sleeps 4 ms at a time and sends a packet when one is due,
# and is given timer slack (SIP_SEND_SLACK_MS) to wake less often.
SEND_THREADS = frozenset({"Audio TX"})

# Final SIP statuses of an outgoing call → end reason (DESIGN §11.1); others: failed.
BUSY = {486, 600}
DECLINED = {603}
NO_ANSWER = {408, 480, 487}
# What the stack writes when the far end hung up (or a caller cancelled).
PEER_LEFT = "Connection reset by peer"
MEDIA_TIMEOUT = "rtp stream error"
LOCAL_END = "Rejected by user"


def status_of(text: str | None) -> tuple[int | None, str]:
    """``"486 Busy Here"`` → ``(486, "Busy Here")``; anything else → ``(None, text)``."""
    text = (text or "").strip()
    code, _, reason = text.partition(" ")
    if len(code) == 3 and code.isdigit():
        return int(code), reason
    return None, text


def _tx_backlog(audio: Any) -> int:
    """Bytes the stack holds to send; 0 while the call has no media."""
    try:
        return int(audio.info().tx_buffered)
    except Exception:
        return 0


def reason_for_status(status: int) -> str:
    if status in BUSY:
        return "busy"
    if status in DECLINED:
        return "declined"
    if status in NO_ANSWER:
        return "no_answer"
    return "failed"


class SipLeg(CarrierLeg):
    """A call through the SIP stack, outgoing or incoming."""

    supports_dtmf = True

    def __init__(self, call: Any, *, incoming: bool) -> None:
        self.call = call
        self.incoming = incoming
        self.established = False
        self.ended = False
        self._out = np.zeros(FRAME_SAMPLES, dtype=np.float32)
        self._scaled = np.zeros(FRAME_SAMPLES, dtype=np.float32)
        self._queue = np.zeros(MAX_QUEUED_SAMPLES + READ_BYTES, dtype=np.float32)
        self._queued = 0
        self._playing = False
        self._heard = False
        self.preroll = PREROLL_MIN
        self._tx_check = TX_CHECK_TICKS
        self._tx_over = False
        self.tx_trimmed_frames = 0
        self._resampler: SteadyResampler | StreamResampler | None = None
        self._rx_rate = 0
        self._read_bytes = READ_BYTES
        self._rx_channels = 1
        self._tx_ready = False
        self._dtmf_started: dict[str, float] = {}
        self._rx_low = MAX_QUEUED_SAMPLES
        self._rx_trim_check = RX_TRIM_TICKS
        self.underruns = 0
        self.dropped_samples = 0
        self.trimmed_samples = 0

    # ------------------------------------------------------------ media, per tick
    def exchange(self, outbound: Frame) -> Frame:
        audio = self.call.audio
        if self.established:
            if self._tx_backlogged(audio, outbound):
                self.tx_trimmed_frames += 1
            else:
                # Scaled, then clipped to ±32767 (as clipping to ±1 first would be),
                # in place: a max/min pair costs about half of np.clip here.
                scratch = self._scaled if len(outbound) == FRAME_SAMPLES else None
                scaled = np.multiply(outbound, 32767.0, out=scratch, dtype=np.float32)
                np.minimum(scaled, 32767.0, out=scaled)
                np.maximum(scaled, -32767.0, out=scaled)
                pcm = scaled.astype("<i2").tobytes()
                try:
                    audio.write(pcm)
                    self._tx_ready = True
                except Exception as exc:
                    # Media not up yet (AudioNotActive), renegotiated, or the call is
                    # gone.
                    self._tx_ready = False
                    self._check_restarted(exc)
            self._take(audio)
        out = self._out
        if not self._playing and self._queued >= FRAME_SAMPLES + self.preroll:
            self._playing = self._heard = True
        if self._playing and self._queued >= FRAME_SAMPLES:
            out[:] = self._queue[:FRAME_SAMPLES]
            self._queued -= FRAME_SAMPLES
            self._queue[: self._queued] = self._queue[
                FRAME_SAMPLES : FRAME_SAMPLES + self._queued
            ]
            if self._queued < self._rx_low:
                self._rx_low = self._queued
            self._rx_trim_check -= 1
            if not self._rx_trim_check:
                excess = self._rx_low - self.preroll - RX_TRIM_MARGIN
                if excess >= FRAME_SAMPLES:
                    self._trim_received(excess)
                self._rx_low = MAX_QUEUED_SAMPLES
                self._rx_trim_check = RX_TRIM_TICKS
            return out
        out.fill(0.0)
        if self._playing:
            self._playing = False
            self._rx_low = MAX_QUEUED_SAMPLES
            self._rx_trim_check = RX_TRIM_TICKS
            self.preroll = min(self.preroll + PREROLL_STEP, PREROLL_MAX)
        # A frame without audio once audio has flowed (a gap in what the far end sent,
        # or the slack too short), counted until the queue plays again.
        if self._heard and self.established and self._tx_ready:
            self.underruns += 1
        return out

    def _trim_received(self, excess: int) -> None:
        """Drop the silent frames at the front of the received queue, ``excess``
        samples at most (it stood queued beyond the slack for the last 200 ms)."""
        queue = self._queue
        drop = 0
        while drop + FRAME_SAMPLES <= excess:
            frame = queue[drop : drop + FRAME_SAMPLES]
            if float(np.abs(frame).max()) >= SILENCE_PEAK:
                break
            drop += FRAME_SAMPLES
        if drop:
            self._queued -= drop
            queue[: self._queued] = queue[drop : drop + self._queued]
            self.trimmed_samples += drop

    def _tx_backlogged(self, audio: Any, outbound: Frame) -> bool:
        """Whether to leave this frame out: it is silent and the stack holds too much."""
        if not self._tx_over:
            self._tx_check -= 1
            if self._tx_check > 0:
                return False
            self._tx_check = TX_CHECK_TICKS
            self._tx_over = _tx_backlog(audio) > TX_TARGET_BYTES
            if not self._tx_over:
                return False
        if float(np.abs(outbound).max()) >= SILENCE_PEAK:
            return False
        self._tx_over = _tx_backlog(audio) > TX_TARGET_BYTES
        return self._tx_over

    def _check_restarted(self, exc: Exception) -> None:
        """After a renegotiation (a re-INVITE, say to another codec) replaced the call's
        streams, the stack raises AudioRestarted once, on whichever read or write comes
        first, and the next binds to the new streams: their rate and channels, and the
        new streams' threads, are then looked at afresh as for the first."""
        from baresip.errors import AudioRestarted

        if isinstance(exc, AudioRestarted):
            self._rx_rate = 0
            self._rx_channels = 1
            self._resampler = None
            self._read_bytes = READ_BYTES

    def _take(self, audio: Any) -> None:
        try:
            data = audio.read(self._read_bytes)
        except Exception as exc:
            self._check_restarted(exc)
            return
        if not data:
            return
        if not self._rx_rate:
            info = audio.info()
            if not info.rx_ready or not info.rx_sample_rate:
                return
            self._rx_rate = info.rx_sample_rate
            self._rx_channels = max(1, info.rx_channels)
            self._read_bytes = min(
                READ_BYTES, self._rx_rate * self._rx_channels * 2 * READ_MS // 1000
            )
            # This call's player has started, and its send thread before it.
            priority.promote(RECEIVE_THREADS)
            priority.relax(SEND_THREADS, settings.SIP_SEND_SLACK_MS)
            if self._rx_rate != SAMPLE_RATE:
                try:
                    self._resampler = SteadyResampler(self._rx_rate, SAMPLE_RATE)
                except ValueError:  # a rate with no small ratio to 16 kHz
                    self._resampler = StreamResampler(self._rx_rate, SAMPLE_RATE)
        samples = pcm16_to_float(data[: len(data) - len(data) % 2])
        if self._rx_channels > 1:
            samples = samples[: len(samples) - len(samples) % self._rx_channels]
            samples = samples.reshape(-1, self._rx_channels).mean(axis=1)
        resampled = (
            samples if self._resampler is None else self._resampler.process(samples)
        )
        count = len(resampled)
        if not count:
            return
        room = MAX_QUEUED_SAMPLES - self._queued
        if count > room:
            drop = min(self._queued, count - room)
            self._queue[: self._queued - drop] = self._queue[drop : self._queued]
            self._queued -= drop
            self.dropped_samples += drop
            if count > MAX_QUEUED_SAMPLES:
                resampled = resampled[-MAX_QUEUED_SAMPLES:]
                self.dropped_samples += count - MAX_QUEUED_SAMPLES
                count = MAX_QUEUED_SAMPLES
        self._queue[self._queued : self._queued + count] = resampled
        self._queued += count

    # ------------------------------------------------------------ signalling
    def on_event(self, event: StackEvent) -> None:
        """A stack event of this call (on the home loop)."""
        from baresip import Event

        kind = event.event
        listener = self.listener
        if kind in (Event.CALL_RINGING, Event.CALL_PROGRESS):
            if not self.incoming and listener is not None:
                listener.leg_ringing()
        elif kind == Event.CALL_ESTABLISHED:
            was = self.established
            self.established = True
            if not self.incoming and not was and listener is not None:
                listener.leg_answered()
        elif kind == Event.CALL_DTMF_START:
            digit = (event.text or "").strip()[:1]
            if digit:
                self._dtmf_started[digit] = time.monotonic()
        elif kind == Event.CALL_DTMF_END:
            digit = (event.text or "").strip()[:1]
            if not digit and self._dtmf_started:
                digit = next(iter(self._dtmf_started))
            started = self._dtmf_started.pop(digit, None)
            duration = int((time.monotonic() - started) * 1000) if started else 0
            if digit and listener is not None:
                listener.leg_dtmf(digit, duration)
        elif kind == Event.CALL_CLOSED:
            self._closed(event.text)

    def _closed(self, text: str | None) -> None:
        if self.ended:
            return
        self.ended = True
        listener = self.listener
        if listener is None:
            return
        status, reason = status_of(text)
        if status is not None:
            ended_as = "missed" if self.incoming else reason_for_status(status)
            detail = CarrierError(str(status), reason or str(status))
            listener.leg_ended(ended_as, detail if ended_as == "failed" else None)
        elif reason.startswith(MEDIA_TIMEOUT):
            listener.leg_ended(
                "failed",
                CarrierError("media_timeout", "No RTP arrived for the media timeout."),
            )
        elif reason.startswith(PEER_LEFT):
            # A BYE once answered; before that, an incoming call's caller cancelled.
            listener.leg_ended("remote_hangup" if self.established else "missed")
        elif reason.startswith(LOCAL_END):
            listener.leg_ended("remote_hangup" if self.established else "failed")
        else:
            listener.leg_ended(
                "remote_hangup" if self.established else "failed",
                None if self.established else CarrierError("sip_error", reason),
            )

    async def answer(self) -> None:
        await self.call.answer()
        self.established = True

    async def reject(self) -> None:
        self.ended = True
        try:
            await self.call.reject()
        except Exception:
            logger.debug("Rejecting a SIP call failed", exc_info=True)

    async def hangup(self) -> None:
        if self.ended:
            return
        self.ended = True
        try:
            await self.call.hangup()
        except Exception:
            logger.debug("Hanging up a SIP call failed", exc_info=True)

    async def send_dtmf(self, digits: str) -> None:
        await self.call.send_dtmf(digits)
