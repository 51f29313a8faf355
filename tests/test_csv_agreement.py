"""``improv-annotate agreement FILE.csv``: every coefficient of a long-format CSV."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from annotate.csv_agreement import CsvError, coefficients, read_long_csv
from tests.conftest import ROOT

# Krippendorff (2011): 4 coders x 12 units; None = missing (written as an empty cell)
K2011 = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
}


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def k2011(tmp_path: Path) -> Path:
    lines = ["unit,annotator,value,comment"]
    for coder, values in K2011.items():
        for i, v in enumerate(values):
            lines.append(f"u{i},{coder},{'' if v is None else v},x")
    return _write(tmp_path / "k2011.csv", "\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("level", "expected"),
    [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)],
)
def test_reproduces_krippendorff_2011(k2011: Path, level: str, expected: float) -> None:
    data = read_long_csv(k2011, level)
    assert data.empty == 7  # the dots of the published table, counted not dropped
    figures = coefficients(data, level)
    assert round(figures["krippendorff_alpha"], 3) == expected
    assert (figures["units"], figures["annotators"], figures["judgements"]) == (12, 4, 41)


def test_applicable_coefficients_per_level(k2011: Path) -> None:
    nominal = coefficients(read_long_csv(k2011, "nominal"), "nominal")
    # Gwet (2014) uses this very table: AC1 = 0.7754
    assert round(nominal["gwet_ac1"], 4) == 0.7754
    assert nominal["fleiss_kappa"] is None  # units have 1 to 4 raters: not defined
    assert "icc_icc2" not in nominal
    interval = coefficients(read_long_csv(k2011, "interval"), "interval")
    assert interval["complete_units"] == 8
    assert interval["icc_icc2"] is not None and interval["lin_ccc_pairwise_mean"] is not None
    assert "gwet_ac1" not in interval


@pytest.mark.parametrize(
    ("text", "level", "message"),
    [
        ("unit,coder,value\nu1,a,1\n", "nominal", r":1: header lacks columns \['annotator'\]"),
        ("unit,annotator,value\nu1,a,1\nu1,b\n", "nominal", r":3: 2 fields, expected 3"),
        ("unit,annotator,value\nu1,a,1\nu2,,1\n", "nominal", ":3: empty unit or annotator"),
        (
            "unit,annotator,value\nu1,a,1\nu1,b,high\n",
            "interval",
            ":3: value 'high' is not a number; expected one for level interval",
        ),
        (
            "unit,annotator,value\nu1,a,1\n\nu1,a,2\n",
            "nominal",
            r":4: annotator 'a' rated unit 'u1' again \('2'; line 2 has '1'\)",
        ),
        ("unit,annotator,value\n", "nominal", "no judgements"),
        ("unit,annotator,value\nu1,a,1\n", "fuzzy", "unknown level 'fuzzy'"),
    ],
)
def test_malformed_rows_name_the_line(tmp_path: Path, text: str, level: str, message: str) -> None:
    path = _write(tmp_path / "bad.csv", text)
    with pytest.raises(CsvError, match=message):
        read_long_csv(path, level)


def test_cli_json_and_exit_codes(k2011: Path, tmp_path: Path) -> None:
    run = [sys.executable, "-m", "annotate.cli", "agreement"]
    done = subprocess.run(
        [*run, str(k2011), "--level", "ordinal", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert round(figures["krippendorff_alpha"], 3) == 0.815
    bad = _write(tmp_path / "bad.csv", "unit,annotator,value\nu1,a,x\n")
    done = subprocess.run(
        [*run, str(bad), "--level", "ratio"], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 1
    assert "bad.csv:2: value 'x' is not a number" in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr
