"""The producer's loop, twice in a row, on a library of its own (issue 12, Deliver 10).

past tracks → a new page → query → gaps → generate exactly what remaining-prompts.md
asks for → import → the gaps close and the new songs are in the plan → prepare-render
→ render the plan → the report is the plan → publish counts the rendered songs once.
The second pass plans a track that reuses a song the first pass generated.
Everything is real: the CLI (typer's CliRunner) launching Dagster jobs, DuckDB,
synthesized mp3s, ffmpeg.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lofi_pipeline.cli import app
from lofi_pipeline.core.identity import content_hash
from lofi_pipeline.core.library import Library
from lofi_pipeline.core.naming import parse_song_filename
from lofi_pipeline_tests.small_library import (
    SMALL_RENDER_SETTINGS,
    make_song,
    make_track_songs,
    write_page,
)

pytestmark = pytest.mark.slow
runner = CliRunner()

SONG_SECONDS = 30.0
MIX_MINUTES = 1.5  # 4 prompts share 90 s: one 30-s song (25 s after the 5-s crossfade) fills a prompt's 22.5 s

RAIN = "soft lofi piano chords, rain against the window, vinyl crackle, slow tempo"
NEON = "pumping 80s drum machine, throbbing bass, bright retro synth lead"
BANJO = "bright acoustic bluegrass banjo picking, fiddle, fast hoedown"
METAL = "heavy metal guitar riffs, double kick drums, screaming vocals"
PAST = {
    201: [("Window Rain", (60, 70), [(1, RAIN), (2, "warm rhodes keys, gentle rain ambience, muted boom bap")]),
          ("Lamp Off", (55, 65), [(3, "sleepy piano outro, fading rain, no drums, warm hiss"),
                                  (4, "ambient pad drone, last raindrops, slow fade to silence")])],
    202: [("Neon Drive", (100, 110), [(1, NEON), (2, "glittering synth arpeggios, lush polysynth chords")]),
          ("Cafe", (80, 90), [(3, "jazzy electric piano, brushed snare, coffee shop chatter"),
                              (4, "lazy bass groove, filtered piano sample, late night calm")])],
}
# Each new track repeats one past prompt word for word (a reused song covers it) and
# asks for songs nothing in the library fits. Track 204 repeats 203's banjo prompt:
# the song generated in the first pass serves the second.
NEW = {
    203: [("Arrival", (60, 70), [(1, RAIN), (2, BANJO)]),
          ("Night Ride", (100, 110), [(3, NEON), (4, METAL)])],
    204: [("Porch", (60, 70), [(1, BANJO), (2, "reggae dub skank guitar, melodica, heavy echo")]),
          ("Finale", (100, 110), [(3, "orchestral choir epic trailer, huge timpani, brass fanfare"), (4, NEON)])],
}
COPIED = {203: {(1, 1), (2, 3)}, 204: {(1, 1), (2, 4)}}  # (arc, prompt) written word for word before


def cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, f"lofi {' '.join(args)} failed:\n{result.output}"
    return result.output


def flat(text: str) -> str:
    """Output with Rich's line wrapping undone."""
    return " ".join(text.split())


def gaps_json(track: int) -> dict:
    return json.loads(cli("gaps", "--track", str(track), "--json"))  # printed unwrapped


def remaining_prompts(path: Path) -> dict[tuple[int, int], list[str]]:
    """(arc, prompt) -> the file names to save the new takes as, read from remaining-prompts.md
    as a producer would; each prompt's "make N take(s)" and its names must agree."""
    asked: dict[tuple[int, int], list[str]] = {}
    arc = prompt = takes = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if m := re.match(r"^## Arc (\d+):", line):
            arc = int(m[1])
        elif m := re.match(r"^### Prompt (\d+) — make (\d+) take\(s\)", line):
            prompt, takes = int(m[1]), int(m[2])
        elif line.startswith("Save as: "):
            names = line.removeprefix("Save as: ").split(", ")
            assert len(names) == takes, line
            asked[(arc, prompt)] = names
    return asked


def one_pass(home: Path, lib: Library, track: int) -> dict:
    tracks = home / "Tracks"
    arcs = NEW[track]
    page = write_page(home / "pages", track, f"Loop Track {track}", arcs, minutes=MIX_MINUTES)
    cli("import", "--track", str(track), "--page", str(page))
    cli("query", "--track", str(track))

    # gaps: what to generate, in one place (JSON) and ready to paste (remaining-prompts.md)
    before = gaps_json(track)
    needy = {(p["arc_number"], p["prompt_number"]): p["songs_needed"] for p in before["prompts"]
             if p["songs_needed"] > 0}
    asked = remaining_prompts(tracks / str(track) / "metadata" / "remaining-prompts.md")
    assert {k: len(v) for k, v in asked.items()} == needy
    assert before["songs_to_generate"] == sum(map(len, asked.values())) > 0
    statuses = {(p["arc_number"], p["prompt_number"]): p["status"] for p in before["prompts"]}
    assert {statuses[k] for k in COPIED[track]} == {"covered"}  # a library song fits word for word
    assert set(asked) == set(statuses) - COPIED[track]  # the others need new songs
    assert {statuses[k] for k in asked} <= {"weak", "missing"}

    # generate exactly those songs, named for this track's prompts, and import them
    made = {}
    for (arc, prompt), names in asked.items():
        for name in names:
            name_fields = parse_song_filename(name)
            assert (name_fields.source_track, name_fields.arc, name_fields.prompt) == (track, arc, prompt)
            path = make_song(tracks / str(track) / "Songs", track, arcs, arc=arc, prompt=prompt,
                             take=name_fields.take, seconds=SONG_SECONDS)
            assert path.name == name
            made[content_hash(path)] = (arc, prompt)
    cli("import", "--track", str(track))

    after = gaps_json(track)
    status_after = {(p["arc_number"], p["prompt_number"]): p for p in after["prompts"]}
    for key in asked:
        assert status_after[key]["status"] == "covered" and status_after[key]["songs_needed"] == 0, status_after[key]
    assert after["songs_to_generate"] == 0 < before["songs_to_generate"]
    assert after["plan_id"] != before["plan_id"]  # the import re-planned the track

    header, entries = lib.load_mix_plan(track)
    assert after["plan_id"] == header["plan_id"]
    own = entries[entries["source"] == "own"]
    assert set(own["song_id"]) == set(made)  # every generated song plays, as its prompt's own song
    for row in own.itertuples():
        assert (row.arc_number, row.prompt_number) == made[row.song_id]
    arc_order = list(dict.fromkeys(entries["arc_number"]))
    assert arc_order == [1, 2] and entries["arc_number"].is_monotonic_increasing

    # prepare the render folder, render the plan itself, publish what was rendered
    cli("prepare-render", "--track", str(track))
    cli("render", "--track", str(track), "--duration", "auto")
    render = lib.latest_render(track)
    report = json.loads((Path(render["output_dir"]) / "render_report.json").read_text())
    keys = ["position", "arc_number", "prompt_number", "song_id", "repeat"]
    rendered = [{k: e[k] for k in keys} for e in report["entries"]]
    planned = [{k: (int(v) if k != "song_id" else v) for k, v in zip(keys, r)}
               for r in entries[keys].itertuples(index=False)]
    assert rendered == planned
    for e, r in zip(report["entries"], entries.itertuples()):
        assert e["start_seconds"] == pytest.approx(r.start_seconds, abs=0.01)
        assert e["length_seconds"] == pytest.approx(r.length_seconds, abs=0.01)
    assert report["duration_seconds"] == pytest.approx(header["duration_seconds"], abs=0.5)
    assert render["plan_id"] == report["plan_id"] == header["plan_id"] and report["render_mode"] == "auto"
    assert report["plan_target_seconds"] == pytest.approx(header["target_seconds"])
    assert (Path(render["output_dir"]) / "mix.mp4").is_file()

    distinct = {e["song_id"] for e in report["entries"]}
    url = f"https://youtu.be/loop{track}abcd"[:len("https://youtu.be/") + 11]
    first = flat(cli("publish", "--track", str(track), "--url", url))
    assert f"{len(distinct)} songs of render" in first and f"{len(distinct)} new uses counted" in first
    used = set(lib.df("SELECT song_id FROM song_usage WHERE track_number = ?", [track])["song_id"])
    assert used == distinct
    times = lib.df("SELECT song_id, times_used FROM songs ORDER BY song_id")
    again = flat(cli("publish", "--track", str(track), "--url", url))
    assert "0 new uses counted" in again
    assert lib.df("SELECT song_id, times_used FROM songs ORDER BY song_id").equals(times)
    return {"before": before, "after": after, "made": made, "distinct": distinct}


def test_the_producers_loop_twice(lofi_home):
    home = lofi_home.home
    (home / "lofi.yaml").write_text(SMALL_RENDER_SETTINGS)
    lib = Library(lofi_home.duckdb_path, home=home)
    for track, arcs in PAST.items():
        make_track_songs(home / "Tracks", track, arcs, seconds=SONG_SECONDS)
        page = write_page(home / "pages", track, f"Past Track {track}", arcs, minutes=MIX_MINUTES)
        cli("import", "--track", str(track), "--page", str(page))

    first = one_pass(home, lib, 203)
    second = one_pass(home, lib, 204)

    # The banjo song generated in the first pass covers the same prompt of the second
    banjo = next(sid for sid, key in first["made"].items() if key == (1, 2))
    porch = next(p for p in second["before"]["prompts"] if (p["arc_number"], p["prompt_number"]) == (1, 1))
    assert porch["status"] == "covered" and porch["best_song"]["filename"].endswith("_2_203a.mp3")
    _, entries = lib.load_mix_plan(204)
    assert banjo in set(entries[entries["source"] == "reused"]["song_id"])
    # Uses are counted per published track: once for 203, once more if 204 played it
    expected = int(banjo in first["distinct"]) + int(banjo in second["distinct"])
    assert lib.scalar("SELECT times_used FROM songs WHERE song_id = ?", [banjo]) == expected
    stats = flat(cli("stats"))
    assert "4 tracks (2 published)" in stats
