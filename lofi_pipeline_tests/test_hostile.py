"""Hostile input and crashes (issue 13): a library that moves, odd audio, secrets, page text, leftovers.

Every test that changes a library works on its own copy of one small library
built once for this module (past tracks 201 and 202 with synthesized songs;
new tracks 203 and 204 whose prompts reuse theirs), so the copy itself is
also a test of a library that can move.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lofi_pipeline.cli import app
from lofi_pipeline.core.identity import content_hash
from lofi_pipeline.core.library import Library
from lofi_pipeline.settings import Settings
from lofi_pipeline_tests.small_library import SMALL_RENDER_SETTINGS, make_track_songs, write_page

runner = CliRunner()
SONG_SECONDS = 30.0
MINUTES = 1.5

RAIN = "soft lofi piano chords, rain against the window, vinyl crackle, slow tempo"
RHODES = "warm rhodes keys, gentle rain ambience, muted boom bap drums"
NEON = "pumping 80s drum machine, throbbing bass, bright retro synth lead"
ARPS = "glittering synth arpeggios, lush polysynth chords, city skyline at night"
PAST = {
    201: [("Window Rain", (60, 70), [(1, RAIN), (2, RHODES)]),
          ("Lamp Off", (55, 65), [(3, "sleepy piano outro, fading rain, no drums, warm hiss"),
                                  (4, "ambient pad drone, last raindrops, slow fade to silence")])],
    202: [("Neon Drive", (100, 110), [(1, NEON), (2, ARPS)]),
          ("Cafe", (80, 90), [(3, "jazzy electric piano, brushed snare, coffee shop chatter"),
                              (4, "lazy bass groove, filtered piano sample, late night calm")])],
}
# New tracks whose prompts are the past ones: their plans reuse the past songs.
NEW = {
    203: [("Rain", (60, 70), [(1, RAIN), (2, RHODES)]), ("Neon", (100, 110), [(3, NEON), (4, ARPS)])],
    204: [("Neon Again", (100, 110), [(1, ARPS), (2, NEON)]), ("Rain Again", (60, 70), [(3, RHODES), (4, RAIN)])],
}


@pytest.fixture(scope="module")
def base_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's library, imported once through the real import job; tests copy it."""
    from lofi_pipeline.runner import run_job

    home = tmp_path_factory.mktemp("hostile-base")
    old = os.environ.get("LOFI_HOME")
    os.environ["LOFI_HOME"] = str(home)
    try:
        (home / "lofi.yaml").write_text(SMALL_RENDER_SETTINGS)
        settings = Settings.load(home)
        for track, arcs in {**PAST, **NEW}.items():
            if track in PAST:
                make_track_songs(home / "Tracks", track, arcs, seconds=SONG_SECONDS)
            page = write_page(home / "pages", track, f"Track {track}", arcs, minutes=MINUTES)
            run_job(settings, "import_job", partition=track,
                    run_config={"ops": {"notion_pages": {"config": {"page": str(page)}}}})
    finally:  # no test may reach this library through LOFI_HOME: each works on a copy
        if old is None:
            os.environ.pop("LOFI_HOME", None)
        else:
            os.environ["LOFI_HOME"] = old
    return home


def copy_library(src: Path, dest: Path) -> Path:
    """``cp -a``: the whole folder, symlinks kept as links."""
    shutil.copytree(src, dest, symlinks=True)
    return dest


@pytest.fixture
def own_library(base_library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A copy of the module's library that this test may change (LOFI_HOME points at it)."""
    home = copy_library(base_library, tmp_path / "home")
    monkeypatch.setenv("LOFI_HOME", str(home))
    return Settings.load(home)


def library_of(settings: Settings) -> Library:
    return Library(settings.duckdb_path, home=settings.home)


def cli(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, f"lofi {' '.join(args)} exited {result.exit_code}:\n{result.output}"
    return " ".join(result.output.split())  # Rich's line wrapping undone


def file_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): content_hash(p) for p in sorted(folder.rglob("*.mp3"))}


# --------------------------------------------------------------------------- 13.2 a library that can move
@pytest.mark.slow
def test_a_copied_library_moves_only_its_own_files(base_library, tmp_path, monkeypatch):
    original = copy_library(base_library, tmp_path / "original")
    copy = copy_library(original, tmp_path / "copy")
    before = file_hashes(original / "Tracks")
    songs_before = Library(original / "data" / "lofi.duckdb", home=original).df(
        "SELECT song_id, path FROM songs ORDER BY song_id")

    monkeypatch.setenv("LOFI_HOME", str(copy))
    out = cli("prepare-render", "--track", "203", "--mode", "move")
    assert "conflicts: none" in out

    lib = Library(copy / "data" / "lofi.duckdb", home=copy)
    _, entries = lib.load_mix_plan(203)
    planned = set(entries["song_id"])
    placed = [p for p in (copy / "Tracks" / "203" / "Songs").iterdir() if p.suffix == ".mp3"]
    assert {content_hash(p) for p in placed} == planned
    # The copy's past-track files moved out; the library knows their new place
    moved_from = [copy / "Tracks" / k for k, h in before.items() if h in planned]
    assert moved_from and not any(p.exists() for p in moved_from)
    for song_id, paths in lib.song_locations(sorted(planned)).items():
        assert paths and all(p.startswith(str(copy)) for p in paths), paths
        assert any(Path(p).is_file() for p in paths)
    stored = lib.df("SELECT path FROM songs UNION ALL SELECT path FROM song_files")["path"]
    assert not any(p.startswith("/") for p in stored)  # inside LOFI_HOME: relative

    # The original is untouched: every file in place, byte for byte, and its library unchanged
    assert file_hashes(original / "Tracks") == before
    assert not (original / "Tracks" / "203" / "Songs").exists() or not any(
        (original / "Tracks" / "203" / "Songs").iterdir())
    assert Library(original / "data" / "lofi.duckdb", home=original).df(
        "SELECT song_id, path FROM songs ORDER BY song_id").equals(songs_before)


@pytest.mark.slow
def test_move_then_plan_prepare_and_render_the_next_track(own_library):
    lib = library_of(own_library)
    tracks = Path(own_library.tracks_dir)
    cli("prepare-render", "--track", "203", "--mode", "move")
    moved = set(lib.load_mix_plan(203)[1]["song_id"])

    # 204's stored plan still names the old places: prepare finds the songs where they are now
    _, stale = lib.load_mix_plan(204)
    assert set(stale["song_id"]) & moved and not all(Path(p).is_file() for p in stale["path"])
    assert "conflicts: none" in cli("prepare-render", "--track", "204")

    # A new plan points at the new places; prepare and render find every song
    cli("query", "--track", "204")
    header, entries = lib.load_mix_plan(204)
    assert set(entries["song_id"]) & moved
    assert all(Path(p).is_file() for p in entries["path"])
    assert any(str(tracks / "203" / "Songs") in p for p in entries["path"])
    out = cli("prepare-render", "--track", "204")
    assert "conflicts: none" in out
    cli("render", "--track", "204", "--duration", "auto")
    report = lib.latest_render(204)["report"]
    assert report["skipped_missing"] == [] and report["plan_id"] == header["plan_id"]
    assert [e["song_id"] for e in report["entries"]] == list(entries["song_id"])
    # ...and the track whose songs moved still renders from its own folder
    cli("render", "--track", "203", "--duration", "auto")
    assert lib.latest_render(203)["report"]["skipped_missing"] == []


# --------------------------------------------------------------------------- 13.6 leftovers and missing songs
@pytest.mark.slow
def test_a_killed_move_leaves_no_partial_file_after_a_rerun(own_library):
    """A real SIGKILL in the middle of a move (the copy step kills its own process)."""
    lib = library_of(own_library)
    songs_dir = Path(own_library.tracks_dir) / "203" / "Songs"
    sources = {r.song_id: r.path for r in lib.songs().itertuples()}
    planned = set(lib.load_mix_plan(203)[1]["song_id"])
    child = f"""
import os, signal
from lofi_pipeline.core import prepare
from lofi_pipeline.core.library import Library
from lofi_pipeline.core.planning import prepare_track

def killed_while_copying(src, dst):
    os.kill(os.getpid(), signal.SIGKILL)  # like an OOM kill or a power cut mid-copy

prepare._copy_file = killed_while_copying
lib = Library({str(own_library.duckdb_path)!r}, home={str(own_library.home)!r})
prepare_track(lib, 203, tracks_dir={str(own_library.tracks_dir)!r}, mode="move", crossfade_seconds=5.0)
"""
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    partials = [p for p in songs_dir.iterdir() if p.name.endswith(".partial")]
    assert len(partials) == 1 and partials[0].name.startswith(".") and partials[0].stat().st_size == 0
    legacy = songs_dir / ".002__A_1_2_201a.mp3.k3j_x8q1.partial"  # a leftover named before pids were
    legacy.touch()
    assert all(Path(sources[s]).is_file() for s in planned)  # nothing was lost

    out = cli("prepare-render", "--track", "203", "--mode", "move")
    assert "conflicts: none" in out
    assert not [p.name for p in songs_dir.iterdir() if p.name.endswith(".partial")]
    assert {content_hash(p) for p in songs_dir.glob("*.mp3")} == planned


@pytest.mark.slow
def test_render_after_a_failed_prepare_names_the_missing_song(own_library):
    lib = library_of(own_library)
    _, entries = lib.load_mix_plan(203)
    gone = Path(entries["path"].iloc[0])
    gone.unlink()
    out = cli("prepare-render", "--track", "203", code=1)
    assert gone.name in out and "not found" in out

    out = cli("render", "--track", "203", "--duration", "auto", code=1)
    assert gone.name in out and "--allow-missing" in out
    assert lib.latest_render(203) is None

    cli("render", "--track", "203", "--duration", "auto", "--allow-missing")
    report = lib.latest_render(203)["report"]
    assert {Path(p).name for p in report["skipped_missing"]} == {gone.name}
    assert entries["song_id"].iloc[0] not in {e["song_id"] for e in report["entries"]}
    assert {e["song_id"] for e in report["entries"]} == set(entries["song_id"]) - {entries["song_id"].iloc[0]}


# --------------------------------------------------------------------------- 13.8 suspicious audio
def test_the_flag_rule():
    from lofi_pipeline.core.catalog import audio_flags

    assert audio_flags(duration_seconds=180.0, loudness_lufs=-14.0) == []
    assert audio_flags(duration_seconds=180.0, loudness_lufs=-49.9) == []
    assert audio_flags(duration_seconds=180.0, loudness_lufs=None)[0].startswith("silent")
    assert audio_flags(duration_seconds=180.0, loudness_lufs=float("nan"))[0].startswith("silent")
    assert audio_flags(duration_seconds=180.0, loudness_lufs=-61.0) == ["near-silent: -61.0 LUFS (below -50 LUFS)"]
    assert audio_flags(duration_seconds=1201.0, loudness_lufs=-14.0) == ["too long: 20.0 min (over 20 min)"]
    assert len(audio_flags(duration_seconds=3 * 3600.0, loudness_lufs=None)) == 2  # the 3-hour silent file


def test_stats_count_flagged_songs():
    from lofi_pipeline.core.stats import library_stats, stats_markdown

    songs = pd.DataFrame({"filename": ["a.mp3", "b.mp3", "c.mp3"], "bpm": [80.0, None, 90.0],
                          "key": ["A minor", None, "C major"], "energy_level": ["low", None, "high"],
                          "duration_seconds": [60.0, 60.0, 60.0], "times_used": [0, 0, 0],
                          "flags": [[], ["silent: no measurable loudness (below -70 LUFS)"], None]})
    st = library_stats(songs, tracks=1, published=0)
    assert st.flagged == 1 and st.flagged_songs["filename"].tolist() == ["b.mp3"]
    assert "1 flagged song(s)" in stats_markdown(st) and "b.mp3" in stats_markdown(st)


@pytest.mark.slow
def test_silent_quiet_and_overlong_files_are_flagged_and_never_planned(own_library):
    from lofi_pipeline.core.stats import stats_from_library
    from lofi_pipeline.core.synth import write_audio

    songs = Path(own_library.tracks_dir) / "203" / "Songs"
    sr = 22050
    t = np.arange(sr * 20) / sr
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)  # a full-scale sine is about -3 LUFS
    # Named as 203's own songs: unflagged, they would play first whatever they sound like.
    write_audio(np.zeros(sr * 20, np.float32), sr, songs / "A_1_1_203s.mp3")
    write_audio(tone * 10 ** (-57 / 20), sr, songs / "A_1_2_203q.mp3")  # about -60 LUFS
    long_sr = 8000
    long_t = np.arange(long_sr * 60 * 21) / long_sr
    write_audio((0.3 * np.sin(2 * np.pi * 220 * long_t)).astype(np.float32), long_sr, songs / "A_2_3_203l.wav")

    printed = cli("import", "--track", "203")  # the songs land in Songs/, as Suno downloads do
    assert "A_1_1_203s.mp3: silent" in printed and "A_1_2_203q.mp3: near-silent" in printed
    assert "A_2_3_203l.wav: too long: 21.0 min" in printed and "left out of mix plans" in printed

    import dagster as dg

    instance = dg.DagsterInstance.get()
    run = instance.get_runs(limit=1)[0]
    logs = instance.all_logs(run.run_id)
    meta = next(e.dagster_event.step_materialization_data.materialization.metadata for e in logs
                if e.dagster_event and e.dagster_event.is_step_materialization
                and e.dagster_event.asset_key.path == ["songs_table"])
    assert meta["flagged_songs"].value == 3
    warnings = [r.user_message for r in logs if r.level >= 30 and "left out of mix plans" in (r.user_message or "")]
    assert len(warnings) == 3  # one warning per flagged file in the run's log
    lib = library_of(own_library)
    flags = {r.filename: list(r.flags) for r in lib.df("SELECT filename, flags FROM songs "
                                                      "WHERE len(flags) > 0").itertuples()}
    assert set(flags) == {"A_1_1_203s.mp3", "A_1_2_203q.mp3", "A_2_3_203l.wav"}
    assert lib.scalar("SELECT count(*) FROM songs WHERE flags IS NULL OR len(flags) = 0") == 8
    # Never planned, never matched: the plan the import refreshed holds none of them
    ids = set(lib.df("SELECT song_id FROM songs WHERE len(flags) > 0")["song_id"])
    _, entries = lib.load_mix_plan(203)
    assert not ids & set(entries["song_id"]) and entries["source"].eq("reused").all()
    assert not ids & set(lib.load_matches(203)["song_id"])
    # stats counts them, and the library report lists them
    assert stats_from_library(lib).flagged == 3
    report = (Path(own_library.home) / "data" / "export" / "stats.md").read_text()
    assert "3 flagged song(s)" in report and "A_2_3_203l.wav" in report


def test_reanalysis_sets_the_flags_afresh(tmp_path):
    from lofi_pipeline.core.catalog import FEATURE_COLUMNS, describe_songs, filename_fields

    lib = Library(tmp_path / "lofi.duckdb", home=tmp_path)
    row = {c: None for c in FEATURE_COLUMNS}
    row.update({"path": str(tmp_path / "A_1_1_9a.mp3"), "status": "analysed", "content_hash": "h1",
                "file_size": 10, "file_mtime": 1.0, "duration_seconds": 120.0, "loudness_lufs": -15.0,
                "analyzer_version": "v1"})
    first = lib.upsert_songs(9, pd.DataFrame([row]), filename_fields=filename_fields, describe=describe_songs)
    assert first["flag_warnings"] == [] and list(lib.scalar("SELECT flags FROM songs")) == []
    again = lib.upsert_songs(9, pd.DataFrame([{**row, "loudness_lufs": None, "analyzer_version": "v2"}]),
                             filename_fields=filename_fields, describe=describe_songs)
    assert again["songs_reanalysed"] == 1 and "A_1_1_9a.mp3: silent" in again["flag_warnings"][0]
    assert lib.scalar("SELECT flags FROM songs")[0].startswith("silent")
    lib.upsert_songs(9, pd.DataFrame([{**row, "analyzer_version": "v3"}]), filename_fields=filename_fields,
                     describe=describe_songs)
    assert list(lib.scalar("SELECT flags FROM songs")) == []


# --------------------------------------------------------------------------- 13.3 secrets
def files_containing(folder: Path, needles: list[bytes]) -> list[str]:
    """Every file under ``folder`` (SQLite databases, WAL files, logs, JSON...) holding a needle."""
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [f"{path}: {n!r}" for n in needles if n in data]
    return found


@pytest.mark.slow
def test_a_canary_token_is_never_stored_or_printed(lofi_home, monkeypatch):
    """Import with a canary token, then fail in every way a token can, and search every byte."""
    from lofi_pipeline_tests.notion_server import NotionTestServer

    pages = Path(__file__).resolve().parent / "fixtures" / "pages"
    page_id = "2a8433e5-7885-800a-b456-d6dd739b5d36"
    canary = f"canary_{uuid.uuid4().hex}"  # not shaped like a Notion secret: only its value can give it away
    outputs = []
    # echo_auth: the server quotes the request's Authorization header in its errors, as a bad proxy would
    with NotionTestServer(pages={page_id: (pages / "track13_checkbox_numbered.md").read_text()},
                          token=canary, echo_auth=True) as server:
        (lofi_home.home / "lofi.yaml").write_text(f"notion:\n  base_url: {server.base_url}\n")

        def lofi_import(token: str, code: int) -> str:
            monkeypatch.setenv("NOTION_TOKEN", token)
            result = runner.invoke(app, ["import", "--track", "13", "--page", page_id])
            outputs.append(result.output)
            assert result.exit_code == code, result.output
            assert "Traceback" not in result.output
            return result.output

        lofi_import(canary, 0)
        server.set_error(page_id, 401)  # revoked while we work
        assert "401" in lofi_import(canary, 1)
        server.set_error(page_id, 404)  # unshared: this error quotes the server's message
        unshared = lofi_import(canary, 1)
        assert "404" in unshared and "Authorization: ***" in " ".join(unshared.split())  # echoed, scrubbed
        server.set_error(page_id, None)
        assert "401" in lofi_import(canary + "x", 1)  # a token the server does not know
        assert "NOTION_TOKEN" in lofi_import(canary + "\nX-Injected: 1", 1)  # header injection
        assert "NOTION_TOKEN" in lofi_import(canary + "é", 1)  # not ASCII
        assert any("/blocks/" in r[1] for r in server.requests)

    needles = [canary.encode(), canary.split("_")[1][:16].encode(), b"X-Injected"]
    for output in outputs:
        assert not [n for n in needles if n in output.encode()], output
    leaks = files_containing(lofi_home.home, needles)
    leaks += files_containing(Path(lofi_home.dagster_home), needles)  # run and event storage of the session
    assert not leaks
    # The search does read Dagster's storage: the failed runs' errors are there.
    assert files_containing(Path(lofi_home.dagster_home), [b"401 unauthorized"])
    assert Library(lofi_home.duckdb_path, home=lofi_home.home).load_plan(13).prompts  # the good import landed


# --------------------------------------------------------------------------- 13.4 page text is data
ESC = "\x1b[2J"
LINK = "[link=file:///etc/passwd]x[/link]"
HOSTILE_PAGE = f"""# Track 31 — Rainy [/bold] Night {ESC}
## 1. TRACK OVERVIEW
| Field | Value |
|---|---|
| Title | Rainy [/bold] Night {LINK} |
| Duration | 2 minutes |
| Mood Arc | [/Verse] Calm → [red]Bright |
## 5. MUSIC ARC STRUCTURE — Suno Prompts
### Phase 1 — [/Verse] Opening {ESC} (BPM 60–70)
- [ ] 1. [/Verse] warm rhodes {ESC}, soft rain
- [ ] 2. {LINK} [b]hiss[/b]
### Phase 2 — Closing {LINK} (BPM 55–65)
- [ ] 3. sleepy piano outro \\[escaped\\] brackets [/]
"""


@pytest.mark.slow
def test_page_text_is_printed_literally_everywhere(lofi_home, monkeypatch, tmp_path):
    monkeypatch.setenv("COLUMNS", "250")  # wide enough that no table cell is cut or wrapped
    page = tmp_path / "Track 31.md"
    page.write_text(HOSTILE_PAGE, encoding="utf-8")
    assert runner.invoke(app, ["init"]).exit_code == 0  # a library: commands refuse a folder that is not one
    shown = {}
    for name, args in [("parse", ["notion", "parse", str(page)]),
                       ("import", ["import", "--track", "31", "--page", str(page)]),
                       ("show", ["notion", "show", "31"]),
                       ("query", ["query", "--track", "31"]),
                       ("gaps", ["gaps", "--track", "31"])]:
        result = runner.invoke(app, args)
        assert result.exit_code == 0, f"{name}: {result.output}"
        assert "\x1b" not in result.output and "\x07" not in result.output, name  # no escape reaches the terminal
        shown[name] = result.output
    for name in ("parse", "import", "show", "query"):
        assert "Rainy [/bold] Night" in shown[name], shown[name]
    for name in ("parse", "show", "query", "gaps"):
        assert "[/Verse] warm rhodes" in shown[name], shown[name]
        assert f"{LINK} [b]hiss[/b]" in shown[name], shown[name]  # a link stays text, brackets and all
    for name in ("parse", "show"):
        assert "[/Verse] Opening" in shown[name] and f"Closing {LINK}" in shown[name]
    plan = Library(lofi_home.duckdb_path, home=lofi_home.home).load_plan(31)
    assert plan.title.startswith("Rainy [/bold] Night") and len(plan.prompts) == 3  # stored as written


def test_file_names_are_printed_literally(tmp_path, monkeypatch):
    """A file name is data too: `[red]` in it is text, an escape byte in it never reaches the terminal."""
    import soundfile as sf

    monkeypatch.setenv("COLUMNS", "250")
    odd = tmp_path / f"A_1_1_31a [red]hot[blink] {ESC}.wav"
    t = np.arange(22050 * 3) / 22050
    sf.write(odd, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 22050)
    result = runner.invoke(app, ["analyze", str(odd)])
    assert result.exit_code == 0, result.output
    assert "A_1_1_31a [red]hot[blink] [2J.wav" in result.output and "\x1b" not in result.output


def test_songs_analysed_before_flags_existed_are_judged_and_then_flagged(tmp_path):
    from lofi_pipeline.core.catalog import FEATURE_COLUMNS, describe_songs, filename_fields, flagged
    from lofi_pipeline.core.planning import usable_songs

    lib = Library(tmp_path / "lofi.duckdb", home=tmp_path)
    with lib.write() as con:  # two songs as an older version stored them: flags NULL
        con.execute("INSERT INTO songs (song_id, filename, path, duration_seconds, loudness_lufs) VALUES "
                    "('old-silent', 'A_1_1_5a.mp3', 'Tracks/5/Songs/A_1_1_5a.mp3', 3 * 3600.0, NULL), "
                    "('old-fine', 'A_1_2_5a.mp3', 'Tracks/5/Songs/A_1_2_5a.mp3', 150.0, -16.0)")
    assert flagged(lib.songs()).tolist() == [False, True]  # judged by the rule before any import
    assert usable_songs(lib)["song_id"].tolist() == ["old-fine"]

    row = {c: None for c in FEATURE_COLUMNS}
    row.update({"path": str(tmp_path / "A_2_3_5a.mp3"), "status": "analysed", "content_hash": "new",
                "file_size": 10, "file_mtime": 1.0, "duration_seconds": 120.0, "loudness_lufs": -15.0})
    counts = lib.upsert_songs(5, pd.DataFrame([row]), filename_fields=filename_fields, describe=describe_songs)
    assert len(counts["flag_warnings"]) == 1 and counts["flag_warnings"][0].startswith("A_1_1_5a.mp3: silent")
    stored = {r.song_id: list(r.flags) for r in lib.df("SELECT song_id, flags FROM songs").itertuples()}
    assert stored["old-fine"] == [] and stored["new"] == [] and len(stored["old-silent"]) == 2


# --------------------------------------------------------------------------- settings at their limits
@pytest.mark.parametrize("crossfade", [5.0, 20.0, 120.0, 600.0])
def test_a_long_crossfade_plans_to_the_target_and_reports_gaps(crossfade):
    """render.crossfade_seconds may be 0-600 s: a crossfade longer than half a song is shortened
    to half of it when laid out, and planning and gaps count it the same way (no negative time,
    no division by zero)."""
    from lofi_pipeline.core.gaps import build_gap_report
    from lofi_pipeline.core.mixplan import plan_mix
    from lofi_pipeline.core.notion import parse_track_markdown
    from lofi_pipeline_tests.small_library import page_markdown

    arcs = [("One", (60, 70), [(1, "rain piano"), (2, "rhodes")]), ("Two", (60, 70), [(3, "pads"), (4, "hiss")])]
    plan = parse_track_markdown(page_markdown(9, "Crossfades", arcs, minutes=2), source="page.md")
    songs = pd.DataFrame([{"song_id": f"{a}{p}{take}", "filename": f"A_{a}_{p}_9{take}.mp3", "path": "/x.mp3",
                           "duration_seconds": 30.0, "source_track": 9, "arc": a, "prompt": p}
                          for a, p in [(1, 1), (1, 2), (2, 3), (2, 4)] for take in "abc"])
    no_matches = pd.DataFrame(columns=["prompt_order", "song_id", "score", "similarity"])
    mix = plan_mix(plan, track_number=9, songs=songs, matches=no_matches, target_seconds=120.0,
                   crossfade_seconds=crossfade, max_repeats=3)
    assert 120.0 <= mix.duration_seconds <= 120.0 + 30.0  # the target, overshot by less than one song
    assert not any(e.repeat for e in mix.entries)  # twelve own songs are enough: nothing repeats
    assert all(a.shortfall_seconds == 0 for a in mix.arcs)
    report = build_gap_report(plan, mix)
    assert report["shortfall_minutes"] == 0 and report["songs_to_generate"] >= 0


@pytest.mark.slow
def test_a_move_killed_before_the_library_heard_of_it_heals_on_the_rerun(own_library):
    """Killed after the files moved but before the library recorded it: the next prepare-render
    finds the songs in place and records where they are, so the next track finds them too."""
    lib = library_of(own_library)
    planned = set(lib.load_mix_plan(203)[1]["song_id"])
    child = f"""
import os, signal
from lofi_pipeline.core.library import Library
from lofi_pipeline.core.planning import prepare_track

def killed_before_recording(self, moves):
    os.kill(os.getpid(), signal.SIGKILL)  # every file moved, the library not told

Library.move_song_files = killed_before_recording
lib = Library({str(own_library.duckdb_path)!r}, home={str(own_library.home)!r})
prepare_track(lib, 203, tracks_dir={str(own_library.tracks_dir)!r}, mode="move", crossfade_seconds=5.0)
"""
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    stale = lib.song_locations(sorted(planned))
    assert not any(Path(p).is_file() for paths in stale.values() for p in paths)  # the library is behind

    assert "conflicts: none" in cli("prepare-render", "--track", "203", "--mode", "move")
    songs_dir = Path(own_library.tracks_dir) / "203" / "Songs"
    for song_id, paths in lib.song_locations(sorted(planned)).items():
        assert any(Path(p).is_file() and Path(p).parent == songs_dir for p in paths), paths
    assert "conflicts: none" in cli("prepare-render", "--track", "204")  # 204 reuses those songs


@pytest.mark.slow
def test_a_move_stopped_by_a_full_disk_records_what_moved(own_library, monkeypatch):
    import errno

    from lofi_pipeline.core import prepare
    from lofi_pipeline.core.errors import RenderError
    from lofi_pipeline.core.planning import prepare_track

    lib = library_of(own_library)
    copies = []
    real_copy = prepare._copy_file

    def disk_fills_up(src, dst):
        if len(copies) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        copies.append(src)
        real_copy(src, dst)

    with monkeypatch.context() as patch:
        patch.setattr(prepare, "_copy_file", disk_fills_up)
        with pytest.raises(RenderError, match="No space left"):
            prepare_track(lib, 203, tracks_dir=own_library.tracks_dir, mode="move", crossfade_seconds=5.0)
    moved = {content_hash(p): p for p in (Path(own_library.tracks_dir) / "203" / "Songs").glob("*.mp3")}
    assert len(moved) == 2 and not any(Path(s).exists() for s in copies)
    for song_id, paths in lib.song_locations(sorted(moved)).items():
        assert str(moved[song_id]) in paths and all(Path(p).is_file() for p in paths)
    assert "conflicts: none" in cli("prepare-render", "--track", "204")


def test_an_import_survives_files_that_vanish_or_cannot_be_read(tmp_path):
    """A file listed and then moved away (prepare-render --mode move, a user) is left out; one
    that cannot be read is an import error; the rest of the batch goes on."""
    from lofi_pipeline.core.catalog import feature_frame, scan_for_import

    good = tmp_path / "A_1_1_7a.wav"
    good.write_bytes(b"RIFF" + bytes(100))
    unreadable = tmp_path / "A_1_2_7a.mp3"
    unreadable.mkdir()  # reading it fails with EISDIR, whoever runs the test (root reads anything)
    gone = tmp_path / "A_1_3_7a.mp3"
    scan = scan_for_import([good, unreadable, gone], known={}, versions={}, analyzer_version="v")
    assert scan.to_analyze == [good]
    frame = feature_frame(scan.known_content, [])
    assert frame["status"].tolist() == ["error"] and frame["path"].iloc[0] == str(unreadable)
    assert "cannot read" in frame["error"].iloc[0]


def test_a_binary_page_is_named_by_import_and_parse(tmp_path, monkeypatch):
    """A binary file given as a page: one error line naming the file, nothing imported."""
    home = tmp_path / "lib"
    home.mkdir()
    monkeypatch.setenv("LOFI_HOME", str(home))
    assert runner.invoke(app, ["init"]).exit_code == 0
    page = tmp_path / "Track 5.md"
    page.write_bytes(b"# Track 5\n\xff\xfe\x00\x01 binary" * 10)
    for args in (["notion", "parse", str(page)], ["import", "--track", "5", "--page", str(page)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1, result.output
        lines = [line for line in result.output.splitlines() if line.startswith("error:")]
        flat = result.output.replace("\n", "")
        assert len(lines) == 1, result.output
        assert str(page) in flat and ("UTF-8" in flat or "binary" in flat), result.output
    assert Library(home / "data" / "lofi.duckdb", home=home).load_plan(5) is None


def test_a_deeply_nested_page_is_cached_as_json(tmp_path):
    """A page whose blocks nest 1,200 levels deep is cached (flat) and parsed from the cache."""
    from lofi_pipeline.core.notion_blocks import nest_blocks
    from lofi_pipeline.core.pagecache import read_meta, store_page

    block: dict = {"type": "bulleted_list_item", "bulleted_list_item": {"rich_text": []}}
    top = block
    for _ in range(1200):
        child = {"type": "bulleted_list_item", "bulleted_list_item": {"rich_text": []}}
        block["children"] = [child]
        block = child
    md, js = tmp_path / "track_9.md", tmp_path / "track_9.json"
    assert store_page(md, js, ref="page", markdown="# Track 9\n", last_edited_time="t", blocks=[top])
    flat = read_meta(js)["blocks"]
    assert len(flat) == 1201 and max(b["depth"] for b in flat) == 1200
    nested = nest_blocks(flat)
    depth, node = 0, nested[0]
    while node.get("children"):
        node, depth = node["children"][0], depth + 1
    assert depth == 1200
