"""Plain data shared by the core modules (no I/O here).

Units: seconds for durations, BPM for tempo, LUFS / dBTP for loudness.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


def is_missing(value: Any) -> bool:
    """True for None, NaN, pandas' NA and NaT: a value a table row does not have.

    Lists and arrays are values, never missing; what compares unequal to
    itself is NaN (or NaT), and pandas' NA has no truth value at all.
    """
    if value is None:
        return True
    try:
        return bool(value != value)
    except TypeError:  # pandas.NA
        return True
    except ValueError:  # an array: a value
        return False


def number_or_none(value: Any) -> float | None:
    """``float(value)``, or None when it is missing."""
    return None if is_missing(value) else float(value)


@dataclass
class Prompt:
    """One Suno prompt of an arc.

    ``number`` is the number as written on the page (it may run across arcs or
    restart in each arc); ``order`` is the 1-based position over the whole page.
    ``text`` is the full Suno text exactly as written; ``core_text`` is the same
    text with the page's shared suffix / anchor phrase removed (used for matching).
    """

    number: int
    order: int
    text: str
    core_text: str
    checked: bool | None = None
    line: int | None = None


@dataclass
class Arc:
    number: int
    name: str
    subtitle: str | None = None
    description: str | None = None
    bpm_range: tuple[float, float] | None = None
    prompts: list[Prompt] = field(default_factory=list)


@dataclass
class TrackPlan:
    """A parsed track page."""

    source: str
    track_number: int | None = None
    title: str | None = None
    page_title: str | None = None
    output_filename: str | None = None
    upload_schedule: str | None = None
    duration_minutes: float | None = None
    mood_arc: str | None = None
    ctr_target: str | None = None
    retention_target: str | None = None
    visible_hashtags: list[str] = field(default_factory=list)
    hidden_tags: list[str] = field(default_factory=list)
    description: str | None = None
    anchor_phrase: str | None = None
    prompt_suffix: str | None = None
    arcs: list[Arc] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def prompts(self) -> list[Prompt]:
        return [p for arc in self.arcs for p in arc.prompts]

    def to_dict(self) -> dict[str, Any]:
        """The ``lofi notion parse --json`` contract (extra keys allowed)."""
        data = asdict(self)
        for arc in data["arcs"]:
            arc["bpm_range"] = list(arc["bpm_range"]) if arc["bpm_range"] else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrackPlan":
        arcs = []
        for a in data.get("arcs", []):
            prompts = [Prompt(**p) for p in a.get("prompts", [])]
            bpm = tuple(a["bpm_range"]) if a.get("bpm_range") else None
            arcs.append(Arc(**{**a, "prompts": prompts, "bpm_range": bpm}))
        return cls(**{**data, "arcs": arcs})


@dataclass
class AudioFeatures:
    """Analysis of one audio file (the ``lofi analyze --json`` contract plus extras).

    ``key`` is written like ``"A minor"`` or ``"F# major"``; unknown values are None.
    ``error`` is set (and the numbers are None) when the file could not be analysed.
    """

    path: str
    duration_seconds: float | None = None
    bpm: float | None = None
    bpm_confidence: float | None = None
    key: str | None = None
    key_confidence: float | None = None
    camelot: str | None = None
    loudness_lufs: float | None = None
    true_peak_db: float | None = None
    content_hash: str | None = None
    error: str | None = None
    rms_energy: float | None = None
    spectral_centroid_hz: float | None = None
    energy_level: str | None = None  # low / medium / high
    tempo_category: str | None = None  # slow / mid / fast
    sample_rate: int | None = None
    channels: int | None = None
    analyzer_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SelectedSong:
    """One song chosen for a track's mix, in mix order (produced by selection)."""

    order: int  # 1-based position in the mix
    arc_number: int
    arc_name: str
    song_id: str  # content hash
    path: str
    filename: str
    duration_seconds: float
    prompt_number: int | None = None  # the new track's prompt it fills
    score: float | None = None
    similarity: float | None = None
    loudness_lufs: float | None = None
    repeat: bool = False  # True when the library was short and the song repeats an arc
    repeat_index: int = 0  # 0 = first play in the mix, 1 = second play, ...
    source: str = ""  # own (made for this track's prompt) | reused
