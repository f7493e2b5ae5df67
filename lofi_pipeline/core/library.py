"""The library store: one DuckDB file, one door to it.

Concurrency pattern (why it looks like this): DuckDB lets one process open a
file read-write at a time, and a read-only open fails while a writer holds
it. The webserver, the daemon, sensor-triggered runs, multiprocess steps and
the CLI may all touch the library at once, so:

* every connection is short-lived: opened for one transaction, then closed;
* every open first takes the lock file ``<db>.lock`` (``filelock``), so
  processes queue instead of failing; a wait longer than a second is said
  once (``on_wait``), the whole wait is bounded (``lock_timeout`` seconds)
  and the error then names the file;
* an open that still meets DuckDB's own lock (a process that does not use
  our lock file, e.g. the DuckDB shell) is retried with backoff;
* long work (audio analysis, embedding) happens outside any connection;
  only the final write takes the lock, inside one transaction, so an
  interrupted step leaves no half-written rows.

On top of this, the Dagster layer puts writing assets in the ``duckdb`` pool.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import duckdb
import numpy as np
import pandas as pd
from filelock import FileLock, Timeout

from lofi_pipeline.core.errors import LibraryError
from lofi_pipeline.core.embedding import DIMENSIONS as EMBEDDING_DIM
from lofi_pipeline.core.models import TrackPlan

# Named, ordered migrations. Never edit one that has shipped: add a new one.
MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "initial schema",
        f"""
        CREATE TABLE tracks (
            track_number     INTEGER PRIMARY KEY,
            title            VARCHAR,
            page_title       VARCHAR,
            page_ref         VARCHAR,      -- the Notion URL or export file it came from
            last_edited_time VARCHAR,
            output_filename  VARCHAR,
            upload_schedule  VARCHAR,
            duration_minutes DOUBLE,
            mood_arc         VARCHAR,
            ctr_target       VARCHAR,
            retention_target VARCHAR,
            visible_hashtags VARCHAR[],
            hidden_tags      VARCHAR[],
            description      VARCHAR,
            anchor_phrase    VARCHAR,
            prompt_suffix    VARCHAR,
            warnings         VARCHAR[],
            plan_json        VARCHAR,      -- the whole parsed TrackPlan
            status           VARCHAR DEFAULT 'planned',   -- planned | published
            imported_at      TIMESTAMP,
            updated_at       TIMESTAMP
        );
        CREATE TABLE arcs (
            track_number INTEGER,
            arc_number   INTEGER,
            name         VARCHAR,
            subtitle     VARCHAR,
            description  VARCHAR,
            bpm_low      DOUBLE,
            bpm_high     DOUBLE,
            PRIMARY KEY (track_number, arc_number)
        );
        CREATE TABLE prompts (
            track_number  INTEGER,
            prompt_order  INTEGER,         -- 1-based over the page
            arc_number    INTEGER,
            prompt_number INTEGER,         -- as written (global or per arc)
            text          VARCHAR,         -- the full Suno text, as written
            core_text     VARCHAR,         -- without the shared suffix
            checked       BOOLEAN,
            line          INTEGER,
            removed       BOOLEAN DEFAULT FALSE,  -- gone from the page since; kept for songs made from it
            PRIMARY KEY (track_number, prompt_order)
        );
        CREATE TABLE songs (
            song_id              VARCHAR PRIMARY KEY,   -- content hash of the file
            filename             VARCHAR,
            path                 VARCHAR,               -- where it was first seen
            prefix               VARCHAR,
            arc                  INTEGER,
            prompt               INTEGER,
            source_track         INTEGER,
            take                 VARCHAR,
            name_warning         VARCHAR,
            duration_seconds     DOUBLE,
            bpm                  DOUBLE,
            bpm_confidence       DOUBLE,
            key                  VARCHAR,
            key_confidence       DOUBLE,
            camelot              VARCHAR,
            loudness_lufs        DOUBLE,
            true_peak_db         DOUBLE,
            rms_energy           DOUBLE,
            spectral_centroid_hz DOUBLE,
            energy_level         VARCHAR,
            tempo_category       VARCHAR,
            sample_rate          INTEGER,
            channels             INTEGER,
            analyzer_version     VARCHAR,
            prompt_text          VARCHAR,
            song_text            VARCHAR,
            text_from_prompt     BOOLEAN,
            vibe_tags            VARCHAR[],
            mood_keywords        VARCHAR[],
            times_used           INTEGER DEFAULT 0,
            first_seen           TIMESTAMP,
            updated_at           TIMESTAMP
        );
        CREATE TABLE song_files (
            path         VARCHAR PRIMARY KEY,
            song_id      VARCHAR,
            file_size    BIGINT,
            file_mtime   DOUBLE,
            track_number INTEGER,          -- the partition that imported it
            seen_at      TIMESTAMP
        );
        CREATE TABLE import_errors (
            path         VARCHAR PRIMARY KEY,
            track_number INTEGER,
            error        VARCHAR,
            failed_at    TIMESTAMP
        );
        CREATE TABLE song_embeddings (
            song_id    VARCHAR,
            model      VARCHAR,
            text_hash  VARCHAR,
            vector     FLOAT[{EMBEDDING_DIM}],
            created_at TIMESTAMP,
            PRIMARY KEY (song_id, model)
        );
        CREATE TABLE matches (
            track_number  INTEGER,
            prompt_order  INTEGER,
            arc_number    INTEGER,
            prompt_number INTEGER,
            rank          INTEGER,
            song_id       VARCHAR,
            filename      VARCHAR,
            score         DOUBLE,
            similarity    DOUBLE,
            arc_score     DOUBLE,
            bpm_score     DOUBLE,
            key_score     DOUBLE,
            usage_score   DOUBLE,
            computed_at   TIMESTAMP,
            PRIMARY KEY (track_number, prompt_order, rank)
        );
        CREATE TABLE selections (
            track_number     INTEGER,
            position         INTEGER,
            arc_number       INTEGER,
            arc_name         VARCHAR,
            prompt_number    INTEGER,
            song_id          VARCHAR,
            path             VARCHAR,
            filename         VARCHAR,
            duration_seconds DOUBLE,
            loudness_lufs    DOUBLE,
            score            DOUBLE,
            similarity       DOUBLE,
            is_repeat        BOOLEAN,
            selected_at      TIMESTAMP,
            PRIMARY KEY (track_number, position)
        );
        CREATE TABLE publications (
            track_number INTEGER PRIMARY KEY,
            youtube_url  VARCHAR,
            video_id     VARCHAR,
            published_on DATE,
            recorded_at  TIMESTAMP
        );
        CREATE TABLE song_usage (            -- one row per song per published track
            track_number INTEGER,
            song_id      VARCHAR,
            PRIMARY KEY (track_number, song_id)
        );
        """,
    ),
    (
        2,
        "stored hand-offs: prompt_best, mix plans, gap reports, renders; song flags",
        """
        CREATE TABLE prompt_best (          -- the closest song of every prompt, threshold or not
            track_number  INTEGER,
            prompt_order  INTEGER,
            song_id       VARCHAR,
            filename      VARCHAR,
            similarity    DOUBLE,
            computed_at   TIMESTAMP,
            PRIMARY KEY (track_number, prompt_order)
        );
        CREATE TABLE match_runs (           -- the query settings of each track's stored matches
            track_number  INTEGER PRIMARY KEY,
            query_json    VARCHAR,
            computed_at   TIMESTAMP
        );
        CREATE TABLE mix_plans (            -- one stored plan per track; every consumer reads it
            track_number      INTEGER PRIMARY KEY,
            plan_id           VARCHAR,
            planned_at        TIMESTAMP,
            target_seconds    DOUBLE,
            duration_seconds  DOUBLE,
            crossfade_seconds DOUBLE,
            allocation        VARCHAR,
            max_repeats       INTEGER,
            query_json        VARCHAR,      -- the query settings the matches were made with
            summary_json      VARCHAR       -- per-arc summaries and notes
        );
        CREATE TABLE mix_plan_entries (
            track_number   INTEGER,
            position       INTEGER,
            arc_number     INTEGER,
            arc_name       VARCHAR,
            prompt_order   INTEGER,
            prompt_number  INTEGER,
            song_id        VARCHAR,
            filename       VARCHAR,
            path           VARCHAR,
            start_seconds  DOUBLE,
            length_seconds DOUBLE,
            "repeat"       INTEGER,         -- 0 = first play, 1 = second play, ...
            source         VARCHAR,         -- own | reused
            score          DOUBLE,
            similarity     DOUBLE,
            loudness_lufs  DOUBLE,
            bpm            DOUBLE,
            camelot        VARCHAR,
            energy_level   VARCHAR,
            PRIMARY KEY (track_number, position)
        );
        CREATE TABLE gap_reports (
            track_number      INTEGER PRIMARY KEY,
            plan_id           VARCHAR,
            built_at          TIMESTAMP,
            songs_to_generate INTEGER,
            shortfall_minutes DOUBLE,
            report_json       VARCHAR
        );
        CREATE TABLE renders (
            render_id        VARCHAR PRIMARY KEY,
            track_number     INTEGER,
            plan_id          VARCHAR,
            output_dir       VARCHAR,
            duration_seconds DOUBLE,
            target_seconds   DOUBLE,
            songs            INTEGER,       -- distinct songs in the video
            rendered_at      TIMESTAMP,
            report_json      VARCHAR
        );
        ALTER TABLE songs ADD COLUMN flags VARCHAR[];   -- silent, near-silent, very long, ...
        ALTER TABLE publications ADD COLUMN render_id VARCHAR;
        DROP TABLE selections;
        """,
    ),
    (
        3,
        "matches: the confidence weight of the BPM and key components",
        """
        -- 1.0 = full weight; below 1 the song's BPM or key was a low-confidence guess
        -- (core/confidence.py). NULL on older rows means full weight.
        ALTER TABLE matches ADD COLUMN bpm_weight DOUBLE;
        ALTER TABLE matches ADD COLUMN key_weight DOUBLE;
        """,
    ),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]

# Tables that may be exported to Parquet.
EXPORTABLE = ("songs", "matches", "mix_plan_entries", "song_embeddings", "tracks", "prompts")
# Columns stored as paths: relative to the library's home when inside it.
_PATH_COLUMNS = ("path", "output_dir")


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _plain(value: Any) -> Any:
    """One value as DuckDB should see it: NaN / NaT / inf become NULL, numpy scalars Python."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.ndarray):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):  # lists, arrays: not scalar
        pass
    return value


def db_frame(rows: pd.DataFrame | list[dict[str, Any]], columns: list[str] | None = None) -> pd.DataFrame:
    """The door's value conversion: a frame whose missing numbers are NULL for DuckDB, never NaN.

    Float columns become pandas' nullable ``Float64`` (NaN and ±inf → NA, which
    DuckDB reads as NULL); object columns have each value passed through
    :func:`_plain`. ``columns`` keeps and orders those columns (missing ones as NULL).
    """
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if columns is not None:
        for c in columns:
            if c not in df.columns:
                df[c] = None
        df = df[list(columns)]
    for c in df.columns:
        col = df[c]
        if pd.api.types.is_float_dtype(col.dtype):
            values = col.astype("Float64")
            values[~np.isfinite(col.to_numpy(dtype=float, na_value=np.nan))] = pd.NA
            df[c] = values
        elif col.dtype == object:
            df[c] = pd.Series([_plain(v) for v in col], index=df.index, dtype=object)
    return df


def _is_page_file(ref: str | None) -> bool:
    """A page reference that is a Markdown export file (not a Notion URL or page id)."""
    return bool(ref) and "://" not in ref and Path(ref).suffix.lower() in (".md", ".markdown", ".txt")


@contextlib.contextmanager
def _registered(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> Iterator[str]:
    """The frame as a view under a unique name for the length of the block."""
    name = f"_lofi_rows_{uuid.uuid4().hex[:8]}"
    con.register(name, frame)
    try:
        yield name
    finally:
        con.unregister(name)


def _params(values: list[Any]) -> list[Any]:
    return [_plain(v) for v in values]


class Library:
    """The one door to the library's DuckDB file: short-lived locked connections, typed methods.

    ``home`` is the library folder (LOFI_HOME): paths inside it are stored
    relative to it, so a copied or moved library finds its own files; paths
    outside it stay absolute. ``on_wait`` is told once when the lock is busy
    for more than a second.
    """

    def __init__(self, path: str | Path, *, home: str | Path | None = None, lock_timeout: float = 600.0,
                 on_wait: Callable[[str], None] | None = None):
        self.path = Path(path)
        self.home = Path(home).resolve() if home else None
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.lock_timeout = lock_timeout
        self.on_wait = on_wait
        self._migrated = False

    # -- paths ---------------------------------------------------------------
    def store_path(self, path: str | Path | None) -> str | None:
        """How a path is stored: relative to ``home`` when inside it, else absolute."""
        if path is None:
            return None
        p = Path(path)
        if not p.is_absolute():
            p = (self.home or Path.cwd()) / p
        p = Path(os.path.abspath(p))
        if self.home is not None:
            try:
                return p.relative_to(self.home).as_posix()
            except ValueError:
                pass
        return str(p)

    def full_path(self, stored: str | None) -> str | None:
        """The absolute path of a stored path."""
        if stored is None or (isinstance(stored, float) and math.isnan(stored)):
            return None
        p = Path(stored)
        if p.is_absolute():
            return str(p)
        return str((self.home or Path.cwd()) / p)

    def _full_paths(self, df: pd.DataFrame) -> pd.DataFrame:
        for c in _PATH_COLUMNS:
            if c in df.columns:
                df[c] = [self.full_path(v) if isinstance(v, str) else v for v in df[c]]
        return df

    def _stored_paths(self, df: pd.DataFrame) -> pd.DataFrame:
        for c in _PATH_COLUMNS:
            if c in df.columns:
                df[c] = [self.store_path(v) if isinstance(v, str) else None for v in df[c]]
        return df

    # -- connections -------------------------------------------------------
    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.lock_path), mode=0o644)
        try:
            lock.acquire(timeout=1.0)
        except Timeout:
            if self.on_wait:
                self.on_wait(f"waiting for the library lock on {self.path} (another lofi command or "
                             "Dagster run is writing)")
            try:
                lock.acquire(timeout=max(self.lock_timeout - 1.0, 0.0))
            except Timeout:
                raise LibraryError(
                    f"{self.path}: another process has held the library for more than "
                    f"{self.lock_timeout:.0f} s; check for a stuck `lofi` or Dagster run") from None
        try:
            yield
        finally:
            lock.release()

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        delay = 0.05
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.IOException as exc:
                # A process outside our lock protocol holds DuckDB's own lock: back off.
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise LibraryError(f"{self.path}: cannot open the library ({exc})") from None
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    @contextlib.contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One write transaction: all of it lands, or none of it."""
        with self._file_lock():
            con = self._open(read_only=False)
            try:
                self._migrate(con)
                con.execute("BEGIN TRANSACTION")
                try:
                    yield con
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")
            finally:
                con.close()

    @contextlib.contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection (creates and migrates the file first if missing)."""
        if not self.path.exists() or not self._migrated:
            self.init()
        with self._file_lock():
            con = self._open(read_only=True)
            try:
                yield con
            finally:
                con.close()

    def init(self) -> int:
        """Create the file and apply pending migrations; returns the schema version."""
        with self._file_lock():
            con = self._open(read_only=False)
            try:
                self._migrate(con)
                return con.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
            finally:
                con.close()

    def _migrate(self, con: duckdb.DuckDBPyConnection) -> None:
        if self._migrated:
            return
        existed = bool(con.execute("SELECT count(*) FROM information_schema.tables "
                                   "WHERE table_name = 'schema_migrations'").fetchone()[0])
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP)"
        )
        done = {r[0] for r in con.execute("SELECT version FROM schema_migrations").fetchall()}
        pending = [m for m in MIGRATIONS if m[0] not in done]
        if pending and existed and done:
            self._backup(con, max(done))
        for version, name, sql in pending:
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(sql)
                con.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                            [version, name, _now()])
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
        self._migrated = True

    def _backup(self, con: duckdb.DuckDBPyConnection, version: int) -> Path:
        """A copy of the file as it is, before a migration touches it (``<db>.v{N}-{time}.bak``)."""
        con.execute("CHECKPOINT")  # everything in the main file, nothing left in the WAL
        stamp = _now().strftime("%Y%m%dT%H%M%S")
        target = self.path.with_name(f"{self.path.name}.v{version}-{stamp}.bak")
        shutil.copy2(self.path, target)
        return target

    def _insert(self, con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, *,
                replace: bool = False) -> int:
        """Insert a frame by column name (a column added to the table later breaks nothing)."""
        if frame.empty:
            return 0
        with _registered(con, frame) as rows:
            con.execute(f"INSERT {'OR REPLACE ' if replace else ''}INTO {table} BY NAME SELECT * FROM {rows}")
        return len(frame)

    def _update_songs(self, con: duckdb.DuckDBPyConnection, frame: pd.DataFrame) -> int:
        """Set the frame's columns on the songs it names by ``song_id``."""
        if frame.empty:
            return 0
        with _registered(con, frame) as rows:
            sets = ", ".join(f"{c} = r.{c}" for c in frame.columns if c != "song_id")
            con.execute(f"UPDATE songs SET {sets} FROM {rows} r WHERE songs.song_id = r.song_id")
        return len(frame)

    # -- generic reads (tests, reports) ----------------------------------------
    def df(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        with self.read() as con:
            return con.execute(sql, _params(params or [])).df()

    def scalar(self, sql: str, params: list[Any] | None = None) -> Any:
        with self.read() as con:
            row = con.execute(sql, _params(params or [])).fetchone()
            return row[0] if row else None

    # -- tracks, arcs, prompts ---------------------------------------------
    def upsert_plan(self, track_number: int, plan: TrackPlan, *, page_ref: str | None,
                    last_edited_time: str | None = None) -> dict[str, int]:
        """Store a parsed page. Idempotent; prompts no longer on the page are kept as removed."""
        now = _now()
        track = {
            "track_number": track_number, "title": plan.title, "page_title": plan.page_title,
            "page_ref": self._stored_page_ref(page_ref), "last_edited_time": last_edited_time,
            "output_filename": plan.output_filename, "upload_schedule": plan.upload_schedule,
            "duration_minutes": plan.duration_minutes, "mood_arc": plan.mood_arc,
            "ctr_target": plan.ctr_target, "retention_target": plan.retention_target,
            "visible_hashtags": list(plan.visible_hashtags), "hidden_tags": list(plan.hidden_tags),
            "description": plan.description, "anchor_phrase": plan.anchor_phrase,
            "prompt_suffix": plan.prompt_suffix, "warnings": list(plan.warnings),
            "plan_json": json.dumps(plan.to_dict()), "updated_at": now,
        }
        arcs = [{"track_number": track_number, "arc_number": a.number, "name": a.name,
                 "subtitle": a.subtitle, "description": a.description,
                 "bpm_low": a.bpm_range[0] if a.bpm_range else None,
                 "bpm_high": a.bpm_range[1] if a.bpm_range else None} for a in plan.arcs]
        prompts = [{"track_number": track_number, "prompt_order": p.order, "arc_number": a.number,
                    "prompt_number": p.number, "text": p.text, "core_text": p.core_text,
                    "checked": p.checked, "line": p.line, "removed": False}
                   for a in plan.arcs for p in a.prompts]
        with self.write() as con:
            previous = con.execute("SELECT imported_at, status FROM tracks WHERE track_number = ?",
                                   [track_number]).fetchone()
            track["imported_at"], track["status"] = previous if previous else (now, "planned")
            # Removed prompts too: they must survive every later re-import, not just the first.
            old = con.execute("SELECT * FROM prompts WHERE track_number = ? ORDER BY prompt_order",
                              [track_number]).df()
            current = {(p["arc_number"], p["prompt_number"]) for p in prompts}
            next_order = max([p["prompt_order"] for p in prompts], default=0) + 1
            removed = []
            # Keep prompts that left the page, after the live ones, so songs made from
            # them still resolve to what they were generated from.
            for row in old.to_dict("records"):
                if (row["arc_number"], row["prompt_number"]) not in current:
                    removed.append({**row, "prompt_order": next_order, "removed": True})
                    next_order += 1
            for table in ("tracks", "arcs", "prompts"):
                con.execute(f"DELETE FROM {table} WHERE track_number = ?", [track_number])
            self._insert(con, "tracks", db_frame([track]))
            self._insert(con, "arcs", db_frame(arcs))
            self._insert(con, "prompts", db_frame(prompts + removed))
        return {"arcs": len(plan.arcs), "prompts": len(plan.prompts), "removed_prompts": len(removed)}

    def load_plan(self, track_number: int) -> TrackPlan | None:
        raw = self.scalar("SELECT plan_json FROM tracks WHERE track_number = ?", [track_number])
        return TrackPlan.from_dict(json.loads(raw)) if raw else None

    def track_numbers(self) -> list[int]:
        return [int(x) for x in self.df("SELECT track_number FROM tracks ORDER BY 1")["track_number"]]

    def page_ref(self, track_number: int) -> str | None:
        """Where the track's page was imported from (a Notion URL or export file), if known."""
        ref = self.scalar("SELECT page_ref FROM tracks WHERE track_number = ?", [track_number])
        return self.full_path(ref) if _is_page_file(ref) else ref

    def _stored_page_ref(self, ref: str | None) -> str | None:
        """An export file inside the library is stored relative to it (a copied library reads its own)."""
        return self.store_path(ref) if _is_page_file(ref) else ref

    # -- songs ---------------------------------------------------------------
    def known_files(self) -> dict[str, tuple[str, int, float, str | None]]:
        """absolute path -> (song_id, size, mtime, analyzer_version) for incremental imports."""
        rows = self.df(
            "SELECT f.path, f.song_id, f.file_size, f.file_mtime, s.analyzer_version "
            "FROM song_files f LEFT JOIN songs s USING (song_id)")
        return {self.full_path(r.path): (r.song_id, int(r.file_size), float(r.file_mtime), r.analyzer_version)
                for r in rows.itertuples()}

    def analyzer_versions(self) -> dict[str, str]:
        """song_id -> the analyzer version its features came from."""
        return dict(self.df("SELECT song_id, analyzer_version FROM songs").itertuples(index=False))

    def upsert_songs(self, track_number: int, features: pd.DataFrame, *,
                     filename_fields: Callable[[str], dict[str, Any]],
                     describe: Callable[[pd.DataFrame, dict[int, TrackPlan]], pd.DataFrame]) -> dict[str, Any]:
        """Load one import's analysed files in one transaction.

        ``features`` has a row per file with ``status`` analysed / known_content /
        error (see :func:`lofi_pipeline.core.catalog.feature_frame`). New songs get
        their file-name fields; every song's meaning text is refreshed by
        ``describe(songs, plans)`` (rows: song_id, prompt_text, song_text,
        text_from_prompt, vibe_tags, mood_keywords).
        """
        from lofi_pipeline.core.catalog import audio_flags

        now = _now()
        added = updated = linked = 0
        name_warnings: list[str] = []
        flag_warnings: list[str] = []
        rows = features.to_dict("records") if len(features) else []
        with self.write() as con:
            existing = {r[0] for r in con.execute("SELECT song_id FROM songs").fetchall()}
            new_songs, reanalysed, files, errors, clear = [], [], [], [], []
            for row in rows:
                path = self.store_path(row["path"])
                if row["status"] == "error":
                    errors.append({"path": path, "track_number": track_number, "error": row.get("error"),
                                   "failed_at": now})
                    continue
                clear.append(path)
                song_id = row["content_hash"]
                if row["status"] == "analysed":
                    analysis = {c: row.get(c) for c in ANALYSIS_COLUMNS}
                    # Every analysis sets the flags afresh (a re-analysed song may lose or gain them).
                    analysis["flags"] = audio_flags(duration_seconds=_plain(row.get("duration_seconds")),
                                                    loudness_lufs=_plain(row.get("loudness_lufs")))
                    if analysis["flags"]:
                        flag_warnings.append(f"{Path(row['path']).name}: {'; '.join(analysis['flags'])}; "
                                             "imported but left out of mix plans")
                    if song_id in existing:
                        reanalysed.append({"song_id": song_id, **analysis, "updated_at": now})
                    else:
                        fields = filename_fields(Path(row["path"]).name)
                        if fields.get("name_warning"):
                            name_warnings.append(fields["name_warning"])
                        new_songs.append({"song_id": song_id, "filename": Path(row["path"]).name, "path": path,
                                          **fields, **analysis, "times_used": 0, "first_seen": now,
                                          "updated_at": now})
                        existing.add(song_id)
                files.append({"path": path, "song_id": song_id, "file_size": row.get("file_size"),
                              "file_mtime": row.get("file_mtime"), "track_number": track_number,
                              "seen_at": now})
            if clear:
                con.execute("DELETE FROM import_errors WHERE path IN (SELECT unnest(?::VARCHAR[]))", [clear])
            self._insert(con, "import_errors", db_frame(errors), replace=True)
            added = self._insert(con, "songs", db_frame(new_songs))
            updated = self._update_songs(con, db_frame(reanalysed))
            linked = self._insert(con, "song_files", db_frame(files), replace=True)
            flag_warnings += self._flag_unchecked_songs(con, audio_flags)
            self._refresh_song_texts(con, describe)
        return {"songs_added": added, "songs_reanalysed": updated, "files_linked": linked,
                "name_warnings": name_warnings, "flag_warnings": flag_warnings}

    def _flag_unchecked_songs(self, con: duckdb.DuckDBPyConnection,
                              audio_flags: Callable[..., list[str]]) -> list[str]:
        """Set the flags of songs analysed before flags existed (NULL), from their stored analysis."""
        rows = con.execute("SELECT song_id, filename, duration_seconds, loudness_lufs FROM songs "
                           "WHERE flags IS NULL").df()
        if rows.empty:
            return []
        found = [{"song_id": r.song_id, "filename": r.filename,
                  "flags": audio_flags(duration_seconds=_plain(r.duration_seconds),
                                       loudness_lufs=_plain(r.loudness_lufs))} for r in rows.itertuples()]
        frame = pd.DataFrame({"song_id": [f["song_id"] for f in found],
                              "flags": [json.dumps(f["flags"]) for f in found]})
        with _registered(con, frame) as rows:
            con.execute(f"UPDATE songs SET flags = CAST(r.flags AS JSON)::VARCHAR[] FROM {rows} r "
                        "WHERE songs.song_id = r.song_id")
        return [f"{f['filename']}: {'; '.join(f['flags'])}; left out of mix plans" for f in found if f["flags"]]

    def _refresh_song_texts(self, con: duckdb.DuckDBPyConnection,
                            describe: Callable[[pd.DataFrame, dict[int, TrackPlan]], pd.DataFrame]) -> int:
        songs = con.execute("SELECT song_id, filename, arc, prompt, source_track, bpm, key, energy_level, "
                            "coalesce(text_from_prompt, FALSE) AS text_from_prompt FROM songs").df()
        plans = {int(n): TrackPlan.from_dict(json.loads(raw)) for n, raw in
                 con.execute("SELECT track_number, plan_json FROM tracks").fetchall() if raw}
        return self._update_songs(con, db_frame(describe(songs, plans)))

    def refresh_song_texts(self, describe: Callable[[pd.DataFrame, dict[int, TrackPlan]], pd.DataFrame]) -> int:
        """Recompute every song's meaning text (after a page changed)."""
        with self.write() as con:
            return self._refresh_song_texts(con, describe)

    def import_errors(self, track_number: int) -> pd.DataFrame:
        errs = self.df("SELECT path, error FROM import_errors WHERE track_number = ? ORDER BY path",
                       [track_number])
        return self._full_paths(errs)

    def library_summary(self) -> dict[str, Any]:
        """Songs, hours and songs without a known prompt, over the whole library."""
        row = self.df("SELECT count(*) AS songs, coalesce(round(sum(duration_seconds) / 3600, 2), 0) AS hours, "
                      "count(*) FILTER (WHERE NOT coalesce(text_from_prompt, FALSE)) AS songs_without_prompt "
                      "FROM songs").iloc[0]
        return {"library_songs": int(row.songs), "library_hours": float(row.hours),
                "songs_without_prompt": int(row.songs_without_prompt)}

    def songs(self, *, with_vectors_for: str | None = None, recent_tracks: int = 3) -> pd.DataFrame:
        """All songs with their recent-use flag (and the embedding vector when a model is named).

        ``recently_used`` is true for songs in any of the ``recent_tracks`` most recently
        published tracks (the usage penalty of matching). Paths are absolute.
        """
        limit = max(int(recent_tracks), 0)
        sql = f"""
            SELECT s.*, u.last_used_track, coalesce(u.recently_used, FALSE) AS recently_used
            FROM songs s
            LEFT JOIN (
                SELECT su.song_id, max(su.track_number) AS last_used_track,
                       bool_or(su.track_number IN (
                           SELECT track_number FROM publications
                           ORDER BY published_on DESC, track_number DESC LIMIT {limit})) AS recently_used
                FROM song_usage su GROUP BY su.song_id
            ) u USING (song_id)
            ORDER BY s.song_id
        """
        if with_vectors_for:
            sql = f"""SELECT q.*, e.vector, e.text_hash FROM ({sql}) q
                      LEFT JOIN song_embeddings e ON e.song_id = q.song_id AND e.model = ?
                      ORDER BY q.song_id"""
            return self._full_paths(self.df(sql, [with_vectors_for]))
        return self._full_paths(self.df(sql))

    def move_song_files(self, moves: dict[str, str]) -> int:
        """Record that files moved (old absolute path -> new absolute path): songs and song_files follow."""
        if not moves:
            return 0
        pairs = db_frame([{"old": self.store_path(a), "new": self.store_path(b)} for a, b in moves.items()])
        with self.write() as con, _registered(con, pairs) as moved:
            con.execute(f"UPDATE songs SET path = m.new FROM {moved} m WHERE songs.path = m.old")
            # song_files is keyed by path: re-insert the moved rows under their new key.
            con.execute(f"INSERT OR REPLACE INTO song_files BY NAME SELECT m.new AS path, f.song_id, "
                        f"f.file_size, f.file_mtime, f.track_number, f.seen_at FROM song_files f "
                        f"JOIN {moved} m ON f.path = m.old")
            con.execute(f"DELETE FROM song_files WHERE path IN (SELECT old FROM {moved})")
        return len(moves)

    def song_locations(self, song_ids: list[str]) -> dict[str, list[str]]:
        """Every known file of each song (absolute paths), the song's own path first."""
        if not song_ids:
            return {}
        rows = self.df("SELECT s.song_id, s.path AS song_path, f.path FROM songs s "
                       "LEFT JOIN song_files f USING (song_id) WHERE s.song_id IN (SELECT unnest(?::VARCHAR[]))",
                       [list(song_ids)])
        out: dict[str, list[str]] = {}
        for r in rows.itertuples():
            paths = out.setdefault(r.song_id, [self.full_path(r.song_path)] if isinstance(r.song_path, str) else [])
            if isinstance(r.path, str):
                full = self.full_path(r.path)
                if full not in paths:
                    paths.append(full)
        return out

    # -- embeddings ------------------------------------------------------------
    def texts_for_embedding(self, model: str) -> pd.DataFrame:
        """song_id, song_text and the hash of the text last embedded with ``model`` (None if never)."""
        return self.df("SELECT s.song_id, s.song_text, e.text_hash FROM songs s LEFT JOIN song_embeddings e "
                       "ON e.song_id = s.song_id AND e.model = ? WHERE s.song_text IS NOT NULL "
                       "ORDER BY s.song_id", [model])

    def upsert_embeddings(self, model: str, song_ids: list[str], text_hashes: list[str],
                          vectors: np.ndarray) -> int:
        if vectors.ndim != 2 or vectors.shape[1] != EMBEDDING_DIM:
            raise LibraryError(f"embeddings must be {EMBEDDING_DIM}-dimensional, got shape {vectors.shape}")
        frame = pd.DataFrame({"song_id": song_ids, "model": model, "text_hash": text_hashes,
                              "vector": [v.astype(np.float32) for v in vectors], "created_at": _now()})
        with self.write() as con:
            con.execute("DELETE FROM song_embeddings WHERE model = ? AND song_id IN "
                        "(SELECT unnest(?::VARCHAR[]))", [model, list(song_ids)])
            return self._insert(con, "song_embeddings", frame)

    def embedding_count(self, model: str) -> int:
        return int(self.scalar("SELECT count(*) FROM song_embeddings WHERE model = ?", [model]))

    def songs_missing_embeddings(self, model: str) -> list[str]:
        """File names of songs with a known prompt but no embedding for ``model``."""
        return self.df("SELECT s.filename FROM songs s LEFT JOIN song_embeddings e ON e.song_id = s.song_id "
                       "AND e.model = ? WHERE s.text_from_prompt AND e.song_id IS NULL ORDER BY 1",
                       [model])["filename"].tolist()

    def duplicate_embeddings(self) -> int:
        return int(self.scalar("SELECT count(*) FROM (SELECT song_id, model FROM song_embeddings "
                               "GROUP BY 1, 2 HAVING count(*) > 1)"))

    def song_matrix(self, model: str, *, recent_tracks: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
        """Songs that have a ``model`` embedding, and their vectors as an (n, dim) float32 matrix."""
        songs = self.songs(with_vectors_for=model, recent_tracks=recent_tracks)
        songs = songs[songs["vector"].notna()].reset_index(drop=True)
        matrix = (np.stack([np.asarray(v, dtype=np.float32) for v in songs["vector"]])
                  if len(songs) else np.zeros((0, EMBEDDING_DIM), np.float32))
        return songs.drop(columns=["vector"]), matrix

    # -- matches -----------------------------------------------------------------
    def replace_matches(self, track_number: int, matches: pd.DataFrame, best: pd.DataFrame,
                        query: dict[str, Any]) -> int:
        """A track's matches, each prompt's closest song (``best``: prompt_order, song_id,
        filename, similarity) and the query settings used, replacing what the last query stored."""
        now = _now()
        frame = db_frame(matches.assign(track_number=track_number, computed_at=now)) if len(matches) else matches
        best_frame = db_frame(best.assign(track_number=track_number, computed_at=now)) if len(best) else best
        with self.write() as con:
            con.execute("DELETE FROM matches WHERE track_number = ?", [track_number])
            con.execute("DELETE FROM prompt_best WHERE track_number = ?", [track_number])
            con.execute("DELETE FROM match_runs WHERE track_number = ?", [track_number])
            self._insert(con, "match_runs", db_frame([{"track_number": track_number, "computed_at": now,
                                                       "query_json": json.dumps(query, default=str)}]))
            self._insert(con, "matches", frame)
            self._insert(con, "prompt_best", best_frame)
        return len(frame)

    def load_matches(self, track_number: int, *, with_songs: bool = False) -> pd.DataFrame:
        """A track's stored matches in prompt and rank order (with song columns when asked)."""
        if with_songs:
            df = self.df("SELECT m.*, s.bpm, s.bpm_confidence, s.key, s.key_confidence, s.arc AS song_arc, "
                         "s.duration_seconds, s.path FROM matches m "
                         "JOIN songs s USING (song_id) WHERE m.track_number = ? ORDER BY prompt_order, rank",
                         [track_number])
            return self._full_paths(df)
        return self.df("SELECT * FROM matches WHERE track_number = ? ORDER BY prompt_order, rank", [track_number])

    def load_query(self, track_number: int) -> dict[str, Any] | None:
        """The query settings the track's stored matches were made with (None before any query)."""
        raw = self.scalar("SELECT query_json FROM match_runs WHERE track_number = ?", [track_number])
        return json.loads(raw) if raw else None

    def load_best(self, track_number: int) -> dict[int, dict[str, Any]]:
        """prompt_order -> the closest song's similarity, song_id and filename."""
        rows = self.df("SELECT prompt_order, song_id, filename, similarity FROM prompt_best "
                       "WHERE track_number = ?", [track_number])
        return {int(r.prompt_order): {"similarity": _plain(r.similarity), "song_id": r.song_id,
                                      "filename": r.filename} for r in rows.itertuples()}

    # -- mix plan ----------------------------------------------------------------
    def replace_mix_plan(self, track_number: int, header: dict[str, Any], entries: pd.DataFrame) -> str:
        """Store a track's mix plan (header + entries), replacing the previous one; returns its plan_id."""
        now = _now()
        plan_id = header.get("plan_id") or f"{track_number}-{now.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        head = {**header, "track_number": track_number, "plan_id": plan_id, "planned_at": now}
        for key in ("query_json", "summary_json"):
            if not isinstance(head.get(key), (str, type(None))):
                head[key] = json.dumps(head[key], default=str)
        rows = self._stored_paths(db_frame(entries.assign(track_number=track_number))) if len(entries) else entries
        with self.write() as con:
            con.execute("DELETE FROM mix_plans WHERE track_number = ?", [track_number])
            con.execute("DELETE FROM mix_plan_entries WHERE track_number = ?", [track_number])
            self._insert(con, "mix_plans", db_frame([head]))
            self._insert(con, "mix_plan_entries", rows)
        return plan_id

    def load_mix_plan(self, track_number: int) -> tuple[dict[str, Any], pd.DataFrame] | None:
        """The stored plan's header (JSON fields decoded) and its entries in position order; None if none."""
        head = self.df("SELECT * FROM mix_plans WHERE track_number = ?", [track_number])
        if head.empty:
            return None
        header = {k: _plain(v) for k, v in head.iloc[0].to_dict().items()}
        for key in ("query_json", "summary_json"):
            header[key] = json.loads(header[key]) if header.get(key) else {}
        entries = self.df("SELECT * FROM mix_plan_entries WHERE track_number = ? ORDER BY position",
                          [track_number])
        return header, self._full_paths(entries)

    def duplicate_first_plays(self) -> int:
        """Songs that start twice in one plan as a first play (repeats are marked, never duplicates)."""
        return int(self.scalar('SELECT count(*) FROM (SELECT track_number, song_id FROM mix_plan_entries '
                               'WHERE "repeat" = 0 GROUP BY 1, 2 HAVING count(*) > 1)'))

    # -- gap reports -------------------------------------------------------------
    def save_gap_report(self, track_number: int, plan_id: str | None, report: dict[str, Any]) -> None:
        row = {"track_number": track_number, "plan_id": plan_id, "built_at": _now(),
               "songs_to_generate": report.get("songs_to_generate"),
               "shortfall_minutes": report.get("shortfall_minutes"),
               "report_json": json.dumps(report, default=str)}
        with self.write() as con:
            self._insert(con, "gap_reports", db_frame([row]), replace=True)

    def load_gap_report(self, track_number: int) -> dict[str, Any] | None:
        raw = self.scalar("SELECT report_json FROM gap_reports WHERE track_number = ?", [track_number])
        return json.loads(raw) if raw else None

    # -- renders -----------------------------------------------------------------
    def record_render(self, track_number: int, *, render_id: str, plan_id: str | None, output_dir: str,
                      report: dict[str, Any]) -> None:
        songs = len({e.get("song_id") for e in report.get("entries", []) if e.get("song_id")})
        row = {"render_id": render_id, "track_number": track_number, "plan_id": plan_id,
               "output_dir": self.store_path(output_dir), "duration_seconds": report.get("duration_seconds"),
               "target_seconds": report.get("target_seconds"), "songs": songs, "rendered_at": _now(),
               "report_json": json.dumps(report, default=str)}
        with self.write() as con:
            self._insert(con, "renders", db_frame([row]), replace=True)

    def latest_render(self, track_number: int) -> dict[str, Any] | None:
        """The newest render of a track: its row with the report decoded, or None."""
        df = self.df("SELECT * FROM renders WHERE track_number = ? ORDER BY rendered_at DESC LIMIT 1",
                      [track_number])
        if df.empty:
            return None
        row = {k: _plain(v) for k, v in self._full_paths(df).iloc[0].to_dict().items()}
        row["report"] = json.loads(row.pop("report_json") or "{}")
        return row

    # -- exports -------------------------------------------------------------
    def export_parquet(self, table: str, export_dir: str) -> str:
        """Write ``table`` to ``{export_dir}/{table}.parquet`` (local path or s3:// URL)."""
        if table not in EXPORTABLE:
            raise LibraryError(f"cannot export unknown table '{table}'")
        if "://" not in export_dir:
            Path(export_dir).mkdir(parents=True, exist_ok=True)
        target = f"{export_dir.rstrip('/')}/{table}.parquet"
        tmp = target + ".tmp" if "://" not in export_dir else target
        with self.read() as con:
            con.execute(f"COPY (SELECT * FROM {table}) TO '{tmp}' (FORMAT parquet)")
        if tmp != target:
            os.replace(tmp, target)  # readers never see a half-written file
        return target

    # -- publishing ----------------------------------------------------------
    def publish(self, track_number: int, *, youtube_url: str, video_id: str,
                published_on: "datetime | None" = None) -> dict[str, Any]:
        """Mark a track published and count each song of its latest render exactly once for it."""
        day = (published_on or _now()).date()
        render = self.latest_render(track_number)
        with self.write() as con:
            if not con.execute("SELECT 1 FROM tracks WHERE track_number = ?", [track_number]).fetchone():
                raise LibraryError(f"track {track_number} is not in the library; import it first")
            if render is None:
                raise LibraryError(f"track {track_number} has no render; run `lofi render --track "
                                   f"{track_number}` first")
            rendered = sorted({e["song_id"] for e in render["report"].get("entries", []) if e.get("song_id")})
            con.execute("DELETE FROM publications WHERE track_number = ?", [track_number])
            self._insert(con, "publications", db_frame([{
                "track_number": track_number, "youtube_url": youtube_url, "video_id": video_id,
                "published_on": day, "recorded_at": _now(), "render_id": render["render_id"]}]))
            before = con.execute("SELECT count(*) FROM song_usage WHERE track_number = ?",
                                 [track_number]).fetchone()[0]
            # A re-publish of another render of the same track replaces that track's uses.
            con.execute("DELETE FROM song_usage WHERE track_number = ? AND song_id NOT IN "
                        "(SELECT unnest(?::VARCHAR[]))", [track_number, rendered])
            self._insert(con, "song_usage", db_frame([{"track_number": track_number, "song_id": s}
                                                      for s in rendered]), replace=True)
            after = con.execute("SELECT count(*) FROM song_usage WHERE track_number = ?",
                                [track_number]).fetchone()[0]
            con.execute("UPDATE songs SET times_used = coalesce(u.n, 0) FROM (SELECT s.song_id, count(su.song_id) "
                        "AS n FROM songs s LEFT JOIN song_usage su USING (song_id) GROUP BY 1) u "
                        "WHERE songs.song_id = u.song_id")
            con.execute("UPDATE tracks SET status = 'published', updated_at = ? WHERE track_number = ?",
                        [_now(), track_number])
        return {"songs": len(rendered), "newly_counted": max(after - before, 0),
                "render_id": render["render_id"], "output_dir": render["output_dir"]}


ANALYSIS_COLUMNS = [
    "duration_seconds", "bpm", "bpm_confidence", "key", "key_confidence", "camelot",
    "loudness_lufs", "true_peak_db", "rms_energy", "spectral_centroid_hz", "energy_level",
    "tempo_category", "sample_rate", "channels", "analyzer_version",
]
