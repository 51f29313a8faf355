"""Webhook latency while the applier is stopped (SIGSTOP), beside the applier running.

What it does
------------
Starts the agreement service the way the tests do (``tests.faultkit.make_service`` +
``annotate.stack.start_service``) on a SQLite file and/or a throwaway PostgreSQL database
(127.0.0.1:5432), and posts webhooks at ``--rate`` events/s (default 150) on a fixed
schedule from ``--connections`` keep-alive connections (``bench/aclient.py``; latency
counts from each event's scheduled send time), in two phases of ``--seconds`` each
(default 30): (a) the applier running, (b) the applier process stopped with SIGSTOP for
the whole phase. Then SIGCONT, and once the backlog is applied the store is compared with
every acknowledged event (decoded by the real codec): lost and extra judgements.

Label Studio waits at most 1 s for a webhook and never retries, so the figure to watch is
the maximum of phase (b), against 1 s.

Run: ``.venv/bin/python bench/stalled_applier.py [--store sqlite,postgres] [--seconds 30]
[--rate 150]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import aclient  # noqa: E402
from aclient import AsyncPoster  # noqa: E402
from load import database  # noqa: E402

from annotate.labelstudio import SECRET_HEADER  # noqa: E402
from schemas.codec import decode_annotation  # noqa: E402
from schemas.taxonomy import load_taxonomy  # noqa: E402
from tests.faultkit import SECRET, appliers, make_service, store_rows, wait_for  # noqa: E402
from tests.payloads import annotation_event, dialogue, task  # noqa: E402

TAX = load_taxonomy()
EMOTIONS = list(TAX.emotion.values)
HOOK = "/webhooks/label-studio"
BASE = datetime(2026, 12, 4, 6, 0, tzinfo=UTC)


def build(n: int) -> list[dict[str, Any]]:
    """``n`` new annotations (4 turns, 2 dimensions) over 50 clips."""
    tasks = [task(k + 1, dialogue(4, clip=k)) for k in range(50)]
    out = []
    for i in range(n):
        values = {
            t: {"emotion": EMOTIONS[(i * 7 + t) % len(EMOTIONS)], "intensity": 1 + (i + t) % 5}
            for t in range(4)
        }
        stamp = (BASE + timedelta(milliseconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        out.append(annotation_event(TAX, i + 1, tasks[i % 50], 1 + i % 9, values, updated_at=stamp))
    return out


def rows(payloads: list[dict[str, Any]]) -> set[tuple[int, str, str, str]]:
    """The judgements these annotation events carry, decoded by the real codec."""
    found: set[tuple[int, str, str, str]] = set()
    for p in payloads:
        a, t = p["annotation"], p["task"]
        decoded = decode_annotation({**a, "task": t["id"]}, t["data"], TAX)
        found |= {(j.annotation_id, j.turn_id, j.dimension, j.value) for j in decoded.judgements}
    return found


async def phase(
    url: str, bodies: list[bytes], rate: float, connections: int
) -> list[tuple[int, float, int]]:
    """Post ``bodies`` at ``rate``/s; (status, seconds from the scheduled time, index)."""
    headers = {SECRET_HEADER: SECRET, "Content-Type": "application/json"}
    posters = [AsyncPoster(url, headers, timeout=30) for _ in range(connections)]
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    results: list[tuple[int, float, int]] = []

    async def worker(k: int) -> None:
        for i in range(k, len(bodies), connections):
            scheduled = start + i / rate
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                status, _ = await posters[k].post(HOOK, bodies[i])
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                status = 0
            results.append((status, loop.time() - scheduled, i))

    await asyncio.gather(*(worker(k) for k in range(connections)))
    for poster in posters:
        poster.close()
    return results


def summary(name: str, results: list[tuple[int, float, int]]) -> str:
    """One line of the table."""
    took = sorted(s for _, s, _ in results)
    ok = sum(1 for status, _, _ in results if status == 200)

    def q(p: float) -> float:
        return took[min(len(took) - 1, int(len(took) * p))] * 1000

    return (
        f"| {name} | {len(results)} | {ok} | {len(results) - ok} | {q(0.5):.1f} | "
        f"{q(0.99):.1f} | {took[-1] * 1000:.0f} |"
    )


def run(kind: str, args: argparse.Namespace) -> list[str]:
    """Both phases on one store; the table's lines and the loss check."""
    n = int(args.rate * args.seconds)
    payloads = build(2 * n)
    bodies = [json.dumps(p).encode() for p in payloads]
    with tempfile.TemporaryDirectory() as tmp, database(kind, Path(tmp) / "data", "stalled") as url:
        served = make_service(Path(tmp), url)
        served.start()
        try:
            (pid,) = appliers(served)
            running = aclient.run(phase(served.url, bodies[:n], args.rate, args.connections))
            os.kill(pid, signal.SIGSTOP)
            try:
                stopped = aclient.run(phase(served.url, bodies[n:], args.rate, args.connections))
            finally:
                os.kill(pid, signal.SIGCONT)
            resumed = time.monotonic()
            with served.reads() as reads:
                wait_for(lambda: reads.get("/health").json()["inbox"]["pending"] == 0, 300, 0.2)
            caught_up = time.monotonic() - resumed
            acked = [payloads[i] for status, _, i in running if status == 200] + [
                payloads[n + i] for status, _, i in stopped if status == 200
            ]
            want, have = rows(acked), store_rows(url, 1)
        finally:
            served.stop()
    return [
        summary(f"{kind}, (a) applier running", running),
        summary(f"{kind}, (b) applier stopped", stopped),
        f"{kind}: after SIGCONT the backlog of {n} events was applied in {caught_up:.1f} s; "
        f"lost judgements {len(want - have)}, extra {len(have - want)} of {len(want)}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default="sqlite,postgres")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=150.0)
    parser.add_argument("--connections", type=int, default=20)
    args = parser.parse_args()
    lines = [
        f"webhooks at {args.rate:g}/s, {args.seconds:g} s per phase; latency from the "
        "scheduled send time, ms",
        "",
        "| store, phase | sent | 200 | errors | p50 | p99 | max |",
        "|---|---|---|---|---|---|---|",
    ]
    notes = []
    for kind in args.store.split(","):
        *table, note = run(kind, args)
        lines += table
        notes.append(note)
    print("\n".join([*lines, "", *notes]))


if __name__ == "__main__":
    main()
