"""Cost of one new judgement with incremental sums vs a full batch recompute of alpha.

What it measures
----------------
A project of 200,000 units x 5 annotators = 1,000,000 cells, 10 nominal categories, 10% of
the cells missing (about 900,000 judgements; seeded, the same data as
``bench/alpha_batch.py``), held as the incremental sums of :mod:`annotate.incremental` (built
once with ``total_sums``). Then 1,000 single-judgement updates, each filling one missing
cell (a seeded choice of distinct units):

1. ``delta``: the change of the unit's sums (``incremental.delta(before, after)``) added to
   the project's sums (a dict, as the store's ``agreement_sum`` table holds them);
2. ``figures``: alpha, AC1 and percent agreement recomputed from the sums
   (``incremental.figures``, ``O(V^2)``).

Each update is timed with ``time.perf_counter_ns``; the table gives median and p99 in
microseconds of the whole update and of each part.

The peer is a full batch recompute of alpha on the whole (raters, units) matrix after a
change: ``annotate.agreement.krippendorff_alpha`` (best of 5) and the ``krippendorff`` package
(best of 3), measured in the same run. At the end the incremental alpha is checked against
``krippendorff_alpha`` on the updated matrix, and the sums against a rebuild from scratch.
Target: < 1 ms per update (median and p99).

This is the in-memory math only; the service adds its database round trips on top (see
``bench/webhook_ingest.py``).

Usage::

    .venv/bin/python bench/incremental.py            # 200,000 units, 1,000 updates
    .venv/bin/python bench/incremental.py --quick    # 20,000 units, 200 updates
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from annotate import incremental  # noqa: E402
from annotate.agreement import krippendorff_alpha  # noqa: E402
from bench.alpha_batch import nominal_data  # noqa: E402

SEED = 20261126
CATEGORIES = 10
RATERS = 5
FloatArray = npt.NDArray[np.float64]


def unit_lists(data: FloatArray) -> list[list[str]]:
    """Each unit's labels ("c0".."c9"), sorted, as the store passes them to the sums."""
    columns = data.T.tolist()
    return [sorted(f"c{int(v)}" for v in column if v == v) for column in columns]


def best_of(call: Callable[[], object], repeat: int) -> float:
    """Best wall-clock seconds of ``repeat`` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def percentile(values_ns: list[int], q: float) -> float:
    """The ``q`` percentile of nanosecond timings, in microseconds."""
    return float(np.percentile(np.asarray(values_ns, dtype=np.float64), q)) / 1000.0


def main(argv: list[str] | None = None) -> int:
    """Build the sums, time the updates and the peers, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 units, 200 updates")
    args = parser.parse_args(argv)
    units, n_updates = (20_000, 200) if args.quick else (200_000, 1_000)
    codes = {f"c{i}": float(i) for i in range(CATEGORIES)}
    print("incremental: one new judgement with incremental sums vs a full batch recompute")
    print(f"  cores {os.cpu_count()}, load average {_load()} at start")

    data = nominal_data(units)
    judgements = int(np.count_nonzero(~np.isnan(data)))
    lists = unit_lists(data)
    start = time.perf_counter()
    sums = incremental.total_sums(lists)
    build = time.perf_counter() - start
    print(
        f"  project: {judgements:,} judgements ({units:,} units x {RATERS} annotators, "
        f"{CATEGORIES} categories); sums ({len(sums)} keys) built in {build:.2f} s"
    )

    rng = np.random.default_rng(SEED + 2)
    raters, cols = np.nonzero(np.isnan(data))
    _, first = np.unique(cols, return_index=True)  # one missing cell per unit
    chosen = rng.choice(first, size=n_updates, replace=False)
    new_values = rng.integers(0, CATEGORIES, size=n_updates)

    total_ns, delta_ns, figures_ns = [], [], []
    figures: dict[str, object] = {}
    for cell, value in zip(chosen, new_values, strict=True):
        a, u = int(raters[cell]), int(cols[cell])
        before = lists[u]
        after = sorted([*before, f"c{value}"])
        t0 = time.perf_counter_ns()
        for key, amount in incremental.delta(before, after).items():
            sums[key] = sums.get(key, 0.0) + amount
        t1 = time.perf_counter_ns()
        figures = incremental.figures(sums, codes, "nominal", CATEGORIES)
        t2 = time.perf_counter_ns()
        total_ns.append(t2 - t0)
        delta_ns.append(t1 - t0)
        figures_ns.append(t2 - t1)
        lists[u] = after
        data[a, u] = float(value)

    ours_batch = best_of(lambda: krippendorff_alpha(data, "nominal"), 5)
    peer_package = _package_time(data)
    batch_alpha = krippendorff_alpha(data, "nominal")
    live_alpha = float(figures["alpha"])  # type: ignore[arg-type]
    rebuilt = incremental.total_sums(lists)
    keys = {k for k in set(rebuilt) | set(sums) if abs(rebuilt.get(k, 0.0) - sums.get(k, 0.0))}
    worst = max((abs(rebuilt.get(k, 0.0) - sums.get(k, 0.0)) for k in keys), default=0.0)

    median_us = percentile(total_ns, 50)
    p99_us = percentile(total_ns, 99)
    print(f"\n{n_updates:,} single-judgement updates (microseconds)")
    print(f"  {'span':<28}{'median':>10}{'p99':>10}{'max':>10}")
    for label, spans in (
        ("delta + add to sums", delta_ns),
        ("figures (alpha, AC1, PA)", figures_ns),
        ("whole update", total_ns),
    ):
        print(
            f"  {label:<28}{percentile(spans, 50):>10.1f}{percentile(spans, 99):>10.1f}"
            f"{max(spans) / 1000:>10.1f}"
        )
    print("\npeer: full batch recompute of alpha on the whole matrix after a change")
    print(f"  {'recompute':<40}{'time':>12}{'/ update median':>18}")
    print(
        f"  {'krippendorff_alpha (ours), best of 5':<40}{ours_batch * 1e3:>9.1f} ms"
        f"{ours_batch * 1e6 / median_us:>17,.0f}x"
    )
    if peer_package is None:
        print(f"  {'krippendorff package':<40}{'not installed':>12}")
    else:
        print(
            f"  {'krippendorff package, best of 3':<40}{peer_package * 1e3:>9.1f} ms"
            f"{peer_package * 1e6 / median_us:>17,.0f}x"
        )
    print("\ncheck after the updates")
    print(f"  live alpha {live_alpha:.12f}, batch alpha {batch_alpha:.12f}", end="")
    print(f", |diff| {abs(live_alpha - batch_alpha):.1e}")
    print(f"  sums vs rebuild from scratch: largest |diff| {worst:.1e} over {len(rebuilt)} keys")
    ok = abs(live_alpha - batch_alpha) < 1e-9 and worst < 1e-6
    print(f"  {'equal' if ok else 'DIFFERENT'}")
    print("\ntarget: < 1 ms per update (median and p99)")
    met = median_us < 1000 and p99_us < 1000
    print(f"  median {median_us:.1f} us, p99 {p99_us:.1f} us -> {'met' if met else 'MISSED'}")
    print(f"  load average {_load()} at end")
    return 0 if ok else 1


def _package_time(data: FloatArray) -> float | None:
    try:
        import krippendorff
    except ImportError:
        return None
    return best_of(
        lambda: krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"), 3
    )


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    raise SystemExit(main())
