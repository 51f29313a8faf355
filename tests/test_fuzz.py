"""Hostile input: random and mutated webhook bodies and random read parameters.

The ASGI app runs in-process (httpx through Starlette's test client) on a SQLite file, with
the real routes, store and codec. Whatever arrives: never a 5xx; a bad payload gets a 4xx
that names the field and lands in the dead-letter table; nothing is ever half-applied (the
stored incremental sums equal a recompute, and every annotation has all its judgements or
none). Hypothesis is derandomised, so a run is reproducible.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, func, select

from annotate.config import load_settings, with_local_secrets
from annotate.labelstudio import SECRET_HEADER
from api import store
from api.app import MAX_BODY, create_app
from api.models import Annotation, Judgement
from schemas.taxonomy import load_taxonomy
from tests.conftest import write_config
from tests.faultkit import KEY, SECRET, sum_differences
from tests.payloads import annotation_event, delete_event, dialogue, task

TAX = load_taxonomy()
HOOK = "/webhooks/label-studio"
SEEDED = 77  # the project (and task) the reads look at; fuzzed events go to project 1
RAISE = bool(os.environ.get("FUZZ_RAISE"))  # debugging: let server errors propagate
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    """The app on a SQLite file holding one small project (so reads reach deep code)."""
    folder = tmp_path_factory.mktemp("fuzz")
    database_url = f"sqlite:///{folder / 'store.db'}"
    config = write_config(
        folder,
        service={
            "database_url": database_url,
            "webhook_secret": SECRET,
            "api_key": KEY,
            "reconcile_seconds": 0,
        },
    )
    service = create_app(with_local_secrets(load_settings(config)))
    with TestClient(service, raise_server_exceptions=RAISE) as client:
        t = task(SEEDED, dialogue(4, session_id="seeded"), session_id="seeded")
        for n in range(3):
            values = {
                i: {"emotion": ["joy", "anger"][(i + n) % 2], "intensity": 3} for i in range(4)
            }
            payload = annotation_event(TAX, 50_000 + n, t, n + 1, values, project_id=SEEDED)
            answer = client.post(HOOK, json=payload, headers={SECRET_HEADER: SECRET})
            assert answer.status_code == 200
        yield client, database_url
    service.state.engine.dispose()
    service.state.writer.dispose()
    service.state.inbox.dispose()


def _dead_letters(client: TestClient) -> int:
    """Dead letters so far (the read waits until every delivery kept is applied)."""
    answer = client.get("/dead-letters", headers={"X-API-Key": KEY})
    assert answer.status_code == 200, answer.text
    return int(answer.json()["count"])


_ENGINES: dict[str, Any] = {}


def store_engine(database_url: str) -> Any:
    """One engine per store for the checks (kept, so that checks stay cheap)."""
    from api.db import make_engine

    if database_url not in _ENGINES:
        _ENGINES[database_url] = make_engine(database_url)
    return _ENGINES[database_url]


def _check_whole(database_url: str) -> None:
    """No annotation is half-applied and the sums equal a recompute."""
    engine = store_engine(database_url)
    with Session(engine) as db:
        per_annotation = dict(
            db.exec(
                select(Judgement.annotation_id, func.count()).group_by(Judgement.annotation_id)
            ).all()
        )
        turns = dict(
            db.exec(
                select(
                    Judgement.annotation_id, func.count(func.distinct(Judgement.turn_id))
                ).group_by(Judgement.annotation_id)
            ).all()
        )
        deleted = set(db.exec(select(Annotation.id).where(Annotation.deleted == True)).all())  # noqa: E712
    # an annotation's judgements come from one event: the same dimensions on every turn
    for annotation_id, n in per_annotation.items():
        assert annotation_id not in deleted
        assert n % turns[annotation_id] == 0, annotation_id
    for project_id in (1, SEEDED):
        worst = sum_differences(database_url, project_id)
        assert all(diff < 1e-6 for diff in worst.values()), worst


def _post(client: TestClient, body: bytes) -> Any:
    return client.post(
        HOOK, content=body, headers={SECRET_HEADER: SECRET, "Content-Type": "application/json"}
    )


def _assert_answer(answer: Any, letters_before: int, client: TestClient, database_url: str) -> None:
    assert answer.status_code < 500, answer.text
    if answer.status_code == 422:
        detail = answer.json()["detail"]
        assert isinstance(detail, str) and ": " in detail, detail  # "<field>: expected ..."
        assert _dead_letters(client) == letters_before + 1
    elif answer.status_code == 200:
        assert _dead_letters(client) == letters_before
    else:
        assert answer.status_code == 413, answer.text
    _check_whole(database_url)


# -- random bodies -----------------------------------------------------------------------------

leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
json_values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=25,
)


@FUZZ
@given(body=json_values)
@example(body={"action": "ANNOTATION_CREATED"})
@example(body={"action": "ANNOTATION_CREATED", "project": {"id": 1}, "annotation": [], "task": {}})
@example(body={"action": "ANNOTATIONS_DELETED", "project": {"id": 1}, "annotations": [{"id": "1"}]})
@example(body={"action": "TASKS_DELETED", "project": {"id": 2**70}, "tasks": [{"id": 1}]})
@example(body=[1, 2, 3])
def test_random_json_bodies(app: tuple[TestClient, str], body: Any) -> None:
    client, database_url = app
    before = _dead_letters(client)
    answer = _post(client, json.dumps(body).encode())
    _assert_answer(answer, before, client, database_url)


@FUZZ
@given(body=st.binary(max_size=300))
@example(body=b"")
@example(body=b"\xff\xfe{}")
@example(body=b"\xef\xbb\xbf{}")
@example(body=b"[" * 100_000 + b"]" * 100_000)
@example(body=b'{"a":' * 50_000 + b"1" + b"}" * 50_000)
@example(body=b'{"action": "ANNOTATION_CREATED", "project": {"id": 1e999999}}')
@example(body=b'{"action": "ANNOTATION_CREATED", "project": {"id": ' + b"9" * 5000 + b"}}")
@example(body=b'{"action": NaN, "project": {"id": Infinity}}')
def test_random_bytes(app: tuple[TestClient, str], body: bytes) -> None:
    client, database_url = app
    before = _dead_letters(client)
    _assert_answer(_post(client, body), before, client, database_url)


def test_oversized_body_is_413_and_not_stored(app: tuple[TestClient, str]) -> None:
    client, database_url = app
    before = _dead_letters(client)
    answer = _post(client, b'{"action": "' + b"x" * MAX_BODY + b'"}')
    assert answer.status_code == 413
    assert answer.json()["detail"] == f"body of {MAX_BODY + 14} bytes; at most {MAX_BODY}"
    assert _dead_letters(client) == before
    _check_whole(database_url)


# -- mutated valid payloads --------------------------------------------------------------------


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value[:3]):
            found += _paths(inner, (*prefix, index))
    return found


def _valid(kind: int, annotation_id: int) -> dict[str, Any]:
    t = task(1 + kind % 2, dialogue(3, clip=kind % 2))
    values = {i: {"emotion": "fear", "intensity": 2, "valence": 4} for i in range(3)}
    if kind == 2:
        return delete_event([annotation_id])
    shifts = [{"start": 1.0, "end": 2.0, "from": "fear", "to": "joy", "trigger": "partner-induced"}]
    return annotation_event(TAX, annotation_id, t, annotation_id % 5, values, shifts=shifts)


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    payload = _valid(draw(st.integers(0, 3)), draw(st.integers(10, 10_000)))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(payload)
        path = draw(st.sampled_from(paths))
        parent = payload
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()):
            if isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent[path[-1]] = None
        else:
            parent[path[-1]] = draw(json_values)
    return payload


@FUZZ
@given(payload=mutated())
def test_mutated_webhook_payloads(app: tuple[TestClient, str], payload: dict[str, Any]) -> None:
    client, database_url = app
    before = _dead_letters(client)
    body = json.dumps(copy.deepcopy(payload)).encode()
    _assert_answer(_post(client, body), before, client, database_url)


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("annotation", "id"), 2**70, "annotation.id"),
        (("task", "id"), -(2**64), "task.id"),
        (("project", "id"), 2**63, "project.id"),
        (("annotation", "updated_at"), "0001-01-01T00:00:00+14:00", "annotation.updated_at"),
        (("annotation", "created_at"), "9999-12-31T23:59:59-14:00", "annotation.created_at"),
        (("annotation", "lead_time"), 10**400, "(body|annotation.lead_time)"),
        (("annotation", "result"), [{"type": "choices", "value": {"start": 10**30}}], "result"),
        (("task", "data", "dialogue"), "not a list", "task.data.dialogue"),
        (("task", "data", "clip_id"), [1, "a"], "task.data.clip_id"),
        (("task", "data", "session_id"), {"a": 1}, "task.data.session_id"),
    ],
)
def test_edge_values_are_4xx_naming_the_field(
    app: tuple[TestClient, str], path: tuple[str, ...], value: Any, field: str
) -> None:
    client, database_url = app
    payload = _valid(0, 555)
    parent = payload
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    before = _dead_letters(client)
    answer = _post(client, json.dumps(payload).encode())
    _assert_answer(answer, before, client, database_url)
    if answer.status_code == 422:
        assert re.match(field, answer.json()["detail"]), answer.json()["detail"]


# -- random read parameters --------------------------------------------------------------------

READS = [
    "/projects",
    "/projects/{p}/agreement",
    "/projects/{p}/agreement/summary",
    "/projects/{p}/agreement/by/{b}",
    "/projects/{p}/agreement/pairwise",
    "/projects/{p}/agreement/confusion",
    "/projects/{p}/agreement/drift",
    "/projects/{p}/agreement/shifts",
    "/projects/{p}/adjudication",
    "/projects/{p}/skipped",
    "/projects/{p}/annotators",
    "/projects/{p}/judgements",
    "/dashboard/{p}",
]
PARAMS = [
    "dimension",
    "skip",
    "limit",
    "n_boot",
    "seed",
    "every",
    "size",
    "tolerance",
    "threshold",
    "key",
]
param_values = (
    st.integers(min_value=-(2**70), max_value=2**70).map(str)
    | st.floats(allow_nan=True, allow_infinity=True).map(str)
    | st.text(max_size=20)
    | st.sampled_from(["emotion", "intensity", "valence", "day", "count", "50", "0", KEY])
)


@FUZZ
@given(
    route=st.sampled_from(READS),
    project=st.one_of(
        st.just(str(SEEDED)), st.integers(-(2**70), 2**70).map(str), st.text(max_size=12)
    ),
    breakdown=st.sampled_from(["session", "clip", "speaker", "label", "annotator", "x", "..%2F"]),
    params=st.dictionaries(st.sampled_from(PARAMS), param_values, max_size=5),
)
def test_random_read_parameters(
    app: tuple[TestClient, str], route: str, project: str, breakdown: str, params: dict[str, str]
) -> None:
    client, _ = app
    if not project.strip():
        project = str(SEEDED)
    path = route.replace("{p}", quote(project, safe="")).replace("{b}", breakdown)
    answer = client.get(path, params=params, headers={"X-API-Key": KEY})
    assert answer.status_code < 500, (path, params, answer.text[:300])


def test_store_functions_stay_whole_after_the_fuzz(app: tuple[TestClient, str]) -> None:
    """The seeded project is still served and consistent after everything above."""
    client, database_url = app
    answer = client.get(f"/projects/{SEEDED}/agreement", headers={"X-API-Key": KEY})
    assert answer.status_code == 200, answer.text
    live = answer.json()
    with Session(store_engine(database_url)) as db:
        assert live["judgements"] == int(
            db.exec(
                select(func.count())
                .select_from(Judgement)
                .where(Judgement.project_id == SEEDED, Judgement.dimension == "emotion")
            ).one()
        )
        assert store.projects(db)
    _check_whole(database_url)


def test_two_annotations_of_one_annotator_on_a_task_do_not_break_the_reports(
    app: tuple[TestClient, str],
) -> None:
    client, _ = app
    t = task(900, dialogue(2, session_id="twice"), session_id="twice")
    for annotation_id, emotion in ((9001, "joy"), (9002, "anger")):
        payload = annotation_event(
            TAX,
            annotation_id,
            t,
            5,
            {0: {"emotion": emotion}, 1: {"emotion": "joy"}},
            project_id=900,
        )
        assert client.post(HOOK, json=payload, headers={SECRET_HEADER: SECRET}).status_code == 200
    other = annotation_event(
        TAX, 9003, t, 6, {0: {"emotion": "joy"}, 1: {"emotion": "joy"}}, project_id=900
    )
    assert client.post(HOOK, json=other, headers={SECRET_HEADER: SECRET}).status_code == 200
    keys = {"X-API-Key": KEY}
    answer = client.get("/projects/900/agreement/summary", headers=keys)
    assert answer.status_code == 200, answer.text
    # every annotation is a coder, as in the live sums: the two figures agree
    live = client.get("/projects/900/agreement", headers=keys).json()
    assert live["judgements"] == 6
    assert answer.json()["alpha"] == pytest.approx(live["alpha"])
    # the older annotation shows as a rater of its own, named after its annotator
    pairwise = client.get("/projects/900/agreement/pairwise", headers=keys)
    assert pairwise.status_code == 200, pairwise.text
    assert pairwise.json()["annotators"] == ["5 (annotation 9001)", "5", "6"]
