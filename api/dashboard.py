"""The QA dashboard: one HTML page of plots a QA lead reads, rendered on the server.

Figures are built with plotly (Python) and drawn by plotly.js, which the service serves
from the plotly package itself, so the page works offline.
"""

from __future__ import annotations

import html
import json
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import plotly
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from sqlmodel import Session

from annotate.agreement import icc_report
from api import members, reports, store
from api.inbox import Lag
from schemas.taxonomy import Taxonomy

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
# the page's script and style sheet (no inline script or style in the page)
STATIC = Path(__file__).parent / "static"


def _ci_bars(
    db: Session, project_id: int, taxonomy: Taxonomy
) -> tuple[go.Figure, go.Figure, dict[str, dict[str, Any]]]:
    """Alpha per dimension, and the ICC of the rating dimensions, each with its 95% interval.

    Both intervals are the project's one bootstrap (:mod:`annotate.agreement.intervals`):
    the alpha bars show what ``/agreement/summary`` and an export's data card show. The
    third value holds each dimension's alpha figures as computed (the page carries them).
    """
    names, alphas, lows, highs, notes = [], [], [], [], []
    intervals: dict[str, dict[str, Any]] = {}
    icc_names, iccs, icc_lows, icc_highs, icc_notes = [], [], [], [], []
    for dim in taxonomy.dimensions:
        frame = reports.load(db, project_id, dim.name, taxonomy)
        figures = reports.summary(frame, coefficients=False)
        intervals[dim.name] = figures
        names.append(plot_text(f"{dim.name} ({dim.level})"))
        alphas.append(figures["alpha"])
        lows.append(_minus(figures["alpha"], figures["ci_low"]))
        highs.append(_minus(figures["ci_high"], figures["alpha"]))
        notes.append(plot_text(_interval_note(figures)))
        if dim.level not in ("interval", "ratio") or len(frame) == 0:
            continue
        report = icc_report(frame.matrix()[0])
        single = report.get("single") or {}
        icc_names.append(plot_text(dim.name))
        iccs.append(single.get("icc"))
        icc_lows.append(_minus(single.get("icc"), single.get("ci_low")))
        icc_highs.append(_minus(single.get("ci_high"), single.get("icc")))
        icc_notes.append(_icc_note(report))
    alpha_fig = _bars(names, alphas, (lows, highs), notes, "#3b7dd8", "alpha")
    alpha_fig.update_layout(
        title="Krippendorff's alpha per dimension (95% bootstrap CI)",
        yaxis={"range": [-0.2, 1.0], "title": "alpha"},
    )
    icc_fig = go.Figure(
        go.Bar(
            x=icc_names,
            y=iccs,
            error_y={
                "type": "data",
                "symmetric": False,
                "array": icc_highs,
                "arrayminus": icc_lows,
            },
            marker_color="#8a5cc2",
            customdata=icc_notes,
            hovertemplate="%{x}<br>ICC %{y:.3f}<br>%{customdata}<extra></extra>",
        )
    )
    icc_fig.update_layout(
        title="ICC of one rating per rating dimension (95% bootstrap CI; hover: form and why)",
        yaxis={"range": [-0.2, 1.0], "title": "ICC"},
    )
    return alpha_fig, icc_fig, intervals


def _bars(
    names: list[str],
    values: list[float | None],
    errors: tuple[list[float | None], list[float | None]],
    notes: list[str],
    color: str,
    what: str,
) -> go.Figure:
    return go.Figure(
        go.Bar(
            x=names,
            y=values,
            error_y={
                "type": "data",
                "symmetric": False,
                "array": errors[1],
                "arrayminus": errors[0],
            },
            marker_color=color,
            customdata=notes,
            hovertemplate=f"%{{x}}<br>{what} %{{y:.3f}}<br>%{{customdata}}<extra></extra>",
        )
    )


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _interval_note(figures: dict[str, Any]) -> str:
    if figures.get("ci_low") is None:
        return str(figures.get("reason") or "no interval")
    return (
        f"95% CI [{figures['ci_low']:.3f}, {figures['ci_high']:.3f}], {figures['n_boot']} "
        f"resamples of {figures.get('units', 0)} units ({figures['dropped']} dropped)"
    )


def _icc_note(report: dict[str, Any]) -> str:
    """The ICC bar's hover: form, design, units and ratings per unit, interval and why, in
    lines of plot text (each escaped, joined with plotly's line break)."""
    if report.get("form") is None:
        lines = textwrap.wrap(str(report.get("reason") or "undefined"), 70)
    else:
        raters = report["raters_per_unit"]
        single = report.get("single") or {}
        interval = (
            f"[{single['ci_low']:.3f}, {single['ci_high']:.3f}] ({single['dropped']} dropped)"
            if single.get("ci_low") is not None
            else "no interval"
        )
        lines = [
            f"{report['form']}, {report['design']} design: {report['units']} units, "
            f"{raters['min']}-{raters['max']} ratings per unit (k = {raters['k']:.2f})",
            f"95% CI {interval}",
            *textwrap.wrap(report["why"], 70),
        ]
    return "<br>".join(plot_text(line) for line in lines)


def _pairwise(frame: reports.Frame, names: dict[str, str]) -> go.Figure:
    """Annotator x annotator alpha; rows and columns in one order, row i = column i (the
    diagonal runs from the top left). The hover shows the units each pair compared; pairs
    under the minimum overlap are drawn but left out of the mean."""
    pairs = reports.pairwise(frame)
    labels = [plot_text(names.get(a, a)) for a in pairs["annotators"]]  # api.members
    minimum = pairs["min_overlap"]
    hover = [
        [
            f"{units} units compared"
            + ("" if i == j or units >= minimum else f" (under {minimum}: not in means)")
            for j, units in enumerate(row)
        ]
        for i, row in enumerate(pairs["units"])
    ]
    fig = go.Figure(
        go.Heatmap(
            z=pairs["alpha"],
            x=labels,
            y=labels,
            zmin=-0.2,
            zmax=1.0,
            colorscale="RdYlGn",
            colorbar={"title": "alpha"},
            customdata=hover,
            # each cell shows the units the pair compared (the diagonal: the annotator's own)
            text=pairs["units"],
            texttemplate="%{text}",
            hovertemplate="%{y} x %{x}<br>alpha %{z:.3f}<br>%{customdata}<extra></extra>",
        )
    )
    mean = "n/a" if pairs["mean"] is None else f"{pairs['mean']:.3f}"
    fig.update_layout(
        title=(
            f"Annotator x annotator alpha ({plot_text(frame.dim.name)})<br><sub>mean over "
            f"pairs {mean}, weighted by units compared; pairs under {minimum} units not in "
            "the mean; each cell: units compared</sub>"
        ),
        xaxis={"type": "category", "categoryorder": "array", "categoryarray": labels},
        yaxis={
            "type": "category",
            "categoryorder": "array",
            "categoryarray": labels,
            "autorange": "reversed",
        },
    )
    return fig


def _drift(frame: reports.Frame) -> go.Figure:
    size = max(50, len(frame) // 10)
    series = reports.drift(frame, "count", size=size)
    fig = go.Figure(
        go.Scatter(
            x=[plot_text(s["window"]) for s in series],
            y=[s["alpha"] for s in series],
            mode="lines+markers",
        )
    )
    fig.update_layout(
        title=f"Alpha over time ({frame.dim.name}, windows of {size} judgements)",
        yaxis={"range": [-0.2, 1.0]},
        xaxis={"type": "category"},
    )
    return fig


def _confusion(frame: reports.Frame) -> go.Figure:
    table = reports.confusion(frame)
    fig = go.Figure(
        go.Heatmap(
            z=table["matrix"],
            x=[plot_text(label) for label in table["labels"]],
            y=[plot_text(label) for label in table["labels"]],
            colorscale="Blues",
            colorbar={"title": "pairs"},
        )
    )
    fig.update_layout(
        title=f"Confusion between annotators ({frame.dim.name}, coincidences)",
        xaxis={"title": "label by one annotator"},
        yaxis={"title": "label by another", "autorange": "reversed"},
    )
    return fig


def _breakdowns(frame: reports.Frame) -> go.Figure:
    """Alpha by session, by performer (whose turn it is, by performer id) and by label
    (alpha of 'this label or not'), side by side; the hover gives the units and judgements behind
    each bar, and a bar without a value says why."""
    parts = [
        ("session", reports.breakdown(frame, "session")),
        ("performer", reports.breakdown(frame, "speaker")),
        ("label", reports.breakdown(frame, "label")),
    ]
    fig = make_subplots(
        rows=1,
        cols=3,
        subplot_titles=[f"by {name}" for name, _ in parts],
        horizontal_spacing=0.06,
        shared_yaxes=True,
    )
    for column, (name, rows) in enumerate(parts, start=1):
        notes = []
        for row in rows:
            units = f"{row['units']} turns, " if "units" in row else ""
            why = "" if row["alpha"] is not None else "<br>no alpha: no turn with two labels"
            notes.append(f"{units}{row['judgements']} judgements{why}")
        fig.add_trace(
            go.Bar(
                x=[plot_text(row["key"]) for row in rows],
                y=[row["alpha"] for row in rows],
                name=name,
                marker_color=("#3b7dd8", "#d88a3b", "#3bb08f")[column - 1],
                customdata=notes,
                hovertemplate=name + " %{x}<br>alpha %{y:.3f}<br>%{customdata}<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=column,
        )
        fig.update_xaxes(type="category", row=1, col=column)
    fig.update_yaxes(range=[-0.2, 1.0])
    fig.update_layout(
        title=f"Alpha by session, performer and label ({plot_text(frame.dim.name)}; hover: counts)"
    )
    return fig


def _shifts(figures: dict[str, Any]) -> go.Figure:
    """Shift agreement per clip: unitizing alpha (bars) and the spans marked (line, right
    axis); the title carries the project's matching F1 and from -> to agreement."""
    clips = figures["clips"]
    names = [plot_text(c["clip"]) for c in clips]
    notes = [f"{c['annotators']} annotators, {c['events']} spans" for c in clips]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Bar(
            x=names,
            y=[c["unitizing_alpha"] for c in clips],
            name="unitizing alpha",
            marker_color="#c2445c",
            customdata=notes,
            hovertemplate="%{x}<br>unitizing alpha %{y:.3f}<br>%{customdata}<extra></extra>",
        ),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(
            x=names,
            y=[c["events"] for c in clips],
            name="shift spans",
            mode="markers",
            marker={"color": "#444", "symbol": "diamond"},
            hovertemplate="%{x}<br>%{y} shift spans<extra></extra>",
        ),
        secondary_y=True,
    )
    fig.update_yaxes(range=[-0.2, 1.0], title_text="unitizing alpha", secondary_y=False)
    fig.update_yaxes(
        title_text="spans marked", rangemode="tozero", tickformat="d", secondary_y=True
    )
    fig.update_xaxes(type="category")
    fig.update_layout(
        title=(
            "Shift spans per clip<br><sub>matching F1 within "
            f"{figures['tolerance']:.1f} s: {_fmt(figures['f1'])}; from -> to agreement on "
            f"matched spans: {_fmt(figures['from_to_agreement'])}; unitizing alpha "
            f"{_fmt(figures['unitizing_alpha'])}</sub>"
        ),
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def render(
    db: Session,
    project_id: int,
    taxonomy: Taxonomy,
    *,
    threshold: float,
    ls_url: str,
    lag: Lag | None = None,
) -> str:
    """The dashboard page of a project (raises store.NotFound for an unknown project).

    Every value from the store (clip keys, annotator ids, labels) is escaped for where it
    lands: HTML text and attributes with :func:`html.escape`, the figures and figures' data in
    a ``<script type="application/json">`` element that never runs (see :func:`script_json`),
    and text that plotly.js draws with plotly's own markup escaped as entities. The page
    holds no inline script: ``/static/dashboard.js`` reads the JSON and draws the plots.
    ``lag``: how far the store is behind what the webhook acknowledged; when events wait,
    the page says so above the figures.
    """
    emotion = reports.load(db, project_id, taxonomy.emotion.name, taxonomy)
    live = store.agreement(db, project_id, taxonomy.emotion.name, taxonomy)
    dimensions, iccs, intervals = _ci_bars(db, project_id, taxonomy)
    shift_figures = reports.shifts(db, project_id)
    figures: list[tuple[str, go.Figure]] = [
        ("dimensions", dimensions),
        ("icc", iccs),
        ("pairwise", _pairwise(emotion, members.names(db, set(emotion.annotator)))),
        ("breakdowns", _breakdowns(emotion)),
        ("shifts", _shifts(shift_figures)),
        ("drift", _drift(emotion)),
        ("confusion", _confusion(emotion)),
    ]
    clips = reports.adjudication(emotion, threshold, lambda t: task_link(ls_url, project_id, t))
    rows = "".join(_row(c) for c in clips) or (
        '<tr><td colspan="4">none below the threshold</td></tr>'
    )
    plots = "".join(f'<div class="plot" id="plot-{name}"></div>' for name, _ in figures)
    data = {
        "figures": {name: json.loads(fig.to_json()) for name, fig in figures},
        "live": live,
        "intervals": intervals,
        "adjudication": clips,
        "freshness": (lag or Lag()).as_dict(),
    }
    head = _stale(lag) + _header(project_id, live) + _shift_line(shift_figures)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>QA dashboard: project {project_id}</title>
<link rel="stylesheet" href="/static/dashboard.css">
<script src="/static/plotly.min.js" defer></script>
<script src="/static/dashboard.js" defer></script>
</head><body>
<form class="logout" method="post" action="/logout"><button type="submit">Log out</button></form>
<h1>QA dashboard: project {project_id}</h1>
<nav class="pages"><a href="/dashboard/{int(project_id)}/annotators">annotators</a>
<a href="/dashboard/{int(project_id)}/performers">performers</a>
<a href="/dashboard/{int(project_id)}/adjudication">adjudication queue</a></nav>
{head}
<div class="figures">{plots}</div>
<h2>Clips to adjudicate (emotion alpha below {threshold:.2f})</h2>
<table id="adjudication"><tr><th>clip</th><th>alpha</th><th>annotators</th><th></th></tr>
{rows}</table>
<script type="application/json" id="dashboard-data">{script_json(data)}</script>
</body></html>"""


def index(projects: list[int]) -> str:
    """The page listing every project's dashboard (where a login lands by default)."""
    items = "".join(
        f'<li><a href="/dashboard/{int(p)}">project {int(p)}</a></li>' for p in projects
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>QA dashboards</title>
<link rel="stylesheet" href="/static/dashboard.css">
</head><body>
<form class="logout" method="post" action="/logout"><button type="submit">Log out</button></form>
<h1>QA dashboards</h1>
<ul id="projects">{items or "<li>no project has judgements yet</li>"}</ul>
</body></html>"""


_SCRIPT_UNSAFE = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def script_json(value: Any) -> str:
    """``value`` as JSON that is safe as the text of a ``<script type="application/json">``
    element: ``<``, ``>``, ``&``, U+2028 and U+2029 are written as ``\\uXXXX`` escapes (they
    can only occur inside JSON strings, where the escape means the same character), so no
    ``</script>`` or ``<!--`` can end or change the element.

    Examples
    --------
    >>> script_json({"clip": "</script><b>"})
    '{"clip":"\\\\u003c/script\\\\u003e\\\\u003cb\\\\u003e"}'
    >>> json.loads(script_json({"clip": "</script>"}))
    {'clip': '</script>'}
    """
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.translate(_SCRIPT_UNSAFE)


def plot_text(value: Any) -> str:
    """Text that plotly.js draws as it is: plotly reads ``<br>``, ``<a href>`` and other
    tags in labels, so ``&``, ``<`` and ``>`` become entities (which plotly shows as the
    characters)."""
    return html.escape(str(value), quote=False)


def task_link(base: str, project_id: int, task: int) -> str | None:
    """The Label Studio URL of a task, or None unless ``base`` is an http(s) URL."""
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{base.rstrip('/')}/projects/{int(project_id)}/data?task={int(task)}"


def _row(clip: dict[str, Any]) -> str:
    url = clip["url"]
    link = (
        f'<a href="{html.escape(url, quote=True)}" rel="noopener noreferrer" target="_blank">'
        "open in Label Studio</a>"
        if url
        else ""
    )
    return (
        f"<tr><td>{html.escape(str(clip['clip']))}</td><td>{_fmt(clip['alpha'])}</td>"
        f"<td>{int(clip['annotators'])}</td><td>{link}</td></tr>"
    )


def _stale(lag: Lag | None) -> str:
    """A banner when the figures do not count every acknowledged event yet."""
    if lag is None or lag.fresh:
        return ""
    return (
        '<p class="stale" id="stale" role="status">Not fresh: '
        f"{lag.pending} acknowledged event{'s' if lag.pending != 1 else ''} not applied yet "
        f"(the oldest {lag.oldest_age_s:.0f} s ago); the figures below leave "
        f"{'them' if lag.pending != 1 else 'it'} out. See /health.</p>"
    )


def _header(project_id: int, live: dict[str, Any]) -> str:
    return (
        '<p class="live">'
        f"<span>emotion alpha (live): <b>{_fmt(live['alpha'])}</b></span>"
        f"<span>AC1: <b>{_fmt(live['ac1'])}</b></span>"
        f"<span>percent agreement: <b>{_fmt(live['percent_agreement'])}</b></span>"
        f"<span>{live['judgements']} judgements, {live['units']} turns, "
        f"{live['annotators']} annotators</span></p>"
    )


def _shift_line(figures: dict[str, Any]) -> str:
    links = figures.get("trigger_links") or {}
    return (
        '<p class="live">'
        f"<span>shift events: <b>{figures['events']}</b></span>"
        f"<span>matching F1 (within {figures['tolerance']:.1f} s): "
        f"<b>{_fmt(figures['f1'])}</b></span>"
        f"<span>from -> to agreement: <b>{_fmt(figures['from_to_agreement'])}</b></span>"
        f"<span>unitizing alpha: <b>{_fmt(figures['unitizing_alpha'])}</b></span>"
        f"<span>same trigger turn: <b>{_fmt(links.get('share'))}</b>"
        f" (n = {int(links.get('n') or 0)})</span></p>"
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
