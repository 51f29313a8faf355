"""The one bootstrap: time of the intervals the summary reports, against recomputing.

What it measures, on a pooled team (9 annotators, 3 per unit, nominal labels 0-4 and ratings
1-5), for each size:

- alpha: ``alpha_interval`` (profile multinomial, coincidences summed per resample) against
  the previous service path (``bootstrap_ci``-style: draw unit indices, recompute
  ``krippendorff_alpha`` on every resampled matrix), both with 1,000 resamples;
- pairwise Cohen's kappa and Lin's CCC means: ``pairwise_mean`` (all pairs of a chunk of
  resamples from weighted sums) against recomputing every pair on every resampled matrix
  (``pairwise_statistic``), timed on 50 resamples and scaled to 1,000;
- one-way ICC: ``icc_report`` (weighted sums per resample) against ``unit_interval`` with
  ``icc_oneway`` recomputed per resample.

Run::

    .venv/bin/python bench/agreement_intervals.py           # 2,000 and 20,000 units
    .venv/bin/python bench/agreement_intervals.py --quick   # 2,000 units
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.stats  # noqa: F401  (imported here so its import time is not in the ICC figure)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from annotate.agreement import (
    alpha_interval,
    cohen_kappa,
    icc_oneway,
    icc_report,
    krippendorff_alpha,
    lin_ccc,
    pairwise_statistic,
    unit_interval,
)
from annotate.agreement.summary import pairwise_mean

N_BOOT = 1000


def pooled(units: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Nominal labels and ratings of 9 annotators, 3 per unit."""
    rng = np.random.default_rng(seed)
    labels = np.full((9, units), np.nan)
    ratings = np.full((9, units), np.nan)
    truth = rng.integers(0, 5, units)
    level = rng.integers(1, 6, units)
    for u in range(units):
        who = rng.choice(9, 3, replace=False)
        right = rng.random(3) < 0.7
        labels[who, u] = np.where(right, truth[u], rng.integers(0, 5, 3))
        ratings[who, u] = np.clip(level[u] + rng.integers(-1, 2, 3), 1, 5)
    return labels, ratings


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def previous_alpha(data: np.ndarray) -> None:
    """The service's previous interval: unit indices drawn, alpha recomputed each time."""
    rng = np.random.default_rng(0)
    for index in rng.integers(0, data.shape[1], size=(N_BOOT, data.shape[1])):
        krippendorff_alpha(data[:, index])


def recomputed_pairs(data: np.ndarray, pair: Callable[[np.ndarray], float], n: int) -> None:
    rng = np.random.default_rng(0)
    for w in rng.multinomial(data.shape[1], np.full(data.shape[1], 1 / data.shape[1]), size=n):
        pairwise_statistic(np.repeat(data, w, axis=1), pair).mean()


def measure(units: int) -> list[tuple[str, float, float]]:
    """(figure, ours, recomputing) seconds for one size, recomputing scaled to N_BOOT."""
    labels, ratings = pooled(units)
    domain = np.arange(5.0)

    def kappa(p: np.ndarray) -> float:
        return cohen_kappa(p[0], p[1], value_domain=domain)

    def ccc(p: np.ndarray) -> float:
        return lin_ccc(p[0], p[1])

    return [
        (
            "alpha",
            timed(lambda: alpha_interval(labels, "nominal")),
            timed(lambda: previous_alpha(labels)),
        ),
        (
            "Cohen pairwise",
            timed(lambda: pairwise_mean(labels, "cohen_kappa", value_domain=domain)),
            timed(lambda: recomputed_pairs(labels, kappa, 50)) * N_BOOT / 50,
        ),
        (
            "CCC pairwise",
            timed(lambda: pairwise_mean(ratings, "lin_ccc")),
            timed(lambda: recomputed_pairs(ratings, ccc, 50)) * N_BOOT / 50,
        ),
        (
            "one-way ICC",
            timed(lambda: icc_report(ratings)),
            timed(lambda: unit_interval(icc_oneway, ratings, n_boot=100)) * N_BOOT / 100,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 units only")
    sizes = (2_000,) if parser.parse_args().quick else (2_000, 20_000)
    print(f"agreement_intervals: {N_BOOT} resamples, seconds: ours vs recomputing (scaled)")
    for units in sizes:
        for name, ours, before in measure(units):
            ratio = before / ours
            print(f"{units:>6} units  {name:<15} {ours:8.3f}  vs {before:8.2f}  ({ratio:.0f}x)")


if __name__ == "__main__":
    main()
