"""Our export against Label Studio's own JSON snapshot export, side by side in one run.

Starts a real Label Studio on a free loopback port (data in a temporary folder), creates
the project for the default taxonomy, and imports ``--annotations`` annotations (default
10,000) embedded in their tasks: clips of 8 turns, 4 annotators a clip, every dimension of
the taxonomy and a shift span on some, encoded by ``schemas.codec.encode_annotation``
exactly as the labeling interface saves them. Then, timed one after the other:

(a) Label Studio's snapshot export: create the export, wait until it has completed,
    download the JSON (the peer);
(b) pulling the annotations into a SQLite store (``reconcile.reconcile`` over the REST API,
    what the service's periodic sync does), timed separately;
(c) our export of that store to JSONL with the data card (``export_dataset``);
(d) our export offline from Label Studio's JSON file (``export_label_studio_file``).

    .venv/bin/python bench/export_vs_label_studio.py
    .venv/bin/python bench/export_vs_label_studio.py --quick     # 400 annotations
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sqlmodel import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from annotate import stack  # noqa: E402
from annotate.config import load_settings, with_local_secrets  # noqa: E402
from annotate.labelstudio import (  # noqa: E402
    connect,
    ensure_account,
    ensure_project,
    invite_link,
    pull_events,
)
from api import reconcile  # noqa: E402
from api.db import init_db, make_engine  # noqa: E402
from exporters import ExportOptions, export_dataset, export_label_studio_file  # noqa: E402
from schemas.codec import encode_annotation  # noqa: E402
from schemas.taxonomy import load_taxonomy  # noqa: E402
from tests.conftest import write_config  # noqa: E402
from tests.payloads import dialogue  # noqa: E402

TURNS_PER_CLIP = 8
ANNOTATORS = 4
IMPORT_BATCH = 100  # tasks per import request


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def build_tasks(n_tasks: int, users: list[int], seed: int = 0) -> list[dict[str, Any]]:
    """Tasks of 8-turn clips, each with one annotation per user (all dimensions)."""
    tax = load_taxonomy()
    rng = np.random.default_rng(seed)
    emotions = list(tax.emotion.values)
    tasks = []
    for t in range(n_tasks):
        session = f"s{t // 10:04d}"
        lines = dialogue(TURNS_PER_CLIP, session_id=session, clip=t % 10)
        for line in lines:
            line["performer"] = f"{line['performer']}-{session}"
        truth = rng.integers(0, len(emotions), size=TURNS_PER_CLIP)
        annotations = []
        for user in users:
            values = {
                i: {
                    "emotion": emotions[truth[i]]
                    if rng.random() < 0.7
                    else emotions[int(rng.integers(0, len(emotions)))],
                    **{d.name: int(rng.integers(1, 6)) for d in tax.dimensions[1:]},
                }
                for i in range(TURNS_PER_CLIP)
            }
            shifts = (
                [
                    {
                        "start": 2.0,
                        "end": 2.6,
                        "from": emotions[truth[0]],
                        "to": emotions[truth[1]],
                        "trigger": "partner-induced",
                        "onset": "abrupt",
                    }
                ]
                if rng.random() < 0.3
                else []
            )
            annotations.append(
                {
                    "result": encode_annotation(lines, values, tax, shifts),
                    "completed_by": user,
                    "was_cancelled": False,
                    "lead_time": float(rng.uniform(20, 90)),
                }
            )
        tasks.append(
            {
                "data": {
                    "dialogue": lines,
                    "session_id": session,
                    "clip_id": f"{session}-c{t % 10:03d}",
                    "audio": f"/data/local-files/?d={session}/{session}-c{t % 10:03d}.wav",
                    "audio_offset": 0.0,
                    "prompt": "Two friends meet at a cafe.",
                    "title": f"Scene {session}: clip {t % 10 + 1}",
                    "context": "",
                    "taxonomy": tax.name,
                    "taxonomy_version": tax.version,
                },
                "annotations": annotations,
            }
        )
    return tasks


def main() -> None:
    """Start Label Studio, fill it, time both exports, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--annotations", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="400 annotations")
    args = parser.parse_args()
    n_annotations = 400 if args.quick else args.annotations
    n_tasks = n_annotations // ANNOTATORS
    tax = load_taxonomy()
    print(f"start: {_load()} (2 cores shared with other work)")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        settings = with_local_secrets(load_settings(write_config(folder)))
        started = time.perf_counter()
        stack.start_label_studio(settings, timeout=300)
        try:
            print(f"Label Studio up in {time.perf_counter() - started:.0f} s")
            client = connect(settings)
            project = ensure_project(client, settings, tax)
            users = [
                ensure_account(
                    settings.label_studio.url,
                    f"bench-annotator-{k}@example.org",
                    "bench-pass-1",
                    invite=invite_link(client, settings.label_studio.url),
                ).id
                for k in range(ANNOTATORS)
            ]
            tasks = build_tasks(n_tasks, users)
            started = time.perf_counter()
            for i in range(0, len(tasks), IMPORT_BATCH):
                client.projects.import_tasks(id=project.id, request=tasks[i : i + IMPORT_BATCH])
            held = client.projects.get(id=project.id)
            print(
                f"imported {n_tasks} tasks with {n_annotations} annotations in "
                f"{time.perf_counter() - started:.0f} s; Label Studio reports "
                f"{held.task_number} tasks, {held.total_annotations_number} annotations"
            )

            # (a) Label Studio's snapshot export
            started = time.perf_counter()
            export = client.projects.exports.create(id=project.id, title="bench")
            while True:
                status = client.projects.exports.get(id=project.id, export_pk=export.id).status
                if status in ("completed", "failed"):
                    break
                time.sleep(0.05)
            if status != "completed":
                raise SystemExit(f"Label Studio's export ended {status!r}")
            snapshot = folder / "label-studio-export.json"
            with open(snapshot, "wb") as out:
                for chunk in client.projects.exports.download(
                    id=project.id, export_pk=export.id, export_type="JSON"
                ):
                    out.write(chunk)
            ls_seconds = time.perf_counter() - started
            size = snapshot.stat().st_size

            # (b) pull into a store (what the service's sync does)
            engine = make_engine(f"sqlite:///{folder / 'store.db'}")
            init_db(engine)
            started = time.perf_counter()
            with Session(engine) as db:
                pulled = reconcile.reconcile(
                    db, project.id, pull_events(client, project.id), tax, full=True
                )
            pull_seconds = time.perf_counter() - started

            options = ExportOptions(salt="bench")
            # (c) our export from the store
            started = time.perf_counter()
            with Session(engine) as db:
                ours = export_dataset(
                    db, project.id, tax, folder / "ours", formats=["jsonl"], options=options
                )
            ours_seconds = time.perf_counter() - started
            engine.dispose()

            # (d) our export offline, from Label Studio's file
            started = time.perf_counter()
            offline = export_label_studio_file(
                snapshot, tax, folder / "offline", formats=["jsonl"], options=options
            )
            offline_seconds = time.perf_counter() - started
        finally:
            stack.stop(settings, stack.LABEL_STUDIO)

    print(f"pulled {pulled.tasks} tasks into the store in {pull_seconds:.1f} s (not in (c))")
    print()
    print(
        f"| export of {n_annotations:,} annotations | time | Label Studio's time / this | output |"
    )
    print("|---|---:|---:|---|")
    print(
        f"| (a) Label Studio JSON snapshot (create, wait, download) | {ls_seconds:.1f} s | "
        f"1.00x | {size / 1e6:.1f} MB of JSON |"
    )
    for name, seconds, report in (
        ("(c) ours, from the store (JSONL + data card)", ours_seconds, ours),
        ("(d) ours, offline from (a)'s file (JSONL + data card)", offline_seconds, offline),
    ):
        print(
            f"| {name} | {seconds:.1f} s | {ls_seconds / seconds:.2f}x | "
            f"{report.rows:,} turn rows, {report.accounting.exported:,} judgements |"
        )
    for report in (ours, offline):
        report.accounting.check()
        expected = n_annotations * TURNS_PER_CLIP * len(tax.dimensions)
        if report.accounting.exported != expected:
            raise SystemExit(f"exported {report.accounting.exported} judgements, not {expected}")
    print(f"end: {_load()}")


if __name__ == "__main__":
    main()
