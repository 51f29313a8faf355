"""``improv-annotate serve``: the service alone in the foreground, as a process manager or a
container runs it (a real CLI process becoming uvicorn, its applier process, SQLite and
PostgreSQL stores); stopped by a signal, it leaves no process behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from annotate.labelstudio import SECRET_HEADER
from schemas.taxonomy import load_taxonomy
from tests.conftest import free_port, write_config
from tests.payloads import annotation_event, dialogue, task

TAX = load_taxonomy()
CLI = Path(sys.executable).with_name("improv-annotate")
SECRET, KEY = "serve-secret", "serve-key"
EMOTIONS = ("neutral", "joy", "sadness", "anger", "fear")


def _processes() -> dict[int, tuple[int, str]]:
    """Every process of the machine: pid -> (parent pid, command line)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue  # ended meanwhile
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, ...
        if fields[0] == "Z":
            continue  # ended, waiting to be reaped
        found[int(entry.name)] = (int(fields[1]), cmdline)
    return found


def _descendants(pid: int) -> dict[int, str]:
    """The live processes below ``pid``: pid -> command line."""
    table = _processes()
    below, frontier = {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, cmdline) in table.items():
            if ppid == parent and child not in below:
                below[child] = cmdline
                frontier.append(child)
    return below


def _alive(pids: list[int]) -> list[int]:
    table = _processes()
    return [p for p in pids if p in table]


@contextlib.contextmanager
def _serve(config: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """``improv-annotate --config CONFIG serve ARGS`` as a process of its own session; on
    the way out, whatever is left of its process group is killed."""
    log = config.parent / "serve.log"
    with open(log, "wb") as err:
        process = subprocess.Popen(
            [str(CLI), "--config", str(config), "serve", *args],
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> float:
    """Seconds until ``url``/health answers 200 (fails when the process ends first)."""
    start = time.monotonic()
    while time.monotonic() - start < 120:
        if process.poll() is not None:
            pytest.fail(f"serve ended ({process.returncode}) before answering:\n{log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return time.monotonic() - start
        time.sleep(0.25)
    pytest.fail(f"serve did not answer at {url}/health within 120 s:\n{log.read_text()}")


def _send(url: str, n_annotations: int) -> set[tuple[int, str, str, str]]:
    """Post ``n_annotations`` annotations of 3 turns (all six dimensions each); the
    judgements they make, computed here from what was sent."""
    expected = set()
    with httpx.Client(base_url=url, headers={SECRET_HEADER: SECRET}, timeout=30) as hooks:
        for n in range(n_annotations):
            lines = dialogue(3, clip=n % 4)
            values = {
                i: {
                    "emotion": EMOTIONS[(i + n) % 5],
                    "intensity": 1 + (i + n) % 5,
                    "valence": 1 + (2 * i + n) % 5,
                    "arousal": 1 + (i + 2 * n) % 5,
                    "dominance": 3,
                    "authenticity": 1 + n % 5,
                }
                for i in range(3)
            }
            payload = annotation_event(TAX, 500 + n, task(1 + n % 4, lines), 1 + n % 3, values)
            answer = hooks.post("/webhooks/label-studio", json=payload)
            assert answer.status_code == 200, answer.text
            expected |= {
                (500 + n, line["turn_id"], dimension, str(value))
                for i, line in enumerate(lines)
                for dimension, value in values[i].items()
            }
    return expected


def _stored(url: str) -> set[tuple[int, str, str, str]]:
    """Every judgement the service serves for project 1 (the read waits for the applier)."""
    with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=60) as reads:
        page = reads.get("/projects/1/judgements", params={"limit": 1000})
    assert page.status_code == 200, page.text
    return {
        (j["annotation_id"], j["turn_id"], j["dimension"], j["value"]) for j in page.json()["data"]
    }


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    """The pids still alive after waiting up to ``timeout`` seconds for them to end."""
    deadline = time.monotonic() + timeout
    while (left := _alive(pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.mark.parametrize(
    "how",
    ["SIGTERM to the process", "SIGINT to the process group"],
    ids=["sigterm", "sigint"],
)
def test_serve_runs_in_the_foreground_applies_webhooks_and_stops_cleanly(
    tmp_path: Path, how: str
) -> None:
    config = write_config(tmp_path, service={"webhook_secret": SECRET, "api_key": KEY})
    port = free_port()  # --port overrides service.url's port
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with _serve(config, "--port", str(port)) as process:
        ready = _wait_healthy(url, process, log)
        below = _descendants(process.pid)
        # uvicorn is the CLI's own process (exec), so a process manager signals the service
        assert Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")[1:5] == [
            b"-m",
            b"uvicorn",
            b"--factory",
            b"api.app:app_from_env",
        ]
        appliers = [p for p, cmd in below.items() if "-m api.applier" in cmd]
        assert len(appliers) == 1, below
        assert f"--parent {process.pid}" in below[appliers[0]]

        expected = _send(url, 8)
        assert len(expected) == 8 * 3 * 6
        assert _stored(url) == expected

        started = time.monotonic()
        signum = signal.SIGTERM if how.startswith("SIGTERM") else signal.SIGINT
        if signum == signal.SIGTERM:
            os.kill(process.pid, signum)  # what docker stop and systemd send
        else:
            os.killpg(process.pid, signum)  # Ctrl-C in a terminal
        returncode = process.wait(30)
        stopped = time.monotonic() - started
        left = _wait_gone([process.pid, *below], 10)
    text = log.read_text()
    print(
        f"SERVE {how}: healthy after {ready:.1f} s, {len(expected)} judgements applied, "
        f"exit {returncode} {stopped:.1f} s after the signal, processes left {left}"
    )
    # after its shutdown uvicorn ends by the signal it caught, as the convention is
    assert returncode in (0, -signum), text
    assert stopped < 20, f"took {stopped:.1f} s to stop"
    assert left == [], f"still running after the service ended: {left}"
    assert "Application shutdown complete" in text
    assert f"Finished server process [{process.pid}]" in text
    # logs go to the process's standard error (here a file), nothing under the data folder
    assert "Uvicorn running on" in text
    assert not (tmp_path / "data" / "logs" / "service.log").exists()


def test_serve_refuses_several_workers_on_sqlite(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    port = free_port()
    done = subprocess.run(
        # --config after the command works too
        [str(CLI), "serve", "--config", str(config), "--port", str(port), "--workers", "3"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    message = " ".join(done.stderr.split())
    assert done.returncode == 1, done.stderr
    assert "--workers 3 needs a PostgreSQL store" in message
    # the console wraps long lines, within the path too
    assert f"sqlite:///{tmp_path / 'data' / 'annotate.db'}" in "".join(message.split())
    assert "service.database_url" in message
    assert "Traceback" not in done.stderr
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_serve_with_workers_on_postgres_and_sigterm_leaves_no_process(
    tmp_path: Path, database_url: str
) -> None:
    config = write_config(
        tmp_path,
        service={"webhook_secret": SECRET, "api_key": KEY, "database_url": database_url},
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with _serve(config, "--port", str(port), "--workers", "2") as process:
        ready = _wait_healthy(url, process, log)
        deadline = time.monotonic() + 60  # the second worker may still be starting
        while time.monotonic() < deadline:
            below = _descendants(process.pid)
            workers = [
                p
                for p, (ppid, cmd) in _processes().items()
                if ppid == process.pid and "--multiprocessing-fork" in cmd
            ]
            appliers = [p for p, cmd in below.items() if "-m api.applier" in cmd]
            if len(appliers) == 2:
                break
            time.sleep(0.25)
        # two uvicorn workers, each with an applier of its own (one leads: an advisory lock)
        assert len(workers) == 2, below
        assert len(appliers) == 2, below
        assert {int(below[a].rsplit(" ", 1)[1]) for a in appliers} == set(workers)

        expected = _send(url, 40)
        assert _stored(url) == expected

        started = time.monotonic()
        os.kill(process.pid, signal.SIGTERM)
        returncode = process.wait(60)
        stopped = time.monotonic() - started
        left = _wait_gone([process.pid, *below], 10)
    print(
        f"SERVE --workers 2 on PostgreSQL: healthy after {ready:.1f} s, {len(below)} processes "
        f"below uvicorn, {len(expected)} judgements applied, exit {returncode} {stopped:.1f} s "
        f"after SIGTERM, processes left {left}"
    )
    text = log.read_text()
    assert returncode in (0, -signal.SIGTERM), text
    assert text.count("Application shutdown complete") == 2, text
    assert stopped < 30
    assert left == [], f"still running after the service ended: {left}"
