"""Sensors: new audio in Tracks/*/Songs/ or Tracks/*/Rendered/ goes into the library; Notion pages sync.

The file sensors run by default (they only read the Tracks/ folder); the
Notion sensor runs by default too but skips unless a token and a parent page
are configured. This is the one Notion sync path: it asks Notion for pages
edited since its cursor and re-imports only those.

The file sensors look every ``LOFI_FILE_SENSOR_INTERVAL_SECONDS`` seconds
(default 30; read when the code location loads). A file is imported once its
size and mtime are the same on two looks in a row, so a download shows up in
the library one to two intervals after it finishes. The daemon itself never
evaluates a sensor more often than every 5 s, so smaller values act as 5;
the daemon test sets 5 to stay within its time bound.
"""


import json
import os
from pathlib import Path

import dagster as dg

from lofi_pipeline.core.errors import ConfigError
from lofi_pipeline.core.watch import batch_key, ready_to_import, scan_track_files, without_known
from lofi_pipeline.defs.jobs import PLAN_ASSETS, SONG_ASSETS, notion_sync_job, songs_job
from lofi_pipeline.defs.partitions import track_partitions
from lofi_pipeline.defs.resources import LibraryResource, NotionResource


INTERVAL_ENV = "LOFI_FILE_SENSOR_INTERVAL_SECONDS"
DEFAULT_INTERVAL_SECONDS = 30


def file_sensor_interval(environ: dict[str, str] | None = None) -> int:
    """Seconds between two looks of the file sensors (``LOFI_FILE_SENSOR_INTERVAL_SECONDS``, default 30).

    Raises
    ------
    ConfigError
        The variable is set but is not a whole number of seconds from 1 to 86400.
    """
    raw = (os.environ if environ is None else environ).get(INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_INTERVAL_SECONDS
    if not raw.isdigit() or not 1 <= int(raw) <= 86400:
        raise ConfigError(f"{INTERVAL_ENV}={raw[:40]!r}: expected a whole number of seconds from 1 to 86400")
    return int(raw)


# The sensor's runs execute their steps in the run worker's own process, as the CLI's
# runs do: the steps run one after another anyway (the duckdb pool holds one), and one
# process loads the code location and the embedding model once instead of once per step.
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


def _file_sensor(name: str, subfolder: str, description: str):
    @dg.sensor(name=name, job=songs_job, minimum_interval_seconds=file_sensor_interval(),
               default_status=dg.DefaultSensorStatus.RUNNING, description=description)
    def _sensor(context: dg.SensorEvaluationContext, library: LibraryResource):
        cursor = json.loads(context.cursor) if context.cursor else {"seen": {}, "imported": {}}
        current = scan_track_files(Path(library.tracks_dir), subfolder)
        flat = {p: s for files in current.values() for p, s in files.items()}
        ready = ready_to_import(current, cursor["seen"], cursor["imported"])
        lib = library.library() if ready else None
        new = without_known(ready, flat, lib.known_files()) if lib else {}
        planned = set(lib.track_numbers()) if new else set()
        known = sum(len(paths) for paths in ready.values()) - sum(len(paths) for paths in new.values())
        for paths in ready.values():
            for p in paths:  # requested below, or already in the library: either way done
                cursor["imported"][p] = flat[p]
        runs, partitions = [], []
        for track, paths in sorted(new.items()):
            key = str(track)
            if not context.instance.has_dynamic_partition(track_partitions.name, key):
                partitions.append(key)
            # A track whose page is not imported yet gets its songs, not a plan.
            assets = SONG_ASSETS + (PLAN_ASSETS if track in planned else [])
            # The run analyses exactly the files found stable, not their folder: a
            # neighbour still being downloaded waits for a later tick and its own run.
            runs.append(dg.RunRequest(
                run_key=batch_key(track, paths, flat, prefix=name), partition_key=key,
                asset_selection=[a.key for a in assets],
                run_config={**IN_PROCESS, "ops": {"audio_features": {"config": {"folders": sorted(paths)}}}},
                tags={"lofi/trigger": name, "lofi/files": str(len(paths))}))
        waiting = sum(1 for p, s in flat.items() if cursor["seen"].get(p) != s)
        cursor["seen"] = flat
        context.update_cursor(json.dumps(cursor))
        if not runs:
            parts = [f"{waiting} file(s) new or still changing, looking again next tick" if waiting else "",
                     f"{known} complete file(s) already in the library unchanged" if known else ""]
            reason = "; ".join(filter(None, parts)) or f"no new complete audio files in Tracks/*/{subfolder}/"
            return dg.SkipReason(reason)
        return dg.SensorResult(
            run_requests=runs,
            dynamic_partitions_requests=[track_partitions.build_add_request(partitions)] if partitions else [])

    return _sensor


rendered_files_sensor = _file_sensor(
    "rendered_files_sensor", "Rendered",
    "Imports audio files that land in Tracks/{N}/Rendered/ once their size is stable across two ticks, "
    "then refreshes the track's plan and gaps; the cursor remembers what was imported.")
song_files_sensor = _file_sensor(
    "song_files_sensor", "Songs",
    "Imports new songs dropped into Tracks/{N}/Songs/ (where Suno downloads land) once their size is "
    "stable across two ticks, then refreshes the track's plan and gaps, so its gaps close as songs arrive.")


@dg.sensor(job=notion_sync_job, minimum_interval_seconds=600,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Polls the Notion parent page or database (notion.parent in lofi.yaml) for track "
                       "pages edited since its cursor; adds their track partitions and re-imports only "
                       "the changed pages. Skips until NOTION_TOKEN and notion.parent are set.")
def notion_pages_sensor(context: dg.SensorEvaluationContext, notion: NotionResource):
    from lofi_pipeline.core.tracknumbers import track_number_from_title

    if not notion.parent:
        return dg.SkipReason("notion.parent is not set in lofi.yaml")
    if not os.environ.get(notion.token_env):
        return dg.SkipReason(f"{notion.token_env} is not set")
    since = context.cursor or None
    pages = notion.list_pages(edited_after=since)
    runs, partitions, skipped = [], [], []
    newest = since
    for page in pages:
        edited = page.get("last_edited_time")
        newest = max(filter(None, [newest, edited])) if edited else newest
        n = track_number_from_title(page.get("title"))
        if n is None:
            skipped.append(page.get("title") or page["id"])
            continue
        key = str(n)
        if not context.instance.has_dynamic_partition(track_partitions.name, key) and key not in partitions:
            partitions.append(key)
        runs.append(dg.RunRequest(
            run_key=f"notion-{page['id']}-{edited}", partition_key=key,
            run_config={"ops": {"notion_pages": {"config": {"page": page["id"]}}}},
            tags={"lofi/trigger": "notion_pages_sensor"}))
    for title in skipped:
        context.log.info(f"skipped page '{title}': no track number in its title")
    if newest:
        context.update_cursor(newest)
    if not runs:
        return dg.SkipReason(f"no track page edited since {since or 'the beginning'}")
    return dg.SensorResult(
        run_requests=runs,
        dynamic_partitions_requests=[track_partitions.build_add_request(partitions)] if partitions else [])


ALL_SENSORS = [rendered_files_sensor, song_files_sensor, notion_pages_sensor]
