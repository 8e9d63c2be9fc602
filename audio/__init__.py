"""Pure audio primitives for the media path; nothing here imports Django.

A call's internal format is mono float32 at 16 kHz, moved in 20 ms frames. Assets,
recordings, streams and carriers all convert, resample, buffer and write audio with the
modules of this package: ``codecs`` (Float32, PCM16, G.711 μ-law and A-law), ``resample``
(streaming soxr), ``playout`` (the bounded outbound buffer), ``jitter`` (reordering
network packets), ``wav`` (crash-safe incremental WAV files).
"""

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000

# One frame (or any run) of the internal format.
Frame = npt.NDArray[np.float32]
