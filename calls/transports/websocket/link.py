"""A live media socket's attachment to a call runtime (DESIGN §5), free of socket code.

The link is the runtime's outbound source (the client's audio, through a bounded playout
buffer), a media subscriber (the peer's frames go back to the client) and a call observer
(state changes and the end). It speaks in frames through three callables the transport
gives it, so the same link serves a local socket and the cross-process bridge.

A client streaming in real time whose audio piles up behind a stall gets its backlog
trimmed back to ``MEDIA_PLAYOUT_TARGET_MS`` by dropping silence (``BacklogTrimmer``);
audio sent ahead on purpose plays as sent.

When its client's audio arrives at a steady moment of the 20 ms frame, the call is
ticked just after that moment (``MEDIA_ALIGN_TICKS``): the link notes when 25 frames
arrived, at the start and every 10 s (the client's clock drifts against ours), and hands
the times to the media clock. A move to a later phase leaves one frame more queued than
before; the link drops a frame of silence for it at the next pause.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from django.conf import settings

from audio import FRAME_SAMPLES, SAMPLE_RATE
from audio.codecs import InvalidPcm
from audio.playout import BacklogTrimmer, PlayoutBuffer

if TYPE_CHECKING:
    from calls.runtime.runtime import CallRuntime

SAMPLES_PER_MS = SAMPLE_RATE // 1000
MAX_FRAME_BYTES = SAMPLE_RATE * 4  # one second of Float32 audio
BUFFER_REPORT_TICKS = 10  # a `buffer` frame at least every 200 ms while audio waits
MAX_MARK_NAME = 256
# A control message is a few dozen characters; anything past this is refused unread.
MAX_TEXT_CHARS = 4096
# Arrivals noted for an alignment of the call's tick, and frames between alignments.
ALIGN_FRAMES = 25
REALIGN_FRAMES = 500


CLOSE_REPLACED = 4409
WEBSOCKET = "websocket"


def attach(runtime: CallRuntime, link: MediaLink) -> None:
    """Attach a live socket's link to its call: one per call, replacing the previous."""
    replaced = runtime.attach_client(
        WEBSOCKET, link, source=True, subscriber=True, observer=True, replace=True
    )
    for previous in replaced:
        previous.replaced()
    if settings.MEDIA_ALIGN_TICKS:
        clock = runtime.engine.clock
        link.align = lambda arrivals: clock.align(runtime, arrivals, link.moved_later)


def ready_frame(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The first frame of every media socket."""
    return {
        "type": "ready",
        "media": {
            "direction": "bidirectional",
            "encoding": "pcm_f32le",
            "sampleRate": SAMPLE_RATE,
            "channels": 1,
            "frameMs": 20,
        },
        "call": snapshot,
    }


class MediaLink:
    def __init__(
        self,
        *,
        send_audio: Callable[[bytes], None],
        send_json: Callable[[dict[str, Any]], None],
        close: Callable[[int], None],
        capacity_ms: int,
        pause_ms: int,
        resume_ms: int,
        target_ms: int | None = None,
    ) -> None:
        self.send_audio = send_audio
        self.send_json = send_json
        self.close = close
        self.capacity_ms = capacity_ms
        self.pause_ms = pause_ms
        self.resume_ms = resume_ms
        self.buffer = PlayoutBuffer(capacity_ms * SAMPLES_PER_MS)
        if target_ms is None:
            target_ms = settings.MEDIA_PLAYOUT_TARGET_MS
        # Off (0): the trimmer is never ticked, as no buffer holds more than its capacity.
        self.trimmer = BacklogTrimmer(
            self.buffer,
            target=max(target_ms, 1) * SAMPLES_PER_MS,
            frame=FRAME_SAMPLES,
        )
        self._trim_above = (
            target_ms * SAMPLES_PER_MS if target_ms > 0 else self.buffer.capacity
        )
        self._pause_samples = pause_ms * SAMPLES_PER_MS
        self._resume_samples = resume_ms * SAMPLES_PER_MS
        self.paused = False
        self._ticks_since_report = 0
        self._last_reported_ms = 0
        self.frames_in = 0
        self.frames_out = 0
        self.dropped_ms = 0
        # Set by ``attach``: hands the clock the times the last frames arrived at.
        self.align: Callable[[list[float]], None] | None = None
        self._arrivals: list[float] = []
        self._until_align = 0
        self._extra_frame = False  # a later tick phase left a frame more queued

    # ------------------------------------------------------------ the client's side
    def push_audio(self, data: bytes) -> None:
        """Queue client audio for the peer; bad or overflowing audio becomes an error frame."""
        size = len(data)
        if size > MAX_FRAME_BYTES:
            self.error(
                "frame_too_large",
                f"Binary frames carry at most 1 s of audio ({MAX_FRAME_BYTES} bytes); got {size}.",
            )
            return
        if size % 4:
            self.error(
                InvalidPcm.code,
                "Float32LE audio must be a whole number of 4-byte samples.",
            )
            return
        samples = np.frombuffer(data, dtype="<f4")
        if not np.isfinite(samples).all():
            self.error(
                InvalidPcm.code, "Float32LE audio must not contain NaN or infinity."
            )
            return
        self.frames_in += 1
        if self.align is not None:
            if self._until_align:
                self._until_align -= 1
            else:
                self._note_arrival()
        buffer = self.buffer
        accepted = buffer.write(samples, clip=True)
        if accepted < len(samples):
            dropped = (len(samples) - accepted) // SAMPLES_PER_MS
            self.dropped_ms += dropped
            self.error(
                "buffer_overflow",
                f"The playout buffer holds at most {self.capacity_ms} ms; {dropped} ms were dropped. "
                f"Pause at bufferedMs ≥ {self.pause_ms} and resume at ≤ {self.resume_ms}.",
            )
        if not self.paused and buffer.buffered >= self._pause_samples:
            self.paused = True
            self.report_buffer()

    def _note_arrival(self) -> None:
        arrivals = self._arrivals
        arrivals.append(time.monotonic())
        if len(arrivals) == ALIGN_FRAMES:
            self._arrivals = []
            self._until_align = REALIGN_FRAMES
            if self.align is not None:
                self.align(arrivals)

    def moved_later(self) -> None:
        """The call is now ticked later in the frame: one read will find a frame more
        than usual waiting, which would otherwise stay queued for the rest of the call."""
        self._extra_frame = True

    def handle_text(self, text: str) -> None:
        """Apply a client text frame: ``clear`` or ``mark``; anything else is an error."""
        if len(text) > MAX_TEXT_CHARS:
            self.error(
                "message_too_large",
                f"Text frames are control messages of at most {MAX_TEXT_CHARS} "
                "characters; audio goes in binary frames.",
            )
            return
        try:
            message = json.loads(text)
        except (ValueError, RecursionError):  # not JSON, or nested past any use
            self.error("invalid_message", "Text frames must be JSON objects.")
            return
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "clear":
            self.clear()
        elif kind == "mark":
            name = message.get("name")
            if not isinstance(name, str) or not 0 < len(name) <= MAX_MARK_NAME:
                self.error(
                    "invalid_message",
                    f"A mark needs a `name` of 1 to {MAX_MARK_NAME} characters.",
                )
                return
            self.buffer.add_mark(name)
        else:
            self.error(
                "invalid_message",
                'Unknown message; send {"type":"clear"} or {"type":"mark","name":"…"}.',
            )

    def clear(self) -> None:
        """Barge-in: drop buffered audio now and answer every pending mark as cleared."""
        for name in self.buffer.clear():
            self.send_json({"type": "mark", "name": name, "cleared": True})
        self.trimmer.reset()
        if self.paused:
            self.paused = False
        self.report_buffer()

    def error(self, code: str, message: str) -> None:
        self.send_json({"type": "error", "code": code, "message": message})

    # ------------------------------------------------------------ the runtime's side
    @property
    def buffered_ms(self) -> int:
        return self.buffer.buffered // SAMPLES_PER_MS

    @property
    def played_ms(self) -> int:
        """Audio handed to the peer; silence dropped by the trimmer is not counted."""
        buffer = self.buffer
        return (buffer.played_total - buffer.trimmed_total) // SAMPLES_PER_MS

    @property
    def trimmed_ms(self) -> int:
        return self.buffer.trimmed_total // SAMPLES_PER_MS

    def report_buffer(self) -> None:
        self._ticks_since_report = 0
        self._last_reported_ms = self.buffered_ms
        self.send_json(
            {
                "type": "buffer",
                "bufferedMs": self._last_reported_ms,
                "pauseMs": self.pause_ms,
                "resumeMs": self.resume_ms,
                "capacityMs": self.capacity_ms,
                "trimmedMs": self.trimmed_ms,
            }
        )

    def read_into(self, out: np.ndarray) -> int:
        """OutboundSource: the next 20 ms of client audio for the peer (per tick)."""
        buffer = self.buffer
        # The frame due now goes if it is inside a pause: the one behind it plays.
        if (
            self._extra_frame
            and buffer.buffered >= 2 * FRAME_SAMPLES
            and buffer.trim_silence(FRAME_SAMPLES, FRAME_SAMPLES, 1, self.trimmer.floor)
        ):
            self._extra_frame = False
        count = buffer.read_into(out)
        left = buffer.written_total - buffer.played_total
        if self._extra_frame and not left:
            self._extra_frame = False  # nothing more than the frame due was waiting
        if left > self._trim_above:
            # Before the marks: one inside dropped silence is due now.
            left -= self.trimmer.tick()
        elif self.trimmer.ticks:
            self.trimmer.reset()
        if buffer.has_marks:
            for name, _position in buffer.pop_played_marks():
                self.send_json(
                    {"type": "mark", "name": name, "playedMs": self.played_ms}
                )
        if left:
            # Audio still waits after this tick: report at least every 200 ms.
            self._ticks_since_report += 1
            if self.paused and left <= self._resume_samples:
                self.paused = False
                self.report_buffer()
            elif self._ticks_since_report >= BUFFER_REPORT_TICKS:
                self.report_buffer()
        elif self._last_reported_ms:
            # Drained since a report said otherwise. A client streaming in real time
            # leaves nothing after each tick and so gets no `buffer` frames.
            self.paused = False
            self.report_buffer()
        else:
            self._ticks_since_report = 0
        return count

    def on_media(self, inbound: np.ndarray, outbound: np.ndarray) -> None:
        """MediaSubscriber: the peer's 20 ms goes to the client."""
        self.frames_out += 1
        self.send_audio(inbound.tobytes())

    def on_call_update(self, snapshot: dict[str, Any]) -> None:
        self.send_json({"type": "call_state", "call": snapshot})

    def on_dtmf(self, digit: str, duration_ms: int) -> None:
        """The peer pressed a key: ``{"type": "dtmf", "digit", "durationMs"}``."""
        self.send_json({"type": "dtmf", "digit": digit, "durationMs": duration_ms})

    def replaced(self) -> None:
        """Another socket took over the call: tell this one and close it."""
        self.error("replaced", "Another media socket took over this call.")
        self.close(CLOSE_REPLACED)

    def on_call_ended(self, snapshot: dict[str, Any]) -> None:
        self.send_json({"type": "ended", "call": snapshot})
        self.close(1000)
