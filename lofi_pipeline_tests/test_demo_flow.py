"""The demo, end to end, on the real stack: import → embeddings → query → gaps → prepare → render."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from lofi_pipeline.core.library import Library
from lofi_pipeline.demo import NEW_TRACK

pytestmark = pytest.mark.slow


def test_demo_imports_every_song_and_plan(demo_home):
    settings, summary = demo_home
    lib = Library(settings.duckdb_path)
    assert lib.track_numbers() == [101, 102, 103, NEW_TRACK]
    files = sorted(Path(settings.tracks_dir).glob("10[123]/Songs/*.mp3"))
    assert summary["songs imported"] == len(files) >= 25
    songs = lib.df("SELECT * FROM songs")
    assert songs.bpm.notna().mean() > 0.8 and songs.key.notna().all()
    assert songs.text_from_prompt.all(), "every demo song resolves to the prompt it was made from"
    assert lib.scalar("SELECT count(*) FROM song_embeddings") == len(songs)
    # Parquet exports exist and hold the same rows
    import duckdb

    export = Path(settings.export_dir)
    assert duckdb.connect().execute(f"SELECT count(*) FROM '{export / 'songs.parquet'}'").fetchone()[0] == len(songs)
    assert (export / "matches.parquet").exists()


def test_runs_are_recorded_in_the_library_instance(demo_home):
    settings, _ = demo_home
    instance = dg.DagsterInstance.from_config(settings.dagster_home)
    # The test session shares one instance; look at the demo library's own runs.
    runs = [r for r in instance.get_runs() if r.tags.get("lofi/home") == str(settings.home)]
    runs = runs[-6:]  # newest first: the oldest six are the demo itself (4 imports, plan, render)
    jobs = {r.job_name for r in runs}
    assert {"import_job", "plan_job", "render_job"} <= jobs
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    assert set(instance.get_dynamic_partitions("tracks")) >= {"101", "102", "103", str(NEW_TRACK)}


def test_paraphrased_prompts_find_their_songs_and_unrelated_ones_are_gaps(demo_home):
    settings, _ = demo_home
    report = json.loads((Path(settings.tracks_dir) / str(NEW_TRACK) / "metadata" / "gaps.json").read_text())
    statuses = [p["status"] for p in report["prompts"]]
    assert "missing" in statuses, "the unrelated prompts of the new track must be gaps"
    assert statuses.count("covered") + statuses.count("weak") >= len(statuses) // 2
    remaining = (Path(settings.tracks_dir) / str(NEW_TRACK) / "metadata" / "remaining-prompts.md").read_text()
    lib = Library(settings.duckdb_path)
    plan = lib.load_plan(NEW_TRACK)
    gap_orders = {p["prompt_order"] for p in report["prompts"] if p["status"] == "missing"}
    for prompt in plan.prompts:
        if prompt.order in gap_orders:
            assert prompt.text in remaining  # the full Suno text, ready to paste


def test_selection_fills_duration_and_prepares_render_folder(demo_home):
    settings, summary = demo_home
    lib = Library(settings.duckdb_path, home=settings.home)
    header, sel = lib.load_mix_plan(NEW_TRACK)
    plan = lib.load_plan(NEW_TRACK)
    # the demo library is short: the plan says how short, and never repeats a song back to back
    assert header["duration_seconds"] + 60 * sum(a["shortfall_seconds"] for a in header["summary_json"]["arcs"]) / 60 \
        >= plan.duration_minutes * 60 * 0.9
    assert not sel[sel["repeat"] == 0].song_id.duplicated().any()
    assert not (sel.song_id.shift() == sel.song_id).any()
    assert list(sel.arc_number) == sorted(sel.arc_number)  # arcs in page order
    assert sel.groupby("song_id").size().max() <= 1 + header["max_repeats"]  # the repeat cap holds
    # every arc of the demo's longest track plays its own songs and songs at home in that arc
    long_header, long_plan = lib.load_mix_plan(101)
    assert (long_plan["source"] == "own").any()
    assert long_plan.groupby("song_id").size().max() <= 1 + long_header["max_repeats"]
    songs_dir = Path(settings.tracks_dir) / str(NEW_TRACK) / "Songs"
    render_plan = json.loads((songs_dir.parent / "render_plan.json").read_text()) \
        if (songs_dir.parent / "render_plan.json").exists() else json.loads(
            next(songs_dir.parent.rglob("render_plan.json")).read_text())
    assert render_plan
    # prepare-render scaffolded the track folder from the page
    track_dir = Path(settings.tracks_dir) / str(NEW_TRACK)
    assert plan.title in (track_dir / "README.md").read_text()
    assert {"Songs", "Rendered", "Video", "metadata"} <= {p.name for p in track_dir.iterdir()}
    # every song of the plan it was prepared from is placed once (repeats are not copies)
    placed = [e for e in render_plan["songs"] if e["status"] in ("copied", "unchanged", "hardlinked", "moved")]
    assert render_plan["plan_id"] and len(placed) == len({e["song_id"] for e in render_plan["songs"]})
    assert {p.name for p in songs_dir.glob("*.mp3")} >= {Path(e["file"]).name for e in placed}


def test_test_render_has_video_audio_loudness_and_chapters(demo_home):
    from lofi_pipeline.core.ffmpeg import find_ffmpeg
    from lofi_pipeline.core.probe import measure_loudness_ffmpeg, probe_media

    settings, summary = demo_home
    out_dir = Path(summary["render"])
    video = next(out_dir.glob("*.mp4"))
    info = probe_media(video, ffmpeg_exe=find_ffmpeg())
    assert abs(info.duration_seconds - 300) < 1.0
    kinds = sorted(s.type for s in info.streams)
    assert kinds == ["audio", "video"]
    lufs, peak = measure_loudness_ffmpeg(video, ffmpeg_exe=find_ffmpeg())
    assert abs(lufs - (-14.0)) <= 1.0
    assert peak <= -0.5
    chapters = (out_dir / "chapters.txt").read_text().splitlines()
    assert chapters[0].startswith("0:00")


# Hand-written ground truth (lofi_pipeline/demo_pages/README.md): prompt of track 104 →
# the past prompt it paraphrases, as the demo song's file name; None = unrelated (a gap).
PARAPHRASES = {1: "A_1_1_101a.mp3", 2: None, 3: "A_1_2_101a.mp3", 4: "A_2_4_101a.mp3", 5: None,
               6: "A_2_4_103a.mp3", 7: "A_2_3_102a.mp3", 8: None, 9: "A_3_6_102a.mp3",
               10: "A_4_9_101a.mp3", 11: None, 12: "A_5_9_102a.mp3"}


def test_each_paraphrase_finds_its_song_and_unrelated_prompts_find_nothing(demo_home):
    settings, _ = demo_home
    lib = Library(settings.duckdb_path)
    matches = lib.df("SELECT prompt_number, rank, filename, similarity FROM matches WHERE track_number = ?",
                     [NEW_TRACK])
    hits = 0
    for number, expected in PARAPHRASES.items():
        found = matches[matches.prompt_number == number].sort_values("rank")
        if expected is None:
            assert found.empty, f"prompt {number} is unrelated but matched {found.filename.tolist()}"
        else:
            assert expected in found.filename.tolist(), f"prompt {number}: {found.filename.tolist()}"
            hits += found.iloc[0].filename == expected
    assert hits >= 6  # and it is usually the best match
