"""The producer's loop over the library: match → plan → gaps → prepare → render → publish.

Each function reads what the previous stage stored in the library, calls the
pure core (matching, mixplan, gaps, prepare, render) and stores its own
result, so the Dagster assets and the CLI stay thin and a stage never
recomputes another stage's result with other settings. No Dagster here.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from lofi_pipeline.core.catalog import flagged
from lofi_pipeline.core.errors import ConfigError, LofiError, RenderError
from lofi_pipeline.core.library import Library
from lofi_pipeline.core.models import SelectedSong, TrackPlan, is_missing

TEST_RENDER_SECONDS = 300.0
MAX_RENDER_HOURS = 12.0


def require_plan(lib: Library, track_number: int) -> TrackPlan:
    plan = lib.load_plan(track_number)
    if plan is None:
        raise LofiError(f"track {track_number}: no plan in the library; run `lofi import --track "
                        f"{track_number} --page …` first")
    plan.track_number = track_number  # the partition is the track number files are filed under
    return plan


# --------------------------------------------------------------------------- matching
def match_track(lib: Library, track_number: int, *, query: dict[str, Any], weights: dict[str, float],
                recent_tracks: int, encode: Callable[[list[str]], np.ndarray]
                ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Top-k songs per prompt and each prompt's closest song, for ``query`` (see MatchingResource)."""
    from lofi_pipeline.core.embedding import DIMENSIONS, MODEL_NAME
    from lofi_pipeline.core.matching import MatchWeights, QueryFilters, prompt_query_texts, query_track_with_best
    from lofi_pipeline.core.tags import split_tag_filters

    plan = require_plan(lib, track_number)
    songs, matrix = lib.song_matrix(MODEL_NAME, recent_tracks=recent_tracks)
    keep = ~flagged(songs)  # silence and very long files are no match for any prompt
    songs, matrix = songs[keep].reset_index(drop=True), matrix[keep.to_numpy()]
    texts = prompt_query_texts(plan)
    pvecs = encode(texts) if texts else np.zeros((0, DIMENSIONS), np.float32)
    vibe, mood = split_tag_filters(query.get("tags") or [])
    filters = QueryFilters(bpm_min=query.get("bpm_min") or None, bpm_max=query.get("bpm_max") or None,
                           key=query.get("key") or None, arc=query.get("arc") or None,
                           unused_only=bool(query.get("unused_only")), vibe_tags=vibe, mood_keywords=mood)
    # Songs made for this track are offered too: the plan puts a prompt's own songs first.
    matches, best = query_track_with_best(plan, pvecs, songs, matrix, weights=MatchWeights.from_mapping(weights),
                                          top_k=int(query["top_k"]), min_similarity=float(query["min_similarity"]),
                                          filters=filters, exclude_track=None)
    cols = ["prompt_order", "arc_number", "prompt_number", "rank", "song_id", "filename", "score",
            "similarity", "arc_score", "bpm_score", "key_score", "usage_score", "bpm_weight", "key_weight"]
    frame = matches[cols].copy() if len(matches) else pd.DataFrame(columns=cols)
    stats = {"prompts": len(plan.prompts), "prompts_matched": int(frame["prompt_order"].nunique()),
             "matches": len(frame), "library_songs": len(songs)}
    return frame, best, stats


# --------------------------------------------------------------------------- mix plan
def entries_frame(mix) -> pd.DataFrame:
    """A MixPlan's entries as rows of ``mix_plan_entries``."""
    from dataclasses import asdict

    return pd.DataFrame([asdict(e) for e in mix.entries])


def plan_track(lib: Library, track_number: int, *, duration_minutes: float | None, allocation: str,
               max_repeats: int, min_similarity: float, crossfade_seconds: float, store: bool = True,
               reuse_stored: bool = False):
    """Plan the mix from the stored matches and songs; store it (the one plan) unless ``store`` is False.

    The target is ``duration_minutes``; else, with ``reuse_stored``, the stored plan's target (a
    refresh after new songs keeps the length the producer planned with `lofi query --duration`);
    else the page's duration.
    """
    from lofi_pipeline.core.mixplan import plan_mix

    plan = require_plan(lib, track_number)
    stored = lib.load_mix_plan(track_number) if reuse_stored and not duration_minutes else None
    planned = stored[0]["target_seconds"] / 60.0 if stored and stored[0].get("target_seconds") else None
    minutes = duration_minutes or planned or plan.duration_minutes or 60.0
    mix = plan_mix(plan, track_number=track_number, songs=usable_songs(lib), matches=lib.load_matches(track_number),
                   target_seconds=minutes * 60.0, crossfade_seconds=crossfade_seconds, allocation=allocation,
                   max_repeats=max_repeats, min_similarity=min_similarity)
    if not store:
        return None, mix
    header = {"target_seconds": mix.target_seconds, "duration_seconds": mix.duration_seconds,
              "crossfade_seconds": crossfade_seconds, "allocation": allocation, "max_repeats": max_repeats,
              "query_json": lib.load_query(track_number) or {}, "summary_json": mix.summary()}
    plan_id = lib.replace_mix_plan(track_number, header, entries_frame(mix))
    return plan_id, mix


def usable_songs(lib: Library) -> pd.DataFrame:
    """The library's songs a plan may use: flagged audio (silence, very long files) is left out."""
    songs = lib.songs()
    return songs[~flagged(songs)].reset_index(drop=True)


def stored_plan(lib: Library, track_number: int, *, need_songs: bool = True) -> tuple[dict[str, Any], pd.DataFrame]:
    stored = lib.load_mix_plan(track_number)
    if stored is None or (need_songs and stored[1].empty):
        raise LofiError(f"track {track_number}: no mix plan yet; run `lofi query --track {track_number}` first")
    return stored


def selected_songs(entries: pd.DataFrame) -> list[SelectedSong]:
    """Plan entries as the render's song list (one per placed entry, repeats included)."""
    def num(v):
        return None if is_missing(v) else v

    return [SelectedSong(order=int(r.position), arc_number=int(r.arc_number), arc_name=r.arc_name or "",
                         song_id=r.song_id, path=r.path, filename=r.filename,
                         duration_seconds=float(r.length_seconds),
                         prompt_number=None if num(r.prompt_number) is None else int(r.prompt_number),
                         score=num(r.score), similarity=num(r.similarity), loudness_lufs=num(r.loudness_lufs),
                         repeat=int(r.repeat) > 0, repeat_index=int(r.repeat), source=r.source or "")
            for r in entries.itertuples()]


# --------------------------------------------------------------------------- gaps
def report_gaps(lib: Library, track_number: int, *, folder: Path, good_similarity: float,
                min_similarity: float) -> tuple[dict[str, Any], dict[str, Path]]:
    """The gap report of the stored plan: stored in the library and written as files."""
    from lofi_pipeline.core.gaps import build_gap_report, write_gap_files
    from lofi_pipeline.core.mixplan import MixPlan

    plan = require_plan(lib, track_number)
    header, entries = stored_plan(lib, track_number, need_songs=False)
    mix = MixPlan.from_stored(header, entries)
    report = build_gap_report(plan, mix, lib.load_matches(track_number), good_similarity=good_similarity,
                              min_similarity=min_similarity, best=lib.load_best(track_number))
    report["plan_id"] = header["plan_id"]
    report["planned_at"] = str(header["planned_at"])
    lib.save_gap_report(track_number, header["plan_id"], report)
    return report, write_gap_files(report, plan, folder)


# --------------------------------------------------------------------------- prepare-render
def prepare_track(lib: Library, track_number: int, *, tracks_dir: str | Path, mode: str,
                  crossfade_seconds: float):
    """Scaffold Tracks/{N}/ and place the stored plan's songs (each once) in mix order.

    With ``mode="move"`` the library's file locations follow the moved files in
    the same step, so the next plan and render find every song.
    """
    from lofi_pipeline.core.prepare import prepare_render_folder
    from lofi_pipeline.core.trackdir import scaffold_track, track_dir_for

    plan = require_plan(lib, track_number)
    header, entries = stored_plan(lib, track_number)
    scaffold_track(Path(tracks_dir), plan)
    track_dir = track_dir_for(Path(tracks_dir), track_number)
    first_plays = selected_songs(entries[entries["repeat"] == 0])
    _resolve_paths(lib, first_plays)
    remaining = track_dir / "metadata" / "remaining-prompts.md"
    try:
        result = prepare_render_folder(track_dir, first_plays, mode=mode, crossfade_seconds=crossfade_seconds,
                                       remaining_prompts_md=remaining.read_text() if remaining.exists() else None,
                                       plan_id=header["plan_id"])
    except RenderError as exc:  # stopped midway (disk full...): what moved before it has moved
        if getattr(exc, "partial", None) is not None:
            lib.move_song_files(_new_locations(exc.partial))
        raise
    lib.move_song_files(_new_locations(result))
    if result.missing:
        raise LofiError(f"track {track_number}: {len(result.missing)} planned song(s) not found, e.g. "
                        f"{result.missing[0].source}; re-import the folder they are in, then run "
                        f"`lofi query --track {track_number}` again")
    return result, header["plan_id"]


def _new_locations(result) -> dict[str, str]:
    """Old path -> new path of every placed song whose source is gone: moved now, or by an
    earlier move that was killed before the library heard of it (found in place this time)."""
    return {p.source: p.dest for p in result.placed
            if p.action == "moved" or (p.action == "unchanged" and not Path(p.source).exists())}


def _resolve_paths(lib: Library, songs: list[SelectedSong]) -> None:
    """Point each song at a file of it that exists (a moved or copied song has several)."""
    locations = lib.song_locations([s.song_id for s in songs])
    for s in songs:
        if not Path(s.path).is_file():
            s.path = next((p for p in locations.get(s.song_id, []) if Path(p).is_file()), s.path)


# --------------------------------------------------------------------------- render
def render_target_seconds(duration: str) -> tuple[str, float | None]:
    """``test`` → ("test", 300 s), ``auto`` → ("auto", None: the whole plan), a number → ("hours", h·3600)."""
    d = (duration or "").strip().lower()
    if d == "test":
        return "test", TEST_RENDER_SECONDS
    if d == "auto":
        return "auto", None
    try:
        hours = float(d)
    except ValueError:
        raise ConfigError(f"--duration '{duration}': expected test, auto or a number of hours") from None
    if not 0 < hours <= MAX_RENDER_HOURS:
        raise ConfigError(f"--duration '{duration}': hours must be more than 0 and at most {MAX_RENDER_HOURS:g}")
    return "hours", hours * 3600.0


def render_track(lib: Library, track_number: int, *, duration: str, tracks_dir: str | Path,
                 options: dict[str, Any], allow_missing: bool = False,
                 on_progress: Callable[[float], None] | None = None,
                 on_phase: Callable[[str, int, int], None] | None = None,
                 song_chapters: bool = False) -> tuple[dict[str, Any], Path]:
    """Render the stored plan exactly (``auto``), its first 5 minutes (``test``), or a re-plan to H hours.

    The report lists every placed entry and says which plan it rendered; the
    render is recorded in the library (publish counts its songs). ``on_phase``
    is passed to :func:`render_mix` (loudness, background, mix, check).
    """
    from lofi_pipeline.core.chapters import chapters_for_render, youtube_text
    from lofi_pipeline.core.files import write_json_atomic, write_text_atomic
    from lofi_pipeline.core.render import build_render_plan, find_background, render_mix
    from lofi_pipeline.core.trackdir import track_dir_for

    mode, target = render_target_seconds(duration)
    plan = require_plan(lib, track_number)
    header, entries = stored_plan(lib, track_number)
    plan_id, plan_target = header["plan_id"], header["target_seconds"]
    if mode == "hours":
        _, mix = plan_track(lib, track_number, duration_minutes=target / 60.0, allocation=header["allocation"],
                            max_repeats=int(header["max_repeats"]), min_similarity=options["min_similarity"],
                            crossfade_seconds=options["crossfade_seconds"], store=False)
        entries = entries_frame(mix)
        plan_id, plan_target, target = f"{plan_id}+replan-{target / 3600:g}h", target, None
    songs = selected_songs(entries)
    _resolve_placed(lib, track_dir_for(Path(tracks_dir), track_number), songs)
    missing = [s for s in songs if not Path(s.path).is_file()]
    if missing and not allow_missing:
        raise RenderError(f"track {track_number}: {len({s.song_id for s in missing})} planned song(s) not "
                          f"found, e.g. {missing[0].path}; run `lofi prepare-render --track {track_number}` "
                          "or pass --allow-missing")
    songs = [s for s in songs if Path(s.path).is_file()]
    render_plan = build_render_plan(songs, target_seconds=target, crossfade_seconds=options["crossfade_seconds"])
    track_dir = track_dir_for(Path(tracks_dir), track_number)
    render_id = datetime.now().strftime("%Y%m%d_%H%M%S")
    out_dir = track_dir / "Rendered" / f"output_{render_id}"
    chapters = chapters_for_render(render_plan, plan, per_song=song_chapters)
    # Texts beside the video first, the video last (render_mix renames mix.mp4 into place at its end).
    write_text_atomic(out_dir / "youtube.txt", youtube_text(plan, chapters))
    report = render_mix(render_plan, output_dir=out_dir, background=find_background(track_dir / "Video"),
                        ffmpeg_exe=options["ffmpeg_exe"], target_lufs=options["target_lufs"],
                        true_peak_db=options["true_peak_db"], fade_in=options["fade_in_seconds"],
                        fade_out=options["fade_out_seconds"], width=options["width"], height=options["height"],
                        chapters=chapters, on_progress=on_progress, on_phase=on_phase).to_dict()
    # The report says which plan it rendered and that plan's target (auto renders the whole plan).
    report.update({"plan_id": plan_id, "render_mode": mode, "plan_target_seconds": plan_target,
                   "skipped_missing": [s.path for s in missing]})
    if report.get("target_seconds") is None:
        report["target_seconds"] = plan_target
    write_json_atomic(out_dir / "render_report.json", report)
    lib.record_render(track_number, render_id=f"{track_number}-{render_id}", plan_id=plan_id,
                      output_dir=str(out_dir), report=report)
    return report, out_dir


def _resolve_placed(lib: Library, track_dir: Path, songs: list[SelectedSong]) -> None:
    """Use the copies prepare-render placed in Tracks/{N}/Songs where they exist, else the library's files."""
    import json

    placed: dict[str, str] = {}
    plan_file = track_dir / "render_plan.json"
    if plan_file.exists():
        for e in json.loads(plan_file.read_text()).get("songs", []):
            if e.get("status") not in ("conflict", "missing") and (track_dir / e["file"]).is_file():
                placed[e["song_id"]] = str(track_dir / e["file"])
    for s in songs:
        if s.song_id in placed:
            s.path = placed[s.song_id]
    _resolve_paths(lib, [s for s in songs if s.song_id not in placed])
