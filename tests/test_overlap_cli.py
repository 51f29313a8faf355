"""``improv-annotate overlap plan`` through the real command line, expected plans counted here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).with_name("improv-annotate")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed command with this checkout first on the import path."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    env = {k: v for k, v in env.items() if not k.startswith("IMPROV_ANNOTATE_")}
    return subprocess.run(
        [str(CLI), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def expected_plan(rows: list[tuple[str, str, str]], lo: int, hi: int, lead: int) -> tuple:
    """Units needing one more annotator and the settled count, by plain counting."""
    current: dict[str, dict[str, str]] = {}
    for unit, annotator, value in rows:
        votes = current.setdefault(unit, {})
        if value:
            votes[annotator] = value
        else:
            votes.pop(annotator, None)
    need, settled = [], 0
    for unit, votes in current.items():
        counts = [*sorted(Counter(votes.values()).values(), reverse=True), 0, 0]
        n = len(votes)
        if n >= lo and (counts[0] - counts[1] >= lead or n >= hi):
            settled += 1
        else:
            need.append(unit)
    return need, settled


@pytest.fixture
def votes(tmp_path: Path) -> list[tuple[str, str, str]]:
    rng = np.random.default_rng(1616)
    rows = []
    for u in range(120):
        for a in rng.choice(7, size=int(rng.integers(1, 6)), replace=False):
            value = str(rng.choice(["joy", "fear", "anger", ""], p=[0.55, 0.25, 0.15, 0.05]))
            rows.append((f"clip-{u:03d}", f"ann{a}", value))
    rows += [("clip-000", "ann9", "joy"), ("clip-000", "ann9", "fear")]  # a re-vote
    order = rng.permutation(len(rows))  # arrival order interleaves units
    rows = [rows[i] for i in order]
    (tmp_path / "votes.csv").write_text(
        "unit,annotator,value\n" + "".join(f"{u},{a},{v}\n" for u, a, v in rows)
    )
    return rows


def test_plan_json_follows_config_and_flags(tmp_path: Path, votes) -> None:
    (tmp_path / "config.yaml").write_text(
        "overlap:\n  min_annotators: 2\n  max_annotators: 4\n  lead: 3\n"
    )
    done = run("overlap", "plan", "votes.csv", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    need, settled = expected_plan(votes, 2, 4, 3)
    out = json.loads(done.stdout)
    assert set(out) == {"need_more", "settled", "policy"}
    assert out["need_more"] == need and out["settled"] == settled
    assert out["policy"]["lead"] == 3 and out["policy"]["max_annotators"] == 4
    assert 0 < len(need) < 120
    empties = sum(1 for *_, v in votes if not v)
    assert f"{empties} rows with an empty value" in done.stderr

    done = run("overlap", "plan", "votes.csv", "--json", "--lead", "2", "--max", "3", cwd=tmp_path)
    need, settled = expected_plan(votes, 2, 3, 2)
    assert json.loads(done.stdout)["need_more"] == need
    assert json.loads(done.stdout)["settled"] == settled


def test_plan_table_lists_units_needing_more(tmp_path: Path, votes) -> None:
    done = run("overlap", "plan", "votes.csv", "--min", "3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    need, settled = expected_plan(votes, 3, 5, 2)
    listed = [line.split()[1] for line in done.stdout.splitlines() if "clip-" in line]
    assert listed == need
    assert f"{len(need)} need one more annotator; {settled} settled" in done.stdout


def test_bad_rows_are_all_named(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text(
        "annotator,value,unit,note\n"
        "a,joy,u1,x\n"
        "b,joy,u1,\n"
        ",joy,u2,\n"  # line 4: no annotator
        "a,fear\n"  # line 5: no unit
        "c,joy,,\n"  # line 6: empty unit
        "a,joy,u2,\n"
    )
    done = run("overlap", "plan", "bad.csv", "--json", cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert "bad.csv:4: field annotator is empty" in done.stderr
    assert "bad.csv:5: 2 fields, no unit" in done.stderr
    assert "bad.csv:6: field unit is empty" in done.stderr
    assert "3 bad rows, 3 good" in done.stderr

    done = run("overlap", "plan", "bad.csv", "--json", "--skip-bad", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["need_more"] == ["u2"]  # u1 settled 2-0, u2 has 1 vote
    assert json.loads(done.stdout)["settled"] == 1
    assert done.stderr.count("bad.csv:") == 3

    (tmp_path / "noheader.csv").write_text("u1,a,joy\n")
    done = run("overlap", "plan", "noheader.csv", cwd=tmp_path)
    assert done.returncode == 1 and "noheader.csv:1: header lacks columns" in done.stderr
    done = run("overlap", "plan", "votes.csv", "--rule", "vote", cwd=tmp_path)
    assert done.returncode == 1 and "unknown overlap rule 'vote'" in done.stderr
