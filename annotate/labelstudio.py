"""Label Studio: connect, set up the project from a taxonomy, push tasks, manage annotators.

Everything goes through the official SDK (``label_studio_sdk``) except the account sign-up,
which Label Studio only offers as its web form (``users.create`` makes users who cannot log
in).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from annotate.config import Settings
from annotate.ls_push import PUSH_BATCH as PUSH_BATCH
from annotate.ls_push import ClipTask as ClipTask
from annotate.ls_push import Duplicates as Duplicates
from annotate.ls_push import Pushed as Pushed
from annotate.ls_push import data_fingerprint as data_fingerprint
from annotate.ls_push import iter_clip_keys as iter_clip_keys
from annotate.ls_push import list_clip_tasks as list_clip_tasks
from annotate.ls_push import plan_duplicates as plan_duplicates
from annotate.ls_push import push_tasks as push_tasks
from annotate.ls_push import remove_duplicates as remove_duplicates
from annotate.ls_webhooks import SECRET_HEADER as SECRET_HEADER
from annotate.ls_webhooks import WEBHOOK_ACTIONS as WEBHOOK_ACTIONS
from annotate.ls_webhooks import ensure_webhook as ensure_webhook
from annotate.service import ServiceClient
from schemas.codec import PREDICTION_VERSION, label_usage, migrate_result
from schemas.errors import AnnotateError
from schemas.label_config import label_config
from schemas.taxonomy import Taxonomy, check_change


class LabelStudioError(AnnotateError, ConnectionError):
    """Label Studio is unreachable or refused a request; the message names the URL."""


def check_reachable(url: str, timeout: float = 5.0) -> None:
    """Raise :class:`LabelStudioError` with a hint unless ``url``/health answers 200."""
    try:
        response = httpx.get(url.rstrip("/") + "/health", timeout=timeout)
    except httpx.HTTPError as exc:
        raise LabelStudioError(
            f"Label Studio is not reachable at {url} ({type(exc).__name__}); start the local "
            "one with 'improv-annotate up', or set label_studio.url in config.yaml "
            "(or IMPROV_ANNOTATE_LABEL_STUDIO__URL)"
        ) from None
    if response.status_code != 200:
        raise LabelStudioError(f"Label Studio at {url}/health answered {response.status_code}")


def connect(settings: Settings) -> LabelStudio:
    """An SDK client for the configured Label Studio, after checking it answers."""
    ls = settings.label_studio
    check_reachable(ls.url)
    if not ls.token:
        raise LabelStudioError("no Label Studio token: set label_studio.token in config.yaml")
    client = LabelStudio(base_url=ls.url, api_key=ls.token, timeout=120)
    try:
        client.users.whoami()
    except Exception as exc:  # the SDK raises its own ApiError hierarchy
        raise LabelStudioError(
            f"Label Studio at {ls.url} refused the token ({_describe(exc)}); check "
            "label_studio.token"
        ) from None
    return client


def find_project(client: LabelStudio, title: str) -> Any | None:
    """The project called ``title``, if there is one (the oldest, if there are several)."""
    named = [p for p in client.projects.list(title=title) if p.title == title]
    return min(named, key=lambda p: int(p.id), default=None)


def ensure_project(
    client: LabelStudio,
    settings: Settings,
    taxonomy: Taxonomy,
    migration: Mapping[str, Mapping[str, str]] | None = None,
    *,
    video: bool = False,
) -> Any:
    """The project named in the settings, created, or updated to ``taxonomy``.

    Changing the taxonomy of a project that has annotations is checked first: labels can be
    added; removing or renaming one that annotations use is refused (a ``TaxonomyError``
    that counts the uses) unless ``migration`` maps it, in which case the annotations are
    rewritten before the label config changes.
    """
    config = label_config(taxonomy, video=video)
    title = settings.label_studio.project_title
    project = find_project(client, title)
    options: dict[str, Any] = dict(
        label_config=config,
        # adaptive overlap: every task starts at the policy's minimum; the service raises it
        # where the first annotators disagree (api.overlap_keeper)
        maximum_annotations=settings.overlap.min_annotators
        if settings.overlap.enabled
        else settings.label_studio.maximum_annotations,
        **BLIND_STREAM,
        description=f"Taxonomy {taxonomy.name} {taxonomy.version}. Created by improv-annotate.",
    )
    if project is None:
        created = client.projects.create(title=title, **options)
        # another import may have created it at the same moment: each keeps the oldest,
        # and removes its own if that is not the one (still empty: nothing was pushed)
        project = find_project(client, title)
        if project is None or project.id == created.id:
            return created
        client.projects.delete(id=created.id)
    if (project.label_config or "").strip() != config.strip():
        annotations = [
            a for task in iter_tasks(client, project.id) for a in (task.annotations or [])
        ]
        plan = check_change(taxonomy, label_usage(_result(a) for a in annotations), migration)
        for annotation in annotations:
            result, changed = migrate_result(_result(annotation), plan)
            if changed:
                client.annotations.update(id=_field(annotation, "id"), result=result)
        project = client.projects.update(id=project.id, **options)
    elif any(getattr(project, key, None) != value for key, value in _stream_options(options)):
        project = client.projects.update(id=project.id, **dict(_stream_options(options)))
    return project


# What an annotator's labeling stream shows (Label Studio Community 1.23.2; measured in
# tests/test_blind.py): a new annotation starts from the pre-annotation's turn regions (the
# prediction of this model version), and no other annotator's annotation or history is
# shown. Other members' annotations stay readable elsewhere (data manager, API): README.
BLIND_STREAM: dict[str, Any] = {
    "model_version": PREDICTION_VERSION,
    "show_collab_predictions": True,
    "reveal_preannotations_interactively": False,
    "show_annotation_history": False,
    "show_ground_truth_first": False,
}


def _stream_options(options: Mapping[str, Any]) -> list[tuple[str, Any]]:
    keys = (*BLIND_STREAM, "maximum_annotations")
    return [(key, options[key]) for key in keys]


def _field(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key)


def _result(annotation: Any) -> list[dict[str, Any]]:
    return list(_field(annotation, "result") or [])


def ensure_local_storage(client: LabelStudio, project_id: int, folder: Path) -> None:
    """Make Label Studio serve ``folder`` (under its document root) to this project."""
    wanted = str(folder.resolve())
    for storage in client.import_storage.local.list(project=project_id):
        if storage.path == wanted:
            return
    client.import_storage.local.create(
        project=project_id, path=wanted, title=folder.name, use_blob_urls=False
    )


def iter_tasks(client: LabelStudio, project_id: int) -> Iterator[Any]:
    """Every task of the project, with its data and annotations."""
    yield from client.tasks.list(project=project_id, fields="all", page_size=500, resolve_uri=False)


@dataclass(frozen=True, slots=True)
class Account:
    """A Label Studio user who can log in, with their own API token."""

    id: int
    email: str
    token: str


def _form_token(page: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    if not match:
        raise LabelStudioError("Label Studio's login page has no CSRF token; unexpected version")
    return match.group(1)


def invite_link(client: LabelStudio, base_url: str, *, reset: bool = False) -> str:
    """The link that lets a person sign up to the organisation (the local stack's Label
    Studio allows no sign-up without it); ``reset`` makes a new one, and the old link stops
    working.

    Any member of the organisation can read the link: reset it when someone leaves.
    """
    try:
        if reset:
            invite = client.organizations.reset_token()
        else:
            invite = client.organizations.invites.get_invite_link()
    except (httpx.HTTPError, ApiError) as exc:
        raise LabelStudioError(
            f"Label Studio at {base_url} did not give the invite link ({_describe(exc)})"
        ) from None
    if not invite.invite_url:
        raise LabelStudioError(f"Label Studio at {base_url} answered an empty invite link")
    return base_url.rstrip("/") + invite.invite_url


def ensure_account(
    base_url: str, email: str, password: str, *, invite: str | None = None
) -> Account:
    """Log in as ``email`` (signing up first if needed) and return the user's own token.

    Uses Label Studio's web forms, the only way to make users who can log in. Signing up
    needs ``invite``, the organisation's invite link (:func:`invite_link`), where sign-up
    is invite-only (as on the local stack).
    """
    base_url = base_url.rstrip("/")
    signup = "/user/signup/"
    if invite:
        query = urlsplit(invite).query
        signup += f"?{query}" if query else ""
    with httpx.Client(base_url=base_url, timeout=30, follow_redirects=False) as web:
        for path in ("/user/login/", signup):
            page = web.get(path)
            form = {
                "csrfmiddlewaretoken": _form_token(page.text),
                "email": email,
                "password": password,
            }
            answer = web.post(path, data=form, headers={"Referer": base_url + path})
            if answer.status_code == 302:
                break
        else:
            hint = "" if invite else " (sign-up may need the invite link: 'improv-annotate invite')"
            raise LabelStudioError(
                f"cannot log in or sign up {email} at {base_url}: the sign-up form answered "
                f"{answer.status_code}{hint}"
            )
        me = web.get("/api/current-user/whoami").json()
        token = web.get("/api/current-user/token").json()["token"]
    return Account(int(me["id"]), email, token)


def pull_events(
    client: LabelStudio, project_id: int, since: str | None = None
) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """Each task (updated after ``since``, an ISO time ending in Z; all when None) with
    its annotations as ANNOTATION_UPDATED payloads, the shape webhooks deliver."""
    query = None
    if since:
        query = json.dumps(
            {
                "filters": {
                    "conjunction": "and",
                    "items": [
                        {
                            "filter": "filter:tasks:updated_at",
                            "operator": "greater",
                            "type": "Datetime",
                            "value": since,
                        }
                    ],
                }
            }
        )
    # the data as stored: with data credentials Label Studio rewrites URLs on the way out
    tasks = client.tasks.list(
        project=project_id, fields="all", page_size=500, query=query, resolve_uri=False
    )
    for task in tasks:
        data = task.data if isinstance(task.data, dict) else {}
        task_obj = {"id": task.id, "data": data, "project": project_id}
        events = []
        for annotation in task.annotations or []:
            item = dict(annotation) if isinstance(annotation, Mapping) else annotation.dict()
            events.append(
                {
                    "action": "ANNOTATION_UPDATED",
                    "project": {"id": project_id},
                    "task": task_obj,
                    "annotation": item,
                }
            )
        yield task.id, events


def intended_turns(session: Any) -> list[dict[str, Any]]:
    """The session's intended emotions by turn (``turn_id``, ``turn_index``, ``emotion``):
    what the service keeps, never a task's data."""
    out = []
    for turn in session.turns:
        emotion = session.intended_for(turn)
        if emotion is not None:
            out.append({"turn_id": turn.id, "turn_index": turn.index, "emotion": emotion})
    return out


IntendedKeeper = Callable[[int, str, list[dict[str, Any]]], None]
"""``keep(project_id, session_id, turns)``: hands a session's intended emotions (see
:func:`intended_turns`) to the agreement service's store."""


def service_keeper(service: ServiceClient) -> IntendedKeeper:
    """An :data:`IntendedKeeper` that sends them to the running service (with its API key)."""

    def keep(project_id: int, session_id: str, turns: list[dict[str, Any]]) -> None:
        service.put(f"/projects/{project_id}/intended/{session_id}", {"turns": turns})

    return keep


# keep_pins(project id, {task id: the task's data as pushed})
PinKeeper = Callable[[int, dict[int, dict[str, Any]]], None]


def session_pusher(
    client: LabelStudio,
    project_id: int,
    media_root: Path,
    *,
    serve_local: bool = True,
    keep_intended: IntendedKeeper | None = None,
    drop_intended: bool = False,
    keep_pins: PinKeeper | None = None,
) -> Callable[[Any, list[dict[str, Any]]], Pushed]:
    """The ``push(session, tasks)`` the importers call: serve the session's media folder to
    the project (unless ``serve_local`` is false: the media are served from elsewhere,
    ``label_studio.media_base_url``), then import or update its tasks (:func:`push_tasks`).

    The session's intended emotions go to ``keep_intended`` first (every Label Studio
    member can read a task's data, so tasks never carry them; the export joins them by
    turn). Without a keeper a session that declares intended emotions is refused (nothing
    pushed), unless ``drop_intended`` says to leave them out on purpose. ``keep_pins``
    gets each pushed task's id and data as pushed (see :mod:`api.pins`).
    """

    def push(session: Any, tasks: list[dict[str, Any]]) -> Pushed:
        intended = intended_turns(session)
        if keep_intended is not None:
            keep_intended(project_id, session.id, intended)
        elif intended and not drop_intended:
            raise LabelStudioError(
                f"session {session.id!r} declares intended emotions, which the agreement "
                "service's store keeps (not Label Studio): the push needs keep_intended"
            )
        try:
            if serve_local:
                ensure_local_storage(client, project_id, media_root / session.id)
            pushed = push_tasks(client, project_id, tasks)
        except (httpx.HTTPError, ApiError) as exc:
            raise LabelStudioError(
                f"Label Studio at {_base_url(client)} failed while the tasks of session "
                f"{session.id!r} were pushed ({_describe(exc)}); check that it "
                "runs ('improv-annotate status'), then run the import again: it adds only "
                "the tasks that are missing"
            ) from None
        if keep_pins is not None:
            ids = dict(pushed.ids)
            keep_pins(
                project_id,
                {
                    ids[key]: task["data"]
                    for task in tasks
                    if (key := str(task["data"].get("clip_key") or task["data"]["clip_id"])) in ids
                },
            )
        return pushed

    return push


def _describe(exc: Exception) -> str:
    """An SDK or transport error without its response headers (they carry session cookies)."""
    if isinstance(exc, ApiError):
        return f"HTTP {exc.status_code}: {exc.body}"
    return f"{type(exc).__name__}: {exc}"


def _base_url(client: LabelStudio) -> str:
    wrapper = getattr(client, "_client_wrapper", None)
    return str(wrapper.get_base_url()) if wrapper is not None else "(the configured URL)"
