"""Every applicable agreement coefficient for a long-format CSV (unit, annotator, value).

So that a QA lead can check any data set, not only a project's: ``improv-annotate agreement
FILE.csv --level nominal``. Rows are read with the csv module; a malformed row stops the
run with an error naming the file, the line and what was expected; empty values are counted
as missing, never dropped silently.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from annotate import agreement as ag
from schemas.errors import AnnotateError

COLUMNS = ("unit", "annotator", "value")


class CsvError(AnnotateError, ValueError):
    """A CSV row does not fit the long format; names the file and line."""


@dataclass(slots=True)
class LongData:
    """Judgements read from a CSV, with what was skipped."""

    units: list[str] = field(default_factory=list)
    annotators: list[str] = field(default_factory=list)
    values: list[str] = field(default_factory=list)
    empty: int = 0


def read_long_csv(path: str | Path, level: str) -> LongData:
    """Read ``unit,annotator,value`` rows (header required; extra columns ignored)."""
    path = Path(path)
    if level not in ag.LEVELS:
        raise CsvError(f"unknown level {level!r}; expected one of {list(ag.LEVELS)}")
    data = LongData()
    seen: dict[tuple[str, str], tuple[int, str]] = {}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise CsvError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise CsvError(f"{path}: not valid UTF-8 text") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in next(reader, [])]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise CsvError(f"{path}:1: header lacks columns {missing}; expected {', '.join(COLUMNS)}")
    index = [header.index(c) for c in COLUMNS]
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise CsvError(f"{path}:{line}: {len(row)} fields, expected {len(header)} ({header})")
        unit, annotator, value = (row[i].strip() for i in index)
        if not unit or not annotator:
            raise CsvError(f"{path}:{line}: empty unit or annotator; expected both")
        if not value:
            data.empty += 1
            continue
        if level != "nominal":
            try:
                number = float(value)
            except ValueError:
                raise CsvError(
                    f"{path}:{line}: value {value!r} is not a number; expected one for "
                    f"level {level}"
                ) from None
            if not math.isfinite(number):
                raise CsvError(f"{path}:{line}: value {value!r} is not a finite number")
        key = (unit, annotator)
        if key in seen and seen[key][1] != value:
            raise CsvError(
                f"{path}:{line}: annotator {annotator!r} rated unit {unit!r} again "
                f"({value!r}; line {seen[key][0]} has {seen[key][1]!r})"
            )
        if key in seen:
            continue
        seen[key] = (line, value)
        data.units.append(unit)
        data.annotators.append(annotator)
        data.values.append(value)
    if not data.values:
        raise CsvError(f"{path}: no judgements; expected rows of {', '.join(COLUMNS)}")
    return data


def _safe(fn: Any, *args: Any, **kwargs: Any) -> float | None:
    try:
        value = float(fn(*args, **kwargs))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def coefficients(data: LongData, level: str) -> dict[str, Any]:
    """Every coefficient that applies at ``level``; those the data cannot give are None."""
    if level == "nominal":
        categories = sorted(set(data.values))
        codes = [float(categories.index(v)) for v in data.values]
    else:
        codes = [float(v) for v in data.values]
    matrix, annotators, units = ag.pivot(data.units, data.annotators, codes)
    out: dict[str, Any] = {
        "level": level,
        "units": len(units),
        "annotators": len(annotators),
        "judgements": len(codes),
        "empty_values": data.empty,
        "krippendorff_alpha": _safe(ag.krippendorff_alpha, matrix, level=level),
        "percent_agreement": _safe(ag.percent_agreement, matrix),
    }
    pairs = list(itertools.combinations(range(len(annotators)), 2))
    if level in ("nominal", "ordinal"):
        out["gwet_ac1"] = _safe(ag.gwet_ac1, matrix)
        out["fleiss_kappa"] = _safe(ag.fleiss_kappa, matrix)
        weights = [None] if level == "nominal" else ["linear", "quadratic"]
        for w in weights:
            kappas = [_safe(ag.cohen_kappa, matrix[i], matrix[k], weights=w) for i, k in pairs]
            kappas = [k for k in kappas if k is not None]
            name = "cohen_kappa_mean" if w is None else f"cohen_kappa_{w}_mean"
            out[name] = float(np.mean(kappas)) if kappas else None
        if level == "ordinal":
            out["gwet_ac2_quadratic"] = _safe(ag.gwet_ac2, matrix, weights="quadratic")
    else:
        complete = matrix[:, ~np.isnan(matrix).any(axis=0)]
        out["complete_units"] = int(complete.shape[1])
        for form in ag.ICC_FORMS:
            out[f"icc_{form.lower()}"] = _safe(ag.icc, complete, form)
        out["lin_ccc_pairwise_mean"] = _safe(ag.mean_pairwise_ccc, matrix)
    return out
