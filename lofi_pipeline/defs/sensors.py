"""Sensors: new rendered audio in Tracks/*/Rendered/ goes back into the library."""


import json
from pathlib import Path

import dagster as dg

from lofi_pipeline.core.watch import batch_key, ready_to_import, scan_rendered
from lofi_pipeline.defs.jobs import post_render_job
from lofi_pipeline.defs.partitions import track_partitions
from lofi_pipeline.defs.resources import LibraryResource


@dg.sensor(job=post_render_job, minimum_interval_seconds=30,
           default_status=dg.DefaultSensorStatus.STOPPED,
           description="Imports audio files that land in Tracks/{N}/Rendered/ once their size is "
                       "stable across two ticks; the cursor remembers what was imported.")
def rendered_files_sensor(context: dg.SensorEvaluationContext, library: LibraryResource):
    cursor = json.loads(context.cursor) if context.cursor else {"seen": {}, "imported": {}}
    current = scan_rendered(Path(library.tracks_dir))
    flat = {p: s for files in current.values() for p, s in files.items()}
    ready = ready_to_import(current, cursor["seen"], cursor["imported"])
    runs, partitions = [], []
    for track, paths in sorted(ready.items()):
        key = str(track)
        if not context.instance.has_dynamic_partition(track_partitions.name, key):
            partitions.append(key)
        runs.append(dg.RunRequest(
            run_key=batch_key(track, paths, flat), partition_key=key,
            run_config={"ops": {"audio_features": {"config": {
                "folders": [str(Path(library.tracks_dir) / key / "Rendered")]}}}},
            tags={"lofi/trigger": "rendered_files_sensor", "lofi/files": str(len(paths))}))
        for p in paths:
            cursor["imported"][p] = flat[p]
    waiting = sum(1 for p, s in flat.items() if cursor["seen"].get(p) != s)
    cursor["seen"] = flat
    context.update_cursor(json.dumps(cursor))
    if not runs:
        reason = (f"{waiting} file(s) still changing; waiting one more tick" if waiting
                  else "no new complete audio files in Tracks/*/Rendered/")
        return dg.SkipReason(reason)
    return dg.SensorResult(
        run_requests=runs,
        dynamic_partitions_requests=[track_partitions.build_add_request(partitions)] if partitions else [])


ALL_SENSORS = [rendered_files_sensor]
