"""Waveforms: computed from the audio in blocks, stored at finalisation, backfilled."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command

from conftest import Tenant
from recordings import services, waveform
from recordings.models import Recording
from recordings.tasks import finalise_recordings
from recordings.tests.conftest import ended_call, recorded_call, spool_audio, tone

RATE = 16_000


def wav_bytes(samples: np.ndarray) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, samples, RATE, format="WAV", subtype="PCM_16")
    return out.getvalue()


def wav_file(tmp_path: Path, samples: np.ndarray) -> str:
    path = tmp_path / "audio.wav"
    path.write_bytes(wav_bytes(samples))
    return str(path)


def silence_tone_silence() -> np.ndarray:
    """1 s of silence, 1 s of a full-scale 440 Hz tone, 1 s of silence."""
    return np.concatenate(
        [np.zeros(RATE), tone(1.0, amplitude=1.0), np.zeros(RATE)]
    ).astype(np.float32)


# ---------------------------------------------------------------- the computation


def test_a_tone_between_silences_is_high_in_the_middle_third_only(
    tmp_path: Path,
) -> None:
    peaks = waveform.waveform_of(wav_file(tmp_path, silence_tone_silence()))
    assert len(peaks) == 400
    # 3 s in 400 spans of 120 samples: the tone is samples 16000–31999, that is spans
    # 133 (which it starts inside) to 266 (which it ends inside).
    for low, high in peaks[:133] + peaks[267:]:
        assert abs(low) <= 1 and abs(high) <= 1, (low, high)
    for low, high in peaks[134:266]:
        assert low <= -120 and high >= 120, (low, high)
    assert all(-127 <= v <= 127 for pair in peaks for v in pair)


def test_reading_in_small_blocks_gives_the_same_waveform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(7)
    samples = (rng.standard_normal(RATE * 2) * 0.2).astype(np.float32)
    path = wav_file(tmp_path, samples)
    whole = waveform.waveform_of(path)
    # Blocks that never line up with the spans' edges.
    monkeypatch.setattr(waveform, "BLOCK_FRAMES", 997)
    assert waveform.waveform_of(path) == whole
    # And the result is the plain minimum and maximum of each span.
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    first_span = pcm[:80]
    scale = 127 / 32767
    assert whole[0] == [
        round(first_span.min() * scale),
        round(first_span.max() * scale),
    ]


def test_audio_shorter_than_the_spans_gets_one_span_per_sample(tmp_path: Path) -> None:
    samples = np.array([0.5, -0.5, 0.0], dtype=np.float32)
    assert waveform.waveform_of(wav_file(tmp_path, samples)) == [
        [64, 64],
        [-64, -64],
        [0, 0],
    ]


def test_a_wav_without_samples_has_an_empty_waveform(tmp_path: Path) -> None:
    assert waveform.waveform_of(wav_file(tmp_path, np.zeros(0))) == []


# ---------------------------------------------------------------- finalisation


@pytest.mark.django_db(transaction=True)
def test_the_finalise_task_stores_each_recordings_waveform(tenant: Tenant) -> None:
    call = ended_call(tenant.test)
    # The peer speaks in the second half; what it heard was silence throughout.
    inbound = np.concatenate([np.zeros(RATE), tone(1.0, amplitude=0.5)])
    spool_audio(call, inbound.astype(np.float32), np.zeros(2 * RATE, np.float32))
    stored = finalise_recordings.delay(str(call.public_id)).get(
        disable_sync_subtasks=False
    )
    assert stored == 3
    recordings = {r.kind: r for r in Recording.objects.filter(call=call)}
    heard = recordings["inbound"].waveform
    assert heard is not None and len(heard) == 400
    assert all(high <= 1 for _, high in heard[:195])
    assert all(high >= 60 and low <= -60 for low, high in heard[205:])
    assert recordings["mixed"].waveform == heard
    assert recordings["outbound"].waveform == [[0, 0]] * 400


@pytest.mark.django_db(transaction=True)
def test_a_waveform_that_cannot_be_computed_does_not_cost_the_recording(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no numpy today")

    monkeypatch.setattr(services, "waveform_of", broken)
    call = recorded_call(tenant.test)
    recordings = list(Recording.objects.filter(call=call))
    assert len(recordings) == 3
    assert all(r.waveform is None for r in recordings)  # left to backfill_waveforms


# ---------------------------------------------------------------- backfill


@pytest.mark.django_db(transaction=True)
def test_backfill_computes_the_waveforms_older_recordings_lack(
    tenant: Tenant,
) -> None:
    call = recorded_call(tenant.test, seconds=2.0)
    computed = {r.kind: r.waveform for r in Recording.objects.filter(call=call)}
    Recording.objects.update(waveform=None)  # as finalised before waveforms existed
    out = io.StringIO()
    call_command("backfill_waveforms", "--batch-size", "2", stdout=out)
    assert "  2/3 recordings" in out.getvalue()
    assert "  3/3 recordings" in out.getvalue()
    assert "Computed 3 waveform(s)." in out.getvalue()
    # From the stored file: the same as finalisation computed from the spool.
    assert {r.kind: r.waveform for r in Recording.objects.all()} == computed
    mixed = computed["mixed"]
    assert mixed is not None and len(mixed) == 400 and mixed[0][1] > 30

    again = io.StringIO()
    call_command("backfill_waveforms", stdout=again)
    assert "Computed 0 waveform(s)." in again.getvalue()


@pytest.mark.django_db(transaction=True)
def test_backfill_gives_a_recording_without_audio_an_empty_waveform(
    tenant: Tenant,
) -> None:
    call = recorded_call(tenant.test)
    recordings = {r.kind: r for r in Recording.objects.filter(call=call)}
    Recording.objects.update(waveform=None)
    # One file holds a header and no samples; another is gone from storage.
    emptied = recordings["inbound"].file_name
    default_storage.delete(emptied)
    assert default_storage.save(emptied, ContentFile(wav_bytes(np.zeros(0)))) == emptied
    default_storage.delete(recordings["outbound"].file_name)

    out = io.StringIO()
    call_command("backfill_waveforms", stdout=out)
    assert "Computed 3 waveform(s)." in out.getvalue()
    after = {r.kind: r.waveform for r in Recording.objects.all()}
    assert after["inbound"] == [] and after["outbound"] == []
    assert after["mixed"] is not None and len(after["mixed"]) == 400


@pytest.mark.django_db(transaction=True)
def test_backfill_leaves_recordings_it_cannot_read_now_for_the_next_run(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded_call(tenant.test)
    Recording.objects.update(waveform=None)

    def storage_down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("storage unreachable")

    monkeypatch.setattr(default_storage, "open", storage_down)
    out = io.StringIO()
    call_command("backfill_waveforms", stdout=out)
    assert "3 recording(s) could not be read; run again" in out.getvalue()
    assert not Recording.objects.filter(waveform__isnull=False).exists()

    monkeypatch.undo()
    call_command("backfill_waveforms", stdout=io.StringIO())
    assert not Recording.objects.filter(waveform__isnull=True).exists()
