"""Who can join and what local users can read, against a real local stack (Label Studio
and the service started as ``improv-annotate up`` starts them): sign-up only with the
invite link, no secret on any process's command line, a data folder private to its user,
and imports of one project that converge to one task per clip when they run at once."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from annotate import stack
from annotate.config import Settings, load_settings, with_local_secrets
from annotate.labelstudio import LabelStudioError, ensure_account
from schemas.taxonomy import load_taxonomy
from tests.conftest import ROOT, write_config
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


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "annotate.cli", "--config", str(config), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )


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


def test_the_data_folder_is_private_to_its_user(local_stack: tuple[Settings, Path]) -> None:
    settings, _ = local_stack
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
