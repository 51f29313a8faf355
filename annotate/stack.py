"""The local stack: a Label Studio server and the agreement service on loopback.

Both run as background processes whose pid files and logs live in the data folder;
``up`` starts whichever is not answering yet, ``down`` stops what ``up`` started.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from annotate.config import Settings
from schemas.errors import AnnotateError

LABEL_STUDIO = "label-studio"
SERVICE = "service"


class StackError(AnnotateError, RuntimeError):
    """A local process could not be started; the message says why and where its log is."""


@dataclass(frozen=True, slots=True)
class ProcessStatus:
    """Whether one part of the stack answers, and the pid we started it with (if any)."""

    name: str
    url: str
    healthy: bool
    pid: int | None


def healthy(url: str, timeout: float = 2.0, *, degraded: bool = False) -> bool:
    """True when ``url``/health answers 200; ``degraded``: also when it answers 503 with
    ``"status": "degraded"`` (the service runs, and its /health says what is wrong; a
    service still starting says ``"starting"``)."""
    try:
        answer = httpx.get(url.rstrip("/") + "/health", timeout=timeout)
    except httpx.HTTPError:
        return False
    if answer.status_code == 200:
        return True
    try:
        return degraded and answer.status_code == 503 and answer.json()["status"] == "degraded"
    except (ValueError, KeyError, TypeError):
        return False


def _port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def _is_local(url: str) -> bool:
    return (urlsplit(url).hostname or "") in {"127.0.0.1", "localhost", "::1"}


def _run_dir(settings: Settings) -> Path:
    path = settings.data_path / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _pid(settings: Settings, name: str) -> int | None:
    file = _run_dir(settings) / f"{name}.pid"
    try:
        pid = int(file.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def label_studio_command(settings: Settings) -> str:
    """The ``label-studio`` executable: the configured one, else the one on PATH."""
    configured = settings.path(settings.label_studio.command)
    if configured.exists():
        return str(configured)
    found = shutil.which("label-studio")
    if found:
        return found
    raise StackError(
        f"Label Studio is not installed: {configured} does not exist and 'label-studio' is "
        "not on PATH; run 'make setup' (installs it into .venv-ls) or set "
        "label_studio.command in config.yaml"
    )


def _spawn(settings: Settings, name: str, argv: list[str], env: dict[str, str]) -> int:
    log = settings.data_path / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env},
            start_new_session=True,
        )
    (_run_dir(settings) / f"{name}.pid").write_text(str(process.pid))
    return process.pid


def _wait(settings: Settings, name: str, url: str, pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if healthy(url, degraded=name == SERVICE):
            return
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            finished = 0
        if finished:
            break
        time.sleep(0.5)
    log = settings.data_path / "logs" / f"{name}.log"
    tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
    raise StackError(
        f"{name} did not answer at {url}/health within {timeout:.0f} s; see {log}:\n"
        + "\n".join(tail)
    )


def start_label_studio(settings: Settings, timeout: float = 180.0) -> bool:
    """Start the local Label Studio unless it already answers; True if it was started."""
    ls = settings.label_studio
    if healthy(ls.url):
        return False
    if not _is_local(ls.url):
        raise StackError(f"Label Studio at {ls.url} does not answer, and it is not local")
    if not ls.token or not ls.password:
        raise StackError("the local Label Studio needs label_studio.token and .password")
    settings.media_path.mkdir(parents=True, exist_ok=True)
    data = settings.data_path / "label-studio"
    data.mkdir(parents=True, exist_ok=True)
    env = {
        "LABEL_STUDIO_BASE_DATA_DIR": str(data),
        "SSRF_PROTECTION_ENABLED": "false",
        "LOCAL_FILES_SERVING_ENABLED": "true",
        "LOCAL_FILES_DOCUMENT_ROOT": str(settings.media_path),
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "false",
        "COLLECT_ANALYTICS": "false",
    }
    argv = [
        label_studio_command(settings),
        "start",
        "--no-browser",
        "--internal-host",
        "127.0.0.1",
        "--port",
        str(_port(ls.url)),
        "--username",
        ls.username,
        "--password",
        ls.password,
        "--user-token",
        ls.token,
        "--enable-legacy-api-token",
    ]
    pid = _spawn(settings, LABEL_STUDIO, argv, env)
    _wait(settings, LABEL_STUDIO, ls.url, pid, timeout)
    return True


def start_service(
    settings: Settings, config: Path | None, timeout: float = 60.0, *, workers: int = 1
) -> bool:
    """Start the agreement service (uvicorn) unless it already answers; True if started.

    ``workers`` > 1 runs that many uvicorn worker processes (for a PostgreSQL store; every
    piece of shared state lives in the database).
    """
    url = settings.service.url
    if healthy(url, degraded=True):
        return False
    if not _is_local(url):
        raise StackError(f"the service at {url} does not answer, and it is not local")
    env = {"IMPROV_ANNOTATE_DATA_DIR": str(settings.data_path)}
    if config is not None:
        env["IMPROV_ANNOTATE_CONFIG"] = str(config.resolve())
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "api.app:app_from_env",
        "--host",
        "127.0.0.1",
        "--port",
        str(_port(url)),
        "--log-level",
        "warning",
    ]
    if workers > 1:
        argv += ["--workers", str(workers)]
    pid = _spawn(settings, SERVICE, argv, env)
    _wait(settings, SERVICE, url, pid, timeout)
    return True


def stop(settings: Settings, name: str, timeout: float = 20.0) -> bool:
    """Stop a process ``up`` started (its whole process group); True if one was running."""
    pid = _pid(settings, name)
    file = _run_dir(settings) / f"{name}.pid"
    if pid is None:
        file.unlink(missing_ok=True)
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if not _alive(pid):
            break
    file.unlink(missing_ok=True)
    return True


def _alive(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def status(settings: Settings) -> list[ProcessStatus]:
    """Health and pid of Label Studio and the service."""
    return [
        ProcessStatus(
            LABEL_STUDIO,
            settings.label_studio.url,
            healthy(settings.label_studio.url),
            _pid(settings, LABEL_STUDIO),
        ),
        ProcessStatus(
            SERVICE,
            settings.service.url,
            healthy(settings.service.url, degraded=True),
            _pid(settings, SERVICE),
        ),
    ]


def up(settings: Settings, config: Path | None, say: Callable[[str], None] = print) -> None:
    """Start whatever part of the local stack is not answering yet."""
    say(f"Label Studio: {settings.label_studio.url}")
    if start_label_studio(settings):
        say("  started (logs in data/logs/label-studio.log)")
    else:
        say("  already running")
    say(f"agreement service: {settings.service.url}")
    if start_service(settings, config):
        say("  started")
    else:
        say("  already running")
