"""A `lofi` process killed with SIGKILL mid-run never blocks the library (issue 13, crash recovery).

Real processes on a copy of the demo library, with their own Dagster instance:
the first `lofi query` is killed while `track_matches` runs (holding the one
`duckdb` pool slot); the next command must finish in bounded time, say once
that it recovered the run, and leave that run FAILURE with its slot freed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lofi_pipeline.demo import NEW_TRACK
from lofi_pipeline.runner import INSTANCE_YAML

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def _lofi(*args: str) -> list[str]:
    return [sys.executable, "-m", "lofi_pipeline.cli", *args]


def _env(home: Path, dagster_home: Path) -> dict[str, str]:
    return {**os.environ, "LOFI_HOME": str(home), "LOFI_DAGSTER_HOME": str(dagster_home),
            "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _instance(dagster_home: Path):
    """A Dagster instance configured like the library's, created (SQLite schema too) in ``dagster_home``."""
    import dagster as dg

    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(INSTANCE_YAML))
    return dg.DagsterInstance.from_config(str(dagster_home))


def _gone_launcher_tags() -> dict[str, str]:
    """Run tags naming a lofi process on this host that has exited (its pid, no start time)."""
    from lofi_pipeline.runner import PID_START_TAG, PID_TAG, launcher_tags

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return {**launcher_tags(), PID_TAG: str(gone.pid), PID_START_TAG: ""}


def _step_started(instance, run_id: str, step: str) -> bool:
    import dagster as dg

    return any(r.dagster_event is not None and r.dagster_event.event_type == dg.DagsterEventType.STEP_START
               and r.dagster_event.step_key == step for r in instance.all_logs(run_id))


def test_sigkill_mid_run_is_recovered_by_the_next_command(demo_home, tmp_path):
    import dagster as dg

    settings, _ = demo_home
    home = tmp_path / "library"
    shutil.copytree(settings.home, home, ignore=shutil.ignore_patterns("dagster_home"))
    dagster_home = tmp_path / "dagster_home"
    env = _env(home, dagster_home)
    # The instance (its SQLite schema) exists before either process opens it.
    instance = _instance(dagster_home)

    victim = subprocess.Popen(_lofi("query", "--track", str(NEW_TRACK)), env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run = None
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and victim.poll() is None:
            runs = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
            if runs and _step_started(instance, runs[0].run_id, "track_matches"):
                run = runs[0]
                break
            time.sleep(0.1)
        assert run is not None, f"never saw track_matches start: {victim.stderr.read().decode()[-2000:]}"
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert run.tags["lofi/pid"] == str(victim.pid)
    # What issue 13 saw: the run stays STARTED and the pool slot stays taken.
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
    assert run.run_id in instance.event_log_storage.get_concurrency_run_ids()

    started = time.monotonic()
    nxt = subprocess.run(_lofi("query", "--track", str(NEW_TRACK)), env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    took = time.monotonic() - started
    assert nxt.returncode == 0, nxt.stderr[-3000:]
    assert took < 180
    notes = [line for line in nxt.stderr.splitlines() if run.run_id[:8] in line]
    assert len(notes) == 1 and "marked failed" in notes[0] and str(victim.pid) in notes[0], nxt.stderr
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    assert run.run_id not in instance.event_log_storage.get_concurrency_run_ids()
    latest = instance.get_runs(limit=1)[0]
    assert latest.run_id != run.run_id and latest.status == dg.DagsterRunStatus.SUCCESS


def test_a_live_or_foreign_launcher_is_left_alone():
    from lofi_pipeline.runner import HOST_TAG, PID_START_TAG, PID_TAG, launcher_is_gone, launcher_tags

    mine = launcher_tags()
    assert not launcher_is_gone(mine)  # this process is alive
    assert not launcher_is_gone({**mine, HOST_TAG: "another-host"})  # cannot tell: leave it
    assert not launcher_is_gone({})  # launched by the UI or the daemon: Dagster's business
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert launcher_is_gone({**mine, PID_TAG: str(child.pid), PID_START_TAG: ""})
    if mine[PID_START_TAG]:  # a reused pid: same number, another start time
        assert launcher_is_gone({**mine, PID_START_TAG: str(int(mine[PID_START_TAG]) + 1)})


def test_a_recovery_is_reported_to_callers_without_a_notice_hook(demo_home, tmp_path, capfd):
    """run_job called as the demo calls it (no on_notice) still says which run it marked failed."""
    import dagster as dg

    from lofi_pipeline.runner import PID_TAG, run_job
    from lofi_pipeline.settings import Settings

    settings, _ = demo_home
    home = tmp_path / "library"
    shutil.copytree(settings.home, home, ignore=shutil.ignore_patterns("dagster_home"))
    instance = _instance(tmp_path / "dagster_home")
    tags = _gone_launcher_tags()
    stuck = instance.add_run(dg.DagsterRun(job_name="stats_job", status=dg.DagsterRunStatus.STARTED,
                                           tags=tags))

    capfd.readouterr()
    run_job(Settings.load(home), "stats_job", instance=instance)
    err = capfd.readouterr().err
    notes = [line for line in err.splitlines() if stuck.run_id[:8] in line]
    assert len(notes) == 1 and notes[0].startswith("warning:") and tags[PID_TAG] in notes[0], err
    assert instance.get_run_by_id(stuck.run_id).status == dg.DagsterRunStatus.FAILURE


def test_a_run_created_by_a_killed_process_but_never_started_is_marked_failed(tmp_path):
    """kill -9 between creating a run and starting it leaves it NOT_STARTED: the next command fails it."""
    import dagster as dg

    from lofi_pipeline.runner import PID_TAG, recover_crashed_runs

    instance = _instance(tmp_path / "dagster_home")
    tags = _gone_launcher_tags()
    created = instance.add_run(dg.DagsterRun(job_name="import_job", status=dg.DagsterRunStatus.NOT_STARTED,
                                             tags={**tags, "dagster/partition": "104"}))
    queued_by_ui = instance.add_run(dg.DagsterRun(job_name="import_job", status=dg.DagsterRunStatus.NOT_STARTED))

    notes = recover_crashed_runs(instance)
    assert len(notes) == 1 and created.run_id[:8] in notes[0] and "never started" in notes[0], notes
    assert "track 104" in notes[0] and tags[PID_TAG] in notes[0]
    assert instance.get_run_by_id(created.run_id).status == dg.DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(queued_by_ui.run_id).status == dg.DagsterRunStatus.NOT_STARTED
    assert recover_crashed_runs(instance) == []  # once
