"""Personal data kept out of what the service stores for people to read.

A webhook payload Label Studio sends names the annotator (``completed_by.email``,
``created_username``, first and last names). The service keys judgements by user id and
takes no names from payloads (the names QA leads read come from Label Studio's list of
users, see ``api.members``); a payload it refuses is kept as a dead letter (so it can be
replayed), and that copy is redacted here first: the value of every personal key, and every e-mail
address anywhere else, becomes ``redacted:<16 hex digits>``, a salted SHA-256 of the value
(equal values stay equal, so letters can still be linked to one another without naming
anyone). Ids, results and everything else needed to replay the event are kept.

The salt is the local stack's ``export_salt`` (``secrets.json``, the salt of the exports'
annotator pseudonyms), set once per process with :func:`use_salt`; until then a random salt
of this process is used (values are redacted all the same, only not linkable across
processes).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from typing import Any

from annotate.config import Settings, local_secrets

PERSONAL_KEYS = frozenset(
    {
        "email",
        "created_username",
        "updated_username",
        "username",
        "first_name",
        "last_name",
        "full_name",
        "name_of_user",
        "phone",
        "initials",
        "avatar",
    }
)
"""Keys (compared in lower case) whose string values name a person."""

# an e-mail address: local part, @, a dotted domain (deliberately broad)
EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
PREFIX = "redacted:"

_salt = secrets.token_hex(20)


def use_salt(salt: str) -> None:
    """Salt the hashes of this process with ``salt`` (a secret of the deployment)."""
    global _salt
    if not salt:
        raise ValueError("the redaction salt must not be empty")
    _salt = salt


def pseudonym(value: str) -> str:
    """``redacted:`` and the first 16 hex digits of SHA-256(salt + value).

    Examples
    --------
    >>> use_salt("s")
    >>> pseudonym("ann@example.org") == "redacted:" + hashlib.sha256(
    ...     b"sann@example.org").hexdigest()[:16]
    True
    """
    return PREFIX + hashlib.sha256((_salt + value).encode("utf-8", "replace")).hexdigest()[:16]


def redact_text(text: str) -> str:
    """``text`` with every e-mail address replaced by its pseudonym.

    Examples
    --------
    >>> use_salt("s")
    >>> redact_text("from ann@example.org, twice").startswith("from redacted:")
    True
    """
    return EMAIL.sub(lambda m: pseudonym(m.group(0)), text)


def redact(value: Any) -> Any:
    """A copy of a parsed JSON value with personal data replaced by pseudonyms.

    The string value of a key in :data:`PERSONAL_KEYS` (any nesting) is replaced whole;
    every other string has its e-mail addresses replaced. Numbers (ids), booleans and the
    shape of the value are kept. A personal key whose value is a list or an object is
    walked like any other. Redacting twice changes nothing.

    Examples
    --------
    >>> use_salt("s")
    >>> out = redact({"completed_by": {"id": 7, "email": "a@b.org", "first_name": "Ann"}})
    >>> out["completed_by"]["id"], out["completed_by"]["first_name"].startswith("redacted:")
    (7, True)
    """
    if isinstance(value, dict):
        return {
            key: (
                pseudonym(item)
                if isinstance(item, str)
                and item
                and not item.startswith(PREFIX)  # redacted already: kept (idempotent)
                and str(key).lower() in PERSONAL_KEYS
                else redact(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_body(body: str) -> str:
    """A webhook body (text) with personal data replaced: walked as JSON when it parses
    (re-serialised compactly), else with its e-mail addresses replaced in the text."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return redact_text(body)
    return json.dumps(redact(parsed), ensure_ascii=False, separators=(",", ":"))


def salt_of(settings: Settings) -> str:
    """The deployment's redaction salt: ``export_salt`` of ``<data_dir>/secrets.json``
    (generated there on first use, with the local stack's other secrets)."""
    return local_secrets(settings.data_path)["export_salt"]
