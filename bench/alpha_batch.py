"""Batch Krippendorff's alpha: ``annotate.agreement.krippendorff_alpha`` vs ``krippendorff``.

What it measures
----------------
- **nominal**: alpha over 200,000 units x 5 annotators = 1,000,000 cells, 10 categories,
  10% of the cells missing (so about 900,000 judgements), seeded; each annotator gives the
  unit's "true" category with probability 0.6, else a random one. Time is the best of 5
  calls; memory is the peak of one call.
- **interval**: alpha on continuous values (2,400 units x 5 raters of random floats, no
  missing cell, so 12,000 distinct values).
- **cross-check**: interval alpha on 80 units x 5 raters (400 distinct values), small enough
  for the package, to show both give the same number on continuous data.

The peer is the ``krippendorff`` package (a dev-only oracle in .venv) on the same data.

Method
------
Every measurement runs in a fresh subprocess (this script with ``--worker``), so peaks of
different implementations never mix. Each worker builds the data from the seed, then:

- ``time``: calls the implementation ``repeat`` times, reports the best wall-clock time
  (``time.perf_counter``);
- ``rss``: resets the kernel's peak-RSS counter (writes ``5`` to ``/proc/self/clear_refs``,
  which sets ``VmHWM`` to the current RSS), calls once and reports ``VmHWM - VmRSS before``,
  i.e. the growth of the resident set above the input data;
- ``tracemalloc``: reports the ``tracemalloc`` peak of one call (numpy reports its buffers to
  tracemalloc), i.e. the largest amount of Python/numpy memory allocated during the call.

Each worker runs under ``RLIMIT_AS`` (default 4 GiB) and a timeout, so an implementation that
needs more memory fails with ``MemoryError`` (reported as "fails") instead of exhausting the
machine. Targets: nominal, ours at least 2x faster than the package and below 100 MB peak.

Usage::

    .venv/bin/python bench/alpha_batch.py            # full sizes (about 1-2 minutes)
    .venv/bin/python bench/alpha_batch.py --quick    # 20,000 units, 400 interval units
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SEED = 20261126
MB = 1024 * 1024
GIB = 1024 * MB
WORKER_TIMEOUT = 300.0  # seconds per worker subprocess
FloatArray = npt.NDArray[np.float64]


# ---------------------------------------------------------------------------- data


def nominal_data(units: int, raters: int = 5, categories: int = 10) -> FloatArray:
    """Seeded (raters, units) nominal codes 0..categories-1, 10% NaN."""
    rng = np.random.default_rng(SEED)
    truth = rng.integers(0, categories, size=units)
    noise = rng.integers(0, categories, size=(raters, units))
    agree = rng.random((raters, units)) < 0.6
    data = np.where(agree, truth[None, :], noise).astype(np.float64)
    data[rng.random((raters, units)) < 0.1] = np.nan
    return data


def interval_data(units: int, raters: int = 5) -> FloatArray:
    """Seeded (raters, units) random floats (a unit mean plus noise), no missing cell."""
    rng = np.random.default_rng(SEED + 1)
    truth = rng.normal(0.0, 1.0, size=units)
    return truth[None, :] + rng.normal(0.0, 0.6, size=(raters, units))


# ---------------------------------------------------------------------------- worker


def _implementation(name: str, level: str) -> Callable[[FloatArray], float]:
    if name == "ours":
        from annotate.agreement import krippendorff_alpha

        return lambda data: krippendorff_alpha(data, level)
    if name == "package":
        import krippendorff

        return lambda data: float(
            krippendorff.alpha(reliability_data=data, level_of_measurement=level)
        )
    raise ValueError(f"unknown implementation {name!r}; expected ours or package")


def _status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in bytes."""
    out = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) * 1024
    return out


def worker(impl: str, level: str, units: int, measure: str, repeat: int) -> dict[str, Any]:
    """One measurement of one implementation, in this (fresh) process."""
    data = nominal_data(units) if level == "nominal" else interval_data(units)
    call = _implementation(impl, level)
    gc.collect()
    out: dict[str, Any] = {"impl": impl, "level": level, "units": units, "measure": measure}
    try:
        if measure == "time":
            best = float("inf")
            for _ in range(repeat):
                start = time.perf_counter()
                value = call(data)
                best = min(best, time.perf_counter() - start)
            out.update(seconds=best, alpha=value)
        elif measure == "rss":
            with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
                f.write("5")  # VmHWM := VmRSS
            before = _status()["VmRSS"]
            value = call(data)
            out.update(bytes=_status()["VmHWM"] - before, alpha=value)
        elif measure == "tracemalloc":
            tracemalloc.start()
            value = call(data)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            out.update(bytes=peak, alpha=value)
        else:
            raise ValueError(f"unknown measure {measure!r}")
    except MemoryError as exc:
        out["error"] = f"MemoryError {exc}".strip()[:200]
    return out


# ---------------------------------------------------------------------------- parent


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits of a worker subprocess."""

    address_space: int
    timeout: float


def run_worker(
    impl: str, level: str, units: int, measure: str, repeat: int, limits: Limits
) -> dict[str, Any]:
    """Run one measurement in a subprocess under ``limits``; errors become ``{"error": ...}``."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limits.address_space, limits.address_space))

    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", impl, level]
    argv += ["--units", str(units), "--measure", measure, "--repeat", str(repeat)]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=limits.timeout,
            preexec_fn=limit,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {limits.timeout:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {done.returncode}: {tail[:200]}"}
    return dict(json.loads(lines[-1]))


def _fmt_seconds(result: dict[str, Any]) -> str:
    if "error" in result:
        return "fails"
    ms = result["seconds"] * 1000
    return f"{ms:.3f} ms" if ms < 10 else f"{ms:.1f} ms"


def _fmt_bytes(result: dict[str, Any]) -> str:
    return "fails" if "error" in result else f"{result['bytes'] / MB:8.1f} MB"


def compare(
    title: str, level: str, units: int, repeat: int, limits: Limits
) -> dict[str, dict[str, dict[str, Any]]]:
    """Time, RSS growth and tracemalloc peak of both implementations on one data set."""
    print(f"\n{title}")
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for impl in ("ours", "package"):
        results[impl] = {
            m: run_worker(impl, level, units, m, repeat, limits)
            for m in ("time", "rss", "tracemalloc")
        }
    header = f"{'implementation':<16}{'best time':>14}{'peak RSS growth':>18}"
    print(f"  {header}{'tracemalloc peak':>18}")
    for impl, label in (("ours", "ours"), ("package", "krippendorff")):
        r = results[impl]
        print(
            f"  {label:<16}{_fmt_seconds(r['time']):>14}{_fmt_bytes(r['rss']):>18}"
            f"{_fmt_bytes(r['tracemalloc']):>18}"
        )
    for impl in ("ours", "package"):
        errors = sorted({r["error"] for r in results[impl].values() if "error" in r})
        for error in errors:
            print(f"  {impl} fails: {error}")
    ours, peer = results["ours"]["time"], results["package"]["time"]
    if "error" not in ours and "error" not in peer:
        print(f"  speed-up vs krippendorff: {peer['seconds'] / ours['seconds']:.1f}x")
        print(f"  |alpha ours - alpha package| = {abs(ours['alpha'] - peer['alpha']):.2e}")
    if "error" not in ours:
        print(f"  alpha (ours) = {ours['alpha']:.6f}")
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--worker``, one measurement) and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 repeats")
    parser.add_argument("--memory-limit-gb", type=float, default=4.0, help="RLIMIT_AS per worker")
    parser.add_argument("--worker", nargs=2, metavar=("IMPL", "LEVEL"), help=argparse.SUPPRESS)
    parser.add_argument("--units", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--measure", default="time", help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        impl, level = args.worker
        print(json.dumps(worker(impl, level, args.units, args.measure, args.repeat)))
        return 0

    nominal_units, interval_units, repeat = (20_000, 400, 2) if args.quick else (200_000, 2_400, 5)
    limits = Limits(int(args.memory_limit_gb * GIB), WORKER_TIMEOUT)
    print("alpha_batch: annotate.agreement.krippendorff_alpha vs krippendorff", end=" ")
    print(f"{_version('krippendorff')} (peer)")
    mode = "quick" if args.quick else "full"
    print(f"  cores {os.cpu_count()}, load average {_load()} at start; {mode} mode")
    print(f"  each measurement in its own subprocess, RLIMIT_AS {args.memory_limit_gb:g} GiB")
    judgements = int(np.count_nonzero(~np.isnan(nominal_data(nominal_units))))
    nominal = compare(
        f"nominal: {nominal_units:,} units x 5 annotators = {nominal_units * 5:,} cells, "
        f"10 categories, 10% missing ({judgements:,} judgements), best of {repeat}",
        "nominal",
        nominal_units,
        repeat,
        limits,
    )
    compare(
        f"interval: {interval_units:,} units x 5 raters of random floats "
        f"({interval_units * 5:,} distinct values), best of {repeat}",
        "interval",
        interval_units,
        repeat,
        limits,
    )
    compare("cross-check: interval, 80 units x 5 raters", "interval", 80, repeat, limits)

    ours, peer = nominal["ours"], nominal["package"]
    print("\ntargets (nominal):")
    if "error" in ours["time"] or "error" in peer["time"]:
        print("  speed-up >= 2x: not measured (a worker failed)")
    else:
        ratio = peer["time"]["seconds"] / ours["time"]["seconds"]
        print(f"  speed-up >= 2x: {ratio:.1f}x -> {'met' if ratio >= 2 else 'MISSED'}")
    peaks = [ours[m]["bytes"] for m in ("rss", "tracemalloc") if "error" not in ours[m]]
    if peaks:
        peak = max(peaks) / MB
        print(f"  peak < 100 MB: {peak:.1f} MB -> {'met' if peak < 100 else 'MISSED'}")
    print(f"  load average {_load()} at end")
    return 0


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "(not installed)"


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    raise SystemExit(main())
