"""The QA dashboard against stored script injection, in a real browser.

Everything the dashboard shows comes from Label Studio, where any member of the
organisation can import tasks and annotate. Hostile strings (script-breaking payloads mixed
with generated text) go into every field a webhook carries and the dashboard can show: clip
key, session, speaker and performer names, turn ids and text, annotator ids, and labels (a
taxonomy whose extension labels are payloads themselves). They reach the store through the
real webhook of a real service, then the page is opened in headless Chromium: no dialog
opens, no global a payload sets exists, the page holds exactly its own elements (no
injected script, image or frame), the hostile strings show as text, and the plots are drawn.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from annotate.labelstudio import SECRET_HEADER
from schemas.taxonomy import Taxonomy, load_taxonomy
from tests import dashkit
from tests.conftest import ROOT
from tests.payloads import annotation_event, dialogue, task

KEY = "dash-security-key"
HOOK = "/webhooks/label-studio"
# Each payload, if it ran, sets a global whose name starts with __pwned (or opens a dialog).
PAYLOADS = [
    "</script><script>window.__pwned=1</script>",
    "</SCRIPT ><script>window.__pwned_upper=1</script >",
    '"><img src=x onerror="window.__pwned_img=1">',
    "'><svg onload=window.__pwned_svg=1>",
    "<!--<script>window.__pwned_comment=1</script>",
    "<script>alert('xss')</script>",
    "javascript:window.__pwned_url=1",
    '<a href="javascript:window.__pwned_a=1">click</a>',
    '<a href="https://evil.example/">phish</a>',
    "\u2028window.__pwned_ls=1\u2029",
    "${window.__pwned_tpl=1}",
    "&lt;script&gt;window.__pwned_entity=1&lt;/script&gt;",
    '<iframe src="javascript:parent.__pwned_frame=1"></iframe>',
    "<style>body{display:none}</style>",
    '{{constructor.constructor("window.__pwned_ng=1")()}}',
]
# hostile emotion labels (the taxonomy's extension; a team's taxonomy file may hold anything)
LABELS = [
    "</script><script>window.__pwned_label=1</script>",
    '"><img src=x onerror="window.__pwned_label_img=1">',
    '<a href="https://evil.example/">label</a>',
    "a&b <b>bold</b>",
]
hostile = st.tuples(st.text(max_size=6), st.sampled_from(PAYLOADS), st.text(max_size=6)).map(
    "".join
)
project_ids = itertools.count(100)


def _hostile_taxonomy(folder: Path) -> Path:
    """The default taxonomy with the hostile labels as its emotion extension."""
    raw = yaml.safe_load((ROOT / "schemas" / "taxonomies" / "default.yaml").read_text())
    emotion = next(d for d in raw["dimensions"] if d["name"] == "emotion")
    emotion["extension"] += [{"value": label} for label in LABELS]
    for table in raw["mappings"].values():
        for label in LABELS:
            table[label] = "neutral"
    path = folder / "hostile-taxonomy.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Taxonomy]]:
    """(URL, taxonomy) of one service, with the hostile taxonomy, for the whole module."""
    folder = tmp_path_factory.mktemp("dashboard-security")
    path = _hostile_taxonomy(folder)
    top = {"taxonomy": str(path), "taxonomy_extension": True}
    settings_, config = dashkit.configure(folder, KEY, top)
    with dashkit.running(settings_, config) as url:
        yield url, load_taxonomy(path, extension=True)


@dataclass
class Tab:
    """A Chromium page and what it reported: dialogs opened, uncaught errors."""

    page: Any
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def tab(service: tuple[str, Taxonomy]) -> Iterator[Tab]:
    """One Chromium page, logged in through the form, for every example."""
    url, taxonomy = service
    with dashkit.chromium() as browser:
        context = browser.new_context(viewport={"width": 1400, "height": 1300})
        context.set_default_timeout(30_000)
        out = Tab(context.new_page())

        def on_dialog(dialog: Any) -> None:
            out.dialogs.append(dialog.message)
            dialog.dismiss()

        out.page.on("dialog", on_dialog)
        out.page.on("pageerror", lambda exc: out.errors.append(str(exc)))
        # a first project, so that the login lands on a dashboard
        _post_project(url, taxonomy, 99, _plain_fields())
        dashkit.log_in(out.page, url, KEY, 99)
        try:
            yield out
        finally:
            context.close()


def _plain_fields() -> dict[str, Any]:
    return {
        "clips": ["c1", "c2"],
        "session": "s",
        "speakers": ["Maya", "Theo"],
        "annotators": ["1", "2", "3"],
        "labels": ["joy", "anger", "fear"],
    }


def _post_project(url: str, taxonomy: Any, project_id: int, fields: dict[str, Any]) -> None:
    """Two clips of four turns, three annotators who disagree, through the webhook."""
    hooks = httpx.Client(base_url=url, headers={SECRET_HEADER: dashkit.SECRET}, timeout=30)
    annotation = project_id * 100
    with hooks:
        for c, clip in enumerate(fields["clips"]):
            lines = dialogue(4, session_id=fields["session"], clip=c)
            for i, line in enumerate(lines):
                line["speaker"] = fields["speakers"][i % 2]
                line["performer"] = fields["speakers"][(i + 1) % 2]
                line["text"] = f"{fields['speakers'][i % 2]} says {clip}"
            t = task(project_id * 10 + c, lines, session_id=fields["session"])
            t["data"]["clip_id"] = clip
            t["project"] = project_id
            for a, who in enumerate(fields["annotators"]):
                labels = fields["labels"]
                values = {i: {"emotion": labels[(i + a + c) % len(labels)]} for i in range(4)}
                annotation += 1
                event = annotation_event(taxonomy, annotation, t, 0, values, project_id=project_id)
                event["annotation"]["completed_by"] = {"id": who, "email": f"{who}@example.org"}
                answer = hooks.post(HOOK, json=event)
                assert answer.status_code == 200, answer.text
        # a task id that is not an integer never reaches the store (nor the page)
        bad = annotation_event(taxonomy, annotation + 1, t, 1, {0: {"emotion": labels[0]}})
        bad["task"]["id"] = fields["clips"][0]
        bad["annotation"]["task"] = fields["clips"][0]
        assert hooks.post(HOOK, json=bad).status_code == 422


def _as_html_text(value: str) -> str:
    """What the HTML parser makes of ``value`` written as escaped text in a table cell:
    line breaks normalised to LF (input stream preprocessing), NUL dropped (the "in body"
    insertion mode ignores it)."""
    return value.replace("\r\n", "\n").replace("\r", "\n").replace("\0", "")


PAGE_FACTS = """() => ({
    pwned: Object.getOwnPropertyNames(window).filter(k => k.toLowerCase().includes('pwned')),
    scripts: [...document.scripts].map(s => s.getAttribute('src') || s.type),
    foreign: [...document.querySelectorAll(
        'img, iframe, object, embed, frame, base, meta[http-equiv], link:not([rel=stylesheet]), '
        + 'body style')].filter(e => !e.closest('.plot')).map(e => e.outerHTML.slice(0, 120)),
    styles: [...document.querySelectorAll('link')].map(l => l.getAttribute('href')),
    cells: [...document.querySelectorAll('#adjudication tr td:first-child')]
        .map(td => td.textContent),
    links: [...document.querySelectorAll('#adjudication a')]
        .map(a => [a.getAttribute('href'), a.rel]),
    data: JSON.parse(document.getElementById('dashboard-data').textContent),
    svgs: ['dimensions', 'pairwise', 'breakdowns', 'shifts', 'drift', 'confusion'].map(
        n => document.querySelectorAll('#plot-' + n + ' svg.main-svg').length),
    plotLinks: document.querySelectorAll('.plot .xtick a, .plot .ytick a, .plot .gtitle a').length,
    ticks: [...document.querySelectorAll('#plot-pairwise .xtick text')].length,
})"""


SCORECARD_FACTS = """() => ({
    pwned: Object.getOwnPropertyNames(window).filter(k => k.toLowerCase().includes('pwned')),
    scripts: [...document.scripts].map(s => s.getAttribute('src') || s.type),
    foreign: [...document.querySelectorAll(
        'img, iframe, object, embed, frame, base, meta[http-equiv], link:not([rel=stylesheet]), '
        + 'body style')].filter(e => !e.closest('.plot')).map(e => e.outerHTML.slice(0, 120)),
    first: [...document.querySelectorAll('table:last-of-type tr td:first-child')]
        .map(td => td.textContent),
    plotLinks: document.querySelectorAll('.plot .xtick a, .plot .ytick a, .plot .gtitle a').length,
})"""
SCORECARD_PAGES = {
    "annotators": ("annotators",),
    "performers": ("recognition", "intended"),
    "adjudication?threshold=1.5": (),
}


@settings(
    max_examples=12,
    derandomize=True,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each example loads a page
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    clips=st.lists(hostile, min_size=2, max_size=2, unique=True),
    session=hostile,
    speakers=st.lists(hostile, min_size=2, max_size=2, unique=True),
    annotators=st.lists(hostile, min_size=3, max_size=3, unique=True),
    labels=st.permutations(LABELS),
)
def test_hostile_strings_never_run_in_the_dashboard(
    service: tuple[str, Taxonomy],
    tab: Tab,
    clips: list[str],
    session: str,
    speakers: list[str],
    annotators: list[str],
    labels: list[str],
) -> None:
    url, taxonomy = service
    project_id = next(project_ids)
    fields = {
        "clips": clips,
        "session": session,
        "speakers": speakers,
        "annotators": annotators,
        "labels": labels[:3],
    }
    _post_project(url, taxonomy, project_id, fields)
    # threshold 1.5: both clips are listed for adjudication, so both keys are on the page
    page = tab.page
    page.goto(f"{url}/dashboard/{project_id}?threshold=1.5")
    for name in ("dimensions", "pairwise", "breakdowns", "shifts", "drift", "confusion"):
        page.wait_for_selector(f"#plot-{name} svg.main-svg")
    facts = page.evaluate(PAGE_FACTS)
    assert tab.dialogs == [] and facts["pwned"] == []
    assert tab.errors == []
    # exactly the page's own scripts and style sheet, nothing injected
    assert facts["scripts"] == ["/static/plotly.min.js", "/static/dashboard.js", "application/json"]
    assert facts["styles"] == ["/static/dashboard.css"] and facts["foreign"] == [], facts
    # the hostile strings are shown as text, unchanged
    assert sorted(facts["cells"]) == sorted(_as_html_text(c) for c in clips)
    assert sorted(c["clip"] for c in facts["data"]["adjudication"]) == sorted(clips)
    # links to Label Studio: built from the configured base, no opener, no referrer
    for href, rel in facts["links"]:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/projects/\d+/data\?task=\d+", href), href
        assert set(rel.split()) >= {"noopener", "noreferrer"}
    # the plots are drawn, and plotly's own markup in labels is not followed
    assert all(n >= 1 for n in facts["svgs"]), facts["svgs"]
    assert facts["plotLinks"] == 0
    assert facts["ticks"] == len(annotators)
    # the scorecard pages show the same hostile strings as text, and run none of them
    for name, plots in SCORECARD_PAGES.items():
        page.goto(f"{url}/dashboard/{project_id}/{name}")
        for plot in plots:
            page.wait_for_selector(f"#plot-{plot} svg.main-svg")
        facts = page.evaluate(SCORECARD_FACTS)
        assert tab.dialogs == [] and facts["pwned"] == [] and tab.errors == [], name
        assert facts["scripts"] == [
            "/static/plotly.min.js",
            "/static/dashboard.js",
            "application/json",
        ]
        assert facts["foreign"] == [] and facts["plotLinks"] == 0, (name, facts)
        shown = {"annotators": annotators, "performers": speakers}.get(name, clips)
        assert sorted(facts["first"]) == sorted(_as_html_text(x) for x in shown), name


def test_security_headers_on_pages_json_and_files(service: tuple[str, Taxonomy]) -> None:
    url, _ = service
    with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=60) as client:
        answers = {
            "login form": client.get("/login"),
            "dashboard": client.get("/dashboard/99"),
            "dashboard index": client.get("/dashboard"),
            "JSON read": client.get("/projects"),
            "script": client.get("/static/dashboard.js"),
            "style sheet": client.get("/static/dashboard.css"),
            "plotly.js": client.get("/static/plotly.min.js"),
            "not found": client.get("/no/such/page"),
            "health": client.get("/health"),
        }
    for what, answer in answers.items():
        assert answer.status_code in (200, 404), (what, answer.status_code)
        headers = answer.headers
        assert headers["x-content-type-options"] == "nosniff", what
        assert headers["referrer-policy"] == "no-referrer", what
        assert headers["x-frame-options"] == "DENY", what
        policy = dict(
            (d.split()[0], d.split()[1:])
            for d in headers["content-security-policy"].split(";")
            if d.strip()
        )
        assert policy["default-src"] == ["'none'"], what
        assert policy["script-src"] == ["'self'"], what  # no inline script, no eval
        assert policy["base-uri"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
        assert policy["form-action"] == ["'self'"] and policy["connect-src"] == ["'self'"]
        assert policy["img-src"] == ["'self'", "data:"], what
        # plotly.js sets style attributes while drawing; styles cannot run script
        assert set(policy["style-src"]) <= {"'self'", "'unsafe-inline'"}, what
    assert answers["dashboard"].headers["cache-control"] == "no-store"
    assert answers["script"].headers["content-type"].startswith("application/javascript")
    # no inline script or style anywhere in the page: every <script> has a src or is JSON
    # data that never runs, no event handler or style attribute, no <style> element
    tags = _Tags()
    tags.feed(answers["dashboard"].text)
    assert tags.scripts == [
        {"src": "/static/plotly.min.js", "defer": None},
        {"src": "/static/dashboard.js", "defer": None},
        {"type": "application/json", "id": "dashboard-data"},
    ]
    assert tags.inline == [] and "style" not in tags.names


class _Tags(HTMLParser):
    """Script tags, tag names, and inline handlers or styles of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.names: set[str] = set()
        self.inline: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.names.add(tag)
        if tag == "script":
            self.scripts.append(dict(attrs))
        self.inline += [(tag, k) for k, _ in attrs if k.startswith("on") or k == "style"]
