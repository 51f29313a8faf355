"""Helpers the live tests share: the real command line in a subprocess, waiting for the
service to catch up, and labeling a task through Label Studio's API as an invited
account does."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from annotate.labelstudio import Account
from schemas.codec import encode_annotation
from schemas.taxonomy import Taxonomy, load_taxonomy
from tests.conftest import ROOT

__all__ = ["label", "run_cli", "wait_for"]


def run_cli(
    config: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """``improv-annotate --config CONFIG ARGS...`` in a subprocess, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "annotate.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "250", **(env or {})},
    )


def wait_for(
    predicate: Callable[[], Any], timeout: float = 60.0, what: str = "", last: Any = None
) -> Any:
    """``predicate()``'s first truthy value, polled; an AssertionError naming ``what`` (and
    ``last``, what was seen) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last seen: {last}")


def label(
    url: str,
    who: Account,
    task: Mapping[str, Any],
    emotions: list[str],
    taxonomy: Taxonomy | None = None,
) -> int:
    """Post ``who``'s annotation of ``task`` (one emotion per turn) with their own token;
    returns its id."""
    lines = task["data"]["dialogue"]
    values = {i: {"emotion": e} for i, e in enumerate(emotions)}
    answer = httpx.post(
        f"{url}/api/tasks/{task['id']}/annotations",
        json={"result": encode_annotation(lines, values, taxonomy or load_taxonomy())},
        headers={"Authorization": f"Token {who.token}"},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])
