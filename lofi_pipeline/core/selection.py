"""Duration-aware selection: fill a track's target duration arc by arc.

Given the matches of every prompt (from :func:`~lofi_pipeline.core.matching.query_track`),
pick library songs until the page's target duration is filled:

* The target is shared over the arcs in proportion to their prompts
  (``allocation="prompts"``, the default: an arc with 5 prompts plays longer
  than one with 3) or evenly (``allocation="even"``).
* Arcs are filled in page order. Inside an arc the prompts take turns, each
  taking its best unused candidate, so every prompt is heard before any prompt
  gets a second song. A song that fits several arcs is first offered to the
  arc where it scored best; other arcs may take it only when they run short.
* Each song is used at most once per track. Running sums carry each arc's
  overshoot or shortfall into the next arc's goal, so the total lands within
  one song of the target.
* When an arc runs out of candidates and ``allow_repeat`` is on, the arc's
  songs play again (marked ``repeat=True``), as the producer does by hand
  today; notes say which arcs repeat and how many songs.

The result keeps the unused candidates of each prompt as alternates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import pandas as pd

from lofi_pipeline.core.errors import ConfigError
from lofi_pipeline.core.models import Arc, SelectedSong, TrackPlan

Allocation = Literal["prompts", "even"]
_ALTERNATE_FIELDS = ("song_id", "filename", "rank", "score", "similarity", "duration_seconds")


@dataclass
class ArcFill:
    """How one arc was filled (seconds)."""

    arc_number: int
    arc_name: str
    prompts: int
    target_seconds: float
    filled_seconds: float = 0.0
    songs: int = 0  # distinct songs, repeats not counted
    repeats: int = 0  # songs played a second (or later) time

    @property
    def shortfall_seconds(self) -> float:
        return max(0.0, self.target_seconds - self.filled_seconds)

    def to_dict(self) -> dict:
        return {**asdict(self), "shortfall_seconds": self.shortfall_seconds}


@dataclass
class SelectionResult:
    """Songs chosen for a track, in mix order, with what is left over and missing.

    ``prompt_seconds`` maps each prompt's ``order`` to the seconds of distinct
    (non-repeat) songs chosen for it; gap reports use it.
    """

    selected: list[SelectedSong]
    alternates: dict[int, list[dict]]
    arcs: list[ArcFill]
    target_seconds: float
    filled_seconds: float
    shortfall_seconds: float
    repeated: bool
    notes: list[str] = field(default_factory=list)
    prompt_seconds: dict[int, float] = field(default_factory=dict)
    allocation: str = "prompts"

    def to_dict(self) -> dict:
        return {
            "target_seconds": self.target_seconds,
            "filled_seconds": self.filled_seconds,
            "shortfall_seconds": self.shortfall_seconds,
            "repeated": self.repeated,
            "allocation": self.allocation,
            "notes": list(self.notes),
            "arcs": [a.to_dict() for a in self.arcs],
            "selected": [asdict(s) for s in self.selected],
            "alternates": {str(k): v for k, v in self.alternates.items()},
            "prompt_seconds": {str(k): v for k, v in self.prompt_seconds.items()},
        }

    def selected_frame(self) -> pd.DataFrame:
        """The selected songs as a table (one row per slot in the mix)."""
        columns = list(SelectedSong.__dataclass_fields__)
        return pd.DataFrame([asdict(s) for s in self.selected], columns=columns)


def arc_targets(plan: TrackPlan, *, target_seconds: float, allocation: Allocation = "prompts") -> list[float]:
    """Seconds each arc should fill, in ``plan.arcs`` order.

    ``"prompts"`` shares the target in proportion to each arc's prompt count
    (falling back to even when the page has no prompts); ``"even"`` equally.
    """
    if allocation not in ("prompts", "even"):
        raise ConfigError(f"allocation must be 'prompts' or 'even', got {allocation!r}")
    if not plan.arcs:
        return []
    counts = [len(a.prompts) for a in plan.arcs]
    if allocation == "even" or sum(counts) == 0:
        return [target_seconds / len(plan.arcs)] * len(plan.arcs)
    total = sum(counts)
    return [target_seconds * c / total for c in counts]


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _lookup(songs: pd.DataFrame | None) -> dict[str, dict]:
    if songs is None or len(songs) == 0:
        return {}
    wanted = ("song_id", "path", "filename", "duration_seconds", "loudness_lufs")
    cols = [c for c in wanted if c in songs.columns]
    return {r["song_id"]: r for r in songs[cols].to_dict("records")}


def _number(value) -> float | None:
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def select_for_duration(
    plan: TrackPlan,
    matches: pd.DataFrame,
    songs: pd.DataFrame | None = None,
    *,
    target_seconds: float | None = None,
    allocation: Allocation = "prompts",
    allow_repeat: bool = True,
) -> SelectionResult:
    """Choose songs that fill the track's duration, arc by arc.

    Parameters
    ----------
    plan : TrackPlan
        The new track.
    matches : pandas.DataFrame
        Candidates from ``query_track`` (needs ``prompt_order``, ``rank``,
        ``song_id``, ``score``; ``filename``, ``similarity`` and
        ``duration_seconds`` are read when present).
    songs : pandas.DataFrame, optional
        The songs table, for ``path``, ``loudness_lufs`` and durations that
        the matches lack.
    target_seconds : float, optional
        Target duration in seconds; defaults to the page's duration.
    allocation : {"prompts", "even"}
        How the target is shared over arcs.
    allow_repeat : bool
        Repeat an arc's songs when the library cannot fill it.

    Returns
    -------
    SelectionResult

    Raises
    ------
    ConfigError
        When no target duration is known or it is not positive, or the
        allocation is unknown.
    """
    if target_seconds is None:
        if plan.duration_minutes is None:
            raise ConfigError(f"{plan.source}: no target duration (the page gives none; pass target_seconds)")
        target_seconds = float(plan.duration_minutes) * 60.0
    if not (target_seconds > 0 and math.isfinite(target_seconds)):
        raise ConfigError(f"{plan.source}: target duration must be > 0 seconds, got {target_seconds!r}")
    targets = arc_targets(plan, target_seconds=target_seconds, allocation=allocation)
    library = _lookup(songs)
    notes: list[str] = []

    # Candidates per prompt, best first, with a usable duration.
    by_prompt: dict[int, list[dict]] = {}
    no_duration = set()
    if len(matches):
        ordered = matches.sort_values(["prompt_order", "rank"], kind="stable")
        for r in ordered.to_dict("records"):
            info = library.get(r["song_id"], {})
            duration = _number(r.get("duration_seconds"))
            if duration is None:
                duration = _number(info.get("duration_seconds"))
            if duration is None or duration <= 0:
                no_duration.add(r.get("filename") or r["song_id"])
                continue
            r = {**r, "duration_seconds": duration}
            by_prompt.setdefault(int(r["prompt_order"]), []).append(r)
    if no_duration:
        notes.append(f"{len(no_duration)} candidate song(s) skipped: duration unknown "
                     f"({', '.join(sorted(map(str, no_duration))[:3])})")

    # A song's home arc is where it scored best; ties go to the earlier arc.
    arc_of_prompt = {p.order: arc.number for arc in plan.arcs for p in arc.prompts}
    home: dict[str, tuple[float, int]] = {}
    arc_position = {arc.number: i for i, arc in enumerate(plan.arcs)}
    for order, cands in by_prompt.items():
        a = arc_of_prompt.get(order)
        if a is None:
            continue
        for c in cands:
            key = (-float(c["score"]), arc_position[a])
            if c["song_id"] not in home or key < home[c["song_id"]]:
                home[c["song_id"]] = key
    home_arc = {sid: plan.arcs[pos].number for sid, (_, pos) in home.items()}

    used: set[str] = set()
    prompt_seconds = {p.order: 0.0 for p in plan.prompts}
    selected: list[SelectedSong] = []
    fills: list[ArcFill] = []
    cumulative_target = 0.0
    cumulative_filled = 0.0

    for arc, arc_target in zip(plan.arcs, targets):
        cumulative_target += arc_target
        goal = cumulative_target - cumulative_filled
        if arc_target > 0:
            # Earlier overshoot may eat this arc's whole share; it still gets a
            # song so the arc is heard.
            goal = max(goal, 1.0)
        fill = ArcFill(arc_number=arc.number, arc_name=arc.name, prompts=len(arc.prompts),
                       target_seconds=arc_target)
        picks = _fill_arc(arc, by_prompt, used, home_arc, goal)
        for _, cand in picks:
            fill.filled_seconds += cand["duration_seconds"]
        fill.songs = len(picks)
        # Mix order follows the arc's prompt order; a prompt's own picks keep rank order.
        position = {p.order: i for i, p in enumerate(arc.prompts)}
        picks.sort(key=lambda item: position[item[0]])
        slots = [(order, cand, False) for order, cand in picks]

        if fill.filled_seconds < goal and allow_repeat and picks:
            i = 0
            while fill.filled_seconds < goal:
                order, cand = picks[i % len(picks)]
                slots.append((order, cand, True))
                fill.filled_seconds += cand["duration_seconds"]
                fill.repeats += 1
                i += 1
            notes.append(f"library short: arc {arc.number} ({arc.name}) repeats {fill.repeats} song(s)")
        elif not picks and arc.prompts:
            notes.append(f"arc {arc.number} ({arc.name}) has no matching songs: {_minutes(max(goal, 0.0))} "
                         "unfilled")
        elif fill.filled_seconds < goal:
            notes.append(f"arc {arc.number} ({arc.name}) short by {_minutes(goal - fill.filled_seconds)} "
                         "(repeats not allowed)")

        prompt_number = {p.order: p.number for p in arc.prompts}
        for order, cand, repeat in slots:
            info = library.get(cand["song_id"], {})
            if not repeat:
                prompt_seconds[order] = prompt_seconds.get(order, 0.0) + cand["duration_seconds"]
            selected.append(SelectedSong(
                order=len(selected) + 1,
                arc_number=arc.number,
                arc_name=arc.name,
                song_id=str(cand["song_id"]),
                path=str(info.get("path") or cand.get("path") or ""),
                filename=str(cand.get("filename") or info.get("filename") or ""),
                duration_seconds=float(cand["duration_seconds"]),
                prompt_number=prompt_number.get(order),
                score=_number(cand.get("score")),
                similarity=_number(cand.get("similarity")),
                loudness_lufs=_number(info.get("loudness_lufs")),
                repeat=repeat,
            ))
        cumulative_filled += fill.filled_seconds
        fills.append(fill)

    alternates: dict[int, list[dict]] = {}
    for p in plan.prompts:
        alternates[p.order] = [
            {k: _plain(c.get(k)) for k in _ALTERNATE_FIELDS}
            for c in by_prompt.get(p.order, []) if c["song_id"] not in used
        ]

    filled = sum(s.duration_seconds for s in selected)
    shortfall = max(0.0, target_seconds - filled)
    repeated = any(s.repeat for s in selected)
    if shortfall > 0:
        notes.append(f"selection short of the target by {_minutes(shortfall)} ({_minutes(filled)} of "
                     f"{_minutes(target_seconds)})")
    return SelectionResult(
        selected=selected,
        alternates=alternates,
        arcs=fills,
        target_seconds=float(target_seconds),
        filled_seconds=filled,
        shortfall_seconds=shortfall,
        repeated=repeated,
        notes=notes,
        prompt_seconds=prompt_seconds,
        allocation=allocation,
    )


def _plain(value):
    """numpy scalars -> Python, so results serialise to JSON as they are."""
    if hasattr(value, "item"):
        return value.item()
    return value


def _fill_arc(arc: Arc, by_prompt: dict[int, list[dict]], used: set[str], home_arc: dict[str, int],
              goal: float) -> list[tuple[int, dict]]:
    """Round-robin over the arc's prompts until ``goal`` seconds are filled.

    Pass 1 takes only songs whose home is this arc; pass 2 any unused song.
    Chosen song ids are added to ``used``.
    """
    picks: list[tuple[int, dict]] = []
    filled = 0.0
    orders = [p.order for p in arc.prompts]
    for home_only in (True, False):
        cursor = {o: 0 for o in orders}
        progress = True
        while filled < goal and progress:
            progress = False
            for order in orders:
                if filled >= goal:
                    break
                cands: Sequence[dict] = by_prompt.get(order, [])
                while cursor[order] < len(cands):
                    cand = cands[cursor[order]]
                    cursor[order] += 1
                    if cand["song_id"] in used:
                        continue
                    if home_only and home_arc.get(cand["song_id"]) != arc.number:
                        continue
                    used.add(cand["song_id"])
                    picks.append((order, cand))
                    filled += cand["duration_seconds"]
                    progress = True
                    break
    return picks
