"""Re-imports, bad files and post-render on the demo library (runs after the demo checks)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lofi_pipeline.cli import app
from lofi_pipeline.core.library import Library
from lofi_pipeline.demo import NEW_TRACK
from lofi_pipeline.runner import asset_metadata, run_job

pytestmark = pytest.mark.slow
runner = CliRunner()


def test_reimport_changes_nothing(demo_home):
    settings, _ = demo_home
    lib = Library(settings.duckdb_path)
    before = lib.df("SELECT song_id, bpm, key, updated_at FROM songs ORDER BY song_id")
    result = run_job(settings, "import_job", partition=101)
    feats = asset_metadata(result, "audio_features")
    assert feats["analysed"] == 0 and feats["errors"] == 0
    assert asset_metadata(result, "song_embeddings")["encoded"] == 0
    after = lib.df("SELECT song_id, bpm, key, updated_at FROM songs ORDER BY song_id")
    assert before.equals(after)
    assert lib.scalar("SELECT count(*) FROM prompts WHERE track_number = 101") == 10
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"every_prompted_song_has_embedding": True, "one_embedding_per_song_and_model": True,
                      "no_song_planned_twice": True}


def test_selection_check_runs_with_the_query(demo_home):
    settings, _ = demo_home
    result = run_job(settings, "query_job", partition=NEW_TRACK)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"no_song_planned_twice": True}
    gap_meta = asset_metadata(result, "gap_report")
    assert "Songs to generate" in gap_meta["report"]
    stored = Library(settings.duckdb_path).load_gap_report(NEW_TRACK)
    assert len(stored["prompts"]) == 12 and stored["plan_id"] == gap_meta["plan_id"]
    assert gap_meta["songs_to_generate"] == sum(p["songs_needed"] for p in stored["prompts"])


def test_bad_file_is_reported_and_the_rest_imported(demo_home, monkeypatch):
    settings, _ = demo_home
    monkeypatch.setenv("LOFI_HOME", str(settings.home))
    songs = Path(settings.tracks_dir) / "103" / "Songs"
    bad = songs / "A_1_1_103z.mp3"
    bad.write_text("this is not an mp3")
    good = songs / "B_4_10_103b.mp3"
    shutil.copyfile(next(songs.glob("A_4_*_103a.mp3")), good)  # same content as a known song
    try:
        result = runner.invoke(app, ["import", "--track", "103"])
        assert result.exit_code == 1  # one file failed
        assert "A_1_1_103z.mp3" in result.output
        lib = Library(settings.duckdb_path)
        err = lib.df("SELECT * FROM import_errors WHERE path LIKE '%103z.mp3'")
        assert len(err) == 1 and "text" in err.error[0].lower()
        # The copy is recognised by content: a new file location, not a new song
        assert lib.scalar("SELECT count(*) FROM song_files WHERE path LIKE '%B_4_10_103b.mp3'") == 1
        assert lib.scalar("SELECT count(DISTINCT song_id) FROM song_files") == lib.scalar(
            "SELECT count(*) FROM songs")
        assert bad.exists()  # the user's file is never deleted
    finally:
        bad.unlink()
        good.unlink()


def test_post_render_imports_new_audio_once(demo_home, monkeypatch, tmp_path):
    from lofi_pipeline.core.synth import synthesize_song, write_audio

    settings, _ = demo_home
    monkeypatch.setenv("LOFI_HOME", str(settings.home))
    rendered = Path(settings.tracks_dir) / str(NEW_TRACK) / "Rendered"
    y = synthesize_song(bpm=84, key="D minor", seconds=12, seed=77)
    write_audio(y, 22050, rendered / "A_2_4_104a.mp3")
    lib = Library(settings.duckdb_path)
    before = lib.scalar("SELECT count(*) FROM songs")
    result = runner.invoke(app, ["post-render", "--track", str(NEW_TRACK)])
    assert result.exit_code == 0, result.output
    assert lib.scalar("SELECT count(*) FROM songs") == before + 1
    song = lib.df("SELECT * FROM songs WHERE filename = 'A_2_4_104a.mp3'").iloc[0]
    # Made for prompt 4 (arc 2) of the new track: it means that prompt now
    assert song.text_from_prompt and "upright bass" in song.prompt_text.lower()
    assert lib.scalar("SELECT count(*) FROM song_embeddings WHERE song_id = ?", [song.song_id]) == 1
    again = runner.invoke(app, ["post-render", "--track", str(NEW_TRACK)])
    assert again.exit_code == 0 and lib.scalar("SELECT count(*) FROM songs") == before + 1


def test_notion_show_prints_the_plan(demo_home, monkeypatch):
    settings, _ = demo_home
    monkeypatch.setenv("LOFI_HOME", str(settings.home))
    result = runner.invoke(app, ["notion", "show", str(NEW_TRACK)])
    assert result.exit_code == 0
    plan = Library(settings.duckdb_path).load_plan(NEW_TRACK)
    assert plan.arcs[0].name in result.output


def test_query_filters(demo_home, monkeypatch, tmp_path):
    import json

    settings, _ = demo_home
    monkeypatch.setenv("LOFI_HOME", str(settings.home))
    out = tmp_path / "fast.json"
    result = runner.invoke(app, ["query", "--track", str(NEW_TRACK), "--bpm-min", "80", "--output", str(out)])
    assert result.exit_code == 0, result.output
    found = [m for rows in json.loads(out.read_text())["results"].values() for r in rows for m in r["matches"]]
    assert found and all(m["bpm"] >= 80 for m in found)
    bad = runner.invoke(app, ["query", "--track", str(NEW_TRACK), "--tag", "zither-core"])
    assert bad.exit_code == 1 and "zither-core" in bad.output
    assert runner.invoke(app, ["query", "--track", str(NEW_TRACK)]).exit_code == 0


def test_scaffold_keeps_an_edited_readme_unless_forced(demo_home, monkeypatch):
    settings, _ = demo_home
    monkeypatch.setenv("LOFI_HOME", str(settings.home))
    readme = Path(settings.tracks_dir) / "101" / "README.md"
    first = runner.invoke(app, ["scaffold", "--track", "101"])
    assert first.exit_code == 0 and readme.exists()
    readme.write_text(readme.read_text() + "\nmy own notes\n")
    kept = runner.invoke(app, ["scaffold", "--track", "101"])
    assert "README kept" in kept.output and "my own notes" in readme.read_text()
    forced = runner.invoke(app, ["scaffold", "--track", "101", "--force"])
    assert forced.exit_code == 0 and "my own notes" not in readme.read_text()


def test_prepare_render_again_reports_songs_already_there(demo_home, monkeypatch):
    settings, _ = demo_home
    monkeypatch.setenv("LOFI_HOME", str(settings.home))
    distinct = Library(settings.duckdb_path).scalar(
        'SELECT count(DISTINCT song_id) FROM mix_plan_entries WHERE track_number = ?', [NEW_TRACK])
    # Earlier tests may have changed the selection: the first run places what is new,
    # the second finds everything in place.
    assert runner.invoke(app, ["prepare-render", "--track", str(NEW_TRACK)]).exit_code == 0
    result = runner.invoke(app, ["prepare-render", "--track", str(NEW_TRACK)])
    assert result.exit_code == 0, result.output
    assert f"{distinct} songs: 0 placed, {distinct} already there, conflicts: none" in result.output
