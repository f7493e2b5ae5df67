"""`lofi demo`: a small synthesized library and a new track, run through the whole pipeline.

Three past tracks (pages written in the real historical formats, songs
synthesized with known tempo and key and named by the convention) and one new
track page. Everything is seeded, so the same songs double as test fixtures.
"""

from __future__ import annotations

import shutil
import zlib
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from lofi_pipeline.core.models import TrackPlan
from lofi_pipeline.settings import Settings

NEW_TRACK = 104
KEYS = ["A minor", "D minor", "E minor", "C major", "F major", "G major", "B minor", "F# minor",
        "D major", "C# minor", "A major", "G minor"]


def demo_pages() -> dict[int, Path]:
    """Packaged demo pages by track number."""
    from lofi_pipeline.core.notion import parse_track_markdown

    pages = {}
    root = resources.files("lofi_pipeline").joinpath("demo_pages")
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".md") and entry.name.lower() != "readme.md":
            plan = parse_track_markdown(entry.read_text(encoding="utf-8"), source=entry.name)
            if plan.track_number is not None:
                pages[plan.track_number] = Path(str(entry))
    return pages


def _seed(*parts: object) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


def demo_song_specs(track: int, plan: TrackPlan) -> list[dict]:
    """One song per prompt: tempo inside the arc's BPM range, a seeded key and length (20–40 s)."""
    from lofi_pipeline.core.naming import song_filename

    specs = []
    for arc in plan.arcs:
        low, high = arc.bpm_range or (70.0, 90.0)
        for prompt in arc.prompts:
            seed = _seed(track, arc.number, prompt.number)
            span = max(high - low, 1.0)
            specs.append({
                "filename": song_filename(arc=arc.number, prompt=prompt.number, track=track, take="a"),
                "bpm": round(low + span * (0.25 + 0.5 * ((seed % 100) / 100)), 1),
                "key": KEYS[seed % len(KEYS)],
                "seconds": 20 + (seed % 21),
                "seed": seed,
                "drums": not (low < 58),  # ambient openers have no drums
            })
    return specs


def build_demo_library(settings: Settings, *, say: Callable[[str], None] = print) -> dict[int, Path]:
    """Write the export pages and synthesized songs under LOFI_HOME (idempotent)."""
    from lofi_pipeline.core.ffmpeg import find_ffmpeg
    from lofi_pipeline.core.notion import parse_track_markdown
    from lofi_pipeline.core.synth import synthesize_song, write_audio

    export = settings.home / "data" / "notion_export"  # inside data/: runtime files, git-ignored
    export.mkdir(parents=True, exist_ok=True)
    ffmpeg = find_ffmpeg(settings.render.get("ffmpeg"))
    written: dict[int, Path] = {}
    for track, src in demo_pages().items():
        target = export / f"Track {track} {_seed('page', track):08x}{_seed('id', track):08x}.md"
        if not target.exists():
            shutil.copyfile(src, target)
        written[track] = target
        if track == NEW_TRACK:
            continue
        plan = parse_track_markdown(target.read_text(encoding="utf-8"), source=str(target))
        songs_dir = Path(settings.tracks_dir) / str(track) / "Songs"
        songs_dir.mkdir(parents=True, exist_ok=True)
        specs = demo_song_specs(track, plan)
        for i, spec in enumerate(specs, 1):
            path = songs_dir / spec["filename"]
            if path.exists():
                continue
            say(f"[progress] synthesize {i}/{len(specs)} {spec['filename']}")
            y = synthesize_song(bpm=spec["bpm"], key=spec["key"], seconds=spec["seconds"], sr=22050,
                                seed=spec["seed"], drums=spec["drums"], lowpass_hz=6000)
            write_audio(y, 22050, path, ffmpeg_exe=ffmpeg)
    return written


def run_demo(settings: Settings, *, render: bool = True,
             say: Callable[[str], None] = print) -> dict[str, object]:
    """Build the demo library and run import → embeddings → query → gaps → prepare → test render."""
    from lofi_pipeline.core.library import Library
    from lofi_pipeline.runner import asset_metadata, run_job

    say(f"demo library in {settings.home}")
    pages = build_demo_library(settings, say=say)
    for track in sorted(pages):
        say(f"importing track {track}")
        run_job(settings, "import_job", partition=track, run_config={"ops": {
            "notion_pages": {"config": {"page": str(pages[track])}}}})
    say(f"planning track {NEW_TRACK}")
    plan_result = run_job(settings, "plan_job", partition=NEW_TRACK)
    matches = asset_metadata(plan_result, "track_matches")
    gaps = asset_metadata(plan_result, "gap_report")
    mix = asset_metadata(plan_result, "mix_plan")
    lib = Library(settings.duckdb_path, home=settings.home)
    metadata = Path(settings.tracks_dir) / str(NEW_TRACK) / "metadata"
    summary: dict[str, object] = {
        "songs imported": lib.library_summary()["library_songs"],
        "prompts (new track)": matches.get("prompts"),
        "prompts matched": matches.get("prompts_matched"),
        "reuse %": round(100 * (matches.get("prompts_matched") or 0) / max(matches.get("prompts") or 1, 1)),
        "songs to generate": gaps.get("songs_to_generate"),
        "mix plan": f"{mix.get('distinct_songs')} songs, {mix.get('repeats')} repeat(s), "
                    f"{mix.get('planned_minutes')} of {mix.get('target_minutes')} min",
        "gap report": str(metadata / "gaps.md"),
        "remaining prompts": str(metadata / "remaining-prompts.md"),
    }
    if render:
        say(f"rendering track {NEW_TRACK} (test mode)")
        rendered = run_job(settings, "render_job", partition=NEW_TRACK,
                           run_config={"ops": {"rendered_mix": {"config": {"duration": "test"}}}})
        summary["render"] = asset_metadata(rendered, "rendered_mix").get("output_dir")
    summary["dagster UI"] = "lofi ui (then open http://127.0.0.1:3000)"
    return summary
