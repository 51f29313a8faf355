"""Export speed and memory: turn-level JSONL from a store of N judgements.

Builds a SQLite store of ``--turns`` turns x 5 annotators (emotion only: one judgement per
annotator per turn; 10 turns a clip), bulk-inserted, then times ``export_dataset`` (JSONL
and the data card) in a fresh subprocess per run and reads the peak RSS of that process
and of its worker processes. Each size is exported in-process (``workers=1``, the peer) and
with a pool of worker processes (``--workers``, default 2); the ratio is printed. Several
sizes show whether memory grows with the data. Label Studio's own JSON snapshot export is
timed side by side in bench/export_vs_label_studio.py.

    .venv/bin/python bench/export_speed.py                       # 20k, 60k, 200k turns
    .venv/bin/python bench/export_speed.py --turns 200000 --workers 2
    .venv/bin/python bench/export_speed.py --quick               # 2,000 turns
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlmodel import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.db import init_db, make_engine  # noqa: E402
from api.models import Annotation, Judgement, Task  # noqa: E402
from schemas.taxonomy import load_taxonomy  # noqa: E402

ANNOTATORS = 5
TURNS_PER_CLIP = 10


def build(db_path: Path, turns: int, seed: int = 0) -> int:
    """A store of ``turns`` turns x 5 annotators; returns the number of judgements."""
    tax = load_taxonomy()
    labels = list(tax.emotion.values)
    rng = np.random.default_rng(seed)
    engine = make_engine(f"sqlite:///{db_path}")
    init_db(engine)
    now = datetime.now(UTC)
    clips = turns // TURNS_PER_CLIP
    truth = rng.integers(0, len(labels), size=turns)
    noise = rng.random((turns, ANNOTATORS)) < 0.25
    given = np.where(noise, rng.integers(0, len(labels), size=(turns, ANNOTATORS)), truth[:, None])
    with engine.begin() as conn:
        conn.execute(
            Task.__table__.insert(),
            [  # type: ignore[attr-defined]
                {
                    "id": c + 1,
                    "project_id": 1,
                    "clip_id": f"s{c // 20}-c{c % 20:03d}",
                    "session_id": f"s{c // 20}",
                    "deleted": False,
                    "data": {
                        "session_id": f"s{c // 20}",
                        "clip_id": f"s{c // 20}-c{c % 20:03d}",
                        "audio": f"/data/local-files/?d=s{c // 20}/c{c}.wav",
                        "audio_offset": 0.0,
                        "prompt": "a scene",
                        "dialogue": [
                            {
                                "turn_id": f"s{c // 20}-t{c * 10 + i:07d}",
                                "turn_index": c * 10 + i,
                                "performer": f"p{c // 20}-{i % 2}",
                                "speaker": f"P{i % 2}",
                                "text": f"line {i}",
                                "start": 2.0 * i,
                                "end": 2.0 * i + 1.5,
                            }
                            for i in range(TURNS_PER_CLIP)
                        ],
                    },
                }
                for c in range(clips)
            ],
        )
        conn.execute(
            Annotation.__table__.insert(),
            [  # type: ignore[attr-defined]
                {
                    "id": c * ANNOTATORS + a + 1,
                    "project_id": 1,
                    "task_id": c + 1,
                    "annotator": str(a + 1),
                    "was_cancelled": False,
                    "ground_truth": False,
                    "deleted": False,
                    "updated_at": now,
                    "created_at": now,
                    "received_at": now,
                    "skipped": {},
                }
                for c in range(clips)
                for a in range(ANNOTATORS)
            ],
        )
        rows = []
        for t in range(turns):
            c = t // TURNS_PER_CLIP
            for a in range(ANNOTATORS):
                rows.append(
                    {
                        "project_id": 1,
                        "annotation_id": c * ANNOTATORS + a + 1,
                        "task_id": c + 1,
                        "annotator": str(a + 1),
                        "turn_id": f"s{c // 20}-t{t:07d}",
                        "dimension": "emotion",
                        "value": labels[int(given[t, a])],
                        "taxonomy": tax.name,
                        "taxonomy_version": tax.version,
                    }
                )
            if len(rows) >= 100_000:
                conn.execute(Judgement.__table__.insert(), rows)  # type: ignore[attr-defined]
                rows = []
        if rows:
            conn.execute(Judgement.__table__.insert(), rows)  # type: ignore[attr-defined]
    engine.dispose()
    return turns * ANNOTATORS


def run_export(db_path: Path, out: Path, workers: int) -> None:
    """The measured part (in its own process): export JSONL with the data card."""
    from exporters import ExportOptions, export_dataset

    engine = make_engine(f"sqlite:///{db_path}")
    started = time.perf_counter()
    cpu = time.process_time()
    with Session(engine) as db:
        report = export_dataset(
            db,
            1,
            load_taxonomy(),
            out,
            formats=["jsonl"],
            options=ExportOptions(salt="bench"),
            n_boot=200,
            workers=workers,
        )
    seconds = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu": time.process_time() - cpu + children.ru_utime + children.ru_stime,
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "worker_peak_mb": children.ru_maxrss / 1024 if workers > 1 else 0.0,
                "rows": report.rows,
                "judgements": report.accounting.exported,
                "bytes": (out / "turns.jsonl").stat().st_size,
            }
        )
    )


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def measure(db: Path, out: Path, workers: int) -> dict[str, float]:
    """One export in a fresh process; its figures."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(db), str(out), str(workers)],
        capture_output=True,
        text=True,
        check=True,
    )
    shutil.rmtree(out, ignore_errors=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Build the stores, export each in subprocesses, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, nargs="+", default=[20_000, 60_000, 200_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="one small store (2,000 turns)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_export(Path(args.child[0]), Path(args.child[1]), int(args.child[2]))
        return
    sizes = [2_000] if args.quick else args.turns
    print(f"start: {_load()} (2 cores shared with other work)")
    print(
        "| turns | judgements | workers | time | judgements/s | CPU | peak RSS main | "
        "peak RSS worker | vs 1 process |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for turns in sizes:
        with tempfile.TemporaryDirectory() as scratch:
            db = Path(scratch) / "store.db"
            n = build(db, turns)
            peer = None
            for workers in (1, args.workers) if args.workers > 1 else (1,):
                f = measure(db, Path(scratch) / "out", workers)
                peer = peer or f["seconds"]
                print(
                    f"| {turns:,} | {n:,} | {workers} | {f['seconds']:.1f} s | "
                    f"{f['judgements'] / f['seconds']:,.0f} | {f['cpu']:.1f} s | "
                    f"{f['peak_mb']:.0f} MB | "
                    + (f"{f['worker_peak_mb']:.0f} MB" if workers > 1 else "-")
                    + f" | {peer / f['seconds']:.2f}x |",
                    flush=True,
                )
    print(f"end: {_load()}")
    print("target: 1,000,000 judgements in < 30 s, memory flat in the data")


if __name__ == "__main__":
    main()
