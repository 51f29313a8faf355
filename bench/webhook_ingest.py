"""Webhook ingest: the real agreement service under load, vs a bare FastAPI webhook.

What it measures
----------------
The service is started the way ``tests/test_service.py``'s ``served`` fixture starts it
(``tests.conftest.write_config`` + ``annotate.stack.start_service``: uvicorn on a free
loopback port, ``reconcile_seconds`` 0, an explicit webhook secret and API key), on a SQLite
file (default) or on a throwaway PostgreSQL database (``--db postgres``; created on
127.0.0.1:5432 and dropped afterwards).

N simulated annotators (``--annotators``, default 20) post concurrently, each one event at a
time, for a fixed duration (``--seconds``, default 30; ``--quick`` 5): one thread per
annotator, each with its own keep-alive ``http.client`` connection (about half the client
CPU per request of an ``httpx.Client``: the generator shares the machine's cores with the
server, so what it spends is taken from the server). An event is ANNOTATION_CREATED for a
new annotation (75%) or ANNOTATION_UPDATED of one of the annotator's earlier annotations
with a newer ``updated_at`` and redrawn values (25%), built with
``tests.payloads.annotation_event``: clips of 8 turns, all 6 dimensions of the default
taxonomy, so 48 judgements per event; each task is annotated by 3 annotators (seeded values,
70% agreeing with a per-turn truth). The first second is warm-up and left out of the figures
(its events are still verified).

By default the load is a closed loop (each annotator sends its next event as soon as the
last one is answered): events/s is then the server's capacity and the latency is latency at
saturation. ``--rate R`` makes it an open loop: the annotators together send R events/s on
a fixed schedule, latency counts from the scheduled send time (so falling behind is
charged, no coordinated omission), and events not sent by the end are reported. The target
below is an open-loop statement; ``--rate 500`` checks it directly. In the open loop the
events are built before the clock starts (in the closed loop as they are sent).

``--workers N`` runs the service with N uvicorn worker processes. ``--baseline DIR`` also
runs the service from another checkout of the project (same interpreter and packages,
its own fresh store) under the same load, before the current code: a before/after pair
measured in one run. The service's ``GET /health`` reports its group commit (events and
transactions per worker), printed as events per transaction.

``--preload N`` first fills the store with about N judgements (new annotations of the same
annotators, decoded with the real codec, bulk-inserted with their incremental sums, not
through the service; PostgreSQL is then analysed as autovacuum would), to measure ingest
into a project that is already large. They count as sent in the verification.

Reported: events/s sustained (200 answers after warm-up / time), the rate in the first and
last third of the run (the store grows during the run), p50/p95/p99/max latency (send to
answer, ms), errors, CPU seconds of the service process, of the load generator (this
process) and of all PostgreSQL processes on the machine, and the latency of ``GET /health``
probed every 100 ms during the run (how long other requests wait behind the webhooks).
A SIGTERM ends the load early; verification and clean-up still run.

Afterwards it verifies that no event was lost: per dimension the service's ``judgements``
(``GET /projects/1/agreement``) equals 8 x the annotations sent, ``GET /projects/1/judgements``
counts 48 x them, the live alpha equals Krippendorff's alpha of the values the generator
sent last for each annotation, and, read directly from the store, the stored incremental
sums equal ``api.store.recompute_sums`` and alpha of ``api.store.judgement_matrix`` equals
the live alpha.

Peer: ``bench/bare_app.py``, a FastAPI webhook under uvicorn that checks the secret, reads
and parses the body and answers 200 without storing, driven by the same load in the same
run; the ratio isolates the cost of the store. Target (from the issue): >= 500 events/s
sustained with p99 < 50 ms, on SQLite and on PostgreSQL.

``--profile`` adds an in-process profile of the store path (``api.store.apply_event`` on a
fresh store of the same kind, no HTTP): timing spans (SQL statements and their time per
event, commit) and the top functions under cProfile.

Usage::

    .venv/bin/python bench/webhook_ingest.py                 # SQLite, 20 annotators, 30 s
    .venv/bin/python bench/webhook_ingest.py --db postgres   # PostgreSQL
    .venv/bin/python bench/webhook_ingest.py --quick         # 5 s
    .venv/bin/python bench/webhook_ingest.py --rate 500      # open loop at the target rate
    .venv/bin/python bench/webhook_ingest.py --preload 1000000 --no-peer
    .venv/bin/python bench/webhook_ingest.py --profile --quick --no-peer
    .venv/bin/python bench/webhook_ingest.py --baseline /tmp/before   # before/after
    .venv/bin/python bench/webhook_ingest.py --db postgres --workers 2 --rate 500
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import http.client
import io
import itertools
import json
import os
import pstats
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aclient  # noqa: E402
from aclient import AsyncPoster  # noqa: E402
from sqlalchemy import event  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlmodel import Session  # noqa: E402

from annotate import stack  # noqa: E402
from annotate.agreement import krippendorff_alpha, pivot  # noqa: E402
from annotate.config import Settings, load_settings, with_local_secrets  # noqa: E402
from annotate.labelstudio import SECRET_HEADER  # noqa: E402
from api import store  # noqa: E402
from api.db import init_db, make_engine  # noqa: E402
from schemas.taxonomy import Dimension, Taxonomy, load_taxonomy  # noqa: E402
from tests.conftest import PG_ADMIN_URL, free_port, write_config  # noqa: E402
from tests.faultkit import descendants  # noqa: E402
from tests.payloads import annotation_event, dialogue, task  # noqa: E402

SEED = 20261126
SECRET = "bench-webhook-secret"
API_KEY = "bench-api-key"
PROJECT = 1
TURNS = 8
OVERLAP = 3
UPDATE_SHARE = 0.25
AGREE = 0.7
WARMUP = 1.0  # seconds left out of the figures
REQUEST_TIMEOUT = 30.0
MAX_EVENTS = 200_000  # hard cap on events per run, whatever the duration
BASE_TIME = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
STOP = threading.Event()  # set by SIGTERM: the load ends early, cleanup still runs
TAX = load_taxonomy()


# ---------------------------------------------------------------------------- workload


@dataclass(slots=True)
class Sent:
    """One version of an annotation as the generator sent it."""

    task_id: int
    annotator: int
    values: dict[int, dict[str, str | int]]
    version: int


@dataclass(slots=True)
class Record:
    """One request: when it was sent and answered (perf_counter seconds), and its status."""

    start: float
    end: float
    status: int | str


class Workload:
    """Seeded annotation events: tasks of 8 turns, each annotated by ``overlap`` annotators."""

    def __init__(self, taxonomy: Taxonomy, annotators: int) -> None:
        self.taxonomy = taxonomy
        self.annotators = annotators
        self.overlap = min(OVERLAP, annotators)
        self._tasks: dict[int, dict[str, Any]] = {}
        self._truths: dict[tuple[int, int, str], str | int] = {}
        self.team = [Annotator(self, a) for a in range(annotators)]
        self.latest_built: dict[int, Sent] = {}  # the newest version built, sent or not
        self.latest_sent: dict[int, Sent] = {}
        self.latest_ok: dict[int, Sent] = {}

    def task(self, task_id: int) -> dict[str, Any]:
        """The task object of ``task_id`` (a clip of 8 turns of session ``s<task_id>``)."""
        if task_id not in self._tasks:
            session = f"s{task_id:05d}"
            self._tasks[task_id] = task(task_id, dialogue(TURNS, session_id=session), session)
        return self._tasks[task_id]

    def _truth(self, task_id: int, turn: int, dim: Dimension) -> str | int:
        key = (task_id, turn, dim.name)
        if key not in self._truths:
            self._truths[key] = random.Random(f"{task_id}/{turn}/{dim.name}").choice(_choices(dim))
        return self._truths[key]

    def values(self, rng: random.Random, task_id: int) -> dict[int, dict[str, str | int]]:
        """One annotator's values for every turn and dimension of a task."""
        return {
            turn: {
                dim.name: self._truth(task_id, turn, dim)
                if rng.random() < AGREE
                else rng.choice(_choices(dim))
                for dim in self.taxonomy.dimensions
            }
            for turn in range(TURNS)
        }


def _choices(dim: Dimension) -> list[str | int]:
    return list(dim.values) if dim.kind == "choice" else list(dim.scale)


def _stamp(version: int) -> str:
    return (BASE_TIME + timedelta(seconds=version)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Annotator:
    """One simulated annotator: creates annotations on its tasks, sometimes updates one."""

    def __init__(self, workload: Workload, index: int) -> None:
        self.workload, self.index = workload, index
        self.rng = random.Random(SEED * 1000 + index)
        self.mine: list[int] = []
        self.created = 0

    def next_payload(self, *, create: bool = False) -> tuple[int, Sent, dict[str, Any]]:
        """(annotation id, what is sent, webhook payload) of this annotator's next event.

        A new annotation, or (25% of the time unless ``create``) a newer version of one of
        the annotator's earlier annotations.
        """
        w, n = self.workload, self.workload.annotators
        if not create and self.mine and self.rng.random() < UPDATE_SHARE:
            annotation_id = self.rng.choice(self.mine)
            previous = w.latest_built[annotation_id]
            item = Sent(
                previous.task_id,
                self.index,
                w.values(self.rng, previous.task_id),
                previous.version + 1,
            )
            action = "ANNOTATION_UPDATED"
        else:
            slot = self.created * n + self.index
            annotation_id, task_id = 1 + slot, 1 + slot // w.overlap
            self.created += 1
            item = Sent(task_id, self.index, w.values(self.rng, task_id), 0)
            action = "ANNOTATION_CREATED"
            self.mine.append(annotation_id)
        payload = annotation_event(
            w.taxonomy,
            annotation_id,
            w.task(item.task_id),
            self.index + 1,
            item.values,
            updated_at=_stamp(item.version),
            action=action,
            project_id=PROJECT,
        )
        w.latest_built[annotation_id] = item
        return annotation_id, item, payload

    def next_event(self) -> tuple[int, Sent, bytes]:
        """(annotation id, what is sent, JSON body) of this annotator's next event."""
        annotation_id, item, payload = self.next_payload()
        return annotation_id, item, json.dumps(payload).encode()


def preload(database_url: str, workload: Workload, judgements: int) -> int:
    """Fill an empty store with about ``judgements`` judgements, bypassing the service.

    New annotations of the workload's annotators (decoded with the real codec) are written
    with bulk inserts, and the incremental sums with ``recompute_sums`` + ``add_sums``, so
    the store is what the service would have built; they count as sent and acknowledged.
    On PostgreSQL the tables are then analysed, as autovacuum would do after a bulk load.
    Returns the number of judgements written.
    """
    from sqlalchemy import insert

    from api.models import Annotation, Judgement, Task
    from schemas.codec import decode_annotation

    per_event = TURNS * len(workload.taxonomy.dimensions)
    events = judgements // per_event
    engine = make_engine(database_url)
    init_db(engine)
    now = datetime.now(UTC)
    tasks: dict[int, dict[str, Any]] = {}
    annotations: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    written = 0
    try:
        with Session(engine) as db:
            for i in range(events):
                annotator = workload.team[i % workload.annotators]
                annotation_id, item, payload = annotator.next_payload(create=True)
                workload.latest_sent[annotation_id] = workload.latest_ok[annotation_id] = item
                data = payload["task"]["data"]
                tasks.setdefault(
                    item.task_id,
                    {
                        "id": item.task_id,
                        "project_id": PROJECT,
                        "clip_id": data["clip_id"],
                        "session_id": data["session_id"],
                        "data": data,
                        "deleted": False,
                    },
                )
                annotation = payload["annotation"]
                decoded = decode_annotation(annotation, data, workload.taxonomy)
                rows.extend({"project_id": PROJECT, **j.to_dict()} for j in decoded.judgements)
                annotations.append(
                    {
                        "id": annotation_id,
                        "project_id": PROJECT,
                        "task_id": item.task_id,
                        "annotator": str(annotation["completed_by"]),
                        "was_cancelled": False,
                        "ground_truth": False,
                        "created_at": store.parse_time(annotation["created_at"], "created_at"),
                        "updated_at": store.parse_time(annotation["updated_at"], "updated_at"),
                        "deleted": False,
                        "lead_time": annotation["lead_time"],
                        "received_at": now,
                    }
                )
                if len(rows) >= 50_000 or i == events - 1:
                    db.execute(insert(Judgement.__table__), rows)  # type: ignore[attr-defined]
                    db.execute(insert(Annotation.__table__), annotations)  # type: ignore[attr-defined]
                    written += len(rows)
                    rows, annotations = [], []
            if tasks:
                db.execute(insert(Task.__table__), list(tasks.values()))  # type: ignore[attr-defined]
            db.commit()
            sums = store.recompute_sums(db, PROJECT)
            changes = {(d, k): v for d, by_key in sums.items() for k, v in by_key.items()}
            if changes:
                store.add_sums(db, PROJECT, changes)
            db.commit()
        if engine.dialect.name == "postgresql":
            # What autovacuum would do shortly after a bulk load: planner statistics.
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()
    return written


# ---------------------------------------------------------------------------- load


@dataclass
class LoadResult:
    """What one load run measured."""

    records: list[Record]
    warm_end: float
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    client_cpu: float = 0.0
    server_cpu: float = 0.0
    postgres_cpu: float = 0.0
    health_ms: list[float] = field(default_factory=list)
    scheduled: int = 0  # open loop: events scheduled before the deadline
    batching: tuple[int, int] | None = None  # events, transactions (as /health last said)
    pending_at_end: int | None = None  # deliveries acknowledged, not yet applied, at the end
    drain_s: float = 0.0  # how long the applier then took to apply them

    def window(self) -> list[Record]:
        """Requests sent (or, open loop, scheduled) after warm-up: the latency sample."""
        return [r for r in self.records if r.start >= self.warm_end]

    def _answered(self) -> list[float]:
        """When each 200 answer after warm-up arrived."""
        return [r.end for r in self.records if r.status == 200 and r.end >= self.warm_end]

    def rate(self) -> float:
        """200 answers per second from the end of warm-up to the last answer."""
        ends = self._answered()
        return len(ends) / (max(ends) - self.warm_end) if ends else 0.0

    def thirds(self) -> list[float]:
        """The same rate in each third of that time."""
        ends = self._answered()
        if not ends:
            return [0.0, 0.0, 0.0]
        third = (max(ends) - self.warm_end) / 3
        edges = [self.warm_end + i * third for i in range(4)]
        return [float(c) / third for c in np.histogram(ends, bins=edges)[0]]

    def latencies_ms(self) -> np.ndarray:
        return np.asarray([(r.end - r.start) * 1000 for r in self.window() if r.status == 200])


class Poster:
    """A keep-alive HTTP/1.1 client for one annotator (``http.client``: a fraction of the
    CPU per request of ``httpx``, so that the load generator, which shares the machine's
    cores with the server, takes less of them). Reconnects after an error."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.headers = headers
        self.conn: http.client.HTTPConnection | None = None

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """(status, body) of one POST."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_TIMEOUT)
        try:
            self.conn.request("POST", path, body, self.headers)
            answer = self.conn.getresponse()
            return answer.status, answer.read()
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def drive(
    url: str,
    workload: Workload,
    seconds: float,
    server_pid: int | None,
    rate: float | None = None,
) -> LoadResult:
    """Run the annotators against ``url`` for ``seconds``; record every request.

    One coroutine per annotator on one event loop, each with its own keep-alive connection
    (``bench/aclient.py``) and one request in flight at a time. Without ``rate`` (closed
    loop) each annotator sends its next event as soon as the previous one is answered, so
    the figures are the server's capacity and the latency under saturation; events are built
    as they are sent. With ``rate`` (open loop) the annotators together send ``rate``
    events/s on a fixed schedule and latency counts from the scheduled time, so a server
    that falls behind is charged for the wait; the events are built before the clock starts.
    """
    annotators = workload.team
    headers = {SECRET_HEADER: SECRET, "content-type": "application/json"}
    records: list[Record] = []
    errors: Counter[str] = Counter()
    samples: list[str] = []
    tickets = itertools.count()
    interval = len(annotators) / rate if rate else 0.0
    prebuilt: dict[int, list[tuple[int, Sent, bytes]]] = {}
    if rate:
        per_annotator = int(seconds / interval) + 2
        for a in annotators:
            prebuilt[a.index] = [a.next_event() for _ in range(per_annotator)]
    cpu0 = time.process_time()
    server0 = _tree_cpu(server_pid) if server_pid else 0.0
    postgres0 = _postgres_cpu()
    start = time.perf_counter()
    deadline = start + seconds

    async def run(annotator: Annotator) -> None:
        scheduled = start + interval * annotator.index / len(annotators)
        queued = iter(prebuilt.get(annotator.index, ()))
        client = AsyncPoster(url, headers, REQUEST_TIMEOUT)
        try:
            while next(tickets) < MAX_EVENTS and not STOP.is_set():
                if interval:
                    scheduled += interval
                    if scheduled >= deadline:
                        break
                if time.perf_counter() >= deadline:
                    break  # open loop: what was scheduled but not sent is counted as unsent
                annotation_id, item, body = next(queued, None) or annotator.next_event()
                if interval:
                    await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
                t0 = scheduled if interval else time.perf_counter()
                workload.latest_sent[annotation_id] = item
                status: int | str
                detail = ""
                try:
                    status, answer = await client.post("/webhooks/label-studio", body)
                    detail = answer[:300].decode("utf-8", "replace") if status != 200 else ""
                except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                    status, detail = type(exc).__name__, str(exc)[:300]
                records.append(Record(t0, time.perf_counter(), status))
                if status == 200:
                    workload.latest_ok[annotation_id] = item
                    continue
                errors[str(status)] += 1
                if len(samples) < 5:
                    samples.append(f"{status}: {detail}")
        finally:
            client.close()

    async def everyone() -> None:
        await asyncio.gather(*(run(a) for a in annotators))

    probes: list[float] = []

    ingest: dict[int, tuple[int, int]] = {}  # worker pid -> (events, transactions)

    def probe() -> None:
        """GET /health every 100 ms: how long a read waits behind the webhooks (and the
        group-commit counts of the worker that answered)."""
        with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT) as client:
            while time.perf_counter() < deadline and not STOP.is_set():
                t0 = time.perf_counter()
                try:
                    answer = client.get("/health")
                    waited = time.perf_counter() - t0
                    counts = answer.json().get("ingest")
                    if counts:
                        ingest[counts["pid"]] = (counts["events"], counts["transactions"])
                except httpx.HTTPError:
                    waited = float("inf")  # timed out
                probes.append(waited)
                time.sleep(0.1)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    aclient.run(everyone())  # every annotator on one event loop (see bench/aclient.py)
    prober.join()
    load_end = time.perf_counter()
    backlog = _backlog(url)
    pending_at_end = backlog
    while backlog and time.perf_counter() - load_end < 300:  # the applier catching up
        time.sleep(0.05)
        backlog = _backlog(url)
    result = LoadResult(records, start + WARMUP, errors, samples)
    if rate:
        result.scheduled = sum(
            _slots(start, deadline, interval, a.index, len(annotators)) for a in annotators
        )
    result.health_ms = [p * 1000 for p in probes]  # inf: timed out
    result.pending_at_end = pending_at_end
    result.drain_s = time.perf_counter() - load_end if pending_at_end else 0.0
    if ingest:
        result.batching = (sum(e for e, _ in ingest.values()), sum(t for _, t in ingest.values()))
    result.client_cpu = time.process_time() - cpu0
    result.server_cpu = (_tree_cpu(server_pid) - server0) if server_pid else 0.0
    result.postgres_cpu = _postgres_cpu() - postgres0
    return result


def _backlog(url: str) -> int | None:
    """Deliveries the service has acknowledged and not yet applied (None: not reported)."""
    try:
        answer = httpx.get(f"{url}/health", timeout=REQUEST_TIMEOUT).json()
    except (httpx.HTTPError, ValueError):
        return None
    inbox = answer.get("inbox")
    return int(inbox["pending"]) if inbox else None


def _slots(start: float, deadline: float, interval: float, index: int, n: int) -> int:
    """How many events annotator ``index`` of ``n`` is scheduled to send (as in ``drive``)."""
    scheduled, slots = start + interval * index / n, 0
    while True:
        scheduled += interval
        if scheduled >= deadline:
            return slots
        slots += 1


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and of all its descendants (uvicorn's workers)."""
    return sum(_cpu_seconds(p) for p in {pid, *descendants(pid)})


def _postgres_cpu() -> float:
    """CPU seconds of every process named ``postgres`` on the machine (shared with others)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm", encoding="ascii") as f:
                if f.read().strip() != "postgres":
                    continue
        except OSError:
            continue
        total += _cpu_seconds(int(entry))
    return total


# ---------------------------------------------------------------------------- servers


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new PostgreSQL database on the test server, dropped afterwards."""
    import psycopg

    name = f"improv_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def real_service(
    folder: Path,
    database_url: str | None,
    before_start: Callable[[str], None] | None = None,
    *,
    workers: int = 1,
    tree: Path | None = None,
) -> Iterator[tuple[Settings, int | None]]:
    """The agreement service, started as the ``served`` test fixture starts it.

    ``before_start`` is called with the store's database URL before the service starts.
    ``workers``: uvicorn worker processes. ``tree``: run the service's code from this
    other checkout of the project instead (the same interpreter and packages).
    """
    service: dict[str, object] = {
        "webhook_secret": SECRET,
        "api_key": API_KEY,
        "reconcile_seconds": 0,
    }
    if database_url:
        service["database_url"] = database_url
    config = write_config(folder, service=service)
    settings = with_local_secrets(load_settings(config))
    if before_start is not None:
        before_start(settings.database_url)
    pid_file = settings.data_path / "run" / f"{stack.SERVICE}.pid"
    try:
        with _code_from(tree):
            if workers > 1:
                stack.start_service(settings, config, workers=workers)
            else:
                stack.start_service(settings, config)
        yield settings, int(pid_file.read_text())
    finally:
        stack.stop(settings, stack.SERVICE)


@contextmanager
def _code_from(tree: Path | None) -> Iterator[None]:
    """Processes started inside import the project's code from ``tree`` (None: this one);
    uvicorn imports ``api.app`` from its working directory and PYTHONPATH first."""
    if tree is None:
        yield
        return
    saved, cwd = os.environ.get("PYTHONPATH"), os.getcwd()
    os.environ["PYTHONPATH"] = str(tree)
    os.chdir(tree)
    try:
        yield
    finally:
        os.chdir(cwd)
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


@contextmanager
def bare_service() -> Iterator[tuple[str, int]]:
    """``bench/bare_app.py`` under uvicorn on a free loopback port."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "uvicorn", "--app-dir", str(Path(__file__).parent)]
    argv += ["bare_app:app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(
        argv,
        env={**os.environ, "BENCH_WEBHOOK_SECRET": SECRET},
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not stack.healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the bare peer did not start at {url}")
            time.sleep(0.2)
        yield url, process.pid
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)


# ---------------------------------------------------------------------------- verify


def expected_alpha(workload: Workload, dim: Dimension, sent: dict[int, Sent]) -> float | None:
    """Alpha of the values last sent per annotation (what the store should hold)."""
    codes = store.codes_of(dim)
    units, annotators, values = [], [], []
    for item in sent.values():
        lines = workload.task(item.task_id)["data"]["dialogue"]
        for turn, dims in item.values.items():
            units.append(lines[turn]["turn_id"])
            annotators.append(item.annotator)
            values.append(codes[str(dims[dim.name])])
    if not units:
        return None
    try:
        return krippendorff_alpha(pivot(units, annotators, values)[0], dim.level)
    except ValueError:
        return None


def _same(a: float | None, b: float | None, tol: float = 1e-8) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= tol


def verify(settings: Settings, workload: Workload) -> bool:
    """Compare what the service reports, and what its store holds, with what was sent."""
    sent, ok = workload.latest_sent, workload.latest_ok
    print("\nverification (no event lost, live figures equal a from-scratch recompute)")
    print(f"  annotations sent {len(sent):,}, acknowledged (200) {len(ok):,}")
    good = True
    with httpx.Client(
        base_url=settings.service.url, headers={"X-API-Key": API_KEY}, timeout=120
    ) as reads:

        def count() -> int:
            answer = reads.get(f"/projects/{PROJECT}/judgements", params={"limit": 1})
            return int(answer.json()["count"])

        # Requests the client gave up on may still be applied: wait until the store is quiet.
        total, deadline = count(), time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(1.0)
            again = count()
            if again == total:
                break
            total = again
        want_total = len(sent) * TURNS * len(TAX.dimensions)
        flag = "ok" if total == want_total else "MISMATCH"
        print(f"  GET /judgements count {total:,}, expected {want_total:,}: {flag}")
        good &= total == want_total
        print(f"  {'dimension':<14}{'judgements':>11}{'expected':>10}{'live alpha':>13}", end="")
        print(f"{'alpha of sent':>15}{'store recompute':>17}{'max |sum diff|':>16}")
        engine = make_engine(settings.database_url)
        try:
            with Session(engine) as db:
                rebuilt = store.recompute_sums(db, PROJECT)
                for dim in TAX.dimensions:
                    live = reads.get(
                        f"/projects/{PROJECT}/agreement", params={"dimension": dim.name}
                    ).json()
                    stored = store.stored_sums(db, PROJECT, dim.name)
                    again = rebuilt.get(dim.name, {})
                    diff = max(
                        (abs(stored.get(k, 0.0) - again.get(k, 0.0)) for k in {*stored, *again}),
                        default=0.0,
                    )
                    matrix = store.judgement_matrix(db, PROJECT, dim)[0]
                    try:
                        from_store: float | None = krippendorff_alpha(matrix, dim.level)
                    except ValueError:
                        from_store = None
                    want = expected_alpha(workload, dim, sent)
                    row_ok = (
                        live["judgements"] == len(sent) * TURNS
                        and _same(live["alpha"], want)
                        and _same(live["alpha"], from_store)
                        and diff < 1e-6
                    )
                    good &= row_ok
                    print(
                        f"  {dim.name:<14}{live['judgements']:>11,}{len(sent) * TURNS:>10,}"
                        f"{_fmt_alpha(live['alpha']):>13}{_fmt_alpha(want):>15}"
                        f"{_fmt_alpha(from_store):>17}{diff:>16.1e}"
                        f"  {'ok' if row_ok else 'MISMATCH'}"
                    )
        finally:
            engine.dispose()
    print(f"  {'all equal' if good else 'DIFFERENCES FOUND'}")
    return good


def _fmt_alpha(value: float | None) -> str:
    return "None" if value is None else f"{value:.9f}"


# ---------------------------------------------------------------------------- profile


def profile_store(database_url: str, events: int) -> None:
    """Apply ``events`` events in-process (no HTTP) with timing spans, then under cProfile."""
    immediate = database_url.startswith("sqlite")
    engine = make_engine(database_url, immediate=immediate)
    init_db(engine)
    spans = {"statements": 0, "sql": 0.0}

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn, cursor, statement, params, context, many) -> None:  # type: ignore[no-untyped-def]
        conn.info["t0"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn, cursor, statement, params, context, many) -> None:  # type: ignore[no-untyped-def]
        spans["statements"] += 1
        spans["sql"] += time.perf_counter() - conn.info.pop("t0")

    workload = Workload(TAX, 20)
    payloads = [workload.team[i % 20].next_payload()[2] for i in range(2 * events)]
    try:
        _spans(engine, payloads[:events], spans)
        profiler = cProfile.Profile()
        with Session(engine) as db:
            profiler.enable()
            for payload in payloads[events:]:
                store.apply_event(db, payload, TAX)
            profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs()
        stats.sort_stats("cumulative").print_stats(r"(store|incremental|codec)\.py", 14)
        stats.sort_stats("tottime").print_stats(12)
        print(f"\ncProfile of {events} more events (store.apply_event; times are inflated by")
        print("the profiler): the store's own functions by cumulative time, then the top")
        print("functions by own time")
        for line in out.getvalue().splitlines():
            if line.strip() and not line.lstrip().startswith(("Ordered by", "List reduced")):
                print("  " + line.rstrip())
    finally:
        engine.dispose()


def _spans(engine: Engine, payloads: list[dict[str, Any]], spans: dict[str, Any]) -> None:
    total = 0.0
    commit = 0.0
    with Session(engine) as db:
        original = db.commit

        def timed_commit() -> None:
            nonlocal commit
            t0 = time.perf_counter()
            original()
            commit += time.perf_counter() - t0

        db.commit = timed_commit  # type: ignore[method-assign]
        for payload in payloads:
            t0 = time.perf_counter()
            store.apply_event(db, payload, TAX)
            total += time.perf_counter() - t0
    n = len(payloads)
    print(f"\nstore path in-process ({engine.dialect.name}), {n} events (no HTTP), per event:")
    print(f"  wall time               {total / n * 1000:8.2f} ms  -> at most {n / total:,.0f}/s")
    print(f"  SQL statements          {spans['statements'] / n:8.1f}")
    sql = float(spans["sql"])
    print(f"  time in SQL execute     {sql / n * 1000:8.2f} ms  ({sql / total:.0%})")
    print(f"  commit                  {commit / n * 1000:8.2f} ms  ({commit / total:.0%})")
    rest = total - sql - commit
    print(f"  the rest (Python)       {rest / n * 1000:8.2f} ms  ({rest / total:.0%})")


# ---------------------------------------------------------------------------- main


def report(name: str, result: LoadResult) -> dict[str, float]:
    """Print one row of the results table; return its figures."""
    lat = result.latencies_ms()
    thirds = result.thirds()

    def pct(q: float) -> float:
        return float(np.percentile(lat, q)) if lat.size else float("nan")

    answered = sum(1 for r in result.records if r.status == 200)

    def per_event(cpu_seconds: float) -> float:
        """CPU milliseconds per answered event (the run's CPU over every 200 answer)."""
        return cpu_seconds * 1000 / answered if answered else float("nan")

    figures = {
        "rate": result.rate(),
        "p50": pct(50),
        "p95": pct(95),
        "p99": pct(99),
        "max": float(lat.max()) if lat.size else float("nan"),
        "errors": float(sum(result.errors.values())),
    }
    print(
        f"  {name:<20}{figures['rate']:>9.1f}{thirds[0]:>8.0f}{thirds[-1]:>8.0f}"
        f"{figures['p50']:>8.1f}{figures['p95']:>8.1f}{figures['p99']:>8.1f}{figures['max']:>8.0f}"
        f"{int(figures['errors']):>7}{result.server_cpu:>7.1f}{result.client_cpu:>7.1f}"
        f"{result.postgres_cpu:>7.1f}{per_event(result.server_cpu):>7.2f}"
        f"{per_event(result.client_cpu):>7.2f}{per_event(result.postgres_cpu):>7.2f}"
        f"  {_health(result.health_ms)}"
    )
    if result.pending_at_end is not None:
        sustained = answered / (result.records[-1].end - result.records[0].start + result.drain_s)
        print(
            f"  {name}: {result.pending_at_end} acknowledged events not yet applied when the "
            f"load ended, all applied {result.drain_s:.2f} s later; applied {sustained:.1f} "
            "events/s over the run (CPU columns include that catching up)"
        )
        figures["applied"] = sustained
    return figures


def _health(values: list[float]) -> str:
    answered = [v for v in values if v != float("inf")]
    if not answered:
        return f"{len(values)} timed out" if values else "-"
    text = f"{np.percentile(answered, 50):.0f} / {np.percentile(answered, 99):.0f}"
    lost = len(values) - len(answered)
    return f"{text} ({lost} t/o)" if lost else text


def main(argv: list[str] | None = None) -> int:
    """Run the peer and the service under the same load, verify, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--annotators", type=int, default=20, help="concurrent annotators")
    parser.add_argument("--seconds", type=float, default=None, help="duration (default 30)")
    parser.add_argument("--quick", action="store_true", help="5 s runs")
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="open loop: send this many events/s in all (default: closed loop, as fast as "
        "the server answers)",
    )
    parser.add_argument("--no-peer", action="store_true", help="skip the bare peer run")
    parser.add_argument("--profile", action="store_true", help="profile the store path too")
    parser.add_argument(
        "--preload",
        type=int,
        default=0,
        metavar="JUDGEMENTS",
        help="fill the store with this many judgements first (bulk, not through the service)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="uvicorn worker processes of the service"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        metavar="DIR",
        help="also run the service from this other checkout of the project (e.g. "
        "'git archive HEAD | tar -x -C DIR') under the same load, as a before/after peer",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    if not 1 <= args.workers <= 8:
        parser.error("--workers must be between 1 and 8")
    if args.baseline is not None and not (args.baseline / "api" / "app.py").is_file():
        parser.error(f"--baseline {args.baseline}: expected a checkout with api/app.py")
    if not 1 <= args.annotators <= 200:
        parser.error("--annotators must be between 1 and 200")
    seconds = args.seconds or (5.0 if args.quick else 30.0)
    if not 2.0 <= seconds <= 300.0:
        parser.error("--seconds must be between 2 and 300")
    if args.rate is not None and not 1.0 <= args.rate <= 5000.0:
        parser.error("--rate must be between 1 and 5000 events/s")
    if not 0 <= args.preload <= 2_000_000:
        parser.error("--preload must be between 0 and 2,000,000 judgements")

    print(f"webhook_ingest: the agreement service on {args.db} vs a bare FastAPI webhook (peer)")
    print(f"  cores {os.cpu_count()}, load average {_load()} at start")
    print(
        f"  {args.annotators} concurrent annotators, {seconds:g} s per run ({WARMUP:g} s warm-up)"
        f", events of {TURNS} turns x {len(TAX.dimensions)} dimensions, "
        f"{UPDATE_SHARE:.0%} updates"
    )
    if args.rate:
        print(f"  open loop: {args.rate:g} events/s scheduled; latency from the scheduled time")
    else:
        print("  closed loop: each annotator sends its next event when the last is answered")
    header = (
        f"  {'server':<20}{'events/s':>9}{'1st 1/3':>8}{'3rd 1/3':>8}{'p50 ms':>8}{'p95 ms':>8}"
        f"{'p99 ms':>8}{'max ms':>8}{'errors':>7}{'srv s':>7}{'gen s':>7}{'pg s':>7}"
        f"{'srv ms':>7}{'gen ms':>7}{'pg ms':>7}"
        f"  {'health p50/p99 ms'}"
    )
    rows: dict[str, dict[str, float]] = {}
    results: dict[str, LoadResult] = {}
    if not args.no_peer:
        with bare_service() as (url, pid):
            results["bare FastAPI (peer)"] = drive(
                url, Workload(TAX, args.annotators), seconds, pid, args.rate
            )
    ok = True
    runs: list[tuple[str, Path | None]] = []
    if args.baseline is not None:
        runs.append((f"baseline ({args.db})", args.baseline.resolve()))
    workers = f", {args.workers} workers" if args.workers > 1 else ""
    runs.append((f"service ({args.db}{workers})", None))
    for name, tree in runs:
        with (
            tempfile.TemporaryDirectory(prefix="improv-bench-") as tmp,
            _database(args.db) as db_url,
        ):
            workload = Workload(TAX, args.annotators)

            def fill(url: str, workload: Workload = workload) -> None:
                if args.preload:
                    start = time.perf_counter()
                    written = preload(url, workload, args.preload)
                    print(
                        f"  preloaded {written:,} judgements in {time.perf_counter() - start:.0f} s"
                    )

            with real_service(Path(tmp), db_url, fill, workers=args.workers, tree=tree) as (
                settings,
                pid,
            ):
                results[name] = drive(settings.service.url, workload, seconds, pid, args.rate)
                if STOP.is_set():
                    print("  SIGTERM: the load was ended early")
                print(f"\n{name}:", end="")
                ok &= verify(settings, workload)
            if args.profile and tree is None:
                with _database(args.db) as fresh:
                    profile_store(fresh or f"sqlite:///{Path(tmp) / 'profile.db'}", 300)
    for line in (
        "results: events/s (200 answers) after warm-up, and in the first and last",
        "third of that; latency from send (open loop: scheduled send) to answer; CPU",
        "seconds of the server (srv, all its processes), the load generator (gen) and all",
        "postgres processes (pg) during the run, and the same in ms per answered event",
        "(about independent of the machine's load); latency of GET /health probed every",
        "100 ms during the whole run, warm-up included (it waits behind the webhooks)",
    ):
        print(("\n" if line.startswith("results") else "") + line)
    print(header)
    for name, result in results.items():
        rows[name] = report(name, result)
    for name, result in results.items():
        if result.scheduled:
            unsent = result.scheduled - len(result.records)
            behind = f"; {unsent:,} not sent by the end (it fell behind)" if unsent else ""
            print(
                f"  {name}: {len(result.records):,} of {result.scheduled:,} scheduled "
                f"events sent{behind}"
            )
        if result.batching and result.batching[1]:
            events, transactions = result.batching
            print(
                f"  {name}: group commit {events:,} events in {transactions:,} transactions "
                f"({events / transactions:.1f} per transaction)"
            )
        for sample in result.error_samples:
            print(f"  {name} error: {sample}")

    service = rows[runs[-1][0]]
    for peer_name in ("bare FastAPI (peer)", runs[0][0] if len(runs) > 1 else ""):
        if peer_name not in rows:
            continue
        peer = rows[peer_name]
        print(f"\nratio to {peer_name} (same load, same run)")
        print(f"  throughput: service / peer = {service['rate'] / peer['rate']:.2f}")
        print(f"  p99 latency: service / peer = {service['p99'] / peer['p99']:.2f}x")
    print("\ntarget: >= 500 events/s sustained, p99 < 50 ms (the peer shows what this machine")
    print("and load generator allow)")
    for name, figures in rows.items():
        result = results[name]
        unsent = result.scheduled - len(result.records) if result.scheduled else 0
        # an open loop offers exactly 500/s: what it measures is 500 less rounding (1%)
        met = figures["rate"] >= 495 and figures["p99"] < 50 and figures["errors"] == 0
        met = met and unsent <= 0.01 * max(result.scheduled, 1)
        print(
            f"  {name:<20} {figures['rate']:6.0f} events/s, p99 {figures['p99']:8.1f} ms, "
            f"{int(figures['errors'])} errors -> {'met' if met else 'MISSED'}"
        )
    print(f"  load average {_load()} at end")
    return 0 if ok else 1


def _on_sigterm(signum: int, frame: object) -> None:
    """First SIGTERM: end the load now (then verify and clean up); second: exit."""
    if STOP.is_set():
        raise SystemExit(128 + signum)
    STOP.set()


@contextmanager
def _database(kind: str) -> Iterator[str | None]:
    if kind == "postgres":
        with postgres_database() as url:
            yield url
    else:
        yield None


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    raise SystemExit(main())
