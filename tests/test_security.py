"""Security measures, each tested against the real service or the real code path.

Webhook secret, API key on every read endpoint, no annotator emails, CORS closed, body size
limit, importer paths kept inside the session folder, YAML loaded safely, CSV formula guard,
and no secret in the logs or the CLI's output after a demo run.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlmodel import Session

from annotate.config import ConfigError, Settings, load_settings, local_secrets
from annotate.labelstudio import SECRET_HEADER
from api.db import make_engine
from api.models import DeadLetter
from exporters.formats import safe_cell, write_csv
from importers import load_session
from schemas.errors import SessionError, TaxonomyError
from schemas.taxonomy import load_taxonomy
from tests.conftest import EXAMPLE, ROOT, write_config
from tests.faultkit import KEY, SECRET, Served, make_service, settled_rows
from tests.payloads import annotation_event, dialogue, task

TAX = load_taxonomy()
HOOK = "/webhooks/label-studio"
EMAIL = "ann.o.tator@example.org"


REFUSED_EMAILS = ("mallory.m@example.net", "x.y@corp.example.com", "7" + EMAIL)
REFUSED_TEXT = f"not JSON, sent by {REFUSED_EMAILS[0]}"
OLD_EMAIL = "old.timer@example.com"
OLD_REASON = f"kept by an older version: {OLD_EMAIL}"
OLD_BODY = json.dumps({"annotation": {"id": 3, "completed_by": {"id": 4, "email": OLD_EMAIL}}})


def refused_payload() -> dict[str, Any]:
    """An event the service refuses (its dialogue is not a list), naming its annotator."""
    payload = annotation_event(TAX, 55, task(3, dialogue(2)), 9, {0: {"emotion": "joy"}})
    payload["task"]["data"]["dialogue"] = "not a list of turns"
    payload["annotation"]["completed_by"] = {
        "id": 9,
        "email": REFUSED_EMAILS[0],
        "first_name": "Mallory",
        "last_name": "Mallet",
        "username": "mallory",
    }
    payload["annotation"]["created_username"] = f"{REFUSED_EMAILS[1]}, 9"
    payload["task"]["data"]["note"] = f"ask {REFUSED_EMAILS[2]} about it"
    return payload


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One service (SQLite) holding one project whose annotator has an email address."""
    folder = tmp_path_factory.mktemp("security")
    service = make_service(folder, f"sqlite:///{folder / 'store.db'}")
    service.start()
    t = task(1, dialogue(4))
    with service.hooks() as hooks:
        for annotator in (7, 8):
            payload = annotation_event(
                TAX, annotator, t, annotator, {i: {"emotion": "joy"} for i in range(4)}
            )
            # Label Studio sends the user object and the creator's email along
            payload["annotation"]["completed_by"] = {
                "id": annotator,
                "email": f"{annotator}{EMAIL}",
                "first_name": "Ann",
            }
            payload["annotation"]["created_username"] = f"{annotator}{EMAIL}, {annotator}"
            payload["task"]["data"]["uploaded_by"] = EMAIL
            assert hooks.post(HOOK, json=payload).status_code == 200
        # refused payloads become dead letters: one that is JSON, one that is not
        assert hooks.post(HOOK, json=refused_payload()).status_code == 422
        assert hooks.post(HOOK, content=REFUSED_TEXT.encode()).status_code == 422
    # and a dead letter kept raw by an older version, straight in the store
    engine = make_engine(service.settings.database_url)
    with Session(engine) as db:
        db.add(DeadLetter(received_at=datetime.now(UTC), reason=OLD_REASON, body=OLD_BODY))
        db.commit()
    engine.dispose()
    try:
        yield service
    finally:
        service.stop()


def _read_paths(served: Served) -> list[str]:
    """Every GET endpoint of the OpenAPI schema with its path parameters filled in."""
    schema = httpx.get(f"{served.url}/openapi.json").json()
    paths = []
    for path, operations in schema["paths"].items():
        if "get" not in operations:
            continue
        filled = path.replace("{project_id}", "1").replace("{breakdown}", "annotator")
        if "{page}" in filled:  # the dashboard's other pages: all of them
            pages = ("annotators", "performers", "adjudication")
            paths += [filled.replace("{page}", page) for page in pages]
            continue
        paths.append(filled)
    return paths


# -- webhook secret ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {SECRET_HEADER: ""},
        {SECRET_HEADER: SECRET[:-1]},
        {SECRET_HEADER: SECRET + "x"},
        {SECRET_HEADER: SECRET.upper()},
        {SECRET_HEADER: "é" + SECRET},
        {"Authorization": f"Bearer {SECRET}"},
        {"X-API-Key": KEY},
    ],
    ids=["none", "empty", "prefix", "longer", "case", "non-ascii", "bearer", "api-key"],
)
def test_webhook_without_the_right_secret_is_401_and_changes_nothing(
    served: Served, headers: dict[str, str]
) -> None:
    before = settled_rows(served, 1)
    payload = annotation_event(TAX, 99, task(1, dialogue(4)), 9, {0: {"emotion": "anger"}})
    encoded = {k: v.encode("utf-8") for k, v in headers.items()}
    answer = httpx.post(f"{served.url}{HOOK}", json=payload, headers=encoded)
    assert answer.status_code == 401
    assert answer.json()["detail"] == f"missing or wrong {SECRET_HEADER} header"
    assert settled_rows(served, 1) == before  # after the applier, if anything was kept


def test_secrets_are_compared_in_constant_time() -> None:
    """Both secrets go through hmac.compare_digest (no early exit on the first difference)."""
    source = (ROOT / "api" / "app.py").read_text(encoding="utf-8")
    assert source.count("hmac.compare_digest(") >= 2  # webhook, API key
    assert not re.search(r"(webhook_secret|api_key)\s*[!=]=", source)
    login = (ROOT / "api" / "login.py").read_text(encoding="utf-8")
    assert login.count("hmac.compare_digest(") >= 2  # the dashboard's key, a session's MAC
    assert not re.search(r"(api_key|mac)\s*[!=]=", login)


# -- API key on reads --------------------------------------------------------------------------


def test_every_read_endpoint_needs_the_api_key(served: Served) -> None:
    paths = _read_paths(served)
    protected = [p for p in paths if p not in {"/health", "/openapi.json"}]
    assert len(protected) >= 12
    checked = 0
    for path in protected:
        for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}):
            answer = httpx.get(f"{served.url}{path}", headers=headers, timeout=30)
            if path.startswith("/dashboard"):  # a page: to the login form, not 401
                assert answer.status_code == 303, (path, headers, answer.status_code)
                assert answer.headers["location"] == f"/login?next={path}"
            else:
                assert answer.status_code == 401, (path, headers, answer.status_code)
            checked += 1
        good = httpx.get(f"{served.url}{path}", headers={"X-API-Key": KEY}, timeout=60)
        assert good.status_code == 200, (path, good.text)
    # an old dashboard link with a wrong ?key= gets the login form
    assert httpx.get(f"{served.url}/dashboard/1?key=wrong").status_code == 401
    answer = httpx.post(f"{served.url}/projects/1/reconcile")
    assert answer.status_code == 401
    # sending clips to adjudication is for QA leads only
    for headers in ({}, {"X-API-Key": "wrong"}):
        answer = httpx.post(f"{served.url}/projects/1/adjudication/send", headers=headers)
        assert answer.status_code == 401, answer.text
    assert "/projects/1/adjudicated" in protected
    assert checked == 3 * len(protected)


# -- no annotator emails -----------------------------------------------------------------------


def test_no_response_reveals_an_annotator_email(served: Served) -> None:
    bodies = []
    with served.reads() as reads:
        for path in _read_paths(served):
            answer = reads.get(path, params={"n_boot": 50})
            assert answer.status_code == 200, (path, answer.text)
            bodies.append((path, answer.text))
    emails = (EMAIL, *REFUSED_EMAILS, OLD_EMAIL, "Mallory", "Mallet")
    leaking = [(path, e) for path, body in bodies for e in emails if e in body]
    assert leaking == []
    assert "/dead-letters" in dict(bodies)
    assert json.loads(dict(bodies)["/dead-letters"])["count"] == 3
    annotators = {
        row["annotator"] for row in json.loads(dict(bodies)["/projects/1/annotators"])["data"]
    }
    assert annotators == {"7", "8"}  # Label Studio user ids, not emails


def test_dead_letters_keep_refused_payloads_with_personal_fields_pseudonymised(
    served: Served,
) -> None:
    salt = local_secrets(served.settings.data_path)["export_salt"]

    def hashed(value: str) -> str:
        return "redacted:" + hashlib.sha256((salt + value).encode()).hexdigest()[:16]

    with served.reads() as reads:
        letters = reads.get("/dead-letters").json()["data"]
    text = next(x for x in letters if x["body"].startswith("not JSON"))
    assert text["body"] == f"not JSON, sent by {hashed(REFUSED_EMAILS[0])}"
    old = next(x for x in letters if x["reason"].startswith("kept by an older version"))
    assert old["reason"] == f"kept by an older version: {hashed(OLD_EMAIL)}"
    assert json.loads(old["body"]) == {
        "annotation": {"id": 3, "completed_by": {"id": 4, "email": hashed(OLD_EMAIL)}}
    }
    body = json.loads(next(x for x in letters if x is not text and x is not old)["body"])
    sent = refused_payload()
    # what a replay needs is kept: ids, action, the result; personal values are pseudonyms
    assert body["action"] == sent["action"]
    assert body["annotation"]["id"] == sent["annotation"]["id"] == 55
    assert body["annotation"]["result"] == sent["annotation"]["result"]
    assert body["task"]["id"] == sent["task"]["id"]
    assert body["annotation"]["completed_by"] == {
        "id": 9,
        "email": hashed(REFUSED_EMAILS[0]),
        "first_name": hashed("Mallory"),
        "last_name": hashed("Mallet"),
        "username": hashed("mallory"),
    }
    assert body["annotation"]["created_username"] == hashed(f"{REFUSED_EMAILS[1]}, 9")
    assert body["task"]["data"]["note"] == f"ask {hashed(REFUSED_EMAILS[2])} about it"


# -- CORS ---------------------------------------------------------------------------------------


def test_cross_origin_requests_get_no_cors_grant(served: Served) -> None:
    origin = {"Origin": "https://evil.example"}
    preflight = httpx.request(
        "OPTIONS",
        f"{served.url}/projects/1/agreement",
        headers={
            **origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "x-api-key",
        },
    )
    assert preflight.status_code in (401, 405)
    assert not any(h.lower().startswith("access-control-") for h in preflight.headers)
    simple = httpx.get(f"{served.url}/projects/1/agreement", headers={**origin, "X-API-Key": KEY})
    assert simple.status_code == 200
    assert "access-control-allow-origin" not in simple.headers


# -- body size -----------------------------------------------------------------------------------


def test_oversized_webhook_body_is_413_and_not_stored(served: Served) -> None:
    before = settled_rows(served, 1)
    payload = annotation_event(TAX, 98, task(1, dialogue(4)), 9, {0: {"emotion": "fear"}})
    payload["annotation"]["padding"] = "x" * (2 * 1024 * 1024)
    with served.hooks() as hooks:
        answer = hooks.post(HOOK, json=payload)
    assert answer.status_code == 413
    assert re.match(r"body of \d+ bytes; at most 2097152", answer.json()["detail"])
    assert settled_rows(served, 1) == before  # after the applier, if anything was kept


def test_streamed_oversized_body_without_length_is_cut_off(served: Served) -> None:
    before = settled_rows(served, 1)

    def chunks():  # chunked transfer encoding: no Content-Length to check up front
        for _ in range(64):
            yield b"x" * (256 * 1024)

    with served.hooks() as hooks:
        answer = hooks.post(HOOK, content=chunks())
    assert answer.status_code == 413
    assert answer.json()["detail"] == "body of more than 2097152 bytes; at most 2097152"
    assert settled_rows(served, 1) == before  # after the applier, if anything was kept


# -- importer paths ------------------------------------------------------------------------------


def _session_with(folder: Path, **changes: str) -> Path:
    session = folder / "s"
    session.mkdir(parents=True)
    for name in ("audio.wav", "transcript.vtt"):
        (session / name).write_bytes((EXAMPLE / name).read_bytes())
    meta = yaml.safe_load((EXAMPLE / "session.yaml").read_text(encoding="utf-8"))
    (session / "session.yaml").write_text(yaml.safe_dump({**meta, **changes}), encoding="utf-8")
    return session


@pytest.mark.parametrize("key", ["media", "transcript"])
@pytest.mark.parametrize(
    "value",
    ["../outside.wav", "../../etc/passwd", "/etc/passwd", "sub/../../outside.wav"],
)
def test_session_paths_cannot_leave_the_session_folder(
    tmp_path: Path, key: str, value: str
) -> None:
    (tmp_path / "outside.wav").write_bytes((EXAMPLE / "audio.wav").read_bytes())
    session = _session_with(tmp_path, **{key: value})
    with pytest.raises(
        SessionError, match=rf"session\.yaml: {key} '{re.escape(value)}' points outside"
    ):
        load_session(session)


@pytest.mark.parametrize("key", ["media", "transcript"])
def test_a_symlink_out_of_the_session_folder_is_refused(tmp_path: Path, key: str) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    source = "audio.wav" if key == "media" else "transcript.vtt"
    (outside / source).write_bytes((EXAMPLE / source).read_bytes())
    session = _session_with(tmp_path, **{key: "linked"})
    (session / "linked").symlink_to(outside / source)
    with pytest.raises(SessionError, match=rf"session\.yaml: {key} 'linked' points outside"):
        load_session(session)


@pytest.mark.parametrize("bad", ["../escape", "/abs", "a/b", ".hidden", "UPPER"])
def test_a_session_id_cannot_name_a_path(tmp_path: Path, bad: str) -> None:
    """The id names the session's folder under the media root: no separators, no '..'."""
    session = _session_with(tmp_path, id=bad)
    with pytest.raises(SessionError, match=rf"id '{re.escape(bad)}' must be lower-case"):
        load_session(session)


# -- YAML loaded safely --------------------------------------------------------------------------

PAYLOAD = "!!python/object/apply:os.system ['touch {marker}']"


def test_yaml_tags_never_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    evil = PAYLOAD.format(marker=marker)
    session = _session_with(tmp_path)
    (session / "session.yaml").write_text(f"id: {evil}\n", encoding="utf-8")
    with pytest.raises(SessionError, match=r"session\.yaml: not valid YAML"):
        load_session(session)
    config = tmp_path / "config.yaml"
    config.write_text(f"data_dir: {evil}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"config\.yaml: not valid YAML"):
        load_settings(config)
    taxonomy = tmp_path / "taxonomy.yaml"
    taxonomy.write_text(f"name: {evil}\n", encoding="utf-8")
    with pytest.raises(TaxonomyError, match=r"taxonomy\.yaml: not valid YAML"):
        load_taxonomy(taxonomy)
    assert not marker.exists()


# -- CSV formula injection -------------------------------------------------------------------------


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_cells_that_would_run_as_formulas_are_quoted(tmp_path: Path, start: str) -> None:
    text = f'{start}HYPERLINK("http://evil.example")'
    assert safe_cell(text) == "'" + text
    path = tmp_path / "rows.csv"
    write_csv([{"turn_id": "s1-t00000", "text": text, "speaker": start + "cmd"}], path)
    with open(path, newline="", encoding="utf-8") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["text"] == "'" + text and row["speaker"] == "'" + start + "cmd"
    assert safe_cell("joy") == "joy" and safe_cell(3) == 3


# -- secrets stay out of logs and output -----------------------------------------------------------


@pytest.mark.integration
def test_no_secret_in_logs_or_cli_output_after_a_demo(
    label_studio: Settings, tmp_path: Path
) -> None:
    ls = label_studio.label_studio
    config = write_config(
        tmp_path,
        label_studio={
            "url": ls.url,
            "token": ls.token,
            "password": ls.password,
            "project_title": "Security demo",
        },
        service={"reconcile_seconds": 1},
        media_root=str(label_studio.media_path),  # the folder that Label Studio serves
    )
    settings = load_settings(config)
    generated = local_secrets(settings.data_path)  # what the local stack generates
    try:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "annotate.cli",
                "--config",
                str(config),
                "demo",
                "--annotators",
                "2",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert run.returncode == 0, run.stdout + run.stderr
    finally:
        subprocess.run(
            [sys.executable, "-m", "annotate.cli", "--config", str(config), "down"],
            cwd=ROOT,
            capture_output=True,
            timeout=120,
            check=False,
        )
    secrets = {
        "label studio token": ls.token or "",
        "label studio password": ls.password or "",
        **{
            key: value for key, value in generated.items() if key not in ("ls_token", "ls_password")
        },
    }
    logs = {
        path.name: path.read_text(errors="replace")
        for folder in (settings.data_path / "logs", label_studio.data_path / "logs")
        for path in folder.glob("*.log")
    }
    texts = {"stdout": run.stdout, "stderr": run.stderr, **logs}
    assert "service.log" in texts and "label-studio.log" in texts
    found = [
        (name, where)
        for name, secret in secrets.items()
        for where, text in texts.items()
        if secret and secret in text
    ]
    assert found == []
    assert "Krippendorff's alpha" in run.stdout  # the demo did run to the end


def test_a_refused_token_is_reported_without_response_headers(label_studio: Settings) -> None:
    from annotate.labelstudio import LabelStudioError, connect

    wrong = label_studio.model_copy(
        update={"label_studio": label_studio.label_studio.model_copy(update={"token": "nope"})}
    )
    with pytest.raises(LabelStudioError, match=r"refused the token \(HTTP 401: ") as caught:
        connect(wrong)
    assert "sessionid" not in str(caught.value) and "set-cookie" not in str(caught.value)
