"""The dashboard's pages beside the agreement figures: the annotators' and performers'
scorecards and the adjudication queue, as a QA lead reads them.

Same rules as the main page (:mod:`api.dashboard`): every value from the store is escaped
for where it lands (HTML text with :func:`html.escape`, plot text with
:func:`api.dashboard.plot_text`), the figures travel in a non-executing JSON element and
``/static/dashboard.js`` draws them; no inline script or style.
"""

from __future__ import annotations

import html
import json
from typing import Annotated, Any

import plotly.graph_objects as go
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse
from sqlmodel import Session

from api import adjudication, dashboard, login, scorecards, store
from api.dashboard import plot_text, script_json
from api.db import request_session
from api.freshness import lag_headers, note_lag

__all__ = [
    "adjudication_page",
    "adjudication_queue",
    "annotators_page",
    "nav",
    "performers_page",
    "register",
]


def _fmt(value: Any, pattern: str = "{:.3f}") -> str:
    return "n/a" if value is None else pattern.format(value)


def nav(project_id: int) -> str:
    """Links between a project's QA pages."""
    p = int(project_id)
    return (
        f'<nav class="pages"><a href="/dashboard/{p}">agreement</a> '
        f'<a href="/dashboard/{p}/annotators">annotators</a> '
        f'<a href="/dashboard/{p}/performers">performers</a> '
        f'<a href="/dashboard/{p}/adjudication">adjudication queue</a></nav>'
    )


def _page(project_id: int, title: str, body: str, figures: dict[str, go.Figure]) -> str:
    plots = "".join(f'<div class="plot" id="plot-{name}"></div>' for name in figures)
    data = {"figures": {name: json.loads(fig.to_json()) for name, fig in figures.items()}}
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)}: project {int(project_id)}</title>
<link rel="stylesheet" href="/static/dashboard.css">
<script src="/static/plotly.min.js" defer></script>
<script src="/static/dashboard.js" defer></script>
</head><body>
<form class="logout" method="post" action="/logout"><button type="submit">Log out</button></form>
<h1>{html.escape(title)}: project {int(project_id)}</h1>
{nav(project_id)}
<div class="figures">{plots}</div>
{body}
<script type="application/json" id="dashboard-data">{script_json(data)}</script>
</body></html>"""


def _error(value: dict[str, Any], key: str) -> tuple[float | None, float | None]:
    v, low, high = value.get(key), value.get("ci_low"), value.get("ci_high")
    if v is None or low is None or high is None:
        return None, None
    return v - low, high - v


def annotators_page(project_id: int, card: dict[str, Any]) -> str:
    """The annotators' scorecard (:func:`api.scorecards.annotators`) as a page: alpha with
    the rest and against gold per annotator (with intervals), and the table of figures."""
    rows = card["annotators"]
    names = [plot_text(a["name"]) for a in rows]
    fig = go.Figure()
    for key, title, color in (
        ("with_rest", "with the rest", "#3b7dd8"),
        ("vs_gold", "against gold", "#d8a13b"),
    ):
        errors = [_error(a[key], "alpha") for a in rows]
        fig.add_trace(
            go.Bar(
                x=names,
                y=[a[key].get("alpha") for a in rows],
                name=title,
                marker_color=color,
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [e[1] for e in errors],
                    "arrayminus": [e[0] for e in errors],
                },
                customdata=[f"{a[key]['units']} units compared" for a in rows],
                hovertemplate="%{x}<br>alpha %{y:.3f}<br>%{customdata}<extra></extra>",
            )
        )
    fig.update_layout(
        title=f"Each annotator's alpha ({plot_text(card['dimension'])}; 95% bootstrap CI)",
        barmode="group",
        yaxis={"range": [-0.4, 1.0]},
        xaxis={"type": "category"},
    )
    cells = []
    for a in rows:
        rest, gold, drift, bias = a["with_rest"], a["vs_gold"], a["drift"], a["bias"]
        lag = a["shift_lag"]
        cells.append(
            "<tr>"
            f"<td>{html.escape(str(a['name']))}</td><td>{a['judgements']}</td>"
            f"<td>{_fmt(rest.get('alpha'))} [{_fmt(rest.get('ci_low'))}, "
            f"{_fmt(rest.get('ci_high'))}]</td><td>{rest['units']}</td>"
            f"<td>{_fmt(gold.get('alpha'))}</td><td>{_fmt(gold.get('agreement'))}</td>"
            f"<td>{gold['units']}</td>"
            f"<td>{_self_cell(a['self'])}</td>"
            f"<td>{_fmt(drift.get('change'), '{:+.3f}')}</td>"
            f"<td>{_fmt(bias.get('tvd'))} ({html.escape(str(bias.get('over_used') or '-'))})</td>"
            f"<td>{_fmt(a['speed']['median_seconds_per_turn'], '{:.1f}')}</td>"
            f"<td>{_fmt(lag.get('median_lag_s'), '{:+.2f}')} ({lag['matched']})</td>"
            "</tr>"
        )
    body = (
        '<table id="annotators"><tr><th>annotator</th><th>judgements</th>'
        "<th>alpha with the rest [95% CI]</th><th>units</th><th>alpha vs gold</th>"
        "<th>accuracy vs gold</th><th>gold units</th><th>with themselves</th>"
        "<th>drift</th><th>label bias (over-used)</th><th>s / turn</th>"
        "<th>shift lag s (matched)</th></tr>"
        + ("".join(cells) or '<tr><td colspan="12">no annotator yet</td></tr>')
        + "</table>"
    )
    return _page(project_id, "Annotators", body, {"annotators": fig})


def _self_cell(figure: dict[str, Any]) -> str:
    """The *with themselves* cell: alpha (share equal, turns), or why there is none."""
    if figure.get("alpha") is None and figure.get("reason"):
        return html.escape(str(figure["reason"]))
    return (
        f"{_fmt(figure.get('alpha'))} ({_fmt(figure.get('agreement'))} equal, "
        f"{int(figure['units'])} turns)"
    )


def performers_page(project_id: int, card: dict[str, Any]) -> str:
    """The performers' scorecard (:func:`api.scorecards.performers`) as a page: the
    recognition rate per performer and intended emotion, the confusion intended ->
    perceived, and the table with intervals, authenticity and intended shifts marked."""
    people = card["performers"]
    intended = sorted({r["intended"] for p in people for r in p["by_intended"]})
    rate = [
        [next((r["rate"] for r in p["by_intended"] if r["intended"] == e), None) for e in intended]
        for p in people
    ]
    recognition = go.Figure(
        go.Heatmap(
            z=rate,
            x=[plot_text(e) for e in intended],
            y=[plot_text(p["performer"]) for p in people],
            zmin=0.0,
            zmax=1.0,
            colorscale="Greens",
            colorbar={"title": "recognised"},
            hovertemplate="%{y}, intended %{x}<br>recognised %{z:.3f}<extra></extra>",
        )
    )
    recognition.update_layout(
        title="Recognition of the intended emotion (share of judgements)",
        xaxis={"title": "intended", "type": "category"},
        yaxis={"title": "performer", "type": "category"},
    )
    labels = card.get("labels") or []
    counts = [
        [
            sum(
                r["perceived"].get(label, 0)
                for p in people
                for r in p["by_intended"]
                if r["intended"] == e
            )
            for label in labels
        ]
        for e in intended
    ]
    confusion = go.Figure(
        go.Heatmap(
            z=counts,
            x=[plot_text(label) for label in labels],
            y=[plot_text(e) for e in intended],
            colorscale="Blues",
            colorbar={"title": "judgements"},
            hovertemplate="intended %{y}<br>perceived %{x}: %{z}<extra></extra>",
        )
    )
    confusion.update_layout(
        title="Intended -> perceived (all performers)",
        xaxis={"title": "perceived", "type": "category"},
        yaxis={"title": "intended", "type": "category", "autorange": "reversed"},
    )
    cells = []
    for p in people:
        for r in p["by_intended"]:
            cells.append(
                "<tr>"
                f"<td>{html.escape(p['performer'])}</td><td>{html.escape(r['intended'])}</td>"
                f"<td>{r['turns']}</td><td>{r['judgements']}</td><td>{_fmt(r['rate'])} "
                f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]</td>"
                f"<td>{_fmt(r['authenticity']['mean'], '{:.2f}')} "
                f"(n={r['authenticity']['n']})</td></tr>"
            )
    shifts = "".join(
        f"<tr><td>{html.escape(p['performer'])}</td><td>{p['shifts']['intended']}</td>"
        f"<td>{p['shifts']['marked']} / {p['shifts']['views']}</td>"
        f"<td>{_fmt(p['shifts'].get('rate'))}</td><td>{p['shifts']['marked_by_anyone']}</td></tr>"
        for p in people
    )
    reason = f'<p class="stale">{html.escape(card["reason"])}</p>' if card.get("reason") else ""
    body = (
        reason
        + '<h2>Recognition and authenticity</h2><table id="performers"><tr><th>performer</th>'
        "<th>intended</th><th>turns</th><th>judgements</th><th>recognised [95% CI]</th>"
        "<th>authenticity</th></tr>" + "".join(cells) + "</table>"
        '<h2>Intended shifts</h2><table id="performer-shifts"><tr><th>performer</th>'
        "<th>intended shifts</th><th>marked / annotator views</th><th>rate</th>"
        "<th>marked by anyone</th></tr>" + shifts + "</table>"
    )
    return _page(
        project_id, "Performers", body, {"recognition": recognition, "intended": confusion}
    )


def adjudication_queue(
    db: Session, project_id: int, taxonomy: Any, threshold: float, ls_url: str
) -> list[dict[str, Any]]:
    """The clips a QA lead should send to an adjudicator, worst first: emotion alpha below
    ``threshold`` (or undefined with disagreement), and clips the adaptive overlap policy
    settled as *exhausted* (the panel is full and still split); each with its disagreeing
    turns and, once sent, its adjudication task (:func:`api.adjudication.queue`)."""
    return adjudication.queue(
        db,
        project_id,
        taxonomy,
        {taxonomy.emotion.name: threshold},
        lambda t: dashboard.task_link(ls_url, project_id, t),
    )


def adjudication_page(project_id: int, queue: list[dict[str, Any]], threshold: float) -> str:
    """The adjudication queue (:func:`adjudication_queue`) as a page."""
    cells = []
    for c in queue:
        url = c.get("url")
        link = (
            f'<a href="{html.escape(url, quote=True)}" rel="noopener noreferrer" '
            'target="_blank">open in Label Studio</a>'
            if url
            else ""
        )
        turns = ", ".join(html.escape(str(t)) for t in c["disagreeing_turns"]) or "-"
        cells.append(
            f"<tr><td>{html.escape(str(c['clip']))}</td><td>{_fmt(c['alpha'])}</td>"
            f"<td>{int(c['annotators'])}</td><td>{html.escape('; '.join(c['why']))}</td>"
            f"<td>{len(c['disagreeing_turns'])}</td><td>{turns}</td>"
            f"<td>{'task ' + str(int(c['sent'])) if c.get('sent') else 'not yet'}</td>"
            f"<td>{link}</td></tr>"
        )
    body = (
        f"<p>{len(queue)} clips: emotion alpha below {threshold:.2f} (<code>?threshold=</code>), "
        "or settled by the adaptive overlap policy with the panel full and still split.</p>"
        '<table id="adjudication-queue"><tr><th>clip</th><th>alpha</th><th>annotators</th>'
        "<th>why</th><th>disagreeing turns</th><th>turn ids</th><th>sent to adjudication</th>"
        "<th></th></tr>"
        + ("".join(cells) or '<tr><td colspan="8">nothing to adjudicate</td></tr>')
        + "</table>"
    )
    return _page(project_id, "Adjudication queue", body, {})


def register(router: APIRouter, dependencies: list[Any]) -> None:
    """Add the dashboard's pages and files to ``router`` (the pages router;
    ``dependencies``: the login check): ``/static/plotly.min.js`` and the page's script and
    style sheet, ``/dashboard`` (every project), ``/dashboard/{project_id}`` (the agreement
    figures) and ``/dashboard/{project_id}/annotators|performers|adjudication``."""

    @router.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        """plotly.js from the plotly package (the dashboard works offline)."""
        return FileResponse(dashboard.PLOTLY_JS, media_type="application/javascript")

    @router.get("/static/dashboard.{kind}", include_in_schema=False)
    def dashboard_static(kind: str) -> FileResponse:
        """The dashboard's script and style sheet (the page holds none inline)."""
        media = {"js": "application/javascript", "css": "text/css"}
        if kind not in media:
            raise HTTPException(404, f"no /static/dashboard.{kind}; expected .js or .css")
        return FileResponse(dashboard.STATIC / f"dashboard.{kind}", media_type=media[kind])

    @router.get("/dashboard", response_class=HTMLResponse, dependencies=dependencies)
    def dashboard_index(db: Annotated[Session, Depends(request_session)]) -> HTMLResponse:
        """Links to every project's QA dashboard (for a logged-in browser or an API key)."""
        return HTMLResponse(dashboard.index(store.projects(db)), headers=login.NO_STORE)

    @router.get("/dashboard/{project_id}", response_class=HTMLResponse, dependencies=dependencies)
    def dashboard_page(
        request: Request,
        db: Annotated[Session, Depends(request_session)],
        project_id: int,
        threshold: float = 0.667,
    ) -> HTMLResponse:
        """The QA dashboard of a project, for a browser logged in through ``/login`` (or an
        API client with ``X-API-Key``); otherwise a redirect to ``/login``. An old link with
        ``?key=`` logs in and redirects once to the page without the key."""
        state = request.app.state
        lag = note_lag(request, state.inbox, state.settings.service.read_wait_seconds)
        try:
            page = dashboard.render(
                db,
                project_id,
                state.taxonomy,
                threshold=threshold,
                ls_url=state.settings.label_studio.url,
                lag=lag,
            )
        except store.NotFound as exc:
            raise HTTPException(404, str(exc)) from None
        return HTMLResponse(page, headers={**login.NO_STORE, **lag_headers(lag)})

    @router.get(
        "/dashboard/{project_id}/{page}", response_class=HTMLResponse, dependencies=dependencies
    )
    def scorecard_page(
        request: Request,
        db: Annotated[Session, Depends(request_session)],
        project_id: int,
        page: str,
    ) -> HTMLResponse:
        """A project's scorecard page (``annotators`` or ``performers``), logged in."""
        if page not in ("annotators", "performers", "adjudication"):
            raise HTTPException(
                404, "no such page; expected annotators, performers or adjudication"
            )
        if project_id not in store.projects(db):
            raise HTTPException(404, f"project {project_id} has no judgements here")
        state = request.app.state
        lag = note_lag(request, state.inbox, state.settings.service.read_wait_seconds)
        if page == "adjudication":
            threshold = _threshold(request)
            queue = adjudication_queue(
                db, project_id, state.taxonomy, threshold, state.settings.label_studio.url
            )
            page_html = adjudication_page(project_id, queue, threshold)
        elif page == "annotators":
            page_html = annotators_page(
                project_id,
                scorecards.annotators(
                    db,
                    project_id,
                    state.taxonomy,
                    adjudicators=state.settings.adjudication.adjudicators,
                ),
            )
        else:
            page_html = performers_page(
                project_id, scorecards.performers(db, project_id, state.taxonomy)
            )
        return HTMLResponse(page_html, headers={**login.NO_STORE, **lag_headers(lag)})


def _threshold(request: Request) -> float:
    raw = request.query_params.get("threshold", "0.667")
    try:
        value = float(raw)
    except ValueError:
        raise HTTPException(422, "threshold: expected a number") from None
    if not -1.0 <= value <= 1.5:
        raise HTTPException(422, "threshold: expected a number from -1 to 1.5")
    return value
