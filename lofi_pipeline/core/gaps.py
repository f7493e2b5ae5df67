"""Gap reports: what to generate next for a track, read from its stored mix plan.

Every prompt gets one status:

* ``covered`` — its share of the arc is filled by distinct songs that fit
  (songs made for the prompt always fit; reused songs need ``good_similarity``);
* ``weak`` — it has songs, but only loose fits or too few (the arc repeats);
* ``missing`` — no song plays for it.

and ``songs_needed``: the new songs to generate for it — enough distinct
songs to fill its share (the arc's target split over its prompts) at a
typical song length, and at least one for a weak or missing prompt. The
headline ``songs_to_generate`` is their sum; time the plan cannot fill even
with repeats is said separately, as ``shortfall_minutes``.

The report is a plain dict (the ``gaps.json`` and ``lofi gaps --json``
contract); :func:`write_gap_files` also writes ``gaps.md`` and
``remaining-prompts.md`` — only the prompts that need songs, each with its
full Suno text and how many takes to make, ready to paste.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from lofi_pipeline.core.files import write_text_atomic
from lofi_pipeline.core.mixplan import heard_seconds
from lofi_pipeline.core.models import TrackPlan

DEFAULT_SONG_SECONDS = 180.0  # a typical Suno song when the plan gives no hint
STATUSES = ("covered", "weak", "missing")
GAP_FILES = {"json": "gaps.json", "markdown": "gaps.md", "remaining": "remaining-prompts.md"}


def build_gap_report(plan: TrackPlan, mix, matches: pd.DataFrame | None = None, *,
                     good_similarity: float = 0.7, min_similarity: float = 0.6,
                     best: Mapping[int, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The gap report of ``mix`` (a :class:`~lofi_pipeline.core.mixplan.MixPlan`) for ``plan``.

    ``best[prompt_order]`` is the closest library song of each prompt even
    below ``min_similarity`` (``similarity``, ``song_id``, ``filename``).
    """
    best = best or {}
    first = [e for e in mix.entries if e.repeat == 0]
    lengths = sorted(e.length_seconds for e in first)
    typical = lengths[len(lengths) // 2] if lengths else DEFAULT_SONG_SECONDS
    # New songs are full Suno songs, whatever the length of the clips already in the library.
    effective = heard_seconds(max(typical, 120.0), mix.crossfade_seconds)
    targets = {a.arc_number: a.target_seconds for a in mix.arcs}
    prompts = []
    for arc in plan.arcs:
        share = targets.get(arc.number, 0.0) / max(len(arc.prompts), 1)
        for p in arc.prompts:
            mine = [e for e in first if e.prompt_order == p.order]
            good = [e for e in mine if e.source == "own" or (e.similarity or 0.0) >= good_similarity]
            seconds = sum(heard_seconds(e.length_seconds, mix.crossfade_seconds) for e in mine)
            if not mine:
                status = "missing"
            elif good and seconds >= 0.9 * share:
                status = "covered"
            else:
                status = "weak"
            short = max(share - sum(heard_seconds(e.length_seconds, mix.crossfade_seconds) for e in good), 0.0)
            needed = 0 if status == "covered" else max(1, math.ceil(short / effective))
            closest = best.get(p.order) or {}
            top = max(mine, key=lambda e: (e.source == "own", e.similarity or 0.0), default=None)
            prompts.append({
                "arc_number": arc.number, "arc_name": arc.name, "prompt_number": p.number, "prompt_order": p.order,
                "status": status, "songs_needed": needed, "songs_planned": len(mine),
                "save_as": _take_names(mix.track_number, arc.number, p.number, needed,
                                       [e.filename for e in mine if e.source == "own"]),
                "own_songs": sum(e.source == "own" for e in mine),
                "best_song": ({"filename": top.filename, "similarity": top.similarity, "source": top.source}
                              if top else ({"filename": closest.get("filename"),
                                            "similarity": closest.get("similarity"), "source": "closest miss"}
                                           if closest else None)),
                "share_seconds": round(share, 1), "text": p.text, "core_text": p.core_text,
            })
    arcs = [a.to_dict() for a in mix.arcs]
    shortfall = sum(a.shortfall_seconds for a in mix.arcs)
    return {
        "track_number": mix.track_number, "title": plan.title or plan.page_title,
        "songs_to_generate": sum(p["songs_needed"] for p in prompts),
        "shortfall_minutes": round(shortfall / 60.0, 1),
        "target_minutes": round(mix.target_seconds / 60.0, 1),
        "planned_minutes": round(mix.duration_seconds / 60.0, 1),
        "counts": {s: sum(p["status"] == s for p in prompts) for s in STATUSES},
        "good_similarity": good_similarity, "min_similarity": min_similarity,
        "typical_song_seconds": round(typical, 1), "prompts": prompts, "arcs": arcs, "notes": list(mix.notes),
    }


def _take_names(track: int, arc: int, prompt: int, count: int, own_files: list[str]) -> list[str]:
    """File names for the new takes, after the takes this prompt already has, so they count as its own songs."""
    from lofi_pipeline.core.naming import parse_song_filename, song_filename

    used = {n.take for n in map(parse_song_filename, own_files) if n is not None and n.take}
    free = (chr(c) for c in range(ord("a"), ord("z") + 1) if chr(c) not in used)
    return [song_filename(arc=arc, prompt=prompt, track=track, take=t) for t, _ in zip(free, range(count))]


def _cell(text: Any, limit: int = 60) -> str:
    s = " ".join(str(text or "").split()).replace("|", "\\|")
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _sim(value: Any) -> str:
    return "—" if value is None else f"{float(value):.2f}"


def gap_report_markdown(report: Mapping[str, Any]) -> str:
    """``gaps.md``: the headline, a row per prompt and a row per arc."""
    c = report["counts"]
    lines = [f"# Gaps — Track {report['track_number']}" + (f": {report['title']}" if report.get("title") else ""),
             "",
             f"**Songs to generate: {report['songs_to_generate']}** · {c['covered']} covered, {c['weak']} weak, "
             f"{c['missing']} missing · planned {report['planned_minutes']} of {report['target_minutes']} min"
             + (f" · **{report['shortfall_minutes']} min short** even with repeats"
                if report["shortfall_minutes"] else ""),
             "", "| arc | # | status | new songs | planned | best song | sim | prompt |",
             "|---|---|---|---|---|---|---|---|"]
    for p in report["prompts"]:
        b = p.get("best_song") or {}
        lines.append(f"| {p['arc_number']} | {p['prompt_number']} | {p['status']} | {p['songs_needed']} | "
                     f"{p['songs_planned']} | {_cell(b.get('filename') or '—', 30)} | {_sim(b.get('similarity'))} | "
                     f"{_cell(p.get('core_text') or p.get('text'))} |")
    lines += ["", "| arc | direction | target min | planned min | songs (own) | repeats | new songs to drop repeats "
              "| compatible | tempo step |", "|---|---|---|---|---|---|---|---|---|"]
    for a in report["arcs"]:
        share = "—" if a.get("compatible_share") is None else f"{a['compatible_share'] * 100:.0f}%"
        step = "—" if a.get("mean_tempo_step") is None else f"{a['mean_tempo_step']:.1f} BPM"
        lines.append(f"| {a['arc_number']} {_cell(a['arc_name'], 30)} | {a['direction']} | "
                     f"{a['target_seconds'] / 60:.1f} | {a['planned_seconds'] / 60:.1f} | "
                     f"{a['songs']} ({a['own_songs']}) | {a['repeats']} | {a['songs_to_remove_repeats']} | "
                     f"{share} | {step} |")
    if report.get("notes"):
        lines += ["", *[f"- {n}" for n in report["notes"]]]
    return "\n".join(lines) + "\n"


def remaining_prompts_markdown(plan: TrackPlan, report: Mapping[str, Any]) -> str:
    """Only the prompts that need new songs, full Suno text, with the number of takes to make."""
    needy = [p for p in report["prompts"] if p["songs_needed"] > 0]
    lines = [f"# Remaining prompts — Track {report['track_number']}", "",
             f"{report['songs_to_generate']} song(s) to generate for {len(needy)} prompt(s).", ""]
    current = None
    for p in needy:
        if p["arc_number"] != current:
            current = p["arc_number"]
            lines += [f"## Arc {p['arc_number']}: {p['arc_name']}", ""]
        lines += [f"### Prompt {p['prompt_number']} — make {p['songs_needed']} take(s) ({p['status']})", "",
                  p["text"], "", "Save as: " + ", ".join(p.get("save_as") or []), ""]
    if not needy:
        lines.append("Every prompt is covered.")
    return "\n".join(lines).rstrip() + "\n"


def write_gap_files(report: Mapping[str, Any], plan: TrackPlan, folder: str | Path) -> dict[str, Path]:
    folder = Path(folder)
    return {
        "json": write_text_atomic(folder / GAP_FILES["json"], json.dumps(report, indent=2, ensure_ascii=False,
                                                                          default=str) + "\n"),
        "markdown": write_text_atomic(folder / GAP_FILES["markdown"], gap_report_markdown(report)),
        "remaining": write_text_atomic(folder / GAP_FILES["remaining"], remaining_prompts_markdown(plan, report)),
    }
