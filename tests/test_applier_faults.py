"""The applier dies, stalls or loses its files: the service replaces it, never makes a
webhook wait for it, says how stale a read is, and says what may be lost.

Every test drives real processes: the service under uvicorn (``annotate.stack``), its
applier process (``python -m api.applier``, found below the service's process and sent
SIGKILL, SIGSTOP and SIGCONT), SQLite files and PostgreSQL.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from api.inbox import inbox_path
from schemas.taxonomy import load_taxonomy
from tests.faultkit import (
    Row,
    Served,
    appliers,
    context_switches,
    make_service,
    payload_rows,
    store_rows,
    wait_for,
)
from tests.payloads import annotation_event, dialogue, task

pytestmark = pytest.mark.integration
TAX = load_taxonomy()
EMOTIONS = list(TAX.emotion.values)
HOOK = "/webhooks/label-studio"
BASE = datetime(2026, 12, 4, 6, 0, tzinfo=UTC)


def _at(seconds: float) -> str:
    return (BASE + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rows_of(payload: dict[str, Any]) -> set[Row]:
    """The judgements an annotation event carries, decoded by the real codec."""
    return payload_rows(payload, TAX)


def events(n: int, seed: int, first_id: int = 1) -> list[dict[str, Any]]:
    """``n`` annotation events (distinct annotations) on 5 tasks of 4 turns."""
    rng = random.Random(seed)
    tasks = [task(k + 1, dialogue(4, clip=k)) for k in range(5)]
    return [
        annotation_event(
            TAX,
            first_id + i,
            tasks[i % 5],
            1 + i % 7,
            {
                t: {"emotion": rng.choice(EMOTIONS), "intensity": rng.randint(1, 5)}
                for t in range(4)
            },
            updated_at=_at(i),
        )
        for i in range(n)
    ]


def expected(payloads: list[dict[str, Any]]) -> set[Row]:
    """The store's judgements once ``payloads`` (distinct annotations) are applied."""
    return set().union(*(rows_of(p) for p in payloads)) if payloads else set()


def settled(served: Served, database_url: str, timeout: float = 60) -> set[Row]:
    """The store's judgements of project 1 once nothing acknowledged waits."""
    with served.reads() as reads:
        assert wait_for(
            lambda: reads.get("/health").json()["inbox"]["pending"] == 0, timeout=timeout
        )
    return store_rows(database_url, 1)


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[Served]:
    """A service on ``database_url`` whose /health calls an applier dead after 1.5 s."""
    service = make_service(tmp_path, database_url, service={"applier_timeout_seconds": 1.5})
    service.start()
    try:
        yield service
    finally:
        for pid in appliers(service):  # a test may leave its applier stopped
            os.kill(pid, signal.SIGCONT)
        service.stop()


class Sender:
    """Posts webhooks at a fixed rate from a thread pool; keeps each answer's status and
    how long it took."""

    def __init__(self, served: Served, payloads: list[dict[str, Any]], rate: float) -> None:
        self.served, self.payloads, self.rate = served, payloads, rate
        self.answers: list[tuple[int, float, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sender:
        self._thread.start()
        return self

    def join(self) -> None:
        self._thread.join()

    def _run(self) -> None:
        clients = threading.local()

        def post(payload: dict[str, Any]) -> None:
            if not hasattr(clients, "http"):
                clients.http = self.served.hooks(timeout=30)
            began = time.monotonic()
            try:
                status = clients.http.post(HOOK, json=payload).status_code
            except httpx.HTTPError:
                status = 0
            with self._lock:
                self.answers.append((status, time.monotonic() - began, payload))

        start = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            for i, payload in enumerate(self.payloads):
                delay = start + i / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(post, payload)

    @property
    def acknowledged(self) -> list[dict[str, Any]]:
        return [payload for status, _, payload in self.answers if status == 200]

    @property
    def seconds(self) -> list[float]:
        return sorted(took for _, took, _ in self.answers)


# -- item 6: a dead applier is replaced ------------------------------------------------------


def test_a_killed_applier_is_replaced_and_every_acknowledged_event_is_applied(
    served: Served, database_url: str
) -> None:
    first = appliers(served)
    assert len(first) == 1, first
    payloads = events(150, seed=6)
    sender = Sender(served, payloads, rate=50).start()  # 3 s of events
    time.sleep(0.8)
    os.kill(first[0], signal.SIGKILL)
    killed = time.monotonic()
    seen: list[tuple[float, int, dict[str, Any]]] = []  # (seconds after the kill, status, body)
    replaced_after = None
    with served.reads(timeout=10) as reads:
        while time.monotonic() - killed < 30:
            answer = reads.get("/health")
            seen.append((time.monotonic() - killed, answer.status_code, answer.json()))
            now = [p for p in appliers(served) if p not in first]
            if now and replaced_after is None:
                replaced_after = time.monotonic() - killed
            led_by = answer.json()["applier"]["pid"]
            if replaced_after is not None and answer.status_code == 200 and led_by not in first:
                break
            time.sleep(0.1)
    sender.join()
    assert replaced_after is not None and replaced_after < 10, seen[-1]
    new = appliers(served)
    assert len(new) == 1 and new[0] not in first
    # /health saw the gap: the heartbeat aged while no applier ran, and past the bound of
    # 1.5 s it answered 503 (a new applier that reports within the bound is not caught;
    # the pid and the restart count below show the replacement then)
    oldest = max(body["applier"]["heartbeat_age_s"] or 0 for _, _, body in seen)
    degraded = [body for _, code, body in seen if code == 503]
    for body in degraded:
        assert body["status"] == "degraded"
        assert any("no applier has reported" in r for r in body["reasons"]), body
    # every acknowledged event is applied by the new applier
    assert len(sender.acknowledged) == len(payloads)
    assert settled(served, database_url) == expected(payloads)
    with served.reads() as reads:
        health = reads.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["applier"]["pid"] == new[0]
    assert health.json()["applier"]["restarts"] == 1
    print(
        f"\nRELIABILITY applier-killed: new applier process after {replaced_after:.1f} s, "
        f"reporting (and /health ok) {seen[-1][0]:.1f} s after the kill; oldest heartbeat "
        f"seen {oldest:.1f} s, /health 503 in {len(degraded)} of {len(seen)} looks; "
        f"{len(payloads)}/{len(payloads)} acknowledged events applied"
    )


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_when_the_web_worker_of_the_leading_applier_dies_another_applier_takes_over(
    database_url: str, tmp_path: Path
) -> None:
    served = make_service(tmp_path, database_url, service={"applier_timeout_seconds": 1.5})
    served.start(workers=2)
    try:
        assert wait_for(lambda: len(appliers(served)) == 2, timeout=30)
        with served.reads() as reads:
            assert wait_for(lambda: reads.get("/health").status_code == 200, timeout=30)
            leader = reads.get("/health").json()["applier"]["pid"]
        worker = int(Path(f"/proc/{leader}/stat").read_text().rsplit(")", 1)[1].split()[1])
        payloads = events(150, seed=61)
        sender = Sender(served, payloads, rate=50).start()
        time.sleep(0.8)
        os.kill(worker, signal.SIGKILL)  # the web worker, and with it its applier's parent
        killed = time.monotonic()
        with served.reads() as reads:
            assert wait_for(
                lambda: (
                    reads.get("/health").json()["applier"]["pid"] not in (leader, None)
                    and reads.get("/health").status_code == 200
                ),
                timeout=20,
            )
            took = time.monotonic() - killed
            new = reads.get("/health").json()["applier"]["pid"]
        sender.join()
        assert wait_for(lambda: not Path(f"/proc/{leader}").exists(), timeout=10)
        acknowledged = sender.acknowledged
        assert len(acknowledged) >= len(payloads) - 20  # those sent to the killed worker fail
        assert settled(served, database_url) == expected(acknowledged)
    finally:
        served.stop()
    print(
        f"\nRELIABILITY worker-killed: the leading applier's web worker SIGKILLed; applier "
        f"{new} leads after {took:.1f} s; {len(acknowledged)}/{len(payloads)} acknowledged, "
        "all applied"
    )


# -- item 7: a read says how stale it is ------------------------------------------------------


def test_reads_while_the_applier_is_stopped_say_they_are_stale(
    served: Served, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from annotate import cli

    before, during = events(4, seed=7), events(3, seed=8, first_id=100)
    with served.hooks() as hooks, served.reads(timeout=30) as reads:
        for payload in before:
            assert hooks.post(HOOK, json=payload).status_code == 200
        assert settled(served, database_url) == expected(before)
        (pid,) = appliers(served)
        os.kill(pid, signal.SIGSTOP)
        try:
            sent = time.monotonic()
            for payload in during:
                assert hooks.post(HOOK, json=payload).status_code == 200
            began = time.monotonic()
            answer = reads.get("/projects/1/agreement")
            took = time.monotonic() - began
            assert answer.status_code == 200, answer.text
            assert answer.headers["X-Improv-Pending"] == "3"
            age = float(answer.headers["X-Improv-Pending-Age"])
            assert 0 < age <= time.monotonic() - sent + 0.5
            fresh = answer.json()["freshness"]
            assert fresh["pending"] == 3 and fresh["fresh"] is False
            assert answer.json()["judgements"] == 4 * 4  # only what was applied
            # the CLI says so too
            monkeypatch.setattr(cli.state, "_settings", None)
            result = CliRunner().invoke(
                cli.app, ["--config", str(served.config), "agreement", "--project", "1"]
            )
            assert result.exit_code == 0, result.output
            said = " ".join(result.output.split())
            assert "not fresh: 3 events the service acknowledged are not applied yet" in said
            # and the dashboard page, above its figures
            page = reads.get("/dashboard/1")
            assert page.status_code == 200, page.text
            assert page.headers["X-Improv-Pending"] == "3"
            assert 'id="stale"' in page.text
            assert "Not fresh: 3 acknowledged events not applied yet" in page.text
        finally:
            os.kill(pid, signal.SIGCONT)
        assert settled(served, database_url) == expected(before + during)
        answer = reads.get("/projects/1/agreement")
        assert answer.headers["X-Improv-Pending"] == "0"
        assert answer.headers["X-Improv-Pending-Age"] == "0.000"
        assert answer.json()["freshness"] == {"pending": 0, "oldest_age_s": 0.0, "fresh": True}
        assert answer.json()["judgements"] == 7 * 4
        page = reads.get("/dashboard/1")
        assert page.status_code == 200 and 'id="stale"' not in page.text
    assert took < 6, took  # the read waited about service.read_wait_seconds (2 s), no more
    print(
        f"\nRELIABILITY stale-read: with the applier stopped, a read answered in {took:.1f} s "
        f"with X-Improv-Pending 3 (oldest {age:.1f} s), then 0 once it resumed"
    )


def test_health_is_degraded_while_events_wait_longer_than_the_bound(
    database_url: str, tmp_path: Path
) -> None:
    served = make_service(
        tmp_path,
        database_url,
        service={"max_backlog_seconds": 2, "applier_timeout_seconds": 120},
    )
    served.start()
    (pid,) = appliers(served)
    try:
        with served.hooks() as hooks, served.reads() as reads:
            os.kill(pid, signal.SIGSTOP)
            try:
                for payload in events(4, seed=13):
                    assert hooks.post(HOOK, json=payload).status_code == 200
                fresh = reads.get("/health")
                time.sleep(3)
                late = reads.get("/health")
            finally:
                os.kill(pid, signal.SIGCONT)
            assert wait_for(lambda: reads.get("/health").status_code == 200, timeout=30)
    finally:
        served.stop()
    assert fresh.status_code == 200 and fresh.json()["inbox"]["pending"] == 4
    assert late.status_code == 503 and late.json()["status"] == "degraded"
    (reason,) = late.json()["reasons"]  # the applier itself reported within its bound
    assert reason.startswith("4 acknowledged events wait to be applied, the oldest for ")
    assert late.json()["inbox"]["oldest_age_s"] > 2
    print(f"\nRELIABILITY backlog-bound: /health 503 after 3 s of a stopped applier: {reason}")


# -- item 8: a stopped applier never makes a webhook wait ---------------------------------------


def test_webhooks_do_not_wait_for_a_stopped_applier(served: Served, database_url: str) -> None:
    """50 events/s for about 20 s; the applier is stopped for 8 s, then stopped for 1.2 s
    six times (each stop may catch it anywhere, e.g. in the middle of a transaction);
    every webhook answers within Label Studio's 1 s timeout."""
    payloads = events(1000, seed=8)
    (pid,) = appliers(served)
    sender = Sender(served, payloads, rate=50).start()
    stops: list[float] = []

    def pause(seconds: float) -> None:
        os.kill(pid, signal.SIGSTOP)
        stops.append(seconds)
        time.sleep(seconds)
        os.kill(pid, signal.SIGCONT)

    try:
        time.sleep(2)
        pause(8)
        for _ in range(6):
            time.sleep(random.uniform(0.1, 0.5))
            pause(1.2)
    finally:
        os.kill(pid, signal.SIGCONT)
    sender.join()
    seconds = sender.seconds
    statuses = {status for status, _, _ in sender.answers}
    assert statuses == {200}, statuses
    assert len(sender.acknowledged) == len(payloads)
    assert max(seconds) < 1.0, seconds[-5:]
    assert settled(served, database_url, timeout=120) == expected(payloads)
    p50 = seconds[len(seconds) // 2]
    p99 = seconds[int(len(seconds) * 0.99)]
    print(
        f"\nRELIABILITY stalled-applier: {len(payloads)} webhooks at 50/s, applier stopped "
        f"{sum(stops):.0f} s in {len(stops)} stops: p50 {p50 * 1000:.1f} ms, p99 "
        f"{p99 * 1000:.1f} ms, max {max(seconds) * 1000:.0f} ms, all 200, all applied"
    )


# -- item 9: a deleted inbox file is noticed, and what may be lost is said ----------------------


def _inbox_files(served: Served) -> list[Path]:
    inbox = inbox_path(served.settings.database_url.split("///", 1)[1])
    return [inbox, inbox.with_name(inbox.name + "-wal"), inbox.with_name(inbox.name + "-shm")]


def _reasons(served: Served) -> list[str]:
    with served.reads() as reads:
        return reads.get("/health").json()["reasons"]


def test_a_deleted_inbox_is_noticed_and_what_may_be_lost_is_said(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'data' / 'store.db'}"
    served = make_service(tmp_path, url)
    served.start()
    first, lost, after = events(3, 9), events(2, 10, first_id=50), events(2, 11, first_id=80)
    try:
        with served.hooks() as hooks:
            for payload in first:
                assert hooks.post(HOOK, json=payload).status_code == 200
            assert settled(served, url) == expected(first)
            (pid,) = appliers(served)
            os.kill(pid, signal.SIGSTOP)
            try:
                for payload in lost:  # acknowledged, not applied: in the file deleted next
                    assert hooks.post(HOOK, json=payload).status_code == 200
                deleted = datetime.now(UTC)
                for file in _inbox_files(served):
                    file.unlink(missing_ok=True)
                refused = hooks.post(HOOK, json=after[0])
                assert wait_for(
                    lambda: any("inbox replaced" in r for r in _reasons(served)), timeout=10
                )
            finally:
                os.kill(pid, signal.SIGCONT)
            # the supervisor opened a new inbox: webhooks are acknowledged again, and applied
            for payload in after:
                assert hooks.post(HOOK, json=payload).status_code == 200
        assert refused.status_code == 503, refused.text
        assert "the inbox file is missing" in refused.json()["detail"]
        assert wait_for(lambda: store_rows(url, 1) == expected(first + after), timeout=30)
        with served.reads() as reads:
            health = reads.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "degraded"
        (said,) = [r for r in health.json()["reasons"] if "inbox replaced" in r]
        since = datetime.fromisoformat(said.split("acknowledged since ")[1].split(" may")[0])
        assert since <= deleted  # from when the lost events may have been acknowledged
        assert "may be lost" in said and "full pull from Label Studio" in said
        # the new file's ids continue above the store's watermark when it was created
        assert health.json()["applier"]["watermark"] >= len(first) + len(after)
        # a restart does not forget it
        served.stop()
        served.start()
        assert any("inbox replaced" in r for r in _reasons(served))
        # deleted while the service is stopped, with events acknowledged and not applied
        (pid,) = appliers(served)
        os.kill(pid, signal.SIGSTOP)
        with served.hooks() as hooks:
            assert hooks.post(HOOK, json=events(1, 12, first_id=90)[0]).status_code == 200
        served.kill()
        for file in _inbox_files(served):
            file.unlink(missing_ok=True)
        served.start()
        reasons = _reasons(served)
        assert sum("inbox replaced" in r for r in reasons) == 1, reasons
        assert store_rows(url, 1) == expected(first + after)
    finally:
        for pid in appliers(served):
            os.kill(pid, signal.SIGCONT)
        served.stop()
    print(
        f"\nRELIABILITY inbox-deleted: webhook after the deletion answered "
        f"{refused.status_code}; /health degraded: {said!r}; later events applied; the "
        "report survives a restart, and a deletion while stopped is reported at start"
    )


# -- item 10: a full disk shows in /health ------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MB tmpfs mounted for the test (needs root; under CI=true its absence fails)."""
    import subprocess

    folder = tmp_path / "disk"
    folder.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        message = f"cannot mount a small tmpfs: {done.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_shows_in_health_and_refuses_webhooks(small_disk: Path, tmp_path: Path) -> None:
    data = small_disk / "data"
    url = f"sqlite:///{data / 'store.db'}"
    served = make_service(tmp_path, url, data_dir=data, service={"min_free_mb": 4})
    served.start()
    payloads = events(60, seed=10)
    filler = small_disk / "filler"
    try:
        with served.hooks() as hooks, served.reads() as reads:
            for payload in payloads[:10]:
                assert hooks.post(HOOK, json=payload).status_code == 200
            assert settled(served, url) == expected(payloads[:10])
            assert reads.get("/health").status_code == 200
            with open(filler, "wb") as f:  # fill the disk to the last block
                try:
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
                except OSError:
                    pass
            codes = [hooks.post(HOOK, json=p).status_code for p in payloads[10:]]
            full = reads.get("/health")
            filler.unlink()
            assert wait_for(
                lambda: hooks.post(HOOK, json=payloads[-1]).status_code == 200, timeout=20
            )
            again = reads.get("/health")
        assert 503 in codes, codes
        assert full.status_code == 503 and full.json()["status"] == "degraded"
        reasons = " | ".join(full.json()["reasons"])
        assert "MB free, below service.min_free_mb = 4 MB" in reasons
        assert "the last write of the inbox failed" in reasons and "full" in reasons
        assert "INSERT" not in reasons and "annotation" not in reasons  # no statement, no body
        assert again.status_code == 200, again.json()["reasons"]
        acknowledged = [p for p, c in zip(payloads[10:], codes, strict=True) if c == 200]
        assert settled(served, url) == expected(payloads[:10] + acknowledged + payloads[-1:])
    finally:
        served.stop()
    print(
        f"\nRELIABILITY disk-full (a 24 MB tmpfs, filled): {codes.count(503)} of {len(codes)} "
        f"webhooks answered 503, /health degraded: {reasons}; ok again once space was freed"
    )


# -- item 12: an idle applier sleeps, and wakes when an event arrives -------------------------


def test_an_idle_applier_sleeps_and_wakes_when_events_arrive(
    served: Served, database_url: str
) -> None:
    """Idle for 5 s, the applier wakes about once a second (its heartbeat and safety
    look); polling every 1-20 ms, it woke more than 250 times. An event still reaches the
    store without waiting for that second: a read finds it applied."""
    payloads = events(20, seed=12)
    with served.hooks() as hooks, served.reads() as reads:
        assert hooks.post(HOOK, json=payloads[0]).status_code == 200
        assert settled(served, database_url) == expected(payloads[:1])
        (pid,) = appliers(served)
        time.sleep(1)
        before = context_switches(pid)
        time.sleep(5)
        switches = context_switches(pid) - before
        waits = []
        for payload in payloads[1:]:
            time.sleep(0.3)  # the applier is asleep again
            began = time.monotonic()
            assert hooks.post(HOOK, json=payload).status_code == 200
            answer = reads.get("/projects")
            waits.append(time.monotonic() - began)
            assert answer.headers["X-Improv-Pending"] == "0"
        assert store_rows(database_url, 1) == expected(payloads)
    assert switches < 150, switches  # polling: at least 250 sleeps alone
    print(
        f"\nRELIABILITY idle-applier: {switches} context switches in 5 s idle; webhook then "
        f"read (applied) median {statistics.median(waits) * 1000:.0f} ms, max "
        f"{max(waits) * 1000:.0f} ms"
    )
