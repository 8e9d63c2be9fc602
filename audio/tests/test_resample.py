from __future__ import annotations

import numpy as np
import pytest
import soxr

from audio.resample import FrameAssembler, SteadyResampler, StreamResampler


def sine(rate: int, seconds: float, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def stream(resampler: StreamResampler, signal: np.ndarray, chunk: int) -> np.ndarray:
    parts = [
        resampler.process(signal[i : i + chunk]) for i in range(0, len(signal), chunk)
    ]
    return np.concatenate([*parts, resampler.flush()])


def snr_db(reference: np.ndarray, actual: np.ndarray) -> float:
    noise = max(np.sum((actual.astype(np.float64) - reference) ** 2), 1e-30)
    return float(10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / noise))


def test_equal_rates_pass_samples_through_unchanged() -> None:
    signal = sine(16_000, 0.02)
    resampler = StreamResampler(16_000, 16_000)

    np.testing.assert_array_equal(resampler.process(signal), signal)
    assert len(resampler.flush()) == 0


@pytest.mark.parametrize("out_rate", [8_000, 24_000, 44_100])
def test_streaming_in_20ms_chunks_matches_resampling_the_whole_signal(
    out_rate: int,
) -> None:
    signal = sine(16_000, 2.0)

    streamed = stream(StreamResampler(16_000, out_rate), signal, chunk=320)

    whole = soxr.resample(signal, 16_000, out_rate, quality="HQ")
    assert len(streamed) == len(whole)
    assert snr_db(whole, streamed) > 40
    np.testing.assert_allclose(streamed, whole, atol=1e-5)


def test_down_and_up_again_in_chunks_reproduces_the_sine_without_clicks() -> None:
    signal = sine(16_000, 2.0)

    narrow = stream(StreamResampler(16_000, 8_000), signal, chunk=320)
    restored = stream(StreamResampler(8_000, 16_000), narrow, chunk=160)

    assert len(restored) == len(signal)
    # The filters ring at the stream's hard start and end, not at chunk joins.
    middle = slice(800, -800)
    assert snr_db(signal[middle], restored[middle]) > 40
    assert np.abs(restored[middle] - signal[middle]).max() < 0.005


@pytest.mark.parametrize(("in_rate", "out_rate"), [(16_000, 8_000), (44_100, 16_000)])
def test_long_stream_output_length_tracks_the_exact_ratio(
    in_rate: int, out_rate: int
) -> None:
    resampler = StreamResampler(in_rate, out_rate)
    chunk = np.zeros(in_rate // 50, dtype=np.float32)
    ticks = 3000
    produced = 0
    lags = []
    for tick in range(1, ticks + 1):
        produced += len(resampler.process(chunk))
        lags.append(tick * len(chunk) * out_rate / in_rate - produced)

    # soxr releases output in blocks; the lag may swing but must never drift.
    assert min(lags[-1000:]) >= 0 and max(lags[-1000:]) <= max(lags[:1000])
    assert max(lags) < 0.120 * out_rate
    produced += len(resampler.flush())
    assert abs(produced - ticks * len(chunk) * out_rate / in_rate) <= 1


def test_frame_assembler_cuts_uneven_chunks_into_exact_frames() -> None:
    assembler = FrameAssembler(320)
    signal = np.arange(2000, dtype=np.float32)
    frames = []
    pos = 0
    for size in [100, 250, 7, 700, 0, 333, 10]:
        assembler.push(signal[pos : pos + size])
        pos += size
        frames += assembler.pop_frames()

    assert [len(frame) for frame in frames] == [320] * 4
    assert all(frame.dtype == np.float32 for frame in frames)
    np.testing.assert_array_equal(np.concatenate(frames), signal[:1280])
    assert assembler.pending == pos - 1280 == 120
    assert assembler.pop_frames() == []


def test_frame_assembler_frames_do_not_share_memory_with_pushed_chunks() -> None:
    assembler = FrameAssembler(4)
    chunk = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], dtype=np.float32)
    assembler.push(chunk)
    chunk[:] = 0
    assembler.push(chunk[:2])

    frames = assembler.pop_frames()

    np.testing.assert_array_equal(frames, [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 0, 0]])


@pytest.mark.parametrize("in_rate", [8_000, 48_000])
def test_steady_resampler_gives_20ms_for_every_20ms_to_16khz(in_rate: int) -> None:
    """What a SIP leg receives (8 kHz G.711, 48 kHz Opus) reaches 16 kHz in step, where
    soxr's streaming filter would hold 8 kHz back for 100 ms at a time."""
    resampler = SteadyResampler(in_rate, 16_000)
    signal = sine(in_rate, 2.0, hz=1000.0)
    chunk = in_rate // 50
    lengths = [
        len(resampler.process(signal[i : i + chunk]))
        for i in range(0, len(signal), chunk)
    ]

    # The filter's few milliseconds are held back once, at the start; then every
    # 20 ms chunk in is 20 ms out.
    assert 0 < 320 - lengths[0] <= 64
    assert all(n == 320 for n in lengths[1:])


@pytest.mark.parametrize("in_rate", [8_000, 48_000])
def test_steady_resampler_output_is_the_same_tone_at_16khz(in_rate: int) -> None:
    resampler = SteadyResampler(in_rate, 16_000)
    chunk = in_rate // 50
    signal = sine(in_rate, 1.0, hz=1000.0)
    out = np.concatenate(
        [resampler.process(signal[i : i + chunk]) for i in range(0, len(signal), chunk)]
    )

    # Output sample n is input time n / 16 kHz: the same sine, sampled at 16 kHz.
    expected = sine(16_000, 1.0, hz=1000.0)[: len(out)]
    middle = slice(400, len(out) - 400)
    assert snr_db(expected[middle], out[middle]) > 40


def test_steady_resampler_keeps_what_48khz_carries_above_8khz_out() -> None:
    resampler = SteadyResampler(48_000, 16_000)
    tone = sine(48_000, 1.0, hz=12_000.0)  # would fold to 4 kHz
    out = np.concatenate(
        [resampler.process(tone[i : i + 960]) for i in range(0, len(tone), 960)]
    )

    level = np.sqrt(np.mean(out[400:-400].astype(np.float64) ** 2))
    assert 20 * np.log10(level / np.sqrt(np.mean(tone.astype(np.float64) ** 2))) < -40


@pytest.mark.parametrize(
    ("in_rate", "out_rate"),
    [(8_000, 16_000), (48_000, 16_000), (16_000, 8_000), (16_000, 24_000)],
)
def test_steady_resampler_output_does_not_depend_on_how_the_input_is_cut(
    in_rate: int, out_rate: int
) -> None:
    signal = sine(in_rate, 1.0, hz=700.0)
    frames = SteadyResampler(in_rate, out_rate)
    by_frame = np.concatenate(
        [
            frames.process(signal[i : i + in_rate // 50])
            for i in range(0, len(signal), in_rate // 50)
        ]
    )
    ragged = SteadyResampler(in_rate, out_rate)
    cuts = np.cumsum([0] + [37, 101, 1, 480, 13] * 200)
    cuts = cuts[cuts < len(signal)]
    by_ragged = np.concatenate(
        [
            ragged.process(signal[a:b])
            for a, b in zip(cuts, [*cuts[1:], len(signal)], strict=True)
        ]
    )

    assert len(by_ragged) == len(by_frame)
    np.testing.assert_allclose(by_ragged, by_frame, atol=1e-6)


@pytest.mark.parametrize(
    ("in_rate", "out_rate"), [(8_000, 16_000), (48_000, 16_000), (16_000, 24_000)]
)
def test_steady_resampler_flush_releases_what_the_filter_held_back(
    in_rate: int, out_rate: int
) -> None:
    resampler = SteadyResampler(in_rate, out_rate)
    signal = sine(in_rate, 0.5, hz=500.0)
    body = np.concatenate(
        [
            resampler.process(signal[i : i + in_rate // 50])
            for i in range(0, len(signal), in_rate // 50)
        ]
    )
    tail = resampler.flush()

    out = np.concatenate([body, tail])
    assert len(out) == len(signal) * out_rate // in_rate
    # The tail continues the tone up to its last few samples, where it meets the
    # silence run through the filter to release it.
    expected = sine(out_rate, 0.5, hz=500.0)
    assert len(tail) > 0
    np.testing.assert_allclose(tail[:-8], expected[len(body) : len(out) - 8], atol=0.01)
