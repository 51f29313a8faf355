"""Verified webhook mode against trusted mode: what reading each annotation back from Label
Studio costs, in one run against a real Label Studio.

Starts a real Label Studio on a free loopback port (data in a temporary folder; or reuses
a running local one with ``--config``), creates the project for the default taxonomy and
imports ``--annotations`` real annotations (default 1,000) embedded in ``annotations / 4``
tasks (clips of 8 turns, 4 annotators a clip, every dimension; ``bench.export_vs_label_studio
.build_tasks``). It reads them back (the task list, as the reconciling pull does) and builds
each one's ANNOTATION_CREATED webhook as Label Studio sends it, in a seeded random order
(annotators work on different clips, so a batch of events touches many tasks: the costly
case for verification).

Then, for ``trusted`` and for ``verified`` (``service.webhook_mode``), one after the other:
a fresh service (uvicorn and its applier process, SQLite store, ``tests.faultkit
.make_service``) gets every webhook, ``--connections`` (default 8) at a time as fast as it
answers, and the bench waits until the applier has applied them all (``GET /health``,
``inbox.pending`` 0). Reported per mode: webhook latency p50/p99/max (send to answer, ms;
the webhook never calls Label Studio in either mode), events/s acknowledged, events/s
applied (all events / time from the first send to the last applied), and afterwards the
store's judgements (``GET /projects/N/judgements`` count) against 8 x 6 x annotations and
the dead letters (0 expected: every annotation is real). Last the ratio verified/trusted.

``--rate R`` adds, per mode, an open-loop phase of ``--paced`` events (default 200) sent at
R events/s (default 5: a team of 20 annotators saves about 1 a second) on a fresh store,
and reports how far behind the applier was (lag of the last applied event after its send).

    .venv/bin/python bench/verified_mode.py                      # 1,000 annotations
    .venv/bin/python bench/verified_mode.py --annotations 2000
    .venv/bin/python bench/verified_mode.py --config /path/config.yaml   # reuse its Label Studio
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from annotate import stack  # noqa: E402
from annotate.config import Settings, load_settings, with_local_secrets  # noqa: E402
from annotate.labelstudio import (  # noqa: E402
    SECRET_HEADER,
    connect,
    ensure_account,
    ensure_project,
    invite_link,
    pull_events,
)
from bench.aclient import AsyncPoster, run  # noqa: E402
from bench.export_vs_label_studio import ANNOTATORS, build_tasks  # noqa: E402
from schemas.taxonomy import load_taxonomy  # noqa: E402
from tests.conftest import write_config  # noqa: E402
from tests.faultkit import KEY, SECRET, make_service  # noqa: E402

IMPORT_BATCH = 100
HOOK = "/webhooks/label-studio"


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def fill(settings: Settings, n_annotations: int) -> tuple[int, list[bytes]]:
    """A fresh project holding ``n_annotations`` real annotations; their webhook bodies."""
    tax = load_taxonomy()
    client = connect(settings)
    title = f"verified bench {time.time():.0f}"
    settings = settings.model_copy(
        update={"label_studio": settings.label_studio.model_copy(update={"project_title": title})}
    )
    project = ensure_project(client, settings, tax)
    invite = invite_link(client, settings.label_studio.url)
    users = [
        ensure_account(
            settings.label_studio.url,
            f"bench-annotator-{k}@example.org",
            "bench-pass-1",
            invite=invite,
        ).id
        for k in range(ANNOTATORS)
    ]
    tasks = build_tasks(max(n_annotations // ANNOTATORS, 1), users)
    started = time.perf_counter()
    for i in range(0, len(tasks), IMPORT_BATCH):
        client.projects.import_tasks(id=project.id, request=tasks[i : i + IMPORT_BATCH])
    bodies = []
    for _task_id, events in pull_events(client, project.id):
        for event in events:
            event["action"] = "ANNOTATION_CREATED"
            bodies.append(json.dumps(event, default=str).encode())
    print(
        f"project {project.id}: {len(tasks)} tasks, {len(bodies)} annotations imported and read "
        f"back in {time.perf_counter() - started:.0f} s"
    )
    random.Random(0).shuffle(bodies)
    return int(project.id), bodies


def _pending(client: httpx.Client) -> int:
    return int(client.get("/health").json()["inbox"]["pending"])


def burst(url: str, bodies: list[bytes], connections: int) -> dict[str, Any]:
    """Post every body (``connections`` at a time); wait until all are applied."""
    latencies: list[float] = []
    errors = 0

    async def poster(queue: list[bytes]) -> None:
        nonlocal errors
        client = AsyncPoster(url, {SECRET_HEADER: SECRET, "Content-Type": "application/json"})
        try:
            while queue:
                body = queue.pop()
                sent = time.perf_counter()
                status, _ = await client.post(HOOK, body)
                latencies.append(time.perf_counter() - sent)
                errors += status != 200
        finally:
            client.close()

    async def everyone() -> None:
        queue = list(reversed(bodies))
        await asyncio.gather(*(poster(queue) for _ in range(connections)))

    with httpx.Client(base_url=url, timeout=30) as health:
        started = time.perf_counter()
        run(everyone())
        acknowledged = time.perf_counter() - started
        while _pending(health):
            time.sleep(0.05)
        applied = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {
        "events": len(bodies),
        "errors": errors,
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "max": float(ms.max()),
        "acknowledged_per_s": len(bodies) / acknowledged,
        "applied_per_s": len(bodies) / applied,
        "seconds": applied,
    }


def paced(url: str, bodies: list[bytes], rate: float) -> dict[str, Any]:
    """Send ``bodies`` at ``rate`` events/s; how long after the last send all are applied."""
    with (
        httpx.Client(base_url=url, timeout=30, headers={SECRET_HEADER: SECRET}) as hooks,
        httpx.Client(base_url=url, timeout=30) as health,
    ):
        started = time.perf_counter()
        latencies = []
        for k, body in enumerate(bodies):
            delay = started + k / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent = time.perf_counter()
            hooks.post(HOOK, content=body, headers={"Content-Type": "application/json"})
            latencies.append(time.perf_counter() - sent)
        last = time.perf_counter()
        worst = 0
        while backlog := _pending(health):
            worst = max(worst, backlog)
            time.sleep(0.05)
        lag = time.perf_counter() - last
    ms = np.array(latencies) * 1000
    return {"lag": lag, "p99": float(np.percentile(ms, 99)), "backlog": worst}


def check(served: Any, project_id: int, n: int) -> tuple[int, int, int]:
    """(judgements stored, judgements expected, dead letters) after a run."""
    with httpx.Client(base_url=served.url, headers={"X-API-Key": KEY}, timeout=60) as reads:
        count = reads.get(f"/projects/{project_id}/judgements", params={"limit": 1}).json()
        letters = reads.get("/dead-letters", params={"limit": 1}).json()["count"]
    dims = len(load_taxonomy().dimensions)
    return int(count["count"]), n * 8 * dims, int(letters)


def one_mode(
    ls: Settings, folder: Path, mode: str, project_id: int, bodies: list[bytes], args: Any
) -> dict[str, Any]:
    """Both phases of one mode, each on a fresh service and store."""
    figures: dict[str, Any] = {}
    (folder / mode).mkdir()
    served = make_service(
        folder / mode,
        f"sqlite:///{folder / mode / 'store.db'}",
        label_studio=ls,
        webhook_mode=mode,
    )
    served.start()
    try:
        figures.update(burst(served.url, bodies, args.connections))
        figures["stored"], figures["expected"], figures["letters"] = check(
            served, project_id, len(bodies)
        )
    finally:
        served.stop()
    if args.rate:
        (folder / f"{mode}-paced").mkdir()
        served = make_service(
            folder / f"{mode}-paced",
            f"sqlite:///{folder / f'{mode}-paced' / 'store.db'}",
            label_studio=ls,
            webhook_mode=mode,
        )
        served.start()
        try:
            figures["paced"] = paced(served.url, bodies[: args.paced], args.rate)
        finally:
            served.stop()
    return figures


def main() -> None:
    """Fill Label Studio, run both modes, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--annotations", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rate", type=float, default=5.0, help="paced phase; 0: none")
    parser.add_argument("--paced", type=int, default=200, help="events of the paced phase")
    parser.add_argument("--config", type=Path, help="reuse the Label Studio of this config")
    args = parser.parse_args()
    print(f"start: {_load()} (2 cores shared with other work)")
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as stop:
        folder = Path(scratch)
        if args.config:
            ls = with_local_secrets(load_settings(args.config))
        else:
            (folder / "ls").mkdir()
            ls = with_local_secrets(load_settings(write_config(folder / "ls")))
            started = time.perf_counter()
            stack.start_label_studio(ls, timeout=300)
            stop.callback(stack.stop, ls, stack.LABEL_STUDIO)
            print(f"Label Studio up in {time.perf_counter() - started:.0f} s")
        project_id, bodies = fill(ls, args.annotations)
        results = {}
        for mode in ("trusted", "verified"):
            results[mode] = one_mode(ls, folder, mode, project_id, bodies, args)
            print(f"{mode}: {results[mode]} ({_load()})")
    n = len(bodies)
    print(
        f"\n| {n:,} webhooks of real annotations, {args.connections} connections | webhook "
        "p50 / p99 / max (ms) | acknowledged/s | applied/s | judgements stored / expected "
        "| dead letters |"
    )
    print("|---|---|---|---|---|---|")
    for mode, r in results.items():
        print(
            f"| {mode} | {r['p50']:.1f} / {r['p99']:.1f} / {r['max']:.0f} | "
            f"{r['acknowledged_per_s']:.0f} | {r['applied_per_s']:.0f} | "
            f"{r['stored']:,} / {r['expected']:,} | {r['letters']} |"
        )
    t, v = results["trusted"], results["verified"]
    print(
        f"\nverified / trusted: applied/s {v['applied_per_s'] / t['applied_per_s']:.2f}, "
        f"webhook p99 {v['p99'] / t['p99']:.2f}"
    )
    if args.rate:
        for mode, r in results.items():
            p = r["paced"]
            print(
                f"{mode}, {args.paced} events at {args.rate:g}/s: webhook p99 {p['p99']:.1f} "
                f"ms, largest backlog {p['backlog']}, all applied {p['lag']:.2f} s after the "
                "last send"
            )


if __name__ == "__main__":
    main()
