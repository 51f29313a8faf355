"""Faults around Label Studio: the service down while annotators save, Label Studio down in
the middle of an import. Real Label Studio servers, the real service, the real CLI."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from label_studio_sdk import LabelStudio

from annotate import stack
from annotate.config import Settings, load_settings, with_local_secrets
from annotate.labelstudio import (
    connect,
    ensure_account,
    ensure_project,
    ensure_webhook,
    invite_link,
    iter_tasks,
    session_pusher,
)
from annotate.simulate import simulate_values
from importers import import_sessions, load_session
from schemas.codec import encode_annotation
from schemas.taxonomy import load_taxonomy
from tests.conftest import EXAMPLE, ROOT, write_config
from tests.faultkit import (
    SECRET,
    label_studio_rows,
    make_service,
    settled_rows,
    store_rows,
    sum_differences,
    wait_for,
)

pytestmark = pytest.mark.integration
TAX = load_taxonomy()


def _titled(settings: Settings, title: str) -> Settings:
    return settings.model_copy(
        update={"label_studio": settings.label_studio.model_copy(update={"project_title": title})}
    )


def _result(task: Any, seed: list[int], intended: dict[int, str]) -> list[dict[str, Any]]:
    values, shifts = simulate_values(
        task.data["dialogue"], intended, TAX, np.random.default_rng(seed)
    )
    return encode_annotation(task.data["dialogue"], values, TAX, shifts)


# -- fault 1: the service is down while annotators keep saving ----------------------------------


def test_service_down_while_annotators_save_then_pull_makes_it_equal(
    label_studio: Settings, tmp_path: Path
) -> None:
    settings = _titled(label_studio, "Fault: service down")
    client = connect(settings)
    project = ensure_project(client, settings, TAX)
    report = import_sessions(
        EXAMPLE,
        media_root=settings.media_path,
        taxonomy=TAX,
        max_seconds=settings.clips.max_seconds,
        push=session_pusher(client, project.id, settings.media_path, drop_intended=True),
    )
    assert not report.failed
    database_url = f"sqlite:///{tmp_path / 'store.db'}"
    served = make_service(
        tmp_path,
        database_url,
        label_studio=settings,
        project_title=settings.label_studio.project_title,
    )
    served.start()
    try:
        ensure_webhook(client, project.id, served.settings.webhook_url, SECRET)
        intended = {i.turn: i.emotion for i in load_session(EXAMPLE).intended}
        tasks = list(iter_tasks(client, project.id))
        people = [
            LabelStudio(
                base_url=settings.label_studio.url,
                api_key=ensure_account(
                    settings.label_studio.url,
                    f"fault-{k}@example.org",
                    "a-long-test-password-1",
                    invite=invite_link(client, settings.label_studio.url),
                ).token,
            )
            for k in (1, 2)
        ]
        # annotator 1 labels every clip while the service is up: each save is a webhook
        first = [
            people[0].annotations.create(id=t.id, result=_result(t, [1, t.id], intended))
            for t in tasks
        ]
        assert settled_rows(served, project.id) == label_studio_rows(client, project.id, TAX)
        with served.reads() as reads:  # the pull the service does periodically, once
            assert reads.post(f"/projects/{project.id}/reconcile").status_code == 200

        served.kill()
        # annotators keep working: Label Studio saves everything, its webhooks fail
        while_down = 0
        for t in tasks:
            made = people[1].annotations.create(id=t.id, result=_result(t, [2, t.id], intended))
            assert made.id is not None
            while_down += 1
        people[0].annotations.update(
            id=first[0].id, result=_result(tasks[0], [9, tasks[0].id], intended)
        )
        client.annotations.delete(id=first[-1].id)
        while_down += 2
        in_label_studio = label_studio_rows(client, project.id, TAX)

        served.start()
        before = settled_rows(served, project.id)
        assert before != in_label_studio  # the gap the outage left
        with served.reads() as reads:
            pulled = reads.post(f"/projects/{project.id}/reconcile")  # incremental
            assert pulled.status_code == 200, pulled.text
        after = store_rows(database_url, project.id)
        assert after == in_label_studio
        assert all(diff < 1e-6 for diff in sum_differences(database_url, project.id).values())
        print(
            f"\nRELIABILITY fault1: {len(first)} saves with the service up, {while_down} "
            f"changes while it was down (creates, 1 update, 1 delete); Label Studio "
            f"{len(in_label_studio)} judgements, store {len(before)} after the restart, "
            f"{len(after)} after one incremental pull ({pulled.json()}); equal"
        )
    finally:
        served.stop()


# -- fault 2: Label Studio goes down in the middle of an import ---------------------------------


@pytest.fixture
def own_label_studio(tmp_path: Path) -> Iterator[tuple[Settings, Path]]:
    """A Label Studio of this test's own, which the test may kill (not the shared one)."""
    (tmp_path / "own").mkdir()
    config = write_config(tmp_path / "own", label_studio={"project_title": "Fault: import"})
    settings = with_local_secrets(load_settings(config))
    stack.start_label_studio(settings, timeout=240)
    try:
        yield settings, config
    finally:
        stack.stop(settings, stack.LABEL_STUDIO)


def _sessions(folder: Path, n: int) -> Path:
    """``n`` copies of the example session under distinct ids."""
    meta = yaml.safe_load((EXAMPLE / "session.yaml").read_text(encoding="utf-8"))
    for k in range(n):
        target = folder / f"take-{k:02d}"
        shutil.copytree(EXAMPLE, target)
        (target / "session.yaml").write_text(
            yaml.safe_dump({**meta, "id": f"take-{k:02d}"}), encoding="utf-8"
        )
    return folder


def _cli(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "annotate.cli", "--config", str(config), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def _clip_counts(settings: Settings) -> Counter[str]:
    client = connect(settings)
    project = next(iter(client.projects.list(title=settings.label_studio.project_title)))
    return Counter(str(t.data.get("clip_id")) for t in iter_tasks(client, project.id))


def test_label_studio_down_mid_import_fails_clearly_and_a_rerun_duplicates_nothing(
    own_label_studio: tuple[Settings, Path], tmp_path: Path
) -> None:
    settings, config = own_label_studio
    sessions = _sessions(tmp_path / "sessions", 12)
    expected = import_sessions(
        sessions,
        media_root=tmp_path / "dry-media",
        taxonomy=TAX,
        max_seconds=settings.clips.max_seconds,
        push=None,
    )
    n_clips = sum(o.clips for o in expected.outcomes)
    url = settings.label_studio.url
    token = {"Authorization": f"Token {settings.label_studio.token}"}

    def tasks_in_label_studio() -> int:
        try:
            answer = httpx.get(f"{url}/api/projects", headers=token)
            projects = answer.json()["results"] if answer.status_code == 200 else []
        except httpx.HTTPError:
            return 0
        return sum(int(p.get("task_number") or 0) for p in projects)

    first = _cli(config, "import", str(sessions))
    try:
        assert wait_for(lambda: tasks_in_label_studio() > 0, timeout=240, every=0.1)
        seen = tasks_in_label_studio()
        pid = int((settings.data_path / "run" / f"{stack.LABEL_STUDIO}.pid").read_text())
        os.killpg(pid, signal.SIGKILL)  # Label Studio dies, mid-import
        killed_at = time.monotonic()
        out, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert seen < n_clips, "the import ended before Label Studio was killed"
    assert first.returncode == 1, out + err
    message = " ".join(err.split())
    assert message.startswith(f"error: Label Studio at {url} failed while the tasks of session"), (
        err
    )
    assert "run the import again" in message
    print(
        f"\nRELIABILITY fault2 message ({time.monotonic() - killed_at:.1f} s after the kill): "
        f"{message}"
    )

    (settings.data_path / "run" / f"{stack.LABEL_STUDIO}.pid").unlink(missing_ok=True)
    stack.start_label_studio(settings, timeout=240)
    again = _cli(config, "import", str(sessions))
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, out + err
    counts = _clip_counts(settings)
    assert sum(counts.values()) == n_clips
    assert max(counts.values()) == 1
    print(
        f"RELIABILITY fault2: 12 sessions, {n_clips} clips; {seen} tasks in Label Studio when "
        f"it was killed; after the re-run {sum(counts.values())} tasks, "
        f"{len(counts)} distinct clips, duplicates 0"
    )
