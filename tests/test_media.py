"""Tests for importers.media: every media kind made with ffmpeg, probed, decoded, cut.

Each source is a known signal (a rising chirp on the left channel, a falling one on the
right, under a slow amplitude envelope) written as WAV and encoded by a real ffmpeg into
the format under test; the decoded audio is compared with that signal by normalised
cross-correlation, so a wrong channel order, rate or offset shows.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from importers.channels import channel_roles
from importers.media import MediaInfo, cut_audio, probe, read_audio
from schemas.errors import MediaError

SEED = 440
SECONDS = 3.0
OUT_RATE = 16_000


def signal(rate: int, channels: int, seconds: float = SECONDS) -> np.ndarray:
    """The reference signal, float32 (channels, samples): chirps 300 Hz <-> 3 kHz, a 1.3 Hz
    envelope, 0.4 peak."""
    t = np.arange(round(seconds * rate)) / rate
    k = np.log(3000 / 300) / seconds
    up = np.sin(2 * np.pi * 300 * (np.exp(k * t) - 1) / k)
    down = np.sin(2 * np.pi * 3000 * (1 - np.exp(-k * t)) / k)
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 1.3 * t)
    both = np.stack([up, down])[:channels] * envelope * 0.4
    return both.astype(np.float32)


def ffmpeg(*args: str) -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True
    )


@dataclass(frozen=True)
class Kind:
    """A media kind under test: how to encode it and what its probe must say."""

    suffix: str
    rate: int  # the source's rate
    channels: int
    args: tuple[str, ...]  # ffmpeg output options
    reader: str
    codec: str
    container: str  # a substring of the probed container
    decoded_rate: int = 0  # the stream's rate if the codec changes it (Opus: 48 kHz)
    video: bool = False


KINDS = {
    "wav-48k-stereo": Kind(".wav", 48_000, 2, ("-c:a", "pcm_s16le"), "soundfile", "pcm_16", "wav"),
    "wav-22k-mono": Kind(".wav", 22_050, 1, ("-c:a", "pcm_s24le"), "soundfile", "pcm_24", "wav"),
    "flac-44k-stereo": Kind(
        ".flac", 44_100, 2, ("-c:a", "flac", "-sample_fmt", "s16"), "soundfile", "pcm_16", "flac"
    ),
    "flac-22k-mono": Kind(
        ".flac", 22_050, 1, ("-c:a", "flac", "-sample_fmt", "s16"), "soundfile", "pcm_16", "flac"
    ),
    "mp3-44k-stereo": Kind(
        ".mp3", 44_100, 2, ("-c:a", "libmp3lame", "-b:a", "192k"), "soundfile", "mpeg", "mp3"
    ),
    "mp3-22k-mono": Kind(
        ".mp3", 22_050, 1, ("-c:a", "libmp3lame", "-b:a", "96k"), "soundfile", "mpeg", "mp3"
    ),
    "ogg-vorbis-44k": Kind(
        ".ogg", 44_100, 2, ("-c:a", "libvorbis", "-q:a", "6"), "soundfile", "vorbis", "ogg"
    ),
    "m4a-aac-44k-stereo": Kind(
        ".m4a", 44_100, 2, ("-c:a", "aac", "-b:a", "192k"), "ffmpeg", "aac", "m4a"
    ),
    "m4a-aac-22k-mono": Kind(
        ".m4a", 22_050, 1, ("-c:a", "aac", "-b:a", "96k"), "ffmpeg", "aac", "m4a"
    ),
    "mp4-h264-aac-48k": Kind(
        ".mp4", 48_000, 2, ("-c:a", "aac", "-b:a", "192k"), "ffmpeg", "aac", "mp4", video=True
    ),
    "webm-vp8-opus": Kind(
        ".webm",
        44_100,
        2,
        ("-c:a", "libopus", "-b:a", "128k"),
        "ffmpeg",
        "opus",
        "webm",
        decoded_rate=48_000,
        video=True,
    ),
    "webm-opus-audio-only": Kind(
        ".webm",
        48_000,
        1,
        ("-c:a", "libopus", "-b:a", "64k"),
        "ffmpeg",
        "opus",
        "webm",
    ),
    "mkv-vorbis-22k-mono": Kind(
        ".mkv", 22_050, 1, ("-c:a", "libvorbis"), "ffmpeg", "vorbis", "matroska"
    ),
    "mkv-flac-44k-stereo": Kind(".mkv", 44_100, 2, ("-c:a", "flac"), "ffmpeg", "flac", "matroska"),
}


def make_media(folder: Path, name: str, kind: Kind, seconds: float = SECONDS) -> Path:
    """Write the reference signal as WAV, then encode it with ffmpeg (with a video track when
    the kind has one)."""
    source = folder / f"{name}-source.wav"
    sf.write(source, signal(kind.rate, kind.channels, seconds).T, kind.rate, subtype="FLOAT")
    target = folder / f"{name}{kind.suffix}"
    inputs: list[str] = ["-i", str(source)]
    maps: list[str] = []
    if kind.video:
        codec = ["-c:v", "libx264"] if kind.suffix == ".mp4" else ["-c:v", "libvpx"]
        inputs = ["-f", "lavfi", "-i", f"testsrc=s=160x120:r=10:d={seconds}", *inputs]
        maps = ["-map", "0:v", "-map", "1:a", *codec, "-pix_fmt", "yuv420p"]
    ffmpeg(*inputs, *maps, *kind.args, str(target))
    return target


def best_correlation(decoded: np.ndarray, reference: np.ndarray, max_lag: int) -> tuple[float, int]:
    """Largest normalised cross-correlation of two 1-D signals over lags within
    ``max_lag`` samples, and that lag."""
    n = min(len(decoded), len(reference)) - 2 * max_lag
    ref = reference[max_lag : max_lag + n]
    best, best_lag = -1.0, 0
    for lag in range(-max_lag, max_lag + 1):
        seg = decoded[max_lag + lag : max_lag + lag + n]
        r = float(np.dot(seg, ref) / (np.linalg.norm(seg) * np.linalg.norm(ref) + 1e-12))
        if r > best:
            best, best_lag = r, lag
    return best, best_lag


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("media")
    return {name: make_media(folder, name, kind) for name, kind in KINDS.items()}


# --- probe ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", KINDS)
def test_probe_reads_the_header(media: dict[str, Path], name: str) -> None:
    kind = KINDS[name]
    info = probe(media[name])
    assert info.path == str(media[name])
    assert info.sample_rate == (kind.decoded_rate or kind.rate)
    assert info.channels == kind.channels
    assert info.reader == kind.reader
    assert kind.codec in info.codec
    assert kind.container in info.container
    assert info.has_video is kind.video
    assert info.duration == pytest.approx(SECONDS, abs=0.06)
    if info.frames is not None:
        assert info.frames == round(info.duration * info.sample_rate)


def test_probe_of_exact_formats_counts_every_frame(media: dict[str, Path]) -> None:
    info = probe(media["wav-22k-mono"])
    assert (info.frames, info.duration, info.exact) == (round(SECONDS * 22_050), SECONDS, True)
    assert probe(media["m4a-aac-44k-stereo"]).exact is False


# --- decoding ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", KINDS)
def test_read_audio_gives_the_same_signal_back(media: dict[str, Path], name: str) -> None:
    kind = KINDS[name]
    info = probe(media[name])
    block_seconds = 0.5
    audio = read_audio(media[name], OUT_RATE, info=info, block_seconds=block_seconds)
    assert audio.dtype == np.float32
    assert audio.flags.c_contiguous
    assert audio.shape[0] == kind.channels
    assert abs(audio.shape[1] - info.duration * OUT_RATE) <= block_seconds * OUT_RATE
    reference = signal(OUT_RATE, kind.channels)
    for c in range(kind.channels):
        r, lag = best_correlation(audio[c], reference[c], max_lag=OUT_RATE // 20)
        assert r > 0.97, f"channel {c}: correlation {r:.3f}"
        assert abs(lag) <= OUT_RATE // 20
    if kind.channels == 2:
        # Channels not swapped: each decoded channel matches its own chirp, not the other.
        crossed, _ = best_correlation(audio[0], reference[1], max_lag=OUT_RATE // 20)
        assert crossed < 0.2


@pytest.mark.parametrize("name", ["wav-48k-stereo", "flac-22k-mono", "m4a-aac-44k-stereo"])
def test_block_size_does_not_change_the_samples(media: dict[str, Path], name: str) -> None:
    small = read_audio(media[name], OUT_RATE, block_seconds=0.37)
    large = read_audio(media[name], OUT_RATE, block_seconds=60)
    assert small.shape == large.shape
    np.testing.assert_allclose(small, large, atol=1e-5)


def test_read_audio_at_the_native_rate_is_the_file(media: dict[str, Path]) -> None:
    audio = read_audio(media["wav-48k-stereo"], 48_000, block_seconds=0.25)
    samples, _ = sf.read(media["wav-48k-stereo"], dtype="float32", always_2d=True)
    np.testing.assert_array_equal(audio, samples.T)


def test_read_audio_upsamples(media: dict[str, Path]) -> None:
    audio = read_audio(media["wav-22k-mono"], 44_100)
    assert audio.shape == (1, round(SECONDS * 44_100))
    r, _ = best_correlation(audio[0], signal(44_100, 1)[0], max_lag=100)
    assert r > 0.99


def test_read_audio_keeps_more_than_two_channels(tmp_path: Path) -> None:
    path = tmp_path / "six.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=2:r=48000", "-ac", "6", "-c:a", "aac", str(path))
    info = probe(path)
    audio = read_audio(path, OUT_RATE, info=info)
    assert (info.channels, audio.shape[0]) == (6, 6)


def test_rejects_a_bad_rate(media: dict[str, Path]) -> None:
    with pytest.raises(MediaError, match=r"sample rate 0; expected a positive number of Hz"):
        read_audio(media["wav-48k-stereo"], 0)


# --- bad input ----------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"nope\.wav: media file not found; expected an audio"):
        probe(tmp_path / "nope.wav")


def test_zero_length_file(tmp_path: Path) -> None:
    (tmp_path / "empty.m4a").touch()
    with pytest.raises(MediaError, match=r"empty\.m4a: zero-length file \(0 bytes\)"):
        probe(tmp_path / "empty.m4a")


def test_zero_samples(tmp_path: Path) -> None:
    sf.write(tmp_path / "none.wav", np.zeros((0, 2), dtype=np.float32), 16_000)
    with pytest.raises(MediaError, match=r"none\.wav: the WAV header declares 0 audio samples"):
        probe(tmp_path / "none.wav")


def test_not_media_at_all(tmp_path: Path) -> None:
    (tmp_path / "notes.wav").write_text("these are notes, not audio\n" * 20)
    with pytest.raises(MediaError, match=r"notes\.wav: cannot read the media header .*expected"):
        probe(tmp_path / "notes.wav")


def test_corrupt_header(media: dict[str, Path], tmp_path: Path) -> None:
    data = bytearray(media["wav-48k-stereo"].read_bytes())
    data[:64] = np.random.default_rng(SEED).integers(0, 256, 64, dtype=np.uint8).tobytes()
    (tmp_path / "corrupt.wav").write_bytes(bytes(data))
    with pytest.raises(MediaError, match=r"corrupt\.wav: cannot read the media header"):
        probe(tmp_path / "corrupt.wav")


def test_m4a_cut_before_its_index(media: dict[str, Path], tmp_path: Path) -> None:
    # ffmpeg writes the MP4 index (moov) at the end: half a file has no readable header.
    data = media["m4a-aac-44k-stereo"].read_bytes()
    (tmp_path / "half.m4a").write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match=r"half\.m4a: cannot read the media header"):
        probe(tmp_path / "half.m4a")


def test_video_without_audio(tmp_path: Path) -> None:
    path = tmp_path / "silent-film.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=s=160x120:r=10:d=1", "-c:v", "libx264", str(path))
    with pytest.raises(MediaError, match=r"silent-film\.mp4: no audio stream \(streams: video"):
        probe(path)


def truncate(path: Path, target: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    target.write_bytes(data[: int(len(data) * keep)])
    return target


@pytest.mark.parametrize(
    "name", ["wav-48k-stereo", "flac-44k-stereo", "mp3-44k-stereo", "webm-vp8-opus"]
)
def test_truncated_data_is_an_error_at_decode_time(
    media: dict[str, Path], tmp_path: Path, name: str
) -> None:
    cut = truncate(media[name], tmp_path / f"cut{media[name].suffix}")
    info = probe(cut)  # the header is intact
    assert info.duration == pytest.approx(SECONDS, abs=0.06)
    with pytest.raises(
        MediaError, match=r"cut\.\w+: decoding stopped at [0-2]\.\d{3} s of the 3\.0"
    ):
        read_audio(cut, OUT_RATE, info=info, block_seconds=0.5)


def test_truncated_wav_reports_where_the_data_ends(media: dict[str, Path], tmp_path: Path) -> None:
    data = media["wav-48k-stereo"].read_bytes()
    header = data.index(b"data") + 8  # ffmpeg writes a LIST chunk before the samples
    keep = header + 48_000 * 4  # exactly one second of 16-bit stereo
    (tmp_path / "one-second.wav").write_bytes(data[:keep])
    with pytest.raises(MediaError, match=r"decoding stopped at 1\.000 s of the 3\.000 s"):
        read_audio(tmp_path / "one-second.wav")


def test_m4a_with_index_first_cut_short(tmp_path: Path) -> None:
    source = tmp_path / "src.wav"
    sf.write(source, signal(44_100, 2).T, 44_100)
    whole = tmp_path / "faststart.m4a"
    ffmpeg("-i", str(source), "-c:a", "aac", "-movflags", "+faststart", str(whole))
    cut = truncate(whole, tmp_path / "faststart-cut.m4a")
    with pytest.raises(MediaError, match=r"faststart-cut\.m4a: decoding stopped at 1\.\d+ s"):
        read_audio(cut)


def test_mkv_cut_short(media: dict[str, Path], tmp_path: Path) -> None:
    cut = truncate(media["mkv-flac-44k-stereo"], tmp_path / "cut.mkv")
    with pytest.raises(MediaError, match=r"cut\.mkv: decoding stopped at .*truncated or corrupt"):
        read_audio(cut)


# --- cutting -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "wav-48k-stereo",
        "flac-22k-mono",
        "mp3-44k-stereo",
        "ogg-vorbis-44k",
        "m4a-aac-44k-stereo",
        "mp4-h264-aac-48k",
        "mkv-flac-44k-stereo",
    ],
)
def test_cut_audio_writes_the_window_as_mono_pcm16(
    media: dict[str, Path], tmp_path: Path, name: str
) -> None:
    kind = KINDS[name]
    info = probe(media[name])
    target = cut_audio(media[name], 0.8, 2.1, tmp_path / "clips" / "c000.wav", info=info)
    assert target == tmp_path / "clips" / "c000.wav"
    assert sorted(p.name for p in target.parent.iterdir()) == ["c000.wav"]  # no .part left
    written = sf.info(str(target))
    assert (written.format, written.subtype, written.channels) == ("WAV", "PCM_16", 1)
    assert written.samplerate == info.sample_rate
    expected = round(1.3 * info.sample_rate)
    tolerance = 0 if info.reader == "soundfile" else round(0.005 * info.sample_rate)
    assert abs(written.frames - expected) <= tolerance
    samples, _ = sf.read(target, dtype="float32")
    reference = signal(kind.rate, kind.channels).mean(axis=0)
    window = reference[round(0.8 * kind.rate) : round(2.1 * kind.rate)]
    if info.sample_rate != kind.rate:
        pytest.fail("kinds used here keep their source rate")
    r, lag = best_correlation(samples, window, max_lag=info.sample_rate // 50)
    assert r > 0.97
    assert abs(lag) <= info.sample_rate // 50


def test_cut_audio_replaces_an_old_file_atomically(media: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "c.wav"
    target.write_bytes(b"stale")
    cut_audio(media["flac-44k-stereo"], 0.0, 1.0, target)
    assert sf.info(str(target)).frames == 44_100


def test_cut_audio_rejects_a_window_past_the_end(media: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"clip window ends at 3\.500 s, past the media's end"):
        cut_audio(media["wav-48k-stereo"], 2.0, 3.5, tmp_path / "c.wav")
    with pytest.raises(MediaError, match=r"clip window \[2\.0, 1\.0\) s; expected 0 <= start"):
        cut_audio(media["wav-48k-stereo"], 2.0, 1.0, tmp_path / "c.wav")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["wav-48k-stereo", "webm-vp8-opus"])
def test_cut_audio_of_cut_data_leaves_nothing_behind(
    media: dict[str, Path], tmp_path: Path, name: str
) -> None:
    cut = truncate(media[name], tmp_path / f"cut{media[name].suffix}", keep=0.4)
    out = tmp_path / "out"
    with pytest.raises(MediaError, match=r"cut\.\w+: .*(decoding stopped|cannot cut)"):
        cut_audio(cut, 2.0, 2.9, out / "c.wav")
    assert not out.exists() or not list(out.iterdir())


# --- channel roles -------------------------------------------------------------------------


def bursts(rate: int, spans: list[tuple[float, float]], seconds: float, f0: float) -> np.ndarray:
    """Harmonic bursts (f0 and 5 harmonics, 4 Hz syllable envelope) over ``spans``, 1-D."""
    t = np.arange(round(seconds * rate)) / rate
    tone = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 7))
    envelope = np.zeros_like(t)
    for start, end in spans:
        inside = (t >= start) & (t < end)
        envelope[inside] = 0.6 + 0.4 * np.abs(np.sin(np.pi * 4 * (t[inside] - start)))
    return (0.2 * tone * envelope).astype(np.float32)


def two_performers(rate: int, bleed_db: float) -> np.ndarray:
    a = bursts(rate, [(0.5, 2.0), (4.5, 6.0), (8.5, 9.5)], 11.0, 130)
    b = bursts(rate, [(2.4, 4.1), (6.4, 8.0), (9.9, 10.8)], 11.0, 210)
    g = 10 ** (bleed_db / 20)
    rng = np.random.default_rng(SEED)
    noise = 0.002 * rng.standard_normal((2, len(a))).astype(np.float32)
    return np.stack([a + g * b, b + g * a]) + noise


def test_channel_roles_one_performer_per_channel() -> None:
    layout = channel_roles(two_performers(OUT_RATE, bleed_db=-20), OUT_RATE)
    assert layout.kind == "separate"
    assert layout.separate
    assert layout.co_activity < 0.1
    assert layout.level_difference > 15
    assert min(layout.owner_share) > 0.3


def test_channel_roles_plain_stereo_mix() -> None:
    performers = two_performers(OUT_RATE, bleed_db=-20)
    mix = performers.sum(axis=0)
    rng = np.random.default_rng(SEED + 1)
    # Slightly panned, with independent noise per channel: still one mix.
    stereo = np.stack([mix, 0.7 * mix]) + 0.002 * rng.standard_normal((2, len(mix)))
    layout = channel_roles(stereo.astype(np.float32), OUT_RATE)
    assert layout.kind == "mix"
    assert not layout.separate
    assert layout.co_activity > 0.9
    assert layout.energy_correlation > 0.9
    assert layout.level_difference == pytest.approx(20 * np.log10(1 / 0.7), abs=0.5)


def test_channel_roles_mono_and_dual_mono() -> None:
    performers = two_performers(OUT_RATE, bleed_db=-20)
    assert channel_roles(performers[0], OUT_RATE).kind == "mono"
    dual = np.stack([performers[0], performers[0]])
    layout = channel_roles(dual, OUT_RATE)
    assert (layout.kind, layout.co_activity, layout.level_difference) == ("mix", 1.0, 0.0)


def test_channel_roles_of_a_decoded_file(tmp_path: Path) -> None:
    path = tmp_path / "call.m4a"
    sf.write(tmp_path / "call.wav", two_performers(44_100, bleed_db=-25).T, 44_100)
    ffmpeg("-i", str(tmp_path / "call.wav"), "-c:a", "aac", "-b:a", "128k", str(path))
    audio = read_audio(path, OUT_RATE)
    assert channel_roles(audio, OUT_RATE).kind == "separate"


def test_media_info_is_frozen(media: dict[str, Path]) -> None:
    info = probe(media["wav-48k-stereo"])
    with pytest.raises(AttributeError):
        info.duration = 1.0  # type: ignore[misc]
    assert isinstance(info, MediaInfo)
