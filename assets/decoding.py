"""Decode uploaded audio files to 16 kHz mono float32, trusting only the bytes.

Nothing here imports Django. The format is sniffed from magic numbers, never taken from
a file name or Content-Type; decoding streams in fixed-size blocks through soxr, so
memory is bounded by `max_seconds` of output and never by what a header claims.

Outcomes for the known-broken shapes of upload:

- random bytes, text, or a container we do not decode: `unsupported_format` (415);
- a header declaring zero channels or an impossible sample rate: `invalid_header`
  (400) — the container is recognisable, its header is not honest;
- data libsndfile or FFmpeg cannot parse: `corrupt_audio` (400);
- a header promising gigabytes over a few bytes of data: whatever actually decodes is
  measured, so such a file ends up `empty_audio` (400) without a large allocation;
- a truncated MP3: accepted, with the duration that actually decoded.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr

Samples = npt.NDArray[np.float32]

TARGET_RATE = 16_000
SNIFF_BYTES = 4096
MAX_FILE_BYTES = 32 * 1024 * 1024
# Shorter than one 20 ms media frame cannot be played out at all.
MIN_DECODED_SECONDS = 0.02
# Samples (not frames) per decoded block, so a 1,024-channel file costs no more memory
# per block than a mono one; large enough that per-block overhead vanishes.
_BLOCK_SAMPLES = 65_536
# Outside this range a header is lying; soxr also slows to a crawl on absurd ratios.
_SAMPLE_RATES = range(1_000, 768_001)

ACCEPTED_FORMATS: tuple[str, ...] = (
    "WAV (PCM 8/16/24/32-bit, float, μ-law, A-law)",
    "FLAC",
    "Ogg Vorbis",
    "Opus",
    "MP3",
    "AIFF",
    "AAC or ALAC in M4A/MP4",
)

_HTTP_STATUS = {"unsupported_format": 415, "too_large": 413}


class AudioRejected(Exception):
    """An upload that cannot become an audio asset; `code` is stable snake_case."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = _HTTP_STATUS.get(code, 400)

    def __repr__(self) -> str:
        return f"AudioRejected(code={self.code!r}, message={self.message!r})"


@dataclass(frozen=True, slots=True)
class SniffedFormat:
    """A container/codec family recognised from magic numbers."""

    name: str
    content_type: str
    label: str
    extension: str


WAV = SniffedFormat("wav", "audio/wav", "WAV", "wav")
FLAC = SniffedFormat("flac", "audio/flac", "FLAC", "flac")
OGG_VORBIS = SniffedFormat("ogg_vorbis", "audio/ogg", "Ogg Vorbis", "ogg")
OPUS = SniffedFormat("opus", "audio/opus", "Opus", "opus")
MP3 = SniffedFormat("mp3", "audio/mpeg", "MP3", "mp3")
AIFF = SniffedFormat("aiff", "audio/aiff", "AIFF", "aiff")
M4A = SniffedFormat("m4a", "audio/mp4", "M4A", "m4a")

# libsndfile detects formats on its own; decoding proceeds only when it agrees with us.
_SNDFILE_FORMATS = {
    ("WAV", None): WAV,
    ("WAVEX", None): WAV,
    ("RF64", None): WAV,
    ("AIFF", None): AIFF,
    ("FLAC", None): FLAC,
    ("MP3", None): MP3,
    ("OGG", "VORBIS"): OGG_VORBIS,
    ("OGG", "OPUS"): OPUS,
}
# Each FFmpeg decoder is attack surface; open only the ones M4A files really carry.
_MP4_CODECS = frozenset({"aac", "alac"})


@dataclass(frozen=True, slots=True)
class DecodedAudio:
    """Float32 mono 16 kHz samples plus what the original file really held."""

    samples: Samples
    format: SniffedFormat
    original_sample_rate: int
    original_channels: int
    duration_ms: int


def sniff(head: bytes) -> SniffedFormat | None:
    """Identify the audio format from a file's first bytes (about 4 KiB suffice)."""
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return WAV
    if len(head) >= 12 and head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return AIFF
    if head[:4] == b"fLaC":
        return FLAC
    if head[:4] == b"OggS":
        return _sniff_ogg(head)
    if head[4:8] == b"ftyp":
        return M4A
    tag_end = _id3_end(head)
    if tag_end is not None:
        if tag_end + 4 > len(head):
            # The tag (often cover art) outlasts the window; MPEG is what ID3 usually
            # precedes, and inspect_file looks past the tag before trusting this.
            return MP3
        inner = sniff(head[tag_end:])
        return inner if inner in (MP3, FLAC) else None
    if _is_mpeg_audio_frame(head):
        return MP3
    return None


def unsupported_format() -> AudioRejected:
    """The rejection of bytes that are not an accepted audio format."""
    return AudioRejected(
        "unsupported_format",
        "This is not an audio format we accept. Accepted formats: "
        + ", ".join(ACCEPTED_FORMATS)
        + ".",
    )


def inspect_file(path: str | Path) -> SniffedFormat:
    """Check a file's size, magic numbers and header fields without decoding it.

    Cheap and bounded (a few KiB are read): fit for the request path. Raises
    AudioRejected for what the first bytes already show is wrong.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise AudioRejected(
            "too_large",
            f"The file is {size / 2**20:.1f} MiB; the limit is "
            f"{MAX_FILE_BYTES // 2**20} MiB.",
        )
    head, fmt = _sniff_file(path)
    if fmt is None:
        raise unsupported_format()
    problem = _header_problem(fmt, head)
    if problem:
        raise AudioRejected("invalid_header", f"The {fmt.label} header {problem}.")
    return fmt


def decode_to_mono16k(path: str | Path, *, max_seconds: float) -> DecodedAudio:
    """Decode an audio file to float32 mono 16 kHz, or raise AudioRejected."""
    if max_seconds <= 0:
        raise ValueError("max_seconds must be positive")
    path = Path(path)
    fmt = inspect_file(path)
    if fmt is M4A:
        return _decode_with_pyav(path, fmt, max_seconds)
    return _decode_with_libsndfile(path, fmt, max_seconds)


class _Mono16k:
    """Accumulate multichannel blocks as mono 16 kHz, refusing past a frame limit."""

    def __init__(self, fmt: SniffedFormat, rate: int, max_seconds: float) -> None:
        self._fmt = fmt
        self._rate = rate
        self._max_seconds = max_seconds
        self._max_frames = int(max_seconds * rate)
        self._stream = (
            None
            if rate == TARGET_RATE
            else soxr.ResampleStream(rate, TARGET_RATE, 1, dtype="float32")
        )
        self._chunks: list[Samples] = []
        self.frames = 0

    def push(self, block: Samples) -> None:
        # Checked before resampling so an over-long file costs no more work than needed.
        self.frames += len(block)
        if self.frames > self._max_frames:
            raise AudioRejected(
                "too_long",
                f"The audio is longer than the {self._max_seconds:g} s limit.",
            )
        # Column adds instead of block.mean(axis=1): numpy reduces a short inner axis
        # about 30x slower, which was most of the decode time for stereo files.
        channels = block.shape[1]
        mono = block[:, 0].copy()
        for channel in range(1, channels):
            mono += block[:, channel]
        if channels > 1:
            mono *= np.float32(1 / channels)
        if not np.isfinite(mono).all():
            # A float WAV can carry NaN or infinity, which soxr would smear over
            # everything after it.
            raise AudioRejected(
                "corrupt_audio", f"The {self._fmt.label} file has non-finite samples."
            )
        if self._stream is None:
            self._chunks.append(mono)
        else:
            self._chunks.append(self._stream.resample_chunk(mono))

    def finish(self, channels: int) -> DecodedAudio:
        if self._stream is not None:
            self._chunks.append(
                self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
            )
        if self.frames == 0:
            raise AudioRejected(
                "empty_audio", f"The {self._fmt.label} file contains no audio."
            )
        if self.frames < MIN_DECODED_SECONDS * self._rate:
            raise AudioRejected(
                "empty_audio",
                f"The {self._fmt.label} file holds only "
                f"{self.frames * 1000 / self._rate:.1f} ms of audio; at least "
                f"{MIN_DECODED_SECONDS * 1000:g} ms is needed.",
            )
        return DecodedAudio(
            samples=np.concatenate(self._chunks),
            format=self._fmt,
            original_sample_rate=self._rate,
            original_channels=channels,
            duration_ms=round(self.frames * 1000 / self._rate),
        )


def _decode_with_libsndfile(
    path: Path, fmt: SniffedFormat, max_seconds: float
) -> DecodedAudio:
    try:
        sound = sf.SoundFile(path)
    except sf.LibsndfileError as exc:
        raise _corrupt(fmt, exc.error_string) from exc
    with sound:
        detected = _SNDFILE_FORMATS.get(
            (sound.format, sound.subtype if sound.format == "OGG" else None)
        )
        if detected is not fmt:
            raise _corrupt(fmt, "its contents do not match its header")
        _check_stream(fmt, sound.samplerate, sound.channels)
        sink = _Mono16k(fmt, sound.samplerate, max_seconds)
        # Reused for every block; the header's frame count never sizes anything.
        frames = max(1, _BLOCK_SAMPLES // sound.channels)
        buffer = np.empty((frames, sound.channels), dtype=np.float32)
        while True:
            try:
                block = sound.read(out=buffer)
            except sf.LibsndfileError as exc:
                raise _corrupt(fmt, exc.error_string) from exc
            if not len(block):
                break
            sink.push(block)
        return sink.finish(sound.channels)


def _decode_with_pyav(
    path: Path, fmt: SniffedFormat, max_seconds: float
) -> DecodedAudio:
    try:
        # Naming the demuxer stops FFmpeg from probing the bytes as anything but MP4.
        container = av.open(str(path), format="mp4", metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise _corrupt(fmt, str(exc)) from exc
    with container:
        if not container.streams.audio:
            raise AudioRejected(
                "unsupported_format", "The MP4 file has no audio track."
            )
        context = container.streams.audio[0].codec_context
        # FFmpeg leaves no codec context when the track's codec tag is unknown to it.
        codec = context.name if context is not None else "unknown"
        if context is None or codec not in _MP4_CODECS:
            raise AudioRejected(
                "unsupported_format",
                f"Audio coded as {codec!r} in MP4 is not supported; use AAC or ALAC.",
            )
        rate = context.sample_rate
        channels = context.channels
        _check_stream(fmt, rate, channels)
        sink = _Mono16k(fmt, rate, max_seconds)
        try:
            for block in _pyav_blocks(container.decode(audio=0), rate):
                sink.push(block)
        except av.FFmpegError as exc:
            raise _corrupt(fmt, str(exc)) from exc
        return sink.finish(channels)


def _pyav_blocks(frames: Iterable[av.AudioFrame], rate: int) -> Iterable[Samples]:
    """Yield decoded frames as float32 arrays shaped (samples, channels)."""
    for frame in frames:
        if frame.sample_rate != rate:
            raise AudioRejected(
                "corrupt_audio", "The M4A file changes sample rate mid-stream."
            )
        data = frame.to_ndarray()
        if frame.format.is_planar:
            data = data.T
        else:
            data = data.reshape(-1, len(frame.layout.channels))
        if data.dtype.kind == "f":
            yield data.astype(np.float32, copy=False)
        elif data.dtype.kind == "u":
            yield (data.astype(np.float32) - 128.0) / 128.0
        else:
            scale = float(2 ** (8 * data.dtype.itemsize - 1))
            yield data.astype(np.float32) / np.float32(scale)


def _check_stream(fmt: SniffedFormat, rate: int, channels: int) -> None:
    if channels < 1:
        raise AudioRejected(
            "invalid_header", f"The {fmt.label} header declares {channels} channels."
        )
    if rate not in _SAMPLE_RATES:
        raise AudioRejected(
            "invalid_header",
            f"The {fmt.label} header declares an implausible sample rate of {rate} Hz.",
        )


def _corrupt(fmt: SniffedFormat, detail: str) -> AudioRejected:
    return AudioRejected(
        "corrupt_audio", f"The {fmt.label} file could not be decoded ({detail})."
    )


def _sniff_file(path: Path) -> tuple[bytes, SniffedFormat | None]:
    with path.open("rb") as file:
        head = file.read(SNIFF_BYTES)
        tag_end = _id3_end(head)
        if tag_end is not None and tag_end + 4 > len(head):
            file.seek(tag_end)
            inner = sniff(file.read(SNIFF_BYTES))
            return head, inner if inner in (MP3, FLAC) else None
    return head, sniff(head)


def _sniff_ogg(head: bytes) -> SniffedFormat | None:
    # The first page holds exactly the codec's identification packet, right after the
    # 27-byte page header and its segment table.
    if len(head) < 27:
        return None
    packet = head[27 + head[26] :]
    if packet.startswith(b"OpusHead"):
        return OPUS
    if packet.startswith(b"\x01vorbis"):
        return OGG_VORBIS
    return None


def _id3_end(head: bytes) -> int | None:
    """Return where an ID3v2 tag at the start of `head` ends, if there is one."""
    if len(head) < 10 or head[:3] != b"ID3" or any(b & 0x80 for b in head[6:10]):
        return None
    size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
    footer = 10 if head[5] & 0x10 else 0
    return 10 + size + footer


def _is_mpeg_audio_frame(head: bytes) -> bool:
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    bitrate = head[2] >> 4
    rate = (head[2] >> 2) & 0b11
    # Layer 0 is ADTS AAC, which shares the sync word; the other values are reserved.
    return version != 0b01 and layer != 0 and bitrate != 0b1111 and rate != 0b11


def _header_problem(fmt: SniffedFormat, head: bytes) -> str | None:
    """Describe what is impossible in a WAV/AIFF header, if the head shows it."""
    if fmt is WAV and (fields := _find_chunk(head, b"fmt ", "<", 8)):
        channels, rate = struct.unpack("<2xHI", fields)
    elif fmt is AIFF and (fields := _find_chunk(head, b"COMM", ">", 2)):
        # AIFF's rate is an 80-bit float; _check_stream judges libsndfile's reading.
        (channels,) = struct.unpack(">H", fields)
        rate = None
    else:
        return None
    if channels == 0:
        return "declares zero channels"
    if rate == 0:
        return "declares a sample rate of zero"
    return None


def _find_chunk(head: bytes, chunk_id: bytes, endian: str, length: int) -> bytes | None:
    """Return the first `length` bytes of a RIFF/IFF chunk within `head`."""
    pos = 12
    while pos + 8 <= len(head):
        found_id = head[pos : pos + 4]
        (size,) = struct.unpack(endian + "I", head[pos + 4 : pos + 8])
        if found_id == chunk_id:
            body = head[pos + 8 : pos + 8 + length]
            return body if len(body) == length else None
        pos += 8 + size + (size & 1)
    return None
