"""The whole path against a real Label Studio and the real service over HTTP.

Import the example session, annotate through Label Studio's API as two users, see the
judgements arrive by webhook, read agreement, export, and check the rows against the turns.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from label_studio_sdk import LabelStudio

from annotate.agreement import krippendorff_alpha, pivot
from annotate.config import Settings
from annotate.labelstudio import (
    connect,
    ensure_account,
    ensure_project,
    ensure_webhook,
    invite_link,
    iter_tasks,
    service_keeper,
    session_pusher,
)
from annotate.service import ServiceClient
from annotate.simulate import simulate_values
from importers import import_sessions, load_session
from schemas.codec import encode_annotation
from schemas.taxonomy import load_taxonomy
from tests.conftest import EXAMPLE, ROOT, free_port, write_config

pytestmark = pytest.mark.integration
TAX = load_taxonomy()


def _push(client: LabelStudio, project_id: int, settings: Settings):
    service = ServiceClient(settings.service.url, settings.service.api_key)
    return session_pusher(
        client, project_id, settings.media_path, keep_intended=service_keeper(service)
    )


@pytest.fixture(scope="module")
def project(label_studio: Settings, service: Settings) -> tuple[LabelStudio, Any]:
    """The example session imported into a fresh project with the service's webhook."""
    client = connect(label_studio)
    proj = ensure_project(client, label_studio, TAX)
    ensure_webhook(
        client, proj.id, label_studio.webhook_url, label_studio.service.webhook_secret or ""
    )
    report = import_sessions(
        EXAMPLE,
        media_root=label_studio.media_path,
        taxonomy=TAX,
        max_seconds=label_studio.clips.max_seconds,
        push=_push(client, proj.id, label_studio),
    )
    assert report.failed == {}
    assert report.created > 0
    return client, proj


def _service(settings: Settings) -> httpx.Client:
    return httpx.Client(
        base_url=settings.service.url,
        timeout=30,
        headers={"X-API-Key": settings.service.api_key or ""},
    )


def test_project_is_set_up_from_the_taxonomy(
    project: tuple[LabelStudio, Any], label_studio: Settings
) -> None:
    client, proj = project
    fresh = client.projects.get(id=proj.id)
    assert 'name="emotion"' in fresh.label_config
    assert 'name="intensity"' in fresh.label_config
    assert "<Labels" in fresh.label_config  # shift spans on the audio
    (hook,) = client.webhooks.list(project=proj.id)
    assert hook.url == label_studio.webhook_url
    # setting up again reuses the project and the webhook
    again = ensure_project(client, label_studio, TAX)
    ensure_webhook(
        client, again.id, label_studio.webhook_url, label_studio.service.webhook_secret or ""
    )
    assert again.id == proj.id
    assert len(client.webhooks.list(project=proj.id)) == 1


def test_tasks_match_the_turn_list_and_media_is_served(
    project: tuple[LabelStudio, Any], label_studio: Settings
) -> None:
    client, proj = project
    session = load_session(EXAMPLE)
    tasks = list(iter_tasks(client, proj.id))
    turn_ids = [line["turn_id"] for t in tasks for line in t.data["dialogue"]]
    assert turn_ids == [t.id for t in session.turns]
    for t in tasks:
        (prediction,) = t.predictions
        result = prediction["result"] if isinstance(prediction, dict) else prediction.result
        assert len(result) == len(t.data["dialogue"])
    # the clip audio is served by Label Studio's local-files storage (login required)
    url = label_studio.label_studio.url + tasks[0].data["audio"]
    answer = httpx.get(
        url, headers={"Authorization": f"Token {label_studio.label_studio.token}"}, timeout=30
    )
    assert answer.status_code == 200
    assert answer.content[:4] == b"RIFF"


def test_reimport_adds_nothing(project: tuple[LabelStudio, Any], label_studio: Settings) -> None:
    client, proj = project
    before = len(list(iter_tasks(client, proj.id)))
    report = import_sessions(
        EXAMPLE,
        media_root=label_studio.media_path,
        taxonomy=TAX,
        max_seconds=label_studio.clips.max_seconds,
        push=_push(client, proj.id, label_studio),
    )
    assert report.created == 0
    assert report.existing == before
    assert len(list(iter_tasks(client, proj.id))) == before


def _wait_for(predicate, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


def test_two_users_annotate_and_judgements_arrive_by_webhook(
    project: tuple[LabelStudio, Any], label_studio: Settings, tmp_path: Path
) -> None:
    client, proj = project
    session = load_session(EXAMPLE)
    intended = {i.turn: i.emotion for i in session.intended}
    tasks = list(iter_tasks(client, proj.id))
    expected: dict[tuple[str, str], str] = {}
    users = []
    for k in (1, 2):
        account = ensure_account(
            label_studio.label_studio.url,
            f"it-annotator-{k}@example.org",
            "a-long-test-password-1",
            invite=invite_link(client, label_studio.label_studio.url),
        )
        users.append(account)
        as_user = LabelStudio(base_url=label_studio.label_studio.url, api_key=account.token)
        for t in tasks:
            rng = np.random.default_rng([k, t.id])
            values, shifts = simulate_values(t.data["dialogue"], intended, TAX, rng, noise=0.3)
            result = encode_annotation(t.data["dialogue"], values, TAX, shifts)
            made = as_user.annotations.create(id=t.id, result=result)
            assert made.completed_by == account.id
            for i, dims in values.items():
                expected[(str(account.id), t.data["dialogue"][i]["turn_id"])] = str(dims["emotion"])
    n_turns = len(session.turns)
    with _service(label_studio) as svc:
        count = _wait_for(
            lambda: (
                svc.get(
                    f"/projects/{proj.id}/judgements", params={"dimension": "emotion", "limit": 1}
                ).json()["count"]
                == 2 * n_turns
            )
        )
        assert count, "the webhook did not deliver every annotation"
        page = svc.get(
            f"/projects/{proj.id}/judgements", params={"dimension": "emotion", "limit": 1000}
        ).json()
        stored = {(j["annotator"], j["turn_id"]): j["value"] for j in page["data"]}
        assert stored == expected
        figures = svc.get(f"/projects/{proj.id}/agreement").json()
        per = svc.get(f"/projects/{proj.id}/agreement/by/annotator").json()
    assert figures["judgements"] == 2 * n_turns
    assert figures["units"] == n_turns
    assert figures["annotators"] == 2
    assert {a["key"] for a in per["data"]} == {str(u.id) for u in users}
    # the live (incremental) alpha equals the batch alpha over the same judgements
    codes = {v: i for i, v in enumerate(TAX.emotion.values)}
    matrix, _, _ = pivot(
        [turn for _, turn in expected],
        [a for a, _ in expected],
        [codes[v] for v in expected.values()],
    )
    assert figures["alpha"] == pytest.approx(krippendorff_alpha(matrix, "nominal"), abs=1e-9)

    # export from the store and check every row against the turn list
    from sqlmodel import Session

    from api.db import make_engine
    from exporters import ExportOptions, export_dataset, read_jsonl

    engine = make_engine(label_studio.database_url)
    with Session(engine) as db:
        report = export_dataset(
            db, proj.id, TAX, tmp_path / "export", options=ExportOptions(real_ids=True), n_boot=50
        )
    engine.dispose()
    rows = list(read_jsonl(report.files["jsonl"]))
    assert report.accounting.read == report.accounting.exported == 2 * n_turns * len(TAX.dimensions)
    assert len(rows) == n_turns
    for row, turn in zip(rows, session.turns, strict=True):
        assert (row["turn_id"], row["speaker"], row["text"]) == (turn.id, turn.speaker, turn.text)
        assert row["start"] == pytest.approx(turn.start, abs=1e-3)
        assert row["end"] == pytest.approx(turn.end, abs=1e-3)
        assert row["intended_emotion"] == intended[turn.index]
        assert row["n_annotators"] == 2
        labels = {a: v["emotion"] for a, v in row["labels"].items()}
        assert labels == {str(u.id): expected[(str(u.id), turn.id)] for u in users}
        emotion = row["aggregates"]["emotion"]
        if len(set(labels.values())) == 1:
            assert emotion["majority"] == next(iter(labels.values()))
        else:
            assert emotion["majority"] is None
            assert emotion["tied"] == sorted(labels.values())


def _cli(
    config: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "annotate.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def test_cli_import_skips_bad_sessions_and_pushes_good_ones(
    project: tuple[LabelStudio, Any], stack_config: Path, tmp_path: Path
) -> None:
    client, proj = project
    batch = tmp_path / "batch"
    good = batch / "good"
    shutil.copytree(EXAMPLE, good)
    meta = (good / "session.yaml").read_text().replace("id: cafe-breakup", "id: cafe-copy")
    (good / "session.yaml").write_text(meta)
    broken = batch / "broken"
    shutil.copytree(EXAMPLE, broken)
    (broken / "session.yaml").write_text(meta.replace("id: cafe-copy", "id: cafe-broken"))
    vtt = (broken / "transcript.vtt").read_text().splitlines()
    vtt[7] = "00:00:04.009 --> 00:00:07.2x2"
    (broken / "transcript.vtt").write_text("\n".join(vtt) + "\n")
    late = batch / "late"
    shutil.copytree(EXAMPLE, late)
    (late / "session.yaml").write_text(meta.replace("id: cafe-copy", "id: cafe-late"))
    lines = (late / "transcript.vtt").read_text().splitlines()
    last = max(i for i, line in enumerate(lines) if "-->" in line)
    lines[last] = lines[last].split("-->")[0] + "--> 00:09:59.000"
    (late / "transcript.vtt").write_text("\n".join(lines) + "\n")
    missing = batch / "missing"
    shutil.copytree(EXAMPLE, missing)
    (missing / "session.yaml").write_text(meta.replace("id: cafe-copy", "id: cafe-missing"))
    (missing / "audio.wav").unlink()

    done = _cli(stack_config, "import", str(batch))
    assert done.returncode == 1
    text = " ".join((done.stdout + done.stderr).split())
    assert "broken/transcript.vtt:8: malformed cue timing" in text
    assert f"late/transcript.vtt:{last + 1}: ends at 599.000s, past the end of the media" in text
    assert "missing/audio.wav: media file not found" in text
    assert "Traceback" not in text
    sessions = {t.data["session_id"] for t in iter_tasks(client, proj.id)}
    assert "cafe-copy" in sessions
    assert not sessions & {"cafe-broken", "cafe-late", "cafe-missing"}


def test_cli_agreement_export_status(
    service: Settings, stack_config: Path, project: tuple[LabelStudio, Any]
) -> None:
    _, proj = project
    done = _cli(stack_config, "status")
    assert done.returncode == 0, done.stdout + done.stderr
    done = _cli(stack_config, "agreement", "--project", str(proj.id))
    assert done.returncode == 0, done.stderr
    assert "Krippendorff's alpha (nominal) on emotion" in done.stdout
    out = Path(service.data_path) / "cli-export"
    done = _cli(stack_config, "export", "--out", str(out), "--format", "jsonl,csv")
    assert done.returncode == 0, done.stderr
    assert (out / "turns.jsonl").read_text().count("\n") > 0
    assert (out / "turns.csv").exists() and (out / "README.md").exists()


def test_cli_names_the_unreachable_url(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(
        tmp_path,
        label_studio={"url": f"http://127.0.0.1:{port}"},
        service={"url": f"http://127.0.0.1:{free_port()}"},
    )
    done = _cli(config, "import", str(EXAMPLE))
    assert done.returncode == 1
    text = " ".join(done.stderr.split())
    assert f"Label Studio is not reachable at http://127.0.0.1:{port}" in text
    assert "improv-annotate up" in text
    assert "Traceback" not in text
    done = _cli(config, "agreement", "--project", "1")
    text = " ".join(done.stderr.split())
    assert done.returncode == 1
    assert "agreement service is not reachable at http://127.0.0.1:" in text
