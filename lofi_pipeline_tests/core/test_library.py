"""The DuckDB store: migrations, atomic writes, idempotent upserts, two writers at once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from lofi_pipeline.core.library import SCHEMA_VERSION, Library
from lofi_pipeline.core.models import Arc, Prompt, TrackPlan
from lofi_pipeline.core.stats import stats_from_library


def _plan(prompts_per_arc=(3, 2), texts=None) -> TrackPlan:
    arcs, order = [], 0
    for a, n in enumerate(prompts_per_arc, 1):
        ps = []
        for i in range(1, n + 1):
            order += 1
            text = (texts or {}).get((a, i), f"arc {a} prompt {i} soft rhodes")
            ps.append(Prompt(number=i, order=order, text=text + " — lofi", core_text=text))
        arcs.append(Arc(number=a, name=f"Arc {a}", bpm_range=(60.0, 70.0) if a == 1 else None, prompts=ps))
    return TrackPlan(source="test.md", track_number=7, title="Test", duration_minutes=60, arcs=arcs)


def test_init_creates_every_table_and_records_migration(tmp_path):
    lib = Library(tmp_path / "lofi.duckdb")
    assert lib.init() == SCHEMA_VERSION
    tables = set(lib.df("SELECT table_name FROM information_schema.tables")["table_name"])
    for t in ["tracks", "arcs", "prompts", "songs", "song_embeddings", "matches", "mix_plans",
              "mix_plan_entries", "prompt_best", "gap_reports", "renders",
              "publications", "schema_migrations"]:
        assert t in tables
    # Re-running is a no-op
    assert Library(tmp_path / "lofi.duckdb").init() == SCHEMA_VERSION
    assert lib.scalar("SELECT count(*) FROM schema_migrations") == SCHEMA_VERSION


def test_failed_write_leaves_no_rows(tmp_path):
    lib = Library(tmp_path / "lofi.duckdb")
    with pytest.raises(RuntimeError):
        with lib.write() as con:
            con.execute("INSERT INTO song_usage VALUES (1, 'a')")
            raise RuntimeError("interrupted")
    assert lib.scalar("SELECT count(*) FROM song_usage") == 0


def test_upsert_plan_is_idempotent_and_keeps_removed_prompts(tmp_path):
    lib = Library(tmp_path / "lofi.duckdb")
    lib.upsert_plan(7, _plan(), page_ref="p.md")
    lib.upsert_plan(7, _plan(), page_ref="p.md")
    assert lib.scalar("SELECT count(*) FROM prompts WHERE track_number = 7") == 5
    assert lib.scalar("SELECT bpm_low FROM arcs WHERE track_number = 7 AND arc_number = 1") == 60.0
    # The page loses arc 2's second prompt: it stays, marked removed, for songs made from it.
    counts = lib.upsert_plan(7, _plan((3, 1)), page_ref="p.md")
    assert counts["removed_prompts"] == 1
    rows = lib.df("SELECT arc_number, prompt_number, removed FROM prompts WHERE track_number = 7 "
                  "ORDER BY prompt_order")
    assert rows.removed.sum() == 1 and rows.iloc[-1].tolist() == [2, 2, True]
    # ...and stays through later re-imports, until the prompt comes back to the page
    assert lib.upsert_plan(7, _plan((3, 1)), page_ref="p.md")["removed_prompts"] == 1
    assert lib.scalar("SELECT count(*) FROM prompts WHERE track_number = 7 AND removed") == 1
    lib.upsert_plan(7, _plan(), page_ref="p.md")
    assert lib.scalar("SELECT count(*) FROM prompts WHERE track_number = 7 AND removed") == 0
    assert lib.load_plan(7).title == "Test"


WRITER = textwrap.dedent("""
    import sys, time
    from lofi_pipeline.core.library import Library
    lib = Library(sys.argv[1])
    who = sys.argv[2]
    for i in range(int(sys.argv[3])):
        with lib.write() as con:
            con.execute("INSERT INTO song_usage VALUES (?, ?)", [i, who])
            time.sleep(0.01)  # hold the write a little so the two processes collide
        with lib.read() as con:
            con.execute("SELECT count(*) FROM song_usage").fetchone()
    print("done", who)
""")


def test_two_processes_write_at_once_without_lock_errors(tmp_path):
    db = tmp_path / "lofi.duckdb"
    Library(db).init()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    procs = [subprocess.Popen([sys.executable, str(script), str(db), who, "25"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for who in ("a", "b")]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (stdout, stderr) in zip(procs, outs):
        assert p.returncode == 0, stderr
    lib = Library(db)
    assert lib.scalar("SELECT count(*) FROM song_usage") == 50
    assert lib.scalar("SELECT count(DISTINCT song_id) FROM song_usage") == 2


def test_write_waits_for_a_foreign_duckdb_writer(tmp_path):
    """A process outside our lock protocol (e.g. the duckdb shell) holds the file: we back off, not fail."""
    db = tmp_path / "lofi.duckdb"
    Library(db).init()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import duckdb, time, sys
        con = duckdb.connect({str(db)!r})
        print("open", flush=True)
        time.sleep(1.5)
        con.close()
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "open"
    started = time.monotonic()
    lib = Library(db)
    lib._migrated = True
    with lib.write() as con:
        con.execute("INSERT INTO song_usage VALUES (1, 'x')")
    assert time.monotonic() - started > 0.5  # it really waited for the other process
    holder.wait(timeout=10)
    assert lib.scalar("SELECT count(*) FROM song_usage") == 1


def test_lock_timeout_names_the_file(tmp_path):
    import fcntl
    import os

    from lofi_pipeline.core.errors import LibraryError

    lib = Library(tmp_path / "lofi.duckdb", lock_timeout=0.3)
    lib.init()
    fd = os.open(lib.lock_path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        # flock is per open file description, so a second open in this process conflicts too
        with pytest.raises(LibraryError, match="lofi.duckdb"):
            with lib.write():
                pass
    finally:
        os.close(fd)


def test_parquet_export_is_readable(tmp_path):
    lib = Library(tmp_path / "lofi.duckdb")
    lib.upsert_plan(7, _plan(), page_ref="p.md")
    target = lib.export_parquet("prompts", str(tmp_path / "export"))
    assert Path(target).exists()
    assert duckdb.connect().execute(f"SELECT count(*) FROM '{target}'").fetchone()[0] == 5
    with pytest.raises(Exception, match="unknown table"):
        lib.export_parquet("nope; DROP TABLE songs", str(tmp_path))


def test_publish_counts_each_song_once_and_marks_recent_use(tmp_path):
    from datetime import datetime

    lib = Library(tmp_path / "lofi.duckdb")
    for n in (7, 8):
        lib.upsert_plan(n, _plan(), page_ref="p.md")
    with lib.write() as con:
        con.execute("INSERT INTO songs (song_id, filename, times_used) VALUES ('s1', 'a.mp3', 0), "
                    "('s2', 'b.mp3', 0), ('s3', 'c.mp3', 0)")
    # What publish counts is the render, not the plan: the plan of 7 also lists s3.
    lib.replace_mix_plan(7, {"target_seconds": 60.0}, pd.DataFrame([
        {"position": i, "song_id": s} for i, s in enumerate(["s1", "s2", "s3"], 1)]))
    lib.record_render(7, render_id="r7", plan_id="p7", output_dir=str(tmp_path / "out7"),
                      report={"entries": [{"song_id": "s1"}, {"song_id": "s2"}, {"song_id": "s1"}]})
    lib.record_render(8, render_id="r8", plan_id="p8", output_dir=str(tmp_path / "out8"),
                      report={"entries": [{"song_id": "s2"}]})
    first = lib.publish(7, youtube_url="u", video_id="dQw4w9WgXcQ", published_on=datetime(2026, 1, 1))
    again = lib.publish(7, youtube_url="u", video_id="dQw4w9WgXcQ", published_on=datetime(2026, 1, 1))
    assert (first["songs"], first["newly_counted"], first["render_id"]) == (2, 2, "r7")
    assert again["newly_counted"] == 0
    lib.publish(8, youtube_url="u", video_id="dQw4w9WgXcQ", published_on=datetime(2026, 2, 1))
    used = dict(lib.df("SELECT song_id, times_used FROM songs").itertuples(index=False))
    assert used == {"s1": 1, "s2": 2, "s3": 0}
    recent = lib.songs(recent_tracks=1).set_index("song_id")["recently_used"]
    assert bool(recent["s2"]) and not bool(recent["s1"]) and not bool(recent["s3"])
    assert bool(lib.songs(recent_tracks=2).set_index("song_id")["recently_used"]["s1"])
    assert lib.scalar("SELECT status FROM tracks WHERE track_number = 7") == "published"


def test_nan_crosses_the_door_as_null(tmp_path):
    """A beatless song (tempo NaN from pandas) is stored as NULL and the BPM histogram still works."""
    from lofi_pipeline.core.catalog import describe_songs, feature_frame, filename_fields

    lib = Library(tmp_path / "lofi.duckdb", home=tmp_path)
    features = feature_frame([], [])
    features.loc[0] = {c: None for c in features.columns}
    features.loc[0, ["path", "status", "content_hash", "file_size", "file_mtime", "bpm", "duration_seconds"]] = \
        [str(tmp_path / "A_1_1_7a.wav"), "analysed", "h1", 10, 1.0, float("nan"), 30.0]
    features = features.astype({"bpm": float})
    counts = lib.upsert_songs(7, features, filename_fields=filename_fields, describe=describe_songs)
    assert counts["songs_added"] == 1
    assert lib.scalar("SELECT bpm IS NULL FROM songs WHERE song_id = 'h1'") is True
    assert stats_from_library(lib).bpm.empty  # the song without a tempo has no BPM bin
    # stored relative to the home, read back absolute
    assert lib.scalar("SELECT path FROM songs") == "A_1_1_7a.wav"
    assert lib.songs()["path"].iloc[0] == str(tmp_path / "A_1_1_7a.wav")


def test_insert_by_name_survives_a_new_column(tmp_path):
    lib = Library(tmp_path / "lofi.duckdb")
    lib.init()
    with lib.write() as con:
        con.execute("ALTER TABLE tracks ADD COLUMN added_later VARCHAR")
    lib.upsert_plan(7, _plan(), page_ref="p.md")
    assert lib.scalar("SELECT count(*) FROM prompts WHERE track_number = 7") == 5


def test_backup_is_taken_before_a_migration(tmp_path):
    from lofi_pipeline.core import library as library_module

    db = tmp_path / "lofi.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP)")
    con.execute(library_module.MIGRATIONS[0][2])
    con.execute("INSERT INTO schema_migrations VALUES (1, 'initial schema', now())")
    con.execute("INSERT INTO songs (song_id, filename) VALUES ('old', 'kept.mp3')")
    con.close()
    lib = Library(db)
    assert lib.init() == library_module.SCHEMA_VERSION
    backups = list(tmp_path.glob("lofi.duckdb.v1-*.bak"))
    assert len(backups) == 1
    old = duckdb.connect(str(backups[0]), read_only=True)
    assert old.execute("SELECT filename FROM songs").fetchall() == [("kept.mp3",)]
    assert old.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == 1
    old.close()
    Library(db).init()  # nothing pending: no second backup
    assert len(list(tmp_path.glob("lofi.duckdb.v*.bak"))) == 1


def test_page_files_inside_the_library_are_stored_relative(tmp_path):
    lib = Library(tmp_path / "data" / "lofi.duckdb", home=tmp_path)
    lib.upsert_plan(7, _plan(), page_ref=str(tmp_path / "data" / "notion_export" / "Track 7.md"))
    lib.upsert_plan(8, _plan(), page_ref="https://www.notion.so/Track-8-2a8433e57885800ab456d6dd739b5d36")
    assert lib.scalar("SELECT page_ref FROM tracks WHERE track_number = 7") == "data/notion_export/Track 7.md"
    assert lib.page_ref(7) == str(tmp_path / "data" / "notion_export" / "Track 7.md")
    assert lib.page_ref(8).startswith("https://www.notion.so/")
    # a copy of the library reads its own page file
    copy = Library(tmp_path / "data" / "lofi.duckdb", home=tmp_path / "elsewhere")
    assert copy.page_ref(7) == str(tmp_path / "elsewhere" / "data" / "notion_export" / "Track 7.md")
