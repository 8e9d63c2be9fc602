"""The call recorder: a runtime subscriber that writes inbound, outbound and mixed WAVs.

Attached when a recorded call becomes active, it receives every tick's frames (the
peer's, and exactly what the peer heard) and appends one frame to each track, silence
included, so the three files stay sample-aligned with the call's timeline.

The loop only copies the two directions into a one-second block; full blocks go to one
writer thread that mixes them, converts all three tracks to 16-bit in one pass and appends
them (one file write per second per file), so a disk that stalls (measured: up to 7 ms for
a second's flush) never holds the media clock. Memory per call is two blocks (256 KB),
however long the call.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import threading
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from django.db import close_old_connections, transaction

from audio import FRAME_SAMPLES, SAMPLE_RATE, Frame
from audio.codecs import scaled_to_pcm16
from audio.wav import WavWriter
from calls.runtime import hooks
from recordings import selectors, services, spool

if TYPE_CHECKING:
    from calls.runtime.runtime import CallRuntime

logger = logging.getLogger(__name__)


def _background_priority() -> None:
    """Let the media loop come first: this thread only has to keep up on average.

    On Linux a thread has its own scheduling policy and niceness: the writer drops any
    real-time policy the process was started with and runs at nice 10, so converting and
    writing a second of audio for hundreds of calls fills the loop's idle time instead of
    delaying its ticks.
    """
    if sys.platform != "linux":
        return
    thread = threading.get_native_id()
    try:
        if os.sched_getscheduler(thread) != os.SCHED_OTHER:
            os.sched_setscheduler(thread, os.SCHED_OTHER, os.sched_param(0))
        os.setpriority(os.PRIO_PROCESS, thread, 10)
    except OSError:
        logger.warning("Could not lower the recording writer's priority")


# One thread does every recorder's file work, in submission order: a call's blocks
# reach its files in order, and open/append/close never run on the event loop.
_spool_writer = ThreadPoolExecutor(
    max_workers=1,
    thread_name_prefix="recording-spool",
    initializer=_background_priority,
)
# Finalisation is queued from here (embedded, where tasks run in-process, the upload
# itself runs here): off the executor the engine's own database work uses.
_finaliser = ThreadPoolExecutor(max_workers=2, thread_name_prefix="recording-final")

_ending: set[Future[None]] = set()

STAGGER_FRAMES = 50  # first blocks end on any of a second's ticks
_stagger = itertools.count(0, 17)  # 17 and 50 are coprime: every offset in turn

# Rows of a block: inbound, outbound (the mix is made from them on the writer thread).
DIRECTIONS = 2


class CallRecorder:
    """Record one call's three tracks into its spool directory, one frame per tick."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._writers: list[WavWriter] = []
        self._failed = False
        self._block = np.empty((DIRECTIONS, SAMPLE_RATE), dtype=np.float32)
        self._filled = 0
        # Calls placed together would fill their blocks on the same tick every second
        # and hand hundreds of them to the writer at once, a burst that held the loop:
        # each recorder's first block is shorter by a different number of frames, so
        # hand-offs are spread over the second.
        self._limit = SAMPLE_RATE - next(_stagger) % STAGGER_FRAMES * FRAME_SAMPLES
        self._spare: list[np.ndarray] = []
        _spool_writer.submit(self._open)

    # ------------------------------------------------------------ on the loop
    def on_media(self, inbound: Frame, outbound: Frame) -> None:
        count = len(inbound)
        if self._filled + count > self._limit:
            self._hand_off()
            self._limit = SAMPLE_RATE
        start, end = self._filled, self._filled + count
        block = self._block
        block[0, start:end] = inbound
        block[1, start:end] = outbound
        self._filled = end

    def _hand_off(self) -> None:
        full, filled = self._block, self._filled
        self._block = (
            self._spare.pop()
            if self._spare
            else np.empty((DIRECTIONS, SAMPLE_RATE), dtype=np.float32)
        )
        self._filled = 0
        _spool_writer.submit(self._append, full, filled)

    def close(self) -> Future[None]:
        """Write what is buffered and the final WAV headers (done when the future is)."""
        full, filled = self._block, self._filled
        self._filled = 0
        _spool_writer.submit(self._append, full, filled)
        return _spool_writer.submit(self._close)

    # ------------------------------------------------------------ on the writer thread
    def _open(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            for kind in spool.KINDS:
                self._writers.append(
                    WavWriter(spool.wav_path(self.directory, kind), SAMPLE_RATE)
                )
        except OSError:
            self._failed = True
            logger.exception("Cannot record into %s", self.directory)

    def _append(self, block: np.ndarray, filled: int) -> None:
        if not self._failed:
            # The three tracks scaled to 16-bit range (the mix is the directions' sum),
            # then clipped and rounded in one pass each: the same samples as
            # float_to_pcm16 of each track, in fewer passes over the second's audio.
            tracks = np.empty((len(spool.KINDS), filled), dtype=np.float32)
            directions = block[:, :filled]
            np.add(directions[0], directions[1], out=tracks[DIRECTIONS])
            np.multiply(directions, 32767, out=tracks[:DIRECTIONS])
            np.multiply(tracks[DIRECTIONS], 32767, out=tracks[DIRECTIONS])
            pcm = scaled_to_pcm16(tracks)
            try:
                for writer, track in zip(self._writers, pcm, strict=True):
                    writer.write_pcm16(track)
            except OSError:
                # Once, not every second: the rest of this call goes unrecorded.
                self._failed = True
                logger.exception("Recording into %s failed", self.directory)
        self._spare.append(block)

    def _close(self) -> None:
        for writer in self._writers:
            try:
                writer.close()
            except OSError:
                logger.exception("Closing %s failed", self.directory)


def wait_for_spool_writes() -> None:
    """Block until every block handed to the writer thread so far is on disk."""
    _spool_writer.submit(lambda: None).result()


def wait_for_recorders(timeout: float = 60.0) -> None:
    """Block until every ended call's files are closed and its finalisation queued.

    (Embedded, where tasks run in-process, until it has run.)
    """
    futures.wait(list(_ending), timeout)


def _on_active(runtime: CallRuntime) -> None:
    if not runtime.snapshot.get("record"):
        return
    runtime.attach_client(
        "recorder", CallRecorder(spool.call_dir(runtime.call_id)), subscriber=True
    )


def _close_and_finalise(recorder: CallRecorder, call_id: str) -> None:
    close_old_connections()
    try:
        recorder.close().result()
        services.recordings_enqueue_finalise(call_id)
    except Exception:
        logger.exception("Finishing the recordings of call %s failed", call_id)
    finally:
        close_old_connections()


def _on_end(runtime: CallRuntime) -> None:
    for recorder in list(runtime.clients_of("recorder")):
        runtime.detach_client(recorder)
        ending = _finaliser.submit(_close_and_finalise, recorder, runtime.call_id)
        _ending.add(ending)
        ending.add_done_callback(_ending.discard)


def _on_reaped(call_pk: int) -> None:
    # The call's process died: its spool files were never closed. The task repairs their
    # headers and stores what was captured up to the crash.
    call_id = selectors.recorded_call_id(call_pk)
    if call_id is not None:
        transaction.on_commit(lambda: services.recordings_enqueue_finalise(call_id))


def register() -> None:
    """Plug the recorder into every call runtime of this process."""
    hooks.register(on_active=_on_active, on_end=_on_end, on_reaped=_on_reaped)
