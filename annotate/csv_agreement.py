"""Every applicable agreement coefficient for a long-format CSV (unit, annotator, value).

So that a QA lead can check any data set, not only a project's: ``improv-annotate agreement
FILE.csv --level nominal``. Rows are read with the csv module; a malformed row stops the
run with an error naming the file, the line and what was expected; empty values are counted
as missing, never dropped silently.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from annotate import agreement as ag
from annotate.agreement.summary import (
    alpha_summary,
    categorical_summary,
    continuous_summary,
    pairwise_mean,
)
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


def _flat(out: dict[str, Any], name: str, figures: dict[str, Any], key: str) -> None:
    """One coefficient and its interval as flat keys: ``name``, ``name_ci_low``, ..."""
    out[name] = figures.get(key)
    out[f"{name}_ci_low"] = figures.get("ci_low")
    out[f"{name}_ci_high"] = figures.get("ci_high")
    out[f"{name}_dropped"] = figures.get("dropped", 0)
    if figures.get("reason"):
        out[f"{name}_reason"] = figures["reason"]


def coefficients(
    data: LongData,
    level: str,
    *,
    n_boot: int = ag.N_BOOT,
    seed: int = ag.SEED,
    min_overlap: int = ag.MIN_OVERLAP,
) -> dict[str, Any]:
    """Every coefficient that applies at ``level``, with 95% bootstrap intervals.

    Those the data cannot give are None, with a ``<name>_reason`` (e.g. Fleiss' kappa when
    units have different numbers of ratings). Intervals are the project's one bootstrap
    (units resampled, ``n_boot`` resamples, ``seed``); ``<name>_dropped`` counts resamples
    on which the coefficient was undefined. Means over pairs of annotators are weighted by
    the units each pair compared and leave out pairs under ``min_overlap`` units.
    """
    if level == "nominal":
        categories = sorted(set(data.values))
        codes = [float(categories.index(v)) for v in data.values]
    else:
        codes = [float(v) for v in data.values]
    matrix, annotators, units = ag.pivot(data.units, data.annotators, codes)
    options = {"n_boot": n_boot, "seed": seed}
    out: dict[str, Any] = {
        "level": level,
        "units": len(units),
        "annotators": len(annotators),
        "judgements": len(codes),
        "empty_values": data.empty,
        "n_boot": n_boot,
        "seed": seed,
        "confidence": ag.CONFIDENCE,
        "min_overlap": min_overlap,
    }
    _flat(out, "krippendorff_alpha", alpha_summary(matrix, level, **options), "alpha")
    out["percent_agreement"] = _safe(ag.percent_agreement, matrix)
    if level in ("nominal", "ordinal"):
        figures = categorical_summary(matrix, level, min_overlap=min_overlap, **options)
        _flat(out, "gwet_ac1", figures["gwet_ac1"], "estimate")
        _flat(out, "fleiss_kappa", figures["fleiss_kappa"], "estimate")
        cohen = {"nominal": figures["cohen_kappa_pairwise"]}
        if level == "ordinal":
            cohen = {
                "linear": pairwise_mean(
                    matrix, "cohen_kappa", min_overlap=min_overlap, weights="linear", **options
                ),
                "quadratic": figures["cohen_kappa_pairwise"],
            }
        for weights, pairs in cohen.items():
            name = "cohen_kappa_mean" if weights == "nominal" else f"cohen_kappa_{weights}_mean"
            _flat(out, name, pairs, "mean")
            out[f"{name}_pairs_counted"] = pairs["counted"]
            out[f"{name}_pairs_below_min_overlap"] = pairs["below_min_overlap"]
        if level == "ordinal":
            out["gwet_ac2_quadratic"] = _safe(ag.gwet_ac2, matrix, weights="quadratic")
    else:
        complete = matrix[:, ~np.isnan(matrix).any(axis=0)]
        out["complete_units"] = int(complete.shape[1])
        for form in ag.ICC_FORMS:
            out[f"icc_{form.lower()}"] = _safe(ag.icc, complete, form)
        figures = continuous_summary(matrix, min_overlap=min_overlap, **options)
        report = figures["icc"]
        out["icc_design"] = report["design"]
        out["icc_design_why"] = report["why"]
        out["icc_form"] = report.get("form")
        out["icc_units"] = report.get("units")
        if report.get("form") is None:
            out["icc_reason"] = report.get("reason")
        else:
            out["icc_ratings_per_unit"] = report["raters_per_unit"]["k"]
            _flat(out, "icc_single", report["single"], "icc")
            _flat(out, "icc_average", report["average"], "icc")
        pairs = figures["lin_ccc_pairwise"]
        _flat(out, "lin_ccc_pairwise_mean", pairs, "mean")
        out["lin_ccc_pairwise_mean_pairs_counted"] = pairs["counted"]
        out["lin_ccc_pairwise_mean_pairs_below_min_overlap"] = pairs["below_min_overlap"]
    return out
