"""Media decoding: a long 44.1 kHz stereo recording read to 16 kHz, time and peak memory.

Generates (sox, ffmpeg; in a temporary folder) a ``--minutes`` long 44.1 kHz stereo
recording as 16-bit WAV and in compressed formats (MP3: libsndfile decodes it; M4A/AAC:
only ffmpeg does), then decodes each to 16 kHz with every channel kept:

- ours: ``importers.media.read_audio`` (soundfile blocks + ``soxr.ResampleStream``, or an
  ffmpeg pipe), including its header probe;
- peer: ``librosa.load(path, sr=16000, mono=False)`` (soundfile, or audioread's ffmpeg
  backend for M4A; soxr_hq resampling of the whole file).

Each run is a fresh child process that first decodes a 1-s file of the same format (so
lazy imports and first-use set-up are not counted; ours also runs voice activity on it, so
librosa is loaded in both children, as it is in an import). Reported: wall time, x real time, the
child's peak RSS (``VmHWM``), its RSS before the decode, and the peak RSS of its process
tree (it plus the ffmpeg decoder beside it), sampled every 10 ms. Target (issue #7): a
60-min 44.1 kHz stereo file imports with peak RSS under 1 GB.

    .venv/bin/python bench/media_decode.py              # 60 min: about 5 min on 2 cores
    .venv/bin/python bench/media_decode.py --quick      # 2 min of audio, a few seconds
    .venv/bin/python bench/media_decode.py --folder data/media-bench  # keep the files
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_MB = 1024
RATE = 16_000


def _status(field: str) -> float:
    """A ``/proc/self/status`` memory field in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(reader: str, path: str, warm_up: str) -> None:
    """Decode ``path`` once with ``reader`` and print one JSON line of figures.

    ``warm_up`` (a short file of the same format) is decoded first, so lazy imports and
    first-use set-up (librosa loads its submodules on first use) are not counted.
    """
    sys.path.insert(0, str(ROOT))
    import numpy as np

    if reader == "ours":
        from importers.media import read_audio
        from importers.vad import voice_activity

        def decode(name: str) -> np.ndarray:
            return read_audio(name, RATE)

        # As in an import: librosa loaded (voice activity runs on the decoded audio).
        voice_activity(decode(warm_up), RATE)
    else:
        import warnings

        import librosa

        def decode(name: str) -> np.ndarray:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # audioread's deprecation notice
                y, _ = librosa.load(name, sr=RATE, mono=False)
            return np.atleast_2d(y)

    decode(warm_up)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    base = _status("VmRSS")
    print("START", flush=True)  # the parent samples the process tree from here ...
    start = time.perf_counter()
    audio = decode(path)
    seconds = time.perf_counter() - start
    print("END", flush=True)  # ... to here
    peak = _status("VmHWM")  # before the check below allocates anything
    step = 1 << 20
    squares = sum(
        np.sum(np.square(audio[:, i : i + step], dtype=np.float64), axis=1)
        for i in range(0, audio.shape[1], step)
    )
    rms = np.sqrt(squares / audio.shape[1])
    print(
        json.dumps(
            {
                "seconds": seconds,
                "shape": list(audio.shape),
                "dtype": str(audio.dtype),
                "array_mb": audio.nbytes / 2**20,
                "rss_before_mb": base,
                "peak_rss_mb": peak,
                "rms": [round(float(x), 5) for x in rms],
            }
        )
    )


def _tree_rss_mb(pid: int) -> float:
    """RSS of a process and all its descendants, in MB (0 for those already gone)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total / 1024


def run_child(reader: str, path: Path, warm_up: Path) -> dict:
    """Run one child; sample the RSS of its process tree (it and its ffmpeg) every 10 ms
    while it decodes (between its START and END lines)."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", reader, str(path), str(warm_up)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader_thread = threading.Thread(target=lambda: lines.extend(proc.stdout or []))
    reader_thread.start()
    peak = 0.0
    while proc.poll() is None:
        if lines and lines[-1].strip() == "START":
            peak = max(peak, _tree_rss_mb(proc.pid))
        time.sleep(0.01)
    reader_thread.join()
    err = proc.stderr.read() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{reader} on {path.name} failed:\n{err}")
    return json.loads(lines[-1]) | {"tree_peak_mb": peak}


def generate(folder: Path, stem: str, seconds: int) -> dict[str, Path]:
    """A recording as WAV (sox: a tone, pink noise and a slow tremolo), MP3 and M4A
    (ffmpeg, 128 kb/s)."""
    wav = folder / f"{stem}.wav"
    names = {"wav": wav, "mp3": wav.with_suffix(".mp3"), "m4a": wav.with_suffix(".m4a")}
    if all(p.exists() for p in names.values()):
        return names  # kept from an earlier run with --folder
    subprocess.run(
        [
            *("sox", "-n", "-r", "44100", "-b", "16", "-c", "2", str(wav), "synth"),
            *(str(seconds), "sine", "220", "pinknoise", "tremolo", "0.3", "60", "gain", "-6"),
        ],
        check=True,
    )
    files = {"wav": wav}
    for name, codec in (("mp3", "libmp3lame"), ("m4a", "aac")):
        target = folder / f"{stem}.{name}"
        encode = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(wav)]
        subprocess.run([*encode, "-c:a", codec, "-b:a", "128k", str(target)], check=True)
        files[name] = target
    return files


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="2 minutes of audio")
    parser.add_argument("--formats", default="wav,mp3,m4a")
    parser.add_argument(
        "--folder", help="generate the recordings here and keep them (reused when present)"
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    minutes = 2.0 if args.quick else args.minutes
    print(f"start: {load()}; {os.cpu_count()} cores; python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="media-decode-") as tmp:
        folder = Path(args.folder or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        files = generate(folder, f"long-{minutes:g}min", round(minutes * 60))
        warm = generate(folder, "warm", 1)
        sizes = ", ".join(f"{k} {p.stat().st_size / 2**20:.0f} MB" for k, p in files.items())
        took = time.perf_counter() - started
        print(f"generated {minutes:g} min of 44.1 kHz stereo in {took:.0f} s: {sizes}")
        duration = minutes * 60
        print(
            f"{'file':<5} {'reader':<8} {'wall s':>7} {'x real':>7} {'VmHWM':>6} {'before':>7} "
            f"{'tree peak':>9} {'array':>6}  shape, RMS per channel   (memory in MB)"
        )
        rows = {}
        formats = args.formats.split(",")
        for fmt in formats:
            for reader in ("ours", "librosa"):
                r = run_child(reader, files[fmt], warm[fmt])
                rows[fmt, reader] = r
                print(
                    f"{fmt:<5} {reader:<8} {r['seconds']:>7.2f} {duration / r['seconds']:>7.0f} "
                    f"{r['peak_rss_mb']:>6.0f} {r['rss_before_mb']:>7.0f} "
                    f"{r['tree_peak_mb']:>9.0f} {r['array_mb']:>6.0f}  "
                    f"{tuple(r['shape'])}, {r['rms']}",
                    flush=True,
                )
        print(f"\nratios librosa / ours; target: peak RSS (process tree) < {TARGET_MB} MB")
        for fmt in formats:
            ours, peer = rows[fmt, "ours"], rows[fmt, "librosa"]
            peak = max(ours["peak_rss_mb"], ours["tree_peak_mb"])
            peer_peak = max(peer["peak_rss_mb"], peer["tree_peak_mb"])
            same = ours["shape"][0] == peer["shape"][0] and all(
                abs(a - b) <= 0.01 * max(b, 1e-9)
                for a, b in zip(ours["rms"], peer["rms"], strict=True)
            )
            length = abs(ours["shape"][1] - peer["shape"][1]) / RATE
            met = "met" if peak < TARGET_MB else "MISSED"
            growth = peak - ours["rss_before_mb"]
            peer_growth = peer_peak - peer["rss_before_mb"]
            print(
                f"{fmt:<5} time {peer['seconds'] / ours['seconds']:.2f}x, "
                f"peak RSS {peer_peak / peak:.2f}x (ours {peak:.0f} MB, librosa "
                f"{peer_peak:.0f} MB), growth {peer_growth / growth:.2f}x ({growth:.0f} vs "
                f"{peer_growth:.0f} MB): target {met}; channels and RMS within 1%: {same}; "
                f"lengths differ by {length:.3f} s"
            )
    print(f"end: {load()}")


if __name__ == "__main__":
    main()
