"""CPU an idle applier burns, waiting to be woken (now) against polling every 1-20 ms (the
old way, ``python -m api.applier --poll-only``), and the delay from keeping an event to
its being applied in both modes.

What it does
------------
For each store (a SQLite file, and/or a throwaway PostgreSQL database on 127.0.0.1:5432)
it runs the applier process (``python -m api.applier``, configured as the service is) in
each mode, alone: after 3 s of settling, it reads the process's CPU seconds (utime + stime
from /proc) over ``--seconds`` (default 30) of an empty inbox. Then it keeps ``--events``
events (default 20), one every 0.5 s so that the applier is asleep each time, through the
web worker's group commit (:class:`api.ingest.GroupCommit`, which wakes the applier as the
service does: a datagram on SQLite, NOTIFY on PostgreSQL), and times each until the store's
watermark shows it applied (looked at every millisecond).

Run: ``.venv/bin/python bench/idle_cpu.py [--store sqlite,postgres] [--seconds 30]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from stalled_applier import build, database  # noqa: E402

from api import progress  # noqa: E402
from api.db import init_db, make_engine  # noqa: E402
from api.doorbell import Bell  # noqa: E402
from api.inbox import Inbox  # noqa: E402
from api.ingest import GroupCommit  # noqa: E402
from tests.conftest import write_config  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    kind: str, url: str, folder: Path, poll_only: bool, args: argparse.Namespace
) -> tuple[str, float]:
    """One mode on one store: a line of the table, and the CPU seconds idle."""
    config = write_config(folder, service={"database_url": url})
    env = {**os.environ, "IMPROV_ANNOTATE_CONFIG": str(config)}
    engine = make_engine(url, immediate=True)
    init_db(engine)
    inbox = Inbox(engine)
    bell = Bell(inbox.path)
    writer = GroupCommit(inbox, on_commit=bell.ring)
    argv = [sys.executable, "-m", "api.applier", *(["--poll-only"] if poll_only else [])]
    child = subprocess.Popen(argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL)
    try:
        time.sleep(3)
        before = cpu_seconds(child.pid)
        time.sleep(args.seconds)
        idle = cpu_seconds(child.pid) - before
        delays = []
        for payload in build(args.events):
            time.sleep(0.5)
            began = time.monotonic()
            writer.submit(json.dumps(payload).encode()).result()
            target = inbox.newest() or 0
            while progress.read(engine).watermark < target:
                time.sleep(0.001)
            delays.append(time.monotonic() - began)
    finally:
        child.terminate()
        child.wait(10)
        writer.stop()
        bell.close()
        inbox.dispose()
        engine.dispose()
    mode = "polling 1-20 ms (old)" if poll_only else "woken, 1 s safety poll"
    return (
        f"| {kind} | {mode} | {idle:.2f} | {idle / args.seconds * 100:.2f} % | "
        f"{statistics.median(delays) * 1000:.1f} | {max(delays) * 1000:.1f} |"
    ), idle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default="sqlite,postgres")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--events", type=int, default=20)
    args = parser.parse_args()
    lines = [
        f"the applier process idle for {args.seconds:g} s, then {args.events} events kept "
        "0.5 s apart",
        "",
        "| store | mode | CPU s idle | of a core | kept -> applied p50 ms | max ms |",
        "|---|---|---|---|---|---|",
    ]
    ratios = []
    for kind in args.store.split(","):
        idle = {}
        for poll_only in (True, False):
            with tempfile.TemporaryDirectory() as tmp, database(kind, Path(tmp)) as url:
                line, idle[poll_only] = measure(kind, url, Path(tmp), poll_only, args)
                lines.append(line)
        ratios.append(
            f"{kind}: polling used {idle[True] / max(idle[False], 1e-9):.0f} times the CPU "
            "of waiting to be woken"
        )
    print("\n".join([*lines, "", *ratios]))


if __name__ == "__main__":
    main()
