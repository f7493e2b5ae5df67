"""Errors the user can act on.

Every error names the thing that was wrong (file, page, line) and what was
expected. The CLI prints ``str(error)`` as one line, without a traceback.
"""

from __future__ import annotations

from pathlib import Path


class LofiError(Exception):
    """Base class for errors shown to the user as one line."""


class PageParseError(LofiError):
    """A page cannot be read as a track page."""

    def __init__(self, source: str, reason: str, *, line: int | None = None):
        self.source = source
        self.reason = reason
        self.line = line
        where = f"{source}, line {line}" if line is not None else source
        super().__init__(f"{where}: {reason}")


class AudioFileError(LofiError):
    """An audio file cannot be decoded or analysed."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class NotionAccessError(LofiError):
    """The Notion API refused or failed a request (the token is never included)."""


class RenderError(LofiError):
    """ffmpeg failed or a render input is missing."""


class LibraryError(LofiError):
    """The DuckDB library cannot be opened or written."""


class ConfigError(LofiError):
    """The settings file or a command-line option is invalid."""
