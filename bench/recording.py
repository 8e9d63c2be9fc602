"""Recording benchmark: what recording N calls costs a process, on its own.

Drives the process's recording bank (``recordings/recorder.py``) exactly as the media
clock does: every 20 ms each of N calls notes its two 20 ms frames (noise, different per
call, in buffers each call reuses as a runtime does) and the bank copies the frame; once a second its writer thread
converts every call's second and appends it to that call's spool file on the real disk
(``--dir``, default a temporary directory under ``var/``). Pinned to one core, paced at
real time; prints the CPU of the loop's part (noting and copying) and of the writer
thread's (converting and writing), as a share of one core, and per call.

    .venv/bin/python bench/recording.py                 # 100, 200, 400 and 800 calls
    .venv/bin/python bench/recording.py --calls 400 --seconds 20

Checks at the end that every file holds exactly the audio its call noted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FRAME = 320
FRAMES_PER_S = 50
SOURCE_FRAMES = 100  # two seconds of distinct frames, repeated


def setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    import django

    django.setup()


def measure(calls: int, seconds: float, directory: Path) -> dict[str, float]:
    import soundfile

    from audio.codecs import float_to_pcm16
    from recordings import recorder as recording
    from recordings import spool

    rng = np.random.default_rng(calls)
    source = (rng.standard_normal((calls, SOURCE_FRAMES, FRAME)) * 0.2).astype(
        np.float32
    )
    np.clip(source, -1, 1, out=source)
    bank = recording.RecordingBank()
    recorders = [bank.open(directory / f"call{i}") for i in range(calls)]
    writer_cpu = [0.0]
    write = bank._write

    def timed_write(
        block: recording.Block,
        ticked: recording.Ticked,
        owners: list[recording.CallRecorder | None],
    ) -> None:
        started = time.thread_time()
        write(block, ticked, owners)
        writer_cpu[0] += time.thread_time() - started

    bank._write = timed_write  # type: ignore[method-assign]
    recording.wait_for_spool_writes()
    # Like a call's runtime, each call has its frame buffers, filled anew every tick
    # (untimed: the runtime has made its frames before the recorder sees them).
    inbound = np.empty((calls, FRAME), dtype=np.float32)
    outbound = np.empty((calls, FRAME), dtype=np.float32)
    pairs = list(zip(recorders, inbound, outbound, strict=True))
    frames = int(seconds * FRAMES_PER_S)
    loop_cpu = 0.0
    deadline = time.perf_counter()
    for frame in range(frames):
        deadline += 1 / FRAMES_PER_S
        at = frame % SOURCE_FRAMES
        inbound[:] = source[:, at]
        outbound[:] = source[:, at - 1]
        started = time.thread_time()
        for recorder, heard, said in pairs:
            recorder.on_media(heard, said)
        bank.frame_done()
        loop_cpu += time.thread_time() - started
        pause = deadline - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    recording.wait_for_spool_writes()
    for recorder in recorders:
        recorder.close().result()
    # Every file is exactly its call's audio: inbound the frames noted, outbound the
    # frame before each.
    for index in (0, calls // 2, calls - 1):
        both, _ = soundfile.read(
            spool.audio_path(recorders[index].directory), dtype="int16"
        )
        order = np.arange(frames) % SOURCE_FRAMES
        expected = float_to_pcm16(source[index, order].reshape(-1))
        if len(both) != frames * FRAME or not np.array_equal(both[:, 0], expected):
            raise SystemExit(f"call {index}'s recording is not what it noted")
        previous = float_to_pcm16(source[index, order - 1].reshape(-1))
        if not np.array_equal(both[:, 1], previous):
            raise SystemExit(f"call {index}'s outbound track is not what it noted")
    return {
        "loop": 100 * loop_cpu / seconds,
        "writer": 100 * writer_cpu[0] / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, nargs="+", default=[100, 200, 400, 800])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--core", type=int, default=0)
    parser.add_argument(
        "--dir", type=Path, default=ROOT / "var", help="where the spool files go"
    )
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.core})  # the writer thread inherits it
    setup()
    args.dir.mkdir(parents=True, exist_ok=True)
    print(
        f"recording N calls for {args.seconds:g} s each, pinned to core {args.core}; "
        "CPU as % of one core"
    )
    print(
        "| calls | loop (note + copy) | writer (convert + write) | total | per call |"
    )
    print("|---:|---:|---:|---:|---:|")
    for calls in args.calls:
        directory = Path(tempfile.mkdtemp(prefix="bench-recording-", dir=args.dir))
        try:
            result = measure(calls, args.seconds, directory)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        total = result["loop"] + result["writer"]
        print(
            f"| {calls} | {result['loop']:.2f} % | {result['writer']:.2f} % "
            f"| {total:.2f} % | {total / calls:.4f} % |",
            flush=True,
        )


if __name__ == "__main__":
    main()
