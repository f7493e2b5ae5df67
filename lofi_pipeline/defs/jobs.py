"""Jobs the CLI and sensors launch. Each is a selection of the same assets."""

import dagster as dg

from lofi_pipeline.defs.assets import (
    audio_features,
    gap_report,
    library_stats,
    mix_plan,
    notion_pages,
    render_folder,
    rendered_mix,
    song_embeddings,
    songs_table,
    track_matches,
    track_plans,
)
from lofi_pipeline.defs.partitions import track_partitions

SONG_ASSETS = [audio_features, songs_table, song_embeddings, library_stats]
PLAN_ASSETS = [track_matches, mix_plan, gap_report]

import_job = dg.define_asset_job(
    "import_job", selection=[notion_pages, track_plans, *SONG_ASSETS, *PLAN_ASSETS],
    partitions_def=track_partitions,
    description="Page → plan → audio features → songs → embeddings → matches → mix plan → gaps.")
notion_sync_job = dg.define_asset_job(
    "notion_sync_job", selection=[notion_pages, track_plans], partitions_def=track_partitions,
    description="Re-read a track's page and update its plan.")
songs_job = dg.define_asset_job(
    "songs_job", selection=[*SONG_ASSETS, *PLAN_ASSETS], partitions_def=track_partitions,
    description="New audio of a track (Songs/ or Rendered/) into the library, then its plan and gaps refreshed.")
embed_job = dg.define_asset_job("embed_job", selection=[song_embeddings, library_stats],
                                description="Bring song embeddings up to date.")
query_job = dg.define_asset_job(
    "query_job", selection=PLAN_ASSETS, partitions_def=track_partitions,
    description="Matches + mix plan + gap report, without touching Tracks/{N}/Songs.")
plan_job = dg.define_asset_job(
    "plan_job", selection=[*PLAN_ASSETS, render_folder], partitions_def=track_partitions,
    description="Matches + mix plan + gaps + prepared render folder.")
prepare_job = dg.define_asset_job("prepare_job", selection=[render_folder], partitions_def=track_partitions)
render_job = dg.define_asset_job("render_job", selection=[rendered_mix], partitions_def=track_partitions,
                                 description="Render the stored mix plan with ffmpeg.")
stats_job = dg.define_asset_job("stats_job", selection=[library_stats], description="Refresh the library report.")

ALL_JOBS = [import_job, notion_sync_job, songs_job, embed_job, query_job, plan_job, prepare_job, render_job,
            stats_job]
