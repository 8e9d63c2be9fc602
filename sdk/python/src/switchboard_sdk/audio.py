"""The media socket's audio format, without numpy: mono Float32LE PCM at 16 kHz.

``to_f32le`` packs whatever you have (``bytes`` already in the format, an
``array.array('f')``, a float32 numpy array, any sequence of floats) and
``from_f32le`` unpacks a frame into an ``array.array('f')`` of samples.
"""

from __future__ import annotations

import array
import math
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeAlias, cast

SAMPLE_RATE = 16000
BYTES_PER_SAMPLE = 4
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000  # 320
FRAME_BYTES = FRAME_SAMPLES * BYTES_PER_SAMPLE  # 1280
MAX_FRAME_SAMPLES = SAMPLE_RATE  # the server takes at most 1 s per binary frame

_LITTLE = sys.byteorder == "little"

if TYPE_CHECKING:
    # Float32LE bytes, or samples as floats (array('f'), a numpy array, a list…).
    Samples: TypeAlias = bytes | bytearray | memoryview | Iterable[float]


def to_f32le(samples: Samples) -> bytes:
    """Float32LE bytes of ``samples`` (bytes-like input is taken as already packed)."""
    if isinstance(samples, bytes | bytearray):
        return bytes(samples)
    try:
        view = memoryview(cast(Any, samples))
    except TypeError:
        packed = array.array("f", samples)
    else:
        if view.format in ("f", "<f") and view.itemsize == 4:
            if view.format == "<f" or _LITTLE:
                return view.tobytes()
            packed = array.array("f", view.tobytes())
        elif view.format in ("B", "b", "c"):
            return view.tobytes()
        else:
            packed = array.array("f", view.tolist())
    if not _LITTLE:
        packed.byteswap()
    return packed.tobytes()


def from_f32le(data: bytes | bytearray | memoryview) -> array.array[float]:
    """The samples of a Float32LE frame."""
    samples = array.array("f")
    samples.frombytes(data)
    if not _LITTLE:
        samples.byteswap()
    return samples


def duration_ms(data: bytes | bytearray | memoryview) -> float:
    """How long a Float32LE frame plays, in milliseconds."""
    return len(data) / BYTES_PER_SAMPLE / SAMPLE_RATE * 1000


def tone(
    seconds: float, frequency: float = 440.0, *, amplitude: float = 0.3
) -> array.array[float]:
    """A sine tone at 16 kHz."""
    step = 2 * math.pi * frequency / SAMPLE_RATE
    return array.array(
        "f", (amplitude * math.sin(step * n) for n in range(int(seconds * SAMPLE_RATE)))
    )


def chirp(
    seconds: float, start: float = 300.0, end: float = 3000.0, *, amplitude: float = 0.5
) -> array.array[float]:
    """A rising sweep at 16 kHz: easy to find again in what comes back."""
    rate = (end - start) / (2 * seconds)
    return array.array(
        "f",
        (
            amplitude * math.cos(2 * math.pi * (start * t + rate * t * t))
            for t in (n / SAMPLE_RATE for n in range(int(seconds * SAMPLE_RATE)))
        ),
    )
