"""Export speed and memory: turn-level JSONL from a store of N judgements.

Builds a SQLite store of ``--turns`` turns x 5 annotators (emotion only: one judgement per
annotator per turn; 10 turns a clip), bulk-inserted, then times ``export_dataset`` (JSONL
and the data card) in a fresh subprocess and reads its peak RSS. Run it at two sizes to see
whether memory grows with the data. Peer: Label Studio's own JSON snapshot export, measured
on 2 cores at 12.5 s for 10,000 annotations (see bench/export_vs_label_studio.py for the
side-by-side run).

    .venv/bin/python bench/export_speed.py --turns 200000
"""

from __future__ import annotations

import argparse
import json
import resource
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


def run_export(db_path: Path, out: Path) -> None:
    """The measured part (in its own process): export JSONL with the data card."""
    from exporters import ExportOptions, export_dataset

    engine = make_engine(f"sqlite:///{db_path}")
    started = time.perf_counter()
    with Session(engine) as db:
        report = export_dataset(
            db,
            1,
            load_taxonomy(),
            out,
            formats=["jsonl"],
            options=ExportOptions(salt="bench"),
            n_boot=200,
        )
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_mb": peak,
                "rows": report.rows,
                "judgements": report.accounting.exported,
            }
        )
    )


def main() -> None:
    """Build the store, export it in a subprocess, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=200_000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_export(Path(args.child[0]), Path(args.child[1]))
        return
    with tempfile.TemporaryDirectory() as scratch:
        db = Path(scratch) / "store.db"
        started = time.perf_counter()
        n = build(db, args.turns)
        print(
            f"store: {args.turns} turns, {n} judgements, built in "
            f"{time.perf_counter() - started:.1f} s"
        )
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(db), str(Path(scratch) / "out")],
            capture_output=True,
            text=True,
            check=True,
        )
        figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"export: {figures['rows']} rows ({figures['judgements']} judgements) in "
        f"{figures['seconds']:.1f} s, {figures['judgements'] / figures['seconds']:,.0f} "
        f"judgements/s, peak RSS {figures['peak_mb']:.0f} MB"
    )


if __name__ == "__main__":
    main()
