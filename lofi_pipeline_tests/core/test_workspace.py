"""Track folders: scaffold, duration table, prepare-render (no lost file), URL check, atomic JSON."""

from __future__ import annotations

import json
import os

import pytest
from conftest_render import selected, synth_song, write_song

from lofi_pipeline.core import prepare
from lofi_pipeline.core.errors import ConfigError, PageParseError, RenderError
from lofi_pipeline.core.identity import content_hash
from lofi_pipeline.core.models import Arc, Prompt, TrackPlan
from lofi_pipeline.core.files import write_json_atomic
from lofi_pipeline.core.prepare import prepare_render_folder
from lofi_pipeline.core.publishing import validate_youtube_url
from lofi_pipeline.core.trackdir import duration_table, scaffold_track


def make_plan(*, title: str = "Neon Rain Drive", description: str = "Three hours of night driving.") -> TrackPlan:
    def prompts(arc: int, texts: list[str], start: int) -> list[Prompt]:
        return [Prompt(number=start + i, order=start + i, text=t, core_text=t, line=10 * arc + i)
                for i, t in enumerate(texts)]

    return TrackPlan(
        source="pages/track-21.md", track_number=21, title=title, page_title="Track 21 – Neon Rain",
        duration_minutes=180, visible_hashtags=["#lofi", "synthwave"], hidden_tags=["night drive", "rain"],
        description=description,
        arcs=[Arc(number=1, name="Dusk", bpm_range=(70, 78), description="Warm pads.",
                  prompts=prompts(1, ["soft rhodes, vinyl crackle, slow rain", "tape-warped piano, 72 bpm"], 1)),
              Arc(number=2, name="Midnight Highway",
                  prompts=prompts(2, ["analog arpeggio, gated snare, neon glow"], 3))],
    )


# ------------------------------------------------------------------ scaffold


def test_scaffold_creates_folders_readme_and_metadata(tmp_path):
    res = scaffold_track(tmp_path, make_plan())
    track = tmp_path / "21"
    assert res.track_dir == track and res.readme == "created"
    for sub in ("Songs", "Rendered", "Video", "metadata"):
        assert (track / sub).is_dir()
    readme = (track / "README.md").read_text()
    for expected in ("# Neon Rain Drive", "Three hours of night driving.", "#lofi", "#synthwave",
                     "night drive, rain", "Arc 1: Dusk", "Arc 2: Midnight Highway", "BPM 70–78",
                     "1. soft rhodes, vinyl crackle, slow rain", "3. analog arpeggio, gated snare, neon glow"):
        assert expected in readme
    meta = json.loads((track / "metadata" / "track.json").read_text())
    assert meta["track_number"] == 21 and meta["plan"]["arcs"][1]["name"] == "Midnight Highway"
    assert meta["readme_sha256"] and len(meta["readme_sha256"]) == 64


def test_scaffold_is_idempotent(tmp_path):
    scaffold_track(tmp_path, make_plan())
    track = tmp_path / "21"
    stamps = {p: p.stat().st_mtime_ns for p in (track / "README.md", track / "metadata" / "track.json")}
    again = scaffold_track(tmp_path, make_plan())
    assert again.created == [] and again.readme == "unchanged" and not again.metadata_written
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_page_change_updates_our_readme_but_never_a_user_edit_without_force(tmp_path):
    scaffold_track(tmp_path, make_plan())
    readme = tmp_path / "21" / "README.md"
    # The page changed and the README is still ours: it follows the page.
    res = scaffold_track(tmp_path, make_plan(description="Now four hours."))
    assert res.readme == "updated" and "Now four hours." in readme.read_text()
    # The user edits it: a re-scaffold keeps the edit, even when the page changes.
    edited = readme.read_text() + "\n## My notes\nthumbnail: blue car\n"
    readme.write_text(edited)
    res = scaffold_track(tmp_path, make_plan(description="Five hours."))
    assert res.readme == "kept" and readme.read_text() == edited
    assert any("edited by hand" in w for w in res.warnings)
    # force replaces it, and from then on it counts as ours again.
    res = scaffold_track(tmp_path, make_plan(description="Five hours."), force=True)
    assert res.readme == "overwritten" and "My notes" not in readme.read_text()
    assert scaffold_track(tmp_path, make_plan(description="Six hours.")).readme == "updated"


def test_scaffold_needs_a_track_number(tmp_path):
    plan = make_plan()
    plan.track_number = None
    with pytest.raises(PageParseError, match="track-21.md"):
        scaffold_track(tmp_path, plan)


# ------------------------------------------------------------------ durations


def test_duration_table_per_arc_recursive_all_formats(tmp_path):
    songs = tmp_path / "Songs"
    write_song(songs / "A_1_1_19a.wav", synth_song(1, 3.0))
    write_song(songs / "sub" / "A_1_2_19b.flac", synth_song(2, 2.0))
    write_song(songs / "001__A_2_3_19a.mp3", synth_song(3, 4.0))  # sequence prefix still parses
    write_song(songs / "deep" / "er" / "b_2_4_20.m4a", synth_song(4, 5.0))
    write_song(songs / "intro.ogg", synth_song(5, 1.5))  # outside the naming convention
    write_song(songs / ".hidden" / "A_1_9_19a.wav", synth_song(6, 9.0))  # skipped
    (songs / "notes.txt").write_text("not audio")
    (songs / "A_3_1_19a.mp3").write_text("broken")  # unreadable: reported, not counted

    table = duration_table(songs)
    rows = {a.arc: a for a in table.arcs}
    assert list(rows) == [1, 2, None]
    assert rows[1].songs == 2 and rows[1].seconds == pytest.approx(5.0, abs=0.01)
    assert rows[2].songs == 2 and rows[2].seconds == pytest.approx(9.0, abs=0.15)  # mp3/aac padding
    assert rows[None].songs == 1 and rows[None].seconds == pytest.approx(1.5, abs=0.05)
    assert table.songs == 5
    assert table.total_seconds == pytest.approx(15.5, abs=0.2)
    assert table.total_minutes == pytest.approx(table.total_seconds / 60)
    assert table.total_hours == pytest.approx(table.total_seconds / 3600)
    assert [e[0].endswith("A_3_1_19a.mp3") for e in table.errors] == [True]
    assert table.to_dict()["arcs"][0]["minutes"] == pytest.approx(5.0 / 60, abs=0.01)


# ------------------------------------------------------------ prepare-render


@pytest.fixture
def library(tmp_path):
    """Five songs in a library folder and a selection over them (mix order differs from file order)."""
    lib = tmp_path / "library"
    songs = []
    for i, (arc, prompt) in enumerate([(1, 1), (1, 2), (2, 3), (2, 4), (3, 5)]):
        path = write_song(lib / f"A_{arc}_{prompt}_19a.wav", synth_song(10 + i, 1.0 + 0.25 * i))
        songs.append(selected(path, order=5 - i, arc=arc, duration=1.0 + 0.25 * i,
                              song_id=content_hash(path)))
    track = tmp_path / "21"
    track.mkdir(parents=True)
    return lib, songs, track


def snapshot(paths):
    return {p.name: content_hash(p) for p in paths}


def test_copy_places_songs_in_order_and_writes_the_plan(library):
    lib, songs, track = library
    res = prepare_render_folder(track, songs, remaining_prompts_md="# Remaining\n- 6. rain on glass\n")
    assert res.ok and [p.action for p in res.placed] == ["copied"] * 5
    names = sorted(p.name for p in (track / "Songs").iterdir())
    assert names == ["001__A_3_5_19a.wav", "002__A_2_4_19a.wav", "003__A_2_3_19a.wav",
                     "004__A_1_2_19a.wav", "005__A_1_1_19a.wav"]
    for s in songs:  # copies are byte-identical, sources untouched
        assert (track / "Songs" / f"{s.order:03d}__{s.filename}").read_bytes() == open(s.path, "rb").read()
    plan = json.loads((track / "render_plan.json").read_text())
    rows = plan["songs"]
    assert [r["order"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["file"] == "Songs/001__A_3_5_19a.wav" and rows[0]["arc_number"] == 3
    by_order = sorted(songs, key=lambda s: s.order)
    assert [r["status"] for r in rows] == ["copied"] * 5 and [r["song_id"] for r in rows] == [s.song_id for s in by_order]
    assert (track / "remaining-prompts.md").read_text().startswith("# Remaining")
    assert [s.path for s in res.render_selection] == [str(track / "Songs" / n) for n in names]


def test_rerun_is_idempotent(library):
    lib, songs, track = library
    prepare_render_folder(track, songs)
    stamps = {p.name: p.stat().st_mtime_ns for p in (track / "Songs").iterdir()}
    again = prepare_render_folder(track, songs)
    assert [p.action for p in again.placed] == ["unchanged"] * 5 and again.ok
    assert {p.name: p.stat().st_mtime_ns for p in (track / "Songs").iterdir()} == stamps


def test_existing_different_file_is_a_conflict_and_left_alone(library):
    lib, songs, track = library
    (track / "Songs").mkdir()
    squatter = track / "Songs" / "003__A_2_3_19a.wav"
    squatter.write_bytes(b"someone else's file")
    res = prepare_render_folder(track, songs, mode="move")
    assert [c.dest for c in res.conflicts] == [str(squatter)] and not res.ok
    assert squatter.read_bytes() == b"someone else's file"
    conflicted = next(s for s in songs if s.order == 3)
    assert os.path.exists(conflicted.path)  # its source is not moved away either
    assert sum(p.action == "moved" for p in res.placed) == 4


def test_move_deletes_sources_only_after_verified_copies(library):
    lib, songs, track = library
    before = snapshot([lib / s.filename for s in songs])
    res = prepare_render_folder(track, songs, mode="move")
    assert [p.action for p in res.placed] == ["moved"] * 5
    assert not any(lib.iterdir())
    after = {p.name.split("__", 1)[1]: content_hash(p) for p in (track / "Songs").iterdir()}
    assert after == before
    # re-running after the move: the sources are gone, the placed files match their song ids
    assert [p.action for p in prepare_render_folder(track, songs, mode="move").placed] == ["unchanged"] * 5


def test_hardlink_shares_the_inode(library):
    lib, songs, track = library
    res = prepare_render_folder(track, songs, mode="hardlink")
    assert {p.action for p in res.placed} == {"hardlinked"}
    s = songs[0]
    assert os.stat(s.path).st_ino == (track / "Songs" / f"{s.order:03d}__{s.filename}").stat().st_ino


def test_move_failing_midway_loses_no_file(library, monkeypatch):
    lib, songs, track = library
    before = snapshot([lib / s.filename for s in songs])
    real_copy, calls = prepare._copy_file, []

    def failing_copy(src, dst):
        calls.append(src)
        if len(calls) == 3:  # the disk "fills up" halfway through the third song
            with open(src, "rb") as fh, open(dst, "wb") as out:
                out.write(fh.read()[:100])
            raise OSError(28, "No space left on device")
        real_copy(src, dst)

    monkeypatch.setattr(prepare, "_copy_file", failing_copy)
    with pytest.raises(RenderError, match=r"No space left on device.*2 song\(s\) were placed"):
        prepare_render_folder(track, songs, mode="move")
    # every song exists exactly once, whole, either at its source or in Songs/
    placed = {p.name.split("__", 1)[1]: content_hash(p) for p in (track / "Songs").iterdir()}
    remaining = snapshot(p for p in lib.iterdir())
    assert set(placed) | set(remaining) == set(before) and not set(placed) & set(remaining)
    assert {**placed, **remaining} == before
    assert len(placed) == 2
    assert not [p for p in (track / "Songs").iterdir() if p.name.startswith(".")]  # no partial left

    monkeypatch.setattr(prepare, "_copy_file", real_copy)
    res = prepare_render_folder(track, songs, mode="move")  # the re-run carries on
    assert sorted(p.action for p in res.placed) == ["moved"] * 3 + ["unchanged"] * 2
    assert not any(lib.iterdir())


def test_corrupted_copy_is_caught_by_the_hash_check(library, monkeypatch):
    lib, songs, track = library

    def bitflip_copy(src, dst):
        data = bytearray(open(src, "rb").read())
        data[-1] ^= 0xFF  # same size, different content
        open(dst, "wb").write(bytes(data))

    monkeypatch.setattr(prepare, "_copy_file", bitflip_copy)
    with pytest.raises(RenderError, match="does not match the source"):
        prepare_render_folder(track, songs, mode="move")
    assert len(list(lib.iterdir())) == 5 and not list((track / "Songs").iterdir())


def test_missing_source_is_reported(library):
    lib, songs, track = library
    os.remove(songs[0].path)
    res = prepare_render_folder(track, songs)
    assert [m.source for m in res.missing] == [songs[0].path] and not res.ok


# ---------------------------------------------------------------- url / json


@pytest.mark.parametrize("url", [
    "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
    "http://youtube.com/watch?v=dQw4w9WgXcQ&t=42s&list=PL123",
    "https://youtu.be/dQw4w9WgXcQ?si=abc",
    "youtu.be/dQw4w9WgXcQ",
    "https://m.youtube.com/watch?v=dQw4w9WgXcQ",
    "https://www.youtube.com/shorts/dQw4w9WgXcQ",
    "https://www.youtube.com/live/dQw4w9WgXcQ",
    "https://www.youtube.com/embed/dQw4w9WgXcQ",
])
def test_youtube_urls_give_the_video_id(url):
    assert validate_youtube_url(url) == "dQw4w9WgXcQ"


@pytest.mark.parametrize("url", [
    "", "dQw4w9WgXcQ", "https://vimeo.com/123456", "https://www.youtube.com/watch?v=short",
    "https://www.youtube.com/channel/UC1234567890", "ftp://youtu.be/dQw4w9WgXcQ",
    "https://youtube.com.evil.example/watch?v=dQw4w9WgXcQ", "https://www.youtube.com/watch?list=PL1",
])
def test_bad_youtube_urls_are_refused_with_the_expected_form(url):
    with pytest.raises(ConfigError, match="expected https://www.youtube.com/watch"):
        validate_youtube_url(url)


def test_write_json_atomic_replaces_whole_file(tmp_path):
    target = tmp_path / "metadata" / "published.json"
    write_json_atomic(target, {"a": 1, "path": tmp_path})
    write_json_atomic(target, {"a": 2, "title": "Nuit — été"})
    assert json.loads(target.read_text(encoding="utf-8")) == {"a": 2, "title": "Nuit — été"}
    assert [p.name for p in target.parent.iterdir()] == ["published.json"]


def test_placed_songs_and_written_files_follow_the_umask(library):
    import stat

    lib, songs, track = library
    old = os.umask(0o022)
    try:
        prepare_render_folder(track, songs, remaining_prompts_md="# Remaining\n")
    finally:
        os.umask(old)
    placed = sorted((track / "Songs").iterdir())
    assert placed and all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in placed)
    assert stat.S_IMODE((track / "render_plan.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((track / "remaining-prompts.md").stat().st_mode) == 0o644
