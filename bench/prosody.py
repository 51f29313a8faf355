"""Per-turn prosody on a 60-min stereo session: ours against librosa.pyin and openSMILE.

Generates (once, cached) the long session of :mod:`bench.long_session` (44.1 kHz stereo
FLAC, one espeak-ng voice a channel, VTT transcript), decodes each channel at 16 kHz, then
measures side by side, each in a process of its own:

1. ``importers.prosody.turn_features`` over every turn (its own threads, ``--workers``);
2. ``librosa.pyin`` with the same band and framing over the same turns (a process pool of
   ``--workers``): the accuracy reference and a speed peer;
3. openSMILE eGeMAPSv02 functionals per turn (a process pool of ``--workers``), if the
   ``opensmile`` package is installed (a yardstick only: its licence rules out commercial
   use, so it is not a dependency).

Prints x real time (session length / wall time, and speech length / wall time), CPU cores
used (CPU time / wall time), peak RSS, the ratios, the pitch agreement with librosa.pyin
(per-turn median F0 error in semitones: mean, 95th percentile; correlation of the per-turn
F0 range) and numba's compile time with a cold and a warm cache.

    .venv/bin/python bench/prosody.py              # 60 min; about 10 min on 2 idle cores
    .venv/bin/python bench/prosody.py --quick      # 5 min session, smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.long_session import make_long_session  # noqa: E402

CACHE = Path(tempfile.gettempdir()) / "improv-annotate-bench"
RATE = 16_000
TARGET_X = 60.0


def uptime() -> str:
    """The load averages, as ``uptime`` prints them."""
    return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def peak_rss_mb() -> float:
    """This process's peak resident set size, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def decode(media: Path) -> np.ndarray:
    """All channels of ``media`` at 16 kHz, float32 (channels, samples), in blocks."""
    try:
        from importers.media import read_audio
    except ImportError:  # an older tree: soundfile blocks through a streaming resampler
        import soundfile as sf
        import soxr

        info = sf.info(str(media))
        stream = soxr.ResampleStream(info.samplerate, RATE, info.channels, dtype="float32")
        parts = [
            stream.resample_chunk(block)
            for block in sf.blocks(str(media), blocksize=1 << 20, dtype="float32", always_2d=True)
        ]
        parts.append(stream.resample_chunk(np.zeros((0, info.channels), np.float32), last=True))
        return np.ascontiguousarray(np.concatenate(parts).T)
    return read_audio(media, RATE)


def pitch_stats(f0: np.ndarray, voiced: np.ndarray) -> dict[str, float | None]:
    """Median (Hz) and 5-95 % range (semitones) of the voiced frames; None if under 3."""
    if int(voiced.sum()) < 3:
        return {"median": None, "range": None}
    st = 12 * np.log2(f0[voiced])
    return {
        "median": float(np.median(f0[voiced])),
        "range": float(np.percentile(st, 95) - np.percentile(st, 5)),
    }


def clean_twin(folder: Path, minutes: float) -> Any:
    """The same session without noise floor and bleed (same turns, same voices)."""
    return make_long_session(
        folder.with_name(folder.name + "-clean"), minutes, noise_dbfs=None, bleed_db=None
    )


def load(folder: Path, minutes: float) -> tuple[Any, list[dict], np.ndarray]:
    """The session, its turns and its channels at 16 kHz."""
    session = make_long_session(folder, minutes)
    return session, session.turns(), decode(session.media)


def segment(audio: np.ndarray, turn: dict) -> np.ndarray:
    """A turn's samples from its own channel."""
    channel = audio[turn["channel"]]
    return channel[round(turn["start"] * RATE) : round(turn["end"] * RATE)]


# ------------------------------------------------------------------------------ stages


def stage_ours(folder: Path, minutes: float, workers: int) -> dict:
    """turn_features per channel over every turn, timed; then the plain pYIN track, untimed."""
    from importers import prosody

    prosody.configure_numba_cache()
    prosody.warm_up()
    t0 = time.perf_counter()
    _, turns, audio = load(folder, minutes)
    decode_s = time.perf_counter() - t0
    spans = [(t["start"], t["end"]) for t in turns]
    rows: list[dict | None] = [None] * len(turns)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for channel in range(audio.shape[0]):
        mine = [i for i, t in enumerate(turns) if t["channel"] == channel]
        got = prosody.turn_features(
            audio[channel],
            RATE,
            [(turns[i]["start"], turns[i]["end"], turns[i]["text"]) for i in mine],
            all_turns=spans,
            workers=workers,
        )
        for i, row in zip(mine, got, strict=True):
            rows[i] = row
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    rss_mb = peak_rss_mb()  # the decoded channels (2 x 230 MB for 60 min) and the features
    plain = []
    for turn in turns:
        f0, voiced, _ = prosody.pitch_track(segment(audio, turn))
        plain.append(pitch_stats(f0, voiced))
    # Truth proxy: plain pYIN on the same session rendered without noise and bleed.
    clean_audio = decode(clean_twin(folder, minutes).media)
    truth = []
    for turn in turns:
        f0, voiced, _ = prosody.pitch_track(segment(clean_audio, turn))
        truth.append(pitch_stats(f0, voiced))
    return {
        "wall": wall,
        "cpu": cpu,
        "decode_s": decode_s,
        "rss_mb": rss_mb,
        "rows": rows,
        "plain": plain,
        "truth": truth,
    }


def _pyin_init() -> None:
    import librosa

    librosa.pyin(
        np.zeros(RATE, np.float32),
        sr=RATE,
        fmin=50.0,
        fmax=800.0,
        frame_length=1024,
        hop_length=320,
    )


def _pyin_task(y: np.ndarray) -> tuple[dict, float, float]:
    import librosa

    from importers.prosody import PitchParams

    p = PitchParams()
    c0 = time.process_time()
    f0, voiced, _ = librosa.pyin(
        y,
        sr=RATE,
        fmin=p.fmin,
        fmax=p.fmax,
        frame_length=p.frame_length,
        hop_length=p.hop_length,
    )
    return pitch_stats(f0, voiced), time.process_time() - c0, peak_rss_mb()


_SMILE: Any = None


def _smile_init() -> None:
    global _SMILE
    import opensmile

    _SMILE = opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.Functionals,
    )
    _SMILE.process_signal(np.zeros(RATE, np.float32), RATE)


def _smile_task(y: np.ndarray) -> tuple[dict, float, float]:
    c0 = time.process_time()
    frame = _SMILE.process_signal(y, RATE)
    f0 = float(frame["F0semitoneFrom27.5Hz_sma3nz_amean"].iloc[0])
    return {"f0_semitone_mean": f0}, time.process_time() - c0, peak_rss_mb()


def stage_pool(folder: Path, minutes: float, workers: int, peer: str) -> dict:
    """A peer over every turn in a pool of ``workers`` processes (warmed up before timing)."""
    init, task = {"pyin": (_pyin_init, _pyin_task), "opensmile": (_smile_init, _smile_task)}[peer]
    _, turns, audio = load(folder, minutes)
    pieces = [np.ascontiguousarray(segment(audio, t)) for t in turns]
    del audio
    with ProcessPoolExecutor(workers, initializer=init) as pool:
        list(pool.map(time.sleep, [1.0] * workers))  # start every worker, run initializers
        wall0 = time.perf_counter()
        results = list(pool.map(task, pieces, chunksize=4))
        wall = time.perf_counter() - wall0
    return {
        "wall": wall,
        "cpu": sum(r[1] for r in results),
        "rss_mb": max([peak_rss_mb()] + [r[2] for r in results]),
        "rows": [r[0] for r in results],
    }


def stage_compile(kind: str) -> dict:
    """Seconds to import and run once: ``ours`` (importers.prosody) or ``librosa`` (pyin)."""
    t0 = time.perf_counter()
    if kind == "ours":
        from importers import prosody

        prosody.warm_up()
    else:
        _pyin_init()
    return {"seconds": time.perf_counter() - t0}


def run_stage(name: str, args: argparse.Namespace, env: dict | None = None) -> dict:
    """Run one stage in a fresh interpreter; return its JSON result."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    cmd = [
        sys.executable,
        __file__,
        "--stage",
        name,
        "--folder",
        str(args.folder),
        "--minutes",
        str(args.minutes),
        "--workers",
        str(args.workers),
        "--out",
        str(out),
    ]
    done = subprocess.run(cmd, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"stage {name} failed ({done.returncode})")
    result = json.loads(out.read_text())
    out.unlink()
    return result


# ------------------------------------------------------------------------------ report


def agreement(ours: list[dict], ref: list[dict]) -> dict[str, float]:
    """Median-F0 error (semitones) and F0-range correlation over turns pitched by both."""
    pairs = [
        (o, r)
        for o, r in zip(ours, ref, strict=True)
        if o["median"] is not None and r["median"] is not None
    ]
    err = np.array([abs(12 * np.log2(o["median"] / r["median"])) for o, r in pairs])
    ranges = np.array([(o["range"], r["range"]) for o, r in pairs])
    only_one = sum(
        (o["median"] is None) != (r["median"] is None) for o, r in zip(ours, ref, strict=True)
    )
    return {
        "turns": len(pairs),
        "pitched_by_one_only": only_one,
        "err_mean": float(err.mean()),
        "err_p95": float(np.percentile(err, 95)),
        "err_max": float(err.max()),
        "share_within_0.5": float(np.mean(err <= 0.5)),
        "range_corr": float(np.corrcoef(ranges[:, 0], ranges[:, 1])[0, 1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="a 5-min session")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--no-pyin", action="store_true")
    parser.add_argument("--no-opensmile", action="store_true")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.minutes = 5.0
    if args.folder is None:
        args.folder = CACHE / f"long-{args.minutes:g}min"
    if args.stage:
        if args.stage == "ours":
            result = stage_ours(args.folder, args.minutes, args.workers)
        elif args.stage in ("pyin", "opensmile"):
            result = stage_pool(args.folder, args.minutes, args.workers, args.stage)
        else:
            result = stage_compile(args.stage.removeprefix("compile-"))
        args.out.write_text(json.dumps(result))
        return

    print(f"bench/prosody.py  {time.strftime('%Y-%m-%d %H:%M:%S')}  start {uptime()}")
    print(f"cores: {os.cpu_count()}; workers: {args.workers}")
    t0 = time.perf_counter()
    session = make_long_session(args.folder, args.minutes)
    clean_twin(args.folder, args.minutes)
    print(
        f"session: {session.duration / 60:.0f} min, {session.sample_rate} Hz stereo FLAC, "
        f"{session.n_turns} turns, {session.speech_seconds / 60:.1f} min of speech "
        f"(ready in {time.perf_counter() - t0:.1f} s) at {session.folder}"
    )

    # numba: cold cache (a fresh folder) then warm (the same folder again).
    compile_rows = []
    with tempfile.TemporaryDirectory(prefix="numba-cold-") as cold:
        env = os.environ | {"NUMBA_CACHE_DIR": cold}
        for kind in ("ours", "librosa"):
            first = run_stage(f"compile-{kind}", args, env)["seconds"]
            again = run_stage(f"compile-{kind}", args, env)["seconds"]
            compile_rows.append((kind, first, again))
    for kind, first, again in compile_rows:
        what = "import + warm_up()" if kind == "ours" else "import librosa + pyin(1 s)"
        print(f"numba {kind:8s} {what:28s} cold cache {first:5.1f} s, warm cache {again:5.1f} s")

    ours = run_stage("ours", args)
    results = {"ours": ours}
    if not args.no_pyin:
        results["librosa.pyin"] = run_stage("pyin", args)
    if not args.no_opensmile:
        try:
            import opensmile  # noqa: F401
        except ImportError:
            print("openSMILE: not installed (pip install opensmile); skipped")
        else:
            results["openSMILE eGeMAPS"] = run_stage("opensmile", args)

    speech = session.speech_seconds
    print()
    print(
        f"decode 2 channels to 16 kHz (importers.media.read_audio): {ours['decode_s']:.1f} s "
        f"({session.duration / ours['decode_s']:.0f}x real time), not included below"
    )
    print(
        f"{'':20s} {'wall s':>8s} {'x rt':>7s} {'x speech':>9s} {'cores':>6s} "
        f"{'CPU s':>7s} {'x rt/CPU':>9s} {'peak RSS':>9s}"
    )
    for name, r in results.items():
        print(
            f"{name:20s} {r['wall']:8.1f} {session.duration / r['wall']:7.1f} "
            f"{speech / r['wall']:9.1f} {r['cpu'] / r['wall']:6.2f} {r['cpu']:7.1f} "
            f"{session.duration / r['cpu']:9.1f} {r['rss_mb']:7.0f} MB"
        )
    print("(x rt: session length / wall time; x speech: turn time / wall time; cores: CPU time")
    print(" / wall time; x rt/CPU: session length / CPU time, i.e. per busy core)")
    for name, r in results.items():
        if name != "ours":
            print(
                f"ours is {r['wall'] / ours['wall']:.1f}x faster than {name} (wall), "
                f"{r['cpu'] / ours['cpu']:.1f}x less CPU"
            )
    x_rt = session.duration / ours["wall"]
    per_core = session.duration / ours["cpu"]
    print(
        f"target >= {TARGET_X:.0f}x real time on {args.workers} cores: ours {x_rt:.0f}x wall "
        f"-> {'met' if x_rt >= TARGET_X else 'MISSED'} (with {ours['cpu'] / ours['wall']:.2f} "
        f"cores free to it; {per_core:.0f}x per busy core)"
    )

    features = [
        {"median": row["f0_median_hz"], "range": row["f0_range_st"]} for row in ours["rows"]
    ]
    comparisons = []
    if "librosa.pyin" in results:
        ref = results["librosa.pyin"]["rows"]
        comparisons += [
            ("pitch_track (plain pYIN)", ours["plain"], "librosa.pyin", ref),
            ("turn_features (defaults)", features, "librosa.pyin", ref),
            ("librosa.pyin", ref, "truth proxy", ours["truth"]),
        ]
    comparisons += [
        ("pitch_track (plain pYIN)", ours["plain"], "truth proxy", ours["truth"]),
        ("turn_features (defaults)", features, "truth proxy", ours["truth"]),
    ]
    print()
    print("pitch per turn (band 50-800 Hz, frame 1024, hop 320 at 16 kHz); truth proxy: plain")
    print("pYIN on the same session rendered without noise floor and bleed:")
    for label, mine, against, ref in comparisons:
        a = agreement(mine, ref)
        ok = a["err_p95"] <= 0.5 and a["range_corr"] >= 0.9
        print(
            f"  {label:26s} vs {against:12s} turns {a['turns']}: median-F0 error mean "
            f"{a['err_mean']:.3f} st, p95 {a['err_p95']:.3f} st, max {a['err_max']:.2f} st, "
            f"{100 * a['share_within_0.5']:.1f} % within 0.5 st; F0-range r = "
            f"{a['range_corr']:.3f}; pitched by one only: {a['pitched_by_one_only']} "
            f"-> {'met' if ok else 'MISSED'}"
        )
    print(f"end {uptime()}")


if __name__ == "__main__":
    main()
