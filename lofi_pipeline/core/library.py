"""The library store: one DuckDB file, one door to it.

Concurrency pattern (why it looks like this): DuckDB lets one process open a
file read-write at a time, and a read-only open fails while a writer holds
it. The webserver, the daemon, sensor-triggered runs, multiprocess steps and
the CLI may all touch the library at once, so:

* every connection is short-lived: opened for one transaction, then closed;
* every open first takes an advisory lock on ``<db>.lock`` (``fcntl``):
  shared for reads, exclusive for writes, so processes queue instead of
  failing; the wait is bounded (``lock_timeout`` seconds) and the error
  then names the file;
* an open that still meets DuckDB's own lock (a process that does not use
  our lock file, e.g. the DuckDB shell) is retried with backoff;
* long work (audio analysis, embedding) happens outside any connection;
  only the final write takes the lock, inside one transaction, so an
  interrupted step leaves no half-written rows.

On top of this, the Dagster layer puts writing assets in the ``duckdb`` pool.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from lofi_pipeline.core.errors import LibraryError
from lofi_pipeline.core.models import TrackPlan

EMBEDDING_DIM = 384

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
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Library:
    """Short-lived, locked connections to the library's DuckDB file."""

    def __init__(self, path: str | Path, *, lock_timeout: float = 600.0):
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.lock_timeout = lock_timeout
        self._migrated = False

    # -- connections -------------------------------------------------------
    @contextlib.contextmanager
    def _file_lock(self, exclusive: bool) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        deadline = time.monotonic() + self.lock_timeout
        try:
            while True:
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise LibraryError(
                            f"{self.path}: another process has held the library for more than "
                            f"{self.lock_timeout:.0f} s; check for a stuck `lofi` or Dagster run"
                        ) from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock

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
        with self._file_lock(exclusive=True):
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
        with self._file_lock(exclusive=False):
            con = self._open(read_only=True)
            try:
                yield con
            finally:
                con.close()

    def init(self) -> int:
        """Create the file and apply pending migrations; returns the schema version."""
        with self._file_lock(exclusive=True):
            con = self._open(read_only=False)
            try:
                self._migrate(con)
                return con.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
            finally:
                con.close()

    def _migrate(self, con: duckdb.DuckDBPyConnection) -> None:
        if self._migrated:
            return
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP)"
        )
        done = {r[0] for r in con.execute("SELECT version FROM schema_migrations").fetchall()}
        for version, name, sql in MIGRATIONS:
            if version in done:
                continue
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(sql)
                con.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", [version, name, _now()])
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
        self._migrated = True

    # -- queries -----------------------------------------------------------
    def df(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        with self.read() as con:
            return con.execute(sql, params or []).df()

    def scalar(self, sql: str, params: list[Any] | None = None) -> Any:
        with self.read() as con:
            row = con.execute(sql, params or []).fetchone()
            return row[0] if row else None

    # -- tracks, arcs, prompts ---------------------------------------------
    def upsert_plan(self, track_number: int, plan: TrackPlan, *, page_ref: str | None,
                    last_edited_time: str | None = None) -> dict[str, int]:
        """Store a parsed page. Idempotent; prompts no longer on the page are kept as removed."""
        now = _now()
        with self.write() as con:
            previous = con.execute("SELECT imported_at, status FROM tracks WHERE track_number = ?",
                                   [track_number]).fetchone()
            imported_at, status = previous if previous else (now, "planned")
            con.execute("DELETE FROM tracks WHERE track_number = ?", [track_number])
            con.execute(
                "INSERT INTO tracks VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [track_number, plan.title, plan.page_title, page_ref, last_edited_time,
                 plan.output_filename, plan.upload_schedule, plan.duration_minutes, plan.mood_arc,
                 plan.ctr_target, plan.retention_target, plan.visible_hashtags, plan.hidden_tags,
                 plan.description, plan.anchor_phrase, plan.prompt_suffix, plan.warnings,
                 json.dumps(plan.to_dict()), status, imported_at, now],
            )
            con.execute("DELETE FROM arcs WHERE track_number = ?", [track_number])
            for arc in plan.arcs:
                low, high = arc.bpm_range if arc.bpm_range else (None, None)
                con.execute("INSERT INTO arcs VALUES (?,?,?,?,?,?,?)",
                            [track_number, arc.number, arc.name, arc.subtitle, arc.description, low, high])
            # Removed prompts too: they must survive every later re-import, not just the first.
            old = con.execute(
                "SELECT prompt_order, arc_number, prompt_number, text, core_text, checked, line "
                "FROM prompts WHERE track_number = ? ORDER BY prompt_order", [track_number]).fetchall()
            con.execute("DELETE FROM prompts WHERE track_number = ?", [track_number])
            current = set()
            for arc in plan.arcs:
                for p in arc.prompts:
                    current.add((arc.number, p.number))
                    con.execute("INSERT INTO prompts VALUES (?,?,?,?,?,?,?,?,FALSE)",
                                [track_number, p.order, arc.number, p.number, p.text, p.core_text,
                                 p.checked, p.line])
            # Keep prompts that left the page, after the live ones, so songs made from
            # them still resolve to what they were generated from.
            next_order = max([p.order for p in plan.prompts], default=0) + 1
            removed = 0
            for _, arc_n, num, text, core, checked, line in old:
                if (arc_n, num) not in current:
                    con.execute("INSERT INTO prompts VALUES (?,?,?,?,?,?,?,?,TRUE)",
                                [track_number, next_order, arc_n, num, text, core, checked, line])
                    next_order += 1
                    removed += 1
        return {"arcs": len(plan.arcs), "prompts": len(plan.prompts), "removed_prompts": removed}

    def load_plan(self, track_number: int) -> TrackPlan | None:
        raw = self.scalar("SELECT plan_json FROM tracks WHERE track_number = ?", [track_number])
        return TrackPlan.from_dict(json.loads(raw)) if raw else None

    def track_numbers(self) -> list[int]:
        return [int(x) for x in self.df("SELECT track_number FROM tracks ORDER BY 1")["track_number"]]

    # -- songs ---------------------------------------------------------------
    def known_files(self) -> dict[str, tuple[str, int, float, str | None]]:
        """path -> (song_id, size, mtime, analyzer_version) for incremental imports."""
        rows = self.df(
            "SELECT f.path, f.song_id, f.file_size, f.file_mtime, s.analyzer_version "
            "FROM song_files f LEFT JOIN songs s USING (song_id)")
        return {r.path: (r.song_id, int(r.file_size), float(r.file_mtime), r.analyzer_version)
                for r in rows.itertuples()}

    def songs(self, *, with_vectors_for: str | None = None, recent_tracks: int = 3) -> pd.DataFrame:
        """All songs with their recent-use flag (and the embedding vector when a model is named).

        ``recently_used`` is true for songs in any of the ``recent_tracks`` most recently
        published tracks (the usage penalty of matching).
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
            return self.df(sql, [with_vectors_for])
        return self.df(sql)

    # -- exports -------------------------------------------------------------
    def export_parquet(self, table: str, export_dir: str) -> str:
        """Write ``table`` to ``{export_dir}/{table}.parquet`` (local path or s3:// URL)."""
        if table not in {"songs", "matches", "selections", "song_embeddings", "tracks", "prompts"}:
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
                published_on: "datetime | None" = None) -> dict[str, int]:
        """Mark a track published and count each selected song's use exactly once for it."""
        day = (published_on or _now()).date()
        with self.write() as con:
            if not con.execute("SELECT 1 FROM tracks WHERE track_number = ?", [track_number]).fetchone():
                raise LibraryError(f"track {track_number} is not in the library; import it first")
            selected = [r[0] for r in con.execute(
                "SELECT DISTINCT song_id FROM selections WHERE track_number = ?", [track_number]).fetchall()]
            if not selected:
                raise LibraryError(f"track {track_number} has no selection; run `lofi query` first")
            con.execute("INSERT OR REPLACE INTO publications VALUES (?,?,?,?,?)",
                        [track_number, youtube_url, video_id, day, _now()])
            before = con.execute("SELECT count(*) FROM song_usage WHERE track_number = ?",
                                 [track_number]).fetchone()[0]
            con.executemany("INSERT INTO song_usage VALUES (?, ?) ON CONFLICT DO NOTHING",
                            [[track_number, s] for s in selected])
            after = con.execute("SELECT count(*) FROM song_usage WHERE track_number = ?",
                                [track_number]).fetchone()[0]
            con.execute("UPDATE songs SET times_used = u.n FROM (SELECT song_id, count(*) AS n FROM song_usage "
                        "GROUP BY song_id) u WHERE songs.song_id = u.song_id")
            con.execute("UPDATE tracks SET status = 'published', updated_at = ? WHERE track_number = ?",
                        [_now(), track_number])
        return {"songs": len(selected), "newly_counted": after - before}
