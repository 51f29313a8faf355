"""The QA dashboard: one HTML page of plots a QA lead reads, rendered on the server.

Figures are built with plotly (Python) and drawn by plotly.js, which the service serves
from the plotly package itself, so the page works offline.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import plotly
import plotly.graph_objects as go
from sqlmodel import Session

from api import reports, store
from schemas.taxonomy import Taxonomy

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def _ci_bars(db: Session, project_id: int, taxonomy: Taxonomy) -> go.Figure:
    names, alphas, lows, highs = [], [], [], []
    for dim in taxonomy.dimensions:
        figures = reports.summary(reports.load(db, project_id, dim.name, taxonomy), n_boot=300)
        names.append(f"{dim.name} ({dim.level})")
        alphas.append(figures["alpha"])
        lows.append(None if figures["ci_low"] is None else figures["alpha"] - figures["ci_low"])
        highs.append(None if figures["ci_high"] is None else figures["ci_high"] - figures["alpha"])
    fig = go.Figure(
        go.Bar(
            x=names,
            y=alphas,
            error_y={"type": "data", "symmetric": False, "array": highs, "arrayminus": lows},
            marker_color="#3b7dd8",
        )
    )
    fig.update_layout(
        title="Krippendorff's alpha per dimension (95% bootstrap CI)",
        yaxis={"range": [-0.2, 1.0], "title": "alpha"},
    )
    return fig


def _pairwise(frame: reports.Frame) -> go.Figure:
    pairs = reports.pairwise(frame)
    fig = go.Figure(
        go.Heatmap(
            z=pairs["alpha"],
            x=pairs["annotators"],
            y=pairs["annotators"],
            zmin=-0.2,
            zmax=1.0,
            colorscale="RdYlGn",
            colorbar={"title": "alpha"},
        )
    )
    fig.update_layout(
        title=f"Annotator x annotator alpha ({frame.dim.name})",
        xaxis={"type": "category"},
        yaxis={"type": "category"},
    )
    return fig


def _drift(frame: reports.Frame) -> go.Figure:
    size = max(50, len(frame) // 10)
    series = reports.drift(frame, "count", size=size)
    fig = go.Figure(
        go.Scatter(
            x=[s["window"] for s in series], y=[s["alpha"] for s in series], mode="lines+markers"
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
            x=table["labels"],
            y=table["labels"],
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


def render(
    db: Session, project_id: int, taxonomy: Taxonomy, *, threshold: float, ls_url: str
) -> str:
    """The dashboard page of a project (raises store.NotFound for an unknown project)."""
    emotion = reports.load(db, project_id, taxonomy.emotion.name, taxonomy)
    live = store.agreement(db, project_id, taxonomy.emotion.name, taxonomy)
    figures: list[tuple[str, go.Figure]] = [
        ("dimensions", _ci_bars(db, project_id, taxonomy)),
        ("pairwise", _pairwise(emotion)),
        ("drift", _drift(emotion)),
        ("confusion", _confusion(emotion)),
    ]
    link = lambda task: f"{ls_url.rstrip('/')}/projects/{project_id}/data?task={task}"  # noqa: E731
    clips = reports.adjudication(emotion, threshold, link)
    rows = (
        "".join(
            f"<tr><td>{html.escape(c['clip'])}</td><td>{_fmt(c['alpha'])}</td>"
            f'<td>{c["annotators"]}</td><td><a href="{html.escape(c["url"] or "#")}">'
            f"open in Label Studio</a></td></tr>"
            for c in clips
        )
        or '<tr><td colspan="4">none below the threshold</td></tr>'
    )
    plots = "".join(
        f'<div class="plot" id="plot-{name}"></div>'
        f"<script>Plotly.newPlot('plot-{name}', ...(f => [f.data, f.layout])"
        f"({fig.to_json()}), {{responsive: true}});</script>"
        for name, fig in figures
    )
    head = _header(project_id, live) + _shift_line(reports.shifts(db, project_id))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>QA dashboard: project {project_id}</title>
<script src="/static/plotly.min.js"></script>
<style>
 body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; }}
 .figures {{ display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }}
 .plot {{ height: 380px; border: 1px solid #ddd; }}
 table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 4px 8px; }}
 .live span {{ margin-right: 24px; }}
</style></head><body>
<h1>QA dashboard: project {project_id}</h1>
{head}
<div class="figures">{plots}</div>
<h2>Clips to adjudicate (emotion alpha below {threshold:.2f})</h2>
<table id="adjudication"><tr><th>clip</th><th>alpha</th><th>annotators</th><th></th></tr>
{rows}</table>
<script>window.dashboardData = {json.dumps({"live": live, "adjudication": clips})};</script>
</body></html>"""


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
    return (
        '<p class="live">'
        f"<span>shift events: <b>{figures['events']}</b></span>"
        f"<span>matching F1 (within {figures['tolerance']:.1f} s): "
        f"<b>{_fmt(figures['f1'])}</b></span>"
        f"<span>from -> to agreement: <b>{_fmt(figures['from_to_agreement'])}</b></span>"
        f"<span>unitizing alpha: <b>{_fmt(figures['unitizing_alpha'])}</b></span></p>"
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
