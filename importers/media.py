"""Media files of every kind: header probe, streamed decoding, clip cutting.

Two readers, chosen by :func:`probe`:

- ``soundfile`` (libsndfile) for what it reads natively: WAV, FLAC, OGG (Vorbis, Opus), MP3,
  AIFF. Exact frame counts, sample-accurate seeking, no extra process.
- ``ffmpeg`` for everything else ffmpeg reads: M4A/AAC, MP4, WebM, MKV, ... The header
  comes from ``ffprobe -of json``, the samples from an ``ffmpeg`` pipe (``-f f32le``).

:func:`read_audio` decodes in blocks into one preallocated float32 array of shape
``(channels, samples)`` at the requested rate: soundfile blocks go through a streaming
resampler (``soxr.ResampleStream``), the ffmpeg pipe resamples itself. Peak memory is the
output array plus one block, never a full-rate copy of the file (a 60-min 44.1 kHz stereo
file decoded to 16 kHz: a 461 MB output array; see BENCHMARKS.md section 6).

Errors are :class:`~schemas.errors.MediaError` naming the file and what was expected: a
missing or zero-length file, a header nothing can read, no audio stream, zero samples, and,
at decode time, data cut short or corrupt after a good header (with the time where decoding
stopped).

:func:`importers.channels.channel_roles` tells a stereo recording with one performer per
channel from plain stereo of one mix.

Example
-------
>>> import tempfile
>>> import numpy as np
>>> import soundfile as sf
>>> path = Path(tempfile.mkdtemp()) / "tone.wav"
>>> t = np.arange(44_100) / 44_100
>>> sf.write(path, np.stack([np.sin(2 * np.pi * 440 * t)] * 2, axis=1) * 0.5, 44_100)
>>> info = probe(path)
>>> info.duration, info.sample_rate, info.channels, info.reader
(1.0, 44100, 2, 'soundfile')
>>> read_audio(path, 16_000, info=info).shape
(2, 16000)
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from schemas.errors import MediaError

__all__ = [
    "MediaInfo",
    "cut_audio",
    "probe",
    "read_audio",
]

#: Decoding block length in seconds (of the media's own rate): 10 s of 44.1 kHz stereo
#: float32 is 3.5 MB.
BLOCK_SECONDS = 10.0
#: What the readers accept, for error messages.
EXPECTED = (
    "an audio or video file that libsndfile or ffmpeg can read "
    "(WAV, FLAC, OGG, MP3, M4A/AAC, MP4, WebM, MKV)"
)
# Formats whose header states the exact number of frames: a shorter decode is a cut file.
_EXACT = {"WAV", "WAVEX", "FLAC", "AIFF", "W64", "RF64", "CAF"}
# Otherwise (MP3 without a Xing/LAME tag, containers with rounded durations, AAC priming)
# the header's duration is an estimate: a decode may fall short of it by this much before
# it counts as truncated (seconds, and fraction of the duration; the larger applies).
_SHORT_SECONDS = 0.5
_SHORT_FRACTION = 0.01


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What a media file's header says about its (first) audio stream.

    ``frames`` is the number of samples per channel when the header states it (``None``
    when only a duration is known, e.g. WebM/MKV); ``reader`` is ``"soundfile"`` or
    ``"ffmpeg"``, the decoder :func:`read_audio` and :func:`cut_audio` will use.
    """

    path: str
    duration: float
    sample_rate: int
    channels: int
    codec: str
    container: str
    has_video: bool
    frames: int | None
    reader: str

    @property
    def exact(self) -> bool:
        """True if the header's frame count is exact (a shorter decode means a cut file)."""
        return self.reader == "soundfile" and self.container.upper() in _EXACT


# --------------------------------------------------------------------------------- probe


def _wav_declared_frames(path: Path) -> int | None:
    """Frames the RIFF ``data`` chunk declares (libsndfile silently shortens a cut file).

    ``None`` for what this cannot judge: not RIFF/WAVE, a compressed format tag, or a size
    left open by a streaming writer (0 or 0xFFFFFFFF).
    """
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        block_align = 0
        for _ in range(64):
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            name, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if name == b"fmt ":
                fmt = f.read(size + (size & 1))
                if len(fmt) < 14:
                    return None
                tag, _, _, _, block_align = struct.unpack("<HHIIH", fmt[:14])
                if tag not in (1, 3, 6, 7, 0xFFFE):
                    return None
            elif name == b"data":
                if block_align <= 0 or size in (0, 0xFFFFFFFF):
                    return None
                return size // block_align
            else:
                f.seek(size + (size & 1), 1)
    return None


def _probe_soundfile(path: Path) -> MediaInfo | None:
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError):
        return None
    if info.samplerate <= 0 or info.channels <= 0:
        return None
    frames = info.frames
    if info.format in ("WAV", "WAVEX"):
        declared = _wav_declared_frames(path)
        if declared is not None and declared > frames:
            frames = declared
    if frames <= 0:
        raise MediaError(
            f"{path}: the {info.format} header declares 0 audio samples; expected a recording"
        )
    return MediaInfo(
        path=str(path),
        duration=frames / info.samplerate,
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        codec=info.subtype.lower(),
        container=info.format.lower(),
        has_video=False,
        frames=int(frames),
        reader="soundfile",
    )


def _tool(name: str, path: Path) -> str:
    found = shutil.which(name)
    if found is None:
        raise MediaError(f"{path}: reading this format needs {name} (Debian package ffmpeg)")
    return found


def _probe_ffmpeg(path: Path) -> MediaInfo:
    done = subprocess.run(
        [
            _tool("ffprobe", path),
            "-v",
            "error",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        meta = json.loads(done.stdout or "{}")
    except json.JSONDecodeError:
        meta = {}
    if done.returncode != 0 or "format" not in meta:
        reason = done.stderr.strip().splitlines()[-1:] or ["ffprobe failed"]
        raise MediaError(f"{path}: cannot read the media header ({reason[0]}); expected {EXPECTED}")
    streams = meta.get("streams", [])
    fmt = meta["format"]
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    video = [
        s
        for s in streams
        if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")
    ]
    if not audio:
        kinds = [f"{s.get('codec_type')} ({s.get('codec_name')})" for s in streams] or ["none"]
        raise MediaError(
            f"{path}: no audio stream (streams: {', '.join(kinds)}); expected a recording "
            "with an audio track"
        )
    stream = audio[0]
    rate = int(stream.get("sample_rate") or 0)
    channels = int(stream.get("channels") or 0)
    if rate <= 0 or channels <= 0:
        raise MediaError(
            f"{path}: the header gives an audio stream with sample rate {rate} and {channels} "
            f"channels (corrupt header?); expected both positive"
        )
    frames = None
    if stream.get("duration_ts") is not None and stream.get("time_base") == f"1/{rate}":
        frames = int(stream["duration_ts"])
    duration = float(stream.get("duration") or fmt.get("duration") or 0.0)
    if frames is not None:
        duration = frames / rate
    if duration <= 0 or frames == 0:
        raise MediaError(
            f"{path}: the header declares no audio samples (duration {duration} s; empty "
            "recording or corrupt header); expected a recording"
        )
    return MediaInfo(
        path=str(path),
        duration=duration,
        sample_rate=rate,
        channels=channels,
        codec=str(stream.get("codec_name")),
        container=str(fmt.get("format_name")),
        has_video=bool(video),
        frames=frames,
        reader="ffmpeg",
    )


def probe(path: str | Path) -> MediaInfo:
    """Read a media file's header (not its samples).

    libsndfile first (WAV, FLAC, OGG, MP3, AIFF), else ``ffprobe -of json`` (M4A/AAC, MP4,
    WebM, MKV and anything else ffmpeg reads). For WAV the RIFF ``data`` chunk size is read
    too, so a cut file is caught when it is decoded.

    Parameters
    ----------
    path : str or Path
        The media file.

    Returns
    -------
    MediaInfo
        Duration in seconds, sample rate in Hz, channels, codec, container, whether there
        is a video stream, frames when the header states them, and the reader to use.

    Raises
    ------
    MediaError
        Not found, zero-length, unreadable header, no audio stream, zero samples.
    """
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: media file not found; expected {EXPECTED}")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: zero-length file (0 bytes); expected {EXPECTED}")
    info = _probe_soundfile(path)
    return info if info is not None else _probe_ffmpeg(path)


# ---------------------------------------------------------------------------- decoding


class _Sink:
    """A growing ``(channels, samples)`` float32 array filled block by block.

    One flat buffer, channel-major, sized from the header; :meth:`array` compacts the rows
    in place so the result is C-contiguous without a second full-size copy.
    """

    def __init__(self, channels: int, capacity: int) -> None:
        self.channels = channels
        self.capacity = max(int(capacity), 1)
        self.flat = np.empty(channels * self.capacity, dtype=np.float32)
        self.size = 0

    def _rows(self) -> np.ndarray:
        return self.flat.reshape(self.channels, self.capacity)

    def write(self, block: np.ndarray) -> None:
        """Append ``block`` of shape (samples, channels)."""
        n = len(block)
        if n == 0:
            return
        if self.size + n > self.capacity:
            # The header under-stated the length: grow (one copy; rare).
            grown = _Sink(self.channels, max(self.size + n, int(self.capacity * 1.25)))
            grown._rows()[:, : self.size] = self._rows()[:, : self.size]
            self.flat, self.capacity = grown.flat, grown.capacity
        self._rows()[:, self.size : self.size + n] = block.T
        self.size += n

    def array(self) -> np.ndarray:
        """The samples written, shape (channels, size), C-contiguous, sharing the buffer."""
        n, cap = self.size, self.capacity
        if n < cap:
            step = 1 << 20
            for c in range(1, self.channels):
                # Forward copies in chunks: each destination lies below its source.
                for k in range(0, n, step):
                    m = min(step, n - k)
                    self.flat[c * n + k : c * n + k + m] = self.flat[c * cap + k : c * cap + k + m]
        return self.flat[: self.channels * n].reshape(self.channels, n)


def _short(info: MediaInfo, decoded: float) -> bool:
    """True if ``decoded`` seconds fall short of the header's duration (a cut file)."""
    if info.exact and info.frames is not None:
        return round(decoded * info.sample_rate) < info.frames
    slack = max(_SHORT_SECONDS, _SHORT_FRACTION * info.duration)
    return decoded < info.duration - slack


def _cut_short(path: Path, info: MediaInfo, decoded: float, detail: str = "") -> MediaError:
    extra = f" ({detail})" if detail else ""
    return MediaError(
        f"{path}: decoding stopped at {decoded:.3f} s of the {info.duration:.3f} s the header "
        f"declares{extra}; the file is truncated or corrupt, expected complete audio data"
    )


def _read_soundfile(path: Path, sr: int, info: MediaInfo, block: int) -> np.ndarray:
    ratio = sr / info.sample_rate
    expected = info.frames if info.frames is not None else round(info.duration * info.sample_rate)
    sink = _Sink(info.channels, math.ceil(expected * ratio) + 64)
    stream = (
        None
        if info.sample_rate == sr
        else soxr.ResampleStream(info.sample_rate, sr, info.channels, dtype="float32")
    )
    read = 0
    try:
        with sf.SoundFile(str(path)) as media:
            while True:
                chunk = media.read(block, dtype="float32", always_2d=True)
                read += len(chunk)
                last = len(chunk) < block
                if stream is not None:
                    chunk = stream.resample_chunk(chunk, last=last)
                sink.write(chunk)
                if last:
                    break
    except (RuntimeError, sf.LibsndfileError) as exc:
        failed = _failure_frame(path, read, block)
        raise _cut_short(path, info, failed / info.sample_rate, str(exc)) from None
    if _short(info, read / info.sample_rate):
        raise _cut_short(path, info, read / info.sample_rate)
    return sink.array()


def _failure_frame(path: Path, start: int, block: int) -> int:
    """The frame where decoding fails, searched from ``start`` in small reads (at most one
    block), so the error can say where the data goes bad."""
    position = start
    try:
        with sf.SoundFile(str(path)) as media:
            media.seek(start)
            while position < start + block:
                got = len(media.read(1024, dtype="float32", always_2d=True))
                if got == 0:
                    break
                position += got
    except (RuntimeError, sf.LibsndfileError):
        pass
    return position


def _ffmpeg_args(path: Path, info: MediaInfo) -> list[str]:
    args = [_tool("ffmpeg", path), "-nostdin", "-hide_banner", "-v", "error", "-xerror"]
    return [*args, "-i", str(path), "-map", "0:a:0", "-vn", "-sn", "-dn"]


def _read_ffmpeg(path: Path, sr: int, info: MediaInfo, block: int) -> np.ndarray:
    channels = info.channels
    sink = _Sink(channels, math.ceil(info.duration * sr) + sr // 10)
    args = [*_ffmpeg_args(path, info), "-ac", str(channels), "-ar", str(sr)]
    args += ["-f", "f32le", "-acodec", "pcm_f32le", "pipe:1"]
    frame_bytes = 4 * channels
    buffer = bytearray(block * frame_bytes)
    view = memoryview(buffer)
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errors)
        if proc.stdout is None:  # pragma: no cover - Popen with PIPE always has it
            raise MediaError(f"{path}: cannot start ffmpeg")
        try:
            while True:
                filled = 0
                while filled < len(buffer):
                    got = proc.stdout.readinto(view[filled:])
                    if not got:
                        break
                    filled += got
                whole = filled - filled % frame_bytes
                samples = np.frombuffer(buffer, dtype=np.float32, count=whole // 4)
                sink.write(samples.reshape(-1, channels))
                if filled < len(buffer):
                    break
        finally:
            proc.stdout.close()
            code = proc.wait()
        errors.seek(0)
        stderr = errors.read().decode("utf-8", "replace").strip()
    decoded = sink.size / sr
    if code != 0 or stderr:
        detail = stderr.splitlines()[-1] if stderr else f"ffmpeg exit code {code}"
        raise _cut_short(path, info, decoded, detail)
    if _short(info, decoded):
        raise _cut_short(path, info, decoded)
    return sink.array()


def read_audio(
    path: str | Path,
    sr: int = 16_000,
    *,
    info: MediaInfo | None = None,
    block_seconds: float = BLOCK_SECONDS,
) -> np.ndarray:
    """Decode a media file's first audio stream to float32 at ``sr`` Hz, in blocks.

    Every channel is kept (use ``audio.mean(axis=0)`` for a mono mix). Memory: the output
    array plus one block of ``block_seconds``; the file is never held at its own rate.
    float32 rather than int16: every consumer (voice activity, prosody) computes in float,
    so an int16 result would only move the full-size float copy downstream.

    Parameters
    ----------
    path : str or Path
        The media file.
    sr : int
        Output sample rate in Hz (default 16 kHz).
    info : MediaInfo, optional
        :func:`probe`'s result, if already read.
    block_seconds : float
        Decoding block length in seconds of the media's own rate.

    Returns
    -------
    numpy.ndarray
        float32, shape ``(channels, samples)``, samples within one block of
        ``duration * sr``.

    Raises
    ------
    MediaError
        What :func:`probe` raises, and data that ends before the header's duration or fails
        to decode (the message gives the time where decoding stopped).
    """
    path = Path(path)
    if sr <= 0:
        raise MediaError(f"{path}: sample rate {sr!r}; expected a positive number of Hz")
    if block_seconds <= 0:
        raise MediaError(f"{path}: block_seconds {block_seconds!r}; expected a positive number")
    info = info if info is not None else probe(path)
    block = max(1024, round(block_seconds * info.sample_rate))
    if info.reader == "soundfile":
        return _read_soundfile(path, int(sr), info, block)
    return _read_ffmpeg(path, int(sr), info, max(1024, round(block_seconds * sr)))


# ------------------------------------------------------------------------------ cutting


def cut_audio(
    path: str | Path,
    start: float,
    end: float,
    target: str | Path,
    *,
    info: MediaInfo | None = None,
) -> Path:
    """Write the window ``[start, end)`` seconds of a media file as mono 16-bit WAV.

    The media's own sample rate is kept; channels are averaged. Seekable formats are read
    with soundfile (sample-accurate seek), the rest through ``ffmpeg -ss/-t``. The file is
    written to ``<target>.<pid>.part`` and renamed, so ``target`` is either complete or absent.

    Parameters
    ----------
    path : str or Path
        The media file.
    start, end : float
        The window in seconds, ``0 <= start < end <= duration``.
    target : str or Path
        The WAV file to write (its folder is created).
    info : MediaInfo, optional
        :func:`probe`'s result, if already read.

    Returns
    -------
    Path
        ``target``.
    """
    path, target = Path(path), Path(target)
    info = info if info is not None else probe(path)
    if not 0 <= start < end:
        raise MediaError(
            f"{path}: clip window [{start}, {end}) s; expected 0 <= start < end (seconds)"
        )
    # Cue times are rounded to milliseconds; allow that much past the media's end.
    if end > info.duration + 0.0015:
        raise MediaError(
            f"{path}: clip window ends at {end:.3f} s, past the media's end ({info.duration:.3f} s)"
        )
    end = min(end, info.duration)
    target.parent.mkdir(parents=True, exist_ok=True)
    # this process's own partial file: two imports cutting the same clip at once each
    # write their own, and the last rename wins (the two are the same clip)
    partial = target.with_name(f"{target.name}.{os.getpid()}.part")
    try:
        if info.reader == "soundfile":
            _cut_soundfile(path, start, end, partial, info)
        else:
            _cut_ffmpeg(path, start, end, partial, info)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)
    return target


def _cut_soundfile(path: Path, start: float, end: float, partial: Path, info: MediaInfo) -> None:
    rate = info.sample_rate
    first, wanted = round(start * rate), round((end - start) * rate)
    block = max(1024, round(BLOCK_SECONDS * rate))
    done = 0
    try:
        with (
            sf.SoundFile(str(path)) as media,
            sf.SoundFile(
                partial, "w", samplerate=rate, channels=1, subtype="PCM_16", format="WAV"
            ) as out,
        ):
            media.seek(first)
            while done < wanted:
                chunk = media.read(min(block, wanted - done), dtype="float32", always_2d=True)
                if len(chunk) == 0:
                    break
                out.write(chunk.mean(axis=1))
                done += len(chunk)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise _cut_short(path, info, (first + done) / rate, str(exc)) from None
    if done < wanted:
        raise _cut_short(path, info, (first + done) / rate)


def _cut_ffmpeg(path: Path, start: float, end: float, partial: Path, info: MediaInfo) -> None:
    args = [_tool("ffmpeg", path), "-nostdin", "-hide_banner", "-v", "error", "-xerror", "-y"]
    args += ["-ss", f"{start:.6f}", "-t", f"{end - start:.6f}", "-i", str(path)]
    args += ["-map", "0:a:0", "-vn", "-sn", "-dn", "-ac", "1", "-ar", str(info.sample_rate)]
    args += ["-c:a", "pcm_s16le", "-f", "wav", str(partial)]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0 or done.stderr.strip():
        detail = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        raise MediaError(
            f"{path}: cannot cut [{start:.3f}, {end:.3f}) s ({detail[0]}); expected "
            "decodable audio in that window"
        )
    got = sf.info(str(partial)).frames / info.sample_rate
    if got < (end - start) - max(0.05, 2 / 1000 * (end - start)):
        raise _cut_short(path, info, start + got)


# ------------------------------------------------------------------------------ channels
