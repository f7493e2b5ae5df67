"""The `lofi` command line: help, one-line errors, JSON contracts, and the commands over the demo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lofi_pipeline.cli import app
from lofi_pipeline.demo import NEW_TRACK, demo_pages

runner = CliRunner()

COMMANDS = ["init", "import", "embed", "query", "gaps", "scaffold", "duration", "prepare-render", "render",
            "post-render", "publish", "stats", "demo", "analyze", "notion parse", "notion show", "ui"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = runner.invoke(app, [*command.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_errors_are_one_line_without_traceback(lofi_home):
    result = runner.invoke(app, ["scaffold", "--track", "999"])
    assert result.exit_code == 1
    assert "track 999" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["render", "--track", "1", "--duration", "forever"])
    assert result.exit_code == 1 and "--duration 'forever'" in result.output
    result = runner.invoke(app, ["import", "--track", "5", "--page", str(lofi_home.home / "missing.md")])
    assert result.exit_code == 1
    assert "missing.md" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["import", "--track", "101", "--page", str(demo_pages()[101]),
                                 "--songs-dir", str(lofi_home.home / "no_such_folder")])
    assert result.exit_code == 1 and "no_such_folder" in result.output


def test_init_creates_settings_and_schema(lofi_home):
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    assert (lofi_home.home / "lofi.yaml").exists()
    assert Path(lofi_home.duckdb_path).exists()
    assert (Path(lofi_home.dagster_home) / "dagster.yaml").exists()


def test_notion_parse_json_contract():
    page = demo_pages()[101]
    result = runner.invoke(app, ["notion", "parse", str(page), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in ["track_number", "title", "output_filename", "duration_minutes", "mood_arc",
                "visible_hashtags", "hidden_tags", "anchor_phrase", "arcs", "warnings"]:
        assert key in data
    assert data["track_number"] == 101
    arc = data["arcs"][0]
    assert set(arc) >= {"number", "name", "bpm_range", "prompts"}
    assert set(arc["prompts"][0]) >= {"number", "text", "checked"}
    assert arc["bpm_range"] is None or len(arc["bpm_range"]) == 2


def test_analyze_json_lines_and_exit_code(tmp_path):
    from lofi_pipeline.core.synth import synthesize_song, write_audio

    write_audio(synthesize_song(bpm=80, key="A minor", seconds=8, seed=1), 22050, tmp_path / "A_1_1_1a.wav")
    (tmp_path / "broken.mp3").write_text("not audio at all")
    result = runner.invoke(app, ["analyze", str(tmp_path), "--json", "--workers", "1"])
    assert result.exit_code == 1  # one file failed
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert len(lines) == 2
    by_name = {Path(d["path"]).name: d for d in lines}
    good, bad = by_name["A_1_1_1a.wav"], by_name["broken.mp3"]
    assert set(good) == {"path", "duration_seconds", "bpm", "bpm_confidence", "key", "key_confidence",
                         "camelot", "loudness_lufs", "true_peak_db", "content_hash", "error"}
    assert good["error"] is None and abs(good["duration_seconds"] - 8) < 0.2
    assert bad["error"] and bad["bpm"] is None


@pytest.mark.slow
def test_commands_over_the_demo_library(demo_home, monkeypatch, tmp_path):
    settings, _ = demo_home
    monkeypatch.setenv("LOFI_HOME", str(settings.home))
    out = tmp_path / "q.json"
    result = runner.invoke(app, ["query", "--track", str(NEW_TRACK), "--output", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert set(data) >= {"track_title", "total_prompts", "total_matches", "results"}
    first = next(iter(data["results"].values()))[0]
    assert set(first) >= {"prompt_number", "prompt_text", "matches"}
    some = [m for rows in data["results"].values() for r in rows for m in r["matches"]]
    assert some and set(some[0]) >= {"filename", "score", "similarity", "bpm", "key", "arc", "duration"}
    assert all(m["similarity"] >= 0.6 for m in some)

    result = runner.invoke(app, ["gaps", "--track", str(NEW_TRACK)])
    assert result.exit_code == 0, result.output
    assert "missing" in result.output and "songs to generate" in result.output
    as_json = runner.invoke(app, ["gaps", "--track", str(NEW_TRACK), "--json"])
    data = json.loads(as_json.stdout)
    assert set(data) >= {"track_number", "songs_to_generate", "shortfall_minutes", "prompts"}
    assert data["songs_to_generate"] == sum(p["songs_needed"] for p in data["prompts"])
    assert {p["status"] for p in data["prompts"]} <= {"covered", "weak", "missing"}

    result = runner.invoke(app, ["duration", "--track", "101"])
    assert result.exit_code == 0 and "on disk" in result.output

    result = runner.invoke(app, ["stats"])
    assert result.exit_code == 0 and "songs" in result.output

    url = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    first_run = runner.invoke(app, ["publish", "--track", str(NEW_TRACK), "--url", url])
    assert first_run.exit_code == 0, first_run.output
    from lofi_pipeline.core.library import Library

    lib = Library(settings.duckdb_path)
    used = lib.scalar("SELECT sum(times_used) FROM songs")
    again = runner.invoke(app, ["publish", "--track", str(NEW_TRACK), "--url", url])
    assert again.exit_code == 0
    assert lib.scalar("SELECT sum(times_used) FROM songs") == used > 0  # counted once per song per track
    bad = runner.invoke(app, ["publish", "--track", str(NEW_TRACK), "--url", "https://vimeo.com/1"])
    assert bad.exit_code == 1
