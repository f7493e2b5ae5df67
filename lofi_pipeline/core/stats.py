"""Library figures for people: counts, hours, most-used songs, BPM and key distributions."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

BPM_BIN = 10  # BPM per histogram bar


@dataclass
class LibraryStats:
    songs: int
    hours: float
    tracks: int
    published: int
    most_used: pd.DataFrame  # filename, times_used
    bpm: pd.DataFrame  # bpm (bin start), songs
    keys: pd.DataFrame  # key, songs
    energy: pd.DataFrame  # energy_level, songs
    flagged: int = 0  # songs with a flag (silent, near-silent, too long): left out of mixes
    flagged_songs: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["filename", "flags"]))


def _flagged_songs(songs: pd.DataFrame) -> pd.DataFrame:
    """filename and its flags joined, for every flagged song."""
    from lofi_pipeline.core.catalog import flagged

    rows = songs[flagged(songs)] if len(songs) else songs
    return pd.DataFrame({"filename": list(rows.get("filename", [])),
                         "flags": ["; ".join(f) for f in rows.get("flags", [])]}, columns=["filename", "flags"])


def library_stats(songs: pd.DataFrame, *, tracks: int, published: int) -> LibraryStats:
    """Summarise the ``songs`` table (one row per song)."""
    if songs.empty:
        empty = pd.DataFrame(columns=["value", "songs"])
        return LibraryStats(0, 0.0, tracks, published, pd.DataFrame(columns=["filename", "times_used"]),
                            empty, empty, empty)
    bad = _flagged_songs(songs)
    bpm = songs["bpm"].dropna()
    bins = (bpm // BPM_BIN * BPM_BIN).astype(int).value_counts().sort_index()
    used = songs[songs["times_used"].fillna(0) > 0].sort_values("times_used", ascending=False)
    return LibraryStats(
        songs=len(songs),
        hours=round(float(songs["duration_seconds"].fillna(0).sum()) / 3600, 2),
        tracks=tracks, published=published,
        most_used=used[["filename", "times_used"]].head(10).reset_index(drop=True),
        bpm=pd.DataFrame({"bpm": [f"{b}–{b + BPM_BIN - 1}" for b in bins.index], "songs": bins.values}),
        keys=songs["key"].dropna().value_counts().rename_axis("key").reset_index(name="songs"),
        energy=songs["energy_level"].dropna().value_counts().rename_axis("energy").reset_index(name="songs"),
        flagged=len(bad), flagged_songs=bad,
    )


def stats_from_library(lib) -> LibraryStats:
    """:func:`library_stats` of a :class:`~lofi_pipeline.core.library.Library`."""
    return library_stats(lib.df("SELECT * FROM songs"), tracks=int(lib.scalar("SELECT count(*) FROM tracks")),
                         published=int(lib.scalar("SELECT count(*) FROM publications")))


def bar(count: int, peak: int, width: int = 24) -> str:
    """A text bar proportional to count/peak (at least one block for a non-zero count)."""
    if peak <= 0 or count <= 0:
        return ""
    return "█" * max(1, round(width * count / peak))


def with_bars(df: pd.DataFrame, column: str = "songs") -> pd.DataFrame:
    out = df.copy()
    peak = int(out[column].max()) if len(out) else 0
    out["chart"] = [bar(int(c), peak) for c in out[column]]
    return out


def stats_markdown(stats: LibraryStats) -> str:
    """A Markdown report with bar charts (shown as asset metadata in the Dagster UI)."""
    parts = [f"**{stats.songs} songs**, **{stats.hours} h** of music, {stats.tracks} tracks "
             f"({stats.published} published)", ""]
    if stats.flagged:
        parts += [f"**{stats.flagged} flagged song(s)** (silent, near-silent or too long; left out of mixes)",
                  "", stats.flagged_songs.to_markdown(index=False), ""]
    for title, df in [("BPM", stats.bpm), ("Keys", stats.keys), ("Energy", stats.energy)]:
        if len(df):
            parts += [f"### {title}", with_bars(df).to_markdown(index=False), ""]
    if len(stats.most_used):
        parts += ["### Most used", stats.most_used.to_markdown(index=False)]
    return "\n".join(parts)
