"""Importing a 60-min stereo session with full per-turn features, stage by stage, against
openSMILE eGeMAPS on the same turns.

The session is the one :mod:`bench.long_session` generates (44.1 kHz stereo FLAC, one
espeak-ng voice a channel with bleed and a noise floor, a WebVTT transcript; cached). In a
fresh process (so numba's cache and the peak RSS are its own) we run what
``improv-annotate import --dry-run`` runs: read session.yaml, probe the media, read and
check the transcript, decode both channels to 16 kHz, per-turn prosody on each performer's
channel, cut one WAV per clip and build the tasks; the progress callback stamps each
stage. Reported: seconds and x real time per stage and in all, CPU cores used, peak RSS.

The peer, in its own process pool of the same number of workers: openSMILE's eGeMAPSv02
functionals per turn (``bench/prosody.py``'s runner; its decoding is not timed, ours is), if
the ``opensmile`` package is installed. It is a yardstick only (its licence rules out
commercial use).

    .venv/bin/python bench/import_session.py             # 60 min
    .venv/bin/python bench/import_session.py --minutes 5 # smoke run
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.long_session import make_long_session  # noqa: E402

CACHE = Path(tempfile.gettempdir()) / "improv-annotate-bench"


def run_import(folder: Path) -> dict:
    """The import of ``folder`` (dry run), in this process; seconds per stage."""
    from importers import ImportOptions, prepare_session
    from schemas.taxonomy import load_taxonomy

    stamps: list[tuple[str, float]] = [("start", time.perf_counter())]

    def progress(session: str, stage: str, done: int, total: int) -> None:
        if stage != stamps[-1][0]:
            stamps.append((stage, time.perf_counter()))

    cpu0 = time.process_time()
    with tempfile.TemporaryDirectory() as media:
        session, tasks = prepare_session(
            folder,
            Path(media),
            load_taxonomy(),
            ImportOptions(max_seconds=45.0, prosody=True),
            progress=progress,
        )
    stamps.append(("end", time.perf_counter()))
    names = {
        "start": "read session.yaml, probe, transcript",
        "decoding audio": "decode 2 channels to 16 kHz",
        "prosody": "prosody per turn",
        "cutting clips": "cut clip WAVs, build tasks",
    }
    stages = [(names.get(a[0], a[0]), b[1] - a[1]) for a, b in itertools.pairwise(stamps)]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "stages": stages,
        "wall": stamps[-1][1] - stamps[0][1],
        "cpu": time.process_time() - cpu0 + children.ru_utime + children.ru_stime,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "turns": len(session.turns),
        "clips": len(tasks),
        "with_pitch": sum(1 for t in session.turns if t.prosody and t.prosody["f0_median_hz"]),
        "duration": session.duration,
    }


def main() -> None:
    """Generate the session if needed, run our import and the peer, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2, help="openSMILE's process pool")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.out.write_text(json.dumps(run_import(args.child)))
        return
    folder = CACHE / f"long-{args.minutes:g}min"
    print(f"session: {folder} (generated once, then reused)", flush=True)
    long = make_long_session(folder, args.minutes)
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    load = os.getloadavg()
    subprocess.run(
        [sys.executable, __file__, "--child", str(folder), "--out", str(out)], check=True
    )
    ours = json.loads(out.read_text())
    out.unlink()
    peer = None
    try:
        import opensmile  # noqa: F401

        from bench import prosody as peer_bench

        ns = argparse.Namespace(folder=folder, minutes=args.minutes, workers=args.workers)
        peer = peer_bench.run_stage("opensmile", ns)
    except ImportError:
        print("openSMILE is not installed (pip install opensmile): no peer run")
    duration = ours["duration"]
    print(
        f"\n{duration / 60:.0f}-min session, {long.sample_rate} Hz stereo FLAC: "
        f"{ours['turns']} turns ({ours['with_pitch']} with pitch), {ours['clips']} clips; "
        f"load average before {load[0]:.1f}\n"
    )
    print(f"{'stage':<40} {'seconds':>8} {'x real time':>12}")
    for name, seconds in ours["stages"]:
        print(f"{name:<40} {seconds:8.2f} {duration / seconds:12.0f}")
    print(
        f"{'whole import (dry run)':<40} {ours['wall']:8.2f} {duration / ours['wall']:12.0f}"
        f"   cores used {ours['cpu'] / ours['wall']:.2f}, peak RSS {ours['rss_mb']:.0f} MB"
    )
    if peer is not None:
        print(
            f"{'peer: openSMILE eGeMAPS per turn':<40} {peer['wall']:8.2f} "
            f"{duration / peer['wall']:12.0f}   ({args.workers} processes, decoding not timed)"
        )
        print(f"\nratio openSMILE / our whole import: {peer['wall'] / ours['wall']:.2f}x")


if __name__ == "__main__":
    main()
