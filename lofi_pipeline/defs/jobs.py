"""Jobs the CLI, sensors and schedules launch. Each is a selection of the same assets."""

import dagster as dg

from lofi_pipeline.defs.assets import (
    audio_features,
    gap_report,
    library_stats,
    notion_pages,
    render_folder,
    rendered_mix,
    song_embeddings,
    songs_table,
    track_matches,
    track_plans,
    track_selection,
)
from lofi_pipeline.defs.partitions import track_partitions

import_job = dg.define_asset_job(
    "import_job",
    selection=[notion_pages, track_plans, audio_features, songs_table, song_embeddings, library_stats],
    partitions_def=track_partitions, description="Page → plan → audio features → songs → embeddings.")
notion_sync_job = dg.define_asset_job(
    "notion_sync_job", selection=[notion_pages, track_plans], partitions_def=track_partitions,
    description="Re-read a track's page and update its plan.")
embed_job = dg.define_asset_job("embed_job", selection=[song_embeddings, library_stats],
                                description="Bring song embeddings up to date.")
plan_job = dg.define_asset_job(
    "plan_job", selection=[track_matches, track_selection, gap_report, render_folder],
    partitions_def=track_partitions, description="Query + selection + gaps + prepared render folder.")
query_job = dg.define_asset_job(
    "query_job", selection=[track_matches, track_selection, gap_report], partitions_def=track_partitions,
    description="Query + selection + gap report, without touching Tracks/{N}/Songs.")
prepare_job = dg.define_asset_job("prepare_job", selection=[render_folder], partitions_def=track_partitions)
render_job = dg.define_asset_job("render_job", selection=[rendered_mix], partitions_def=track_partitions,
                                 description="Render the mix video with ffmpeg.")
post_render_job = dg.define_asset_job(
    "post_render_job", selection=[audio_features, songs_table, song_embeddings, library_stats],
    partitions_def=track_partitions,
    description="Fold new audio from Tracks/{N}/Rendered back into the library.")

ALL_JOBS = [import_job, notion_sync_job, embed_job, plan_job, query_job, prepare_job, render_job,
            post_render_job]
