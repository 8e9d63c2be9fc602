"""The recording spool: one directory per call, written while the call runs.

Servers write it, the finalisation (a Celery worker, or the reaper's process after a
crash) reads it: in the production shape it is a volume they all mount at one path.

While the call runs its directory holds one 2-channel 16-bit WAV (``call.wav``: the
peer's audio on the first channel, what the peer heard on the second), appended a second
at a time and playable up to the last second written even if its process is killed. The
finalisation splits it into the three mono WAVs users get (``inbound``, ``outbound`` and
``mixed``, the directions' sum). A directory may instead hold the three mono files
already (written by earlier versions, or split by a finalisation that failed later).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import soundfile
from django.conf import settings

from audio.wav import WavWriter, repair_wav_header

KINDS = ("inbound", "outbound", "mixed")
AUDIO = "call.wav"
# Read this many frames at a time when splitting (4 s at 16 kHz).
SPLIT_FRAMES = 1 << 16
PCM16_MAX = 32767


def root() -> Path:
    return Path(settings.RECORDING_SPOOL_DIR)


def call_dir(call_id: str) -> Path:
    """The spool directory of one call (named by its public id)."""
    return root() / call_id


def wav_path(directory: Path, kind: str) -> Path:
    return directory / f"{kind}.wav"


def audio_path(directory: Path) -> Path:
    """The 2-channel file a running call appends to."""
    return directory / AUDIO


def split(directory: Path) -> bool:
    """Write the call's three mono WAVs from its 2-channel file; False if there is none.

    Repairs the file's header first (its process may have died mid-call) and rewrites
    all three files every time, so a split interrupted before is simply redone; each
    appears whole under its name (written aside, then renamed), so two finalisations
    of one call at once never read a half-written track. Reads and writes a few
    seconds at a time: any length of call fits in memory.
    """
    source = audio_path(directory)
    if not source.exists():
        return False
    repair_wav_header(source)
    suffix = f".{uuid.uuid4().hex}.part"
    parts = [directory / f"{kind}.wav{suffix}" for kind in KINDS]
    with soundfile.SoundFile(source) as wav:
        if wav.channels != 2:
            raise ValueError(f"{source} has {wav.channels} channels, not 2")
        rate = wav.samplerate
        writers = [WavWriter(part, rate) for part in parts]
        try:
            mix = np.empty(SPLIT_FRAMES, dtype=np.int32)
            while True:
                block = wav.read(SPLIT_FRAMES, dtype="int16", always_2d=True)
                if not len(block):
                    break
                inbound, outbound = block[:, 0], block[:, 1]
                mixed = mix[: len(block)]
                np.add(inbound, outbound, out=mixed, dtype=np.int32)
                np.clip(mixed, -PCM16_MAX, PCM16_MAX, out=mixed)
                for writer, track in zip(
                    writers, (inbound, outbound, mixed.astype(np.int16)), strict=True
                ):
                    writer.write_pcm16(track)
        except BaseException:
            for writer, part in zip(writers, parts, strict=True):
                writer.close()
                part.unlink(missing_ok=True)
            raise
    for writer, part, kind in zip(writers, parts, KINDS, strict=True):
        writer.close()
        os.replace(part, wav_path(directory, kind))
    return True


def remove(directory: Path) -> None:
    """Delete a call's spool directory and everything in it (absent: nothing to do)."""
    shutil.rmtree(directory, ignore_errors=True)
