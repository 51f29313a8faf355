"""The agreement service: FastAPI routes over the store.

Run it with ``uvicorn --factory api.app:app_from_env`` (the local stack does this), or
build it in code with :func:`create_app`.
"""

from __future__ import annotations

import gc
import hmac
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, func, select

from annotate.agreement import MIN_OVERLAP, N_BOOT, SEED
from annotate.config import Settings, load_settings, with_local_secrets
from annotate.labelstudio import SECRET_HEADER, LabelStudioError
from api import (
    adjudication_routes,
    dashboard_pages,
    intended,
    login,
    members,
    overlap_keeper,
    pins,
    privacy,
    reports,
    scorecards,
    store,
    supervise,
    sync,
)
from api.adjudication_routes import adjudicator_of
from api.applier import Applier
from api.db import init_db, make_engine, request_session
from api.doorbell import Bell
from api.freshness import FreshRoute, note_lag
from api.headers import SecurityHeaders
from api.inbox import Inbox, InboxUnavailable, service_taxonomy, settle_heap
from api.ingest import GroupCommit
from api.models import DeadLetter, JudgementPublic, JudgementsPublic
from api.overlap_keeper import keeper_of
from api.verify import verifier

try:  # orjson parses webhook bodies several times faster; the standard library also works
    from orjson import dumps as _dumps
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - orjson is a declared dependency
    from json import loads as _loads

    def _dumps(value: Any) -> bytes:
        return json.dumps(value).encode()


MAX_BODY = 2 * 1024 * 1024


get_db = request_session  # one database session per request


def require_key(
    request: Request,
    x_api_key: Annotated[str | None, Header()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """Reject read requests without the service's API key."""
    expected = request.app.state.api_key
    given = x_api_key or (authorization or "").removeprefix("Bearer ").strip()
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(401, "missing or wrong API key (header X-API-Key)")


def applied_first(request: Request) -> None:
    """Before a read: wait until every event acknowledged so far is applied (at most
    ``service.read_wait_seconds``), so that figures count what the webhook has answered
    for; when the wait runs out, the answer says how far behind it is (its
    ``X-Improv-Pending`` headers and ``freshness`` field, see ``api.freshness``)."""
    state = request.app.state
    note_lag(request, state.inbox, state.settings.service.read_wait_seconds)


SessionDep = Annotated[Session, Depends(get_db)]
router = APIRouter()
reads = APIRouter(
    dependencies=[Depends(require_key), Depends(applied_first)], route_class=FreshRoute
)
scorecards.register(reads)
overlap_keeper.register(reads)
adjudication_routes.register(reads)
pins.register(reads)


@router.get("/health")
def health(request: Request, db: SessionDep) -> JSONResponse:
    """Liveness of the service and its applier, the backlog, files and disk: 200 with
    ``"status": "ok"``, or 503 with ``"status": "degraded"`` and the reasons (see
    ``api.supervise``)."""
    db.exec(select(1)).one()
    status, body = supervise.health(request.app.state)
    return JSONResponse(body, status_code=status)


async def _bounded_body(request: Request) -> bytes:
    """The request body, refused (413) as soon as it is known to pass :data:`MAX_BODY`:
    from its Content-Length, or while it streams in when there is none."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise HTTPException(413, f"body of {declared} bytes; at most {MAX_BODY}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise HTTPException(413, f"body of more than {MAX_BODY} bytes; at most {MAX_BODY}")
        chunks.append(chunk)
    return b"".join(chunks)


HOOK = "/webhooks/label-studio"


@router.post(HOOK, response_model=None)
async def webhook(request: Request) -> Response:
    """Take one Label Studio event (authenticated by the shared-secret header).

    Answers 200 once the event is kept durably (committed to the inbox; deliveries arriving
    together are committed together, see ``api.ingest``); the applier applies it to the
    store moments later, and reads wait for that (see ``api.inbox``). A malformed payload
    gets 422 naming the field, and is kept in the dead-letter table; 503 when the database
    cannot be reached (nothing is kept: Label Studio's next pull brings the event).

    Requests to this path are answered by :class:`WebhookRoute` before FastAPI's routing
    (the same checks and answers, in a fraction of the time); this route documents it.
    """
    body = await _bounded_body(request)
    status, answer, headers = await take_delivery(
        request.app.state, request.headers.get(SECRET_HEADER, "").encode("latin-1"), body
    )
    return Response(_dumps(answer), status, headers, media_type="application/json")


async def take_delivery(
    state: Any, given: bytes, body: bytes
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Check and keep one webhook delivery: (status, JSON answer, extra headers)."""
    if not state.webhook_secret or not hmac.compare_digest(given, state.webhook_secret.encode()):
        return 401, {"detail": f"missing or wrong {SECRET_HEADER} header"}, {}
    writer: GroupCommit = state.ingest
    try:
        try:
            payload = _loads(body)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's
            await writer.keep(body, "body: not JSON")
            return 422, {"detail": "body: expected a JSON object"}, {}
        try:
            event = store.parse_event(payload, state.taxonomy)
        except store.PayloadError as exc:
            await writer.keep(body, str(exc))
            return 422, {"detail": str(exc)}, {}
        await writer.keep(body)
    except OperationalError as exc:
        return 503, {"detail": _unavailable(exc)}, {"Retry-After": "5"}
    except InboxUnavailable as exc:
        return 503, {"detail": str(exc)}, {"Retry-After": "5"}
    return 200, {"action": event.action, "accepted": True}, {}


class WebhookRoute:
    """ASGI middleware that answers ``POST /webhooks/label-studio`` itself.

    Label Studio waits for the webhook inside the annotator's save, and under load this
    route is most of the service's traffic: FastAPI's routing, dependency and middleware
    layers cost more than the route's own work, so the route runs here, with the same
    checks, limits and answers (:func:`take_delivery`). Every other request goes on to
    FastAPI.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != HOOK or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > MAX_BODY:
            detail = f"body of {declared.decode()} bytes; at most {MAX_BODY}"
            await _answer(send, 413, {"detail": detail})
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away before sending its body: nothing to keep
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                detail = f"body of more than {MAX_BODY} bytes; at most {MAX_BODY}"
                await _answer(send, 413, {"detail": detail})
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        state = scope["app"].state
        given = headers.get(SECRET_HEADER.lower().encode(), b"")
        status, answer, extra = await take_delivery(state, given, b"".join(chunks))
        await _answer(send, status, answer, extra)


async def _answer(
    send: Any, status: int, answer: dict[str, Any], extra: dict[str, str] | None = None
) -> None:
    data = _dumps(answer)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
    headers += [(k.lower().encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


@reads.get("/projects")
def list_projects(db: SessionDep) -> dict[str, Any]:
    """Projects the store knows, with their judgement counts."""
    data = [{"id": p, "judgements": store.count_judgements(db, p)} for p in store.projects(db)]
    return {"data": data, "count": len(data)}


Dimension = Annotated[str, Query(description="a dimension of the taxonomy")]


def _frame(request: Request, db: Session, project_id: int, dimension: str) -> reports.Frame:
    try:
        return reports.load(db, project_id, dimension, request.app.state.taxonomy)
    except store.NotFound as exc:
        raise HTTPException(404, str(exc)) from None


def _known(db: Session, project_id: int) -> None:
    known = store.projects(db)
    if project_id not in known:
        raise HTTPException(404, f"unknown project {project_id}; the store has {known}")


def _page(items: list[Any], skip: int, limit: int) -> dict[str, Any]:
    return {"data": items[skip : skip + limit], "count": len(items)}


Skip = Annotated[int, Query(ge=0)]
Limit = Annotated[int, Query(ge=1, le=1000)]


@reads.get("/projects/{project_id}/agreement")
def project_agreement(
    request: Request, db: SessionDep, project_id: int, dimension: Dimension = "emotion"
) -> dict[str, Any]:
    """Live figures of a dimension (alpha, AC1, percent agreement) from incremental sums."""
    try:
        return store.agreement(db, project_id, dimension, request.app.state.taxonomy)
    except store.NotFound as exc:
        raise HTTPException(404, str(exc)) from None


@reads.get("/projects/{project_id}/agreement/summary")
def agreement_summary(
    request: Request,
    db: SessionDep,
    project_id: int,
    dimension: Dimension = "emotion",
    n_boot: Annotated[int, Query(ge=50, le=5000)] = N_BOOT,
    seed: Annotated[int, Query(ge=0, le=2**63 - 1)] = SEED,
    min_overlap: Annotated[int, Query(ge=1, le=1_000_000)] = MIN_OVERLAP,
) -> dict[str, Any]:
    """Alpha and the coefficients of the dimension's level, each with a 95% bootstrap interval
    over units (the project's n_boot and seed by default: the dashboard and the data card
    show the same interval); means over pairs leave out pairs under ``min_overlap`` units."""
    frame = _frame(request, db, project_id, dimension)
    figures = reports.summary(frame, n_boot=n_boot, seed=seed, min_overlap=min_overlap)
    return {"dimension": dimension, **figures}


@reads.get("/projects/{project_id}/agreement/by/{breakdown}")
def agreement_breakdown(
    request: Request,
    db: SessionDep,
    project_id: int,
    breakdown: str,
    dimension: Dimension = "emotion",
    skip: Skip = 0,
    limit: Limit = 100,
) -> dict[str, Any]:
    """Agreement per session, clip, speaker, label or annotator (paginated)."""
    if breakdown not in reports.BREAKDOWNS:
        raise HTTPException(
            404, f"unknown breakdown {breakdown!r}; expected one of {list(reports.BREAKDOWNS)}"
        )
    frame = _frame(request, db, project_id, dimension)
    rows = reports.breakdown(frame, breakdown)
    if breakdown == "annotator":
        shown = members.names(db, (r["key"] for r in rows))
        rows = [{**r, "name": shown[r["key"]]} for r in rows]
    return _page(rows, skip, limit)


@reads.get("/projects/{project_id}/agreement/pairwise")
def agreement_pairwise(
    request: Request, db: SessionDep, project_id: int, dimension: Dimension = "emotion"
) -> dict[str, Any]:
    """The annotator x annotator alpha matrix (``names``: what QA leads read for
    ``annotators``, the Label Studio user ids, in the same order)."""
    pairs = reports.pairwise(_frame(request, db, project_id, dimension))
    shown = members.names(db, pairs["annotators"])
    return {**pairs, "names": [shown[a] for a in pairs["annotators"]]}


@reads.get("/projects/{project_id}/agreement/confusion")
def agreement_confusion(
    request: Request, db: SessionDep, project_id: int, dimension: Dimension = "emotion"
) -> dict[str, Any]:
    """Coincidences of labels between annotators (a confusion matrix)."""
    return reports.confusion(_frame(request, db, project_id, dimension))


@reads.get("/projects/{project_id}/agreement/drift")
def agreement_drift(
    request: Request,
    db: SessionDep,
    project_id: int,
    dimension: Dimension = "emotion",
    every: Annotated[str, Query(pattern="^(day|count)$")] = "day",
    size: Annotated[int, Query(ge=10)] = 500,
) -> dict[str, Any]:
    """Alpha per day, or per window of ``size`` judgements, in annotation order."""
    series = reports.drift(_frame(request, db, project_id, dimension), every, size)
    return {"data": series, "count": len(series)}


@reads.get("/projects/{project_id}/agreement/shifts")
def agreement_shifts(
    db: SessionDep,
    project_id: int,
    tolerance: Annotated[float, Query(gt=0, le=30)] = 1.0,
) -> dict[str, Any]:
    """Shift events: matching F1 within ``tolerance`` seconds, from -> to and trigger
    agreement on matched events, Krippendorff's unitizing alpha, and agreement on the
    turns matched events are linked to as their cause (``trigger_links``)."""
    _known(db, project_id)
    return reports.shifts(db, project_id, tolerance)


@reads.get("/projects/{project_id}/adjudication")
def adjudication(
    request: Request,
    db: SessionDep,
    project_id: int,
    dimension: Dimension = "emotion",
    threshold: float = 0.667,
    skip: Skip = 0,
    limit: Limit = 100,
) -> dict[str, Any]:
    """Clips whose agreement is below ``threshold``, worst first, with Label Studio links."""
    base = request.app.state.settings.label_studio.url.rstrip("/")
    frame = _frame(request, db, project_id, dimension)
    clips = reports.adjudication(
        frame, threshold, lambda t: f"{base}/projects/{project_id}/data?task={t}"
    )
    return _page(clips, skip, limit)


@reads.get("/projects/{project_id}/skipped")
def skipped_items(db: SessionDep, project_id: int) -> dict[str, Any]:
    """Result items that gave no judgement (cancelled, unknown label, ...), by reason."""
    _known(db, project_id)
    counts = store.skipped(db, project_id)
    return {"data": counts, "count": sum(counts.values())}


@reads.get("/projects/{project_id}/annotators")
def annotator_activity(
    db: SessionDep, project_id: int, skip: Skip = 0, limit: Limit = 100
) -> dict[str, Any]:
    """Per annotator: annotations, judgements, median seconds per task, share cancelled."""
    rows = reports.activity(db, project_id)
    shown = members.names(db, (r["annotator"] for r in rows))
    return _page([{**r, "name": shown[r["annotator"]]} for r in rows], skip, limit)


@reads.get("/projects/{project_id}/members")
def project_members(
    db: SessionDep, project_id: int, skip: Skip = 0, limit: Limit = 100
) -> dict[str, Any]:
    """The project's annotators: Label Studio user id (the key of every figure) and the
    name shown for it, ``"First Last <email>"`` as Label Studio last gave it."""
    _known(db, project_id)
    return _page(members.project_members(db, project_id), skip, limit)


@reads.post("/projects/{project_id}/reconcile")
def reconcile(request: Request, project_id: int, full: bool = False) -> dict[str, Any]:
    """Pull from Label Studio what webhooks missed (``full``: every task, and deletions)."""
    try:
        report = sync.reconcile_project(request.app.state, project_id, full=full)
    except LabelStudioError as exc:
        raise HTTPException(502, str(exc)) from None
    return asdict(report)


@reads.put("/projects/{project_id}/intended/{session_id}")
def put_intended(
    db: SessionDep, project_id: int, session_id: str, body: dict[str, Any]
) -> dict[str, int]:
    """Keep a session's intended emotions (``{"turns": [{turn_id, turn_index, emotion}]}``,
    replacing its earlier ones), which the import keeps out of Label Studio's tasks and the
    export joins by turn. The API key is needed: a Label Studio member cannot write them."""
    try:
        kept = intended.put_intended(db, project_id, session_id, body.get("turns") or [])
    except intended.IntendedError as exc:
        raise HTTPException(422, str(exc)) from None
    db.commit()
    return {"kept": kept}


@reads.get("/projects/{project_id}/judgements")
def project_judgements(
    db: SessionDep,
    project_id: int,
    dimension: str | None = None,
    skip: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JudgementsPublic:
    """The project's judgements, paginated (``{data, count}``)."""
    query = store.live_judgements(project_id, dimension)
    count = db.exec(select(func.count()).select_from(query.subquery())).one()
    page = db.exec(query.offset(skip).limit(limit)).all()
    return JudgementsPublic(
        data=[JudgementPublic.model_validate(j, from_attributes=True) for j in page],
        count=int(count),
    )


@reads.get("/dead-letters")
def dead_letters(
    db: SessionDep, skip: Skip = 0, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> dict[str, Any]:
    """Deliveries that could not be applied, newest first, with the reason and the body as
    received, personal data replaced by pseudonyms (``api.privacy``; letters kept by an
    older version are redacted on the way out) (paginated)."""
    count = db.exec(select(func.count()).select_from(DeadLetter)).one()
    page = db.exec(
        select(DeadLetter).order_by(col(DeadLetter.id).desc()).offset(skip).limit(limit)
    ).all()
    data = [letter.model_dump(mode="json") for letter in page]
    for row in data:
        row["reason"] = privacy.redact_text(row["reason"] or "")
        row["body"] = privacy.redact_body(row["body"] or "")
    return {"data": data, "count": int(count)}


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_form(request: Request) -> HTMLResponse:
    """The dashboard's login form (asks for the service's API key)."""
    return login.show_form(request)


@router.post("/login", include_in_schema=False)
async def login_submit(request: Request) -> Response:
    """Check the key of the login form and set the session cookie (see ``api.login``)."""
    return await login.submit(request)


@router.post("/logout", include_in_schema=False)
def logout(request: Request) -> Response:
    """Remove the session cookie."""
    return login.logout(request)


LoggedIn = [Depends(login.require_login)]


dashboard_pages.register(router, LoggedIn)


def store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 when the database cannot be reached (e.g. PostgreSQL restarting): the request
    was not applied; the client (or the next pull from Label Studio) may try again."""
    return JSONResponse(
        {"detail": _unavailable(exc)}, status_code=503, headers={"Retry-After": "5"}
    )


def inbox_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 when the inbox cannot be read (its file is missing, until the supervisor opens
    a new one): how stale the store is cannot be told."""
    return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})


def _unavailable(exc: Exception) -> str:
    return f"the store is unavailable ({type(exc).__name__}); try again shortly"


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The applier (a process watched by this worker's supervisor, or a thread) and the
    periodic pull while the service runs; at the end, the writer keeps what is queued and
    the applier stops."""
    state = app.state
    state.supervisor = supervise.Supervisor(state, process=state.applier_mode == "process")
    state.supervisor.start()
    settle_heap()
    if state.applier is not None:
        state.applier.start()
    try:
        async with sync.lifespan(app):
            yield
    finally:
        gc.unfreeze()
        state.ingest.stop()
        if state.applier is not None:
            state.applier.stop()
        state.supervisor.stop()
        state.bell.close()


def create_app(
    settings: Settings, engine: Engine | None = None, *, applier: str = "thread"
) -> FastAPI:
    """The service for ``settings`` (secrets must be filled in; see ``with_local_secrets``).

    ``applier``: where events are applied to the store, ``"thread"`` (a thread of this
    process), ``"process"`` (``python -m api.applier``, watched by ``api.supervise``,
    configured from the same config file and environment: what :func:`app_from_env` uses)
    or ``"none"`` (the caller runs ``app.state.applier``-less and applies with its own
    :class:`api.applier.Applier`).
    """
    if applier not in ("thread", "process", "none"):
        raise ValueError(f"applier: expected thread, process or none, got {applier!r}")
    app = FastAPI(
        lifespan=_lifespan,
        title="improv-annotate agreement service",
        version="0.1.0",
        description="Receives Label Studio annotation events and serves inter-annotator "
        "agreement for emotion-shift labels.",
    )
    privacy.use_salt(privacy.salt_of(settings))  # of the dead letters' pseudonyms
    app.state.taxonomy = service_taxonomy(settings)
    app.state.engine = engine or make_engine(settings.database_url)
    init_db(app.state.engine)
    # SQLite: a second engine whose transactions take the write lock at once, for events
    same = engine is not None or not settings.database_url.startswith("sqlite")
    app.state.writer = (
        app.state.engine if same else make_engine(settings.database_url, immediate=True)
    )
    app.state.inbox = Inbox(app.state.writer)
    app.state.applier_mode = applier
    app.state.applier = (
        Applier(
            app.state.inbox,
            app.state.taxonomy,
            verify=verifier(settings, app.state.taxonomy, app.state.writer),  # None: trusted
            keeper=keeper_of(settings),
            adjudicator=adjudicator_of(settings, app.state.taxonomy),
        )
        if applier == "thread"
        else None
    )
    # after each commit: wake this process's applier thread, or the applier process
    app.state.bell = Bell(app.state.inbox.path if applier == "process" else None)
    wake = app.state.applier.wake if app.state.applier is not None else app.state.bell.ring
    app.state.ingest = GroupCommit(app.state.inbox, on_commit=wake)
    app.state.supervisor = None
    app.state.settings = settings
    app.state.webhook_secret = settings.service.webhook_secret or ""
    app.state.api_key = settings.service.api_key or ""
    app.state.login_failures = login.FailureLimit()
    app.add_exception_handler(OperationalError, store_unavailable)
    app.add_exception_handler(InboxUnavailable, inbox_unavailable)
    app.add_exception_handler(login.Gate, login.gate_answer)
    app.include_router(router)
    app.include_router(reads)
    app.add_middleware(SecurityHeaders)  # inside WebhookRoute: webhook answers skip it
    app.add_middleware(WebhookRoute)
    return app


def app_from_env() -> FastAPI:
    """The service configured from config.yaml and the environment (for uvicorn); what it
    creates (store, inbox, their logs) is private to its user (umask 077)."""
    os.umask(0o077)
    return create_app(with_local_secrets(load_settings()), applier="process")
