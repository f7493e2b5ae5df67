"""Launch the project's Dagster jobs in-process against the library's own instance.

The CLI and the demo go through here, so every run they start is recorded in
``DAGSTER_HOME`` (``data/dagster_home`` by default) and shows in the UI.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from lofi_pipeline.core.errors import LofiError
from lofi_pipeline.core.secrets import scrub
from lofi_pipeline.settings import Settings

# The CLI registers callbacks here to turn "[progress] ..." log lines into progress bars.
LOG_LISTENERS: list[Callable[[str, int], None]] = []

INSTANCE_YAML = {
    # The library's writing assets share the `duckdb` pool; one at a time across runs.
    "concurrency": {"pools": {"default_limit": 1}},
    "telemetry": {"enabled": False},
}


@dg.logger(description="Forwards run log lines to the lofi CLI (progress bars, warnings).")
def cli_listener_logger(init_context):
    log = logging.getLogger("lofi.cli_listener")

    class _Forward(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            meta = getattr(record, "dagster_meta", None) or {}
            message = meta.get("orig_message") or record.getMessage()
            for listener in list(LOG_LISTENERS):
                listener(str(message), record.levelno)

    log.handlers = [_Forward()]
    log.setLevel(logging.INFO)
    log.propagate = False
    return log


def prepare_instance(settings: Settings) -> dg.DagsterInstance:
    """The persistent instance under the library's dagster_home (created on first use)."""
    home = Path(settings.dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text(yaml.safe_dump(INSTANCE_YAML, sort_keys=False))
    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
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
            instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
    """Execute one of the project's jobs in-process; raise LofiError with the step's message on failure."""
    from lofi_pipeline.defs.partitions import ensure_track_partition
    from lofi_pipeline.definitions import build_definitions

    instance = instance or prepare_instance(settings)
    defs = build_definitions(settings)
    defs = dg.Definitions.merge(defs, dg.Definitions(loggers={
        "console": dg.colored_console_logger, "cli": cli_listener_logger}))
    job = defs.resolve_job_def(job_name)
    config = dict(run_config or {})
    config.setdefault("loggers", {"console": {"config": {"log_level": "CRITICAL"}}, "cli": {}})
    if partition is not None:
        ensure_track_partition(instance, partition)
    result = job.execute_in_process(
        instance=instance, partition_key=str(partition) if partition is not None else None,
        run_config=config, tags={"lofi/launched_by": "cli", "lofi/home": str(settings.home), **(tags or {})},
        raise_on_error=False)
    if not result.success:
        raise LofiError(f"{job_name}{f' (track {partition})' if partition is not None else ''}: "
                        f"{_failure_message(result)} — run {result.run_id[:8]} in the Dagster UI has details")
    return result


def asset_metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    """The metadata of an asset materialised by ``result``, as plain values."""
    for mat in result.asset_materializations_for_node(asset):
        return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    return {}
