"""The mix plan: which song plays where in a track's mix, arc by arc.

One plan per track is stored in the library (``mix_plans`` / ``mix_plan_entries``)
and every later stage reads it: gaps, duration, prepare-render, render,
chapters and publish. The rules, in order:

1. **Own songs first.** A song whose file name says it was made for this
   track's prompt (``A_{arc}_{prompt}_{N}{take}``) fills that prompt, whatever
   its similarity.
2. **Arcs keep their songs.** Every other candidate goes to the one prompt it
   scored best on (over the whole page), so an arc never takes a song another
   arc's prompt fits better. Inside an arc the prompts take turns, each taking
   its best remaining song, until the arc's share of the target is filled.
3. **Short arcs repeat their own songs, spread out**: whole passes through the
   arc's order, never the same song twice in a row, at most ``max_repeats``
   extra plays per song. The arc summary says how many new songs would remove
   the repeats and what stays short.
4. **Order inside an arc a listener hears as a mix**: a greedy walk that
   prefers harmonically compatible neighbours (same key, ±1 on the Camelot
   wheel, relative major/minor), small tempo steps, and energy following the
   arc's direction (rising, steady or falling, read from the arc's name,
   description and the page's mood arc).

Times are seconds; consecutive entries overlap by the crossfade (shortened to
half the shorter song), exactly as the render lays them out.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from lofi_pipeline.core.errors import ConfigError
from lofi_pipeline.core.models import Arc, TrackPlan, is_missing, number_or_none

ENERGY = {"low": 0, "medium": 1, "high": 2}
_FALLING = re.compile(r"\b(end|ending|outro|calm|fade|sleep|wind|gentle|rest|dream|close|closing|drift|settl)",
                      re.I)
_RISING = re.compile(r"\b(build|rise|rising|peak|energ|drive|driving|awaken|wake|intro|lift|climb|morning)", re.I)


@dataclass
class MixEntry:
    position: int  # 1-based over the whole mix
    arc_number: int
    arc_name: str
    prompt_order: int | None
    prompt_number: int | None
    song_id: str
    filename: str
    path: str
    start_seconds: float
    length_seconds: float
    repeat: int  # 0 = first play, 1 = second play, ...
    source: str  # own | reused
    bpm: float | None = None
    camelot: str | None = None
    energy_level: str | None = None
    score: float | None = None
    similarity: float | None = None
    loudness_lufs: float | None = None


@dataclass
class ArcSummary:
    arc_number: int
    arc_name: str
    direction: str  # rising | steady | falling
    target_seconds: float
    planned_seconds: float = 0.0
    songs: int = 0  # distinct
    own_songs: int = 0
    plays: int = 0
    repeats: int = 0
    compatible_share: float | None = None  # of transitions inside the arc
    mean_tempo_step: float | None = None  # BPM between neighbours
    songs_to_remove_repeats: int = 0
    shortfall_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MixPlan:
    track_number: int
    target_seconds: float
    crossfade_seconds: float
    max_repeats: int
    entries: list[MixEntry] = field(default_factory=list)
    arcs: list[ArcSummary] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def duration_seconds(self) -> float:
        return self.entries[-1].start_seconds + self.entries[-1].length_seconds if self.entries else 0.0

    def summary(self) -> dict[str, Any]:
        """What the library stores beside the entries (``mix_plans.summary_json``)."""
        return {"arcs": [a.to_dict() for a in self.arcs], "notes": list(self.notes)}

    @classmethod
    def from_stored(cls, header: dict[str, Any], entries: pd.DataFrame) -> "MixPlan":
        names = set(MixEntry.__dataclass_fields__)
        rows = [{k: (None if is_missing(v) else v) for k, v in r.items() if k in names}
                for r in entries.to_dict("records")]
        summary = header.get("summary_json") or {}
        return cls(track_number=int(header["track_number"]), target_seconds=float(header["target_seconds"] or 0),
                   crossfade_seconds=float(header.get("crossfade_seconds") or 0),
                   max_repeats=int(header.get("max_repeats") or 0),
                   entries=[MixEntry(**r) for r in rows],
                   arcs=[ArcSummary(**a) for a in summary.get("arcs", [])], notes=list(summary.get("notes", [])))


def heard_seconds(length: float, crossfade: float) -> float:
    """Seconds a song adds to the mix: its length less the crossfade into the next one.

    The crossfade is shortened to half the song, as the layout below and the
    render do, so a long crossfade never makes a song count as negative time.
    """
    return length - min(crossfade, length / 2)


def arc_targets(plan: TrackPlan, *, target_seconds: float, allocation: str = "prompts") -> list[float]:
    """Seconds each arc should fill: in proportion to its prompts (``prompts``) or ``even``."""
    if allocation not in ("prompts", "even"):
        raise ConfigError(f"allocation must be 'prompts' or 'even', got {allocation!r}")
    if not plan.arcs:
        return []
    counts = [len(a.prompts) for a in plan.arcs]
    if allocation == "even" or sum(counts) == 0:
        return [target_seconds / len(plan.arcs)] * len(plan.arcs)
    return [target_seconds * c / sum(counts) for c in counts]


def arc_direction(plan: TrackPlan, arc: Arc, index: int) -> str:
    """rising / steady / falling: from the arc's words, else its place (first rises, last falls)."""
    words = " ".join(filter(None, [arc.name, arc.subtitle, arc.description]))
    moods = [m for m in re.split(r"\s*(?:→|->|⟶|➝|=>|>)\s*", plan.mood_arc or "") if m]
    if len(moods) == len(plan.arcs):
        words += " " + moods[index]
    if _FALLING.search(words):
        return "falling"
    if _RISING.search(words):
        return "rising"
    if len(plan.arcs) > 2 and index == len(plan.arcs) - 1:
        return "falling"
    if len(plan.arcs) > 2 and index == 0:
        return "rising"
    return "steady"


def compatible(camelot_a: str | None, camelot_b: str | None) -> bool:
    """Same key, a neighbour on the Camelot wheel, or the relative major/minor."""
    from lofi_pipeline.core.matching import key_score

    if not camelot_a or not camelot_b:
        return False
    return key_score(camelot_a, camelot_b) >= 0.8


def _candidate(song: dict, prompt_order: int, prompt_number: int, source: str, score: float | None,
               similarity: float | None) -> dict:
    return {**song, "prompt_order": prompt_order, "prompt_number": prompt_number, "source": source,
            "score": score, "similarity": similarity}


def plan_mix(plan: TrackPlan, *, track_number: int, songs: pd.DataFrame, matches: pd.DataFrame,
             target_seconds: float, crossfade_seconds: float = 5.0, allocation: str = "prompts",
             max_repeats: int = 3, min_similarity: float = 0.6) -> MixPlan:
    """Plan the mix of ``plan`` to ``target_seconds`` from the library (see the module docstring).

    ``songs`` is the songs table (song_id, filename, path, duration_seconds and,
    when known, source_track, arc, prompt, bpm, camelot, energy_level,
    loudness_lufs); ``matches`` the stored matches (prompt_order, song_id,
    score, similarity). Deterministic: the same input gives the same plan.
    """
    if target_seconds <= 0:
        raise ConfigError(f"target duration must be positive, got {target_seconds!r} s")
    if max_repeats < 0:
        raise ConfigError(f"max_repeats must be 0 or more, got {max_repeats!r}")
    lib = {}
    for r in songs.to_dict("records"):
        length = number_or_none(r.get("duration_seconds"))
        if length and length > 0:
            lib[r["song_id"]] = {"song_id": r["song_id"], "filename": r.get("filename") or "",
                                 "path": r.get("path") or "", "length": length, "bpm": number_or_none(r.get("bpm")),
                                 "camelot": None if is_missing(r.get("camelot")) else r.get("camelot"),
                                 "energy_level": None if is_missing(r.get("energy_level")) else r.get("energy_level"),
                                 "loudness_lufs": number_or_none(r.get("loudness_lufs")),
                                 "own": (number_or_none(r.get("source_track")), number_or_none(r.get("arc")), number_or_none(r.get("prompt")))}
    prompt_of = {p.order: (arc, p) for arc in plan.arcs for p in arc.prompts}

    # 1. own songs: made for this track's prompt, by file name
    pools: dict[int, list[dict]] = {p.order: [] for p in plan.prompts}
    taken: set[str] = set()
    own_key = {(float(track_number), float(arc.number), float(p.number)): p.order
               for arc in plan.arcs for p in arc.prompts}
    for sid in sorted(lib):
        order = own_key.get(lib[sid]["own"])
        if order is not None:
            arc, p = prompt_of[order]
            pools[order].append(_candidate(lib[sid], order, p.number, "own", None, None))
            taken.add(sid)

    # 2. every other candidate goes to the one prompt it fits best
    if len(matches):
        rows = matches[matches["song_id"].isin(set(lib) - taken)]
        rows = rows[rows["prompt_order"].isin(prompt_of)]
        rows = rows[rows["similarity"].astype(float) >= min_similarity]
        rows = rows.sort_values(["score", "similarity", "song_id"], ascending=[False, False, True], kind="stable")
        for r in rows.drop_duplicates("song_id").itertuples():
            order = int(r.prompt_order)
            pools[order].append(_candidate(lib[r.song_id], order, prompt_of[order][1].number, "reused",
                                           float(r.score), float(r.similarity)))
    for order in pools:  # own first (by name), then best score
        pools[order].sort(key=lambda c: (c["source"] != "own", -(c["score"] or 0.0), c["filename"], c["song_id"]))

    mix = MixPlan(track_number=track_number, target_seconds=float(target_seconds),
                  crossfade_seconds=float(crossfade_seconds), max_repeats=int(max_repeats))
    targets = arc_targets(plan, target_seconds=target_seconds, allocation=allocation)
    carry = 0.0  # what earlier arcs over- or under-filled
    sequence: list[tuple[Arc, dict, int]] = []
    for index, (arc, share) in enumerate(zip(plan.arcs, targets)):
        goal = max(share + carry, 0.0)
        direction = arc_direction(plan, arc, index)
        chosen = _fill(arc, pools, goal, crossfade_seconds)
        ordered = _order(chosen, direction)
        plays, shortfall = _repeat(ordered, goal, crossfade_seconds, max_repeats)
        filled = sum(heard_seconds(c["length"], crossfade_seconds) for c, _ in plays)
        carry = goal - filled if shortfall <= 0 else 0.0  # an arc that ran out does not starve the next
        summary = ArcSummary(arc_number=arc.number, arc_name=arc.name, direction=direction,
                             target_seconds=round(share, 3), songs=len(ordered),
                             own_songs=sum(c["source"] == "own" for c in ordered), plays=len(plays),
                             repeats=sum(k > 0 for _, k in plays), shortfall_seconds=round(max(shortfall, 0.0), 3))
        _transition_stats(summary, [c for c, _ in plays])
        if summary.repeats:
            repeat_seconds = sum(c["length"] for c, k in plays if k > 0)
            typical = sorted(c["length"] for c in ordered)[len(ordered) // 2]
            summary.songs_to_remove_repeats = math.ceil(repeat_seconds
                                                        / max(heard_seconds(typical, crossfade_seconds), 1.0))
            mix.notes.append(f"arc {arc.number} ({arc.name}): {summary.repeats} repeated play(s) of its "
                             f"{summary.songs} song(s), at most {max_repeats} extra per song; "
                             f"{summary.songs_to_remove_repeats} new song(s) would remove them")
        if summary.shortfall_seconds > 0:
            mix.notes.append(f"arc {arc.number} ({arc.name}): {summary.shortfall_seconds / 60:.1f} min short "
                             f"even with repeats" if ordered else
                             f"arc {arc.number} ({arc.name}): no song fits its prompts yet")
        mix.arcs.append(summary)
        sequence.extend((arc, c, k) for c, k in plays)

    # Lay the entries end to end with the render's crossfade rule.
    start = 0.0
    prev_len = None
    for position, (arc, c, k) in enumerate(sequence, 1):
        if prev_len is not None:
            start += prev_len - min(crossfade_seconds, prev_len / 2, c["length"] / 2)
        mix.entries.append(MixEntry(
            position=position, arc_number=arc.number, arc_name=arc.name, prompt_order=c["prompt_order"],
            prompt_number=c["prompt_number"], song_id=c["song_id"], filename=c["filename"], path=c["path"],
            start_seconds=round(start, 3), length_seconds=c["length"], repeat=k, source=c["source"],
            bpm=c["bpm"], camelot=c["camelot"], energy_level=c["energy_level"], score=c["score"],
            similarity=c["similarity"], loudness_lufs=c["loudness_lufs"]))
        prev_len = c["length"]
    for summary in mix.arcs:
        mine = [e for e in mix.entries if e.arc_number == summary.arc_number]
        if mine:
            summary.planned_seconds = round(mine[-1].start_seconds + mine[-1].length_seconds
                                            - mine[0].start_seconds, 3)
    return mix


def _fill(arc: Arc, pools: dict[int, list[dict]], goal: float, crossfade: float) -> list[dict]:
    """Every prompt with a song is heard once; then prompts take turns, each its best remaining
    song, until the arc's goal is met. (A prompt the library covers is never left out for length:
    the gap report would then ask for songs the library already has.)"""
    queues = [list(pools.get(p.order, [])) for p in arc.prompts]
    chosen = [q.pop(0) for q in queues if q]
    filled = sum(heard_seconds(c["length"], crossfade) for c in chosen)
    while filled < goal and any(queues):
        for q in queues:
            if q and filled < goal:
                c = q.pop(0)
                chosen.append(c)
                filled += heard_seconds(c["length"], crossfade)
    return chosen


def _energy(c: dict) -> int:
    return ENERGY.get(str(c.get("energy_level") or "").lower(), 1)


def _cost(a: dict, b: dict, direction: str) -> float:
    key = 0.0 if compatible(a["camelot"], b["camelot"]) else 1.0
    tempo = abs(a["bpm"] - b["bpm"]) / 10.0 if a["bpm"] is not None and b["bpm"] is not None else 0.5
    step = _energy(b) - _energy(a)
    energy = {"rising": max(-step, 0), "falling": max(step, 0)}.get(direction, abs(step) * 0.25)
    return key + tempo + energy


def _order(chosen: list[dict], direction: str) -> list[dict]:
    """A greedy nearest-neighbour walk from the song that suits the arc's start, then 2-opt passes."""
    if len(chosen) < 3:
        return sorted(chosen, key=lambda c: (_energy(c) * (-1 if direction == "falling" else 1), c["song_id"]))
    first = min(chosen, key=lambda c: ({"rising": _energy(c), "falling": -_energy(c)}.get(direction, 0),
                                       c["bpm"] if c["bpm"] is not None else 999, c["song_id"]))
    order, rest = [first], [c for c in chosen if c is not first]
    while rest:
        nxt = min(rest, key=lambda c: (_cost(order[-1], c, direction), c["song_id"]))
        order.append(nxt)
        rest.remove(nxt)

    def total(seq: list[dict]) -> float:
        return sum(_cost(a, b, direction) for a, b in zip(seq, seq[1:]))

    best = total(order)
    improved = True
    while improved:
        improved = False
        for i in range(1, len(order) - 1):
            for j in range(i + 1, len(order)):
                cand = order[:i] + order[i:j + 1][::-1] + order[j + 1:]
                t = total(cand)
                if t < best - 1e-9:
                    order, best, improved = cand, t, True
    return order


def _repeat(ordered: list[dict], goal: float, crossfade: float, max_repeats: int) -> tuple[list[tuple[dict, int]], float]:
    """Whole passes through the arc's order until the goal; never one song twice in a row."""
    plays = [(c, 0) for c in ordered]
    filled = sum(heard_seconds(c["length"], crossfade) for c in ordered)
    if len(ordered) < 2:
        return plays, goal - filled
    k = 1
    while filled < goal and k <= max_repeats:
        for c in ordered:
            if filled >= goal:
                break
            plays.append((c, k))
            filled += heard_seconds(c["length"], crossfade)
        k += 1
    return plays, goal - filled


def _transition_stats(summary: ArcSummary, seq: list[dict]) -> None:
    pairs = list(zip(seq, seq[1:]))
    keyed = [(a, b) for a, b in pairs if a["camelot"] and b["camelot"]]
    if keyed:
        summary.compatible_share = round(sum(compatible(a["camelot"], b["camelot"]) for a, b in keyed)
                                         / len(keyed), 3)
    tempo = [abs(a["bpm"] - b["bpm"]) for a, b in pairs if a["bpm"] is not None and b["bpm"] is not None]
    if tempo:
        summary.mean_tempo_step = round(sum(tempo) / len(tempo), 2)
