"""The service's webhook on a Label Studio project: registered once, and kept as
registered.

Every member of a Label Studio Community organisation can edit or delete a project's
webhooks (``/api/webhooks``). A webhook switched off, pointed elsewhere, stripped of its
secret or of its payload delivers nothing the service can use, and the figures go stale
without a sign. :func:`ensure_webhook` therefore checks every field the service relies on
and puts back what was changed, returning what it found, so that the caller can say so
and pull what the webhook missed (:mod:`api.sync`).
"""

from __future__ import annotations

from typing import Any

from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

__all__ = ["SECRET_HEADER", "WEBHOOK_ACTIONS", "check_webhook", "ensure_webhook"]

WEBHOOK_ACTIONS = (
    "ANNOTATION_CREATED",
    "ANNOTATION_UPDATED",
    "ANNOTATIONS_DELETED",
    "TASKS_DELETED",
    # the adjudication project's settings as changed, even when put back before the next
    # send (annotate.adjudication_guard); on other projects the service ignores it
    "PROJECT_UPDATED",
)
SECRET_HEADER = "X-Improv-Annotate-Secret"


def ensure_webhook(client: LabelStudio, project_id: int, url: str, secret: str) -> list[str]:
    """Register the agreement service's webhook on the project, or put it back as
    registered; returns what was wrong (empty when nothing was): ``missing``,
    ``switched off``, ``secret header changed``, ``payload off``, ``actions changed``.
    When two callers register it at the same moment, each keeps the oldest and removes
    its own copy."""
    return check_webhook(client, project_id, url, secret)[0]


def check_webhook(
    client: LabelStudio, project_id: int, url: str, secret: str
) -> tuple[list[str], str | None]:
    """:func:`ensure_webhook`, and the webhook's stamp as it is left: its id and Label
    Studio's ``updated_at`` (which every change moves, so a stamp that moved between two
    checks that found nothing wrong says someone changed the webhook and put it back in
    between, when deliveries may have been lost)."""

    def ours() -> list[Any]:
        hooks = (h for h in client.webhooks.list(project=project_id) if h.url == url)
        return sorted(hooks, key=lambda h: int(h.id))

    hooks = ours()
    if not hooks:
        made = client.webhooks.create(
            project=project_id,
            url=url,
            send_payload=True,
            send_for_all_actions=False,
            actions=list(WEBHOOK_ACTIONS),
            headers={SECRET_HEADER: secret},
            is_active=True,
        )
        hooks = ours()
        if hooks and hooks[0].id != made.id:
            _delete_webhook(client, int(made.id))
        return ["missing"], _stamp(hooks[0] if hooks else made)
    for extra in hooks[1:]:  # left by two registrations at once (an older version)
        _delete_webhook(client, int(extra.id))
    hook = hooks[0]
    wrong = []
    if hook.is_active is False:
        wrong.append("switched off")
    if (hook.headers or {}).get(SECRET_HEADER) != secret:
        wrong.append("secret header changed")
    if hook.send_payload is False:
        wrong.append("payload off")
    if not hook.send_for_all_actions and not set(WEBHOOK_ACTIONS) <= set(hook.actions or []):
        wrong.append("actions changed")
    if wrong:
        hook = client.webhooks.update(
            id=hook.id,
            url=url,
            headers={SECRET_HEADER: secret},
            is_active=True,
            send_payload=True,
            send_for_all_actions=False,
            actions=list(WEBHOOK_ACTIONS),
        )
    return wrong, _stamp(hook)


def _stamp(hook: Any) -> str | None:
    updated = getattr(hook, "updated_at", None)
    return None if updated is None else f"{hook.id}@{updated.isoformat()}"


def _delete_webhook(client: LabelStudio, hook_id: int) -> None:
    try:
        client.webhooks.delete(id=hook_id)
    except ApiError as exc:
        if exc.status_code != 404:  # 404: another import removed it first
            raise
