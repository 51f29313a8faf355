"""Shared fixtures: a real Label Studio server, the real service, SQLite and PostgreSQL."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

from annotate import stack
from annotate.config import Settings, load_settings, with_local_secrets

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "sessions" / "cafe-breakup"
PG_ADMIN_URL = os.environ.get("IMPROV_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def on_ci() -> bool:
    """Whether the tests run under CI (``CI`` set, and not to false, 0 or no)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(what: str, *, module: bool = False) -> NoReturn:
    """Skip a test whose real part is missing; under CI fail instead, with the same message.

    ``what`` names what is missing and how to get it, e.g. ``"ffmpeg is not on PATH
    (scripts/system-deps.sh test installs it)"``. ``module``: called at a test module's
    top level, for all its tests (under CI the module then fails to collect).
    """
    if on_ci():
        pytest.fail(f"{what}; under CI=true every test must run", pytrace=False)
    pytest.skip(what, allow_module_level=module)


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(folder: Path, **overrides: object) -> Path:
    """A config.yaml in ``folder`` whose data lives there, on free loopback ports."""
    config = {
        "label_studio": {
            "url": f"http://127.0.0.1:{free_port()}",
            "command": str(ROOT / ".venv-ls" / "bin" / "label-studio"),
            "project_title": "Integration test",
            "maximum_annotations": 2,
        },
        # tests that post synthetic webhooks need them applied as they come; the tests of
        # verified mode (tests/test_verified.py) set webhook_mode: verified
        "service": {"url": f"http://127.0.0.1:{free_port()}", "webhook_mode": "trusted"},
        "data_dir": str(folder / "data"),
        "examples_dir": str(ROOT / "examples" / "sessions"),
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            config.setdefault(key, {}).update(value)  # type: ignore[union-attr]
        else:
            config[key] = value
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def stack_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The config file of the test session's stack."""
    return write_config(tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="session")
def stack_settings(stack_config: Path) -> Settings:
    """Settings (with generated secrets) of the test session's stack."""
    return with_local_secrets(load_settings(stack_config))


@pytest.fixture(scope="session")
def label_studio(stack_settings: Settings) -> Iterator[Settings]:
    """A real Label Studio server on a free loopback port, one for the whole run."""
    stack.start_label_studio(stack_settings, timeout=240)
    yield stack_settings
    stack.stop(stack_settings, stack.LABEL_STUDIO)


@pytest.fixture(scope="session")
def service(stack_settings: Settings, stack_config: Path) -> Iterator[Settings]:
    """The real agreement service (uvicorn, SQLite file) on a free loopback port."""
    stack.start_service(stack_settings, stack_config)
    yield stack_settings
    stack.stop(stack_settings, stack.SERVICE)


def _postgres_reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except Exception:
        return False


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store: a SQLite file, or a new PostgreSQL database (dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    if not _postgres_reachable():
        missing(
            f"PostgreSQL is not reachable at {PG_ADMIN_URL} (IMPROV_TEST_PG); 'make test' "
            "runs the tests with scripts/with-postgres.sh, which provides one"
        )
    import psycopg

    name = f"improv_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def engine(database_url: str) -> Iterator[Any]:
    """An empty, migrated store on ``database_url`` (SQLite and PostgreSQL); a test module
    that needs a store filled its own way defines its own ``engine``."""
    from api.db import init_db, make_engine

    made = make_engine(database_url)
    init_db(made)
    yield made
    made.dispose()
