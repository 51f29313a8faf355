"""The README's test command on a fresh machine: ``scripts/with-postgres.sh`` provides a
PostgreSQL server (a private cluster when none answers, removed afterwards whatever
happens), and under ``CI=true`` a test whose real part is missing fails instead of skipping.

Everything runs for real: the script, initdb and the server, pytest in a subprocess.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import ROOT, free_port

SCRIPT = ROOT / "scripts" / "with-postgres.sh"
# Run inside the script: what the tests would see (IMPROV_TEST_PG and the server behind it),
# written to a file; then it ends with the status asked for, or sleeps to be interrupted.
PROBE = """
import json, os, sys, time, uuid
import psycopg
url = os.environ["IMPROV_TEST_PG"]
with psycopg.connect(url, autocommit=True) as conn:
    data = conn.execute("SHOW data_directory").fetchone()[0]
    port = conn.execute("SHOW port").fetchone()[0]
    name = f"improv_test_{uuid.uuid4().hex[:12]}"  # what the database_url fixture does
    conn.execute(f'CREATE DATABASE "{name}"')
    conn.execute(f'DROP DATABASE "{name}"')
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
info = {"url": url, "data": data, "port": int(port), "data_existed": os.path.isdir(data)}
with open(sys.argv[1], "w") as out:
    json.dump(info, out)
if sys.argv[2] == "sleep":
    time.sleep(120)
sys.exit(int(sys.argv[2]))
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_PRIVATE_PG", "CI")}
    return {**env, **extra}


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _processes_on(data: str, *, servers: bool = True) -> list[int]:
    """Processes whose arguments name the data folder ``data``: PostgreSQL servers, or
    (``servers=False``) any (the script's watchdog too)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if data.encode() in argv and (not servers or argv[0].endswith(b"/postgres")):
                found.append(int(entry.name))
    return found


def _wait_no_process_on(data: str, timeout: float = 10) -> list[int]:
    """Processes still naming ``data`` after up to ``timeout`` seconds (the watchdog
    looks once a second whether the script is gone)."""
    deadline = time.monotonic() + timeout
    while (left := _processes_on(data, servers=False)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _wait_removed(info: dict[str, Any], timeout: float) -> float:
    """Seconds until the cluster's folder is gone and no server runs on it."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if not Path(info["data"]).exists() and not _processes_on(info["data"]):
            return time.monotonic() - start
        time.sleep(0.1)
    return float("inf")


def _check_private(info: dict[str, Any]) -> None:
    assert info["port"] == int(info["url"].rsplit(":", 1)[1].split("/")[0])
    assert info["port"] != 5432  # not the machine's shared server
    assert info["url"].endswith("/test")  # the database the tests connect to exists
    assert info["data_existed"]
    assert Path(info["data"]).name == "data" and Path(info["data"]).parent.name.startswith(
        "improv-pg."
    )


@pytest.mark.parametrize("status", [0, 3])
def test_a_private_cluster_serves_the_command_and_is_removed_whatever_it_returns(
    tmp_path: Path, status: int
) -> None:
    report = tmp_path / "probe.json"
    done = subprocess.run(
        ["bash", str(SCRIPT), sys.executable, "-c", PROBE, str(report), str(status)],
        env=_env(FORCE_PRIVATE_PG="1"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == status, done.stderr  # the command's status is passed on
    info = json.loads(report.read_text())
    _check_private(info)
    assert "a private cluster" in done.stdout
    # removed before the script returned
    assert not Path(info["data"]).parent.exists()
    assert _processes_on(info["data"]) == []
    assert not _answers(info["url"])
    assert _wait_no_process_on(info["data"]) == []


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_the_private_cluster_is_removed_when_the_script_is_stopped(
    tmp_path: Path, how: str
) -> None:
    report = tmp_path / "probe.json"
    script = subprocess.Popen(
        ["bash", str(SCRIPT), sys.executable, "-c", PROBE, str(report), "sleep"],
        env=_env(FORCE_PRIVATE_PG="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not report.exists() or not report.read_text():
            assert script.poll() is None, script.stderr.read() if script.stderr else ""
            assert time.monotonic() < deadline, "the probe did not run within 120 s"
            time.sleep(0.1)
        time.sleep(0.2)  # the probe's file is complete
        info = json.loads(report.read_text())
        _check_private(info)
        assert _processes_on(info["data"]), "the private server should be running"
        script.send_signal(getattr(signal, how))  # the script alone, not its command
        script.wait(60)
        removed = _wait_removed(info, 20)
    finally:
        # the script's process group: the probe may outlive a SIGKILLed script
        with contextlib.suppress(ProcessLookupError):
            os.killpg(script.pid, signal.SIGKILL)
        script.wait(30)
    print(f"TEST SETUP: private cluster removed {removed:.1f} s after {how} to the script")
    assert removed < 20, f"the cluster in {info['data']} was left behind after {how}"
    assert not _answers(info["url"])
    assert _wait_no_process_on(info["data"]) == []


def test_a_server_that_answers_is_used_as_it_is(tmp_path: Path) -> None:
    # the outer script makes a private cluster; the inner one finds it answering and uses it
    report = tmp_path / "probe.json"
    inner = ["bash", str(SCRIPT), sys.executable, "-c", PROBE, str(report), "0"]
    show = 'echo "outer=$IMPROV_TEST_PG"; unset FORCE_PRIVATE_PG; exec "$@"'
    outer = subprocess.run(
        ["bash", str(SCRIPT), "bash", "-c", show, "-", *inner],
        env=_env(FORCE_PRIVATE_PG="1"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert outer.returncode == 0, outer.stderr
    info = json.loads(report.read_text())
    lines = outer.stdout.splitlines()
    assert f"outer={info['url']}" in lines
    assert f"PostgreSQL for the tests: {info['url']}" in lines  # the inner script's choice
    assert sum("a private cluster" in line for line in lines) == 1


@pytest.fixture
def dead_postgres() -> str:
    """A PostgreSQL URL where nothing answers."""
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    assert not _answers(url)
    return url


def _pytest(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


POSTGRES_TEST = "tests/test_store.py::test_redelivered_event_changes_nothing[postgres]"


def test_a_postgres_test_that_cannot_run_skips_and_under_ci_fails(dead_postgres: str) -> None:
    skipped = _pytest(POSTGRES_TEST, IMPROV_TEST_PG=dead_postgres)
    assert skipped.returncode == 0, skipped.stdout
    assert "1 skipped" in skipped.stdout
    assert f"PostgreSQL is not reachable at {dead_postgres}" in skipped.stdout

    failed = _pytest(POSTGRES_TEST, IMPROV_TEST_PG=dead_postgres, CI="true")
    assert failed.returncode == 1, failed.stdout
    assert "1 error" in failed.stdout  # the database_url fixture fails the test's set-up
    assert "skipped" not in failed.stdout
    assert f"PostgreSQL is not reachable at {dead_postgres}" in failed.stdout
    assert "under CI=true every test must run" in failed.stdout


def test_a_video_test_without_ffmpeg_skips_and_under_ci_fails(tmp_path: Path) -> None:
    # PATH without ffmpeg (the interpreter is called by its full path)
    empty = tmp_path / "bin"
    empty.mkdir()
    done = _pytest("tests/test_video.py", "-x", PATH=str(empty), CI="true")
    assert done.returncode != 0, done.stdout  # the module fails to collect
    assert "ffmpeg is not on PATH" in done.stdout
    assert "under CI=true every test must run" in done.stdout
    skipped = _pytest("tests/test_video.py", "-x", PATH=str(empty))
    # 5: nothing collected, this module being all there was to run; no failure
    assert skipped.returncode == 5, skipped.stdout
    assert "failed" not in skipped.stdout and "skipped" in skipped.stdout
