"""The QA loop end to end on a real Label Studio: adaptive overlap live, against Label
Studio's own fixed overlap, in one run.

What it measures
----------------
A real Label Studio and the real service (its applier process, SQLite store) with
``overlap.enabled`` (lead 2, 2 to 9 annotators, a quarter of a clip's turns may stay open:
the setting of BENCHMARKS.md section 17) and adjudication. The clips of ``bench/team.py``
are imported as tasks; nine annotator accounts (signed up with the invite link) work
through Label Studio's own stream (``GET /api/projects/{id}/next`` with their own tokens),
round-robin, each posting the labels the realistic simulated team member
(:mod:`annotate.simulate`) gives that clip, until Label Studio serves nobody anything.
Every member's labels of every clip are drawn first, so the full panel of nine is known.

Reported:

- annotations per clip live (counted in Label Studio), and per turn the share whose
  majority (ties broken by a seeded draw) equals the full panel's majority of nine (turns
  where the nine tie are left out), beside Label Studio's fixed overlap of 2 to 5 on the
  same clips and the same arrival order (the first k annotations each clip got in the
  stream, then the members it did not reach, in the stream's order);
- whether the live decisions equal the offline policy (:func:`annotate.overlap
  .decide_clips`) replayed on the annotations each clip got, in the order they got them;
- the loop's latency: from an annotation saved to Label Studio holding the service's
  decision for its task (the task's ``overlap`` read back), median and 95th percentile;
- the clips ``improv-annotate adjudicate`` then sends (below alpha 0.667, or exhausted).

Usage::

    .venv/bin/python bench/qa_loop.py                # 3 sessions x 48 turns (18 clips)
    .venv/bin/python bench/qa_loop.py --sessions 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from annotate import stack  # noqa: E402
from annotate.config import load_settings, with_local_secrets  # noqa: E402
from annotate.labelstudio import (  # noqa: E402
    connect,
    ensure_account,
    ensure_project,
    ensure_webhook,
    invite_link,
)
from annotate.overlap import OverlapPolicy, decide_clips  # noqa: E402
from bench.overlap_team import labels_of, majority  # noqa: E402
from bench.team import TAX  # noqa: E402
from schemas.codec import encode_annotation  # noqa: E402
from tests.conftest import write_config  # noqa: E402

KEY = "qa-loop-key"
SECRET = "qa-loop-secret"
PASSWORD = "a-long-qa-loop-password-1"
FIXED = (2, 3, 4, 5)
POLICY = {"min_annotators": 2, "max_annotators": 9, "lead": 2, "unsettled_share": 0.25}


def panel(seed: int, sessions: int, turns: int) -> tuple[list, list]:
    """The clips (dialogue lines) and every member's emotion labels of each."""
    from annotate.simulate import label_clip, realistic_team
    from bench.team import make_clips

    rng = np.random.default_rng([seed, 77])
    clips = make_clips(sessions, turns, rng)
    team = realistic_team(TAX, n=9, seed=seed, part_timer=False)
    labels = []
    for c, (lines, arc) in enumerate(clips):
        got = {}
        for who in team.members:
            values, _ = label_clip(who, lines, arc, TAX, rng, position=c)
            got[who.name] = {i: v["emotion"] for i, v in values.items() if "emotion" in v}
        labels.append(got)
    return [lines for lines, _ in clips], labels


def main(argv: list[str] | None = None) -> int:
    """Run the loop once and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=3)
    parser.add_argument("--turns", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    clips, labels = panel(args.seed, args.sessions, args.turns)
    with tempfile.TemporaryDirectory() as scratch:
        config = write_config(
            Path(scratch),
            label_studio={"project_title": f"QA loop {uuid.uuid4().hex[:6]}"},
            service={"webhook_secret": SECRET, "api_key": KEY, "reconcile_seconds": 0},
            overlap={"enabled": True, **POLICY},
        )
        settings = with_local_secrets(load_settings(config))
        started = time.perf_counter()
        stack.start_label_studio(settings, timeout=300)
        try:
            stack.start_service(settings, config)
            try:
                print(f"Label Studio and the service up in {time.perf_counter() - started:.0f} s")
                return run(settings, clips, labels)
            finally:
                stack.stop(settings, stack.SERVICE)
        finally:
            stack.stop(settings, stack.LABEL_STUDIO)


def run(settings: Any, clips: list, labels: list) -> int:
    """Import, label through the stream, measure."""
    url = settings.label_studio.url
    admin = {"Authorization": f"Token {settings.label_studio.token}"}
    client = connect(settings)
    project = ensure_project(client, settings, TAX)
    ensure_webhook(client, project.id, settings.webhook_url, SECRET)
    data = [
        {
            "dialogue": lines,
            "session_id": lines[0]["turn_id"].split("-")[0],
            "clip_id": f"clip-{c:03d}",
            "audio": "/data/local-files/?d=qa/x.wav",
            "audio_offset": 0.0,
            "title": f"Clip {c}",
            "prompt": "a scene",
            "context": "",
        }
        for c, lines in enumerate(clips)
    ]
    httpx.post(
        f"{url}/api/projects/{project.id}/import", json=[{"data": d} for d in data], headers=admin
    ).raise_for_status()
    tasks = httpx.get(
        f"{url}/api/tasks", params={"project": project.id, "page_size": 1000}, headers=admin
    ).json()["tasks"]
    clip_of = {t["id"]: int(t["data"]["clip_id"].split("-")[1]) for t in tasks}
    invite = invite_link(client, url)
    names = sorted(labels[0])
    people = {
        name: ensure_account(
            url, f"qa-{k}-{uuid.uuid4().hex[:4]}@example.org", PASSWORD, invite=invite
        )
        for k, name in enumerate(names)
    }
    svc = httpx.Client(base_url=settings.service.url, headers={"X-API-Key": KEY}, timeout=60)
    arrivals: dict[int, list[str]] = {c: [] for c in range(len(clips))}
    latency = []
    started = time.perf_counter()
    idle = 0
    while idle < len(names):
        idle = 0
        for name in names:
            who = people[name]
            got = httpx.get(
                f"{url}/api/projects/{project.id}/next",
                headers={"Authorization": f"Token {who.token}"},
                timeout=30,
            )
            if got.status_code == 404:
                idle += 1
                continue
            task = got.json()
            c = clip_of[task["id"]]
            values = {i: {"emotion": e} for i, e in labels[c][name].items()}
            httpx.post(
                f"{url}/api/tasks/{task['id']}/annotations",
                json={"result": encode_annotation(task["data"]["dialogue"], values, TAX)},
                headers={"Authorization": f"Token {who.token}"},
                timeout=30,
            ).raise_for_status()
            saved = time.perf_counter()
            arrivals[c].append(name)
            latency.append(wait_decided(svc, url, admin, project.id, task["id"]) - saved)
    loop_s = time.perf_counter() - started
    live_n = [len(arrivals[c]) for c in range(len(clips))]
    policy = OverlapPolicy(**POLICY)  # type: ignore[arg-type]
    replay = replay_counts(policy, clips, labels, arrivals)
    full = {
        (c, i): majority([labels[c][n][i] for n in names if i in labels[c][n]], None)
        for c in range(len(clips))
        for i in range(len(clips[c]))
    }
    rows = []
    for name, counts in (
        *((f"Label Studio, fixed overlap {k}", [k] * len(clips)) for k in FIXED),
        ("adaptive overlap, live", live_n),
        ("full panel (9)", [len(names)] * len(clips)),
    ):
        rng = np.random.default_rng(0)
        order = [
            arrivals[c] + [n for n in names if n not in arrivals[c]] for c in range(len(clips))
        ]
        same = []
        for c in range(len(clips)):
            got = labels_of([(n, labels[c][n]) for n in order[c][: counts[c]]], rng)
            same += [got.get(i) == full[c, i] for i in range(len(clips[c])) if full[c, i]]
        rows.append((name, float(np.mean(counts)), float(np.mean(same))))
    sent = svc.post(f"/projects/{project.id}/adjudication/send", params={"dry_run": True}).json()
    print(
        f"{len(clips)} clips of 8 turns, 9 annotators in Label Studio's stream, "
        f"{sum(live_n)} annotations in {loop_s:.0f} s"
    )
    print("| overlap | annotations per clip | = full panel's label | annotations vs fixed 5 |")
    print("|---|---:|---:|---:|")
    fixed5 = next(per_clip for name, per_clip, _ in rows if name.endswith("overlap 5"))
    for name, per_clip, same in rows:
        print(f"| {name} | {per_clip:.2f} | {same:.1%} | {per_clip / fixed5:.2f} |")
    print(
        f"live decisions equal the offline replay: {replay == live_n} "
        f"({sum(a == b for a, b in zip(replay, live_n, strict=True))}/{len(clips)} clips)"
    )
    lat = np.array(latency)
    print(
        f"annotation saved -> Label Studio holds the decision: median {np.median(lat):.2f} s, "
        f"p95 {np.percentile(lat, 95):.2f} s, max {lat.max():.2f} s ({len(lat)} annotations)"
    )
    print(
        f"adjudication queue: {sent['queued']} clips ({', '.join(c['clip'] for c in sent['due'])})"
    )
    return 0


def wait_decided(svc: httpx.Client, url: str, admin: dict, project_id: int, task_id: int) -> float:
    """When Label Studio holds the service's decision for ``task_id``, after its newest
    annotation (the service's row counts that many annotators and nothing is pending)."""
    annotations = httpx.get(f"{url}/api/tasks/{task_id}", headers=admin).json()["total_annotations"]
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline:
        got = svc.get(f"/projects/{project_id}/overlap").json()
        row = {t["task"]: t for t in got.get("tasks", [])}.get(task_id)
        if row and row["annotators"] >= annotations and not row.get("pending"):
            held = httpx.get(f"{url}/api/tasks/{task_id}", headers=admin).json()
            if held["overlap"] == row["target"]:
                return time.perf_counter()
        time.sleep(0.05)
    raise RuntimeError(f"task {task_id}: no decision in Label Studio after 60 s")


def replay_counts(
    policy: OverlapPolicy, clips: list, labels: list, arrivals: dict[int, list[str]]
) -> list[int]:
    """Annotations per clip under ``policy`` offline, given each clip's arrival order."""
    counts = []
    for c in range(len(clips)):
        n = min(policy.min_annotators, len(arrivals[c]))
        while n < len(arrivals[c]):
            records = [
                (c, i, who, "emotion", e)
                for who in arrivals[c][:n]
                for i, e in labels[c][who].items()
            ]
            if not decide_clips(policy, records)[c].need_more:
                break
            n += 1
        counts.append(n)
    return counts


if __name__ == "__main__":
    raise SystemExit(main())
