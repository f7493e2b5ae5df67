"""Chapters and the YouTube description of a rendered mix.

One chapter per arc by default, titled with the arc's name (``0:00 Golden Hour
Warmth``); ``per_song=True`` adds a chapter per song titled from the arc and
its place in it (``Golden Hour Warmth · 2``), never a file name. YouTube's
rules hold: the first chapter at 0:00, at least three, each at least 10 s.
"""

from __future__ import annotations

import math

from lofi_pipeline.core.models import TrackPlan

MIN_CHAPTER_SECONDS = 10.0
MIN_CHAPTERS = 3
TAGS_LIMIT = 500  # YouTube's limit on the tags field, in characters


def format_timestamp(seconds: float) -> str:
    """``M:SS`` below one hour, ``H:MM:SS`` from one hour."""
    s = int(math.floor(seconds + 1e-6))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def chapters_for_render(render_plan, plan: TrackPlan | None = None, *, per_song: bool = False
                        ) -> list[tuple[float, str]]:
    """(start seconds, title) chapters of a :class:`~lofi_pipeline.core.render.RenderPlan`.

    A chapter starts halfway through the crossfade into its first song. With
    fewer than three arcs the songs of the arcs become chapters too, so the
    list is valid on YouTube whenever the mix allows it (≥ 30 s).
    """
    total = render_plan.total_seconds
    names = {a.number: a.name for a in plan.arcs} if plan else {}
    marks: list[tuple[float, str, bool]] = []  # (time, title, is_arc_start)
    seen_arc = None
    counter: dict[int, int] = {}
    for e in render_plan.entries:
        arc = e.song.arc_number
        name = (names.get(arc) or e.song.arc_name or f"Arc {arc}").strip() or f"Arc {arc}"
        counter[arc] = counter.get(arc, 0) + 1
        t = 0.0 if not marks else math.floor(e.start_seconds + e.fade_in_seconds / 2)
        if arc != seen_arc:
            marks.append((t, name, True))
            seen_arc = arc
        else:
            marks.append((t, f"{name} · {counter[arc]}", False))
    arcs_only = [m for m in marks if m[2]]
    wanted = marks if per_song or len(_spaced(arcs_only, total)) < MIN_CHAPTERS else arcs_only
    return [(t, title) for t, title, _ in _spaced(wanted, total)]


def _spaced(marks: list[tuple[float, str, bool]], total: float) -> list[tuple[float, str, bool]]:
    """Drop chapters closer than 10 s to the previous one or to the end (arc starts win over songs)."""
    out: list[tuple[float, str, bool]] = []
    for m in marks:
        if out and (m[0] - out[-1][0] < MIN_CHAPTER_SECONDS or total - m[0] < MIN_CHAPTER_SECONDS):
            if m[2] and not out[-1][2] and len(out) > 1 and m[0] - out[-2][0] >= MIN_CHAPTER_SECONDS:
                out[-1] = m  # an arc start replaces a song chapter just before it
            continue
        out.append(m)
    return out


def chapters_text(chapters: list[tuple[float, str]]) -> str:
    return "".join(f"{format_timestamp(t)} {title}\n" for t, title in chapters)


def youtube_text(plan: TrackPlan, chapters: list[tuple[float, str]]) -> str:
    """``youtube.txt``: description, chapters, visible hashtags, then the hidden tags as one comma list."""
    parts = []
    if plan.description:
        parts.append(plan.description.strip())
    if len(chapters) >= MIN_CHAPTERS:
        parts.append(chapters_text(chapters).rstrip())
    else:
        parts.append("(no chapters: YouTube needs at least three, 10 s apart)")
    if plan.visible_hashtags:
        parts.append(" ".join(t if t.startswith("#") else f"#{t}" for t in plan.visible_hashtags))
    tags: list[str] = []
    for tag in (t.strip().lstrip("#") for t in plan.hidden_tags):
        if tag and len(", ".join(tags + [tag])) <= TAGS_LIMIT:
            tags.append(tag)
    parts.append("Tags (paste into YouTube's tags field):\n" + ", ".join(tags))
    return "\n\n".join(parts) + "\n"
