"""What every command module of the ``improv-annotate`` command line shares: the Typer
app, the consoles, the settings of this run, and the error handling of every command.

:mod:`annotate.cli` and :mod:`annotate.cli_import` register their commands on :data:`app`;
this module imports neither.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from annotate.config import Settings, load_settings, with_local_secrets
from schemas.errors import AnnotateError

__all__ = ["MigrationOpt", "ProjectOpt", "app", "console", "err", "state"]

app = typer.Typer(
    name="improv-annotate",
    help="Annotate emotion shifts in recorded improv: Label Studio projects, live "
    "inter-annotator agreement, turn-level exports.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(highlight=False)
err = Console(stderr=True, highlight=False)
F = TypeVar("F", bound=Callable[..., Any])


class _State:
    config: Path | None = None
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = with_local_secrets(load_settings(self.config))
        return self._settings


state = _State()


def _friendly(fn: F) -> F:
    """Run a command; an ``AnnotateError`` is printed as a message (no traceback), exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AnnotateError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _migration(path: Path | None) -> dict[str, dict[str, str]] | None:
    """A taxonomy migration mapping from YAML: {control: {old label: new label}}."""
    if path is None:
        return None
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise AnnotateError(f"{path}: cannot read the migration mapping ({exc})") from None
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise AnnotateError(f"{path}: expected a mapping {{control: {{old label: new label}}}}")
    return {str(k): {str(a): str(b) for a, b in v.items()} for k, v in raw.items()}


def _project(client: Any, migration: Path | None = None) -> Any:
    from annotate.labelstudio import ensure_project, ensure_webhook

    s = state.settings
    project = ensure_project(
        client, s, _taxonomy(), _migration(migration), video=s.label_studio.video
    )
    ensure_webhook(client, project.id, s.webhook_url, s.service.webhook_secret or "")
    return project


def _taxonomy() -> Any:
    from schemas.taxonomy import load_taxonomy

    s = state.settings
    return load_taxonomy(s.path(s.taxonomy) if s.taxonomy else None, extension=s.taxonomy_extension)


MigrationOpt = Annotated[
    Path | None,
    typer.Option(
        "--migration",
        help="YAML {control: {old label: new label}} for a taxonomy "
        "change that removes or renames labels annotations use",
    ),
]


def _project_id(project: int | None) -> int:
    if project is not None:
        return project
    from annotate.labelstudio import connect, find_project

    s = state.settings
    found = find_project(connect(s), s.label_studio.project_title)
    if found is None:
        raise AnnotateError(
            f"no project titled {s.label_studio.project_title!r} in Label Studio; "
            "run 'improv-annotate up' or pass --project"
        )
    return int(found.id)


ProjectOpt = Annotated[
    int | None,
    typer.Option(
        "--project", "-p", help="Label Studio project id (default: the configured project title)"
    ),
]
