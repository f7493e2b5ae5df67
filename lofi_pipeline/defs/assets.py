"""Assets: one per pipeline stage. Each resolves resources, calls the core, reports metadata.

notion_pages → track_plans → audio_features → songs_table → song_embeddings → library_stats
track_plans + song_embeddings → track_matches → mix_plan → gap_report → render_folder → rendered_mix

What one asset hands the next is stored where the graph can see it: the
page cache (notion_pages), the per-track features Parquet file
(audio_features), and the library's tables (everything else).
"""


import dagster as dg
import pandas as pd

from lofi_pipeline.core.errors import LofiError
from lofi_pipeline.defs import views
from lofi_pipeline.defs.partitions import track_partitions
from lofi_pipeline.defs.resources import (
    AnalyzerResource,
    EmbedderResource,
    LibraryResource,
    MatchingResource,
    NotionResource,
    RenderResource,
)

DUCKDB_POOL = "duckdb"


def _track(context: dg.AssetExecutionContext) -> int:
    return int(context.partition_key)


# --------------------------------------------------------------------------- pages
class PageConfig(dg.Config):
    page: str = ""
    force: bool = False


# No RetryPolicy: notion-client already retries 429 / 5xx honouring Retry-After, and a 401/404
# will not heal by itself (the page must be shared with the integration).
@dg.asset(partitions_def=track_partitions, group_name="plans", kinds={"notion", "markdown"})
def notion_pages(context: dg.AssetExecutionContext, config: PageConfig,
                 library: LibraryResource, notion: NotionResource) -> dg.MaterializeResult:
    """The track's page, fetched and cached under data/pages as Markdown (+ blocks JSON)."""
    from lofi_pipeline.core.pagecache import store_page

    n = _track(context)
    ref = config.page or library.library().page_ref(n) or notion.find_export(n)
    if not ref:
        raise LofiError(f"track {n}: no page given and none known; pass --page URL_OR_FILE")
    snap = notion.fetch(ref)
    md_path, json_path = library.page_paths(n)
    changed = store_page(md_path, json_path, ref=snap.ref, markdown=snap.markdown, page_id=snap.page_id,
                         last_edited_time=snap.last_edited_time, blocks=snap.blocks, force=config.force)
    context.log.info(f"track {n}: page {'updated' if changed else 'unchanged'} from {snap.ref}")
    return dg.MaterializeResult(metadata={
        "page_ref": snap.ref, "last_edited_time": snap.last_edited_time or "",
        "changed": changed, "characters": len(snap.markdown),
        "cached_markdown": dg.MetadataValue.path(str(md_path)),
    })


@dg.asset(partitions_def=track_partitions, group_name="plans", deps=[notion_pages],
          pool=DUCKDB_POOL, kinds={"duckdb"})
def track_plans(context: dg.AssetExecutionContext, library: LibraryResource) -> dg.MaterializeResult:
    """The parsed page (arcs, prompts, SEO) upserted into tracks / arcs / prompts."""
    from lofi_pipeline.core.pagecache import parse_cached_page

    n = _track(context)
    plan, meta = parse_cached_page(n, *library.page_paths(n))
    counts = library.library().upsert_plan(n, plan, page_ref=meta.get("ref"),
                                           last_edited_time=meta.get("last_edited_time"))
    for w in plan.warnings:
        context.log.warning(w)
    return dg.MaterializeResult(metadata={
        "title": plan.title or "", "arcs": len(plan.arcs), "prompts": len(plan.prompts),
        "removed_prompts": counts["removed_prompts"], "duration_minutes": plan.duration_minutes or 0.0,
        "warnings": dg.MetadataValue.json(plan.warnings), "arc_table": views.arc_table(plan)})


# --------------------------------------------------------------------------- songs
class SongFoldersConfig(dg.Config):
    folders: list[str] = []
    force: bool = False


@dg.asset(partitions_def=track_partitions, group_name="library", kinds={"python", "parquet"})
def audio_features(context: dg.AssetExecutionContext, config: SongFoldersConfig,
                   library: LibraryResource, analyzer: AnalyzerResource) -> dg.MaterializeResult:
    """Duration, BPM, key, loudness of the track's new or changed audio files.

    Written to a per-track Parquet file without touching DuckDB, so the long
    analysis never holds the library lock; ``songs_table`` then loads it.
    """
    from pathlib import Path

    from lofi_pipeline.core import catalog
    from lofi_pipeline.core.audio import ANALYZER_VERSION, analyze_files

    n = _track(context)
    folders = [Path(f) for f in config.folders] or [library.track_dir(n) / "Songs"]
    files, missing = catalog.list_audio_files(folders)
    if missing and config.folders:
        raise LofiError("; ".join(missing))  # a folder the user named must exist
    lib = library.library()
    scan = catalog.scan_for_import(files, known=lib.known_files(), versions=lib.analyzer_versions(),
                                   analyzer_version=ANALYZER_VERSION, force=config.force)
    context.log.info(f"track {n}: {len(files)} files, {len(scan.to_analyze)} to analyse, "
                     f"{len(scan.known_content)} known content, {scan.unchanged} unchanged")
    progress = views.ProgressLog(context, "analyse", len(scan.to_analyze))
    results = analyze_files(scan.to_analyze, workers=analyzer.workers, digests=scan.digests,
                            on_result=lambda feat: progress.step(Path(feat.path).name)) if scan.to_analyze else []
    frame = catalog.feature_frame(scan.known_content, results)
    out = library.write_features(n, frame)
    errors = frame[frame["status"] == "error"][["path", "error"]]
    for row in errors.itertuples():
        context.log.error(f"{row.path}: {row.error}")
    return dg.MaterializeResult(metadata={
        "files": len(files), "analysed": len(results) - len(errors), "errors": len(errors),
        "known_content": len(scan.known_content), "unchanged": scan.unchanged,
        "features_file": dg.MetadataValue.path(out), "error_table": views.md_table(errors)})


@dg.asset(partitions_def=track_partitions, group_name="library", deps=[audio_features, track_plans],
          pool=DUCKDB_POOL, kinds={"duckdb", "parquet"})
def songs_table(context: dg.AssetExecutionContext, library: LibraryResource) -> dg.MaterializeResult:
    """Analysed files upserted into songs / song_files in one transaction; songs.parquet exported."""
    from lofi_pipeline.core.catalog import describe_songs, filename_fields
    from lofi_pipeline.core.stats import stats_from_library

    n = _track(context)
    lib = library.library()
    counts = lib.upsert_songs(n, library.read_features(n), filename_fields=filename_fields,
                              describe=describe_songs)
    for w in counts["name_warnings"] + counts["flag_warnings"]:
        context.log.warning(w)
    return dg.MaterializeResult(metadata={
        **{k: v for k, v in counts.items() if k not in ("name_warnings", "flag_warnings")}, **lib.library_summary(),
        "name_warnings": dg.MetadataValue.json(counts["name_warnings"]),
        "flagged_songs": len(counts["flag_warnings"]),  # silent, near-silent or too long: not planned
        "flag_warnings": dg.MetadataValue.json(counts["flag_warnings"]),
        "import_errors": views.md_table(lib.import_errors(n)),
        "bpm_distribution": views.md_table(stats_from_library(lib).bpm),  # the same table as library_stats
        "parquet": dg.MetadataValue.path(lib.export_parquet("songs", library.export_dir))})


# --------------------------------------------------------------------------- embeddings
@dg.asset(group_name="library", deps=[songs_table], pool=DUCKDB_POOL,
          kinds={"sentence-transformers", "duckdb", "parquet"})
def song_embeddings(context: dg.AssetExecutionContext, library: LibraryResource,
                    embedder: EmbedderResource) -> dg.MaterializeResult:
    """all-MiniLM-L6-v2 vectors of every song's meaning text; only new or changed texts are encoded."""
    from lofi_pipeline.core.embedding import MODEL_NAME, text_hash, texts_to_encode

    lib = library.library()
    songs = lib.texts_for_embedding(MODEL_NAME)
    current = dict(zip(songs["song_id"], songs["song_text"]))
    todo = texts_to_encode(current, dict(zip(songs["song_id"], songs["text_hash"])))
    context.log.info(f"{len(songs)} songs, {len(todo)} texts to encode")
    if todo:
        texts = [current[song_id] for song_id in todo]
        lib.upsert_embeddings(MODEL_NAME, todo, [text_hash(t) for t in texts], embedder.embedder().encode(texts))
    return dg.MaterializeResult(metadata={
        "encoded": len(todo), "embeddings": lib.embedding_count(MODEL_NAME), "model": MODEL_NAME,
        "parquet": dg.MetadataValue.path(lib.export_parquet("song_embeddings", library.export_dir))})


@dg.asset(group_name="library", deps=[song_embeddings], kinds={"markdown"})
def library_stats(context: dg.AssetExecutionContext, library: LibraryResource) -> dg.MaterializeResult:
    """Songs, hours, most-used songs, BPM / key / energy distributions (guesses apart), as a report."""
    from lofi_pipeline.core.stats import stats_from_library, stats_markdown

    st = stats_from_library(library.library())
    report = stats_markdown(st)
    library.write_export_text("stats.md", report)
    return dg.MaterializeResult(metadata={"songs": st.songs, "hours": st.hours, "tracks": st.tracks,
                                          "published": st.published, "low_confidence_bpm": st.low_bpm,
                                          "low_confidence_key": st.low_key,
                                          "report": dg.MetadataValue.md(report),
                                          **views.library_pictures(library.library())})


# --------------------------------------------------------------------------- per-track planning
class QueryConfig(dg.Config):
    reuse_stored: bool = True  # empty options take the track's last query settings
    top_k: int = 0  # 0 = settings
    min_similarity: float = -1.0  # <0 = settings
    bpm_min: float = 0.0
    bpm_max: float = 0.0
    key: str = ""
    arc: int = 0
    unused_only: bool = False
    tags: list[str] = []  # vibe tags or mood keywords a song must carry


@dg.asset(partitions_def=track_partitions, group_name="planning", deps=[track_plans, song_embeddings],
          pool=DUCKDB_POOL, kinds={"numpy", "duckdb", "parquet"})
def track_matches(context: dg.AssetExecutionContext, config: QueryConfig, library: LibraryResource,
                  embedder: EmbedderResource, matching: MatchingResource) -> dg.MaterializeResult:
    """Top-k library songs per prompt, with every score component, and each prompt's closest song."""
    from lofi_pipeline.core.planning import match_track

    n = _track(context)
    lib = library.library()
    query = matching.query_settings(config.model_dump(), stored=lib.load_query(n) if config.reuse_stored else None)
    matches, best, stats = match_track(lib, n, query=query, weights=matching.weights,
                                       recent_tracks=matching.recent_tracks, encode=embedder.embedder().encode)
    lib.replace_matches(n, matches, best, query)
    return dg.MaterializeResult(metadata={
        **stats, "query": dg.MetadataValue.json(query), "best_matches": views.best_matches(matches),
        "parquet": dg.MetadataValue.path(lib.export_parquet("matches", library.export_dir))})


class MixPlanConfig(dg.Config):
    reuse_stored: bool = True  # no duration given: keep the stored plan's target (a refresh after imports)
    duration_minutes: float = 0.0  # 0 = the stored plan's target (reuse_stored), else the page's duration
    allocation: str = ""  # prompts | even; empty = settings


@dg.asset(partitions_def=track_partitions, group_name="planning", deps=[track_matches],
          pool=DUCKDB_POOL, kinds={"duckdb"})
def mix_plan(context: dg.AssetExecutionContext, config: MixPlanConfig, library: LibraryResource,
             matching: MatchingResource, render: RenderResource) -> dg.MaterializeResult:
    """The track's one mix plan: own songs first, arcs keep their songs, ordered as a mix."""
    from lofi_pipeline.core.planning import plan_track

    n = _track(context)
    lib = library.library()
    plan_id, mix = plan_track(lib, n, duration_minutes=config.duration_minutes or None,
                              allocation=config.allocation or matching.allocation,
                              max_repeats=matching.max_repeats, min_similarity=matching.min_similarity,
                              crossfade_seconds=render.crossfade_seconds, reuse_stored=config.reuse_stored)
    for note in mix.notes:
        context.log.warning(note)
    return dg.MaterializeResult(metadata={
        "plan_id": plan_id, **views.mix_summary(mix), "notes": dg.MetadataValue.json(mix.notes),
        "arcs": views.arc_summary_table(mix), "timeline": views.timeline_picture(mix),
        "entries": views.mix_table(mix)})


@dg.asset(partitions_def=track_partitions, group_name="planning", deps=[mix_plan],
          pool=DUCKDB_POOL, kinds={"markdown", "json"})
def gap_report(context: dg.AssetExecutionContext, library: LibraryResource,
               matching: MatchingResource) -> dg.MaterializeResult:
    """Which prompts still need new songs: stored, and written as gaps.json, gaps.md, remaining-prompts.md."""
    from lofi_pipeline.core.planning import report_gaps

    n = _track(context)
    report, files = report_gaps(library.library(), n, folder=library.track_dir(n) / "metadata",
                                good_similarity=matching.good_similarity,
                                min_similarity=matching.min_similarity)
    return dg.MaterializeResult(metadata={
        "plan_id": report.get("plan_id") or "", "songs_to_generate": report["songs_to_generate"],
        "shortfall_minutes": report["shortfall_minutes"], "report": views.gap_markdown(report),
        "coverage": views.coverage_picture(report),
        **{name: dg.MetadataValue.path(str(p)) for name, p in files.items()}})


class PrepareConfig(dg.Config):
    mode: str = ""  # copy | hardlink | move; empty = settings


@dg.asset(partitions_def=track_partitions, group_name="render", deps=[mix_plan, gap_report],
          pool=DUCKDB_POOL, kinds={"filesystem"})
def render_folder(context: dg.AssetExecutionContext, config: PrepareConfig, library: LibraryResource,
                  render: RenderResource) -> dg.MaterializeResult:
    """Tracks/{N}/ scaffolded, the plan's songs placed in mix order, render_plan.json written."""
    from lofi_pipeline.core.planning import prepare_track

    n = _track(context)
    result, plan_id = prepare_track(library.library(), n, tracks_dir=library.tracks_dir,
                                    mode=config.mode or render.prepare_mode,
                                    crossfade_seconds=render.crossfade_seconds)
    for c in result.conflicts:
        context.log.warning(f"conflict: {c.dest}: {c.detail}")
    for w in result.warnings:
        context.log.warning(w)
    actions = pd.Series([p.action for p in result.placed]).value_counts().to_dict() if result.placed else {}
    return dg.MaterializeResult(metadata={
        "plan_id": plan_id, "songs": len(result.placed), **{f"songs_{k}": int(v) for k, v in actions.items()},
        "conflicts": dg.MetadataValue.json([f"{c.dest}: {c.detail}" for c in result.conflicts]),
        "render_plan": dg.MetadataValue.path(str(result.plan_path)),
        "folder": dg.MetadataValue.path(str(result.track_dir))})


class RenderConfig(dg.Config):
    duration: str = "test"  # test | auto | HOURS
    allow_missing: bool = False
    song_chapters: bool = False  # a chapter per song too, not only per arc


@dg.asset(partitions_def=track_partitions, group_name="render", deps=[render_folder], kinds={"ffmpeg"})
def rendered_mix(context: dg.AssetExecutionContext, config: RenderConfig, library: LibraryResource,
                 render: RenderResource) -> dg.MaterializeResult:
    """The mix video: the stored plan's entries, loudness-normalised and crossfaded over a looped background."""
    from lofi_pipeline.core.planning import render_track

    n = _track(context)
    shown: dict[str, int] = {}

    def on_phase(name: str, done: int, total: int) -> None:
        # A line per 2 % of each phase (the mix phase counts seconds: thousands of calls).
        step = 50 * done // total if total else 50
        if step > shown.get(name, -1):
            shown[name] = step
            context.log.info(f"[progress] {name} {done}/{total}")

    report, out_dir = render_track(library.library(), n, duration=config.duration,
                                   tracks_dir=library.tracks_dir, options=render.options(),
                                   allow_missing=config.allow_missing, on_phase=on_phase,
                                   song_chapters=config.song_chapters)
    return dg.MaterializeResult(metadata={
        **{k: v for k, v in report.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)},
        "output_dir": dg.MetadataValue.path(str(out_dir))})


ALL_ASSETS = [notion_pages, track_plans, audio_features, songs_table, song_embeddings, library_stats,
              track_matches, mix_plan, gap_report, render_folder, rendered_mix]
