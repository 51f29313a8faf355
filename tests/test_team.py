"""A realistic team on a real Label Studio, recounted from Label Studio's own export.

Nine annotators (distinct Label Studio users) and an expert label three generated sessions,
three per clip, each with their own skill, bias and skips (``annotate.simulate``); some
annotations are edited, one or more deleted, a quarter of the clips get a gold annotation.
Every figure the service, the CLI and the export report is then compared with a recount
from ``GET /api/projects/{id}/export?exportType=JSON``, computed here with the
``krippendorff`` package and plain numpy, never with the project's own code.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from annotate.config import Settings
from annotate.labelstudio import (
    connect,
    ensure_project,
    ensure_webhook,
    iter_tasks,
    service_keeper,
    session_pusher,
)
from annotate.service import ServiceClient
from annotate.simulate import plan_team, realistic_team
from importers import import_sessions, load_session
from schemas.codec import encode_annotation
from schemas.taxonomy import load_taxonomy
from tests.builders import write_session
from tests.livekit import run_cli as _cli
from tests.recount import (
    alpha,
    annotator_scores,
    icc_oneway,
    majority,
    matrix,
    pairs,
    performers,
    recount,
    same,
    weighted_mean,
)

pytestmark = pytest.mark.integration
TAX = load_taxonomy()
SEED = 15
FIRST = ("Maya", "Theo", "Ines", "Kofi", "Lena", "Ravi", "Sara", "Tomas", "Yuki", "Dr Ada")
LAST = ("Berg", "O'Neil <b>&amp;</b>", "Costa", "Mensah", "Ivanova", "Rao", "Haddad", "Novak")


@dataclass
class TeamRun:
    """What the fixture made: the project, the users, and Label Studio's own export."""

    project_id: int
    users: dict[str, dict[str, Any]]  # simulated name -> Label Studio user (id, email, ...)
    exported: list[dict[str, Any]]
    export_file: Path
    edited: int
    deleted: int
    recount: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    intended: dict[str, dict[int, str]] = field(default_factory=dict)  # session -> turn


def _ls(settings: Settings) -> httpx.Client:
    return httpx.Client(
        base_url=settings.label_studio.url,
        timeout=120,
        headers={"Authorization": f"Token {settings.label_studio.token}"},
    )


def _service(settings: Settings) -> httpx.Client:
    return httpx.Client(
        base_url=settings.service.url,
        timeout=120,
        headers={"X-API-Key": settings.service.api_key or ""},
    )


def _ok(answer: httpx.Response) -> Any:
    if answer.status_code >= 300:
        raise AssertionError(f"{answer.request.method} {answer.request.url}: {answer.text}")
    return answer.json() if answer.content else None


def _read(settings: Settings, project_id: int, what: str, **params: Any) -> Any:
    """``GET /projects/{project_id}/{what}`` from the service, with the API key."""
    with _service(settings) as svc:
        return _ok(svc.get(f"/projects/{project_id}/{what}", params=params))


def _wait_for(predicate: Any, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


@pytest.fixture(scope="module")
def team(
    label_studio: Settings, service: Settings, tmp_path_factory: pytest.TempPathFactory
) -> TeamRun:
    """Three sessions, nine annotators and an expert, three per clip, through Label Studio."""
    settings = label_studio.model_copy(
        update={
            "label_studio": label_studio.label_studio.model_copy(
                update={
                    "project_title": f"Realistic team {uuid.uuid4().hex[:6]}",
                    "maximum_annotations": 4,
                }
            )
        }
    )
    client = connect(settings)
    project = ensure_project(client, settings, TAX)
    ensure_webhook(client, project.id, settings.webhook_url, settings.service.webhook_secret or "")
    batch = tmp_path_factory.mktemp("team-sessions")
    for k in range(3):
        write_session(batch / f"team-{k}", n_turns=48, rng=np.random.default_rng([SEED, k]))
    report = import_sessions(
        batch,
        media_root=settings.media_path,
        taxonomy=TAX,
        max_seconds=15,
        push=session_pusher(
            client,
            project.id,
            settings.media_path,
            keep_intended=service_keeper(
                ServiceClient(service.service.url, service.service.api_key)
            ),
        ),
    )
    assert report.failed == {}, report.failed
    intended = {
        f"team-{k}": {i.turn: i.emotion for i in load_session(batch / f"team-{k}").intended}
        for k in range(3)
    }
    tasks = sorted(iter_tasks(client, project.id), key=lambda t: t.id)
    assert len(tasks) >= 12, f"expected at least 12 clips, got {len(tasks)}"

    squad = realistic_team(TAX, n=9, overlap=3, seed=SEED)
    people = [*squad.members, squad.expert]
    tag = uuid.uuid4().hex[:6]
    users: dict[str, dict[str, Any]] = {}
    with _ls(settings) as ls:
        for k, who in enumerate(people):
            made = _ok(
                ls.post(
                    "/api/users",
                    json={
                        "email": f"{who.name}-{tag}@team.example.org",
                        "username": f"{who.name}-{tag}",
                        "first_name": FIRST[k % len(FIRST)],
                        "last_name": LAST[k % len(LAST)] if who is not squad.expert else "",
                    },
                )
            )
            users[who.name] = made
        assert len({u["id"] for u in users.values()}) == len(people)

        clips = [(t.data["dialogue"], intended[t.data["session_id"]]) for t in tasks]
        plan = plan_team(squad, clips, TAX, seed=SEED)
        made_ids: list[int] = []
        for p in plan:
            task = tasks[p.clip]
            result = encode_annotation(task.data["dialogue"], p.values, TAX, list(p.shifts))
            answer = _ok(
                ls.post(
                    f"/api/tasks/{task.id}/annotations",
                    json={
                        "result": result,
                        "completed_by": users[p.annotator]["id"],
                        "ground_truth": p.gold,
                        "lead_time": 30.0,
                    },
                )
            )
            assert answer["completed_by"] == users[p.annotator]["id"]
            made_ids.append(int(answer["id"]))
        for p, annotation_id in zip(plan, made_ids, strict=True):
            if p.edited is not None and not p.deleted:
                dialogue = tasks[p.clip].data["dialogue"]
                result = encode_annotation(dialogue, p.edited, TAX, list(p.shifts))
                _ok(ls.patch(f"/api/annotations/{annotation_id}", json={"result": result}))
        for p, annotation_id in zip(plan, made_ids, strict=True):
            if p.deleted:
                _ok(ls.delete(f"/api/annotations/{annotation_id}"))
        exported = _ok(ls.get(f"/api/projects/{project.id}/export", params={"exportType": "JSON"}))
    export_file = batch / "label-studio-export.json"
    export_file.write_text(json.dumps(exported), encoding="utf-8")
    run = TeamRun(
        project.id,
        users,
        exported,
        export_file,
        edited=sum(p.edited is not None and not p.deleted for p in plan),
        deleted=sum(p.deleted for p in plan),
        recount=recount(exported),
        intended=intended,
    )
    expected = sum(len(by) for by in run.recount["emotion"].values())
    with _service(settings) as svc:

        def arrived() -> bool:
            answer = svc.get(
                f"/projects/{project.id}/judgements", params={"dimension": "emotion", "limit": 1}
            )
            return answer.status_code == 200 and answer.json()["count"] == expected

        _wait_for(arrived)
        # a full pull records what webhooks missed (deletions too) and the members' names
        _ok(svc.post(f"/projects/{project.id}/reconcile", params={"full": "true"}))
        assert arrived(), "the service's emotion judgements differ from Label Studio's export"
    return run


def test_the_team_is_realistic(team: TeamRun) -> None:
    """What the test stands on: a pool of 9 + an expert, overlap 3, partial, edited, deleted."""
    per_task = [
        len({a["completed_by"] for a in t["annotations"] if not a.get("ground_truth")})
        for t in team.exported
    ]
    assert max(per_task) == 3 and len(team.users) == 10
    assert team.edited >= 1 and team.deleted >= 1
    assert any(a.get("ground_truth") for t in team.exported for a in t["annotations"])
    # partial labels: annotations that leave turns or dimensions empty, single-rated turns
    full = [
        len(t["data"]["dialogue"]) * len(TAX.dimensions)
        for t in team.exported
        for a in t["annotations"]
    ]
    given = [
        sum(1 for r in a["result"] if r.get("from_name") in team.recount)
        for t in team.exported
        for a in t["annotations"]
    ]
    assert sum(g < f for g, f in zip(given, full, strict=True)) > len(full) // 2
    singles = sum(1 for by in team.recount["emotion"].values() if len(by) == 1)
    assert singles > 0
    per_turn = [len(by) for d in team.recount.values() for by in d.values()]
    assert min(per_turn) >= 1 and max(per_turn) <= 4


@pytest.mark.parametrize("dimension", [d.name for d in TAX.dimensions])
def test_service_figures_equal_the_recount(
    team: TeamRun, service: Settings, dimension: str
) -> None:
    dim = TAX.dimension(dimension)
    units = team.recount[dimension]
    data, names = matrix(units, dim)
    expected = alpha(data, dim.level)
    live = _read(service, team.project_id, "agreement", dimension=dimension)
    summary = _read(service, team.project_id, "agreement/summary", dimension=dimension)
    per = _read(service, team.project_id, "agreement/by/annotator", dimension=dimension)
    pairwise = _read(service, team.project_id, "agreement/pairwise", dimension=dimension)
    assert live["judgements"] == int((~np.isnan(data)).sum())
    assert live["units"] == len(units)
    assert live["annotators"] == len(names)
    assert same(live["alpha"], expected), (live["alpha"], expected)
    assert same(summary["alpha"], expected), (summary["alpha"], expected)
    # per annotator: judgements, and alpha with them left out
    rows = {r["key"]: r for r in per["data"]}
    assert set(rows) == set(names)
    for i, name in enumerate(names):
        assert rows[name]["judgements"] == int((~np.isnan(data[i])).sum()), name
        without = alpha(np.delete(data, i, axis=0), dim.level)
        assert same(rows[name]["alpha_without"], without), (name, rows[name], without)
    # per annotator against the expert's gold annotations, on the turns both labelled
    expert = str(team.users["expert"]["id"])
    gold = names.index(expert)
    for i, name in enumerate(names):
        both = ~np.isnan(data[i]) & ~np.isnan(data[gold])
        if i == gold or not both.any():
            assert rows[name].get("alpha_vs_gold") is None, name
            continue
        want = alpha(data[[i, gold]][:, both], dim.level)
        assert same(rows[name]["alpha_vs_gold"], want), (name, rows[name], want)
    # the pairwise matrix, in the service's order, cell by cell
    values, _ = pairs(data, dim.level)
    order = [names.index(a) for a in pairwise["annotators"]]
    assert sorted(pairwise["annotators"]) == names
    for r, i in enumerate(order):
        for c, j in enumerate(order):
            if i == j:
                continue
            got = pairwise["alpha"][r][c]
            want = values[i, j]
            if np.isfinite(want):
                assert got == pytest.approx(want, abs=1e-9), (names[i], names[j])
            else:
                assert got is None, (names[i], names[j])


@pytest.mark.parametrize("dimension", ["emotion", "valence"])
def test_pairwise_figures_carry_unit_counts_and_weighted_means(
    team: TeamRun, service: Settings, dimension: str
) -> None:
    dim = TAX.dimension(dimension)
    data, names = matrix(team.recount[dimension], dim)
    values, units = pairs(data, dim.level)
    pairwise = _read(service, team.project_id, "agreement/pairwise", dimension=dimension)
    per = _read(service, team.project_id, "agreement/by/annotator", dimension=dimension)
    order = [names.index(a) for a in pairwise["annotators"]]
    assert pairwise["units"] == units[np.ix_(order, order)].tolist()
    upper = np.triu(np.ones_like(units, dtype=bool), k=1)
    want = weighted_mean(np.where(upper, values, np.nan), np.where(upper, units, 0))
    assert same(pairwise["mean"], want), (pairwise["mean"], want)
    for row in per["data"]:
        i = names.index(row["key"])
        others = np.arange(len(names)) != i
        want = weighted_mean(values[i, others], units[i, others])
        assert same(row["alpha_pairwise_mean"], want), (row, want)


def test_the_recounts_icc_reproduces_shrout_and_fleiss() -> None:
    """The oracle itself, on the published table (Shrout & Fleiss 1979, Table 2: 6 targets,
    4 judges; ICC(1,1) = 0.17, ICC(1,4) = 0.44)."""
    ratings = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
    single, average, n, k0 = icc_oneway(np.array(ratings, dtype=float).T)
    assert (round(single, 2), round(average, 2), n, k0) == (0.17, 0.44, 6, 4.0)


@pytest.mark.parametrize("dimension", ["valence", "arousal", "dominance"])
def test_pooled_design_gets_the_one_way_icc(
    team: TeamRun, service: Settings, dimension: str
) -> None:
    data, _ = matrix(team.recount[dimension], TAX.dimension(dimension))
    single, average, n, _ = icc_oneway(data)
    summary = _read(service, team.project_id, "agreement/summary", dimension=dimension)
    icc = summary["icc"]
    assert (icc["design"], icc["form"], icc["units"]) == ("incomplete", "ICC1", n)
    assert icc["single"]["icc"] == pytest.approx(single, abs=1e-9)
    assert icc["average"]["icc"] == pytest.approx(average, abs=1e-9)


@pytest.mark.parametrize("dimension", ["emotion", "valence"])
def test_summary_says_what_it_counts(team: TeamRun, service: Settings, dimension: str) -> None:
    data, names = matrix(team.recount[dimension], TAX.dimension(dimension))
    summary = _read(service, team.project_id, "agreement/summary", dimension=dimension)
    assert (summary["units"], summary["annotators"]) == (data.shape[1], len(names))


@pytest.mark.parametrize("dimension", ["emotion", "intensity", "valence"])
def test_cli_figures_equal_the_recount(
    team: TeamRun, service: Settings, stack_config: Path, dimension: str
) -> None:
    dim = TAX.dimension(dimension)
    data, names = matrix(team.recount[dimension], dim)
    done = _cli(
        stack_config,
        "agreement",
        "--project",
        str(team.project_id),
        "--dimension",
        dimension,
        "--json",
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert same(figures["alpha"], alpha(data, dim.level))
    assert figures["judgements"] == int((~np.isnan(data)).sum())
    assert figures["units"] == len(team.recount[dimension])
    assert figures["annotators"] == len(names)
    counts = {r["annotator"]: r["judgements"] for r in figures["by_annotator"]}
    assert counts == {a: int((~np.isnan(data[i])).sum()) for i, a in enumerate(names)}


def _card_alphas(readme: str) -> dict[str, str]:
    table = readme[readme.index("| dimension | level | alpha |") :]
    found = re.findall(
        r"^\| (\w+) \| (nominal|ordinal|interval|ratio) \| ([-0-9.n/a]+) \|", table, flags=re.M
    )
    return {name: value for name, _level, value in found}


def _check_export(folder: Path, team: TeamRun, by: dict[str, str] | None = None) -> None:
    """Rows and card of an export against the recount; ``by`` maps the export's annotator
    names to Label Studio ids (pseudonyms), None when the export used real ids."""
    rows = [json.loads(line) for line in (folder / "turns.jsonl").read_text().splitlines()]
    turns = sum(len(t["data"]["dialogue"]) for t in team.exported)
    assert len(rows) == turns
    for row in rows:
        turn = row["turn_id"]
        labels = {(by[a] if by else a): v for a, v in row["labels"].items()}
        want: dict[str, dict[str, str | int]] = defaultdict(dict)
        for d, units in team.recount.items():
            for a, v in units.get(turn, {}).items():  # ratings are integers in rows
                want[a][d] = v if TAX.dimension(d).kind == "choice" else int(v)
        assert labels == dict(want), turn
        emotion = team.recount["emotion"].get(turn, {})
        assert row["n_annotators"] == len(emotion), turn
        for d, units in team.recount.items():
            values = list(units.get(turn, {}).values())
            if TAX.dimension(d).kind != "choice":  # ratings are integers in rows
                values = [int(v) for v in values]
            entry = row["aggregates"][d]
            assert entry["n"] == len(values), (turn, d)
            if values:
                assert (entry["majority"], entry["tied"]) == majority(values), (turn, d)
            if d == "emotion":
                soft = {k: v for k, v in entry["soft"].items() if v}
                want_soft = {k: n / len(values) for k, n in Counter(values).items()}
                assert soft == pytest.approx(want_soft), turn
    _check_card_performers((folder / "README.md").read_text(), team)
    card = _card_alphas((folder / "README.md").read_text())
    for dim in TAX.dimensions:
        data, _ = matrix(team.recount[dim.name], dim)
        want = alpha(data, dim.level)
        assert card[dim.name] == ("n/a" if want is None else f"{want:.3f}"), dim.name


def test_both_exports_equal_the_recount_and_keep_stable_pseudonyms(
    team: TeamRun, service: Settings, stack_config: Path, tmp_path: Path
) -> None:
    live = tmp_path / "live"
    done = _cli(
        stack_config,
        "export",
        "--project",
        str(team.project_id),
        "--out",
        str(live),
        "--real-ids",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    _check_export(live, team)
    # pseudonyms: the same in two runs and in both export paths, one per Label Studio user
    seen = []
    for k, extra in enumerate(
        (
            ("--project", str(team.project_id)),
            ("--project", str(team.project_id)),
            ("--from-label-studio", str(team.export_file)),
        )
    ):
        out = tmp_path / f"pseudo-{k}"
        done = _cli(stack_config, "export", *extra, "--out", str(out))
        assert done.returncode == 0, done.stdout + done.stderr
        seen.append(_pseudonym_map(out, live))
    assert seen[0] == seen[1] == seen[2]
    ids = {str(u["id"]) for u in team.users.values()}
    assert set(seen[0].values()) <= ids and len(set(seen[0])) == len(seen[0])
    _check_export(tmp_path / "pseudo-2", team, by=seen[2])


def _pseudonym_map(folder: Path, real: Path) -> dict[str, str]:
    """Pseudonym -> Label Studio id: the one id whose labels match the pseudonym's on every
    row of the export that used real ids (two annotators rarely agree on every turn)."""

    def read(f: Path) -> list[dict[str, Any]]:
        return [json.loads(x) for x in (f / "turns.jsonl").read_text().splitlines()]

    candidates: dict[str, set[str]] = {}
    for pseudo, named in zip(read(folder), read(real), strict=True):
        for p, v in pseudo["labels"].items():
            fits = {a for a, w in named["labels"].items() if w == v}
            candidates[p] = candidates.get(p, fits) & fits
    assert all(len(c) == 1 for c in candidates.values()), candidates
    return {p: next(iter(c)) for p, c in candidates.items()}


def _expected_name(user: dict[str, Any]) -> str:
    name = " ".join(p for p in (user["first_name"], user["last_name"]) if p)
    return f"{name} <{user['email']}>" if name else user["email"]


def _dashboard_names(settings: Settings, project_id: int) -> tuple[list[str], str]:
    """The annotator names on the dashboard's pairwise heatmap, and the page itself."""
    with _service(settings) as svc:
        page = svc.get(f"/dashboard/{project_id}")
    assert page.status_code == 200, page.text[:300]
    found = re.search(
        r'<script type="application/json" id="dashboard-data">(.*?)</script>', page.text, re.S
    )
    assert found, "the dashboard holds no data element"
    data = json.loads(found.group(1))
    axis = data["figures"]["pairwise"]["data"][0]["x"]
    return [html.unescape(a) for a in axis], page.text


def test_api_cli_and_dashboard_show_one_name_per_annotator(
    team: TeamRun, service: Settings, stack_config: Path
) -> None:
    by_id = {str(u["id"]): _expected_name(u) for u in team.users.values()}
    with _service(service) as svc:
        listed = _ok(svc.get(f"/projects/{team.project_id}/members"))
        per = _ok(svc.get(f"/projects/{team.project_id}/agreement/by/annotator"))
        pairwise = _ok(svc.get(f"/projects/{team.project_id}/agreement/pairwise"))
        activity = _ok(svc.get(f"/projects/{team.project_id}/annotators"))
    api = {m["annotator"]: m["name"] for m in listed["data"]}
    annotated = {str(a["completed_by"]) for t in team.exported for a in t["annotations"]}
    assert api == {a: by_id[a] for a in annotated}
    assert {r["key"]: r["name"] for r in per["data"]} == {
        r["key"]: api[r["key"]] for r in per["data"]
    }
    assert pairwise["names"] == [api[a] for a in pairwise["annotators"]]
    assert {r["annotator"]: r["name"] for r in activity["data"]} == {
        r["annotator"]: api[r["annotator"]] for r in activity["data"]
    }
    done = _cli(stack_config, "agreement", "--project", str(team.project_id), "--json")
    assert done.returncode == 0, done.stderr
    cli = {r["annotator"]: r["name"] for r in json.loads(done.stdout)["by_annotator"]}
    assert cli == {a: api[a] for a in cli} and len(cli) == len(per["data"])
    done = _cli(stack_config, "agreement", "--project", str(team.project_id))
    assert done.returncode == 0, done.stderr
    table = " ".join(done.stdout.split())
    for name in cli.values():
        assert " ".join(name.split()) in table, name
    axis, page = _dashboard_names(service, team.project_id)
    assert axis == [api[a] for a in pairwise["annotators"]]
    # names are text from people: escaped on the page, never markup
    assert "<b>&amp;</b>" not in page and "<b>" not in page.split("dashboard-data")[1]


def test_a_member_renamed_like_another_stays_a_person_of_their_own(
    team: TeamRun, label_studio: Settings, service: Settings
) -> None:
    """The id is the key: a member who takes another's name (even the e-mail as a name) is
    shown apart from them, with the same figures as before."""
    victim, mimic = team.users["ann-01"], team.users["ann-02"]
    with _service(service) as svc:
        before = _ok(svc.get(f"/projects/{team.project_id}/agreement/by/annotator"))
    with _ls(label_studio) as ls:
        _ok(
            ls.patch(
                f"/api/users/{mimic['id']}",
                json={"first_name": victim["first_name"], "last_name": victim["last_name"]},
            )
        )
        try:
            with _service(service) as svc:
                _ok(svc.post(f"/projects/{team.project_id}/reconcile"))
                after = _ok(svc.get(f"/projects/{team.project_id}/agreement/by/annotator"))
                listed = _ok(svc.get(f"/projects/{team.project_id}/members"))
        finally:
            _ok(
                ls.patch(
                    f"/api/users/{mimic['id']}",
                    json={"first_name": mimic["first_name"], "last_name": mimic["last_name"]},
                )
            )
            with _service(service) as svc:
                _ok(svc.post(f"/projects/{team.project_id}/reconcile"))
    names = {m["annotator"]: m["name"] for m in listed["data"]}
    assert len(set(names.values())) == len(names)
    assert names[str(mimic["id"])].startswith(victim["first_name"])
    assert names[str(mimic["id"])] != names[str(victim["id"])]
    strip = lambda rows: {r["key"]: {k: v for k, v in r.items() if k != "name"} for r in rows}  # noqa: E731
    assert strip(after["data"]) == strip(before["data"])


def _check_performers(got: dict[str, Any], team: TeamRun) -> None:
    """A performers' scorecard (the service's JSON) against the recount by hand."""
    want = performers(team.exported, team.intended)
    assert {p["performer"] for p in got["performers"]} == set(want)
    for p in got["performers"]:
        mine = want[p["performer"]]
        rows = {r["intended"]: r for r in p["by_intended"]}
        assert set(rows) == set(mine["by_intended"]), p["performer"]
        for aim, (hits, judgements, turns, perceived, rated) in mine["by_intended"].items():
            row = rows[aim]
            assert (row["hits"], row["judgements"], row["turns"]) == (hits, judgements, turns)
            assert row["perceived"] == dict(perceived), (p["performer"], aim)
            if judgements:
                assert row["rate"] == pytest.approx(hits / judgements)
                if turns > 1:
                    assert row["ci_low"] <= row["rate"] <= row["ci_high"]
            assert row["authenticity"]["n"] == len(rated)
            if rated:
                assert row["authenticity"]["mean"] == pytest.approx(np.mean(rated))
                assert row["authenticity"]["median"] == pytest.approx(np.median(rated))
        shifts = p["shifts"]
        assert [
            shifts["intended"],
            shifts["views"],
            shifts["marked"],
            shifts["marked_by_anyone"],
        ] == mine["shifts"], p["performer"]


def test_performer_scorecard_equals_the_recount(
    team: TeamRun, service: Settings, stack_config: Path
) -> None:
    got = _read(service, team.project_id, "scorecards/performers")
    assert got["intended_turns"] == sum(len(v) for v in team.intended.values())
    _check_performers(got, team)
    # the scenes intended shifts, and annotators marked some of them
    assert sum(p["shifts"]["intended"] for p in got["performers"]) > 0
    assert sum(p["shifts"]["marked"] for p in got["performers"]) > 0
    # the CLI prints the same figures: JSON as the service gives it, CSV row by row
    done = _cli(stack_config, "scorecard", "performers", "-p", str(team.project_id), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    _check_performers(json.loads(done.stdout), team)
    done = _cli(stack_config, "scorecard", "performers", "-p", str(team.project_id), "--csv")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    want = performers(team.exported, team.intended)
    for row in rows:
        if not row["intended"]:
            continue
        hits, judgements, *_ = want[row["performer"]]["by_intended"][row["intended"]]
        assert (int(row["hits"]), int(row["judgements"])) == (hits, judgements), row
    assert len([r for r in rows if r["intended"]]) == sum(
        len(p["by_intended"]) for p in want.values()
    )
    # intended emotions stay out of Label Studio: nothing of them in its own export
    assert '"intended"' not in json.dumps(team.exported)


def _check_card_performers(readme: str, team: TeamRun) -> None:
    """The card's performers tables against the recount by hand."""
    section = readme[readme.index("## Performers") :]
    section = section[: section.index("\n## ", 5)] if "\n## " in section[5:] else section
    want = performers(team.exported, team.intended)
    found = re.findall(
        r"^\| (\S+) \| (\S+) \| (\d+) \| (\d+) \| ([-0-9.n/a]+) \|", section, flags=re.M
    )
    expected = {
        (performer, aim): (turns, judgements, f"{hits / judgements:.3f}" if judgements else "n/a")
        for performer, mine in want.items()
        for aim, (hits, judgements, turns, _, _) in mine["by_intended"].items()
    }
    assert {(a, b): (int(c), int(d), e) for a, b, c, d, e in found} == expected
    shifts = re.findall(
        r"^\| (\S+) \| (\d+) \| (\d+) / (\d+) \| [-0-9.n/a]+ \| (\d+) \|", section, flags=re.M
    )
    assert {a: [int(b), int(d), int(c), int(e)] for a, b, c, d, e in shifts} == {
        performer: mine["shifts"] for performer, mine in want.items()
    }


def _same_alpha(got: float | None, want: float | None) -> bool:
    return (got is None and want is None) or (
        got is not None and want is not None and abs(got - want) < 1e-9
    )


def test_annotator_scorecard_equals_the_recount(
    team: TeamRun, service: Settings, stack_config: Path
) -> None:
    got = _read(service, team.project_id, "scorecards/annotators")
    want = annotator_scores(team.exported)
    rows = {a["annotator"]: a for a in got["annotators"]}
    assert set(rows) == set(want)
    for who, mine in want.items():
        for key in ("with_rest", "vs_gold"):
            value, units, share, ties = mine[key]
            figure = rows[who][key]
            assert figure["units"] == units, (who, key)
            assert _same_alpha(figure["alpha"], value), (who, key, figure, value)
            if units:
                assert figure["agreement"] == pytest.approx(share), (who, key)
                assert figure["ties"] == ties, (who, key)
                if figure["ci_low"] is not None:
                    assert figure["ci_low"] <= figure["alpha"] <= figure["ci_high"]
        assert rows[who]["self"]["alpha"] is None and rows[who]["self"]["reason"]
    # the careless member is the one furthest from gold, and the names are Label Studio's
    careless = str(team.users["ann-09"]["id"])
    scored = {w: r["vs_gold"]["agreement"] for w, r in rows.items() if r["vs_gold"]["units"] >= 5}
    assert careless in scored and min(scored, key=scored.__getitem__) == careless
    assert rows[careless]["name"] != careless
    done = _cli(stack_config, "scorecard", "annotators", "-p", str(team.project_id), "--csv")
    assert done.returncode == 0, done.stdout + done.stderr
    printed = {r["annotator"]: r for r in csv.DictReader(io.StringIO(done.stdout))}
    assert set(printed) == set(want)
    for who, mine in want.items():
        assert int(printed[who]["units_with_rest"]) == mine["with_rest"][1]
        assert int(printed[who]["units_vs_gold"]) == mine["vs_gold"][1]
