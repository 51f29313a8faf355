"""The agreement service: FastAPI routes over the store.

Run it with ``uvicorn --factory api.app:app_from_env`` (the local stack does this), or
build it in code with :func:`create_app`.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from annotate.config import Settings, load_settings, with_local_secrets
from annotate.labelstudio import SECRET_HEADER
from api import store
from api.db import init_db, make_engine
from api.models import DeadLetter, JudgementPublic, JudgementsPublic
from schemas.taxonomy import load_taxonomy

MAX_BODY = 2 * 1024 * 1024


def get_db(request: Request) -> Iterator[Session]:
    """One database session per request."""
    with Session(request.app.state.engine) as db:
        yield db


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


SessionDep = Annotated[Session, Depends(get_db)]
router = APIRouter()
reads = APIRouter(dependencies=[Depends(require_key)])


@router.get("/health")
def health(request: Request, db: SessionDep) -> dict[str, Any]:
    """Liveness and store reachability."""
    db.exec(select(1)).one()
    taxonomy = request.app.state.taxonomy
    return {"status": "ok", "taxonomy": taxonomy.name, "version": taxonomy.version}


def _dead_letter(engine: Engine, reason: str, body: bytes) -> None:
    with Session(engine) as db:
        db.add(
            DeadLetter(
                received_at=datetime.now(UTC),
                reason=reason,
                body=body[:MAX_BODY].decode("utf-8", "replace"),
            )
        )
        db.commit()


@router.post("/webhooks/label-studio")
async def webhook(request: Request) -> dict[str, Any]:
    """Apply one Label Studio event (authenticated by the shared-secret header)."""
    state = request.app.state
    given = request.headers.get(SECRET_HEADER, "")
    if not state.webhook_secret or not hmac.compare_digest(
        given.encode(), state.webhook_secret.encode()
    ):
        raise HTTPException(401, f"missing or wrong {SECRET_HEADER} header")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(413, f"body of {len(body)} bytes; at most {MAX_BODY}")
    try:
        payload = json.loads(body)
    except ValueError:
        _dead_letter(state.engine, "body: not JSON", body)
        raise HTTPException(422, "body: expected a JSON object") from None
    with Session(state.writer) as db:
        try:
            applied = store.apply_event(db, payload, state.taxonomy)
        except store.PayloadError as exc:
            _dead_letter(state.engine, str(exc), body)
            raise HTTPException(422, str(exc)) from None
    return {
        "action": applied.action,
        "stored": applied.stored,
        "removed": applied.removed,
        "ignored": applied.ignored,
        "skipped": applied.skipped,
    }


@reads.get("/projects")
def list_projects(db: SessionDep) -> dict[str, Any]:
    """Projects the store knows, with their judgement counts."""
    data = [{"id": p, "judgements": store.count_judgements(db, p)} for p in store.projects(db)]
    return {"data": data, "count": len(data)}


@reads.get("/projects/{project_id}/agreement")
def project_agreement(
    request: Request, db: SessionDep, project_id: int, dimension: str = "emotion"
) -> dict[str, Any]:
    """Krippendorff's alpha for a dimension: overall and per annotator."""
    try:
        return store.agreement(db, project_id, dimension, request.app.state.taxonomy)
    except store.NotFound as exc:
        raise HTTPException(404, str(exc)) from None


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


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    """The service for ``settings`` (secrets must be filled in; see ``with_local_secrets``)."""
    app = FastAPI(
        title="improv-annotate agreement service",
        version="0.1.0",
        description="Receives Label Studio annotation events and serves inter-annotator "
        "agreement for emotion-shift labels.",
    )
    app.state.taxonomy = load_taxonomy(
        settings.path(settings.taxonomy) if settings.taxonomy else None,
        extension=settings.taxonomy_extension,
    )
    app.state.engine = engine or make_engine(settings.database_url)
    init_db(app.state.engine)
    # SQLite: a second engine whose transactions take the write lock at once, for events
    same = engine is not None or not settings.database_url.startswith("sqlite")
    app.state.writer = (
        app.state.engine if same else make_engine(settings.database_url, immediate=True)
    )
    app.state.webhook_secret = settings.service.webhook_secret or ""
    app.state.api_key = settings.service.api_key or ""
    app.include_router(router)
    app.include_router(reads)
    return app


def app_from_env() -> FastAPI:
    """The service configured from config.yaml and the environment (for uvicorn)."""
    return create_app(with_local_secrets(load_settings()))
