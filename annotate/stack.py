"""The local stack: a Label Studio server and the agreement service on loopback.

Both run as background processes whose pid files and logs live in the data folder;
``up`` starts whichever is not answering yet, ``down`` stops what ``up`` started.

Everything in the data folder is private to the user who runs the stack: folders 0700,
files 0600 (the processes start with umask 077, and ``up`` tightens what an older version
left readable). Label Studio's admin password and token reach it through its environment,
never its command line (which every local user can read in ``ps``).
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
from typing import NoReturn
from urllib.parse import urlsplit

import httpx

from annotate.config import Settings
from schemas.errors import AnnotateError

LABEL_STUDIO = "label-studio"
SERVICE = "service"
PRIVATE = 0o077  # the umask of the stack's processes: no group or other permissions


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


def private_dir(path: Path) -> Path:
    """``path`` as a folder only its owner can enter (0700), made with its parents if
    missing; an existing folder is tightened."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & PRIVATE:
        path.chmod(0o700)
    return path


def make_private(folder: Path) -> tuple[int, list[str]]:
    """Take group and other permissions off ``folder`` and everything under it (symbolic
    links are not followed); returns how many entries were changed, and the entries that
    could not be (e.g. owned by another user), each with the reason."""
    changed, failed = 0, []
    if not folder.is_dir():
        return changed, failed
    for entry in (folder, *folder.rglob("*")):
        try:
            if entry.is_symlink():
                continue
            mode = entry.stat().st_mode
            if mode & PRIVATE:
                entry.chmod(mode & 0o7700)
                changed += 1
        except OSError as exc:
            failed.append(f"{entry}: {exc.strerror}")
    return changed, failed


def _run_dir(settings: Settings) -> Path:
    private_dir(settings.data_path)
    return private_dir(settings.data_path / "run")


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


def _private_file(path: Path, flags: int) -> int:
    """A file descriptor of ``path`` opened with ``flags``, the file made 0600."""
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def _spawn(settings: Settings, name: str, argv: list[str], env: dict[str, str]) -> int:
    run = _run_dir(settings)
    log = private_dir(settings.data_path / "logs") / f"{name}.log"
    with os.fdopen(_private_file(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND), "ab") as out:
        process = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env},
            start_new_session=True,
            umask=PRIVATE,  # what it creates (stores, logs, uploads) is 0600, folders 0700
        )
    fd = _private_file(run / f"{name}.pid", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(fd, "w") as out:
        out.write(str(process.pid))
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
    _run_dir(settings)
    if settings.media_path.is_relative_to(settings.data_path):
        private_dir(settings.media_path)
    else:  # a media root of its own (perhaps served by a web server too): left as it is
        settings.media_path.mkdir(parents=True, exist_ok=True)
    data = private_dir(settings.data_path / "label-studio")
    env = {
        "LABEL_STUDIO_BASE_DATA_DIR": str(data),
        "SSRF_PROTECTION_ENABLED": "false",
        "LOCAL_FILES_SERVING_ENABLED": "true",
        "LOCAL_FILES_DOCUMENT_ROOT": str(settings.media_path),
        # invite-only: people join with the link 'improv-annotate invite' prints
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "COLLECT_ANALYTICS": "false",
        # the admin account: from the environment (Label Studio reads LABEL_STUDIO_USERNAME,
        # _PASSWORD and _USER_TOKEN), so that no secret is on the command line
        "LABEL_STUDIO_USERNAME": ls.username,
        "LABEL_STUDIO_PASSWORD": ls.password,
        "LABEL_STUDIO_USER_TOKEN": ls.token,
    }
    argv = [
        label_studio_command(settings),
        "start",
        "--no-browser",
        "--internal-host",
        "127.0.0.1",
        "--port",
        str(_port(ls.url)),
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
    argv = service_argv("127.0.0.1", _port(url), workers=workers)
    pid = _spawn(settings, SERVICE, argv, service_env(settings, config))
    _wait(settings, SERVICE, url, pid, timeout)
    return True


def service_env(settings: Settings, config: Path | None) -> dict[str, str]:
    """Environment that makes the service (``api.app:app_from_env``) and its applier
    process read the same settings as this process: the config file and the data folder."""
    env = {"IMPROV_ANNOTATE_DATA_DIR": str(settings.data_path)}
    if config is not None:
        env["IMPROV_ANNOTATE_CONFIG"] = str(config.resolve())
    return env


GRACEFUL_SECONDS = 15  # on SIGTERM, requests in progress get this long before they are cut


def service_argv(
    host: str,
    port: int,
    *,
    workers: int = 1,
    log_level: str = "warning",
    access_log: bool = False,
) -> list[str]:
    """The command line of the service: uvicorn with the factory ``api.app:app_from_env``.

    Parameters
    ----------
    host, port : str, int
        Where it listens.
    workers : int
        Uvicorn worker processes (more than one only on a PostgreSQL store, see
        :func:`serve`).
    log_level : str
        Uvicorn's log level (critical, error, warning, info, debug, trace).
    access_log : bool
        Log one line per request (at 500 webhooks a second, 500 lines a second).
    """
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "api.app:app_from_env",
        "--host",
        host,
        "--port",
        str(port),
        "--log-level",
        log_level,
        "--timeout-graceful-shutdown",
        str(GRACEFUL_SECONDS),
    ]
    if not access_log:
        argv.append("--no-access-log")
    if workers > 1:
        argv += ["--workers", str(workers)]
    return argv


def serve(
    settings: Settings,
    config: Path | None,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int = 1,
    log_level: str = "info",
    access_log: bool = False,
) -> NoReturn:
    """Become the service, in the foreground (for process managers and containers).

    This process is replaced by uvicorn (same pid, logs on standard error), running the
    factory the local stack runs; SIGTERM or SIGINT stops it cleanly: requests in progress
    finish (at most ``GRACEFUL_SECONDS``), the applier process ends with it.

    ``host`` and ``port`` default to ``service.url``'s. ``workers`` > 1 needs a PostgreSQL
    store: on SQLite one process writes at a time (more workers add lock waits, not
    throughput), and workers starting together on a new store collide in its migration
    ("database is locked").

    Raises
    ------
    StackError
        ``workers`` > 1 on a SQLite store, or ``workers`` < 1.
    """
    if workers < 1:
        raise StackError(f"--workers: expected at least 1, got {workers}")
    backend = settings.database_url.split(":", 1)[0].split("+", 1)[0]
    if workers > 1 and backend not in ("postgresql", "postgres"):
        store = settings.database_url if backend == "sqlite" else f"a {backend} database"
        raise StackError(
            f"--workers {workers} needs a PostgreSQL store, and the store is {store}: "
            "SQLite lets one process write at a time, so more workers add lock waits, not "
            "throughput, and workers starting together on a new store collide in its "
            "migration; set service.database_url to a postgresql:// URL, or serve with one "
            "worker"
        )
    parts = urlsplit(settings.service.url)
    argv = service_argv(
        host or parts.hostname or "127.0.0.1",
        port or _port(settings.service.url),
        workers=workers,
        log_level=log_level,
        access_log=access_log,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, {**os.environ, **service_env(settings, config)})


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
    """Start whatever part of the local stack is not answering yet (the data folder made
    private first, see :func:`make_private`)."""
    _, failed = make_private(private_dir(settings.data_path))
    for problem in failed:
        say(f"  cannot make private (readable by other users): {problem}")
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
