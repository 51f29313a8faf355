"""Pushing tasks to Label Studio: our idempotent push vs the naive per-task create.

Starts a real Label Studio (``.venv-ls``) in a temporary folder on a free loopback port,
creates the project from the default taxonomy, builds ``--tasks`` clip tasks (8 turns each,
with their pre-annotated turn regions, as the importer builds them) and measures:

1. ``push_tasks`` of all of them into the empty project (what ``improv-annotate import``
   does: look up the clips already there, import the rest in batches);
2. the same push again (every task already there: the cost of an idempotent re-import);
3. the same push after 2% of the clips changed (their tasks are updated in place);
4. the peer: the SDK's one-request-per-task ``client.tasks.create`` (how a simple script
   would push), on ``--peer-tasks`` tasks into a second project, scaled to ``--tasks``.

Then it checks the project holds exactly ``--tasks`` tasks, one per clip.

    .venv/bin/python bench/push_tasks.py --tasks 10000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from annotate import stack  # noqa: E402
from annotate.config import load_settings, with_local_secrets  # noqa: E402
from annotate.labelstudio import connect, ensure_project, iter_clip_keys, push_tasks  # noqa: E402
from importers.clips import build_task, make_clips  # noqa: E402
from schemas.taxonomy import load_taxonomy  # noqa: E402
from tests.builders import make_session  # noqa: E402
from tests.conftest import write_config  # noqa: E402

TURNS_PER_CLIP = 8


def build_tasks(n: int, *, changed: float = 0.0) -> list[dict]:
    """``n`` clip tasks from synthetic sessions of 20 clips; ``changed`` of them re-worded."""
    taxonomy = load_taxonomy()
    tasks: list[dict] = []
    session_no = 0
    while len(tasks) < n:
        spans = [(2.0 * i, 2.0 * i + 1.6) for i in range(20 * TURNS_PER_CLIP)]
        session = make_session(spans, session_id=f"bench-{session_no:05d}")
        clips = make_clips(session, max_seconds=2.0 * TURNS_PER_CLIP - 0.1)
        for clip in clips:
            task = build_task(
                session, clip, f"/data/local-files/?d=x/{clip.id}.wav", taxonomy, len(clips)
            )
            tasks.append(task)
        session_no += 1
    tasks = tasks[:n]
    step = round(1 / changed) if changed else 0
    for i in range(0, n, step or n + 1):
        tasks[i]["data"]["dialogue"][0]["text"] += " (corrected)"
        tasks[i]["data"]["content_hash"] = f"changed-{i}"
    return tasks


def main() -> None:
    """Run the measurements and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument("--peer-tasks", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = with_local_secrets(load_settings(write_config(Path(tmp))))
        print(f"starting Label Studio at {settings.label_studio.url} ...", flush=True)
        stack.start_label_studio(settings, timeout=300)
        try:
            client = connect(settings)
            taxonomy = load_taxonomy()
            project = ensure_project(client, settings, taxonomy)
            tasks = build_tasks(args.tasks)
            rows = []
            t0 = time.perf_counter()
            created, existing, updated = push_tasks(client, project.id, tasks)[:3]
            rows.append(("first push", time.perf_counter() - t0, created, existing, updated))
            t0 = time.perf_counter()
            created, existing, updated = push_tasks(client, project.id, tasks)[:3]
            rows.append(("again", time.perf_counter() - t0, created, existing, updated))
            changed = build_tasks(args.tasks, changed=0.02)
            t0 = time.perf_counter()
            created, existing, updated = push_tasks(client, project.id, changed)[:3]
            rows.append(("2% changed", time.perf_counter() - t0, created, existing, updated))
            keys = Counter(iter_clip_keys(client, project.id).values())
            total = sum(keys.values())
            duplicates = sum(v - 1 for v in keys.values() if v > 1)

            settings2 = settings.model_copy(
                update={
                    "label_studio": settings.label_studio.model_copy(
                        update={"project_title": "peer"}
                    )
                }
            )
            peer_project = ensure_project(client, settings2, taxonomy)
            peer_tasks = tasks[: args.peer_tasks]
            t0 = time.perf_counter()
            for task in peer_tasks:
                made = client.tasks.create(project=peer_project.id, data=task["data"])
                client.predictions.create(
                    task=made.id,
                    result=task["predictions"][0]["result"],
                    model_version=task["predictions"][0]["model_version"],
                )
            peer = (time.perf_counter() - t0) * args.tasks / args.peer_tasks
        finally:
            stack.stop(settings, stack.LABEL_STUDIO)
    print(f"\n{args.tasks} tasks of {TURNS_PER_CLIP} turns (with pre-annotations)\n")
    print(f"{'run':<14} {'seconds':>8} {'tasks/s':>8} {'created':>8} {'there':>7} {'updated':>8}")
    for name, seconds, created, existing, updated in rows:
        print(
            f"{name:<14} {seconds:8.2f} {args.tasks / seconds:8.0f} {created:8d} "
            f"{existing:7d} {updated:8d}"
        )
    first = rows[0][1]
    print(
        f"\npeer (SDK tasks.create + predictions.create per task, {args.peer_tasks} timed, "
        f"scaled): {peer:.1f} s; ratio peer/ours {peer / first:.1f}x"
    )
    print(f"project holds {total} tasks for {len(keys)} clips; duplicates {duplicates}")


if __name__ == "__main__":
    main()
