"""Verified mode: a webhook is only a doorbell; what is applied is what Label Studio says.

Label Studio's webhooks carry no signature, only a shared-secret header, and any member of
the organisation can read that header (``GET /api/webhooks?project=N``), so anyone who can
log in to Label Studio could post a webhook that claims any annotator's judgements. In
verified mode (``service.webhook_mode: verified``) the applier therefore asks Label Studio,
with the service's own token, before it applies an event (the webhook itself still only
keeps the delivery and answers at once; it never calls Label Studio):

- ANNOTATION_CREATED / ANNOTATION_UPDATED: the annotation is read back from Label Studio
  and Label Studio's version is applied (its result, ``completed_by``, ``updated_at``, and
  the task's data as Label Studio holds it), not the payload's. One request per project
  and batch: the task list filtered to the batch's tasks, with their annotations (a stub
  without the result is refused as an answer, never applied as an empty annotation). An
  annotation Label Studio does not have (in that task of that project) is not applied; the
  event becomes a dead letter ("not in Label Studio").
- ANNOTATIONS_DELETED / TASKS_DELETED: applied only for the ids Label Studio answers 404
  for (one request per id; deletions are rare). A deletion of something Label Studio still
  has becomes a dead letter ("still in Label Studio"). An annotation deletion is applied
  only to annotations the store holds: Label Studio gives out annotation ids in sequence,
  so a forged deletion of ids not given out yet would otherwise leave tombstones that make
  the store ignore those annotations once they are made (in verified mode a tombstone is
  not needed for anything else: a late create of a deleted annotation is refused anyway,
  since Label Studio no longer has it). A deletion with nothing left to apply becomes a
  dead letter ("not in the store").

When Label Studio cannot be asked (down, a timeout, an answer other than 200 or its own
404, a refused token), :class:`Unverified` is raised: the applier keeps the whole batch in
the inbox and tries again with backoff; nothing is dropped and nothing is applied
unverified.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.engine import Engine

from annotate.config import ConfigError, Settings
from api import store
from api.models import Annotation
from schemas.errors import AnnotateError
from schemas.taxonomy import Taxonomy

log = logging.getLogger("improv_annotate.verify")

NOT_IN_LABEL_STUDIO = "not in Label Studio"
NOT_IN_STORE = "not in the store"
STILL_IN_LABEL_STUDIO = "still in Label Studio"

# what the Applier hands over and gets back, event by event (see Verifier.__call__)
Verify = Callable[[Sequence[store.Event | None]], list[store.Event | str | None]]


class Unverified(AnnotateError, ConnectionError):
    """Label Studio could not be asked; the events wait in the inbox (the message names
    the URL and what came back)."""


@dataclass
class Verified:
    """What a verifier has done so far (logs, benchmarks)."""

    confirmed: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    requests: int = 0


class Verifier:
    """Replaces a batch's annotation events with what Label Studio holds.

    Parameters
    ----------
    url, token : str
        Label Studio's base URL and the service's API token (``label_studio.url`` and
        ``label_studio.token`` of the settings).
    taxonomy : Taxonomy
        Decodes Label Studio's annotations (as for webhooks and the reconciling pull).
    timeout : float
        Seconds per request before Label Studio counts as unreachable.
    store_engine : Engine, optional
        The store: annotation deletions are applied only to annotations it holds (without
        it, to any id Label Studio answers 404 for).

    Example
    -------
    ``verify = Verifier(url, token, taxonomy)``; ``verify(events)`` returns, event by
    event, the event to apply, or the reason it is refused (a dead letter); ``None`` stays
    ``None`` (a delivery that was a dead letter already).
    """

    def __init__(
        self,
        url: str,
        token: str,
        taxonomy: Taxonomy,
        *,
        timeout: float = 10.0,
        store_engine: Engine | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.taxonomy = taxonomy
        self.store_engine = store_engine
        self.done = Verified()
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Token {token}"},
            timeout=timeout,
        )

    def close(self) -> None:
        """Close the connection to Label Studio."""
        self._http.close()

    # -- the batch

    def __call__(self, events: Sequence[store.Event | None]) -> list[store.Event | str | None]:
        """Each event as Label Studio confirms it, or the reason it does not (in order).

        Raises :class:`Unverified` when Label Studio cannot be asked: then nothing of the
        batch may be applied.
        """
        wanted: dict[int, set[int]] = {}  # project -> tasks whose annotations are asked
        for event in events:
            if event is not None and event.annotation is not None:
                wanted.setdefault(event.project_id, set()).add(event.annotation.task_id)
        tasks = {project: self._tasks(project, ids) for project, ids in wanted.items()}
        out: list[store.Event | str | None] = []
        for event in events:
            if event is None:
                out.append(None)
            elif event.annotation is not None:
                out.append(self._annotation(event, event.annotation, tasks[event.project_id]))
            elif event.action == "ANNOTATIONS_DELETED":
                out.append(self._deletion(event, "annotations", "/api/annotations/{}/"))
            elif event.action == "TASKS_DELETED":
                out.append(self._deletion(event, "tasks", "/api/tasks/{}/"))
            else:
                # other actions pass as they came: the store ignores them, but for a
                # PROJECT_UPDATED of an adjudication project, kept as a report that the
                # sender checks (a forged one costs a re-send, capped by max_resends)
                out.append(event)
        for item in out:
            if isinstance(item, store.Event):
                self.done.confirmed += 1
            elif isinstance(item, str):
                reason = item.split(":", 1)[0]
                self.done.rejected[reason] = self.done.rejected.get(reason, 0) + 1
        return out

    def _annotation(
        self,
        event: store.Event,
        claimed: store.Version,
        tasks: Mapping[int, Mapping[str, Any]],
    ) -> store.Event | str:
        task = tasks.get(claimed.task_id)
        found = None
        for annotation in (task or {}).get("annotations") or []:
            if isinstance(annotation, Mapping) and annotation.get("id") == claimed.id:
                found = annotation
        if found is not None and not _complete(found):
            raise Unverified(
                f"Label Studio at {self.url}/api/tasks gave annotation {claimed.id} without "
                f"its {', '.join(sorted(_NEEDED - set(found)))}; expected full annotations "
                "(include/expand of the task list, measured on Label Studio 1.23.2)"
            )
        if task is None or found is None:
            return (
                f"{NOT_IN_LABEL_STUDIO}: {event.action} of annotation {claimed.id} (task "
                f"{claimed.task_id}, project {event.project_id}); Label Studio at {self.url} "
                "does not have it"
            )
        payload = {
            "action": event.action,
            "project": {"id": event.project_id},
            "task": {"id": task["id"], "data": task.get("data") or {}},
            "annotation": dict(found),
        }
        try:
            return store.parse_event(payload, self.taxonomy)
        except (ValueError, RecursionError) as exc:
            return f"not applied: Label Studio's version of annotation {claimed.id}: {exc}"

    def _deletion(self, event: store.Event, kind: str, path: str) -> store.Event | str:
        gone = [i for i in event.ids if not self._exists(path.format(i))]
        kept = sorted(set(event.ids) - set(gone))
        if gone and kind == "annotations":
            held = self._held(gone)
            if not held and not kept:
                return (
                    f"{NOT_IN_STORE}: {event.action} of annotations {sorted(gone)} (project "
                    f"{event.project_id}); Label Studio does not have them and the store "
                    "never had them: nothing to delete"
                )
            gone = [i for i in gone if i in held]
        if not kept:
            return store.Event(event.action, event.project_id, ids=tuple(gone))
        if not gone:
            return (
                f"{STILL_IN_LABEL_STUDIO}: {event.action} of {kind} {kept} (project "
                f"{event.project_id}); Label Studio at {self.url} still has them"
            )
        log.warning(
            "%s of project %s: %s %s are still in Label Studio; only %s applied",
            event.action,
            event.project_id,
            kind,
            kept,
            gone,
        )
        return store.Event(event.action, event.project_id, ids=tuple(gone))

    def _held(self, annotation_ids: Sequence[int]) -> set[int]:
        """Those of ``annotation_ids`` the store has a row of (live or deleted)."""
        if self.store_engine is None:
            return set(annotation_ids)
        table = Annotation.__table__  # type: ignore[attr-defined]
        with self.store_engine.connect() as conn:
            rows = conn.execute(select(table.c.id).where(table.c.id.in_(list(annotation_ids))))
            return {int(i) for (i,) in rows}

    # -- Label Studio's answers

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> httpx.Response:
        self.done.requests += 1
        try:
            answer = self._http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise Unverified(
                f"Label Studio at {self.url}{path} did not answer ({type(exc).__name__}); "
                "the events wait in the inbox"
            ) from None
        if answer.status_code == 200 or _own_404(answer):
            return answer
        raise Unverified(
            f"Label Studio at {self.url}{path} answered {answer.status_code} (expected 200, "
            "or 404 for what it does not have); the events wait in the inbox"
        )

    def _tasks(self, project_id: int, task_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """The project's tasks among ``task_ids``, with data and annotations, by id: the
        task list filtered to those ids, one request (more only if the server caps the
        page size, ``TASK_API_PAGE_SIZE_MAX``)."""
        ids = sorted(task_ids)
        query = json.dumps(
            {
                "filters": {"conjunction": "and", "items": []},
                "selectedItems": {"all": False, "included": ids},
            }
        )
        wanted, found = set(ids), {}
        page, seen = 1, 0
        while True:
            params = {
                "project": project_id,
                "fields": "all",
                # only what is needed, annotations in full: 2.5x faster than every field
                # (1.23.2: 32 tasks of 4 annotations, 0.44 s against 1.1 s)
                "include": "id,data,annotations,project",
                "expand": "annotations",
                "page": page,
                "page_size": len(ids),
                "query": query,
                "resolve_uri": "false",  # the data as stored (see annotate.ls_push)
            }
            answer = self._get("/api/tasks", params)
            if answer.status_code == 404:  # no such project, or a page past the last
                return found
            try:
                body = answer.json()
                listed, total = list(body["tasks"]), int(body.get("total", 0))
            except (ValueError, KeyError, TypeError):
                raise Unverified(
                    f"Label Studio at {self.url}/api/tasks answered without a task list"
                ) from None
            for task in listed:
                if (
                    isinstance(task, Mapping)
                    and task.get("id") in wanted
                    and _in_project(task, project_id)
                ):
                    found[int(task["id"])] = task
            seen += len(listed)
            if not listed or seen >= total:
                return found
            page += 1

    def _exists(self, path: str) -> bool:
        return self._get(path).status_code == 200


_NEEDED = frozenset({"id", "result", "completed_by", "updated_at", "was_cancelled"})


def _complete(annotation: Mapping[str, Any]) -> bool:
    """Whether Label Studio gave the annotation in full (not a stub of its id)."""
    return set(annotation) >= _NEEDED


def _in_project(task: Mapping[str, Any], project_id: int) -> bool:
    project = task.get("project")
    return project is None or project == project_id


def _own_404(answer: httpx.Response) -> bool:
    """A 404 that Label Studio itself gave for a missing object ("No Task matches the
    given query."), not one of a proxy or a wrong URL."""
    if answer.status_code != 404:
        return False
    try:
        detail = answer.json().get("detail", "")
    except (ValueError, AttributeError):
        return False
    return isinstance(detail, str) and detail.endswith("matches the given query.")


def verifier(
    settings: Settings, taxonomy: Taxonomy, store_engine: Engine | None = None
) -> Verifier | None:
    """The verifier for ``service.webhook_mode`` (None when trusted: payloads are applied
    as they came); ``store_engine``: see :class:`Verifier`."""
    if settings.service.webhook_mode != "verified":
        return None
    ls = settings.label_studio
    if not ls.token:
        raise ConfigError(
            "service.webhook_mode is verified but label_studio.token is empty: the service "
            "needs its own Label Studio token to read annotations back"
        )
    return Verifier(ls.url, ls.token, taxonomy, store_engine=store_engine)
