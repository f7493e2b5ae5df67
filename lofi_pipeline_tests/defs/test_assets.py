"""Asset-level tests: `materialize` slices of the graph on a tmp_path library (real DuckDB, audio, model)."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from lofi_pipeline.core.ffmpeg import find_ffmpeg
from lofi_pipeline.core.synth import synthesize_song, write_audio
from lofi_pipeline.defs.assets import (
    audio_features,
    gap_report,
    mix_plan,
    notion_pages,
    song_embeddings,
    songs_table,
    track_matches,
    track_plans,
)
from lofi_pipeline.defs.resources import build_resources

SR = 22050


@pytest.fixture
def library_home(lofi_home):
    """Track 101's demo page, one real song and one silent (beatless) file in Tracks/101/Songs."""
    page = lofi_home.home / "track_101.md"
    page.write_text(resources.files("lofi_pipeline").joinpath("demo_pages/track_101.md").read_text())
    songs = Path(lofi_home.tracks_dir) / "101" / "Songs"
    songs.mkdir(parents=True)
    ffmpeg = find_ffmpeg()
    y = synthesize_song(bpm=80.0, key="A minor", seconds=12, sr=SR, seed=7, drums=True, lowpass_hz=6000)
    write_audio(y, SR, songs / "A_1_1_101a.wav", ffmpeg_exe=ffmpeg)
    write_audio(np.zeros(SR * 12, np.float32), SR, songs / "A_1_2_101a.wav", ffmpeg_exe=ffmpeg)
    return lofi_home, page, songs


def _materialize(settings, assets, run_config=None):
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("tracks", ["101"])
    result = dg.materialize(assets, partition_key="101", resources=build_resources(settings), instance=instance,
                            run_config=run_config or {}, raise_on_error=False)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return result


def _meta(result, asset):
    mats = result.asset_materializations_for_node(asset)
    return {k: getattr(v, "value", v) for k, v in mats[-1].metadata.items()}


def test_beatless_song_and_known_content_import(library_home):
    settings, page, songs = library_home
    cfg = {"ops": {"notion_pages": {"config": {"page": str(page)}}}}
    first = _materialize(settings, [notion_pages, track_plans, audio_features, songs_table], cfg)
    assert _meta(first, "audio_features")["analysed"] == 2
    lib = build_resources(settings)["library"].library()
    # the silent file has no tempo: NULL in DuckDB, and the BPM histogram of songs_table still worked
    assert lib.scalar("SELECT count(*) FROM songs WHERE bpm IS NULL") == 1
    header, _rule, *rows = _meta(first, "songs_table")["bpm_distribution"].splitlines()
    assert [c.strip() for c in header.strip("|").split("|")] == ["bpm", "songs", "low confidence"]
    assert len(rows) == 1 and "–" in rows[0]  # one bin ("70–79"): the silent song has none

    # Every file a copy of a known song (a prepare-render copy, a touched file): nothing to analyse, no crash.
    shutil.copy2(songs / "A_1_1_101a.wav", songs / "copy_of_A_1_1.wav")
    (songs / "A_1_2_101a.wav").touch()
    again = _materialize(settings, [audio_features, songs_table])
    feats = _meta(again, "audio_features")
    assert feats["analysed"] == 0 and feats["known_content"] == 2 and feats["errors"] == 0
    assert lib.scalar("SELECT count(*) FROM songs") == 2
    assert lib.scalar("SELECT count(*) FROM song_files") == 3  # the copy is one more place of the same song


@pytest.mark.slow
def test_matches_plan_and_gaps_are_stored_hand_offs(library_home):
    settings, page, _ = library_home
    cfg = {"ops": {"notion_pages": {"config": {"page": str(page)}}}}
    _materialize(settings, [notion_pages, track_plans, audio_features, songs_table, song_embeddings], cfg)
    result = _materialize(settings, [track_matches, mix_plan, gap_report])
    lib = build_resources(settings)["library"].library()
    header, entries = lib.load_mix_plan(101)
    report = lib.load_gap_report(101)
    # the gap report names the plan it was built from, and reads the closest songs from prompt_best
    assert report["plan_id"] == header["plan_id"] == _meta(result, "mix_plan")["plan_id"]
    assert len(lib.load_best(101)) == len(lib.load_plan(101).prompts)
    # every stored match says how much its BPM and key counted (1.0 = full, less for a guess)
    weights = lib.df("SELECT bpm_weight, key_weight FROM matches WHERE track_number = 101")
    assert len(weights) and weights.notna().all().all() and weights.le(1.0).all().all()
    # the silent song is a song of this track's prompt 2: own songs count for their prompt
    own = entries[entries["source"] == "own"]
    assert set(own["prompt_number"]) <= {1, 2} and len(own) >= 1
    statuses = {p["prompt_number"]: p["status"] for p in report["prompts"]}
    assert statuses[3] == "missing" and report["songs_to_generate"] >= 1


@pytest.mark.slow
def test_a_refresh_keeps_the_planned_length(library_home):
    """A plan made for 20 minutes stays a 20-minute plan when new songs refresh it; a new query resets it."""
    settings, page, _ = library_home
    cfg = {"ops": {"notion_pages": {"config": {"page": str(page)}}}}
    _materialize(settings, [notion_pages, track_plans, audio_features, songs_table, song_embeddings, track_matches],
                 cfg)
    lib = build_resources(settings)["library"].library()
    _materialize(settings, [mix_plan], {"ops": {"mix_plan": {"config": {"duration_minutes": 20.0}}}})
    assert lib.load_mix_plan(101)[0]["target_seconds"] == 1200.0
    _materialize(settings, [mix_plan])  # what an import of new songs runs
    assert lib.load_mix_plan(101)[0]["target_seconds"] == 1200.0
    _materialize(settings, [mix_plan], {"ops": {"mix_plan": {"config": {"reuse_stored": False}}}})
    assert lib.load_mix_plan(101)[0]["target_seconds"] == lib.load_plan(101).duration_minutes * 60
