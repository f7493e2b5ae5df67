"""Library figures for people: counts, hours, most-used songs, BPM and key distributions.

BPM and key values the analyzer was unsure of (:mod:`lofi_pipeline.core.confidence`)
are counted apart: the distributions give a ``low confidence`` column and the
text bars draw that share light (``░``) after the solid one, so a guess is not
shown as a fact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lofi_pipeline.core.confidence import LOW_KEY_CONFIDENCE, LOW_TEMPO_CONFIDENCE, column_low_mask

BPM_BIN = 10  # BPM per histogram bar
LOW = "low confidence"  # the column counting guessed values in the BPM and key distributions
SURE_BLOCK, GUESS_BLOCK = "█", "░"


@dataclass
class LibraryStats:
    songs: int
    hours: float
    tracks: int
    published: int
    most_used: pd.DataFrame  # filename, times_used
    bpm: pd.DataFrame  # bpm (bin "70–79"), songs, low confidence
    keys: pd.DataFrame  # key, songs, low confidence
    energy: pd.DataFrame  # energy_level, songs
    flagged: int = 0  # songs with a flag (silent, near-silent, too long): left out of mixes
    flagged_songs: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["filename", "flags"]))
    low_bpm: int = 0  # songs whose BPM is a low-confidence guess (beatless songs have no BPM: not counted)
    low_key: int = 0  # songs whose key is a low-confidence guess


def _flagged_songs(songs: pd.DataFrame) -> pd.DataFrame:
    """filename and its flags joined, for every flagged song.

    A row stored before flags existed (``flags`` NULL) is flagged by the rule on
    its duration and loudness (:func:`~lofi_pipeline.core.catalog.flagged`), so
    its reasons come from the same rule.
    """
    from lofi_pipeline.core.catalog import audio_flags, flagged

    rows = songs[flagged(songs)] if len(songs) else songs
    reasons = [list(r.flags) if isinstance(r.flags, (list, tuple, np.ndarray))
               else audio_flags(duration_seconds=getattr(r, "duration_seconds", None),
                                loudness_lufs=getattr(r, "loudness_lufs", None))
               for r in rows.itertuples()] if "flags" in rows.columns else []
    return pd.DataFrame({"filename": list(rows.get("filename", [])), "flags": ["; ".join(f) for f in reasons]},
                        columns=["filename", "flags"])


def _distribution(values: pd.Series, low: np.ndarray, name: str) -> pd.DataFrame:
    """Songs per value, most common first, with how many of them are guesses."""
    frame = pd.DataFrame({name: values.to_numpy(), LOW: low}).dropna(subset=[name])
    counts = frame.groupby(name, sort=False)[LOW].agg(["size", "sum"])
    counts = counts.sort_values("size", ascending=False, kind="stable")
    return pd.DataFrame({name: counts.index, "songs": counts["size"].to_numpy(),
                         LOW: counts["sum"].astype(int).to_numpy()})


def library_stats(songs: pd.DataFrame, *, tracks: int, published: int) -> LibraryStats:
    """Summarise the ``songs`` table (one row per song)."""
    if songs.empty:
        empty = pd.DataFrame(columns=["value", "songs"])
        return LibraryStats(0, 0.0, tracks, published, pd.DataFrame(columns=["filename", "times_used"]),
                            empty, empty, empty)
    bad = _flagged_songs(songs)
    bpm = pd.to_numeric(songs["bpm"], errors="coerce")
    bpm = bpm.where(np.isfinite(bpm))  # an infinite BPM is no BPM: it has no bin
    known = bpm.notna().to_numpy()
    low_bpm = column_low_mask(songs, "bpm_confidence", LOW_TEMPO_CONFIDENCE) & known
    low_key = column_low_mask(songs, "key_confidence", LOW_KEY_CONFIDENCE) & songs["key"].notna().to_numpy()
    bins = _distribution(bpm // BPM_BIN * BPM_BIN, low_bpm, "bpm").sort_values("bpm")
    used = songs[songs["times_used"].fillna(0) > 0].sort_values("times_used", ascending=False)
    return LibraryStats(
        songs=len(songs),
        hours=round(float(songs["duration_seconds"].fillna(0).sum()) / 3600, 2),
        tracks=tracks, published=published,
        most_used=used[["filename", "times_used"]].head(10).reset_index(drop=True),
        bpm=bins.assign(bpm=[f"{int(b)}–{int(b) + BPM_BIN - 1}" for b in bins["bpm"]]).reset_index(drop=True),
        keys=_distribution(songs["key"], low_key, "key"),
        energy=songs["energy_level"].dropna().value_counts().rename_axis("energy").reset_index(name="songs"),
        flagged=len(bad), flagged_songs=bad, low_bpm=int(low_bpm.sum()), low_key=int(low_key.sum()),
    )


def stats_from_library(lib) -> LibraryStats:
    """:func:`library_stats` of a :class:`~lofi_pipeline.core.library.Library`."""
    return library_stats(lib.df("SELECT * FROM songs"), tracks=int(lib.scalar("SELECT count(*) FROM tracks")),
                         published=int(lib.scalar("SELECT count(*) FROM publications")))


def bar(count: int, peak: int, width: int = 24, *, low: int = 0) -> str:
    """A text bar proportional to count/peak (at least one block for a non-zero count).

    The ``low`` of the ``count`` values that are low-confidence guesses are drawn
    light (``░``) after the solid share, with at least one light block when ``low > 0``.
    """
    if peak <= 0 or count <= 0:
        return ""
    blocks = max(1, round(width * count / peak))
    low = min(max(int(low), 0), count)
    light = 0 if low == 0 else min(blocks, max(1, round(blocks * low / count)))
    return SURE_BLOCK * (blocks - light) + GUESS_BLOCK * light


def with_bars(df: pd.DataFrame, column: str = "songs") -> pd.DataFrame:
    """``df`` with a ``chart`` column of text bars; a ``low confidence`` column draws its share light."""
    out = df.copy()
    peak = int(out[column].max()) if len(out) else 0
    lows = out[LOW] if LOW in out.columns else [0] * len(out)
    out["chart"] = [bar(int(c), peak, low=int(n)) for c, n in zip(out[column], lows)]
    return out


def guesses_line(stats: LibraryStats) -> str:
    """One sentence on the low-confidence BPM and key values, or ``""`` when there are none."""
    if not (stats.low_bpm or stats.low_key):
        return ""
    return (f"{stats.low_bpm} BPM and {stats.low_key} key value(s) are low-confidence guesses: counted under "
            f"'{LOW}' and drawn {GUESS_BLOCK} in the bars (BPM confidence < {LOW_TEMPO_CONFIDENCE:g}, "
            f"key confidence < {LOW_KEY_CONFIDENCE:g})")


def stats_markdown(stats: LibraryStats) -> str:
    """A Markdown report with bar charts (shown as asset metadata in the Dagster UI)."""
    parts = [f"**{stats.songs} songs**, **{stats.hours} h** of music, {stats.tracks} tracks "
             f"({stats.published} published)", ""]
    if stats.flagged:
        parts += [f"**{stats.flagged} flagged song(s)** (silent, near-silent or too long; left out of mixes)",
                  "", stats.flagged_songs.to_markdown(index=False), ""]
    guesses = guesses_line(stats)
    if guesses:
        parts += [guesses, ""]
    for title, df in [("BPM", stats.bpm), ("Keys", stats.keys), ("Energy", stats.energy)]:
        if len(df):
            parts += [f"### {title}", with_bars(df).to_markdown(index=False), ""]
    if len(stats.most_used):
        parts += ["### Most used", stats.most_used.to_markdown(index=False)]
    return "\n".join(parts)
