"""The carrier tests' measure of how much of a signal a recording or an echo carries."""

from __future__ import annotations

import numpy as np

from calls.tests.media_client import chirp
from tests.carriers.conftest import heard_fraction

SIGNAL = chirp(4.0, amplitude=0.4)  # forty 100 ms segments
PAD = np.zeros(5000, dtype=np.float32)


def test_every_segment_of_an_intact_copy_is_heard() -> None:
    assert heard_fraction(np.concatenate((PAD, SIGNAL, PAD)), SIGNAL) == 1.0


def test_a_dropped_backlog_costs_only_what_was_dropped() -> None:
    """300 ms cut out at 1.5 s (a stall's backlog dropped): what follows arrives 300 ms
    early and is still heard; the three segments cut are not."""
    cut = np.concatenate((PAD, SIGNAL[:24_000], SIGNAL[28_800:], PAD))
    noise = np.random.default_rng(0).normal(0, 0.01, len(cut))
    assert heard_fraction(cut + noise, SIGNAL) == 37 / 40


def test_silence_noise_and_the_wrong_order_are_not_heard() -> None:
    noise = np.random.default_rng(1).normal(0, 0.3, len(SIGNAL) + 2 * len(PAD))
    assert heard_fraction(np.zeros(len(SIGNAL) + 2 * len(PAD)), SIGNAL) == 0.0
    assert heard_fraction(noise, SIGNAL) == 0.0
    half = len(SIGNAL) // 2
    swapped = np.concatenate((PAD, SIGNAL[half:], SIGNAL[:half], PAD))
    assert heard_fraction(swapped, SIGNAL) == 0.5
