"""Pure audio primitives for the media path; nothing here imports Django.

A call's internal format is mono float32 at 16 kHz, moved in 20 ms frames.
"""

SAMPLE_RATE = 16_000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
