"""A recording's waveform: the lowest and highest sample of each of a few hundred spans.

Read in blocks, so a four-hour WAV (230 M samples) never sits in memory whole. Peaks are
stored as ``[low, high]`` pairs scaled to -127…127 (int8 range): 400 pairs are about
3.5 kB of JSON, enough to draw a bar per pixel column of a row-sized player.
"""

from __future__ import annotations

from typing import IO

import numpy as np
import numpy.typing as npt
import soundfile

BUCKETS = 400
PEAK = 127
# 4 s of 16 kHz audio per read: a few hundred kB of int16 at a time.
BLOCK_FRAMES = 1 << 16

Waveform = list[list[int]]


def waveform_of(source: str | IO[bytes], buckets: int = BUCKETS) -> Waveform:
    """Return ``[low, high]`` per span of a WAV (fewer spans than samples never).

    A file with no samples has an empty waveform. Several channels are folded into one
    (the lowest and highest sample across them).
    """
    with soundfile.SoundFile(source) as wav:
        total = wav.frames
        if total <= 0:
            return []
        count = min(buckets, total)
        # Span i covers samples edges[i]:edges[i + 1]; every span is at least one long.
        edges = np.arange(count + 1, dtype=np.int64) * total // count
        low = np.full(count, np.iinfo(np.int16).max, dtype=np.int16)
        high = np.full(count, np.iinfo(np.int16).min, dtype=np.int16)
        start = 0
        while start < total:
            block = wav.read(BLOCK_FRAMES, dtype="int16", always_2d=True)
            if not len(block):
                break  # the header promised more than the file holds
            _fold(block, start, edges, low, high)
            start += len(block)
    covered = high >= low  # spans the file never reached (truncated) stay out
    scale = PEAK / np.iinfo(np.int16).max
    lows = np.clip(np.round(low[covered] * scale), -PEAK, PEAK).astype(int)
    highs = np.clip(np.round(high[covered] * scale), -PEAK, PEAK).astype(int)
    return [[int(lo), int(hi)] for lo, hi in zip(lows, highs, strict=True)]


def _fold(
    block: npt.NDArray[np.int16],
    start: int,
    edges: npt.NDArray[np.int64],
    low: npt.NDArray[np.int16],
    high: npt.NDArray[np.int16],
) -> None:
    """Fold one block (starting at sample ``start``) into the spans' lows and highs."""
    end = start + len(block)
    first = int(np.searchsorted(edges, start, side="right")) - 1
    last = int(np.searchsorted(edges, end - 1, side="right")) - 1
    # Where each span touched by this block begins, relative to the block.
    offsets = np.maximum(edges[first : last + 1] - start, 0)
    block_low = np.minimum.reduceat(block.min(axis=1), offsets)
    block_high = np.maximum.reduceat(block.max(axis=1), offsets)
    np.minimum(low[first : last + 1], block_low, out=low[first : last + 1])
    np.maximum(high[first : last + 1], block_high, out=high[first : last + 1])
