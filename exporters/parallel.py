"""Rows built by worker processes over spans of tasks, written back in task order.

The plan (:func:`exporters.rows.plan_export`) is made once in the parent and sent to each
worker when it starts; each worker opens its own connection to the store, builds the rows
of one span of tasks at a time with the same :class:`exporters.rows.RowBuilder` as the
single-process path, and returns them as JSON lines with that span's accounting and card
statistics. Spans come back in order, so the file is the same as a single-process export.
Workers are started with ``spawn`` (fresh interpreters), never ``fork``: a forked child
would share the parent's database connections.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from typing import Any

from sqlmodel import Session, col, select

from api.models import Task
from exporters.audio import TurnAudio
from exporters.card import CardStats
from exporters.jsonl import iter_jsonl_lines
from exporters.plan import ExportPlan, _raw_rows
from exporters.rows import BATCH, Accounting, ExportOptions, RowBuilder
from schemas.taxonomy import Taxonomy

_STATE: dict[str, Any] = {}


def worker_url(db: Session) -> str | None:
    """The URL a worker can open the session's store with (``None``: an in-memory store)."""
    url = db.get_bind().url
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        return None
    return url.render_as_string(hide_password=False)


def task_spans(db: Session, project_id: int, size: int = BATCH) -> list[tuple[int, int]]:
    """``(after, last]`` id ranges of ``size`` live tasks each, in id order."""
    spans: list[tuple[int, int]] = []
    after, count, last = 0, 0, 0
    for (task_id,) in _raw_rows(
        db,
        select(Task.id)
        .where(Task.project_id == project_id, col(Task.deleted).is_(False))
        .order_by(col(Task.id)),
    ):
        count, last = count + 1, task_id
        if count == size:
            spans.append((after, last))
            after, count = last, 0
    if count:
        spans.append((after, last))
    return spans


def _start(
    url: str,
    project_id: int,
    taxonomy: Taxonomy,
    options: ExportOptions,
    plan: ExportPlan,
    exported_at: str,
    audio: TurnAudio | None,
) -> None:
    from api.db import make_engine

    _STATE.update(
        engine=make_engine(url),
        project_id=project_id,
        taxonomy=taxonomy,
        builder=RowBuilder(
            taxonomy,
            options,
            plan,
            Accounting(),
            lambda session, _: (plan.session_split or {}).get(session),
            exported_at,
            audio=audio,
        ),
    )


def _span(span: tuple[int, int]) -> tuple[str, Accounting, CardStats]:
    builder: RowBuilder = _STATE["builder"]
    builder.accounting = Accounting()
    card = CardStats(_STATE["taxonomy"])
    with Session(_STATE["engine"]) as db:
        rows = builder.rows(db, _STATE["project_id"], after=span[0], last=span[1])

        def counted() -> Iterator[dict[str, Any]]:
            for row in rows:
                card.add(row)
                yield row

        text = "".join(iter_jsonl_lines(counted()))
    return text, builder.accounting, card


def parallel_lines(
    url: str,
    spans: list[tuple[int, int]],
    *,
    workers: int,
    project_id: int,
    taxonomy: Taxonomy,
    options: ExportOptions,
    plan: ExportPlan,
    exported_at: str,
    audio: TurnAudio | None = None,
) -> Iterator[tuple[str, Accounting, CardStats]]:
    """Per span, in order: its JSON lines, accounting and card statistics."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(
        workers,
        initializer=_start,
        initargs=(url, project_id, taxonomy, options, plan, exported_at, audio),
    ) as pool:
        yield from pool.imap(_span, spans)
