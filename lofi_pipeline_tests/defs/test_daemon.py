"""The file sensors under a real ``dagster-daemon run``: a dropped song lands in the library.

A small library (track 101's demo page and two synthesized songs, imported
in-process) gets a fresh, temporary Dagster instance and a real daemon started
on the project's workspace.yaml. Nothing turns the sensors on: they must run
by default. Then a new song is dropped into ``Tracks/101/Songs/`` the way a
download tool finishes (written under a hidden name, then renamed), while a
second file keeps growing next to it. The test waits for the sensor's run to
succeed and checks, in the run and in the DuckDB library, that the dropped
song was imported, the track's mix plan and gap report were rebuilt, and the
growing file was left alone until its size stopped changing.

Bounded: building the library takes ~25 s, then the test waits at most
DEADLINE_S (120 s) after starting the daemon (both runs took ~70 s here) and
always stops the process group it started (daemon, code server, run workers),
checking that none of it outlives the test.

Two fast tests at the end pin the sensor rules the daemon test relies on: the
interval variable, and a fresh cursor (a new instance) not re-requesting songs
the library already holds.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from lofi_pipeline.core.library import Library
from lofi_pipeline.core.synth import synthesize_song, write_audio
from lofi_pipeline.core.errors import ConfigError
from lofi_pipeline.defs.resources import build_resources
from lofi_pipeline.defs.sensors import INTERVAL_ENV, file_sensor_interval, song_files_sensor
from lofi_pipeline.runner import INSTANCE_YAML, run_job
from lofi_pipeline.settings import Settings

REPO = Path(__file__).resolve().parents[2]
TRACK = 101
SENSOR = "song_files_sensor"
INTERVAL_S = 5  # the daemon's own floor; 30 s in production
DEADLINE_S = 120.0  # from starting the daemon to the last assertion


def _build_library(settings: Settings) -> Path:
    """Track 101's page plus its first two demo songs, imported in-process; returns the Songs folder."""
    from lofi_pipeline.core.notion import parse_track_markdown
    from lofi_pipeline.demo import demo_pages, demo_song_specs

    page = demo_pages()[TRACK]
    songs = Path(settings.tracks_dir) / str(TRACK) / "Songs"
    plan = parse_track_markdown(page.read_text(encoding="utf-8"), source=str(page))
    for spec in demo_song_specs(TRACK, plan)[:2]:
        y = synthesize_song(bpm=spec["bpm"], key=spec["key"], seconds=12, sr=22050, seed=spec["seed"])
        write_audio(y, 22050, songs / spec["filename"])
    run_job(settings, "import_job", partition=TRACK,
            run_config={"ops": {"notion_pages": {"config": {"page": str(page)}}}})
    return songs


def _song_bytes(tmp_path: Path, name: str, *, bpm: float, key: str, seconds: int, seed: int) -> bytes:
    """An encoded song made outside the library (write_audio is atomic, so it is complete)."""
    staging = tmp_path / "staging"
    y = synthesize_song(bpm=bpm, key=key, seconds=seconds, sr=22050, seed=seed)
    return write_audio(y, 22050, staging / name).read_bytes()


class _GrowingFile(threading.Thread):
    """Writes ``data`` to ``path`` a little at a time (a download in progress) until finished."""

    def __init__(self, path: Path, data: bytes, *, chunk: int = 2048, every_s: float = 0.5):
        super().__init__(daemon=True)
        self.path, self.data, self.chunk, self.every_s = path, data, chunk, every_s
        self.finish = threading.Event()
        self.ran_out = False  # the data ended before finish(): the file stopped growing too early

    def run(self) -> None:
        written = 0
        with self.path.open("wb") as f:
            while not self.finish.is_set():
                if written >= len(self.data):
                    self.ran_out = True
                    return
                f.write(self.data[written:written + self.chunk])
                f.flush()
                written += self.chunk
                self.finish.wait(self.every_s)
            f.write(self.data[written:])


def _start_daemon(home: Path, dagster_home: Path, log: Path) -> subprocess.Popen:
    daemon = Path(sys.executable).with_name("dagster-daemon")
    exe = str(daemon) if daemon.exists() else shutil.which("dagster-daemon")
    assert exe, "dagster-daemon is not installed next to this Python"
    env = {**os.environ, "LOFI_HOME": str(home), "DAGSTER_HOME": str(dagster_home),
           "LOFI_DAGSTER_HOME": str(dagster_home), INTERVAL_ENV: str(INTERVAL_S),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with log.open("wb") as out:
        # Its own session, so the whole group (code server, run workers) can be stopped together.
        return subprocess.Popen([exe, "run", "-w", str(REPO / "workspace.yaml")], cwd=REPO, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the daemon's process group, SIGKILL after 15 s."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers in the group, if any
    except ProcessLookupError:
        pass
    proc.wait(timeout=15)
    for _ in range(50):
        alive = _living_members(proc.pid)
        if not alive:
            return
        time.sleep(0.2)
    raise AssertionError(f"processes {alive} of dagster-daemon's group {proc.pid} outlived SIGKILL")


def _living_members(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that are not zombies (read from /proc; [] where there is none)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def _tail(log: Path, lines: int = 25) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def _failure(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    for record in instance.all_logs(run.run_id):
        event = record.dagster_event
        if event is not None and event.event_type == dg.DagsterEventType.STEP_FAILURE:
            return f"{event.step_key}: {event.step_failure_data.error.message.strip()[:500]}"
    return "no step failure recorded"


def _sensor_state(instance: dg.DagsterInstance):
    return next((s for s in instance.all_instigator_state() if s.name == SENSOR), None)


def _last_tick(instance: dg.DagsterInstance) -> str:
    state = _sensor_state(instance)
    if state is None:
        return "the sensor never ticked"
    ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1)
    return ", ".join(f"{t.status.value} ({t.skip_reason or t.error or ''})" for t in ticks) or "none"


def _wait_for_success(instance, proc, log, deadline, *, count: int, grower: _GrowingFile | None) -> dg.DagsterRun:
    """The ``count``-th run of the sensor once it succeeded (fails on a failed run or at the deadline)."""
    while True:
        assert proc.poll() is None, f"dagster-daemon exited with {proc.returncode}:\n{_tail(log)}"
        assert grower is None or not grower.ran_out, "the growing file stopped growing before the run ended"
        records = sorted(instance.get_run_records(filters=dg.RunsFilter(tags={"lofi/trigger": SENSOR})),
                         key=lambda r: r.create_timestamp)
        assert len(records) <= count, f"more sensor runs than expected: {[r.dagster_run.tags for r in records]}"
        if len(records) == count:
            run = records[-1].dagster_run
            if run.status == dg.DagsterRunStatus.SUCCESS:
                return run
            assert run.status not in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED), (
                f"run {run.run_id[:8]} {run.status.value}: {_failure(instance, run)}")
        if time.monotonic() > deadline:
            pytest.fail(f"no successful {SENSOR} run #{count} within {DEADLINE_S:.0f} s of starting the daemon; "
                        f"runs: {[(r.dagster_run.run_id[:8], r.dagster_run.status.value) for r in records]}; "
                        f"last tick: {_last_tick(instance)}\ndaemon log:\n{_tail(log)}")
        time.sleep(1.0)


def _track_rows(lib: Library, table: str, column: str):
    return lib.df(f"SELECT {column} FROM {table} WHERE track_number = ?", [TRACK])


@pytest.mark.slow
def test_daemon_imports_a_dropped_song_and_refreshes_plan_and_gaps(tmp_path: Path, lofi_home: Settings):
    settings = lofi_home
    songs = _build_library(settings)
    lib = Library(settings.duckdb_path, home=settings.home)
    plan_before = lib.load_mix_plan(TRACK)[0]
    gaps_before = _track_rows(lib, "gap_reports", "built_at")["built_at"].iloc[0]
    known_before = set(_track_rows(lib, "song_files", "path")["path"])
    assert len(known_before) == 2

    dropped = songs / f"A_1_2_{TRACK}b.mp3"
    growing = songs / f"A_1_3_{TRACK}b.mp3"
    dropped_bytes = _song_bytes(tmp_path, dropped.name, bpm=72.0, key="D minor", seconds=12, seed=7)
    # ~2 KB every 0.5 s: a 30 s song at 128 kbit/s lasts ~2 min, longer than the deadline.
    grower = _GrowingFile(growing, _song_bytes(tmp_path, growing.name, bpm=76.0, key="F major",
                                               seconds=30, seed=8))

    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    # The library's own instance settings; runs are dequeued every second instead of five.
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(
        {**INSTANCE_YAML, "run_coordinator": {"module": "dagster._core.run_coordinator",
                                              "class": "QueuedRunCoordinator",
                                              "config": {"dequeue_interval_seconds": 1}}}))
    # Create the instance's SQLite storages here first: two processes creating them at
    # once can race (one sees "table already exists" and the daemon dies).
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    assert instance.get_runs(limit=1) == [] and _sensor_state(instance) is None
    instance.get_latest_materialization_event(dg.AssetKey("mix_plan"))
    log = tmp_path / "daemon.log"
    start = time.monotonic()
    deadline = start + DEADLINE_S
    proc = _start_daemon(settings.home, dagster_home, log)
    try:
        # A finished download: written under a hidden name (which the sensor ignores), then renamed.
        hidden = songs / f".{dropped.name}.part"
        hidden.write_bytes(dropped_bytes)
        os.replace(hidden, dropped)
        grower.start()

        run = _wait_for_success(instance, proc, log, deadline, count=1, grower=grower)
        first_s = time.monotonic() - start

        # Sensors were never switched on here: a fresh instance runs them by default.
        assert _sensor_state(instance) is not None
        assert run.tags.get("dagster/partition") == str(TRACK)
        assert run.job_name == "songs_job"
        selected = {key.to_user_string() for key in run.asset_selection or ()}
        assert {"audio_features", "songs_table", "mix_plan", "gap_report"} <= selected
        # The run analyses the stable file only, never the folder with the growing one in it.
        assert run.run_config["ops"]["audio_features"]["config"]["folders"] == [str(dropped)]
        materialized = {(key.to_user_string(), record.partition_key) for key in (dg.AssetKey("mix_plan"),
                        dg.AssetKey("gap_report")) for record in instance.fetch_materializations(
                        dg.AssetRecordsFilter(asset_key=key), limit=5).records}
        assert {("mix_plan", str(TRACK)), ("gap_report", str(TRACK))} <= materialized

        # In the library: the dropped song, a new mix plan that places it, a gap report built on that plan.
        files = _track_rows(lib, "song_files", "path, song_id")
        stored = dict(zip(files["path"], files["song_id"]))
        assert lib.store_path(dropped) in stored
        assert lib.store_path(growing) not in stored, "a file still being written was imported"
        errors = _track_rows(lib, "import_errors", "path")["path"]
        assert lib.store_path(growing) not in set(errors)
        header, entries = lib.load_mix_plan(TRACK)
        assert header["plan_id"] != plan_before["plan_id"]
        assert header["planned_at"] > plan_before["planned_at"]
        assert stored[lib.store_path(dropped)] in set(entries["song_id"])
        gaps = _track_rows(lib, "gap_reports", "plan_id, built_at")
        assert gaps["built_at"].iloc[0] > gaps_before
        assert gaps["plan_id"].iloc[0] == header["plan_id"]

        # The download finishes: two stable looks later it gets its own run.
        grower.finish.set()
        grower.join(timeout=10)
        second = _wait_for_success(instance, proc, log, deadline, count=2, grower=None)
        assert second.run_config["ops"]["audio_features"]["config"]["folders"] == [str(growing)]
        assert lib.store_path(growing) in set(_track_rows(lib, "song_files", "path")["path"])
        print(f"first run done after {first_s:.0f} s, second after {time.monotonic() - start:.0f} s")
    finally:
        grower.finish.set()
        _stop(proc)
    assert proc.poll() is not None


# ---------------------------------------------------------------- the rules behind it (fast)

def test_interval_comes_from_the_environment():
    assert file_sensor_interval({}) == 30
    assert file_sensor_interval({INTERVAL_ENV: " 5 "}) == 5
    for bad in ("0", "-5", "1.5", "five", "100000"):
        with pytest.raises(ConfigError, match=INTERVAL_ENV):
            file_sensor_interval({INTERVAL_ENV: bad})


def _tick(instance, library, cursor):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"library": library})
    return song_files_sensor(ctx), ctx.cursor


def test_fresh_cursor_requests_only_songs_the_library_does_not_hold(lofi_home: Settings):
    from lofi_pipeline.core import catalog
    from lofi_pipeline.core.audio import analyze_files

    songs = Path(lofi_home.tracks_dir) / "12" / "Songs"
    held = write_audio(synthesize_song(bpm=80, key="A minor", seconds=4, sr=22050, seed=1), 22050,
                       songs / "A_1_1_12a.wav")
    lib = Library(lofi_home.duckdb_path, home=lofi_home.home)
    scan = catalog.scan_for_import([held], known={}, versions={}, analyzer_version="")
    lib.upsert_songs(12, catalog.feature_frame([], analyze_files(scan.to_analyze, workers=1)),
                     filename_fields=catalog.filename_fields, describe=catalog.describe_songs)
    instance, library = dg.DagsterInstance.ephemeral(), build_resources(lofi_home)["library"]

    result, cursor = _tick(instance, library, None)  # a new instance: the sensor knows nothing
    assert isinstance(result, dg.SkipReason) and "still changing" in result.skip_message
    result, cursor = _tick(instance, library, cursor)
    assert isinstance(result, dg.SkipReason)
    assert "1 complete file(s) already in the library" in result.skip_message

    new = write_audio(synthesize_song(bpm=84, key="C major", seconds=4, sr=22050, seed=2), 22050,
                      songs / "A_1_2_12a.wav")
    os.utime(held, (1_700_000_000, 1_700_000_000))  # touched: no longer the state the library holds
    _, cursor = _tick(instance, library, cursor)
    result, cursor = _tick(instance, library, cursor)
    [request] = result.run_requests
    assert request.run_config["ops"]["audio_features"]["config"]["folders"] == sorted([str(held), str(new)])
    assert request.run_config["execution"] == {"config": {"in_process": {}}}
