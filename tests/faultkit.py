"""Helpers of the fault tests: a private PostgreSQL, services on loopback, store snapshots.

Everything here drives real processes (uvicorn, PostgreSQL, Label Studio); nothing fakes them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import Session, select

from annotate import stack
from annotate.config import Settings, load_settings, with_local_secrets
from annotate.labelstudio import SECRET_HEADER, iter_tasks
from api import store
from api.db import make_engine
from api.models import AgreementSum, Annotation, Judgement
from schemas.codec import decode_annotation
from schemas.taxonomy import Taxonomy
from tests.conftest import free_port, missing, write_config

SECRET = "fault-secret"
KEY = "fault-key"
# (annotation id, turn id, dimension, value): one judgement, comparable across sources
Row = tuple[int, str, str, str]


def postgres_bin() -> Path | None:
    """The folder of PostgreSQL's server programs (Debian's newest version), or None."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else None


class PrivatePostgres:
    """A PostgreSQL server of its own (initdb in a temp folder, trust auth, a free port),
    which a test may kill and start again without touching the machine's shared one."""

    def __init__(self) -> None:
        bin_dir = postgres_bin()
        if bin_dir is None:
            missing(
                "PostgreSQL's server programs are not in /usr/lib/postgresql/<version>/bin "
                "(scripts/system-deps.sh test installs Debian's package postgresql)"
            )
        self.bin = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="improv-pg-"))
        self.data = self.root / "data"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:  # initdb refuses to run as root
            shutil.chown(self.root, "postgres")
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        )
        self.start()

    @property
    def url(self) -> str:
        """The database URL of the server's ``postgres`` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        done = subprocess.run([*prefix, *argv], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {done.stdout}{done.stderr}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "start",
        )

    def crash(self) -> None:
        """Stop the server at once, as a crash would (no checkpoint, connections cut)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")

    def close(self) -> None:
        """Stop the server (if running) and remove its files."""
        with contextlib.suppress(RuntimeError):
            self.crash()
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class Served:
    """A service started for one test: its settings, config file and clients."""

    settings: Settings
    config: Path

    @property
    def url(self) -> str:
        """The service's base URL."""
        return self.settings.service.url

    def hooks(self, timeout: float = 30) -> httpx.Client:
        """A client that posts webhooks with the right secret."""
        return httpx.Client(base_url=self.url, headers={SECRET_HEADER: SECRET}, timeout=timeout)

    def reads(self, timeout: float = 60) -> httpx.Client:
        """A client for the read endpoints (with the API key)."""
        return httpx.Client(base_url=self.url, headers={"X-API-Key": KEY}, timeout=timeout)

    def start(self, workers: int = 1) -> None:
        """Start (or restart) the service process."""
        stack.start_service(self.settings, self.config, workers=workers)

    def kill(self) -> None:
        """SIGKILL the service's whole process group (no shutdown, no flush)."""
        pid = int((self.settings.data_path / "run" / f"{stack.SERVICE}.pid").read_text())
        os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                break
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        (self.settings.data_path / "run" / f"{stack.SERVICE}.pid").unlink(missing_ok=True)

    def stop(self) -> None:
        """Stop the service (SIGTERM, then SIGKILL)."""
        stack.stop(self.settings, stack.SERVICE)


def caught_up(served: Served, timeout: float = 120) -> None:
    """Wait until every event the service has acknowledged is applied (a read waits only
    ``service.read_wait_seconds`` for that, then answers saying what is pending)."""
    with served.reads() as reads:
        done = wait_for(lambda: reads.get("/health").json()["inbox"]["pending"] == 0, timeout)
    assert done, f"events still pending after {timeout} s"


def settled_rows(served: Served, project_id: int) -> set[tuple[Any, ...]]:
    """:func:`store_rows` once every event the service has acknowledged is applied."""
    caught_up(served)
    return store_rows(served.settings.database_url, project_id)


def make_service(
    folder: Path,
    database_url: str,
    *,
    label_studio: Settings | None = None,
    reconcile_seconds: float = 0,
    project_title: str | None = None,
    webhook_mode: str = "trusted",
    service: dict[str, Any] | None = None,
    data_dir: Path | None = None,
) -> Served:
    """A service configuration in ``folder`` (not started); talks to ``label_studio`` if
    given, with a known webhook secret and API key; ``webhook_mode`` as
    ``service.webhook_mode`` (trusted: synthetic webhooks are applied as they come);
    ``service``: more settings of its ``service`` section; ``data_dir``: its data folder
    (else one in ``folder``)."""
    overrides: dict[str, Any] = {
        "service": {
            "database_url": database_url,
            "webhook_secret": SECRET,
            "api_key": KEY,
            "reconcile_seconds": reconcile_seconds,
            "webhook_mode": webhook_mode,
            **(service or {}),
        }
    }
    if data_dir is not None:
        overrides["data_dir"] = str(data_dir)
    if label_studio is not None:
        ls = label_studio.label_studio
        overrides["label_studio"] = {
            "url": ls.url,
            "token": ls.token,
            "password": ls.password,
            "project_title": project_title or ls.project_title,
        }
    config = write_config(folder, **overrides)
    return Served(with_local_secrets(load_settings(config)), config)


def store_rows(database_url: str, project_id: int) -> set[Row]:
    """Every live judgement of a project, read straight from the store."""
    engine = make_engine(database_url)
    try:
        with Session(engine) as db:
            rows = db.exec(
                select(
                    Judgement.annotation_id,
                    Judgement.turn_id,
                    Judgement.dimension,
                    Judgement.value,
                ).where(Judgement.project_id == project_id)
            ).all()
    finally:
        engine.dispose()
    return {(int(a), str(t), str(d), str(v)) for a, t, d, v in rows}


def label_studio_rows(client: Any, project_id: int, taxonomy: Taxonomy) -> set[Row]:
    """Every judgement of a project decoded from Label Studio's API (cancelled skipped)."""
    rows: set[Row] = set()
    for task in iter_tasks(client, project_id):
        for annotation in task.annotations or []:
            item = dict(annotation) if isinstance(annotation, dict) else annotation.dict()
            if item.get("was_cancelled"):
                continue
            decoded = decode_annotation({**item, "task": task.id}, task.data, taxonomy)
            rows |= {(j.annotation_id, j.turn_id, j.dimension, j.value) for j in decoded.judgements}
    return rows


def sum_differences(database_url: str, project_id: int) -> dict[str, float]:
    """Per dimension, the largest |stored incremental sum - sum recomputed from scratch|."""
    engine = make_engine(database_url)
    try:
        with Session(engine) as db:
            batch = store.recompute_sums(db, project_id)
            dims = set(batch) | set(
                db.exec(
                    select(AgreementSum.dimension).where(AgreementSum.project_id == project_id)
                ).all()
            )
            out = {}
            for dim in sorted(dims):
                stored = store.stored_sums(db, project_id, dim)
                fresh = batch.get(dim, {})
                keys = stored.keys() | fresh.keys()
                out[dim] = max((abs(stored.get(k, 0) - fresh.get(k, 0)) for k in keys), default=0)
    finally:
        engine.dispose()
    return out


def half_written(database_url: str, project_id: int, expected: dict[int, int]) -> list[int]:
    """Annotations whose stored judgement count is neither 0 nor ``expected[id]``, plus
    live annotation rows without any judgement although their event carried some."""
    engine = make_engine(database_url)
    try:
        with Session(engine) as db:
            counts: dict[int, int] = {}
            for annotation_id in db.exec(
                select(Judgement.annotation_id).where(Judgement.project_id == project_id)
            ).all():
                counts[int(annotation_id)] = counts.get(int(annotation_id), 0) + 1
            rows = db.exec(
                select(Annotation.id).where(
                    Annotation.project_id == project_id,
                    Annotation.deleted == False,  # noqa: E712
                )
            ).all()
    finally:
        engine.dispose()
    bad = [a for a, n in counts.items() if n != expected.get(a)]
    bad += [int(a) for a in rows if expected.get(int(a)) and int(a) not in counts]
    return sorted(set(bad))


def wait_for(condition: Any, timeout: float, every: float = 0.2) -> bool:
    """Poll ``condition()`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return bool(condition())


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...), from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError):
                continue
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def appliers(served: Served) -> list[int]:
    """The applier processes (``python -m api.applier``) below the service's process."""
    pid = int((served.settings.data_path / "run" / f"{stack.SERVICE}.pid").read_text())
    found = []
    for child in descendants(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"api.applier" in cmdline and b"-m" in cmdline:
            found.append(child)
    return sorted(found)


def context_switches(pid: int) -> int:
    """Voluntary and involuntary context switches of a process so far (each time it slept
    or was preempted), from /proc."""
    total = 0
    for task_status in Path(f"/proc/{pid}/task").glob("*/status"):
        for line in task_status.read_text().splitlines():
            if "ctxt_switches:" in line:
                total += int(line.split(":")[1])
    return total


def payload_rows(payload: dict[str, Any], taxonomy: Taxonomy) -> set[Row]:
    """The judgements an annotation event carries, decoded by the real codec."""
    annotation, t = payload["annotation"], payload["task"]
    decoded = decode_annotation({**annotation, "task": t["id"]}, t["data"], taxonomy)
    return {(j.annotation_id, j.turn_id, j.dimension, j.value) for j in decoded.judgements}
