"""Partial labels through a real Label Studio and the real service: both export paths.

Two annotator accounts label turns 0-5 of a clip through Label Studio's API; one of them
also labels turn 8 with an emotion and an intensity nobody used on turns 0-5. The export
from the service's store (the webhooks' judgements) and the export from Label Studio's own
JSON export both write the rows with the data card, and the card's alpha equals the
``krippendorff`` package's on Label Studio's export.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import krippendorff
import numpy as np
import pytest
from label_studio_sdk import LabelStudio
from sqlmodel import Session

from annotate.config import Settings
from annotate.labelstudio import connect, ensure_account, ensure_webhook, invite_link
from api.db import make_engine
from exporters import ExportOptions, export_dataset, export_label_studio_file, read_jsonl
from schemas.codec import encode_annotation
from schemas.label_config import label_config
from schemas.taxonomy import load_taxonomy
from tests.payloads import dialogue, task
from tests.test_export_partial import card_alpha
from tests.test_integration import _wait_for

pytestmark = pytest.mark.integration
TAX = load_taxonomy()
SHARED = ["neutral", "joy", "sadness", "joy", "anger", "neutral"]


def _alpha_from_export(tasks: list[dict], dimension: str, level: str) -> float:
    """Alpha of one dimension over Label Studio's export, read here, by ``krippendorff``."""
    codes = {v: float(i) for i, v in enumerate(TAX.emotion.values)}
    annotators = sorted({a["completed_by"] for t in tasks for a in t["annotations"]})
    turns = [(t["id"], i) for t in tasks for i in range(len(t["data"]["dialogue"]))]
    matrix = np.full((len(annotators), len(turns)), np.nan)
    for t in tasks:
        for a in t["annotations"]:
            for item in a["result"]:
                if item["from_name"] != dimension:
                    continue
                raw = item["value"]["choices"][0]
                unit = turns.index((t["id"], int(item["value"]["start"])))
                value = codes[raw] if dimension == "emotion" else float(raw)
                matrix[annotators.index(a["completed_by"]), unit] = value
    return float(krippendorff.alpha(reliability_data=matrix, level_of_measurement=level))


def test_partial_labels_export_from_the_store_and_from_label_studio(
    label_studio: Settings, service: Settings, tmp_path: Path
) -> None:
    client = connect(label_studio)
    project = client.projects.create(
        title=f"Partial labels {time.time_ns()}", label_config=label_config(TAX)
    )
    ensure_webhook(
        client, project.id, label_studio.webhook_url, label_studio.service.webhook_secret or ""
    )
    lines = dialogue(9, session_id="partial")
    data = {**task(1, lines, "partial")["data"], "prompt": "", "title": "partial", "context": ""}
    client.projects.import_tasks(id=project.id, request=[{"data": data}])
    (made,) = list(client.tasks.list(project=project.id))
    invite = invite_link(client, label_studio.label_studio.url)
    for k in (1, 2):
        account = ensure_account(
            label_studio.label_studio.url,
            f"partial-annotator-{k}@example.org",
            "a-long-test-password-1",
            invite=invite,
        )
        values: dict[int, dict[str, str | int]] = {}
        for i, label in enumerate(SHARED):
            other = "sadness" if k == 2 and i == 4 else label
            values[i] = {"emotion": other, "intensity": 1 + (i + k) % 3}
        if k == 1:
            values[8] = {"emotion": "fear", "intensity": 5}
        as_user = LabelStudio(base_url=label_studio.label_studio.url, api_key=account.token)
        as_user.annotations.create(id=made.id, result=encode_annotation(lines, values, TAX, []))

    with httpx.Client(
        base_url=service.service.url,
        timeout=30,
        headers={"X-API-Key": service.service.api_key or ""},
    ) as svc:
        arrived = _wait_for(
            lambda: (
                svc.get(
                    f"/projects/{project.id}/judgements",
                    params={"dimension": "emotion", "limit": 1},
                ).json()["count"]
                == 13
            )
        )
    assert arrived, "the webhook did not deliver both annotations"

    answer = httpx.get(
        f"{label_studio.label_studio.url}/api/projects/{project.id}/export",
        params={"exportType": "JSON"},
        headers={"Authorization": f"Token {label_studio.label_studio.token}"},
        timeout=60,
    )
    answer.raise_for_status()
    source = tmp_path / "label-studio-export.json"
    source.write_bytes(answer.content)
    tasks = json.loads(answer.content)
    offline = export_label_studio_file(
        source, TAX, tmp_path / "offline", options=ExportOptions(salt="s"), n_boot=50
    )
    engine = make_engine(label_studio.database_url)
    try:
        with Session(engine) as db:
            live = export_dataset(
                db, project.id, TAX, tmp_path / "live", options=ExportOptions(salt="s"), n_boot=50
            )
    finally:
        engine.dispose()
    for report in (live, offline):
        rows = list(read_jsonl(report.folder / "turns.jsonl"))
        assert [r["n_annotators"] for r in rows] == [2] * 6 + [0, 0, 1]
        assert (report.folder / "README.md").is_file()
        for dim, level in (("emotion", "nominal"), ("intensity", "ordinal")):
            expected = _alpha_from_export(tasks, dim, level)
            assert card_alpha(report.folder, dim) == f"{expected:.3f}"
