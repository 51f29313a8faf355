"""Tests for annotate.config: defaults, the file, environment overrides, paths, secrets."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from annotate.config import (
    CONFIG_ENV,
    ENV_PREFIX,
    ConfigError,
    Settings,
    find_config,
    load_settings,
    local_secrets,
    with_local_secrets,
)
from schemas.errors import AnnotateError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No IMPROV_ANNOTATE_* variables and an empty working folder (no ./config.yaml)."""
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


def write_config(folder: Path, data: Any, name: str = "config.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_defaults_without_a_file() -> None:
    assert find_config() is None
    settings = load_settings()
    assert settings == Settings()
    assert settings.label_studio.url == "http://127.0.0.1:8080"
    assert settings.label_studio.token is None
    assert settings.label_studio.maximum_annotations == 3
    assert settings.label_studio.project_title == "Improv emotion shifts"
    assert settings.service.url == "http://127.0.0.1:8400"
    assert settings.clips.max_seconds == 45.0
    assert (settings.taxonomy, settings.taxonomy_extension) == (None, False)
    assert settings.base_dir == "."
    assert settings.data_path == Path.cwd().resolve() / "data"
    assert settings.media_path == settings.data_path / "media"
    assert settings.database_url == f"sqlite:///{settings.data_path / 'annotate.db'}"
    assert settings.webhook_url == "http://127.0.0.1:8400/webhooks/label-studio"


def test_the_shipped_config_holds_the_defaults() -> None:
    settings = load_settings(ROOT / "config.yaml")
    assert settings.base_dir == str(ROOT)
    assert settings.model_copy(update={"base_dir": "."}) == Settings()
    assert settings.data_path == ROOT / "data"


def test_a_files_values(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "conf",
        {
            "label_studio": {"url": "https://ls.example.org", "maximum_annotations": 2},
            "service": {"webhook_url": "http://10.0.0.2:8400/", "database_url": "sqlite://"},
            "clips": {"max_seconds": 30},
            "taxonomy_extension": True,
            "examples_dir": "scenes",
        },
    )
    settings = load_settings(path)
    assert settings.label_studio.url == "https://ls.example.org"
    assert settings.label_studio.maximum_annotations == 2
    assert settings.label_studio.username == "admin@improv-annotate.local"  # default kept
    assert settings.clips.max_seconds == 30.0
    assert settings.taxonomy_extension is True
    assert settings.examples_dir == "scenes"
    assert settings.webhook_url == "http://10.0.0.2:8400/webhooks/label-studio"
    assert settings.database_url == "sqlite://"


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("# nothing set\n", encoding="utf-8")
    settings = load_settings(path)
    assert settings.model_copy(update={"base_dir": "."}) == Settings()


def test_find_config_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local = write_config(Path.cwd(), {"data_dir": "local"})
    assert find_config() == Path("config.yaml")
    assert load_settings().data_path == local.parent.resolve() / "local"
    from_env = write_config(tmp_path / "env", {"data_dir": "from-env"})
    monkeypatch.setenv(CONFIG_ENV, str(from_env))
    assert find_config() == from_env
    assert load_settings().data_dir == "from-env"
    explicit = write_config(tmp_path / "explicit", {"data_dir": "explicit"})
    assert find_config(explicit) == explicit
    assert load_settings(str(explicit)).data_dir == "explicit"


def test_environment_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(
        tmp_path / "conf",
        {
            "label_studio": {"url": "http://file:8080", "project_title": "From the file"},
            "data_dir": "file-data",
        },
    )
    monkeypatch.setenv("IMPROV_ANNOTATE_LABEL_STUDIO__URL", "http://env:9090")
    monkeypatch.setenv("IMPROV_ANNOTATE_DATA_DIR", "/srv/annotate")
    monkeypatch.setenv("IMPROV_ANNOTATE_LABEL_STUDIO__MAXIMUM_ANNOTATIONS", "5")
    monkeypatch.setenv("IMPROV_ANNOTATE_CLIPS__MAX_SECONDS", "12.5")
    settings = load_settings(path)
    assert settings.label_studio.url == "http://env:9090"
    assert settings.data_dir == "/srv/annotate"
    assert settings.data_path == Path("/srv/annotate")
    assert settings.label_studio.maximum_annotations == 5
    assert settings.clips.max_seconds == 12.5
    # The rest of the overridden section still comes from the file.
    assert settings.label_studio.project_title == "From the file"


def test_environment_without_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMPROV_ANNOTATE_SERVICE__URL", "http://0.0.0.0:9000")
    settings = load_settings()
    assert settings.service.url == "http://0.0.0.0:9000"
    assert settings.webhook_url == "http://0.0.0.0:9000/webhooks/label-studio"


def test_relative_environment_path_uses_the_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path / "conf", {})
    monkeypatch.setenv("IMPROV_ANNOTATE_DATA_DIR", "elsewhere")
    assert load_settings(path).data_path == (tmp_path / "conf" / "elsewhere").resolve()


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"bogus": 1}, "bogus"),
        ({"label_studio": {"colour": "red"}}, r"label_studio\.colour"),
        ({"clips": {"max_seconds": 30, "min_seconds": 1}}, r"clips\.min_seconds"),
    ],
)
def test_unknown_key_is_named(tmp_path: Path, data: dict, key: str) -> None:
    path = write_config(tmp_path, data)
    with pytest.raises(
        ConfigError, match=rf"^{re.escape(str(path))}: {key}: Extra inputs are not permitted$"
    ):
        load_settings(path)


def test_unknown_environment_key_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMPROV_ANNOTATE_LABEL_STUDIO__BOGUS", "x")
    with pytest.raises(ConfigError, match=r"^settings: label_studio\.bogus: Extra inputs"):
        load_settings()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"label_studio": {"maximum_annotations": 0}}, r"label_studio\.maximum_annotations: "),
        ({"clips": {"max_seconds": -1}}, r"clips\.max_seconds: Input should be greater than 0"),
        ({"taxonomy_extension": "perhaps"}, r"taxonomy_extension: Input should be a valid bool"),
    ],
)
def test_invalid_values_are_named(tmp_path: Path, data: dict, message: str) -> None:
    path = write_config(tmp_path, data)
    with pytest.raises(ConfigError, match=message):
        load_settings(path)


def test_file_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(missing))}: cannot read config"):
        load_settings(missing)
    bad = tmp_path / "bad.yaml"
    bad.write_text("label_studio: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(bad))}: not valid YAML"):
        load_settings(bad)
    listed = write_config(tmp_path, ["url"], "list.yaml")
    with pytest.raises(ConfigError, match=r"list\.yaml: expected a mapping of settings at the top"):
        load_settings(listed)


def test_config_errors_are_value_errors() -> None:
    assert issubclass(ConfigError, AnnotateError)
    assert issubclass(ConfigError, ValueError)


def test_relative_paths_resolve_against_the_files_folder(tmp_path: Path) -> None:
    folder = tmp_path / "project" / "conf"
    path = write_config(
        folder,
        {"data_dir": "../state", "media_root": "media", "taxonomy": "team.yaml"},
    )
    settings = load_settings(path)
    assert settings.base_dir == str(folder.resolve())
    assert settings.data_path == (tmp_path / "project" / "state").resolve()
    assert settings.media_path == folder.resolve() / "media"
    assert settings.path(settings.taxonomy) == folder.resolve() / "team.yaml"
    assert (
        settings.database_url
        == f"sqlite:///{(tmp_path / 'project' / 'state').resolve()}/annotate.db"
    )


def test_absolute_and_home_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = write_config(tmp_path / "conf", {"data_dir": str(tmp_path / "abs"), "media_root": "~/m"})
    settings = load_settings(path)
    assert settings.data_path == tmp_path / "abs"
    assert settings.media_path == tmp_path / "home" / "m"


def test_explicit_base_dir_is_kept(tmp_path: Path) -> None:
    path = write_config(tmp_path / "conf", {"base_dir": str(tmp_path / "base")})
    assert load_settings(path).data_path == tmp_path / "base" / "data"


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, {}))
    with pytest.raises(ValidationError, match="frozen"):
        settings.data_dir = "elsewhere"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        settings.label_studio.url = "http://other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        settings.clips.max_seconds = 1.0  # type: ignore[misc]


# --- secrets --------------------------------------------------------------------------------


def test_with_local_secrets_generates_them_once(tmp_path: Path) -> None:
    path = write_config(tmp_path / "conf", {"data_dir": "data"})
    settings = load_settings(path)
    secrets_file = tmp_path / "conf" / "data" / "secrets.json"
    assert not secrets_file.exists()

    first = with_local_secrets(settings)
    assert secrets_file.exists()
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    stored = json.loads(secrets_file.read_text(encoding="utf-8"))
    assert sorted(stored) == ["api_key", "export_salt", "ls_password", "ls_token", "webhook_secret"]
    assert all(re.fullmatch(r"[0-9a-f]{40}", v) for v in stored.values())
    assert len(set(stored.values())) == 5
    assert first.label_studio.token == stored["ls_token"]
    assert first.label_studio.password == stored["ls_password"]
    assert first.service.webhook_secret == stored["webhook_secret"]
    assert first.service.api_key == stored["api_key"]
    # The original settings are untouched, the rest is copied.
    assert settings.label_studio.token is None
    assert first.label_studio.url == settings.label_studio.url
    assert first.data_path == settings.data_path

    before = secrets_file.read_bytes()
    second = with_local_secrets(load_settings(path))
    assert second == first
    assert secrets_file.read_bytes() == before


def test_explicit_secrets_are_kept(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "conf",
        {"label_studio": {"token": "my-token"}, "service": {"api_key": "my-key"}},
    )
    settings = with_local_secrets(load_settings(path))
    stored = json.loads((tmp_path / "conf" / "data" / "secrets.json").read_text(encoding="utf-8"))
    assert settings.label_studio.token == "my-token"
    assert settings.service.api_key == "my-key"
    assert settings.label_studio.password == stored["ls_password"]
    assert settings.service.webhook_secret == stored["webhook_secret"]


def test_explicit_secrets_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMPROV_ANNOTATE_SERVICE__WEBHOOK_SECRET", "from-env")
    settings = with_local_secrets(load_settings(write_config(tmp_path / "conf", {})))
    assert settings.service.webhook_secret == "from-env"


def test_all_secrets_set_writes_nothing(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "conf",
        {
            "label_studio": {"token": "t", "password": "p"},
            "service": {"webhook_secret": "w", "api_key": "k"},
        },
    )
    settings = load_settings(path)
    assert with_local_secrets(settings) is settings
    assert not (tmp_path / "conf" / "data").exists()


def test_local_secrets_fills_only_missing_keys(tmp_path: Path) -> None:
    tmp_path.joinpath("secrets.json").write_text(
        json.dumps({"ls_token": "kept", "api_key": ""}), encoding="utf-8"
    )
    stored = local_secrets(tmp_path)
    assert stored["ls_token"] == "kept"
    assert stored["api_key"]
    assert json.loads((tmp_path / "secrets.json").read_text(encoding="utf-8")) == stored
    assert local_secrets(tmp_path) == stored
