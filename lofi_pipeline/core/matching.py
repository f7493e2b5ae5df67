"""Reuse matching: what a song means, and which library songs fit each prompt.

A library song is described by the prompt it was generated from (found through
its filename's source track, arc and prompt number), without the page's shared
anchor suffix, plus its arc name and the track's mood at that arc. A new
track's prompts are described the same way, so a paraphrased prompt lands
next to the song made from the original one.

Every candidate gets an explainable score (the idea follows beets' named
distance penalties): a weighted sum of five components, each in ``[0, 1]``,
all returned next to the total so a user can see why a song ranked where it did.

=============  ========================================================  =======
component      meaning                                                   default
=============  ========================================================  =======
``similarity``  cosine of prompt and song text vectors (clipped at 0)       0.50
``arc_score``   same arc 1, neighbouring arc 0.5, else 0; unknown 0.25     0.20
``bpm_score``   1 inside the arc's BPM range (or the track's tempo          0.15
                profile), falling to 0 at 20 BPM outside; half/double
                time 0.9 (10 BPM tolerance); unknown 0.5
``key_score``   Camelot: same 1, ±1 or relative 0.8, else 0.2; unknown 0.5  0.10
``usage_score`` 1 for an unused song, 1/(1+times used), halved if used      0.05
                in a recently published track
=============  ========================================================  =======

The total is ``sum(w_i * c_i) / sum(w_i)`` so it stays in ``[0, 1]`` whatever
weights the settings file gives.

A BPM or key the analyzer was unsure of counts less: the component is pulled
toward the unknown score (0.5) by the song's confidence weight,
``c = 0.5 + w * (c_raw - 0.5)``, with ``w`` from
:func:`lofi_pipeline.core.confidence.confidence_weight` (1 for a confident or
missing confidence, falling linearly to 0 below the low-confidence threshold).
For the key, the weight of the prompt's reference song multiplies in when the
reference key came from a song. The weights are returned as ``bpm_weight`` and
``key_weight`` (1.0 = full weight), so a report can say a component was
down-weighted. Only songs whose similarity reaches
``min_similarity`` are candidates; the weights then rank them.

Key compatibility needs a key to be compatible *with*: prompts have none, so
each prompt's reference key is the Camelot key of its most similar allowed
song (the song the prompt is "about"), unless the caller gives one. Candidates
that would mix well with that song score higher.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import PurePath

import numpy as np
import pandas as pd

from lofi_pipeline.core import keys
from lofi_pipeline.core.confidence import (
    LOW_KEY_CONFIDENCE,
    LOW_TEMPO_CONFIDENCE,
    blend_toward_neutral,
    confidence_weight,
)
from lofi_pipeline.core.errors import ConfigError
from lofi_pipeline.core.models import Arc, Prompt, TrackPlan, is_missing
from lofi_pipeline.core.naming import parse_song_filename
from lofi_pipeline.core.tags import extract_mood_keywords, extract_vibe_tags

# ---------------------------------------------------------------------------
# What a song means
# ---------------------------------------------------------------------------

_MOOD_SPLIT = re.compile(r"\s*(?:→|->|⟶|➝|=>|>)\s*")


@dataclass
class SongMeaning:
    """The text that stands for a song, and where it came from.

    ``from_prompt`` is False when no generating prompt was found and the text
    was made from analysis and filename (such songs match only loosely and
    are flagged in reports).
    """

    text: str
    from_prompt: bool
    prompt_text: str | None = None  # full Suno text as on the page
    core_text: str | None = None  # prompt without the shared suffix
    arc_name: str | None = None
    prompt_order: int | None = None
    vibe_tags: list[str] = field(default_factory=list)
    mood_keywords: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def find_prompt(plan: TrackPlan, *, arc: int, prompt: int) -> tuple[Arc, Prompt] | None:
    """The plan's prompt that a filename's ``arc`` and ``prompt`` numbers point at.

    Pages number prompts either per arc (1, 2, 3 in every arc) or across the
    page (arc 2 holds 4–7), and filenames follow either habit. Tried in order:
    the number as written on the page, the 1-based order over the page, then
    the 1-based position inside the arc. All three are restricted to the
    filename's arc, so a global number never jumps to another arc.

    Returns
    -------
    (Arc, Prompt) or None
        None when the arc does not exist or holds no such prompt.
    """
    target = next((a for a in plan.arcs if a.number == arc), None)
    if target is None or not target.prompts:
        return None
    for p in target.prompts:
        if p.number == prompt:
            return target, p
    for p in target.prompts:
        if p.order == prompt:
            return target, p
    if 1 <= prompt <= len(target.prompts):
        return target, target.prompts[prompt - 1]
    return None


def arc_mood(plan: TrackPlan | None, arc: Arc | None) -> str | None:
    """The track's mood at an arc.

    The page's mood arc ("Rain Ambience → Steady Focus Flow → …") is cut at its
    arrows; when it has one part per arc, the arc's own part is returned,
    otherwise the whole line (it still describes the track).
    """
    if plan is None or not plan.mood_arc:
        return None
    parts = [p for p in _MOOD_SPLIT.split(plan.mood_arc.strip()) if p]
    if arc is not None and len(parts) == len(plan.arcs) and len(parts) > 1:
        index = next((i for i, a in enumerate(plan.arcs) if a.number == arc.number), None)
        if index is not None:
            return parts[index]
    return plan.mood_arc.strip()


def _compose(core: str, arc: Arc | None, mood: str | None) -> str:
    parts = [core.strip().rstrip(".,;—- ")]
    if arc is not None:
        label = arc.name.strip()
        if arc.subtitle:
            label += f" ({arc.subtitle.strip()})"
        if label:
            parts.append(label)
    if mood and (arc is None or mood.strip().lower() != arc.name.strip().lower()):
        parts.append(mood.strip())
    return ". ".join(p for p in parts if p)


def _core(prompt: Prompt) -> str:
    return (prompt.core_text or prompt.text or "").strip()


def prompt_query_texts(plan: TrackPlan) -> list[str]:
    """Texts for every prompt of the plan, in ``plan.prompts`` order."""
    out = []
    for arc in plan.arcs:
        mood = arc_mood(plan, arc)
        out.extend(_compose(_core(p), arc, mood) for p in arc.prompts)
    return out


def _tempo_word(bpm: float) -> str:
    return "slow" if bpm < 70 else "mid tempo" if bpm < 95 else "fast"


def describe_song(
    *,
    filename: str,
    plan: TrackPlan | None = None,
    arc: int | None = None,
    prompt: int | None = None,
    bpm: float | None = None,
    key: str | None = None,
    energy_level: str | None = None,
) -> SongMeaning:
    """What a library song means, for embedding and tag filters.

    Parameters
    ----------
    filename : str
        The song's file name (``A_1_3_19b.mp3``); arc and prompt numbers are
        read from it unless given.
    plan : TrackPlan, optional
        The plan of the track the song was made for (its source track).
    arc, prompt : int, optional
        Override the numbers parsed from the filename.
    bpm : float, optional
        Analysed tempo in BPM (used only for songs without a prompt).
    key : str, optional
        Analysed key, e.g. ``"A minor"`` (used only without a prompt).
    energy_level : str, optional
        ``low`` / ``medium`` / ``high`` (used only without a prompt).

    Returns
    -------
    SongMeaning
        ``from_prompt`` tells whether the prompt was found.
    """
    parsed = parse_song_filename(filename)
    if parsed is not None:
        arc = parsed.arc if arc is None else arc
        prompt = parsed.prompt if prompt is None else prompt
    found = None
    if plan is not None and arc is not None and prompt is not None:
        found = find_prompt(plan, arc=arc, prompt=prompt)
    if found is not None:
        song_arc, song_prompt = found
        text = _compose(_core(song_prompt), song_arc, arc_mood(plan, song_arc))
        return SongMeaning(
            text=text,
            from_prompt=True,
            prompt_text=song_prompt.text,
            core_text=_core(song_prompt),
            arc_name=song_arc.name,
            prompt_order=song_prompt.order,
            vibe_tags=extract_vibe_tags(text),
            mood_keywords=extract_mood_keywords(text),
        )

    # No prompt: say what the analysis heard, and keep the filename's words
    # (producers sometimes name loose files "rainy_night_rhodes.mp3").
    facts = ["instrumental lofi song"]
    if bpm is not None and not is_missing(bpm) and bpm > 0:
        facts.append(f"{_tempo_word(float(bpm))}, {float(bpm):.0f} BPM")
    if key:
        facts.append(str(key))
    if energy_level:
        facts.append(f"{energy_level} energy")
    words = re.sub(r"[_\-.]+", " ", PurePath(filename).stem).strip()
    text = ", ".join(facts)
    if words and parsed is None:
        text += f". {words}"
    return SongMeaning(
        text=text,
        from_prompt=False,
        vibe_tags=extract_vibe_tags(words if parsed is None else ""),
        mood_keywords=extract_mood_keywords(words if parsed is None else ""),
    )


def song_text(**kwargs) -> str:
    """Shortcut for ``describe_song(**kwargs).text``."""
    return describe_song(**kwargs).text


# ---------------------------------------------------------------------------
# Weights and score components
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MatchWeights:
    """Weights of the score components (settings file key ``match.weights``)."""

    semantic: float = 0.50
    arc: float = 0.20
    bpm: float = 0.15
    key: float = 0.10
    usage: float = 0.05

    @classmethod
    def from_mapping(cls, data: Mapping | None, *, source: str = "settings") -> "MatchWeights":
        """Read weights from a settings mapping; missing names keep their default.

        Raises
        ------
        ConfigError
            On an unknown name, a value that is not a number, a negative or
            non-finite value, or weights that are all zero. The message names
            ``source`` and the offending key.
        """
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: match weights must be a mapping of name -> number, got "
                              f"{type(data).__name__}")
        names = [f.name for f in fields(cls)]
        values = {}
        for name, value in data.items():
            if name not in names:
                raise ConfigError(f"{source}: unknown match weight {name!r}; expected one of "
                                  f"{', '.join(names)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{source}: match weight {name!r} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{source}: match weight {name!r} must be a finite number >= 0, got "
                                  f"{value!r}")
            values[name] = float(value)
        weights = cls(**values)
        if weights.total() <= 0:
            raise ConfigError(f"{source}: match weights are all zero; at least one must be > 0")
        return weights

    def total(self) -> float:
        return self.semantic + self.arc + self.bpm + self.key + self.usage

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


UNKNOWN_ARC_SCORE = 0.25  # arc not known: below a neighbour, above a distant arc
UNKNOWN_SCORE = 0.5  # unknown BPM or key: neither rewarded nor punished
BPM_TOLERANCE = 20.0  # BPM outside the range at which bpm_score reaches 0
OCTAVE_FACTOR = 0.9  # half/double tempo fits, slightly discounted
OCTAVE_TOLERANCE = 10.0  # and held to a tighter tolerance, so they do not blur the direct fit
KEY_NEIGHBOUR_SCORE = 0.8
KEY_OTHER_SCORE = 0.2
RECENT_USE_FACTOR = 0.5

#: Named tempo profiles in BPM, for pages that give no arc BPM ranges.
TEMPO_PROFILES: dict[str, tuple[float, float]] = {
    "slow": (50.0, 72.0),
    "mid": (68.0, 92.0),
    "fast": (88.0, 120.0),
}
DEFAULT_TEMPO_PROFILE: tuple[float, float] = (60.0, 90.0)  # typical lo-fi / chill synthwave


def arc_score(song_arc: int | None, prompt_arc: int | None) -> float:
    """Arc position fit: same arc 1.0, neighbouring 0.5, else 0.0.

    Returns :data:`UNKNOWN_ARC_SCORE` (0.25) when either arc is unknown (a song
    outside the naming convention): it may fit, but less than a neighbour.
    """
    if is_missing(song_arc) or is_missing(prompt_arc):
        return UNKNOWN_ARC_SCORE
    gap = abs(int(song_arc) - int(prompt_arc))
    return 1.0 if gap == 0 else 0.5 if gap == 1 else 0.0


def _resolve_profile(tempo_profile) -> tuple[float, float] | None:
    if tempo_profile is None:
        return None
    if isinstance(tempo_profile, str):
        try:
            return TEMPO_PROFILES[tempo_profile.strip().lower()]
        except KeyError:
            raise ConfigError(
                f"unknown tempo profile {tempo_profile!r}; expected one of "
                f"{', '.join(TEMPO_PROFILES)} or (low, high) BPM"
            ) from None
    low, high = tempo_profile
    return (float(min(low, high)), float(max(low, high)))


def _range_distance(bpm, low: float, high: float):
    return np.maximum(np.maximum(low - bpm, bpm - high), 0.0)


def _bpm_scores(bpm: np.ndarray, bpm_range: tuple[float, float] | None) -> np.ndarray:
    """Vectorised :func:`bpm_score` for one range (NaN BPM -> unknown)."""
    out = np.full(bpm.shape, UNKNOWN_SCORE, dtype=np.float64)
    if bpm_range is None:
        return out
    low, high = bpm_range
    known = np.isfinite(bpm) & (bpm > 0)
    b = np.where(known, bpm, 1.0)
    direct = np.clip(1.0 - _range_distance(b, low, high) / BPM_TOLERANCE, 0.0, 1.0)
    # Tempo trackers often report half or double time on lo-fi; and a 45 BPM
    # ambient arc is felt as 90. Accept the octave, a little discounted.
    half = np.clip(1.0 - _range_distance(b / 2, low, high) / OCTAVE_TOLERANCE, 0.0, 1.0) * OCTAVE_FACTOR
    double = np.clip(1.0 - _range_distance(b * 2, low, high) / OCTAVE_TOLERANCE, 0.0, 1.0) * OCTAVE_FACTOR
    best = np.maximum(direct, np.maximum(half, double))
    out[known] = best[known]
    return out


def bpm_score(bpm: float | None, bpm_range: tuple[float, float] | None, tempo_profile=None) -> float:
    """Tempo fit of a song, in ``[0, 1]``.

    Parameters
    ----------
    bpm : float or None
        The song's tempo in BPM.
    bpm_range : (float, float) or None
        The arc's BPM range from the page; used when given.
    tempo_profile : (float, float) or str or None
        The track's tempo profile (BPM range, or ``"slow"``/``"mid"``/``"fast"``),
        used when the arc has no range.

    Returns
    -------
    float
        1.0 inside the range, falling linearly to 0 at :data:`BPM_TOLERANCE`
        (20 BPM) outside it. Half- or double-time readings also count, at 0.9
        and with a 10 BPM tolerance. 0.5 when the BPM or both ranges are unknown.
    """
    target = bpm_range if bpm_range is not None else _resolve_profile(tempo_profile)
    value = np.nan if is_missing(bpm) else float(bpm)
    if target is not None:
        target = (float(min(target)), float(max(target)))
    return float(_bpm_scores(np.array([value]), target)[0])


def to_camelot(key: str | None) -> str | None:
    """Camelot code ("8A") for a Camelot code or a key name ("A minor", "F# major", "Am").

    Returns None for an empty or unreadable value. Parsing lives in
    :mod:`lofi_pipeline.core.keys`.
    """
    return keys.camelot_code(key)


def key_score(camelot_a: str | None, camelot_b: str | None) -> float:
    """Harmonic compatibility of two keys on the Camelot wheel, in ``[0, 1]``.

    Same key 1.0; one step round the wheel with the same letter, or the
    relative key (same number, other letter), 0.8; anything else 0.2;
    0.5 when either key is unknown. Key names ("A minor") are accepted too.
    """
    steps = keys.camelot_steps(camelot_a, camelot_b)
    if steps is None:
        return UNKNOWN_SCORE
    step, other_letter = steps
    if step == 0 and not other_letter:
        return 1.0
    if keys.compatible(camelot_a, camelot_b) or step == 0:
        return KEY_NEIGHBOUR_SCORE
    return KEY_OTHER_SCORE


CAMELOT_CODES: tuple[str, ...] = tuple(f"{n}{letter}" for n in range(1, 13) for letter in "AB")


@lru_cache(maxsize=1)
def _key_table() -> np.ndarray:
    """:func:`key_score` between all 24 codes; index -1 (unknown) hits the last row/column."""
    size = len(CAMELOT_CODES)
    table = np.full((size + 1, size + 1), UNKNOWN_SCORE)
    for a in range(size):
        for b in range(size):
            table[a, b] = key_score(CAMELOT_CODES[a], CAMELOT_CODES[b])
    table.flags.writeable = False
    return table


def usage_score(times_used: int | None, used_recently: bool | None) -> float:
    """Freshness of a song, in ``(0, 1]``: 1 for never used.

    ``1 / (1 + times_used)``, halved when the song is in a recently published
    track (listeners of the channel would hear it again).
    """
    n = 0 if is_missing(times_used) else max(int(times_used), 0)
    score = 1.0 / (1.0 + n)
    if not is_missing(used_recently) and bool(used_recently):
        score *= RECENT_USE_FACTOR
    return score


def track_tempo_profile(plan: TrackPlan) -> tuple[float, float]:
    """The track's tempo profile in BPM, for arcs whose page gives no range.

    The span of the arcs' ranges when some arcs have one; else a named profile
    suggested by the page's mood words ("sleep", "upbeat"); else
    :data:`DEFAULT_TEMPO_PROFILE`.
    """
    ranges = [a.bpm_range for a in plan.arcs if a.bpm_range]
    if ranges:
        return (float(min(min(r) for r in ranges)), float(max(max(r) for r in ranges)))
    words = " ".join(filter(None, [plan.title, plan.page_title, plan.mood_arc])).lower()
    if any(w in words for w in ("sleep", "slow", "ambient", "meditat")):
        return TEMPO_PROFILES["slow"]
    if any(w in words for w in ("upbeat", "energetic", "workout", "drive", "fast")):
        return TEMPO_PROFILES["fast"]
    return DEFAULT_TEMPO_PROFILE


# ---------------------------------------------------------------------------
# Query
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryFilters:
    """Hard filters on candidate songs (all optional; a song must pass all).

    ``bpm_min``/``bpm_max`` in BPM (songs with unknown tempo fail a BPM
    filter); ``key`` a Camelot code or key name, matched exactly and also used
    as the reference key for ``key_score``; ``arc`` the song's own arc;
    ``unused_only`` keeps songs never used in a track; ``vibe_tags`` and
    ``mood_keywords`` keep songs carrying all the given tags.
    """

    bpm_min: float | None = None
    bpm_max: float | None = None
    key: str | None = None
    arc: int | None = None
    unused_only: bool = False
    vibe_tags: tuple[str, ...] = ()
    mood_keywords: tuple[str, ...] = ()


MATCH_COLUMNS = [
    "arc_number", "arc_name", "prompt_number", "prompt_order", "rank", "song_id", "filename",
    "score", "similarity", "arc_score", "bpm_score", "key_score", "usage_score", "bpm_weight", "key_weight",
    "bpm", "bpm_confidence", "key", "key_confidence", "camelot", "arc", "source_track", "duration_seconds",
    "times_used",
]


def _column(songs: pd.DataFrame, name: str, default) -> pd.Series:
    if name in songs.columns:
        return songs[name]
    return pd.Series([default] * len(songs), index=songs.index, dtype=object)


def _float_array(series: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _tag_lists(songs: pd.DataFrame, column: str, extractor) -> list[list[str]]:
    if column in songs.columns:
        return [list(v) if isinstance(v, (list, tuple, np.ndarray)) else [] for v in songs[column]]
    source = _column(songs, "song_text", "")
    return [extractor(t if isinstance(t, str) else "") for t in source]


def _camelot_codes(songs: pd.DataFrame) -> np.ndarray:
    """Per song, the index of its Camelot code in :data:`CAMELOT_CODES` (-1 unknown).

    The stored ``camelot`` wins; else it is derived from ``key``. Each distinct
    value is parsed once (a 100k-song library has a few dozen), and nothing
    converts the whole string column to Python objects.
    """
    raw = _column(songs, "camelot", None)
    if "key" in songs.columns and raw.isna().any():
        raw = raw.astype(object).where(raw.notna(), songs["key"].astype(object))
    codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    position = {c: i for i, c in enumerate(CAMELOT_CODES)}
    unique_to_code = np.array([position.get(to_camelot(u), -1) for u in uniques] + [-1], dtype=np.int64)
    # factorize marks missing values -1, which picks the trailing -1 entry.
    return unique_to_code[codes]


def _filter_mask(songs: pd.DataFrame, filters: QueryFilters | None, bpm: np.ndarray,
                 song_code: np.ndarray) -> np.ndarray:
    mask = np.ones(len(songs), dtype=bool)
    if filters is None:
        return mask
    if filters.bpm_min is not None:
        mask &= np.isfinite(bpm) & (bpm >= filters.bpm_min)
    if filters.bpm_max is not None:
        mask &= np.isfinite(bpm) & (bpm <= filters.bpm_max)
    if filters.key is not None:
        wanted = to_camelot(filters.key)
        if wanted is None:
            raise ConfigError(f"key filter {filters.key!r} is neither a Camelot code (8A) nor a key name "
                              "(A minor)")
        mask &= song_code == CAMELOT_CODES.index(wanted)
    if filters.arc is not None:
        arcs = _float_array(_column(songs, "arc", None))
        mask &= arcs == float(filters.arc)
    if filters.unused_only:
        used = _float_array(_column(songs, "times_used", 0))
        mask &= np.nan_to_num(used, nan=0.0) <= 0
    for column, wanted_tags, extractor in (
        ("vibe_tags", filters.vibe_tags, extract_vibe_tags),
        ("mood_keywords", filters.mood_keywords, extract_mood_keywords),
    ):
        if wanted_tags:
            lists = _tag_lists(songs, column, extractor)
            wanted_set = set(wanted_tags)
            mask &= np.array([wanted_set.issubset(tags) for tags in lists], dtype=bool)
    return mask


def _prompt_rows(plan: TrackPlan) -> list[tuple[Arc, Prompt]]:
    return [(arc, p) for arc in plan.arcs for p in arc.prompts]


def query_track(plan: TrackPlan, prompt_vectors: np.ndarray, songs: pd.DataFrame, song_vectors: np.ndarray,
                **options) -> pd.DataFrame:
    """The matches of :func:`query_track_with_best` alone."""
    return query_track_with_best(plan, prompt_vectors, songs, song_vectors, **options)[0]


BEST_COLUMNS = ["prompt_order", "song_id", "filename", "similarity"]


def query_track_with_best(
    plan: TrackPlan,
    prompt_vectors: np.ndarray,
    songs: pd.DataFrame,
    song_vectors: np.ndarray,
    *,
    weights: MatchWeights | None = None,
    top_k: int = 5,
    min_similarity: float = 0.6,
    filters: QueryFilters | None = None,
    exclude_track: int | None | str = "plan",
    include_same_track: bool = False,
    tempo_profile: tuple[float, float] | str | None = None,
    reference_key: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Top-k library songs for every prompt of a track, with the score explained.

    Parameters
    ----------
    plan : TrackPlan
        The new track; its prompts (``plan.prompts`` order) are queried.
    prompt_vectors : np.ndarray
        ``(n_prompts, d)`` L2-normalised vectors of :func:`prompt_query_texts`.
    songs : pandas.DataFrame
        The library (``songs`` table); row ``i`` belongs to ``song_vectors[i]``.
        Uses ``song_id``, ``filename`` and, when present, ``arc``, ``bpm``,
        ``key``/``camelot``, ``bpm_confidence``, ``key_confidence``,
        ``source_track``, ``times_used``, ``recently_used``,
        ``duration_seconds``. A missing confidence counts as full weight.
    song_vectors : np.ndarray
        ``(n_songs, d)`` L2-normalised vectors.
    weights : MatchWeights, optional
        Component weights (defaults 0.50/0.20/0.15/0.10/0.05).
    top_k : int
        Candidates kept per prompt (by score).
    min_similarity : float
        Cosine similarity a song needs to be a candidate at all.
    filters : QueryFilters, optional
        Hard filters.
    exclude_track : int or None
        Songs whose ``source_track`` equals this are not offered. The default
        ``"plan"`` means ``plan.track_number`` (songs made for this very track
        are not reuse); ``None`` excludes nothing.
    include_same_track : bool
        Offer those songs anyway (same as ``exclude_track=None``).
    tempo_profile : (float, float) or str, optional
        BPM profile for arcs without a range; default :func:`track_tempo_profile`.
    reference_key : str, optional
        Key every candidate should be compatible with; default: the filter
        key, else per prompt the key of its most similar allowed song.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        The matches: one row per (prompt, candidate), columns
        :data:`MATCH_COLUMNS`, sorted by ``prompt_order`` then ``rank`` (1 =
        best); prompts without any candidate have no rows. And the closest
        allowed song of every prompt, threshold or not (:data:`BEST_COLUMNS`;
        no row when no song was allowed), so gap reports can say how close a
        gap came.

    Raises
    ------
    ValueError
        When vector shapes do not agree with the plan or the songs table.
    """
    weights = weights or MatchWeights()
    rows = _prompt_rows(plan)
    prompt_vectors = np.asarray(prompt_vectors, dtype=np.float32)
    song_vectors = np.asarray(song_vectors, dtype=np.float32)
    if prompt_vectors.ndim != 2 or prompt_vectors.shape[0] != len(rows):
        raise ValueError(f"prompt_vectors has shape {prompt_vectors.shape}; expected ({len(rows)}, d) for "
                         "the plan's prompts")
    if song_vectors.ndim != 2 or song_vectors.shape[0] != len(songs):
        raise ValueError(f"song_vectors has shape {song_vectors.shape}; expected ({len(songs)}, d) for the "
                         "songs table")
    if len(rows) and len(songs) and prompt_vectors.shape[1] != song_vectors.shape[1]:
        raise ValueError(f"vector widths differ: prompts {prompt_vectors.shape[1]}, songs "
                         f"{song_vectors.shape[1]}")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")

    if not rows:
        return _empty_matches(), _best_frame([], songs)

    n = len(songs)
    bpm = _float_array(_column(songs, "bpm", None))
    # A frame without the confidence columns reads NaN: full weight.
    bpm_conf = _float_array(_column(songs, "bpm_confidence", None))
    key_conf = _float_array(_column(songs, "key_confidence", None))
    song_code = _camelot_codes(songs)
    # How much each song's BPM and key count (1 = full; guesses less), once for all songs. An
    # unknown value already scores neutral, so its weight stays 1 and no report calls it a guess.
    bpm_w = np.where(np.isfinite(bpm) & (bpm > 0), confidence_weight(bpm_conf, LOW_TEMPO_CONFIDENCE), 1.0)
    key_w = np.where(song_code >= 0, confidence_weight(key_conf, LOW_KEY_CONFIDENCE), 1.0)
    song_arcs = _float_array(_column(songs, "arc", None))
    source_tracks = _float_array(_column(songs, "source_track", None))
    times_used = np.nan_to_num(_float_array(_column(songs, "times_used", 0)), nan=0.0)
    recent = np.nan_to_num(_float_array(_column(songs, "recently_used", False)), nan=0.0) > 0
    durations = _float_array(_column(songs, "duration_seconds", None))

    allowed = _filter_mask(songs, filters, bpm, song_code)
    if isinstance(exclude_track, str):
        if exclude_track != "plan":
            raise ValueError(f"exclude_track must be a track number, None or 'plan', got {exclude_track!r}")
        exclude_track = plan.track_number
    if exclude_track is not None and not include_same_track:
        allowed &= source_tracks != float(exclude_track)

    usage = np.where(recent, RECENT_USE_FACTOR, 1.0) / (1.0 + np.maximum(times_used, 0.0))
    profile = _resolve_profile(tempo_profile) if tempo_profile is not None else track_tempo_profile(plan)
    ref_key_fixed = to_camelot(reference_key)
    if ref_key_fixed is None and filters is not None and filters.key:
        ref_key_fixed = to_camelot(filters.key)
    key_table = _key_table()

    # Exact cosine: vectors are unit length, so one matrix product does it.
    p_count = len(rows)
    sims = prompt_vectors @ song_vectors.T if n else np.zeros((p_count, 0), dtype=np.float32)
    if n:
        masked = sims if allowed.all() else np.where(allowed, sims, -np.inf)
        best_index = np.argmax(masked, axis=1)
        best_values = masked[np.arange(p_count), best_index]
        if ref_key_fixed is None:
            # Each prompt's most similar allowed song with a known key sets its
            # reference key; that is nearly always the most similar song itself.
            # A guessed reference key makes every candidate's key score a guess too.
            ref_codes = np.where(np.isfinite(best_values), song_code[best_index], -1)
            ref_rows = best_index.copy()
            for i in np.flatnonzero((ref_codes < 0) & np.isfinite(best_values)):
                keyed = np.where(song_code >= 0, masked[i], -np.inf)
                j = int(np.argmax(keyed))
                ref_codes[i] = song_code[j] if np.isfinite(keyed[j]) else -1
                ref_rows[i] = j
            ref_w = key_w[ref_rows]
        else:
            ref_codes = np.full(p_count, CAMELOT_CODES.index(ref_key_fixed))
            ref_rows, ref_w = np.full(p_count, -1), np.ones(p_count)
        candidates = sims >= min_similarity
        candidates &= allowed
        del masked
    else:
        best_values = np.full(p_count, -np.inf)
        ref_codes = np.full(p_count, -1)
        ref_rows, ref_w = np.full(p_count, -1), np.ones(p_count)
        candidates = np.zeros((p_count, 0), dtype=bool)

    total_w = weights.total()
    best: list[tuple[int, int, float]] = []  # (prompt_order, song row, similarity)
    picked: list[tuple[int, np.ndarray, dict[str, np.ndarray]]] = []
    for i, (arc, prompt) in enumerate(rows):
        if np.isfinite(best_values[i]):
            best.append((prompt.order, int(best_index[i]), float(best_values[i])))
        idx = np.flatnonzero(candidates[i])
        if idx.size == 0:
            continue
        # Components only for the candidates: at 100k songs a prompt has a few
        # thousand, so the per-prompt work stays small.
        sim = sims[i, idx].astype(np.float64)
        arcs_c = song_arcs[idx]
        gap = np.abs(arcs_c - arc.number)
        arc_sc = np.where(gap == 0, 1.0, np.where(gap == 1, 0.5, 0.0))
        arc_sc[np.isnan(arcs_c)] = UNKNOWN_ARC_SCORE
        target = arc.bpm_range if arc.bpm_range else profile
        target = (float(min(target)), float(max(target))) if target is not None else None
        bpm_wc = bpm_w[idx]
        bpm_sc = blend_toward_neutral(_bpm_scores(bpm[idx], target), bpm_wc, UNKNOWN_SCORE)
        # The reference song matches its own key whatever that key really is.
        key_wc = np.where(idx == ref_rows[i], 1.0, key_w[idx] * ref_w[i])
        key_sc = blend_toward_neutral(key_table[ref_codes[i], song_code[idx]], key_wc, UNKNOWN_SCORE)
        usage_sc = usage[idx]
        score = (weights.semantic * np.clip(sim, 0.0, 1.0) + weights.arc * arc_sc + weights.bpm * bpm_sc
                 + weights.key * key_sc + weights.usage * usage_sc) / total_w
        k = min(top_k, idx.size)
        part = np.argpartition(-score, k - 1)[:k] if k < idx.size else np.arange(idx.size)
        # Ties broken by similarity, then library order, so results are stable.
        part = part[np.lexsort((idx[part], -sim[part], -score[part]))]
        picked.append((i, idx[part], {
            "score": score[part], "similarity": sim[part], "arc_score": arc_sc[part],
            "bpm_score": bpm_sc[part], "key_score": key_sc[part], "usage_score": usage_sc[part],
            "bpm_weight": bpm_wc[part], "key_weight": key_wc[part],
        }))

    if not picked:
        return _empty_matches(), _best_frame(best, songs)

    top = np.concatenate([t for _, t, _ in picked])
    prompt_index = np.concatenate([np.full(t.size, i) for i, t, _ in picked])
    def gather(name: str) -> np.ndarray:
        # Only the chosen rows: string columns are never converted whole.
        if name not in songs.columns:
            return np.full(top.size, None, dtype=object)
        return songs[name].take(top).to_numpy(dtype=object)

    result = pd.DataFrame({
        "arc_number": [rows[i][0].number for i in prompt_index],
        "arc_name": [rows[i][0].name for i in prompt_index],
        "prompt_number": [rows[i][1].number for i in prompt_index],
        "prompt_order": [rows[i][1].order for i in prompt_index],
        "rank": np.concatenate([np.arange(1, t.size + 1) for _, t, _ in picked]),
        "song_id": gather("song_id"),
        "filename": gather("filename"),
        **{name: np.concatenate([c[name] for _, _, c in picked]) for name in
           ("score", "similarity", "arc_score", "bpm_score", "key_score", "usage_score", "bpm_weight",
            "key_weight")},
        "bpm": bpm[top],
        "bpm_confidence": bpm_conf[top],
        "key": gather("key"),
        "key_confidence": key_conf[top],
        "camelot": [CAMELOT_CODES[c] if c >= 0 else None for c in song_code[top]],
        "arc": _nullable_ints(song_arcs[top]),
        "source_track": _nullable_ints(source_tracks[top]),
        "duration_seconds": durations[top],
        "times_used": times_used[top].astype(np.int64),
    }, columns=MATCH_COLUMNS)
    return result, _best_frame(best, songs)


def _best_frame(best: list[tuple[int, int, float]], songs: pd.DataFrame) -> pd.DataFrame:
    rows = [{"prompt_order": order, "song_id": songs["song_id"].iat[j], "filename": songs["filename"].iat[j],
             "similarity": sim} for order, j, sim in best]
    return pd.DataFrame(rows, columns=BEST_COLUMNS)


def _nullable_ints(values: np.ndarray) -> pd.arrays.IntegerArray:
    missing = np.isnan(values)
    return pd.arrays.IntegerArray(np.where(missing, 0, values).astype(np.int64), missing)


def _empty_matches() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in MATCH_COLUMNS})
