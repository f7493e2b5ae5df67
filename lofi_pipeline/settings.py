"""Settings for one library: ``lofi.yaml`` in LOFI_HOME over packaged defaults.

``LOFI_HOME`` is the folder that holds the settings file, ``data/`` and
``Tracks/`` (default: the current directory). Every command and the Dagster
code location read it, so several libraries can be kept apart. Secrets are
not settings: the Notion token is read from ``NOTION_TOKEN`` by the resource.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from lofi_pipeline.core.errors import ConfigError

SETTINGS_FILE = "lofi.yaml"


def lofi_home() -> Path:
    return Path(os.environ.get("LOFI_HOME") or os.getcwd()).resolve()


def default_settings_text() -> str:
    """The packaged default lofi.yaml, comments included (``lofi init`` writes it)."""
    return resources.files("lofi_pipeline").joinpath("settings_default.yaml").read_text()


def _defaults() -> dict[str, Any]:
    return yaml.safe_load(default_settings_text())


def _merge(base: dict[str, Any], over: dict[str, Any], where: str) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in (over or {}).items():
        if key not in base:
            raise ConfigError(f"{where}: unknown setting '{key}' (expected one of {', '.join(base)})")
        if isinstance(base[key], dict) and key != "weights":
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: '{key}' must be a mapping")
            out[key] = _merge(base[key], value, f"{where} [{key}]")
        else:
            out[key] = value
    return out


class _LibraryPath:
    """``settings.<name>``: the ``library.<name>`` setting resolved by :meth:`Settings.path`."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.key = name

    def __get__(self, obj: Settings | None, owner: type | None = None) -> str:
        if obj is None:
            return self  # type: ignore[return-value]
        return obj.path(obj.raw["library"][self.key])  # type: ignore[return-value]


@dataclass(frozen=True)
class Settings:
    home: Path
    raw: dict[str, Any]

    @classmethod
    def load(cls, home: Path | str | None = None) -> "Settings":
        home = Path(home).resolve() if home else lofi_home()
        raw = _defaults()
        path = home / SETTINGS_FILE
        if path.is_file():
            try:
                user = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"{path}: not valid YAML ({exc})") from None
            if not isinstance(user, dict):
                raise ConfigError(f"{path}: expected a mapping of settings")
            raw = _merge(raw, user, str(path))
        return cls(home=home, raw=raw)

    def path(self, value: str | None) -> str | None:
        """Resolve a path setting against LOFI_HOME; URLs (s3://, gs://) pass through."""
        if value is None:
            return None
        if "://" in value:
            return value
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else self.home / p)

    # The library's paths (``library:`` in the settings), resolved against LOFI_HOME.
    duckdb_path = _LibraryPath()
    export_dir = _LibraryPath()
    features_dir = _LibraryPath()
    pages_dir = _LibraryPath()
    tracks_dir = _LibraryPath()

    @property
    def dagster_home(self) -> str:
        """The Dagster instance folder; ``LOFI_DAGSTER_HOME`` overrides the setting
        (to share one instance between libraries, as the test suite does)."""
        return self.path(os.environ.get("LOFI_DAGSTER_HOME") or self.raw["dagster_home"])  # type: ignore[return-value]

    @property
    def matching(self) -> dict[str, Any]:
        return self.raw["matching"]

    @property
    def render(self) -> dict[str, Any]:
        return self.raw["render"]

    @property
    def notion(self) -> dict[str, Any]:
        return self.raw["notion"]

    @property
    def analysis(self) -> dict[str, Any]:
        return self.raw["analysis"]
