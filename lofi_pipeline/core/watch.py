"""Which new audio files are complete and not yet imported (the file sensors' rule).

A file counts as complete once its size and mtime are the same on two
consecutive looks: ffmpeg and download tools grow files in place, and
importing half a file would store a wrong hash and analysis. A complete file
the library already holds unchanged (same size and mtime) is not new.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lofi_pipeline.core.audio import SUPPORTED_EXTENSIONS

FileStates = dict[str, list[float]]  # path -> [size, mtime]


def scan_track_files(tracks_dir: Path, subfolder: str) -> dict[int, FileStates]:
    """Audio files under ``Tracks/{N}/{subfolder}/`` (recursively), grouped by track number."""
    found: dict[int, FileStates] = {}
    if not tracks_dir.is_dir():
        return found
    for track in sorted(tracks_dir.iterdir()):
        rendered = track / subfolder
        if not (track.name.isdigit() and rendered.is_dir()):
            continue
        for f in sorted(rendered.rglob("*")):
            if f.is_file() and f.suffix.lower() in SUPPORTED_EXTENSIONS and not f.name.startswith("."):
                st = f.stat()
                found.setdefault(int(track.name), {})[str(f)] = [st.st_size, st.st_mtime]
    return found


def ready_to_import(current: dict[int, FileStates], previous: FileStates,
                    imported: FileStates) -> dict[int, list[str]]:
    """Per track, files stable since the previous look and not imported in this state."""
    ready: dict[int, list[str]] = {}
    for track, files in current.items():
        for path, state in files.items():
            if state[0] > 0 and previous.get(path) == state and imported.get(path) != state:
                ready.setdefault(track, []).append(path)
    return ready


def scan_rendered(tracks_dir: Path) -> dict[int, FileStates]:
    """Audio files under ``Tracks/{N}/Rendered/``."""
    return scan_track_files(tracks_dir, "Rendered")


def batch_key(track: int, paths: list[str], states: FileStates, *, prefix: str = "post-render") -> str:
    digest = hashlib.sha1(repr(sorted((p, states[p]) for p in paths)).encode()).hexdigest()[:16]
    return f"{prefix}-{track}-{digest}"


def without_known(ready: dict[int, list[str]], states: FileStates,
                  known: Mapping[str, Sequence[Any]]) -> dict[int, list[str]]:
    """``ready`` without the files the library already holds at the same size and mtime.

    ``known`` maps absolute paths to ``(song_id, size, mtime, …)``, as
    :meth:`lofi_pipeline.core.library.Library.known_files` returns. A sensor
    starts with an empty cursor (a fresh instance, a reset sensor), so without
    this every song already imported would be requested again, a run per track.
    """
    resolved = {str(Path(p).resolve()): tuple(v[1:3]) for p, v in known.items()}
    out: dict[int, list[str]] = {}
    for track, paths in ready.items():
        new = [p for p in paths
               if resolved.get(str(Path(p).resolve())) != (int(states[p][0]), float(states[p][1]))]
        if new:
            out[track] = new
    return out
