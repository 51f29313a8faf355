"""Load: simulated annotators saving against the real service, then an exact loss check.

What it does
------------
Starts the agreement service the way the tests do (``tests.faultkit.make_service`` +
``annotate.stack.start_service``: uvicorn on a free loopback port, explicit secret and API
key, no periodic pull) on a SQLite file or on a throwaway PostgreSQL database (created on
127.0.0.1:5432, dropped afterwards), and drives it with ``--annotators`` simulated
annotators (default 100), for ``--seconds`` (default 60): one coroutine and one keep-alive
connection each, all on one event loop (``bench/aclient.py``: the generator shares the 2
cores with the server, and a thread per annotator made its own scheduling delays part of
the latency).

Together the annotators offer ``--rate`` events/s (default 500, the issue's target) on a
fixed schedule (open loop: each annotator has its own evenly spaced send times; one that
falls behind sends its next event as soon as the last is answered, and its latency counts
from the scheduled time, so falling behind is charged). Each event is, with the annotator's
seeded generator: a new annotation (70%), an update of one of its own annotations with a
newer ``updated_at`` and new values (20%), or the deletion of one of its own annotations
(10%); clips of 8 turns, 3 dimensions per turn (24 judgements per save), built with
``tests.payloads.annotation_event``. Every annotator's events are built before the clock
starts (the generator shares the cores with the server; building them while sending made
it late on its own schedule, which showed as a p99 of about 1 s even against the bare
peer).

Which clip a new annotation is of: by default each clip gets ``--overlap`` annotations
(3) from different annotators, as Label Studio's overlap setting distributes tasks, so a
60 s run at 500 events/s covers about 7,000 clips. ``--clips C`` sends every new
annotation to one of C clips at random instead: with 100 annotators and ``--clips 40``,
hundreds of annotations per clip, the extreme case for the incremental figures.

Bounded and self-stopping: nothing is sent after ``--seconds`` (an annotator that fell
behind its schedule stops too; "sent of planned" shows how much of the plan was sent);
each request times out after 10 s, so the run ends at most 10 s after ``--seconds``;
SIGINT / SIGTERM stop the load early and the check still runs.

Afterwards, read straight from the store: the set of (annotation, turn, dimension, value)
must equal what the acknowledged events imply (the last acknowledged version of every
annotation not deleted): "lost" counts annotations whose stored judgements differ, "extra"
those stored but not expected; the stored incremental agreement sums must equal
``api.store.recompute_sums``. Events that were not acknowledged (errors, timeouts) are
counted and their annotations left out of the comparison (they may or may not have landed).

Peer: ``bench/bare_app.py`` (a FastAPI webhook under uvicorn that checks the secret and
parses the body, storing nothing) driven by the same load just before each service run;
the ratio service / peer separates the cost of the store from that of HTTP and of the load
generator, which shares the machine's cores with the server.

Usage::

    .venv/bin/python bench/load.py                      # SQLite then PostgreSQL, 100 x 60 s
    .venv/bin/python bench/load.py --db sqlite --seconds 10
    .venv/bin/python bench/load.py --rate 50            # below capacity
    .venv/bin/python bench/load.py --clips 40           # 100 annotators crowding 40 clips
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aclient  # noqa: E402
from aclient import AsyncPoster  # noqa: E402

from annotate import stack  # noqa: E402
from schemas.codec import decode_annotation  # noqa: E402
from schemas.taxonomy import load_taxonomy  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.faultkit import SECRET, make_service, store_rows, sum_differences  # noqa: E402
from tests.payloads import annotation_event, delete_event, dialogue, task  # noqa: E402

TAX = load_taxonomy()
EMOTIONS = list(TAX.emotion.values)
HOOK = "/webhooks/label-studio"
PG_ADMIN = os.environ.get("IMPROV_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
BASE = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
TURNS = 8
STOP = threading.Event()


@dataclass(slots=True)
class Result:
    """What one run measured."""

    db: str
    annotators: int
    seconds: float
    rate: float
    planned: int = 0
    scheduled: int = 0
    acknowledged: int = 0
    errors: int = 0
    events_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    p50_service_ms: float = 0.0
    p99_service_ms: float = 0.0
    max_ms: float = 0.0
    compared_annotations: int = 0
    stored_judgements: int = 0
    lost: int = 0
    extra: int = 0
    sums_equal: bool = False
    load: str = ""
    error_kinds: dict[str, int] = field(default_factory=dict)
    applied_after_s: float = 0.0  # the applier's catching up once the load ended


@contextmanager
def database(kind: str, folder: Path, label: str = "load") -> Iterator[str]:
    """A fresh store: a SQLite file ``<label>.db`` in ``folder``, or a throwaway
    PostgreSQL database ``improv_<label>_...``."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / f'{label}.db'}"
        return
    import psycopg

    name = f"improv_{label}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def bare_peer() -> Iterator[str]:
    """``bench/bare_app.py`` (checks the secret, parses, stores nothing) under uvicorn."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(ROOT / "bench"),
            "bare_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env={**os.environ, "BENCH_WEBHOOK_SECRET": SECRET},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not stack.healthy(url) and time.monotonic() < deadline:
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def _rows(payload: dict[str, Any]) -> set[tuple[int, str, str, str]]:
    annotation, t = payload["annotation"], payload["task"]
    decoded = decode_annotation({**annotation, "task": t["id"]}, t["data"], TAX)
    return {(j.annotation_id, j.turn_id, j.dimension, j.value) for j in decoded.judgements}


class Annotator:
    """One simulated annotator: its own schedule, connection and seeded plan of events.

    The plan (every event's body) is built before the clock starts, so that building
    payloads while sending does not make the generator, which shares the cores with the
    server, late on its own schedule.
    """

    def __init__(
        self, k: int, n: int, url: str, secret: str, args: argparse.Namespace, clips: Clips
    ) -> None:
        self.k, self.n, self.url, self.secret = k, n, url, secret
        self.interval = n / args.rate
        self.first = k * self.interval / n
        self.seconds = args.seconds
        self.rng = random.Random(args.seed * 1_000_003 + k)
        self.clips = clips
        self.latencies: list[float] = []
        self.service: list[float] = []
        self.errors: dict[str, int] = {}
        self.scheduled = 0
        self.final: dict[int, dict[str, Any] | None] = {}  # last acknowledged version
        self.unsure: set[int] = set()  # annotations with an unacknowledged event
        self.made = 0
        self.last = 0.0
        self.live: dict[int, dict[str, Any]] = {}  # the plan's annotations not deleted
        events = math.ceil(args.seconds / self.interval) + 1
        self.plan = [self._event(i) for i in range(events)]

    def _event(self, n: int) -> tuple[int, dict[str, Any], bytes]:
        mine = list(self.live)
        draw = self.rng.random()
        when = (BASE + timedelta(milliseconds=n)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if mine and draw < 0.1:
            victim = self.rng.choice(mine)
            del self.live[victim]
            payload = delete_event([victim])
            return victim, payload, json.dumps(payload).encode()
        if mine and draw < 0.3:
            annotation_id = self.rng.choice(mine)
            t = self.live[annotation_id]["task"]
            action = "ANNOTATION_UPDATED"
        else:
            self.made += 1
            annotation_id = self.k * 1_000_000 + self.made
            t = self.clips.next(self.rng, (self.made - 1) * self.n + self.k - 1)
            action = "ANNOTATION_CREATED"
        values = {
            i: {
                "emotion": self.rng.choice(EMOTIONS),
                "intensity": self.rng.randint(1, 5),
                "valence": self.rng.randint(1, 5),
            }
            for i in range(TURNS)
        }
        payload = annotation_event(
            TAX, annotation_id, t, self.k, values, updated_at=when, action=action
        )
        self.live[annotation_id] = payload
        return annotation_id, payload, json.dumps(payload).encode()

    async def run(self) -> None:
        started = START[0]
        headers = {"X-Improv-Annotate-Secret": self.secret, "Content-Type": "application/json"}
        client = AsyncPoster(self.url, headers, timeout=10)
        try:
            for n, (annotation_id, payload, body) in enumerate(self.plan):
                if STOP.is_set():
                    break
                due = started + self.first + n * self.interval
                if due - started >= self.seconds or time.monotonic() - started >= self.seconds:
                    break  # the plan is over, or the time is (an annotator behind stops too)
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                self.scheduled += 1
                sent = time.monotonic()
                try:
                    status, _ = await client.post(HOOK, body)
                    ok, kind = status == 200, str(status)
                except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                    ok, kind = False, type(exc).__name__
                done = self.last = time.monotonic()
                if not ok:
                    self.errors[kind] = self.errors.get(kind, 0) + 1
                    self.unsure.add(annotation_id)
                    continue
                self.latencies.append(done - due)
                self.service.append(done - sent)
                self.final[annotation_id] = (
                    None if payload["action"] == "ANNOTATIONS_DELETED" else payload
                )
        finally:
            client.close()


class Clips:
    """Which clip a new annotation is of.

    With ``crowd`` 0 (the default), clips are handed out as Label Studio's overlap setting
    does: each clip gets ``overlap`` annotations from different annotators, then the next
    clip is opened (the n-th new annotation of the whole team, counted round-robin over
    the annotators, is of clip ``n // overlap``). With ``crowd`` C > 0, every new
    annotation is of one of C clips drawn at random: with many annotators, hundreds of
    annotations per clip, the extreme case for incremental agreement (each event rereads
    and re-sums units that hold hundreds of values).
    """

    def __init__(self, overlap: int, crowd: int) -> None:
        self.overlap, self.crowd = overlap, crowd
        self._tasks: dict[int, dict[str, Any]] = {}

    def _task(self, c: int) -> dict[str, Any]:
        if c not in self._tasks:
            self._tasks[c] = task(c + 1, dialogue(TURNS, clip=c))
        return self._tasks[c]

    def next(self, rng: random.Random, slot: int) -> dict[str, Any]:
        """The task of the team's ``slot``-th new annotation."""
        if self.crowd:
            return self._task(rng.randrange(self.crowd))
        return self._task(slot // self.overlap)


START = [0.0]


def drive(url: str, args: argparse.Namespace, result: Result) -> list[Annotator]:
    """Run the annotators against ``url`` and fill in the load figures of ``result``."""
    STOP.clear()
    clips = Clips(args.overlap, args.clips)
    people = [
        Annotator(k + 1, args.annotators, url, SECRET, args, clips) for k in range(args.annotators)
    ]
    START[0] = time.monotonic() + 0.5

    async def everyone() -> None:
        await asyncio.gather(*(person.run() for person in people))

    # one event loop for every annotator (bench/aclient.py); nothing is sent after
    # --seconds, and the last requests end within their 10 s timeout
    aclient.run(everyone())
    elapsed = max(p.last for p in people) - START[0]
    result.load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    latencies = np.array([x for p in people for x in p.latencies]) * 1000
    service = np.array([x for p in people for x in p.service]) * 1000
    result.planned = int(args.rate * args.seconds)
    result.scheduled = sum(p.scheduled for p in people)
    result.acknowledged = len(latencies)
    result.errors = result.scheduled - result.acknowledged
    for p in people:
        for k, v in p.errors.items():
            result.error_kinds[k] = result.error_kinds.get(k, 0) + v
    result.events_per_s = result.acknowledged / max(elapsed, 1e-9)
    if len(latencies):
        result.p50_ms, result.p99_ms = np.percentile(latencies, [50, 99]).tolist()
        result.p50_service_ms, result.p99_service_ms = np.percentile(service, [50, 99]).tolist()
        result.max_ms = float(latencies.max())
    return people


def peer(args: argparse.Namespace) -> Result:
    """The same load against the bare peer (nothing stored, so nothing to check)."""
    result = Result("bare FastAPI (peer)", args.annotators, args.seconds, args.rate)
    with bare_peer() as url:
        drive(url, args, result)
    result.sums_equal = True
    return result


def run(kind: str, args: argparse.Namespace) -> Result:
    """One run on one database; the service is started and stopped here."""
    STOP.clear()
    result = Result(kind, args.annotators, args.seconds, args.rate)
    with (
        tempfile.TemporaryDirectory(prefix="improv-load-") as tmp,
        database(kind, Path(tmp)) as url,
    ):
        served = make_service(Path(tmp), url)
        served.start()
        try:
            people = drive(served.url, args, result)
            # the service acknowledges an event once it is kept; the applier applies it
            # moments later: the check compares the store once everything kept is applied
            ended = time.monotonic()
            with served.reads(timeout=600) as reads:
                reads.get("/projects").raise_for_status()  # waits for the applier
                while reads.get("/health").json()["inbox"]["pending"]:
                    time.sleep(0.05)
            result.applied_after_s = time.monotonic() - ended
            expected: set[tuple[int, str, str, str]] = set()
            compared: set[int] = set()
            for p in people:
                for annotation_id, payload in p.final.items():
                    if annotation_id in p.unsure:
                        continue
                    compared.add(annotation_id)
                    if payload is not None:
                        expected |= _rows(payload)
            stored = {r for r in store_rows(url, 1) if r[0] in compared}
            result.compared_annotations = len(compared)
            result.stored_judgements = len(stored)
            differ = {r[0] for r in expected ^ stored}
            expected_ids = {r[0] for r in expected}
            result.lost = len(differ & expected_ids)
            result.extra = len(differ - expected_ids)
            worst = sum_differences(url, 1)
            result.sums_equal = all(d < 1e-6 for d in worst.values())
        finally:
            STOP.set()
            served.stop()
    return result


def _row(r: Result) -> str:
    return (
        f"| {r.db} | {r.annotators} | {r.rate:.0f} | {r.scheduled:,} of {r.planned:,} | "
        f"{r.acknowledged:,} | "
        f"{r.events_per_s:.1f} | {r.p50_ms:,.0f} | {r.p99_ms:,.0f} | {r.p50_service_ms:,.0f} | "
        f"{r.p99_service_ms:,.0f} | {r.errors} | {r.lost} | {r.extra} | "
        f"{'yes' if r.sums_equal else 'NO'} | {r.applied_after_s:.1f} | {r.load} |"
    )


def main() -> None:
    """Parse the arguments, run, print a Markdown table (and JSON lines with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--annotators", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=500.0, help="events/s offered in total")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--overlap", type=int, default=3, help="annotations per clip (Label Studio's overlap)"
    )
    parser.add_argument(
        "--clips",
        type=int,
        default=0,
        help="new annotations go to this many clips at random instead (crowded clips)",
    )
    parser.add_argument("--json", action="store_true", help="also print each result as JSON")
    parser.add_argument("--no-peer", action="store_true", help="skip the bare peer runs")
    args = parser.parse_args()
    if args.annotators < 1 or args.seconds <= 0 or args.rate <= 0 or args.overlap < 1:
        parser.error("--annotators, --seconds, --rate and --overlap must be positive")
    if args.clips < 0:
        parser.error("--clips: expected 0 (use --overlap) or a positive number of clips")
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: STOP.set())
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    print(
        "| store | annotators | offered/s | sent of planned | acknowledged | events/s | p50 ms | "
        "p99 ms | p50 svc ms | p99 svc ms | errors | lost | extra | sums equal | "
        "applied after s | load 1/5/15 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|")
    results = []
    for kind in kinds:
        if not args.no_peer:
            bare = peer(args)
            print(_row(bare), flush=True)
        result = run(kind, args)
        results.append(result)
        print(_row(result), flush=True)
        if not args.no_peer and bare.events_per_s and bare.p99_ms:
            print(
                f"| ratio {kind} / peer | | | | | {result.events_per_s / bare.events_per_s:.2f} "
                f"| | {result.p99_ms / bare.p99_ms:.1f}x | | "
                f"{result.p99_service_ms / max(bare.p99_service_ms, 1e-9):.1f}x | | | | | |",
                flush=True,
            )
    if args.json:
        for result in results:
            print(json.dumps(asdict(result)))
    if any(r.lost or r.extra or not r.sums_equal for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
