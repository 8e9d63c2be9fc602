"""The call recorders: every recorded call of a process, recorded together.

A recorded call's recorder is a runtime subscriber; each tick it only notes the tick's
two frames (the peer's, and exactly what the peer heard) with the process's
``RecordingBank``. After each frame of the media clock the bank copies every call's noted
frames into one shared block (a row per call, 20 ms per frame, the two directions
interleaved as a 2-channel WAV stores them) in a few array operations for all calls at
once. Every 50 frames (one second) the whole block goes to one writer thread, which
converts all calls' second to 16-bit together and appends each call's second to its
spool file (``spool.AUDIO``) in a single write; the finalisation splits that file into
the inbound, outbound and mixed WAVs.

Every tick of a recorded call reaches its file, silence included, so the tracks stay
sample-aligned with the call's timeline; a tick a call missed inside its second is
written as silence. The loop never waits for the disk (a stalled flush was measured at
up to 7 ms). Memory is two blocks of 128 KB per row, rows being the most calls recorded
at once, however long the calls; a process killed mid-call leaves its files playable up
to the last second handed to the writer.
"""

from __future__ import annotations

import heapq
import logging
import weakref
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from django.db import close_old_connections, transaction

from audio import FRAME_SAMPLES, SAMPLE_RATE, Frame
from audio.codecs import scaled_to_pcm16
from audio.wav import WavWriter
from calls.runtime import hooks
from config import priority
from recordings import selectors, services, spool

if TYPE_CHECKING:
    from calls.runtime.clock import MediaClock
    from calls.runtime.runtime import CallRuntime

logger = logging.getLogger(__name__)


# One thread does every recorder's file work, in submission order: a call's seconds
# reach its file in order, and open/append/close never run on the event loop.
_spool_writer = ThreadPoolExecutor(
    max_workers=1,
    thread_name_prefix="recording-spool",
    initializer=priority.background,
)
# Finalisation is queued from here (embedded, where tasks run in-process, the upload
# itself runs here): off the executor the engine's own database work uses.
_finaliser = ThreadPoolExecutor(max_workers=2, thread_name_prefix="recording-final")

_ending: set[Future[None]] = set()

BLOCK_FRAMES = SAMPLE_RATE // FRAME_SAMPLES  # one second of 20 ms frames
BLOCK_SAMPLES = BLOCK_FRAMES * FRAME_SAMPLES
CHANNELS = 2  # inbound, outbound
FIRST_ROWS = 64  # rows double when more calls are recorded at once
CONVERT_ROWS = 8  # rows converted to 16-bit per pass: 1 MB of float32, cache-sized
PCM16_SCALE = 32767

Block = npt.NDArray[np.float32]  # (rows, BLOCK_SAMPLES, CHANNELS)
Ticked = npt.NDArray[np.bool_]  # (rows, BLOCK_FRAMES): which frames each row received


class CallRecorder:
    """One recorded call: a row of its process's bank and a spool file."""

    def __init__(self, bank: RecordingBank, row: int, directory: Path) -> None:
        self.bank = bank
        self.row = row
        self.directory = directory
        self._note = bank.note
        self._writer: WavWriter | None = None
        self._failed = False
        self.closed = False

    # ------------------------------------------------------------ on the loop
    def on_media(self, inbound: Frame, outbound: Frame) -> None:
        # The frames stay valid until this call's next tick, after the bank's copy.
        self._note((self.row, inbound, outbound))

    def close(self) -> Future[None]:
        """Stop recording: the file gets what is buffered and its final header (done
        when the future is). Call it on the loop that ticks the call."""
        return self.bank.close(self)

    # ------------------------------------------------------------ on the writer thread
    def _open(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._writer = WavWriter(
                spool.audio_path(self.directory), SAMPLE_RATE, channels=CHANNELS
            )
        except OSError:
            self._failed = True
            logger.exception("Cannot record into %s", self.directory)

    def _append(self, pcm: npt.NDArray[np.int16]) -> None:
        if self._failed or self._writer is None:
            return
        try:
            self._writer.write_pcm16(pcm)
        except OSError:
            # Once, not every second: the rest of this call goes unrecorded.
            self._failed = True
            logger.exception("Recording into %s failed", self.directory)

    def _close(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except OSError:
                logger.exception("Closing %s failed", self.directory)


class RecordingBank:
    """Every recorder of one media clock: their current second in one shared block.

    Only the loop that ticks the calls touches the current block; a full block belongs
    to the writer thread until it comes back as a spare.
    """

    def __init__(self) -> None:
        self._rows = FIRST_ROWS
        self._block, self._ticked = self._new_block()
        self._spares: list[tuple[Block, Ticked]] = []
        self._owners: list[CallRecorder | None] = [None] * self._rows
        self._free = list(range(self._rows))  # a heap: the lowest free row first
        self._pending: list[tuple[int, Frame, Frame]] = []
        self.note = self._pending.append
        self._frame = 0  # the current frame's column in the block
        self.recording = 0

    def _new_block(self) -> tuple[Block, Ticked]:
        # Zeroed pages cost no memory until a row is first written.
        return (
            np.zeros((self._rows, BLOCK_SAMPLES, CHANNELS), dtype=np.float32),
            np.zeros((self._rows, BLOCK_FRAMES), dtype=np.bool_),
        )

    def open(self, directory: Path) -> CallRecorder:
        """Start recording a call into ``directory`` (its spool)."""
        if not self._free:
            self._grow()
        row = heapq.heappop(self._free)
        recorder = CallRecorder(self, row, directory)
        self._owners[row] = recorder
        self.recording += 1
        _spool_writer.submit(recorder._open)
        return recorder

    def _grow(self) -> None:
        old = self._rows
        self._rows = old * 2
        block, ticked = self._new_block()
        block[:old] = self._block
        ticked[:old] = self._ticked
        self._block, self._ticked = block, ticked
        self._spares.clear()  # the wrong size now; blocks in flight are dropped too
        self._owners.extend([None] * old)
        for row in range(old, self._rows):
            heapq.heappush(self._free, row)

    # ------------------------------------------------------------ each frame
    def flush(self) -> None:
        """Copy the frames noted since the last flush into the current frame's column."""
        pending = self._pending
        if not pending:
            return
        rows, inbound, outbound = zip(*pending, strict=True)
        pending.clear()
        count = len(rows)
        index = np.fromiter(rows, dtype=np.intp, count=count)
        start = self._frame * FRAME_SAMPLES
        both = np.concatenate(inbound + outbound)
        if len(both) == CHANNELS * count * FRAME_SAMPLES:
            frames = both.reshape(CHANNELS, count, FRAME_SAMPLES)
        else:
            # A frame of another length: each copied on its own, cut or padded to 20 ms.
            frames = np.zeros((CHANNELS, count, FRAME_SAMPLES), dtype=np.float32)
            for channel, direction in enumerate((inbound, outbound)):
                for at, frame in enumerate(direction):
                    length = min(len(frame), FRAME_SAMPLES)
                    frames[channel, at, :length] = frame[:length]
        end = start + FRAME_SAMPLES
        block = self._block
        block[index, start:end, 0] = frames[0]
        block[index, start:end, 1] = frames[1]
        self._ticked[index, self._frame] = True

    def frame_done(self) -> None:
        """The clock finished a frame: copy it, and hand over a full second."""
        self.flush()
        self._frame += 1
        if self._frame == BLOCK_FRAMES:
            self._frame = 0
            if self.recording:
                self._hand_off()

    def _hand_off(self) -> None:
        block, ticked = self._block, self._ticked
        owners = list(self._owners)
        while self._spares:
            spare = self._spares.pop()
            if len(spare[0]) == self._rows:
                self._block, self._ticked = spare
                break
        else:
            self._block, self._ticked = self._new_block()
        _spool_writer.submit(self._write, block, ticked, owners)

    def close(self, recorder: CallRecorder) -> Future[None]:
        if recorder.closed:
            return _spool_writer.submit(lambda: None)
        recorder.closed = True
        self.flush()
        row = recorder.row
        ticked = self._ticked[row]
        if ticked.any():
            first, last = _span(ticked)
            part = self._block[row, first * FRAME_SAMPLES : last * FRAME_SAMPLES]
            part = np.multiply(part, PCM16_SCALE)
            pcm = _silence_missed(scaled_to_pcm16(part), ticked[first:last])
            ticked.fill(False)
            _spool_writer.submit(recorder._append, pcm)
        self._owners[row] = None
        heapq.heappush(self._free, row)
        self.recording -= 1
        return _spool_writer.submit(recorder._close)

    # ------------------------------------------------------------ on the writer thread
    def _write(
        self, block: Block, ticked: Ticked, owners: list[CallRecorder | None]
    ) -> None:
        used = np.asarray(ticked.any(axis=1))
        rows = np.flatnonzero(used)
        if len(rows):
            scratch = np.empty((CONVERT_ROWS, BLOCK_SAMPLES, CHANNELS), np.float32)
            for low in range(0, int(rows[-1]) + 1, CONVERT_ROWS):
                high = min(low + CONVERT_ROWS, len(block))
                if not used[low:high].any():
                    continue
                scaled = np.multiply(
                    block[low:high], PCM16_SCALE, out=scratch[: high - low]
                )
                pcm = scaled_to_pcm16(scaled)
                for row in range(low, high):
                    owner = owners[row]
                    if not used[row] or owner is None:
                        continue
                    first, last = _span(ticked[row])
                    owner._append(
                        _silence_missed(
                            pcm[
                                row - low, first * FRAME_SAMPLES : last * FRAME_SAMPLES
                            ],
                            ticked[row, first:last],
                        )
                    )
        ticked.fill(False)
        self._spares.append((block, ticked))


def _span(ticked: Ticked) -> tuple[int, int]:
    """The first frame a row received and the one after its last."""
    first = int(ticked.argmax())
    last = len(ticked) - int(ticked[::-1].argmax())
    return first, last


def _silence_missed(
    pcm: npt.NDArray[np.int16], ticked: Ticked
) -> npt.NDArray[np.int16]:
    """Zero the frames of a row's span that it never received (stale audio otherwise)."""
    if ticked.all():
        return pcm
    pcm = pcm.copy()
    for frame in np.flatnonzero(~ticked):
        pcm[frame * FRAME_SAMPLES : (frame + 1) * FRAME_SAMPLES] = 0
    return pcm


_banks: weakref.WeakKeyDictionary[MediaClock, RecordingBank] = (
    weakref.WeakKeyDictionary()
)


def bank_for(clock: MediaClock) -> RecordingBank:
    """The bank of the calls this clock ticks (made the first time a call records)."""
    bank = _banks.get(clock)
    if bank is None:
        bank = _banks[clock] = RecordingBank()
        clock.frame_listeners.append(bank.frame_done)
    return bank


def wait_for_spool_writes() -> None:
    """Block until every second handed to the writer thread so far is on disk."""
    _spool_writer.submit(lambda: None).result()


def wait_for_recorders(timeout: float = 60.0) -> None:
    """Block until every ended call's files are closed and its finalisation queued.

    (Embedded, where tasks run in-process, until it has run.)
    """
    futures.wait(list(_ending), timeout)


def _on_active(runtime: CallRuntime) -> None:
    if not runtime.snapshot.get("record"):
        return
    recorder = bank_for(runtime.engine.clock).open(spool.call_dir(runtime.call_id))
    runtime.attach_client("recorder", recorder, subscriber=True)


def _finalise_when_closed(closed: Future[None], call_id: str) -> None:
    close_old_connections()
    try:
        closed.result()
        services.recordings_enqueue_finalise(call_id)
    except Exception:
        logger.exception("Finishing the recordings of call %s failed", call_id)
    finally:
        close_old_connections()


def _on_end(runtime: CallRuntime) -> None:
    for recorder in list(runtime.clients_of("recorder")):
        runtime.detach_client(recorder)
        ending = _finaliser.submit(
            _finalise_when_closed, recorder.close(), runtime.call_id
        )
        _ending.add(ending)
        ending.add_done_callback(_ending.discard)


def _on_reaped(call_pk: int) -> None:
    # The call's process died: its spool file was never closed. The task repairs its
    # header and stores what was captured up to the crash.
    call_id = selectors.recorded_call_id(call_pk)
    if call_id is not None:
        transaction.on_commit(lambda: services.recordings_enqueue_finalise(call_id))


def register() -> None:
    """Plug the recorder into every call runtime of this process."""
    hooks.register(on_active=_on_active, on_end=_on_end, on_reaped=_on_reaped)
