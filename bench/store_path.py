"""The store path in-process (no HTTP): cost per event vs project size, and concurrent writers.

What it measures
----------------
``api.store.apply_event`` (what the webhook route runs for each Label Studio event), called
directly on a throwaway store, SQLite file (default) or PostgreSQL (``--db postgres``,
a database created on 127.0.0.1:5432 and dropped afterwards). Events are those of
``bench/webhook_ingest.py``: clips of 8 turns, 6 dimensions, 48 judgements per event.

1. **size**: milliseconds per event (100 events, one session, sequential) on a store that
   already holds 0, 200,000 and 1,000,000 judgements (bulk-loaded as in
   ``webhook_ingest.py --preload``; ``--quick``: 0 and 100,000). Then, on the same store,
   the same after adding an index on ``judgement (project_id, turn_id)``, and after
   ``ANALYZE`` as well: what-if columns that show whether the query plan is what grows
   (they change only this throwaway database). The peer is the empty store.
2. **batches**: milliseconds (wall and CPU of this process) per event when the events are
   applied in batches of 1, 4, 16 and 64 (``api.store.apply_events`` and one commit per
   batch, as the webhook's group commit does), on a fresh store, 640 events each. The
   peer is the batch of 1 (one transaction per event).
3. **writers**: events/s and errors when 8 threads (``--threads``) apply events at once,
   each with its own session, as happens when the periodic reconcile thread or
   ``POST /projects/{id}/reconcile`` runs next to webhooks, or with more than one worker.
   On PostgreSQL the wait events of the store's connections are sampled from
   ``pg_stat_activity`` every 50 ms. The peer is 1 thread. Bounded by ``--seconds``.
4. **pins**: the batches part in batches of 16, with the events' tasks pinned or
   not (:mod:`api.pins`); the peer applies them without any pin lookup.

Usage::

    .venv/bin/python bench/store_path.py                  # SQLite
    .venv/bin/python bench/store_path.py --db postgres
    .venv/bin/python bench/store_path.py --quick
    .venv/bin/python bench/store_path.py --parts batches [--db postgres]
    .venv/bin/python bench/store_path.py --parts pins [--db postgres]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import webhook_ingest as wi
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from api import store
from api.db import init_db, make_engine

EVENTS = 100  # per size measurement


@contextmanager
def fresh_store(kind: str, folder: Path, name: str) -> Iterator[str]:
    """The URL of a new, empty store of ``kind``."""
    if kind == "postgres":
        with wi.postgres_database() as url:
            yield url
    else:
        yield f"sqlite:///{folder / name}.db"


def _engine(url: str) -> Engine:
    engine = make_engine(url, immediate=url.startswith("sqlite"))
    init_db(engine)
    return engine


def per_event_ms(engine: Engine, workload: wi.Workload, events: int = EVENTS) -> float:
    """Milliseconds per ``apply_event`` over ``events`` new events, one session."""
    payloads = [workload.team[i % workload.annotators].next_payload()[2] for i in range(events)]
    with Session(engine) as db:
        start = time.perf_counter()
        for payload in payloads:
            store.apply_event(db, payload, wi.TAX)
        return (time.perf_counter() - start) / events * 1000


def sizes(kind: str, folder: Path, judgements: list[int]) -> None:
    """Table 1: ms per event vs the number of judgements already stored."""
    print(f"\n1. ms per event vs project size ({kind}, {EVENTS} events, sequential)")
    print(f"  {'judgements stored':>18}{'as is':>10}{'+ index':>10}{'+ ANALYZE':>12}")
    base = None
    for size in judgements:
        with fresh_store(kind, folder, f"size{size}") as url:
            workload = wi.Workload(wi.TAX, 20)
            if size:
                wi.preload(url, workload, size)
            engine = _engine(url)
            try:
                as_is = per_event_ms(engine, workload)
                base = base or as_is
                cells = [f"{as_is:>10.1f}"]
                if size:
                    with engine.begin() as conn:
                        conn.execute(
                            text(
                                "CREATE INDEX ix_bench_project_turn "
                                "ON judgement (project_id, turn_id)"
                            )
                        )
                    cells.append(f"{per_event_ms(engine, workload):>10.1f}")
                    with engine.begin() as conn:
                        conn.execute(text("ANALYZE"))
                    cells.append(f"{per_event_ms(engine, workload):>12.1f}")
                print(f"  {size:>18,}{''.join(cells)}   ({as_is / base:.1f}x the empty store)")
            finally:
                engine.dispose()
    if kind == "postgres":
        print("  (the preload has analysed the tables already, as autovacuum would)")


BATCH_EVENTS = 640


def batches(kind: str, folder: Path, sizes: tuple[int, ...] = (1, 4, 16, 64)) -> None:
    """Table 2: ms per event vs the number of events per transaction."""
    print(
        f"\n2. ms per event vs events per transaction ({kind}, {BATCH_EVENTS} events, fresh store)"
    )
    print(f"  {'per transaction':>16}{'wall ms':>10}{'cpu ms':>9}{'statements':>12}  vs 1")
    base = None
    for size in sizes:
        with fresh_store(kind, folder, f"batch{size}") as url:
            engine = _engine(url)
            statements = [0]

            @event.listens_for(engine, "after_cursor_execute")
            def _count(*_: Any, statements: list[int] = statements) -> None:
                statements[0] += 1

            workload = wi.Workload(wi.TAX, 20)
            payloads = [
                workload.team[i % workload.annotators].next_payload()[2]
                for i in range(BATCH_EVENTS)
            ]
            try:
                events = [store.parse_event(p, wi.TAX) for p in payloads]
                cpu, start = time.process_time(), time.perf_counter()
                with Session(engine) as db:
                    for k in range(0, BATCH_EVENTS, size):
                        store.apply_events(db, events[k : k + size])
                        db.commit()
                wall = (time.perf_counter() - start) / BATCH_EVENTS * 1000
                cpu = (time.process_time() - cpu) / BATCH_EVENTS * 1000
            finally:
                engine.dispose()
            base = base or wall
            print(
                f"  {size:>16}{wall:>10.2f}{cpu:>9.2f}{statements[0] / BATCH_EVENTS:>12.2f}"
                f"  {base / wall:.1f}x faster"
            )
    print("  (statements: those SQLAlchemy sees; the read of the units goes to the driver)")


def pins(kind: str, folder: Path, size: int = 16) -> None:
    """Table 4: what reading annotations against pinned task data costs per event
    (:mod:`api.pins`), in batches of ``size``: the peer applies the events without the
    taxonomy (no pin lookup at all); then with it and no task pinned (one lookup per
    batch that finds nothing), every task pinned as Label Studio sends it (a hash per
    event), and every task pinned with other data (each event decoded again)."""
    from api.pins import record_pins

    print(f"\n4. pinned task data ({kind}, {BATCH_EVENTS} events, {size} per transaction)")
    print(f"  {'mode':>24}{'wall ms':>10}{'cpu ms':>9}  vs peer")
    base = None
    for mode in ("no lookup (peer)", "nothing pinned", "pinned, same data", "pinned, edited"):
        with fresh_store(kind, folder, f"pins{abs(hash(mode))}") as url:
            engine = _engine(url)
            workload = wi.Workload(wi.TAX, 20)
            payloads = [
                workload.team[i % workload.annotators].next_payload()[2]
                for i in range(BATCH_EVENTS)
            ]
            try:
                if mode.startswith("pinned"):
                    held = {int(p["task"]["id"]): p["task"]["data"] for p in payloads}
                    if mode.endswith("edited"):  # the import pushed other data than is sent
                        held = {t: {**d, "title": "as imported"} for t, d in held.items()}
                    with Session(engine) as db:
                        record_pins(db, int(payloads[0]["project"]["id"]), held)
                        db.commit()
                events = [store.parse_event(p, wi.TAX) for p in payloads]
                taxonomy = None if mode.startswith("no lookup") else wi.TAX
                cpu, start = time.process_time(), time.perf_counter()
                with Session(engine) as db:
                    for k in range(0, BATCH_EVENTS, size):
                        store.apply_events(db, events[k : k + size], taxonomy)
                        db.commit()
                wall = (time.perf_counter() - start) / BATCH_EVENTS * 1000
                cpu = (time.process_time() - cpu) / BATCH_EVENTS * 1000
            finally:
                engine.dispose()
            base = base or wall
            print(f"  {mode:>24}{wall:>10.2f}{cpu:>9.2f}  {wall / base:.2f}x the time")


def writers(kind: str, folder: Path, threads: int, seconds: float) -> dict[str, Any]:
    """Table 3: events/s and errors with ``threads`` concurrent writers."""
    with fresh_store(kind, folder, f"writers{threads}") as url:
        engine = _engine(url)
        workload = wi.Workload(wi.TAX, 20)
        streams = [[workload.team[a].next_payload()[2] for _ in range(200)] for a in range(20)]
        done: Counter[str] = Counter()
        lock = threading.Lock()
        waits: Counter[str] = Counter()
        deadline = time.perf_counter() + seconds

        def run(k: int) -> None:
            with Session(engine) as db:
                for a in range(k, 20, threads):
                    for payload in streams[a]:
                        if time.perf_counter() > deadline:
                            return
                        try:
                            store.apply_event(db, payload, wi.TAX)
                            outcome = "ok"
                        except Exception as exc:  # counted and reported, the run goes on
                            outcome = type(getattr(exc, "orig", None) or exc).__name__
                        with lock:
                            done[outcome] += 1

        pool = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
        start = time.perf_counter()
        for t in pool:
            t.start()
        if kind == "postgres":
            _sample_waits(url, pool, waits)
        for t in pool:
            t.join()
        elapsed = time.perf_counter() - start
        engine.dispose()
    return {"threads": threads, "done": done, "elapsed": elapsed, "waits": waits}


def _sample_waits(url: str, pool: list[threading.Thread], waits: Counter[str]) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    query = (
        "SELECT coalesce(wait_event_type, 'CPU') || ':' || coalesce(wait_event, '-') || '  '"
        " || left(regexp_replace(query, '\\s+', ' ', 'g'), 40) FROM pg_stat_activity"
        " WHERE datname = %s AND state = 'active'"
    )
    with psycopg.connect(wi.PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        while any(t.is_alive() for t in pool):
            for (row,) in conn.execute(query, (name,)):
                waits[row] += 1
            time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    """Run both parts and print their tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--quick", action="store_true", help="smaller stores, 10 s writers")
    parser.add_argument("--threads", type=int, default=8, help="concurrent writers (part 2)")
    parser.add_argument("--seconds", type=float, default=None, help="writers run time")
    parser.add_argument(
        "--parts",
        default="size,batches,pins,writers",
        help="comma-separated parts to run (size, batches, pins, writers; default all)",
    )
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    if not parts <= {"size", "batches", "pins", "writers"}:
        parser.error(f"--parts: expected some of size, batches, pins, writers; got {args.parts}")
    if not 2 <= args.threads <= 32:
        parser.error("--threads must be between 2 and 32")
    seconds = args.seconds or (10.0 if args.quick else 30.0)
    if not 2.0 <= seconds <= 120.0:
        parser.error("--seconds must be between 2 and 120")
    judgements = [0, 100_000] if args.quick else [0, 200_000, 1_000_000]
    print(f"store_path: api.store.apply_event in-process on {args.db}")
    print(f"  cores {os.cpu_count()}, load average {_load()} at start")
    with tempfile.TemporaryDirectory(prefix="improv-bench-") as tmp:
        if "size" in parts:
            sizes(args.db, Path(tmp), judgements)
        if "batches" in parts:
            batches(args.db, Path(tmp))
        if "pins" in parts:
            pins(args.db, Path(tmp))
        if "writers" not in parts:
            print(f"  load average {_load()} at end")
            return 0
        print(f"\n3. concurrent writers ({args.db}, {seconds:g} s each, one session per thread)")
        print(f"  {'threads':>8}{'events/s':>10}{'ok':>7}  errors")
        results = [writers(args.db, Path(tmp), n, seconds) for n in (1, args.threads)]
    for r in results:
        done: Counter[str] = r["done"]
        errors = {k: v for k, v in done.items() if k != "ok"}
        rate = done["ok"] / r["elapsed"]
        print(f"  {r['threads']:>8}{rate:>10.1f}{done['ok']:>7}  {errors or 'none'}")
    single, many = results
    ratio = (many["done"]["ok"] / many["elapsed"]) / max(
        single["done"]["ok"] / single["elapsed"], 1e-9
    )
    print(f"  {args.threads} threads / 1 thread (peer): {ratio:.2f}x the events/s")
    if many["waits"]:
        total = sum(many["waits"].values())
        print(f"  what the {args.threads} writers' connections were doing (share of samples):")
        for what, n in many["waits"].most_common(6):
            print(f"    {n / total:6.1%}  {what}")
    print(f"  load average {_load()} at end")
    return 0


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    raise SystemExit(main())
