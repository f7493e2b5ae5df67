"""Publishing: the YouTube URL a producer pastes back after uploading."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

from lofi_pipeline.core.errors import ConfigError

# -------------------------------------------------------------------- publish

_YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_YOUTUBE_HOSTS = {"youtube.com", "www.youtube.com", "m.youtube.com", "music.youtube.com",
                  "youtube-nocookie.com", "www.youtube-nocookie.com"}


def validate_youtube_url(url: str) -> str:
    """Return the 11-character video id of a YouTube video URL.

    Accepts ``youtube.com/watch?v=ID``, ``youtu.be/ID``, ``/shorts/ID``,
    ``/live/ID`` and ``/embed/ID`` (http or https, with or without ``www.``;
    a missing scheme is allowed).

    Raises
    ------
    ConfigError
        Not a YouTube video URL, naming what was expected.
    """
    expected = "expected https://www.youtube.com/watch?v=<11-character id> or https://youtu.be/<id>"
    raw = (url or "").strip()
    if not raw:
        raise ConfigError(f"empty YouTube URL; {expected}")
    parsed = urlparse(raw if "://" in raw else "https://" + raw)
    host = (parsed.hostname or "").lower()
    parts = [p for p in parsed.path.split("/") if p]
    candidate: str | None = None
    if parsed.scheme not in ("http", "https"):
        candidate = None
    elif host in ("youtu.be", "www.youtu.be"):
        candidate = parts[0] if len(parts) == 1 else None
    elif host in _YOUTUBE_HOSTS:
        if parts == ["watch"]:
            values = parse_qs(parsed.query).get("v", [])
            candidate = values[0] if len(values) == 1 else None
        elif len(parts) == 2 and parts[0] in ("shorts", "live", "embed", "v"):
            candidate = parts[1]
    if candidate is None or not _YOUTUBE_ID.match(candidate):
        raise ConfigError(f"'{raw}' is not a YouTube video URL; {expected}")
    return candidate
