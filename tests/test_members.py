"""Who can join and what local users can read, against a real local stack (Label Studio
and the service started as ``improv-annotate up`` starts them): sign-up only with the
invite link, no secret on any process's command line, a data folder private to its user,
and imports of one project that converge to one task per clip when they run at once."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from annotate import stack
from annotate.config import Settings, load_settings, with_local_secrets
from annotate.labelstudio import (
    LabelStudioError,
    connect,
    ensure_account,
    find_project,
    iter_tasks,
    list_clip_tasks,
)
from importers import import_sessions
from schemas.taxonomy import load_taxonomy
from tests.conftest import EXAMPLE, ROOT, write_config
from tests.livekit import run_cli as _cli
from tests.payloads import annotation_event, dialogue, task

pytestmark = pytest.mark.integration
TAX = load_taxonomy()


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Path]]:
    """Label Studio and the service of this module, started by ``stack.up``; the data
    folder holds a log left world-readable (0644, in a 0755 folder) by an older version."""
    folder = tmp_path_factory.mktemp("members")
    config = write_config(folder, label_studio={"project_title": "Members"})
    settings = with_local_secrets(load_settings(config))
    old = settings.data_path / "logs"
    old.mkdir(parents=True)
    settings.data_path.chmod(0o755)
    old.chmod(0o755)
    (old / "old.log").write_text("from an older version\n")
    (old / "old.log").chmod(0o644)
    stack.up(settings, config, say=lambda _: None)
    try:
        yield settings, config
    finally:
        stack.stop(settings, stack.SERVICE)
        stack.stop(settings, stack.LABEL_STUDIO)


def _users(settings: Settings) -> set[str]:
    """E-mails of every Label Studio user, read with the admin's token."""
    answer = httpx.get(
        f"{settings.label_studio.url}/api/users",
        headers={"Authorization": f"Token {settings.label_studio.token}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return {user["email"] for user in answer.json()}


def _sign_up(base_url: str, email: str, query: str = "") -> int:
    """POST the sign-up form as a stranger would; the status code."""
    with httpx.Client(base_url=base_url, timeout=30, follow_redirects=False) as web:
        page = web.get("/user/signup/")
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert match, page.text[:500]
        form = {
            "csrfmiddlewaretoken": match.group(1),
            "email": email,
            "password": "a-long-password-77",
        }
        path = "/user/signup/" + (f"?{query}" if query else "")
        return web.post(path, data=form, headers={"Referer": base_url + path}).status_code


# -- sign-up is invite-only -------------------------------------------------------------------


def test_sign_up_needs_the_invite_link_that_the_cli_prints(
    local_stack: tuple[Settings, Path],
) -> None:
    settings, config = local_stack
    url = settings.label_studio.url
    before = _users(settings)
    assert settings.label_studio.username in before
    # a stranger: no token, a made-up one
    assert _sign_up(url, "stranger@example.org") == 403
    assert _sign_up(url, "stranger2@example.org", "token=0123456789abcdef") == 403
    assert _users(settings) == before
    with pytest.raises(LabelStudioError, match="invite"):
        ensure_account(url, "stranger3@example.org", "a-long-password-77")
    assert _users(settings) == before

    printed = _cli(config, "invite")
    assert printed.returncode == 0, printed.stderr
    link = printed.stdout.strip()
    assert re.fullmatch(re.escape(url) + r"/user/signup/\?token=[0-9A-Za-z]+", link), link
    joined = ensure_account(url, "invited@example.org", "a-long-password-77", invite=link)
    assert _users(settings) == before | {"invited@example.org"}
    # the new member logs in (no link needed) and has an account of their own
    again = ensure_account(url, "invited@example.org", "a-long-password-77")
    assert again.id == joined.id and again.token == joined.token
    me = httpx.get(
        f"{url}/api/current-user/whoami", headers={"Authorization": f"Token {joined.token}"}
    )
    assert me.status_code == 200 and me.json()["email"] == "invited@example.org"

    # --reset: the old link stops working, the new one works
    renewed = _cli(config, "invite", "--reset")
    assert renewed.returncode == 0, renewed.stderr
    new_link = renewed.stdout.strip()
    assert new_link != link
    assert _sign_up(url, "late@example.org", link.split("?", 1)[1]) == 403
    assert _sign_up(url, "late@example.org", new_link.split("?", 1)[1]) == 302
    assert _users(settings) == before | {"invited@example.org", "late@example.org"}


# -- secrets and files ------------------------------------------------------------------------


def _group(pid: int) -> list[int]:
    """Every live process in the process group ``pid`` leads."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pid:  # fields after the name: state, ppid, pgrp
            found.append(int(entry.name))
    return found


def test_no_secret_on_the_command_line_of_any_stack_process(
    local_stack: tuple[Settings, Path],
) -> None:
    settings, _ = local_stack
    secrets = {
        "Label Studio password": settings.label_studio.password,
        "Label Studio token": settings.label_studio.token,
        "webhook secret": settings.service.webhook_secret,
        "API key": settings.service.api_key,
    }
    assert all(secrets.values())
    seen = 0
    for name in (stack.LABEL_STUDIO, stack.SERVICE):
        leader = int((settings.data_path / "run" / f"{name}.pid").read_text())
        for pid in _group(leader):
            try:
                argv = (Path("/proc") / str(pid) / "cmdline").read_bytes().decode()
            except OSError:
                continue  # ended meanwhile
            seen += 1
            shown = [what for what, value in secrets.items() if value and value in argv]
            assert shown == [], (name, pid, shown)
    assert seen >= 2  # at least Label Studio's server and uvicorn


# -- imports that run at once -----------------------------------------------------------------


def _sessions(folder: Path, prefix: str, n: int) -> Path:
    """``n`` copies of the example session with ids ``<prefix>-00``, ``<prefix>-01``..."""
    meta = yaml.safe_load((EXAMPLE / "session.yaml").read_text(encoding="utf-8"))
    for k in range(n):
        target = folder / f"{prefix}-{k:02d}"
        shutil.copytree(EXAMPLE, target)
        meta["id"] = target.name
        (target / "session.yaml").write_text(yaml.safe_dump(meta), encoding="utf-8")
    return folder


def _clip_keys(folder: Path, settings: Settings) -> list[str]:
    """The clip keys an import of ``folder`` makes, from the importer's own task builder
    (no Label Studio)."""
    keys: list[str] = []

    def collect(session: Any, tasks: list[dict[str, Any]]) -> tuple[int, int, int]:
        keys.extend(t["data"]["clip_key"] for t in tasks)
        return 0, 0, 0

    import_sessions(
        folder,
        media_root=folder.parent / "scratch-media",
        taxonomy=TAX,
        push=collect,
        max_seconds=settings.clips.max_seconds,
    )
    return keys


def _held(settings: Settings, prefix: str, title: str | None = None) -> Counter[str]:
    """How many tasks of the project hold each clip key of these sessions."""
    client = connect(settings)
    project = find_project(client, title or settings.label_studio.project_title)
    assert project is not None
    tasks = list_clip_tasks(client, project.id)
    return Counter(t.key for t in tasks if t.key.startswith(prefix))


def _popen(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "annotate.cli", "--config", str(config), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "400"},
    )


def test_two_imports_of_the_same_sessions_at_once_leave_one_task_per_clip(
    local_stack: tuple[Settings, Path], tmp_path: Path
) -> None:
    settings, _ = local_stack
    ls = settings.label_studio
    (tmp_path / "race").mkdir()
    # a project nobody has made yet: both imports find none, and both create it
    config = write_config(
        tmp_path / "race",
        label_studio={"url": ls.url, "token": ls.token, "password": ls.password,
                      "project_title": "Race"},
        media_root=str(settings.media_path),  # the folder this Label Studio serves
    )  # fmt: skip
    sessions = _sessions(tmp_path / "sessions", "race", 8)
    expected = _clip_keys(sessions, settings)
    assert len(expected) == len(set(expected)) >= 16
    runs = [_popen(config, "import", "--no-prosody", str(sessions)) for _ in range(2)]
    outputs = [run.communicate(timeout=900) for run in runs]
    for run, (out, errors) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, out + errors
        assert "Traceback" not in errors
    client = connect(settings)
    projects = [p for p in client.projects.list(title="Race") if p.title == "Race"]
    assert len(projects) == 1
    hooks = list(client.webhooks.list(project=projects[0].id))
    assert len(hooks) == 1, [h.url for h in hooks]
    held = _held(settings, "race-", "Race")
    assert set(held) == set(expected)
    assert [key for key, n in held.items() if n != 1] == []
    created = [int(re.search(r"tasks created (\d+)", out)[1]) for out, _ in outputs]
    removed = [re.search(r"duplicate tasks removed (\d+)", out) for out, _ in outputs]
    # every extra task either made was removed (by one of them, or by both at once: each
    # then counts it)
    assert sum(int(m[1]) for m in removed if m) >= sum(created) - len(expected)
    print(f"created {created}, removed {[m[1] if m else 0 for m in removed]}")


def test_a_duplicate_left_behind_is_removed_by_the_next_import_and_reported(
    local_stack: tuple[Settings, Path], tmp_path: Path
) -> None:
    settings, config = local_stack
    made = _cli(config, "up")
    assert made.returncode == 0, made.stderr
    sessions = _sessions(tmp_path / "sessions", "dup", 2)
    first = _cli(config, "import", "--no-prosody", str(sessions))
    assert first.returncode == 0, first.stdout + first.stderr
    client = connect(settings)
    project = find_project(client, settings.label_studio.project_title)
    assert project is not None
    ours = sorted(
        (t for t in iter_tasks(client, project.id) if t.data["clip_key"].startswith("dup-")),
        key=lambda t: t.id,
    )
    plain, annotated_copy, conflict = ours[0], ours[1], ours[2]
    # copies made by hand (as a second importer would have): the same data, new ids
    client.projects.import_tasks(
        id=project.id, request=[{"data": t.data} for t in (plain, annotated_copy, conflict)]
    )
    copies = {
        t.data["clip_key"]: t.id for t in iter_tasks(client, project.id) if t.id > ours[-1].id
    }
    assert len(copies) == 3
    # the newer copy of the second clip has an annotation, the older none: the older goes;
    # both copies of the third have one: both stay, as a conflict
    for task_id in (copies[annotated_copy.data["clip_key"]], conflict.id,
                    copies[conflict.data["clip_key"]]):  # fmt: skip
        client.annotations.create(id=task_id, result=[], lead_time=1.0)
    assert Counter(_held(settings, "dup-").values()) == Counter({1: len(ours) - 3, 2: 3})

    again = _cli(config, "import", "--no-prosody", str(sessions))
    assert again.returncode == 0, again.stdout + again.stderr
    text = " ".join(again.stdout.split())
    keys = sorted(t.data["clip_key"] for t in (plain, annotated_copy, conflict))
    assert (
        f"duplicate tasks removed 2, from 3 clips held by more than one task: {', '.join(keys)}"
        in text
    )
    errors = " ".join(again.stderr.split())
    assert f"conflict clip {conflict.data['clip_key']}: several tasks hold it" in errors
    left = {t.id for t in iter_tasks(client, project.id)}
    assert plain.id in left and copies[plain.data["clip_key"]] not in left
    assert annotated_copy.id not in left and copies[annotated_copy.data["clip_key"]] in left
    assert {conflict.id, copies[conflict.data["clip_key"]]} <= left
    held = _held(settings, "dup-")
    assert held[conflict.data["clip_key"]] == 2
    assert [k for k, n in held.items() if n != 1] == [conflict.data["clip_key"]]


# -- last: what every test above, and this one, left in the data folder ---------------------


def test_the_data_folder_is_private_to_its_user(local_stack: tuple[Settings, Path]) -> None:
    settings, config = local_stack
    for args in (("up",), ("import", "--no-prosody", str(EXAMPLE))):  # clips, tasks, project
        done = _cli(config, *args)
        assert done.returncode == 0, done.stdout + done.stderr
    s = settings.service
    event = annotation_event(TAX, 1, task(1, dialogue(3)), 5, {0: {"emotion": "joy"}})
    hook = httpx.post(
        f"{s.url}/webhooks/label-studio",
        json=event,
        headers={"X-Improv-Annotate-Secret": s.webhook_secret or ""},
        timeout=30,
    )
    assert hook.status_code == 200, hook.text
    read = httpx.get(f"{s.url}/projects", headers={"X-API-Key": s.api_key or ""}, timeout=60)
    assert read.status_code == 200 and read.json()["data"]  # the event is in the store
    data = settings.data_path
    names = {p.name for p in data.rglob("*")}
    # the service's store and inbox, Label Studio's database, logs, pids, secrets
    for expected in ("annotate.db", "annotate.inbox.db", "label_studio.sqlite3", "secrets.json"):
        assert expected in names, sorted(names)
    assert {"label-studio.log", "service.log", "label-studio.pid", "service.pid"} <= names
    offenders = []
    for path in (data, *data.rglob("*")):
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077 or (path.is_dir() and mode != 0o700):
            offenders.append(f"{path.relative_to(data.parent)} {mode:o}")
    assert offenders == []
    assert len(names) >= 10
    assert any(name.endswith(".wav") for name in names)  # the clips the import cut
