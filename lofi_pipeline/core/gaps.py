"""Gap reports: which prompts of a track still need new songs, and how many.

Each prompt gets a status from its best match:

* ``none`` — no library song reached ``min_similarity`` (default 0.6);
* ``weak`` — the best similarity is below ``good_threshold`` (default 0.7);
* ``good`` — at least one song is a close fit.

and the number of new songs it needs: its share of the arc's target duration
(the arc's target split evenly over its prompts) minus the seconds of distinct
songs selected for it, divided by a typical song length, rounded up. Repeats
do not count: they fill time, not the prompt.

The report is a plain dict (the ``gaps.json`` contract); :func:`write_gap_files`
also writes a Markdown report and ``remaining-prompts.md``, the full Suno text
of every prompt that still needs songs, ready to paste.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from lofi_pipeline.core.models import SelectedSong, TrackPlan
from lofi_pipeline.core.selection import ArcFill, SelectionResult, arc_targets
from lofi_pipeline.core.workspace import write_text_atomic

DEFAULT_SONG_SECONDS = 180.0  # a typical Suno song when the library gives no hint
STATUSES = ("none", "weak", "good")
GAP_FILES = {"json": "gaps.json", "markdown": "gaps.md", "remaining": "remaining-prompts.md"}


def _clean(value):
    """JSON-safe: numpy scalars to Python, NaN to None."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _from_selected(plan: TrackPlan, selected: Sequence[SelectedSong], *, target_seconds: float | None,
                   allocation: str) -> SelectionResult:
    """Rebuild the bookkeeping of a selection from its songs (as stored in the library)."""
    if target_seconds is None:
        if plan.duration_minutes:
            target_seconds = float(plan.duration_minutes) * 60.0
        else:
            target_seconds = float(sum(s.duration_seconds for s in selected))
    shares = arc_targets(plan, target_seconds=target_seconds, allocation=allocation) if target_seconds > 0 \
        else [0.0] * len(plan.arcs)
    order_of = {(arc.number, p.number): p.order for arc in plan.arcs for p in arc.prompts}
    prompt_seconds = {p.order: 0.0 for p in plan.prompts}
    fills = []
    for arc, share in zip(plan.arcs, shares):
        mine = [s for s in selected if s.arc_number == arc.number]
        fills.append(ArcFill(arc_number=arc.number, arc_name=arc.name, prompts=len(arc.prompts),
                             target_seconds=share, filled_seconds=sum(s.duration_seconds for s in mine),
                             songs=sum(1 for s in mine if not s.repeat),
                             repeats=sum(1 for s in mine if s.repeat)))
    for s in selected:
        order = order_of.get((s.arc_number, s.prompt_number))
        if order is not None and not s.repeat:
            prompt_seconds[order] += s.duration_seconds
    filled = float(sum(s.duration_seconds for s in selected))
    notes = [f"library short: arc {f.arc_number} ({f.arc_name}) repeats {f.repeats} song(s)"
             for f in fills if f.repeats]
    return SelectionResult(selected=list(selected), alternates={}, arcs=fills, target_seconds=target_seconds,
                           filled_seconds=filled, shortfall_seconds=max(0.0, target_seconds - filled),
                           repeated=any(s.repeat for s in selected), notes=notes,
                           prompt_seconds=prompt_seconds,
                           allocation=allocation)


def build_gap_report(
    plan: TrackPlan,
    matches: pd.DataFrame,
    selection: SelectionResult | Sequence[SelectedSong] | None,
    *,
    good_threshold: float = 0.7,
    min_similarity: float = 0.6,
    typical_song_seconds: float | None = None,
    best_similarity: Mapping[int, float | None] | None = None,
    target_seconds: float | None = None,
    allocation: str = "prompts",
) -> dict:
    """Per-prompt gap status and songs needed for one track.

    Parameters
    ----------
    plan : TrackPlan
        The new track.
    matches : pandas.DataFrame
        Candidates from ``query_track`` (``prompt_order``, ``similarity``,
        ``filename``, ``duration_seconds``).
    selection : SelectionResult, list of SelectedSong, or None
        The selection. A plain list (as stored in the library) is accepted;
        then ``target_seconds`` (default: the page's duration) and
        ``allocation`` rebuild the per-arc targets. Without a selection
        nothing counts as filled.
    good_threshold : float
        Similarity at and above which a match is good.
    min_similarity : float
        The threshold the query used (recorded in the report).
    typical_song_seconds : float, optional
        Length of a new song in seconds; default the median candidate
        duration, else the median selected duration, else 180 s.
    best_similarity : mapping of prompt order -> float, optional
        Best similarity per prompt including songs below the threshold;
        defaults to ``matches.attrs["best_similarity"]`` when present.

    Returns
    -------
    dict
        ``track_number``, ``title``, ``thresholds``, ``typical_song_seconds``,
        ``target_seconds``, ``filled_seconds``, ``shortfall_seconds``,
        ``repeated``, ``notes``, ``prompts`` (one dict per prompt: arc, number,
        order, status, best_similarity, best_song, candidates,
        target_seconds, filled_seconds, songs_needed, text, core_text) and
        ``totals`` (counts per status, songs needed).
    """
    if best_similarity is None:
        best_similarity = matches.attrs.get("best_similarity", {}) if hasattr(matches, "attrs") else {}
    if selection is not None and not isinstance(selection, SelectionResult):
        selection = _from_selected(plan, list(selection), target_seconds=target_seconds,
                                   allocation=allocation)
    if typical_song_seconds is None:
        durations = pd.to_numeric(matches.get("duration_seconds", pd.Series(dtype=float)),
                                  errors="coerce").dropna()
        if not len(durations) and selection is not None:
            durations = pd.Series([s.duration_seconds for s in selection.selected if not s.repeat],
                                  dtype=float)
        typical_song_seconds = float(durations.median()) if len(durations) else DEFAULT_SONG_SECONDS
    if not typical_song_seconds > 0:
        typical_song_seconds = DEFAULT_SONG_SECONDS

    if selection is not None:
        target_total = selection.target_seconds
        per_arc = {a.arc_number: a.target_seconds for a in selection.arcs}
        prompt_seconds = selection.prompt_seconds
    else:
        target_total = target_seconds if target_seconds is not None else (plan.duration_minutes or 0.0) * 60.0
        shares = (arc_targets(plan, target_seconds=target_total, allocation=allocation)
                  if target_total > 0 else [0.0] * len(plan.arcs))
        per_arc = {a.number: t for a, t in zip(plan.arcs, shares)}
        prompt_seconds = {}

    groups = {int(k): g for k, g in matches.groupby("prompt_order")} if len(matches) else {}
    prompts = []
    for arc in plan.arcs:
        share = per_arc.get(arc.number, 0.0) / len(arc.prompts) if arc.prompts else 0.0
        for p in arc.prompts:
            rows = groups.get(p.order)
            if rows is not None and len(rows):
                best_row = rows.loc[rows["similarity"].idxmax()]
                best = float(best_row["similarity"])
                best_song = _clean(best_row.get("filename"))
                status = "good" if best >= good_threshold else "weak"
            else:
                raw = best_similarity.get(p.order) if best_similarity else None
                best = None if raw is None else float(raw)
                best_song = None
                status = "none"
            filled = float(prompt_seconds.get(p.order, 0.0))
            missing = max(0.0, share - filled)
            # Half a second of slack so float dust never asks for a song.
            needed = math.ceil((missing - 0.5) / typical_song_seconds) if missing > 0.5 else 0
            prompts.append({
                "arc_number": arc.number,
                "arc_name": arc.name,
                "prompt_number": p.number,
                "prompt_order": p.order,
                "status": status,
                "best_similarity": _clean(best),
                "best_song": best_song,
                "candidates": 0 if rows is None else int(len(rows)),
                "target_seconds": round(share, 3),
                "filled_seconds": round(filled, 3),
                "songs_needed": int(needed),
                "text": p.text,
                "core_text": p.core_text,
            })

    filled_total = selection.filled_seconds if selection is not None else 0.0
    distinct = (sum(s.duration_seconds for s in selection.selected if not s.repeat)
                if selection is not None else 0.0)
    totals = {status: sum(1 for p in prompts if p["status"] == status) for status in STATUSES}
    totals.update({
        "prompts": len(prompts),
        "songs_needed": sum(p["songs_needed"] for p in prompts),
        "prompts_needing_songs": sum(1 for p in prompts if p["songs_needed"] > 0),
        # Songs needed to fill the duration without any repeat.
        "songs_needed_for_duration": math.ceil(
            max(0.0, target_total - distinct) / typical_song_seconds - 1e-9),
    })
    return {
        "track_number": plan.track_number,
        "title": plan.title or plan.page_title,
        "source": plan.source,
        "thresholds": {"min_similarity": min_similarity, "good_threshold": good_threshold},
        "typical_song_seconds": round(float(typical_song_seconds), 3),
        "target_seconds": round(float(target_total), 3),
        "filled_seconds": round(float(filled_total), 3),
        "distinct_seconds": round(float(distinct), 3),
        "shortfall_seconds": round(float(selection.shortfall_seconds if selection is not None
                                         else target_total), 3),
        "repeated": bool(selection.repeated) if selection is not None else False,
        "notes": list(selection.notes) if selection is not None else [],
        "prompts": prompts,
        "totals": totals,
    }


def _track_label(report: Mapping) -> str:
    number = report.get("track_number")
    title = report.get("title")
    label = f"Track {number}" if number is not None else "Track"
    return f"{label} — {title}" if title else label


def _fmt_sim(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def _cell(text: str, limit: int = 70) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def gap_report_markdown(report: Mapping) -> str:
    """The gap report as Markdown (also used as Dagster asset metadata)."""
    t = report["totals"]
    th = report["thresholds"]
    lines = [
        f"# Gap report — {_track_label(report)}",
        "",
        f"**{t['prompts']} prompts**: {t['good']} good, {t['weak']} weak, {t['none']} without a match "
        f"(match ≥ {th['min_similarity']:.2f}, good ≥ {th['good_threshold']:.2f}).",
        f"Selected {report['filled_seconds'] / 60:.1f} of {report['target_seconds'] / 60:.1f} min"
        f"{' (with repeats)' if report['repeated'] else ''}; "
        f"**{t['songs_needed']} new songs** needed for full prompt coverage, "
        f"{t['songs_needed_for_duration']} to fill the duration without repeats "
        f"(~{report['typical_song_seconds'] / 60:.1f} min per song).",
        "",
        "| arc | prompt | status | best sim | best song | chosen (min) | needed | prompt |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in report["prompts"]:
        lines.append(
            f"| {p['arc_number']} {_cell(p['arc_name'], 24)} | {p['prompt_number']} | {p['status']} "
            f"| {_fmt_sim(p['best_similarity'])} | {_cell(p['best_song'] or '—', 28)} "
            f"| {p['filled_seconds'] / 60:.1f} / {p['target_seconds'] / 60:.1f} | {p['songs_needed']} "
            f"| {_cell(p['core_text'] or p['text'])} |"
        )
    if report.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    return "\n".join(lines) + "\n"


def _needs_songs(p: Mapping) -> bool:
    return p["status"] != "good" or p["songs_needed"] > 0


def remaining_prompts_markdown(plan: TrackPlan, report: Mapping) -> str:
    """The prompts that still need songs, with their full Suno text, ready to paste.

    A prompt is listed when its status is not ``good`` or it needs songs to
    reach the duration. The text is ``Prompt.text`` exactly as on the page.
    """
    by_order = {p["prompt_order"]: p for p in report["prompts"]}
    lines = [f"# Remaining prompts — {_track_label(report)}", ""]
    listed = 0
    for arc in plan.arcs:
        entries = [(p, by_order.get(p.order)) for p in arc.prompts]
        entries = [(p, r) for p, r in entries if r is not None and _needs_songs(r)]
        if not entries:
            continue
        bpm = f" (BPM {arc.bpm_range[0]:g}–{arc.bpm_range[1]:g})" if arc.bpm_range else ""
        lines += [f"## Arc {arc.number} — {arc.name}{bpm}", ""]
        for p, r in entries:
            count = max(r["songs_needed"], 1)
            lines.append(f"### Prompt {p.number} — {r['status']}, {count} song{'s' if count != 1 else ''} "
                         "to make")
            lines.append("")
            fence = "~~~~" if "```" in p.text else "```"
            lines += [f"{fence}text", p.text, fence, ""]
            listed += 1
    if listed == 0:
        lines += ["Every prompt has good matches that fill its share of the duration.", ""]
    return "\n".join(lines)


def write_gap_files(report: Mapping, plan: TrackPlan, folder: str | Path) -> dict[str, Path]:
    """Write ``gaps.json``, ``gaps.md`` and ``remaining-prompts.md`` into ``folder``.

    Each file is written atomically (temp file + rename). The folder is created
    when missing.

    Returns
    -------
    dict
        ``{"json": Path, "markdown": Path, "remaining": Path}``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {kind: folder / name for kind, name in GAP_FILES.items()}
    payload = json.dumps(report, indent=2, ensure_ascii=False, default=_clean, allow_nan=False)
    write_text_atomic(paths["json"], payload + "\n")
    write_text_atomic(paths["markdown"], gap_report_markdown(report))
    write_text_atomic(paths["remaining"], remaining_prompts_markdown(plan, report))
    return paths
