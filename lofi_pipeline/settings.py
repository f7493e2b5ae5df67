"""Settings for one library: ``lofi.yaml`` in LOFI_HOME over packaged defaults.

``LOFI_HOME`` is the folder that holds the settings file, ``data/`` and
``Tracks/`` (default: the current directory). Every command and the Dagster
code location read it, so several libraries can be kept apart. Secrets are
not settings: the Notion token is read from ``NOTION_TOKEN`` by the resource
(:func:`lofi_pipeline.core.secrets.notion_token`).

One place validates every setting: the pydantic models below, one per section
of ``settings_default.yaml``. The packaged defaults live only in that YAML
file; the user's ``lofi.yaml`` is merged over them key by key, and the result
is checked whole (unknown keys are refused, types are strict, ranges are
checked). A bad value gives one :class:`ConfigError` line naming the file,
the key path, the value and what is expected, e.g.
``…/lofi.yaml: matching.top_k = 'five': expected an integer ≥ 1``.

``lofi.yaml`` may not use YAML anchors or aliases (``&a`` / ``*a`` / ``<<``):
they are refused while the file is parsed, before anything is built, so an
"alias bomb" costs nothing.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lofi_pipeline.core.errors import ConfigError
from lofi_pipeline.core.tracknumbers import MAX_STORED_INT

SETTINGS_FILE = "lofi.yaml"

# Counts stored or compared in the library's INTEGER columns stay in its range.
INT32_MAX = MAX_STORED_INT


def lofi_home() -> Path:
    return Path(os.environ.get("LOFI_HOME") or os.getcwd()).resolve()


def is_library(home: Path | str) -> bool:
    """True when ``home`` holds a library: its settings file, or the database at the default place.

    A library built by ``lofi init`` has ``lofi.yaml``; one built by an older
    version or by the demo may have only ``data/lofi.duckdb``.
    """
    home = Path(home)
    return (home / SETTINGS_FILE).is_file() or (home / "data" / "lofi.duckdb").is_file()


def not_a_library_message(home: Path | str) -> str:
    """The one-line refusal for a folder that is not a library (home shown as ~)."""
    shown = str(home)
    user = str(Path.home())
    if shown == user or shown.startswith(user + os.sep):
        shown = "~" + shown[len(user):]
    return f"no {SETTINGS_FILE} in {shown} — run `lofi init` there, or set LOFI_HOME"


def default_settings_text() -> str:
    """The packaged default lofi.yaml, comments included (``lofi init`` writes it)."""
    return resources.files("lofi_pipeline").joinpath("settings_default.yaml").read_text()


# ----------------------------------------------------------------------- YAML

class _NoAliasLoader(yaml.SafeLoader):
    """A safe loader that refuses anchors and aliases as soon as it meets one.

    The check runs on parser events, before a node is composed, so a file of
    nested aliases ("billion laughs") is refused at its first anchor without
    building anything.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D401 - PyYAML hook
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            mark = event.start_mark
            raise _AliasRefused(mark.line + 1 if mark is not None else None)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        # PyYAML keeps the last of two equal keys silently; a setting written
        # twice is a mistake the user should hear about.
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if isinstance(key, str) and key in seen:
                raise _DuplicateKey(key, seen[key], line)
            if isinstance(key, str):
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


class _AliasRefused(Exception):
    def __init__(self, line: int | None):
        self.line = line


class _DuplicateKey(Exception):
    def __init__(self, key: str, first: int, second: int):
        self.key, self.first, self.second = key, first, second


def _load_yaml(text: str, where: str) -> Any:
    """Parse settings YAML, turning every failure into one ConfigError line."""
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except _AliasRefused as exc:
        at = f", line {exc.line}" if exc.line else ""
        raise ConfigError(f"{where}{at}: YAML anchors and aliases (&name, *name, <<) are not "
                          "allowed in settings; write each value out") from None
    except _DuplicateKey as exc:
        raise ConfigError(f"{where}, line {exc.second}: setting {_shown(exc.key)} is written twice "
                          f"(first on line {exc.first}); keep one") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"{where}{at}: not valid YAML ({_one_line(str(problem))})") from None


# --------------------------------------------------------------------- models

def _setting(expected: str, **constraints: Any) -> Any:
    """A required field whose error message says ``expected`` (defaults live in the YAML)."""
    return Field(..., json_schema_extra={"expected": expected}, **constraints)


class _Section(BaseModel):
    # strict: "5" is not 5 and true is not 1; floats still accept integers.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class LibrarySettings(_Section):
    duckdb_path: str = _setting("a path (text)", min_length=1)
    export_dir: str = _setting("a path or URL (text)", min_length=1)
    features_dir: str = _setting("a path or URL (text)", min_length=1)
    pages_dir: str = _setting("a path (text)", min_length=1)
    tracks_dir: str = _setting("a path (text)", min_length=1)


class NotionSettings(_Section):
    export_dir: Optional[str] = _setting("a folder path (text) or null", min_length=1)
    parent: Optional[str] = _setting("a Notion page or database URL or id (text) or null", min_length=1)
    base_url: Optional[str] = _setting("an http:// or https:// URL or null",
                                       pattern=r"^https?://[^\s]+$")


class AnalysisSettings(_Section):
    workers: Optional[int] = _setting("an integer from 1 to 1024, or null", ge=1, le=1024)


class MatchWeightSettings(_Section):
    semantic: float = _setting("a number ≥ 0", ge=0)
    arc: float = _setting("a number ≥ 0", ge=0)
    bpm: float = _setting("a number ≥ 0", ge=0)
    key: float = _setting("a number ≥ 0", ge=0)
    usage: float = _setting("a number ≥ 0", ge=0)

    @model_validator(mode="after")
    def _not_all_zero(self) -> "MatchWeightSettings":
        if self.semantic + self.arc + self.bpm + self.key + self.usage <= 0:
            raise ValueError("at least one weight > 0 (they are all zero)")
        return self


class MatchingSettings(_Section):
    weights: MatchWeightSettings = _setting("a mapping of weight name → number")
    top_k: int = _setting("an integer ≥ 1", ge=1, le=INT32_MAX)
    min_similarity: float = _setting("a number from -1 to 1", ge=-1, le=1)
    good_similarity: float = _setting("a number from -1 to 1", ge=-1, le=1)
    allocation: Literal["prompts", "even"] = _setting("'prompts' or 'even'")
    max_repeats: int = _setting("an integer ≥ 0", ge=0, le=100)
    recent_tracks: int = _setting("an integer ≥ 0", ge=0, le=INT32_MAX)


class RenderSettings(_Section):
    ffmpeg: Optional[str] = _setting("a path to an ffmpeg binary (text) or null", min_length=1)
    prefer_system_ffmpeg: bool = _setting("true or false")
    crossfade_seconds: float = _setting("a number of seconds from 0 to 600", ge=0, le=600)
    target_lufs: float = _setting("a loudness in LUFS from -70 to 0", ge=-70, le=0)
    true_peak_db: float = _setting("a level in dBTP from -20 to 0", ge=-20, le=0)
    fade_in_seconds: float = _setting("a number of seconds from 0 to 600", ge=0, le=600)
    fade_out_seconds: float = _setting("a number of seconds from 0 to 600", ge=0, le=600)
    width: int = _setting("an integer number of pixels from 1 to 16384", ge=1, le=16384)
    height: int = _setting("an integer number of pixels from 1 to 16384", ge=1, le=16384)
    prepare_mode: Literal["copy", "hardlink", "move"] = _setting("'copy', 'hardlink' or 'move'")


class LofiSettings(_Section):
    """The whole settings file, one model per section of ``settings_default.yaml``."""

    library: LibrarySettings = _setting("a mapping of library paths")
    dagster_home: str = _setting("a path (text)", min_length=1)
    notion: NotionSettings = _setting("a mapping of Notion settings")
    analysis: AnalysisSettings = _setting("a mapping of analysis settings")
    matching: MatchingSettings = _setting("a mapping of matching settings")
    render: RenderSettings = _setting("a mapping of render settings")


# ------------------------------------------------------------ error messages

def _one_line(text: str) -> str:
    return " ".join(text.split())


def _shown(value: Any, limit: int = 60) -> str:
    """A value as the user wrote it, on one line, short (repr escapes control characters)."""
    if isinstance(value, dict):
        text = "a mapping" if value else "an empty mapping"
    elif isinstance(value, list):
        text = "a list"
    elif isinstance(value, str):
        text = repr(value)
    elif value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float) and not math.isfinite(value):
        text = str(value)
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The section model at key path ``loc`` (``()`` is the whole file)."""
    model: type[BaseModel] = LofiSettings
    for name in loc:
        info = model.model_fields.get(name) if isinstance(name, str) else None
        annotation = info.annotation if info is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _expected(loc: tuple[Any, ...]) -> str | None:
    """The ``expected`` text of the field at ``loc``."""
    owner = _model_at(loc[:-1]) if loc else None
    info = owner.model_fields.get(loc[-1]) if owner is not None else None
    extra = info.json_schema_extra if info is not None else None
    return extra.get("expected") if isinstance(extra, dict) else None


def _value_at(data: Any, loc: tuple[Any, ...]) -> Any:
    for name in loc:
        if isinstance(data, dict) and name in data:
            data = data[name]
        else:
            return None
    return data


def _message(error: dict[str, Any], data: dict[str, Any], where: str) -> str:
    loc = tuple(error["loc"])
    key = ".".join(str(part) for part in loc) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        owner = _model_at(loc[:-1])
        known = f" (expected one of {', '.join(owner.model_fields)})" if owner is not None else ""
        return f"{where}: unknown setting '{key}'{known}"
    if kind == "missing":
        return f"{where}: setting '{key}' is missing (it has no default)"
    if kind == "value_error":  # a model validator's own sentence
        expected = error["msg"].removeprefix("Value error, ")
    else:
        expected = _expected(loc) or _one_line(error["msg"]).lower()
        bound = (error.get("ctx") or {}).get("le")
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        if kind == "less_than_equal" and bound is not None and f"to {bound}" not in expected:
            expected += f" and at most {bound}"
    return f"{where}: {key} = {_shown(_value_at(data, loc))}: expected {expected}"


# -------------------------------------------------------------------- loading

def _merge(base: Any, over: Any) -> Any:
    """``over`` on top of ``base``, mapping by mapping; anything else replaces.

    Unknown keys and wrong types pass through untouched: validation names them.
    """
    if not isinstance(base, dict) or not isinstance(over, dict):
        return over
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(base[key], value) if key in base else value
    return out


def validate_settings(data: Any, *, where: str) -> LofiSettings:
    """Check a merged settings mapping; ``where`` (the file) starts every message.

    Raises
    ------
    ConfigError
        One line: the first problem (file, key path, value, what is expected),
        with the number of further problems when there are several.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of settings (library:, matching:, …), "
                          f"got {_shown(data)}")
    try:
        return LofiSettings.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = _message(errors[0], data, where)
        more = len(errors) - 1
        raise ConfigError(first + (f" (and {more} more problem{'s' if more > 1 else ''})"
                                   if more else "")) from None


def _defaults() -> dict[str, Any]:
    return _load_yaml(default_settings_text(), "settings_default.yaml")


def load_settings_data(home: Path) -> tuple[dict[str, Any], LofiSettings]:
    """The merged settings mapping of ``home`` and its validated model."""
    raw = _defaults()
    path = home / SETTINGS_FILE
    where = "settings_default.yaml"
    if path.is_file():
        where = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(f"{path}: cannot read the settings file ({reason})") from None
        user = _load_yaml(text, where)
        if user is None:
            user = {}  # an empty file keeps every default
        if not isinstance(user, dict):
            raise ConfigError(f"{path}: expected a mapping of settings (library:, matching:, …), "
                              f"got {_shown(user)}")
        raw = _merge(raw, user)
    model = validate_settings(raw, where=where)
    return model.model_dump(), model


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
    """One library's settings.

    ``raw`` is the validated settings as plain dicts (``settings.matching`` etc.
    are its sections, for ``.get()`` and ``**``); ``model`` is the same data as
    the typed, frozen :class:`LofiSettings`.
    """

    home: Path
    raw: dict[str, Any]

    @classmethod
    def load(cls, home: Path | str | None = None) -> "Settings":
        """Read ``lofi.yaml`` in ``home`` (default: LOFI_HOME) over the defaults.

        Raises
        ------
        ConfigError
            One line naming the file (and line or key path) for unreadable or
            invalid YAML, anchors/aliases, duplicate keys, unknown keys, wrong
            types and out-of-range values.
        """
        home = Path(home).resolve() if home else lofi_home()
        raw, _ = load_settings_data(home)
        return cls(home=home, raw=raw)

    @property
    def model(self) -> LofiSettings:
        """The settings as the typed pydantic model (already validated)."""
        return LofiSettings.model_validate(self.raw)

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


def load_settings(home: Path | str | None = None) -> Settings:
    """:meth:`Settings.load` as a function."""
    return Settings.load(home)
