"""The README's screenshots of the QA pages, made the way a QA lead sees them.

A realistic simulated team (:mod:`annotate.simulate`: a pool of 9, 3 per clip, partial
labels, a careless and a drifting member, gold, edits and deletions; the clips of
``bench/team.py``) goes into a fresh SQLite store through the service's own path, with
the scenes' intended emotions; the real service is started on that store and headless
Chromium logs in through the form and saves each page to ``docs/img/``.

Usage::

    .venv/bin/python scripts/screenshots.py                  # every page
    .venv/bin/python scripts/screenshots.py --page dashboard # one
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlmodel import Session  # noqa: E402

from annotate.simulate import plan_team, realistic_team  # noqa: E402
from api import store  # noqa: E402
from api.db import init_db, make_engine  # noqa: E402
from api.intended import put_intended  # noqa: E402
from bench.team import TAX, make_clips, payloads  # noqa: E402
from tests import dashkit  # noqa: E402

KEY = "screenshots"
# page name -> path under the service (the project is 1)
PAGES = {
    "dashboard": "/dashboard/1",
    "annotators": "/dashboard/1/annotators",
    "performers": "/dashboard/1/performers",
    "adjudication": "/dashboard/1/adjudication",
}


def fill(folder: Path, seed: int = 3) -> None:
    """The store ``folder/store.db`` with a realistic team's annotations of 6 sessions."""
    clips = make_clips(6, 48, np.random.default_rng(seed))
    plan = plan_team(realistic_team(TAX, seed=seed), clips, TAX, seed=seed)
    engine = make_engine(f"sqlite:///{folder / 'store.db'}")
    init_db(engine)
    with Session(engine) as db:
        for payload in payloads(plan, clips):
            store.apply_event(db, payload, TAX)
        # the scenes' intended emotions, kept by the service as the import keeps them
        sessions: dict[str, list[dict]] = {}
        for lines, intended in clips:
            for line in lines:
                session = line["turn_id"].split("-")[0]
                sessions.setdefault(session, []).append(
                    {
                        "turn_id": line["turn_id"],
                        "turn_index": line["turn_index"],
                        "emotion": intended[line["turn_index"]],
                    }
                )
        for session, turns in sessions.items():
            put_intended(db, 1, session, turns)
        db.commit()
    engine.dispose()


def main(argv: list[str] | None = None) -> int:
    """Save the pages asked for (default: all) as PNG files in ``docs/img``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--page", choices=sorted(PAGES), action="append")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        fill(folder)
        settings, config = dashkit.configure(folder, KEY)
        with dashkit.running(settings, config) as url, dashkit.chromium() as browser:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            dashkit.log_in(page, url, KEY, 1)
            for name in args.page or sorted(PAGES):
                page.goto(url + PAGES[name])
                page.wait_for_load_state("networkidle")
                path = args.out / f"{name}.png"
                page.screenshot(path=str(path), full_page=True)
                print(f"{name}: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
