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


def _one_error_line(result) -> str:
    """The failed command's stderr is one ``error:`` line (besides the run's title line); it is returned."""
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.endswith(" …")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_errors_are_one_line_without_traceback(lofi_home):
    assert runner.invoke(app, ["init"]).exit_code == 0
    assert "track 999" in _one_error_line(runner.invoke(app, ["scaffold", "--track", "999"]))
    line = _one_error_line(runner.invoke(app, ["render", "--track", "1", "--duration", "forever"]))
    assert "--duration 'forever'" in line
    line = _one_error_line(runner.invoke(app, ["import", "--track", "5", "--page",
                                               str(lofi_home.home / "missing.md")]))
    assert "missing.md" in line
    line = _one_error_line(runner.invoke(app, ["import", "--track", "101", "--page", str(demo_pages()[101]),
                                               "--songs-dir", str(lofi_home.home / "no_such_folder")]))
    assert "no_such_folder" in line


def test_a_failing_run_prints_one_error_line_and_verbose_shows_dagster(lofi_home, tmp_path):
    """A run that fails inside a step: Dagster's step messages stay in the run's log unless --verbose."""
    assert runner.invoke(app, ["init"]).exit_code == 0
    page = tmp_path / "Track 5.md"
    page.write_bytes(b"\xff\xfe\x00 not a page \x00\xff")
    line = _one_error_line(runner.invoke(app, ["import", "--track", "5", "--page", str(page)]))
    assert "run " in line and "Dagster UI" in line  # the run has the details
    verbose = runner.invoke(app, ["--verbose", "import", "--track", "5", "--page", str(page)])
    assert verbose.exit_code == 1
    assert sum(line.startswith("error: ") for line in verbose.stderr.splitlines()) == 1
    assert "notion_pages" in verbose.stderr and len(verbose.stderr.splitlines()) > 3


def test_error_text_is_scrubbed(lofi_home, monkeypatch):
    token = "secret_canary0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
    monkeypatch.setenv("NOTION_TOKEN", token)
    assert runner.invoke(app, ["init"]).exit_code == 0
    line = _one_error_line(runner.invoke(app, ["import", "--track", "5", "--page", f"{token}.md"]))
    assert token not in line and "***" in line


def test_a_folder_that_is_not_a_library_is_refused(tmp_path, monkeypatch):
    typo = tmp_path / "lofi-typo"
    typo.mkdir()
    monkeypatch.setenv("LOFI_HOME", str(typo))
    for command in (["stats"], ["gaps", "--track", "1"], ["query", "--track", "1"], ["embed"],
                    ["notion", "show", "1"], ["import", "--track", "1", "--page", "x.md"], ["ui"]):
        line = _one_error_line(runner.invoke(app, command))
        assert f"no lofi.yaml in {typo}" in line and "lofi init" in line and "LOFI_HOME" in line
    assert list(typo.iterdir()) == []  # nothing was created there
    assert runner.invoke(app, ["init"]).exit_code == 0
    assert runner.invoke(app, ["stats"]).exit_code == 0


def test_input_errors_cost_no_run_and_no_partition(lofi_home):
    import time

    import dagster as dg

    from lofi_pipeline.runner import prepare_instance

    assert runner.invoke(app, ["init"]).exit_code == 0
    instance = prepare_instance(lofi_home)
    runs, partitions = instance.get_runs_count(), instance.get_dynamic_partitions("tracks")
    for command in (["query", "--track", "77"], ["query", "--track", "99999999999"], ["query", "--track", "-5"],
                    ["import", "--track", "77"], ["import", "--track", "-5", "--page", "x.md"],
                    ["import", "--track", "77", "--page", "https://www.notion.so/no-id-here"],
                    ["render", "--track", "77"], ["prepare-render", "--track", "77", "--mode", "teleport"],
                    ["post-render", "--track", "77"], ["gaps", "--track", "99999999999"],
                    ["query", "--track", "77", "--top-k", "0"], ["query", "--track", "77", "--key", "H minor"],
                    ["publish", "--track", "-1", "--url", "https://youtu.be/dQw4w9WgXcQ"]):
        started = time.monotonic()
        line = _one_error_line(runner.invoke(app, command))
        assert time.monotonic() - started < 1.0, (command, line)
    assert instance.get_runs_count() == runs
    assert instance.get_dynamic_partitions("tracks") == partitions
    assert not instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": "77"}))


def test_read_only_commands_never_import_dagster_or_the_model(demo_home):
    """gaps, duration, stats, notion show and query --show read the library: no Dagster, torch or model."""
    import subprocess
    import sys

    settings, _ = demo_home
    code = f"""
import json, sys, time
from lofi_pipeline.cli import app
took = {{}}
for args in ({["gaps", "--track", str(NEW_TRACK)]!r}, {["duration", "--track", str(NEW_TRACK)]!r}, ["stats"],
             {["notion", "show", str(NEW_TRACK)]!r}, {["query", "--track", str(NEW_TRACK), "--show"]!r}):
    t = time.monotonic()
    try:
        app(args)
    except SystemExit as e:
        assert not e.code, (args, e.code)
    took[args[0]] = time.monotonic() - t
heavy = [m for m in ("dagster", "torch", "sentence_transformers") if m in sys.modules]
print(json.dumps({{"heavy": heavy, "took": took}}), file=sys.stderr)
"""
    env = {**__import__("os").environ, "LOFI_HOME": str(settings.home)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    assert report["heavy"] == []
    assert "files in" in proc.stdout and "songs to generate" in proc.stdout
    # Warm figures (the first command pays for importing pandas and DuckDB); the benchmark has the cold ones.
    assert all(seconds < 1.0 for name, seconds in report["took"].items() if name != "gaps"), report


def test_start_up_runs_without_the_collector_and_the_work_with_it(demo_home, tmp_path):
    """`lofi` starts with the garbage collector off; the run's steps execute with it on, start-up frozen.

    A log listener in the `lofi` process reports the collector's state while
    the embed run executes: on, start-up's objects frozen out of its way, and
    no full collection during start-up (importing Dagster and pandas ran
    several with the collector on).
    """
    import os
    import subprocess
    import sys

    settings, _ = demo_home
    code = """
import gc, sys
from lofi_pipeline import runner
from lofi_pipeline.cli import main
runner.LOG_LISTENERS.append(lambda message, level, from_dagster: print(
    "GC", gc.isenabled(), gc.get_freeze_count(), gc.get_stats()[2]["collections"],
    file=sys.stderr, flush=True))
sys.argv = ["lofi", "embed"]
main()
"""
    env = {**os.environ, "LOFI_HOME": str(settings.home), "LOFI_DAGSTER_HOME": str(tmp_path / "dagster_home")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    states = [line.split()[1:] for line in proc.stderr.splitlines() if line.startswith("GC ")]
    assert states, proc.stderr[-2000:]
    enabled, frozen, full_collections = states[0]
    assert enabled == "True" and int(frozen) > 10_000 and full_collections == "0", states


def test_start_collecting_leaves_a_running_collector_alone():
    """Python callers (tests, the demo) keep their collector: nothing is frozen when it is already on."""
    import gc

    from lofi_pipeline.runner import start_collecting

    assert gc.isenabled()
    before = gc.get_freeze_count()
    start_collecting()
    assert gc.isenabled() and gc.get_freeze_count() == before


def test_demo_summary_fits_80_columns_without_cutting_paths():
    from rich.console import Console

    import lofi_pipeline.cli as cli

    console = Console(width=80, record=True, file=open(__import__("os").devnull, "w"))
    path = "/home/someone/a-rather-long-library-folder/Tracks/104/metadata/remaining-prompts.md"
    old, cli.out = cli.out, console
    try:
        cli._print_summary({"remaining prompts": path, "songs imported": 30})
    finally:
        cli.out = old
    text = console.export_text()
    assert path in text.replace("\n", "")
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "…" not in text


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


def _beat_and_clicks(tmp_path):
    import numpy as np

    from lofi_pipeline.core.synth import synthesize_song, write_audio

    sr = 22050
    write_audio(synthesize_song(bpm=90, key="C major", seconds=12, sr=sr, seed=11, lowpass_hz=6000), sr,
                tmp_path / "beat.wav")
    # Fourteen clicks at random moments over faint noise: onsets without a pulse, and no pitch.
    rng = np.random.default_rng(0)
    clicks = np.zeros(sr * 8, np.float32)
    for at in np.sort(rng.uniform(0, 7.9, 14)):
        clicks[int(at * sr):int(at * sr) + 200] += 0.8 * np.hanning(200).astype(np.float32)
    clicks += 0.01 * rng.standard_normal(clicks.size).astype(np.float32)
    write_audio(clicks, sr, tmp_path / "clicks.wav")
    as_json = runner.invoke(app, ["analyze", str(tmp_path), "--json", "--workers", "1"])
    assert as_json.exit_code == 0, as_json.output
    found = {Path(d["path"]).stem: d for d in map(json.loads, as_json.stdout.splitlines())}
    return found["beat"], found["clicks"]


def test_irregular_clicks_get_a_low_tempo_confidence(tmp_path):
    from lofi_pipeline.core.confidence import LOW_TEMPO_CONFIDENCE

    _, noise = _beat_and_clicks(tmp_path)
    assert noise["bpm"] is None or noise["bpm_confidence"] < LOW_TEMPO_CONFIDENCE


def test_analyze_marks_low_confidence_values_and_only_those(tmp_path):
    from lofi_pipeline.core.confidence import GUESS_MARK, LEGEND, LOW_KEY_CONFIDENCE, LOW_TEMPO_CONFIDENCE

    # What the analyzer says decides the marks; checked first so a failure tells which side moved.
    beat, noise = _beat_and_clicks(tmp_path)
    assert abs(beat["bpm"] - 90) < 1 and beat["bpm_confidence"] >= 2 * LOW_TEMPO_CONFIDENCE
    assert beat["key"] == "C major" and beat["key_confidence"] >= 2 * LOW_KEY_CONFIDENCE
    assert noise["bpm"] is not None
    assert noise["key"] is not None and noise["key_confidence"] < LOW_KEY_CONFIDENCE / 2
    bpm_guessed = noise["bpm_confidence"] < LOW_TEMPO_CONFIDENCE

    result = runner.invoke(app, ["analyze", str(tmp_path), "--workers", "1"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if ".wav" in line}
    assert GUESS_MARK not in rows["beat.wav"] and "90.0" in rows["beat.wav"] and "C major" in rows["beat.wav"]
    assert (f"{noise['bpm']:.1f}{GUESS_MARK}" in rows["clicks.wav"]) == bpm_guessed
    assert f"{noise['key']}{GUESS_MARK}" in rows["clicks.wav"]
    assert LEGEND in " ".join(result.stdout.split())  # the legend, however Rich wrapped it

    (tmp_path / "clicks.wav").unlink()  # only confident values: no legend
    assert "low confidence" not in runner.invoke(app, ["analyze", str(tmp_path), "--workers", "1"]).stdout


def test_stats_counts_low_confidence_values_apart(lofi_home):
    from lofi_pipeline.core.library import Library

    assert runner.invoke(app, ["init"]).exit_code == 0
    with Library(lofi_home.duckdb_path).write() as con:  # one confident song, one guess, one row from before
        con.execute("INSERT INTO songs (song_id, filename, duration_seconds, loudness_lufs, flags, bpm, "
                    "bpm_confidence, key, key_confidence, times_used) VALUES "
                    "('sure', 'a.mp3', 60, -16, [], 72, 0.4, 'A minor', 0.7, 0), "
                    "('guess', 'b.mp3', 60, -16, [], 75, 0.01, 'A minor', 0.05, 0), "
                    "('old', 'c.mp3', 60, -16, [], 101, NULL, 'C major', NULL, 0)")
    result = runner.invoke(app, ["stats"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "1 BPM and 1 key value(s) are low-confidence guesses" in text
    assert "█░" in result.stdout  # the 70–79 bar: one confident song, one guess


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


def test_progress_without_a_terminal_is_a_line_per_tenth():
    from rich.console import Console

    import lofi_pipeline.cli as cli

    console = Console(file=__import__("io").StringIO(), force_terminal=False, width=80)
    old, cli.err = cli.err, console
    try:
        progress = cli._RunProgress("import track 5")
        for i in range(0, 201):
            progress(f"[progress] analyse {i}/200 A_1_{i}_5a.mp3", 20, False)
        progress("Started execution of step \"songs_table\".", 20, True)  # Dagster chatter: not shown
        progress("Dependencies for step x failed: ['y']. Not executing.", 30, False)
        progress("B_1_1_5a.mp3: not audio", 40, False)
    finally:
        cli.err = old
    lines = console.file.getvalue().splitlines()
    assert [line for line in lines if line.startswith("analyse")] == ["analyse 1/200 (0 %)"] + [
        f"analyse {20 * k}/200 ({10 * k} %)" for k in range(1, 11)]
    assert lines[-1] == "warning: B_1_1_5a.mp3: not audio" and len(lines) == 12


@pytest.mark.slow
def test_render_reports_every_phase(demo_home):
    """The demo's render run logs '[progress] <phase> i/n' for loudness, background, mix and check."""
    import re

    import dagster as dg

    from lofi_pipeline.runner import prepare_instance

    settings, _ = demo_home
    instance = prepare_instance(settings)
    runs = [r for r in instance.get_runs(filters=dg.RunsFilter(job_name="render_job", statuses=[
        dg.DagsterRunStatus.SUCCESS])) if r.tags.get("lofi/home") == str(settings.home)]
    assert runs
    seen: dict[str, list[tuple[int, int]]] = {}
    for record in instance.all_logs(runs[0].run_id):
        m = re.match(r"^\[progress\] (\w+) (\d+)/(\d+)", record.user_message or "")
        if m:
            seen.setdefault(m[1], []).append((int(m[2]), int(m[3])))
    assert set(seen) >= {"loudness", "background", "mix", "check"}
    for phase, steps in seen.items():
        assert steps[-1][0] == steps[-1][1] > 0, phase  # each phase reaches n/n
        assert len(steps) <= 52, phase  # throttled: a line per 2 %, not one per second of audio


@pytest.mark.slow
def test_ui_serves_on_the_given_port_without_supersession_warning(lofi_home, tmp_path):
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    import httpx

    assert runner.invoke(app, ["init"]).exit_code == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "LOFI_HOME": str(lofi_home.home),
           "PYTHONPATH": str(repo) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    log = tmp_path / "ui.err"
    with open(log, "w") as stderr:
        # Ctrl-C as in a terminal: a suite started in the background (``make test &``)
        # passes SIGINT on ignored, and an ignored SIGINT never reaches ``lofi ui``.
        proc = subprocess.Popen([sys.executable, "-m", "lofi_pipeline.cli", "ui", "--port", str(port),
                                 "--host", "127.0.0.1"], env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline, name = time.monotonic() + 120, None
        while time.monotonic() < deadline and name is None and proc.poll() is None:
            try:
                r = httpx.post(f"http://127.0.0.1:{port}/graphql", timeout=5, json={
                    "query": "{ repositoriesOrError { ... on RepositoryConnection { nodes { location { name } } } } }"})
                nodes = r.json()["data"]["repositoriesOrError"]["nodes"]
                name = nodes[0]["location"]["name"] if nodes else None
            except (httpx.HTTPError, KeyError, ValueError):
                time.sleep(1)
        assert name == "lofi_pipeline.definitions", log.read_text()[-2000:]
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) == 2  # dagster-webserver and dagster-daemon
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        time.sleep(1)
        assert all(not Path(f"/proc/{c}").exists() for c in children)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "superseded" not in text.lower() and "SupersessionWarning" not in text
