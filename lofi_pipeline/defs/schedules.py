"""Notion sync: re-read every track page that came from the Notion API (stopped by default)."""


import dagster as dg

from lofi_pipeline.defs.jobs import notion_sync_job
from lofi_pipeline.defs.resources import LibraryResource


@dg.schedule(job=notion_sync_job, cron_schedule="0 * * * *",
             default_status=dg.DefaultScheduleStatus.STOPPED,
             description="Hourly: refresh the plans of tracks imported from Notion URLs. "
                         "Pages whose last_edited_time did not change leave the cache as it was.")
def notion_sync_schedule(context: dg.ScheduleEvaluationContext, library: LibraryResource):
    rows = library.library().df("SELECT track_number, page_ref FROM tracks "
                                "WHERE page_ref IS NOT NULL ORDER BY track_number")
    api_tracks = [int(r.track_number) for r in rows.itertuples() if not str(r.page_ref).endswith(".md")]
    if not api_tracks:
        return dg.SkipReason("no tracks imported from a Notion URL yet")
    stamp = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else "now"
    return [dg.RunRequest(run_key=f"notion-sync-{n}-{stamp}", partition_key=str(n)) for n in api_tracks]


ALL_SCHEDULES = [notion_sync_schedule]
