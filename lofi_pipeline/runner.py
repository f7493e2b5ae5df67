"""Launch the project's Dagster jobs in-process against the library's own instance.

The CLI and the demo go through here, so every run they start is recorded in
``DAGSTER_HOME`` (``data/dagster_home`` by default) and shows in the UI.

Three things make a CLI run behave like a run launched from the UI:

* **Its origin.** A run created by ``execute_in_process`` has no code-location
  origin, so the UI lists it in the global run list only: a job's Runs tab
  filters on the ``.dagster/repository`` tag (``__repository__@<location>``)
  and the Overview timeline groups runs by their repository origin. Here the
  run is created with the remote job origin of this code location (the one
  ``workspace.yaml`` and ``lofi ui`` load, ``lofi_pipeline.definitions``) and
  the job's Python origin, then executed in this process
  (``execute_run`` with the in-process executor).
* **Who runs it.** The launching process's pid, its start time and the host
  are run tags. A later command that finds a run still STARTED (or STARTING)
  whose process is gone marks it failed and frees the concurrency slots it
  held (:func:`recover_crashed_runs`), so a ``kill -9`` never blocks the
  ``duckdb`` pool for good. A run the process created but was killed before
  starting (NOT_STARTED) is marked failed the same way.
* **Its chatter.** Dagster's own step messages stay in the run's log; the CLI
  sees only the lines our assets log (progress, warnings) through
  :data:`LOG_LISTENERS`, and one error line when the run fails.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lofi_pipeline.core.errors import LofiError
from lofi_pipeline.core.files import pid_alive
from lofi_pipeline.core.secrets import scrub
from lofi_pipeline.settings import Settings

if TYPE_CHECKING:  # dagster is imported lazily: read-only commands never load it
    import dagster as dg

# The CLI registers callbacks here to turn "[progress] ..." log lines into progress bars.
# Each is called as listener(message, level, from_dagster): from_dagster is True for
# Dagster's own event messages (step started, step failed, ...), False for asset log lines.
LOG_LISTENERS: list[Callable[[str, int, bool], None]] = []

#: The code location the UI loads (workspace.yaml's python_module, `lofi ui`).
CODE_LOCATION_MODULE = "lofi_pipeline.definitions"
DEFINITIONS_ATTRIBUTE = "defs"

PID_TAG, PID_START_TAG, HOST_TAG = "lofi/pid", "lofi/pid_start", "lofi/host"

INSTANCE_YAML = {
    # The library's writing assets share the `duckdb` pool; one at a time across runs.
    "concurrency": {"pools": {"default_limit": 1}},
    "telemetry": {"enabled": False},
}


def _cli_listener_logger():
    import dagster as dg

    @dg.logger(description="Forwards run log lines to the lofi CLI (progress bars, warnings).")
    def cli_listener_logger(init_context):
        log = logging.getLogger("lofi.cli_listener")

        class _Forward(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                meta = getattr(record, "dagster_meta", None) or {}
                message = meta.get("orig_message") or record.getMessage()
                from_dagster = meta.get("dagster_event") is not None
                for listener in list(LOG_LISTENERS):
                    listener(str(message), record.levelno, from_dagster)

        log.handlers = [_Forward()]
        log.setLevel(logging.INFO)
        log.propagate = False
        return log

    return cli_listener_logger


def prepare_instance(settings: Settings) -> "dg.DagsterInstance":
    """The persistent instance under the library's dagster_home (created on first use)."""
    import dagster as dg

    home = Path(settings.dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text(yaml.safe_dump(INSTANCE_YAML, sort_keys=False))
    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


def start_collecting() -> None:
    """Turn the garbage collector on for the work, start-up's objects frozen out of its way.

    The ``lofi`` command starts with the collector off (:func:`lofi_pipeline.cli.main`):
    start-up only allocates what lives as long as the process, and the
    collector's full passes over that growing heap freed nothing and cost
    0.2-0.4 s per command. ``gc.freeze`` moves those objects to a generation the
    collector never scans, so the collections during the work stay cheap.
    Nothing happens when the collector is already on (tests, Python callers).
    """
    if gc.isenabled():
        return
    gc.freeze()
    gc.enable()


# --------------------------------------------------------------------------- who runs it
def _process_start(pid: int) -> str:
    """The start time of process ``pid`` in clock ticks since boot ('' when unknown).

    With the pid it identifies a process: a pid reused by a new process after a
    crash has another start time.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # Field 22; the command name (field 2) may hold spaces, so split after its ')'.
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else ""


def launcher_tags() -> dict[str, str]:
    """Run tags naming this process: pid, its start time, host."""
    pid = os.getpid()
    return {PID_TAG: str(pid), PID_START_TAG: _process_start(pid), HOST_TAG: socket.gethostname()}


def launcher_is_gone(tags: dict[str, str]) -> bool:
    """True when the run's tags name a process on this host that no longer exists.

    A run launched on another host, or without our tags (the UI, the daemon),
    is never judged: Dagster's own run monitoring looks after those.
    """
    try:
        pid = int(tags.get(PID_TAG, ""))
    except ValueError:
        return False
    if tags.get(HOST_TAG) != socket.gethostname() or pid <= 0:
        return False
    if not pid_alive(pid):
        return True
    started = tags.get(PID_START_TAG)
    return bool(started) and _process_start(pid) not in ("", started)


def recover_crashed_runs(instance: "dg.DagsterInstance") -> list[str]:
    """Mark runs left STARTED/STARTING (or created, NOT_STARTED) by a vanished lofi process failed.

    Frees the pool slots they held. Returns one line per run recovered, for the caller to show.
    """
    import dagster as dg

    stuck = instance.get_runs(filters=dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.NOT_STARTED]))
    notes = []
    for run in stuck:
        if not launcher_is_gone(run.tags):
            continue
        pid = run.tags.get(PID_TAG)
        began = run.status != dg.DagsterRunStatus.NOT_STARTED
        instance.report_run_failed(run, f"the process that {'ran' if began else 'created'} this run (pid {pid} "
                                        f"on {run.tags.get(HOST_TAG)}) is gone (killed or crashed"
                                        f"{'' if began else ' before the run started'}); "
                                        "marked failed by the next lofi command")
        if instance.event_log_storage.supports_global_concurrency_limits:
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        partition = run.tags.get("dagster/partition")
        left = "left running" if began else "created, never started,"
        notes.append(f"run {run.run_id[:8]} ({run.job_name}{f', track {partition}' if partition else ''}) "
                     f"was {left} by process {pid}, which is gone: marked failed"
                     f"{', its library slot freed' if began else ''}")
    _free_slots_of_finished_runs(instance)
    return notes


def _free_slots_of_finished_runs(instance: "dg.DagsterInstance") -> None:
    """Free the pool slots (and queued steps) of runs that ended, or no longer exist.

    A run whose process raised outside a step can end FAILURE with a slot still
    claimed; without a daemon nothing frees it (the daemon's concurrency
    monitor does the same after ``free_slots_after_run_end_seconds``).
    """
    import dagster as dg

    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return
    run_ids = set(storage.get_concurrency_run_ids())
    if not run_ids:
        return
    alive = {r.run_id for r in instance.get_runs(filters=dg.RunsFilter(run_ids=list(run_ids)))
             if not r.is_finished}
    for run_id in run_ids - alive:
        storage.free_concurrency_slots_for_run(run_id)


# --------------------------------------------------------------------------- origin
def code_location_origins(job_name: str, repository_name: str):
    """The remote job origin (what the UI filters on) and the Python origin of ``job_name``.

    The same origins Dagster gives a run launched from the UI of the code
    location ``lofi_pipeline.definitions`` (as workspace.yaml and ``lofi ui`` load it).
    """
    from dagster._core.definitions.reconstruct import ReconstructableRepository
    from dagster._core.remote_origin import ManagedGrpcPythonEnvCodeLocationOrigin, RemoteRepositoryOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    workdir = str(Path(__file__).resolve().parents[1])
    location = ManagedGrpcPythonEnvCodeLocationOrigin(LoadableTargetOrigin(
        executable_path=sys.executable, module_name=CODE_LOCATION_MODULE, working_directory=workdir))
    remote = RemoteRepositoryOrigin(code_location_origin=location,
                                    repository_name=repository_name).get_job_origin(job_name)
    python = ReconstructableRepository.for_module(CODE_LOCATION_MODULE, DEFINITIONS_ATTRIBUTE,
                                                  working_directory=workdir)
    return remote, python.get_reconstructable_job(job_name).get_python_origin()


# --------------------------------------------------------------------------- run
def _failure_message(events) -> str:
    import dagster as dg

    for event in events:
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            err = event.step_failure_data.error
            while err.cause is not None and "dagster" in (err.cls_name or "").lower():
                err = err.cause
            # Innermost user error: "ClassName: message" -> message
            msg = (err.message or "").strip().splitlines()[0] if err.message else str(err)
            msg = re.sub(r"^[\w.]+(Error|Exception)\w*:\s*", "", msg)
            return f"step {event.step_key} failed: {scrub(msg)}"
    return "run failed"


def run_job(settings: Settings, job_name: str, *, partition: int | None = None,
            run_config: dict[str, Any] | None = None, tags: dict[str, str] | None = None,
            instance: "dg.DagsterInstance | None" = None,
            on_notice: Callable[[str], None] | None = None):
    """Execute one of the project's jobs in this process as a run of its code location.

    Runs left behind by a killed lofi process are recovered first (see
    :func:`recover_crashed_runs`; each is reported through ``on_notice``, or on
    stderr when no ``on_notice`` is given: a recovery is never silent).
    Raises LofiError with the failed step's message when the run fails.
    """
    import dagster as dg
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.execution.api import create_execution_plan, execute_run
    from dagster._core.execution.execute_in_process import merge_run_tags

    from lofi_pipeline.defs.partitions import ensure_track_partition
    from lofi_pipeline.defs.build import build_definitions

    instance = instance or prepare_instance(settings)
    for note in recover_crashed_runs(instance):
        if on_notice is None:
            print(f"warning: {note}", file=sys.stderr)
        else:
            on_notice(note)
    defs = build_definitions(settings)
    defs = dg.Definitions.merge(defs, dg.Definitions(loggers={
        "console": dg.colored_console_logger, "cli": _cli_listener_logger()}))
    job = defs.resolve_job_def(job_name)
    config = dict(run_config or {})
    config.setdefault("loggers", {"console": {"config": {"log_level": "CRITICAL"}}, "cli": {}})
    # In this process, like execute_in_process; the UI's runs use the job's default executor.
    config.setdefault("execution", {"config": {"in_process": {}}})
    key = ensure_track_partition(instance, partition) if partition is not None else None
    run_tags = merge_run_tags(job_def=job, partition_key=key, asset_selection=None, instance=instance,
                              run_config=config,
                              tags={"lofi/launched_by": "cli", "lofi/home": str(settings.home),
                                    **launcher_tags(), **(tags or {})})
    remote_origin, python_origin = code_location_origins(job_name, defs.get_repository_def().name)
    in_memory = InMemoryJob(job)
    plan = create_execution_plan(in_memory, run_config=config, instance_ref=instance.get_ref(), tags=run_tags)
    run = instance.create_run_for_job(job_def=job, execution_plan=plan, run_config=config, tags=run_tags,
                                      remote_job_origin=remote_origin, job_code_origin=python_origin)
    start_collecting()
    result = execute_run(in_memory, run, instance, raise_on_error=False)
    if not result.success:
        raise LofiError(f"{job_name}{f' (track {partition})' if partition is not None else ''}: "
                        f"{_failure_message(result.all_events)} — run {result.run_id[:8]} in the Dagster UI "
                        "has details")
    return result


def asset_metadata(result, asset: str) -> dict[str, Any]:
    """The metadata of an asset materialised by ``result``, as plain values."""
    for mat in result.asset_materializations_for_node(asset):
        return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    return {}


def step_seconds(instance: "dg.DagsterInstance", run_id: str) -> float:
    """The run's work: the sum of its steps' durations (start to success or failure), in seconds."""
    import dagster as dg

    starts: dict[str, float] = {}
    total = 0.0
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or not event.step_key:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[event.step_key] = record.timestamp
        elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            if event.step_key in starts:
                total += record.timestamp - starts.pop(event.step_key)
    return total
