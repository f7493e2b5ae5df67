"""Assets: one per pipeline stage. Each resolves resources, calls the core, reports metadata.

notion_pages → track_plans → audio_features → songs_table → song_embeddings
→ track_matches → track_selection → gap_report → render_folder → rendered_mix
"""


import json
import time
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from lofi_pipeline.core import catalog
from lofi_pipeline.core.errors import LofiError
from lofi_pipeline.core.library import EMBEDDING_DIM
from lofi_pipeline.core.models import SelectedSong
from lofi_pipeline.defs.partitions import track_partitions
from lofi_pipeline.core.workspace import write_json_atomic, write_text_atomic
from lofi_pipeline.defs.resources import (
    AnalyzerResource,
    EmbedderResource,
    LibraryResource,
    MatchingResource,
    NotionResource,
    RenderResource,
)

DUCKDB_POOL = "duckdb"


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _track(context: dg.AssetExecutionContext) -> int:
    return int(context.partition_key)


def _read_json(path: Path) -> dict:
    """A JSON file we wrote earlier, or {} when it is not there yet."""
    return json.loads(path.read_text()) if path.exists() else {}


def _load_matches(lib, track_number: int) -> pd.DataFrame:
    return lib.df("SELECT * FROM matches WHERE track_number = ? ORDER BY prompt_order, rank", [track_number])


def _md_table(df: pd.DataFrame, max_rows: int = 50) -> dg.MetadataValue:
    if df.empty:
        return dg.MetadataValue.md("_(none)_")
    return dg.MetadataValue.md(df.head(max_rows).to_markdown(index=False))


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
    n = _track(context)
    lib = library.library()
    ref = config.page or lib.scalar("SELECT page_ref FROM tracks WHERE track_number = ?", [n]) \
        or notion.find_export(n)
    if not ref:
        raise LofiError(f"track {n}: no page given and none known; pass --page URL_OR_FILE")
    snap = notion.fetch(ref)
    md_path, json_path = library.page_paths(n)
    old_meta = _read_json(json_path)
    changed = config.force or old_meta.get("last_edited_time") != snap.last_edited_time \
        or not md_path.exists() or md_path.read_text(encoding="utf-8") != snap.markdown
    if changed:
        write_text_atomic(md_path, snap.markdown)
        write_json_atomic(json_path, {"ref": snap.ref, "page_id": snap.page_id,
                                      "last_edited_time": snap.last_edited_time,
                                      "fetched_at": _now().isoformat(), "blocks": snap.blocks})
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
    from lofi_pipeline.core.notion import parse_track_markdown

    n = _track(context)
    md_path, json_path = library.page_paths(n)
    if not md_path.exists():
        raise LofiError(f"track {n}: no cached page at {md_path}; run the import with --page first")
    meta = _read_json(json_path)
    plan = parse_track_markdown(md_path.read_text(encoding="utf-8"), source=meta.get("ref", str(md_path)))
    if plan.track_number is not None and plan.track_number != n:
        plan.warnings.append(f"{plan.source}: page says track {plan.track_number} but it was imported "
                             f"as track {n}")
    counts = library.library().upsert_plan(n, plan, page_ref=meta.get("ref"),
                                           last_edited_time=meta.get("last_edited_time"))
    for w in plan.warnings:
        context.log.warning(w)
    arcs = pd.DataFrame([{"arc": a.number, "name": a.name, "prompts": len(a.prompts),
                          "bpm": f"{a.bpm_range[0]:g}–{a.bpm_range[1]:g}" if a.bpm_range else ""}
                         for a in plan.arcs])
    return dg.MaterializeResult(metadata={
        "title": plan.title or "", "arcs": len(plan.arcs), "prompts": len(plan.prompts),
        "removed_prompts": counts["removed_prompts"],
        "duration_minutes": plan.duration_minutes or 0.0,
        "warnings": dg.MetadataValue.json(plan.warnings),
        "arc_table": _md_table(arcs),
    })


# --------------------------------------------------------------------------- songs
class SongFoldersConfig(dg.Config):
    folders: list[str] = []
    force: bool = False


@dg.asset(partitions_def=track_partitions, group_name="library", kinds={"librosa", "parquet"})
def audio_features(context: dg.AssetExecutionContext, config: SongFoldersConfig,
                   library: LibraryResource, analyzer: AnalyzerResource) -> dg.MaterializeResult:
    """Duration, BPM, key, loudness of the track's new or changed audio files.

    Written to a per-track Parquet file without touching DuckDB, so the long
    analysis never holds the library lock; ``songs_table`` then loads it.
    """
    from lofi_pipeline.core.audio import ANALYZER_VERSION, analyze_files
    from lofi_pipeline.core.identity import content_hash

    n = _track(context)
    folders = [Path(f) for f in config.folders] or [library.track_dir(n) / "Songs"]
    files, warnings = catalog.list_audio_files(folders)
    if warnings and config.folders:
        raise LofiError("; ".join(warnings))  # a folder the user named must exist
    for w in warnings:
        context.log.info(f"{w} (a new track has no songs yet)")
    lib = library.library()
    known = lib.known_files()
    versions = dict(lib.df("SELECT song_id, analyzer_version FROM songs").itertuples(index=False))
    rows: list[dict] = []
    to_analyze: list[Path] = []
    digests: dict[str, str] = {}  # hashed once here, handed to the analysis
    for f in files:
        st = f.stat()
        state = catalog.FileState(str(f.resolve()), st.st_size, st.st_mtime)
        if not catalog.needs_analysis(state, known, ANALYZER_VERSION, force=config.force):
            continue  # this exact file is already in the library
        digest = content_hash(f)
        if not config.force and versions.get(digest) == ANALYZER_VERSION:
            rows.append({"path": state.path, "file_size": state.size, "file_mtime": state.mtime,
                         "content_hash": digest, "status": "known_content"})
            continue
        to_analyze.append(f)
        digests[str(f)] = digest
    context.log.info(f"track {n}: {len(files)} files, {len(to_analyze)} to analyse, "
                     f"{len(files) - len(to_analyze) - len(rows)} unchanged")
    started = time.monotonic()
    done = {"n": 0}

    def progress(feat) -> None:
        done["n"] += 1
        context.log.info(f"[progress] analyse {done['n']}/{len(to_analyze)} {Path(feat.path).name}")

    results = analyze_files(to_analyze, workers=analyzer.workers, on_result=progress,
                            digests=digests) if to_analyze else []
    for feat in results:
        st = Path(feat.path).stat() if Path(feat.path).exists() else None
        row = feat.to_dict()
        row["path"] = str(Path(feat.path).resolve())
        row.update({"file_size": st.st_size if st else None, "file_mtime": st.st_mtime if st else None,
                    "status": "error" if feat.error else "analysed"})
        rows.append(row)
        if feat.error:
            context.log.error(f"{feat.path}: {feat.error}")
    df = pd.DataFrame(rows)
    out = library.features_path(n)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    tmp = out + ".tmp"
    df.to_parquet(tmp, index=False)
    Path(tmp).replace(out)
    errors = df[df["status"] == "error"][["path", "error"]] if not df.empty else pd.DataFrame()
    seconds = time.monotonic() - started
    return dg.MaterializeResult(metadata={
        "files": len(files), "analysed": len(results) - len(errors), "errors": len(errors),
        "known_content": int((df["status"] == "known_content").sum()) if not df.empty else 0,
        "analysis_seconds": round(seconds, 2), "features_file": dg.MetadataValue.path(out),
        "error_table": _md_table(errors),
    })


_ANALYSIS_COLUMNS = [
    "duration_seconds", "bpm", "bpm_confidence", "key", "key_confidence", "camelot",
    "loudness_lufs", "true_peak_db", "rms_energy", "spectral_centroid_hz", "energy_level",
    "tempo_category", "sample_rate", "channels", "analyzer_version",
]


@dg.asset(partitions_def=track_partitions, group_name="library", deps=[audio_features, track_plans],
          pool=DUCKDB_POOL, kinds={"duckdb", "parquet"})
def songs_table(context: dg.AssetExecutionContext, library: LibraryResource) -> dg.MaterializeResult:
    """Analysed files upserted into songs / song_files in one transaction; songs.parquet exported."""
    n = _track(context)
    path = library.features_path(n)
    df = pd.read_parquet(path) if Path(path).exists() else pd.DataFrame()
    lib = library.library()
    now = _now()
    added = updated = linked = 0
    name_warnings: list[str] = []
    with lib.write() as con:
        for row in df.to_dict("records"):
            if row["status"] == "error":
                con.execute("INSERT OR REPLACE INTO import_errors VALUES (?,?,?,?)",
                            [row["path"], n, row["error"], now])
                continue
            con.execute("DELETE FROM import_errors WHERE path = ?", [row["path"]])
            song_id = row["content_hash"]
            if row["status"] == "analysed":
                fields = catalog.filename_fields(Path(row["path"]).name)
                if fields["name_warning"]:
                    name_warnings.append(fields["name_warning"])
                exists = con.execute("SELECT 1 FROM songs WHERE song_id = ?", [song_id]).fetchone()
                values = [row.get(c) for c in _ANALYSIS_COLUMNS]
                if exists:
                    sets = ", ".join(f"{c} = ?" for c in _ANALYSIS_COLUMNS)
                    con.execute(f"UPDATE songs SET {sets}, updated_at = ? WHERE song_id = ?",
                                [*values, now, song_id])
                    updated += 1
                else:
                    cols = ["song_id", "filename", "path", *fields.keys(), *_ANALYSIS_COLUMNS,
                            "times_used", "first_seen", "updated_at"]
                    con.execute(f"INSERT INTO songs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                                [song_id, Path(row["path"]).name, row["path"], *fields.values(),
                                 *values, 0, now, now])
                    added += 1
            con.execute("INSERT OR REPLACE INTO song_files VALUES (?,?,?,?,?,?)",
                        [row["path"], song_id, row["file_size"], row["file_mtime"], n, now])
            linked += 1
        refresh_song_texts(con)
    for w in name_warnings:
        context.log.warning(w)
    export = lib.export_parquet("songs", library.export_dir)
    summary = lib.df("SELECT count(*) AS songs, round(sum(duration_seconds)/3600, 2) AS hours, "
                     "count(*) FILTER (WHERE NOT text_from_prompt) AS songs_without_prompt FROM songs")
    errs = lib.df("SELECT path, error FROM import_errors WHERE track_number = ?", [n])
    bpm = lib.df("SELECT (floor(bpm / 10) * 10)::INT AS bpm_bin, count(*) AS songs FROM songs "
                 "WHERE bpm IS NOT NULL GROUP BY 1 ORDER BY 1")
    return dg.MaterializeResult(metadata={
        "songs_added": added, "songs_reanalysed": updated, "files_linked": linked,
        "library_songs": int(summary.songs[0]), "library_hours": float(summary.hours[0] or 0),
        "songs_without_prompt": int(summary.songs_without_prompt[0] or 0),
        "name_warnings": dg.MetadataValue.json(name_warnings),
        "import_errors": _md_table(errs), "bpm_distribution": _md_table(bpm),
        "parquet": dg.MetadataValue.path(export),
    })


def refresh_song_texts(con) -> int:
    """Recompute every song's meaning text and tags from the current plans.

    A song whose prompt has left its page keeps the meaning it had (it was
    generated from that prompt, whatever the page says now).
    """
    from lofi_pipeline.core.matching import describe_song
    from lofi_pipeline.core.models import TrackPlan

    songs = con.execute("SELECT song_id, filename, arc, prompt, source_track, bpm, key, energy_level, "
                        "coalesce(text_from_prompt, FALSE) AS text_from_prompt FROM songs").df()
    plans = {int(n): TrackPlan.from_dict(json.loads(raw)) for n, raw in
             con.execute("SELECT track_number, plan_json FROM tracks").fetchall() if raw}
    updates = []
    for s in songs.itertuples():
        plan = plans.get(int(s.source_track)) if pd.notna(s.source_track) else None
        meaning = describe_song(filename=s.filename, plan=plan,
                                arc=None if pd.isna(s.arc) else int(s.arc),
                                prompt=None if pd.isna(s.prompt) else int(s.prompt),
                                bpm=None if pd.isna(s.bpm) else float(s.bpm),
                                key=s.key if isinstance(s.key, str) else None,
                                energy_level=s.energy_level if isinstance(s.energy_level, str) else None)
        if not meaning.from_prompt and s.text_from_prompt:
            continue
        updates.append((meaning.prompt_text, meaning.text, meaning.from_prompt, meaning.vibe_tags,
                        meaning.mood_keywords, s.song_id))
    if updates:
        con.executemany("UPDATE songs SET prompt_text = ?, song_text = ?, text_from_prompt = ?, "
                        "vibe_tags = ?, mood_keywords = ? WHERE song_id = ?", updates)
    return len(updates)


# --------------------------------------------------------------------------- embeddings
@dg.asset(group_name="library", deps=[songs_table], pool=DUCKDB_POOL,
          kinds={"sentence-transformers", "duckdb", "parquet"})
def song_embeddings(context: dg.AssetExecutionContext, library: LibraryResource,
                    embedder: EmbedderResource) -> dg.MaterializeResult:
    """all-MiniLM-L6-v2 vectors of every song's meaning text; only new or changed texts are encoded."""
    from lofi_pipeline.core.embedding import MODEL_NAME, text_hash, texts_to_encode

    lib = library.library()
    songs = lib.df("SELECT s.song_id, s.song_text, e.text_hash FROM songs s LEFT JOIN song_embeddings e "
                   "ON e.song_id = s.song_id AND e.model = ? WHERE s.song_text IS NOT NULL", [MODEL_NAME])
    current = dict(zip(songs["song_id"], songs["song_text"]))
    todo = texts_to_encode(current, dict(zip(songs["song_id"], songs["text_hash"])))
    context.log.info(f"{len(songs)} songs, {len(todo)} texts to encode")
    if todo:
        texts = [current[song_id] for song_id in todo]
        vectors = embedder.embedder().encode(texts)
        assert vectors.shape[1] == EMBEDDING_DIM
        now = _now()
        frame = pd.DataFrame({"song_id": todo, "model": MODEL_NAME,
                              "text_hash": [text_hash(t) for t in texts],
                              "vector": [v.astype(np.float32) for v in vectors], "created_at": now})
        with lib.write() as con:
            con.register("new_vectors", frame)
            con.execute("DELETE FROM song_embeddings WHERE model = ? AND song_id IN "
                        "(SELECT song_id FROM new_vectors)", [MODEL_NAME])
            con.execute(f"INSERT INTO song_embeddings SELECT song_id, model, text_hash, "
                        f"vector::FLOAT[{EMBEDDING_DIM}], created_at FROM new_vectors")
            con.unregister("new_vectors")
    export = lib.export_parquet("song_embeddings", library.export_dir)
    total = lib.scalar("SELECT count(*) FROM song_embeddings WHERE model = ?", [MODEL_NAME])
    return dg.MaterializeResult(metadata={"encoded": len(todo), "embeddings": int(total),
                                          "model": MODEL_NAME, "parquet": dg.MetadataValue.path(export)})


@dg.asset(group_name="library", deps=[song_embeddings], kinds={"markdown"})
def library_stats(context: dg.AssetExecutionContext, library: LibraryResource) -> dg.MaterializeResult:
    """Songs, hours, most-used songs, BPM / key / energy distributions, as a Markdown report."""
    from lofi_pipeline.core.stats import stats_from_library, stats_markdown

    st = stats_from_library(library.library())
    report = stats_markdown(st)
    target = Path(library.export_dir) / "stats.md" if "://" not in library.export_dir else None
    if target:
        write_text_atomic(target, report)
    return dg.MaterializeResult(metadata={"songs": st.songs, "hours": st.hours, "tracks": st.tracks,
                                          "published": st.published, "report": dg.MetadataValue.md(report)})


# --------------------------------------------------------------------------- per-track planning
def load_song_matrix(library: LibraryResource, model: str,
                     recent_tracks: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    songs = library.library().songs(with_vectors_for=model, recent_tracks=recent_tracks)
    songs = songs[songs["vector"].notna()].reset_index(drop=True)
    matrix = (np.stack([np.asarray(v, dtype=np.float32) for v in songs["vector"]])
              if len(songs) else np.zeros((0, EMBEDDING_DIM), np.float32))
    return songs.drop(columns=["vector"]), matrix


class QueryConfig(dg.Config):
    top_k: int = 0  # 0 = settings
    min_similarity: float = -1.0  # <0 = settings
    include_same_track: bool = False
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
    """Top-k library songs per prompt, with every score component stored."""
    from lofi_pipeline.core.embedding import MODEL_NAME
    from lofi_pipeline.core.matching import MatchWeights, QueryFilters, prompt_query_texts, query_track
    from lofi_pipeline.core.tags import split_tag_filters

    n = _track(context)
    lib = library.library()
    plan = lib.load_plan(n)
    if plan is None:
        raise LofiError(f"track {n}: no plan in the library; run `lofi import --track {n} --page …` first")
    songs, matrix = load_song_matrix(library, MODEL_NAME, matching.recent_tracks)
    texts = prompt_query_texts(plan)  # in plan.prompts order
    pvecs = embedder.embedder().encode(texts) if texts else np.zeros((0, EMBEDDING_DIM), np.float32)
    vibe, mood = split_tag_filters(config.tags)
    filters = QueryFilters(bpm_min=config.bpm_min or None, bpm_max=config.bpm_max or None,
                           key=config.key or None, arc=config.arc or None, unused_only=config.unused_only,
                           vibe_tags=vibe, mood_keywords=mood)
    include_same = config.include_same_track or matching.include_same_track
    matches = query_track(plan, pvecs, songs, matrix,
                          weights=MatchWeights.from_mapping(matching.weights),
                          top_k=config.top_k or matching.top_k,
                          min_similarity=matching.min_similarity if config.min_similarity < 0
                          else config.min_similarity,
                          filters=filters, exclude_track=None if include_same else n)
    now = _now()
    cols = ["prompt_order", "arc_number", "prompt_number", "rank", "song_id", "filename", "score",
            "similarity", "arc_score", "bpm_score", "key_score", "usage_score"]
    frame = matches[cols].copy() if len(matches) else pd.DataFrame(columns=cols)
    frame.insert(0, "track_number", n)
    frame["computed_at"] = now
    with lib.write() as con:
        con.execute("DELETE FROM matches WHERE track_number = ?", [n])
        if len(frame):
            con.register("new_matches", frame)
            con.execute("INSERT INTO matches BY NAME SELECT * FROM new_matches")
            con.unregister("new_matches")
    # The closest song of every prompt, threshold or not, so the gap report can say how near a gap came.
    best = {str(k): v for k, v in matches.attrs.get("best_similarity", {}).items()}
    write_json_atomic(library.track_dir(n) / "metadata" / "matches_summary.json",
                      {"track_number": n, "computed_at": now.isoformat(), "best_similarity": best})
    export = lib.export_parquet("matches", library.export_dir)
    matched = frame["prompt_order"].nunique() if len(frame) else 0
    preview = frame[frame["rank"] == 1][["arc_number", "prompt_number", "filename", "score", "similarity"]] \
        if len(frame) else frame
    return dg.MaterializeResult(metadata={
        "prompts": len(plan.prompts), "prompts_matched": int(matched), "matches": len(frame),
        "library_songs": len(songs), "best_matches": _md_table(preview),
        "parquet": dg.MetadataValue.path(export)})


class SelectionConfig(dg.Config):
    duration_minutes: float = 0.0  # 0 = the page's duration
    allocation: str = ""  # prompts | even; empty = settings


@dg.asset(partitions_def=track_partitions, group_name="planning", deps=[track_matches],
          pool=DUCKDB_POOL, kinds={"duckdb"})
def track_selection(context: dg.AssetExecutionContext, config: SelectionConfig,
                    library: LibraryResource, matching: MatchingResource) -> dg.MaterializeResult:
    """Songs chosen to fill the target duration arc by arc (each at most once, best first)."""
    from lofi_pipeline.core.selection import select_for_duration

    n = _track(context)
    lib = library.library()
    plan = lib.load_plan(n)
    matches = _load_matches(lib, n)
    songs = lib.songs(recent_tracks=matching.recent_tracks)
    minutes = config.duration_minutes or plan.duration_minutes or 60.0
    result = select_for_duration(plan, matches, songs, target_seconds=minutes * 60,
                                 allocation=config.allocation or matching.allocation)
    now = _now()
    with lib.write() as con:
        con.execute("DELETE FROM selections WHERE track_number = ?", [n])
        for s in result.selected:
            con.execute("INSERT INTO selections VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        [n, s.order, s.arc_number, s.arc_name, s.prompt_number, s.song_id, s.path,
                         s.filename, s.duration_seconds, s.loudness_lufs, s.score, s.similarity,
                         s.repeat, now])
    write_json_atomic(library.track_dir(n) / "metadata" / "selection.json", result.to_dict())
    for note in result.notes:
        context.log.warning(note)
    table = pd.DataFrame([{"#": s.order, "arc": s.arc_number, "prompt": s.prompt_number,
                           "song": s.filename, "min": round(s.duration_seconds / 60, 1),
                           "repeat": s.repeat} for s in result.selected])
    filled = sum(s.duration_seconds for s in result.selected)
    return dg.MaterializeResult(metadata={
        "target_minutes": minutes, "selected_songs": len({s.song_id for s in result.selected}),
        "mix_slots": len(result.selected), "repeated_slots": sum(s.repeat for s in result.selected),
        "selected_minutes": round(filled / 60, 1),
        "shortfall_minutes": round(result.shortfall_seconds / 60, 1),
        "notes": dg.MetadataValue.json(result.notes), "selection": _md_table(table, 200)})


def load_selection(library: LibraryResource, track_number: int) -> list[SelectedSong]:
    rows = library.library().df("SELECT * FROM selections WHERE track_number = ? ORDER BY position",
                                [track_number])
    return [SelectedSong(order=int(r.position), arc_number=int(r.arc_number), arc_name=r.arc_name or "",
                         song_id=r.song_id, path=r.path, filename=r.filename,
                         duration_seconds=float(r.duration_seconds),
                         prompt_number=None if pd.isna(r.prompt_number) else int(r.prompt_number),
                         score=None if pd.isna(r.score) else float(r.score),
                         similarity=None if pd.isna(r.similarity) else float(r.similarity),
                         loudness_lufs=None if pd.isna(r.loudness_lufs) else float(r.loudness_lufs),
                         repeat=bool(r.is_repeat)) for r in rows.itertuples()]


@dg.asset(partitions_def=track_partitions, group_name="planning", deps=[track_selection],
          kinds={"markdown", "json"})
def gap_report(context: dg.AssetExecutionContext, library: LibraryResource,
               matching: MatchingResource) -> dg.MaterializeResult:
    """Which prompts still need new songs: gaps.json, gaps.md and remaining-prompts.md."""
    from lofi_pipeline.core.gaps import build_gap_report, gap_report_markdown, write_gap_files

    n = _track(context)
    lib = library.library()
    plan = lib.load_plan(n)
    matches = _load_matches(lib, n)
    selected = load_selection(library, n)
    meta_dir = library.track_dir(n) / "metadata"
    selection_info = _read_json(meta_dir / "selection.json")
    summary = _read_json(meta_dir / "matches_summary.json")
    best = {int(k): v for k, v in summary.get("best_similarity", {}).items()}
    report = build_gap_report(plan, matches, selected, good_threshold=matching.good_similarity,
                              min_similarity=matching.min_similarity, best_similarity=best or None,
                              target_seconds=selection_info.get("target_seconds"),
                              allocation=selection_info.get("allocation", matching.allocation))
    files = write_gap_files(report, plan, library.track_dir(n) / "metadata")
    totals = report["totals"]
    return dg.MaterializeResult(metadata={
        **{k: v for k, v in totals.items() if isinstance(v, (int, float, str))},
        "report": dg.MetadataValue.md(gap_report_markdown(report)),
        **{name: dg.MetadataValue.path(str(p)) for name, p in files.items()}})


class PrepareConfig(dg.Config):
    mode: str = ""  # copy | hardlink | move; empty = settings


@dg.asset(partitions_def=track_partitions, group_name="render", deps=[track_selection, gap_report],
          kinds={"filesystem"})
def render_folder(context: dg.AssetExecutionContext, config: PrepareConfig, library: LibraryResource,
                  render: RenderResource) -> dg.MaterializeResult:
    """Tracks/{N}/ scaffolded, selected songs placed in mix order, render_plan.json written."""
    from lofi_pipeline.core.workspace import prepare_render_folder, scaffold_track

    n = _track(context)
    lib = library.library()
    plan = lib.load_plan(n)
    track_dir = library.track_dir(n)
    plan.track_number = n  # the partition is the track number that files are filed under
    scaffold_track(Path(library.tracks_dir), plan)
    remaining = track_dir / "metadata" / "remaining-prompts.md"
    # Songs repeated only to fill time are placed once; the render repeats the sequence.
    unique = [s for s in load_selection(library, n) if not s.repeat]
    result = prepare_render_folder(track_dir, unique, mode=config.mode or render.prepare_mode,
                                   crossfade_seconds=render.crossfade_seconds,
                                   remaining_prompts_md=remaining.read_text() if remaining.exists() else None)
    for c in result.conflicts:
        context.log.warning(f"conflict: {c.dest}: {c.detail}")
    for w in result.warnings:
        context.log.warning(w)
    actions = pd.Series([p.action for p in result.placed]).value_counts().to_dict() if result.placed else {}
    if result.missing:
        raise LofiError(f"track {n}: {len(result.missing)} selected song(s) not found, e.g. "
                        f"{result.missing[0].source}; re-import the library or re-run the query")
    return dg.MaterializeResult(metadata={
        "songs": len(result.placed), **{f"songs_{k}": int(v) for k, v in actions.items()},
        "conflicts": dg.MetadataValue.json([f"{c.dest}: {c.detail}" for c in result.conflicts]),
        "render_plan": dg.MetadataValue.path(str(result.plan_path)),
        "folder": dg.MetadataValue.path(str(track_dir))})


def load_render_songs(library: LibraryResource, track_number: int) -> list[SelectedSong]:
    """The mix as placed by prepare-render (paths in Tracks/{N}/Songs), in order."""
    track_dir = library.track_dir(track_number)
    plan_path = track_dir / "render_plan.json"
    if not plan_path.exists():
        raise LofiError(f"track {track_number}: no {plan_path}; run `lofi prepare-render --track "
                        f"{track_number}` first")
    placed = {e["order"]: e for e in json.loads(plan_path.read_text())["songs"]}
    songs = []
    for s in load_selection(library, track_number):
        entry = placed.get(s.order)
        if s.repeat or entry is None or entry["status"] in ("conflict", "missing"):
            continue
        path = track_dir / entry["file"]
        if not path.exists():
            raise LofiError(f"{path}: listed in render_plan.json but not on disk; run prepare-render again")
        s.path = str(path)
        songs.append(s)
    return songs


class RenderConfig(dg.Config):
    duration: str = "test"  # test | auto | HOURS


def render_target_seconds(duration: str) -> float | None:
    """``test`` → 300 s, ``auto`` → None (sum of the songs), a number → hours."""
    d = duration.strip().lower()
    if d == "test":
        return 300.0
    if d == "auto":
        return None
    try:
        hours = float(d)
    except ValueError:
        raise LofiError(f"--duration '{duration}': expected test, auto or a number of hours") from None
    if not 0 < hours <= 12:
        raise LofiError(f"--duration '{duration}': hours must be between 0 and 12")
    return hours * 3600


@dg.asset(partitions_def=track_partitions, group_name="render", deps=[render_folder],
          kinds={"ffmpeg"})
def rendered_mix(context: dg.AssetExecutionContext, config: RenderConfig, library: LibraryResource,
                 render: RenderResource) -> dg.MaterializeResult:
    """The mix video: loudness-normalised crossfaded audio over a once-encoded, looped background."""
    from lofi_pipeline.core.render import build_render_plan, find_background, render_mix

    n = _track(context)
    track_dir = library.track_dir(n)
    selection = load_render_songs(library, n)
    if not selection:
        raise LofiError(f"track {n}: nothing to render; run `lofi query --track {n}` and prepare-render first")
    plan = build_render_plan(selection, target_seconds=render_target_seconds(config.duration),
                             crossfade_seconds=render.crossfade_seconds)
    background = find_background(track_dir / "Video")
    stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
    out_dir = track_dir / "Rendered" / f"output_{stamp}"
    last = {"t": 0.0}

    def progress(fraction: float) -> None:
        if fraction - last["t"] >= 0.05 or fraction >= 1.0:
            last["t"] = fraction
            context.log.info(f"[progress] render {fraction * 100:.0f}/100")

    report = render_mix(plan, output_dir=out_dir, background=background,
                        ffmpeg_exe=render.ffmpeg_exe(), target_lufs=render.target_lufs,
                        true_peak_db=render.true_peak_db, fade_in=render.fade_in_seconds,
                        fade_out=render.fade_out_seconds, width=render.width, height=render.height,
                        on_progress=progress)
    data = report.to_dict()
    return dg.MaterializeResult(metadata={
        **{k: v for k, v in data.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)},
        "output_dir": dg.MetadataValue.path(str(out_dir))})


ALL_ASSETS = [notion_pages, track_plans, audio_features, songs_table, song_embeddings, library_stats,
              track_matches, track_selection, gap_report, render_folder, rendered_mix]
