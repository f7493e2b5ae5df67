"""Library bookkeeping rules: which files need analysis, and the columns a file name gives.

Pure functions over plain values and DataFrames; the Dagster assets call them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lofi_pipeline.core.models import is_missing, number_or_none
from lofi_pipeline.core.naming import parse_song_filename

if TYPE_CHECKING:
    import pandas as pd


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


# Audio that is probably not a song: imported with a flag, left out of mix plans.
NEAR_SILENT_LUFS = -50.0  # integrated loudness below this is near-silence
SILENT_LUFS = -70.0  # EBU R128's absolute gate: nothing measurable below it
MAX_SONG_MINUTES = 20.0  # a Suno song is 2-8 min; a file over this is a mix, a recording left running, ...


def audio_flags(*, duration_seconds: float | None, loudness_lufs: float | None) -> list[str]:
    """Why an analysed file looks like no song, one short warning per reason (empty: it looks fine).

    ``loudness_lufs`` of None means the meter found nothing above its absolute
    gate (−70 LUFS): silence. The library stores the list as ``songs.flags``;
    planning leaves flagged songs out (see :func:`lofi_pipeline.core.planning.usable_songs`).
    """
    flags = []
    lufs, seconds = number_or_none(loudness_lufs), number_or_none(duration_seconds)
    if lufs is None or lufs < SILENT_LUFS:
        flags.append(f"silent: no measurable loudness (below {SILENT_LUFS:g} LUFS)")
    elif lufs < NEAR_SILENT_LUFS:
        flags.append(f"near-silent: {lufs:.1f} LUFS (below {NEAR_SILENT_LUFS:g} LUFS)")
    if seconds is not None and seconds > MAX_SONG_MINUTES * 60:
        flags.append(f"too long: {seconds / 60:.1f} min (over {MAX_SONG_MINUTES:g} min)")
    return flags


def flagged(songs: "pd.DataFrame") -> "pd.Series":
    """True for each row of the songs table that carries a flag (see :func:`audio_flags`).

    A row whose ``flags`` were never set (analysed before flags existed) is
    judged by the rule on its stored duration and loudness, so an old
    library's silent files are left out before their next import stores the flags.
    """
    import numpy as np
    import pandas as pd

    if "flags" not in songs.columns or songs.empty:
        return pd.Series(False, index=songs.index, dtype=bool)
    can_judge = "loudness_lufs" in songs.columns and "duration_seconds" in songs.columns

    def one(row) -> bool:
        if isinstance(row.flags, (list, tuple, np.ndarray)):
            return len(row.flags) > 0
        return can_judge and bool(audio_flags(duration_seconds=row.duration_seconds,
                                              loudness_lufs=row.loudness_lufs))

    return pd.Series([one(r) for r in songs.itertuples()], index=songs.index, dtype=bool)


def list_audio_files(folders: list[Path]) -> tuple[list[Path], list[str]]:
    """Audio files under the folders, and a warning per missing folder."""
    from lofi_pipeline.core.audio import iter_audio_files

    existing = [f for f in folders if f.exists()]
    warnings = [f"{f}: folder not found, no songs imported from it" for f in folders if not f.exists()]
    return (iter_audio_files(existing) if existing else []), warnings


# Columns of the per-track features file that audio_features writes and songs_table loads.
FEATURE_COLUMNS = [
    "path", "status", "content_hash", "file_size", "file_mtime", "error", "duration_seconds", "bpm",
    "bpm_confidence", "key", "key_confidence", "camelot", "loudness_lufs", "true_peak_db", "rms_energy",
    "spectral_centroid_hz", "energy_level", "tempo_category", "sample_rate", "channels", "analyzer_version",
]


@dataclass
class ImportScan:
    """What an import must do with each file of its folders."""

    files: list[Path]
    to_analyze: list[Path]
    digests: dict[str, str]  # path -> content hash, computed once and handed to the analysis
    known_content: list[dict]  # rows for files whose content the library already has
    unchanged: int


def scan_for_import(files: list[Path], *, known: dict[str, tuple[str, int, float, str | None]],
                    versions: dict[str, str], analyzer_version: str, force: bool = False) -> ImportScan:
    """Sort files into unchanged (same path, size, mtime), known content (a copy, a touched file)
    and new: only the new ones are analysed.

    A batch survives a bad file: one that vanished since the folder was listed
    (moved by prepare-render, deleted) is left out, and one that cannot be read
    becomes an ``error`` row (with the known-content rows) naming the reason.
    """
    from lofi_pipeline.core.errors import AudioFileError
    from lofi_pipeline.core.identity import content_hash

    to_analyze: list[Path] = []
    digests: dict[str, str] = {}
    rows: list[dict] = []
    unchanged = 0
    for f in files:
        try:
            st = f.stat()
        except FileNotFoundError:
            continue  # gone since it was listed: nothing to import
        state = FileState(str(f.resolve()), st.st_size, st.st_mtime)
        if not needs_analysis(state, known, analyzer_version, force=force):
            unchanged += 1
            continue
        try:
            digest = content_hash(f)
        except AudioFileError as exc:
            if f.exists():
                rows.append({"path": state.path, "file_size": state.size, "file_mtime": state.mtime,
                             "status": "error", "error": exc.reason})
            continue
        if not force and versions.get(digest) == analyzer_version:
            rows.append({"path": state.path, "file_size": state.size, "file_mtime": state.mtime,
                         "content_hash": digest, "status": "known_content"})
            continue
        to_analyze.append(f)
        digests[str(f)] = digest
    return ImportScan(files=files, to_analyze=to_analyze, digests=digests, known_content=rows,
                      unchanged=unchanged)


def feature_frame(known_content: list[dict], results: list) -> "pd.DataFrame":
    """One row per file (``FEATURE_COLUMNS``, always all of them, even for an empty import)."""
    import pandas as pd

    rows = list(known_content)
    for feat in results:
        p = Path(feat.path)
        st = p.stat() if p.exists() else None
        row = feat.to_dict()
        row.update({"path": str(p.resolve()), "file_size": st.st_size if st else None,
                    "file_mtime": st.st_mtime if st else None,
                    "status": "error" if feat.error else "analysed"})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=FEATURE_COLUMNS)
    return frame.astype({"path": object, "status": object, "error": object})


def describe_songs(songs: "pd.DataFrame", plans: dict) -> "pd.DataFrame":
    """Every song's meaning text and tags from the current plans (rows to update).

    A song whose prompt has left its page keeps the meaning it had (it was
    generated from that prompt, whatever the page says now).
    """
    import pandas as pd

    from lofi_pipeline.core.matching import describe_song

    def value(v, kind):
        return None if is_missing(v) else kind(v)

    rows = []
    for s in songs.itertuples():
        source = value(s.source_track, int)
        meaning = describe_song(filename=s.filename, plan=plans.get(source) if source is not None else None,
                                arc=value(s.arc, int), prompt=value(s.prompt, int), bpm=value(s.bpm, float),
                                key=s.key if isinstance(s.key, str) else None,
                                energy_level=s.energy_level if isinstance(s.energy_level, str) else None)
        if not meaning.from_prompt and bool(s.text_from_prompt):
            continue
        rows.append({"song_id": s.song_id, "prompt_text": meaning.prompt_text, "song_text": meaning.text,
                     "text_from_prompt": meaning.from_prompt, "vibe_tags": list(meaning.vibe_tags or []),
                     "mood_keywords": list(meaning.mood_keywords or [])})
    return pd.DataFrame(rows, columns=["song_id", "prompt_text", "song_text", "text_from_prompt", "vibe_tags",
                                       "mood_keywords"])
