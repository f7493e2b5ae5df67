"""Library bookkeeping rules: which files need analysis, and the columns a file name gives.

Pure functions over plain values and DataFrames; the Dagster assets call them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lofi_pipeline.core.naming import parse_song_filename


@dataclass(frozen=True)
class FileState:
    path: str
    size: int
    mtime: float


def needs_analysis(state: FileState, known: dict[str, tuple[str, int, float, str | None]],
                   analyzer_version: str, *, force: bool = False) -> bool:
    """True unless this exact path, size and mtime was analysed by the current analyzer."""
    if force:
        return True
    row = known.get(state.path)
    if row is None:
        return True
    _song_id, size, mtime, version = row
    return not (size == state.size and abs(mtime - state.mtime) < 1e-6 and version == analyzer_version)


def filename_fields(filename: str) -> dict[str, object]:
    """Columns parsed from a song file name; a name outside the convention gets nulls and a warning."""
    name = parse_song_filename(filename)
    if name is None:
        return {"prefix": None, "arc": None, "prompt": None, "source_track": None, "take": None,
                "name_warning": f"{filename}: name does not follow PREFIX_ARC_PROMPT_TRACKtake "
                                "(e.g. A_1_3_19b.mp3); imported without arc/prompt/track"}
    return {"prefix": name.prefix, "arc": name.arc, "prompt": name.prompt,
            "source_track": name.source_track, "take": name.take, "name_warning": None}


def list_audio_files(folders: list[Path]) -> tuple[list[Path], list[str]]:
    """Audio files under the folders, and a warning per missing folder."""
    from lofi_pipeline.core.audio import iter_audio_files

    existing = [f for f in folders if f.exists()]
    warnings = [f"{f}: folder not found, no songs imported from it" for f in folders if not f.exists()]
    return (iter_audio_files(existing) if existing else []), warnings
