"""Locate ffmpeg: a configured path, else the system ffmpeg, else imageio-ffmpeg's binary."""

from __future__ import annotations

import shutil
from pathlib import Path

from lofi_pipeline.core.errors import ConfigError


def find_ffmpeg(configured: str | None = None, *, prefer_system: bool = False) -> str:
    """Return the ffmpeg executable to use.

    ``configured`` (from the settings file) wins. Otherwise the bundled
    imageio-ffmpeg binary is the default, so every machine runs the same
    build; ``prefer_system=True`` picks an ffmpeg on PATH when there is one.
    """
    if configured:
        found = shutil.which(configured) or (configured if Path(configured).is_file() else None)
        if not found:
            raise ConfigError(f"ffmpeg '{configured}' from the settings file was not found; "
                              "fix `ffmpeg:` in lofi.yaml or remove it to use the bundled one")
        return found
    if prefer_system and shutil.which("ffmpeg"):
        return shutil.which("ffmpeg")  # type: ignore[return-value]
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()
