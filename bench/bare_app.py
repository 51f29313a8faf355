"""The peer of ``bench/webhook_ingest.py``: a bare FastAPI webhook that stores nothing.

It does what the real ``/webhooks/label-studio`` route does before it touches the store
(check the shared-secret header, read the body, parse the JSON) and answers 200 with a body
of the same shape, so that the difference between the two runs is the cost of the store.

Run it with ``uvicorn --app-dir bench bare_app:app`` (``webhook_ingest.py`` does this); the
secret comes from the environment variable ``BENCH_WEBHOOK_SECRET``.
"""

from __future__ import annotations

import hmac
import json
import os
from typing import Any

from fastapi import FastAPI, HTTPException, Request

SECRET_HEADER = "X-Improv-Annotate-Secret"  # as annotate.labelstudio.SECRET_HEADER

app = FastAPI(title="bare webhook (benchmark peer)")


@app.get("/health")
def health() -> dict[str, str]:
    """Liveness."""
    return {"status": "ok"}


@app.post("/webhooks/label-studio")
async def webhook(request: Request) -> dict[str, Any]:
    """Authenticate, read and parse the event; store nothing."""
    secret = os.environ.get("BENCH_WEBHOOK_SECRET", "")
    given = request.headers.get(SECRET_HEADER, "")
    if not secret or not hmac.compare_digest(given.encode(), secret.encode()):
        raise HTTPException(401, f"missing or wrong {SECRET_HEADER} header")
    payload = json.loads(await request.body())
    return {
        "action": payload.get("action"),
        "stored": 0,
        "removed": 0,
        "ignored": None,
        "skipped": {},
    }
