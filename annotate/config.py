"""Settings: ``config.yaml`` plus environment overrides, parsed once into a frozen model.

Environment variables override the file: ``IMPROV_ANNOTATE_<SECTION>__<KEY>``, e.g.
``IMPROV_ANNOTATE_LABEL_STUDIO__URL=http://ls.example:8080``; top-level keys drop the
``__`` part (``IMPROV_ANNOTATE_DATA_DIR``). Relative paths in the file are relative to the
file's folder. Secrets left empty are generated once for the local stack and kept in
``<data_dir>/secrets.json`` (see :func:`with_local_secrets`).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from schemas.errors import AnnotateError

ENV_PREFIX = "IMPROV_ANNOTATE_"
CONFIG_ENV = "IMPROV_ANNOTATE_CONFIG"


class ConfigError(AnnotateError, ValueError):
    """The configuration file or an override is invalid."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LabelStudioSettings(_Section):
    """Where Label Studio is and how we log in to it."""

    url: str = "http://127.0.0.1:8080"
    token: str | None = None
    username: str = "admin@improv-annotate.local"
    password: str | None = None
    project_title: str = "Improv emotion shifts"
    command: str = ".venv-ls/bin/label-studio"
    maximum_annotations: int = Field(3, ge=1)
    video: bool = False
    media_base_url: str | None = None


class ServiceSettings(_Section):
    """The agreement service: where it listens, its store, its secrets."""

    url: str = "http://127.0.0.1:8400"
    webhook_url: str | None = None
    database_url: str | None = None
    webhook_secret: str | None = None
    api_key: str | None = None
    reconcile_seconds: float = Field(300.0, ge=0)
    full_pull_seconds: float = Field(3600.0, ge=0)
    webhook_mode: Literal["trusted", "verified"] = "verified"
    read_wait_seconds: float = Field(2.0, ge=0)
    applier_timeout_seconds: float = Field(10.0, gt=0)
    max_backlog_seconds: float = Field(30.0, gt=0)
    min_free_mb: float = Field(64.0, ge=0)
    # how long a QA dashboard login lasts (the session cookie's Max-Age), at most 30 days
    login_hours: float = Field(12.0, gt=0, le=720)


class ClipSettings(_Section):
    """How turns are grouped into clips (one Label Studio task each)."""

    max_seconds: float = Field(45.0, gt=0)
    context_turns: int = Field(2, ge=0)


class ImporterSettings(_Section):
    """What the importer computes besides clips."""

    prosody: bool = True
    pitch_noise_gate: bool = True


class DatasetSettings(_Section):
    """What exported data cards state for sessions whose session.yaml does not say it:
    the licence of the recordings and what the performers consented to (``None``: the
    card says "not given")."""

    licence: str | None = None
    consent: str | None = None


class OverlapSettings(_Section):
    """Adaptive overlap: when a clip needs one more annotator (see :mod:`annotate.overlap`).

    ``enabled`` turns on the service's live raising and settling of each task's overlap in
    Label Studio; the other keys are the policy, used by ``overlap plan`` either way.
    """

    enabled: bool = False
    min_annotators: int = Field(2, ge=1)
    max_annotators: int = Field(5, ge=1)
    rule: Literal["lead", "posterior"] = "lead"
    lead: int = Field(2, ge=1)
    posterior: float = Field(0.9, gt=0, le=1)
    dimensions: tuple[str, ...] = ("emotion",)
    prior_strength: float = Field(2.0, ge=0)
    unsettled_share: float = Field(0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _max_not_below_min(self) -> OverlapSettings:
        if self.max_annotators < self.min_annotators:
            raise ValueError(
                f"max_annotators ({self.max_annotators}) is below min_annotators "
                f"({self.min_annotators})"
            )
        return self

    def policy(self) -> Any:
        """The :class:`annotate.overlap.OverlapPolicy` these settings describe."""
        from annotate.overlap import OverlapPolicy

        return OverlapPolicy.from_mapping(self.model_dump())


class AdjudicationSettings(_Section):
    """Adjudication: clips whose agreement stays low go to an adjudicator in a Label Studio
    project of their own (see :mod:`annotate.adjudicate`).

    ``thresholds``: per dimension, a clip whose alpha is below goes to adjudication (or,
    with adaptive overlap, a clip the policy settled with the panel full and still split).
    ``adjudicators``: the Label Studio accounts (e-mail or user id) whose decisions count;
    anyone else's annotation in the adjudication project is counted and ignored.
    ``auto``: the service sends clips as they settle, every ``every_seconds``.
    ``project_title``: the adjudication project (null: the main title + " · adjudication").
    ``max_resends``: how often a clip is sent again after its adjudication task was
    deleted or tampered with, before it is held for a person (``improv-annotate
    adjudicate --release CLIP``).
    """

    thresholds: dict[str, float] = {"emotion": 0.667}
    adjudicators: tuple[str, ...] = ()
    auto: bool = False
    every_seconds: float = Field(60.0, gt=0)
    project_title: str | None = None
    max_resends: int = Field(3, ge=0)

    @model_validator(mode="after")
    def _thresholds_in_range(self) -> AdjudicationSettings:
        for name, value in self.thresholds.items():
            if not -1.0 <= value <= 1.0:
                raise ValueError(f"thresholds.{name}: expected an alpha in [-1, 1], got {value}")
        if not self.thresholds:
            raise ValueError("thresholds: name at least one dimension, e.g. {emotion: 0.667}")
        return self


class Settings(BaseSettings):
    """All settings of improv-annotate; build with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
    )

    label_studio: LabelStudioSettings = LabelStudioSettings()
    service: ServiceSettings = ServiceSettings()
    clips: ClipSettings = ClipSettings()
    importer: ImporterSettings = ImporterSettings()
    dataset: DatasetSettings = DatasetSettings()
    overlap: OverlapSettings = OverlapSettings()
    adjudication: AdjudicationSettings = AdjudicationSettings()
    taxonomy: str | None = None
    taxonomy_extension: bool = False
    data_dir: str = "data"
    media_root: str | None = None
    examples_dir: str = "examples/sessions"
    base_dir: str = "."

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment first, then the file's values (passed as init arguments)."""
        return env_settings, init_settings

    def path(self, value: str) -> Path:
        """``value`` as a path, relative paths taken from the config file's folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else (Path(self.base_dir) / p).resolve()

    @property
    def data_path(self) -> Path:
        """The data folder: Label Studio's store, the service's SQLite file, logs, exports."""
        return self.path(self.data_dir)

    @property
    def media_path(self) -> Path:
        """The folder Label Studio serves media from (clip audio is written here)."""
        return self.path(self.media_root) if self.media_root else self.data_path / "media"

    @property
    def database_url(self) -> str:
        """The service's database URL (a SQLite file in the data folder by default)."""
        return self.service.database_url or f"sqlite:///{self.data_path / 'annotate.db'}"

    @property
    def webhook_url(self) -> str:
        """The URL Label Studio posts annotation events to."""
        base = self.service.webhook_url or self.service.url
        return base.rstrip("/") + "/webhooks/label-studio"


def find_config(explicit: str | Path | None = None) -> Path | None:
    """The config file to use: ``explicit``, ``$IMPROV_ANNOTATE_CONFIG``, or ./config.yaml."""
    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    local = Path("config.yaml")
    return local if local.exists() else None


def load_settings(path: str | Path | None = None) -> Settings:
    """Parse the config file (see :func:`find_config`) and the environment into Settings.

    Raises :class:`ConfigError` naming the file and the bad key.
    """
    file = find_config(path)
    raw: dict[str, Any] = {}
    if file is not None:
        try:
            raw = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ConfigError(f"{file}: cannot read config file ({exc.strerror})") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file}: not valid YAML ({exc})") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{file}: expected a mapping of settings at the top level")
        raw.setdefault("base_dir", str(file.resolve().parent))
    try:
        return Settings(**raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{file or 'settings'}: {problems}") from None


_SECRET_KEYS = ("ls_token", "ls_password", "webhook_secret", "api_key", "export_salt")


def local_secrets(data_dir: Path) -> dict[str, str]:
    """The local stack's secrets, generated on first use and kept in ``secrets.json``.

    The file is created with mode 0600; its values are never printed.
    """
    file = data_dir / "secrets.json"
    stored: dict[str, str] = {}
    if file.exists():
        stored = json.loads(file.read_text(encoding="utf-8"))
    missing = [k for k in _SECRET_KEYS if not stored.get(k)]
    if missing:
        for key in missing:
            stored[key] = secrets.token_hex(20)
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(stored, out, indent=2)
    return stored


def with_local_secrets(settings: Settings) -> Settings:
    """Fill secrets the config leaves empty from the local stack's generated ones."""
    ls, svc = settings.label_studio, settings.service
    if ls.token and ls.password and svc.webhook_secret and svc.api_key:
        return settings
    found = local_secrets(settings.data_path)
    return settings.model_copy(
        update={
            "label_studio": ls.model_copy(
                update={
                    "token": ls.token or found["ls_token"],
                    "password": ls.password or found["ls_password"],
                }
            ),
            "service": svc.model_copy(
                update={
                    "webhook_secret": svc.webhook_secret or found["webhook_secret"],
                    "api_key": svc.api_key or found["api_key"],
                }
            ),
        }
    )
