"""Measure the jitter buffer's cost per 20 ms frame: µs per put + read_into pair.

Each scenario streams 16 kHz float32 audio through one ``audio.jitter.JitterBuffer``
in a single thread (the lock is taken but never contended) and reports the best of
several runs, so the figure is the code's own cost, not the machine's noise.

Run: .venv/bin/python bench/audio_jitter.py   [--frames 50000] [--runs 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audio import FRAME_SAMPLES
from audio.jitter import JitterBuffer
from audio.playout import PlayoutBuffer


def packet_order(count: int, *, reorder: bool, loss: float) -> list[int]:
    """Return packet indices in arrival order: swapped pairs and/or gaps."""
    rng = np.random.default_rng(1)
    order = list(range(count))
    if reorder:
        for i in range(1, count - 1, 4):
            order[i], order[i + 1] = order[i + 1], order[i]
    if loss:
        order = [i for i in order if rng.random() >= loss]
    return order


def run_jitter(frames: int, packet: int, *, reorder: bool, loss: float) -> float:
    """Return µs per 20 ms frame of puts plus one read, for one run."""
    count = frames * FRAME_SAMPLES // packet + 1
    signal = np.random.default_rng(0).uniform(-0.5, 0.5, count * packet)
    chunks = signal.astype(np.float32).reshape(count, packet)
    order = packet_order(count, reorder=reorder, loss=loss)
    buffer = JitterBuffer(target_ms=60, max_ms=200)
    out = np.empty(FRAME_SAMPLES, dtype=np.float32)
    put, read = buffer.put, buffer.read_into
    # Packets arrive at the rate they are played, as on a network.
    puts_per_read = FRAME_SAMPLES / packet
    due = 0.0
    arrivals = iter(order)
    start = time.perf_counter()
    for _ in range(frames):
        due += puts_per_read
        while due >= 1:
            due -= 1
            index = next(arrivals, None)
            if index is not None:
                put(index & 0xFFFF, index * packet, chunks[index])
        read(out)
    elapsed = time.perf_counter() - start
    assert buffer.underruns <= 1, "the scenario should not starve the reader"
    return elapsed / frames * 1e6


def run_playout(frames: int) -> float:
    """Return µs per write + read_into pair of the plain playout ring, for scale."""
    chunks = np.random.default_rng(0).uniform(-0.5, 0.5, (frames, FRAME_SAMPLES))
    chunks = chunks.astype(np.float32)
    buffer = PlayoutBuffer(FRAME_SAMPLES * 10)
    out = np.empty(FRAME_SAMPLES, dtype=np.float32)
    start = time.perf_counter()
    for chunk in chunks:
        buffer.write(chunk)
        buffer.read_into(out)
    return (time.perf_counter() - start) / frames * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    scenarios = [
        ("20 ms packets, in order", 320, False, 0.0),
        ("20 ms packets, 1 in 4 swapped", 320, True, 0.0),
        ("20 ms packets, 5 % lost (concealed)", 320, False, 0.05),
        ("10 ms packets (2 puts per read)", 160, False, 0.0),
        ("30 ms packets (2 puts per 3 reads)", 480, True, 0.0),
    ]
    print(f"µs per 20 ms frame (put(s) + read_into), best of {args.runs} runs")
    print(f"{'scenario':<40} {'µs/frame':>9}")
    for name, packet, reorder, loss in scenarios:
        best = min(
            run_jitter(args.frames, packet, reorder=reorder, loss=loss)
            for _ in range(args.runs)
        )
        print(f"{name:<40} {best:9.2f}")
    best = min(run_playout(args.frames) for _ in range(args.runs))
    print(f"{'reference: PlayoutBuffer write + read':<40} {best:9.2f}")


if __name__ == "__main__":
    main()
