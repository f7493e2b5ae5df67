"""Render plans, chapters and real ffmpeg renders checked on the output file."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from conftest_render import SR, fake_song, ffmpeg, selected, synth_song, write_song

from lofi_pipeline.core.errors import RenderError
from lofi_pipeline.core.probe import measure_loudness_ffmpeg, probe_media
from lofi_pipeline.core.render import (
    RenderReport,
    _checked_output,
    _remove_stale_leftovers,
    build_render_plan,
    chapters_for_render,
    chapters_text,
    find_background,
    format_timestamp,
    render_mix,
)

TARGET = -14.0

# ---------------------------------------------------------------------- plans


def test_auto_plan_plays_each_song_once_with_crossfades():
    songs = [fake_song(i, duration=d) for i, d in [(2, 200.0), (1, 180.0), (3, 150.0)]]
    plan = build_render_plan(songs, target_seconds=None, crossfade_seconds=5.0)
    assert [e.song.order for e in plan.entries] == [1, 2, 3]
    assert [e.start_seconds for e in plan.entries] == [0.0, 175.0, 370.0]
    assert plan.total_seconds == pytest.approx(180 + 200 + 150 - 2 * 5)
    assert [e.fade_in_seconds for e in plan.entries] == [0.0, 5.0, 5.0]
    assert [e.fade_out_seconds for e in plan.entries] == [5.0, 5.0, 0.0]


def test_a_target_cuts_the_plan_and_never_loops_it():
    songs = [fake_song(i, arc=i, duration=100.0) for i in (1, 2, 3)]
    plan = build_render_plan(songs, target_seconds=1000.0, crossfade_seconds=5.0)
    # a longer mix is a new plan, not a loop: the three songs play once (290 s)
    assert [e.song.order for e in plan.entries] == [1, 2, 3] and plan.total_seconds == pytest.approx(290.0)
    cut = build_render_plan(songs, target_seconds=150.0, crossfade_seconds=5.0)
    assert [e.song.order for e in cut.entries] == [1, 2] and cut.total_seconds == 150.0
    last = cut.entries[-1]
    assert last.start_seconds == pytest.approx(95.0) and last.play_seconds == pytest.approx(55.0)
    assert last.end_seconds == pytest.approx(150.0) and last.fade_out_seconds == 0.0


def test_short_target_trims_the_first_song_and_tail_that_only_fades_in_is_dropped():
    plan = build_render_plan([fake_song(1), fake_song(2)], target_seconds=300.0)  # test mode
    assert plan.entries[-1].end_seconds == 300.0
    # a target landing 2 s into the crossfade would start song 2 only to cut it: song 1 is trimmed instead
    plan = build_render_plan([fake_song(1), fake_song(2)], target_seconds=177.0, crossfade_seconds=5.0)
    assert len(plan.entries) == 1 and plan.entries[0].play_seconds == 177.0
    plan = build_render_plan([fake_song(1, duration=60.0)], target_seconds=30.0)
    assert len(plan.entries) == 1 and plan.total_seconds == 30.0


def test_crossfade_is_clamped_for_short_songs():
    plan = build_render_plan([fake_song(1, duration=4.0), fake_song(2, duration=2.0)], target_seconds=None)
    assert plan.entries[1].fade_in_seconds == 1.0 and plan.total_seconds == 5.0


@pytest.mark.parametrize("songs,target,match", [
    ([], None, "no songs"), ([fake_song(1, duration=0.0)], None, "duration_seconds must be positive"),
    ([fake_song(1)], 0.0, "positive number of seconds"),
])
def test_bad_plans_are_refused(songs, target, match):
    with pytest.raises(RenderError, match=match):
        build_render_plan(songs, target_seconds=target)


# ------------------------------------------------------------------- chapters


def test_timestamps():
    assert [format_timestamp(s) for s in (0, 9.9, 65, 3599.99, 3600, 3 * 3600 + 62)] == \
        ["0:00", "0:09", "1:05", "59:59", "1:00:00", "3:01:02"]


def test_chapters_are_arcs_with_youtube_rules():
    songs = [fake_song(i, arc=1 + (i - 1) // 4, duration=170.0 + 7 * i) for i in range(1, 13)]
    plan = build_render_plan(songs, target_seconds=None, crossfade_seconds=5.0)
    lines = chapters_text(chapters_for_render(plan)).splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["Arc1", "Arc2", "Arc3"]
    assert lines[0].startswith("0:00 ")
    # a chapter starts mid-crossfade, where the arc's first song takes over
    assert lines[1].split(" ")[0] == format_timestamp(int(plan.entries[4].start_seconds + 2.5))


def test_chapters_skip_entries_closer_than_ten_seconds():
    songs = [fake_song(i, arc=i, duration=6.0) for i in range(1, 11)]  # one arc every 3 s
    plan = build_render_plan(songs, target_seconds=None)
    times = [int(line.split(" ")[0].split(":")[1]) for line in chapters_text(chapters_for_render(plan)).splitlines()]
    assert times[0] == 0 and all(b - a >= 10 for a, b in zip(times, times[1:]))
    assert plan.total_seconds - times[-1] >= 10


def test_find_background_prefers_a_loop_video(tmp_path):
    assert find_background(tmp_path / "Video") is None
    (tmp_path / "b.png").write_bytes(b"x")
    assert find_background(tmp_path) == tmp_path / "b.png"
    (tmp_path / "z_loop.mp4").write_bytes(b"x")
    (tmp_path / ".hidden.mov").write_bytes(b"x")
    assert find_background(tmp_path) == tmp_path / "z_loop.mp4"


# -------------------------------------------------------------- real renders

# (duration s, peak, format, analysed loudness known?) — levels from about -31 to -12 LUFS
SONGS = [(20.0, 0.10, "wav", True), (16.0, 0.50, "mp3", False), (24.0, 0.90, "wav", False),
         (18.0, 0.30, "mp3", True), (22.0, 0.20, "wav", False)]
MIX_SECONDS = 70.0


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("render")
    meter = pyloudnorm.Meter(SR)
    songs = []
    for i, (dur, peak, fmt, analysed) in enumerate(SONGS):
        y = synth_song(100 + i, dur, peak=peak)
        path = write_song(root / "lib" / f"A_{i // 2 + 1}_{i + 1}_21a.{fmt}", y)
        # the analysis stage's loudness when known; otherwise render measures it with ebur128
        lufs = float(meter.integrated_loudness(y)) if analysed else None
        songs.append(selected(path, order=i + 1, arc=i // 2 + 1, duration=dur, loudness=lufs,
                              arc_name=["Dusk", "Highway", "Dawn"][i // 2]))
    plan = build_render_plan(songs, target_seconds=MIX_SECONDS, crossfade_seconds=5.0)
    progress: list[float] = []
    report = render_mix(plan, output_dir=root / "Rendered" / "output_test", background=None,
                        ffmpeg_exe=ffmpeg(), width=640, height=360, on_progress=progress.append)
    return plan, report, progress, root / "Rendered" / "output_test"


def test_output_streams_and_duration(rendered):
    plan, report, _, out = rendered
    info = probe_media(out / "mix.mp4", ffmpeg_exe=ffmpeg())
    assert info.duration_seconds == pytest.approx(MIX_SECONDS, abs=0.5)
    (video,) = info.of_type("video")
    (audio,) = info.of_type("audio")
    assert (video.codec, video.width, video.height) == ("h264", 640, 360)
    assert (audio.codec, audio.channels, audio.sample_rate) == ("aac", 2, 48000)
    exact = probe_media(out / "mix.mp4", ffmpeg_exe=ffmpeg(), exact=True)  # the audio track itself
    assert exact.duration_seconds == pytest.approx(MIX_SECONDS, abs=0.1)


def test_output_loudness_and_true_peak(rendered):
    _, report, _, out = rendered
    lufs, peak = measure_loudness_ffmpeg(out / "mix.mp4", ffmpeg_exe=ffmpeg())
    assert abs(lufs - TARGET) <= 1.0
    assert peak <= -1.0 + 0.2
    assert report.integrated_lufs == lufs and report.true_peak_db == peak


def test_songs_at_different_levels_come_out_even(rendered):
    plan, _, _, out = rendered
    levels = []
    for e in plan.entries[:-1]:  # the last one is inside the 10 s fade-out
        start = max(e.start_seconds + e.fade_in_seconds, 3.0) + 0.5
        end = e.end_seconds - e.fade_out_seconds - 0.5
        lufs, _ = measure_loudness_ffmpeg(out / "mix.mp4", ffmpeg_exe=ffmpeg(), start=start,
                                          duration=end - start)
        levels.append(lufs)
    # the sources span about 19 LU; after per-song gain they sit together at the target
    assert max(levels) - min(levels) <= 2.0, levels
    assert all(abs(v - TARGET) <= 1.5 for v in levels), levels


def test_fade_in_and_out(rendered):
    _, _, _, out = rendered
    head, _ = measure_loudness_ffmpeg(out / "mix.mp4", ffmpeg_exe=ffmpeg(), start=0.0, duration=0.8)
    tail, _ = measure_loudness_ffmpeg(out / "mix.mp4", ffmpeg_exe=ffmpeg(), start=MIX_SECONDS - 1.0,
                                      duration=0.9)
    assert head < TARGET - 8 and tail < TARGET - 8


def test_chapters_commands_report_and_progress(rendered):
    plan, report, progress, out = rendered
    chapters = (out / "chapters.txt").read_text()
    assert chapters == chapters_text(chapters_for_render(plan))
    assert chapters.splitlines() == ["0:00 Dusk", "0:28 Highway", "1:00 Dawn"]  # arcs, never file names
    commands = (out / "ffmpeg_commands.txt").read_text()
    assert "-stream_loop -1" in commands and "-c:v copy" in commands and "alimiter" in commands
    assert commands.count("libx264") == 1 and "-frames:v 300" in commands  # one 10 s segment, looped
    assert "acrossfade" not in commands
    data = json.loads((out / "render_report.json").read_text())
    assert data["integrated_lufs"] == report.integrated_lufs and data["wall_seconds"] > 0
    assert data["realtime_factor"] == pytest.approx(MIX_SECONDS / data["wall_seconds"], rel=0.01)
    assert json.loads((out / "render_plan.json").read_text())["total_seconds"] == MIX_SECONDS
    gains = report.gains_db  # quiet songs were raised, the loud one lowered
    assert gains["A_1_1_21a.wav"] > 10 and gains["A_2_3_21a.wav"] < 3
    assert any("measured" in w and "ebur128" in w for w in report.warnings)
    assert progress[-1] == 1.0 and progress == sorted(progress) and len(progress) >= 3


def test_default_size_with_an_image_background(tmp_path):
    img = tmp_path / "Video" / "cover.png"
    img.parent.mkdir()
    subprocess.run([ffmpeg(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=800x600", "-frames:v", "1",
                    str(img)], check=True)
    song = write_song(tmp_path / "A_1_1_21a.wav", synth_song(7, 12.0, peak=0.4))
    plan = build_render_plan([selected(song, order=1, arc=1, duration=12.0, loudness=-20.0)], target_seconds=8.0)
    report = render_mix(plan, output_dir=tmp_path / "out", background=find_background(img.parent),
                        ffmpeg_exe=ffmpeg(), measure_output=False, segment_seconds=2.0)
    info = probe_media(report.output_path, ffmpeg_exe=ffmpeg())
    (video,) = info.of_type("video")
    assert (video.codec, video.width, video.height) == ("h264", 1920, 1080)
    assert len(info.of_type("audio")) == 1 and info.duration_seconds == pytest.approx(8.0, abs=0.5)
    assert report.gains_db == {"A_1_1_21a.wav": 6.0}


def test_sixty_five_songs_stay_bounded(tmp_path):
    loop = tmp_path / "Video" / "loop.mp4"
    loop.parent.mkdir()
    subprocess.run([ffmpeg(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=320x180:r=15:d=2", "-c:v",
                    "libx264", str(loop)], check=True)
    meter = pyloudnorm.Meter(SR)
    songs = []
    for i in range(65):
        y = synth_song(i, 2.0, peak=0.2 + 0.01 * i)
        path = tmp_path / "songs" / f"A_{i // 20 + 1}_{i + 1}_21a.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, y, SR)
        songs.append(selected(path, order=i + 1, arc=i // 20 + 1, duration=2.0,
                              loudness=float(meter.integrated_loudness(y))))
    plan = build_render_plan(songs, target_seconds=None, crossfade_seconds=5.0)
    assert len(plan.entries) == 65 and plan.total_seconds == pytest.approx(66.0)  # 1 s crossfades
    report = render_mix(plan, output_dir=tmp_path / "out", background=find_background(loop.parent),
                        ffmpeg_exe=ffmpeg(), width=320, height=180, fps=15)
    info = probe_media(report.output_path, ffmpeg_exe=ffmpeg(), exact=True)
    assert info.duration_seconds == pytest.approx(66.0, abs=0.1)
    assert len(report.entries) == 65 and report.unique_songs == 65
    assert report.max_open_decoders <= 3  # two sounding + one opened ahead, never all 65
    commands = (tmp_path / "out" / "ffmpeg_commands.txt").read_text()
    encoder = next(line for line in commands.splitlines() if "pipe:0" in line)
    assert encoder.count(" -i ") == 2  # PCM stream + looped background, whatever the song count
    assert abs(report.integrated_lufs - TARGET) <= 1.0


def test_missing_inputs_and_broken_songs_raise_render_errors(tmp_path):
    song = write_song(tmp_path / "A_1_1_21a.wav", synth_song(1, 6.0))
    good = selected(song, order=1, arc=1, duration=6.0, loudness=-20.0)
    gone = selected(tmp_path / "A_1_2_21a.mp3", order=2, arc=1, duration=6.0, loudness=-20.0)
    with pytest.raises(RenderError, match=r"song file not found: .*A_1_2_21a\.mp3"):
        render_mix(build_render_plan([good, gone], target_seconds=None), output_dir=tmp_path / "o1",
                   background=None, ffmpeg_exe=ffmpeg())
    with pytest.raises(RenderError, match=r"background not found: .*nope\.png"):
        render_mix(build_render_plan([good], target_seconds=None), output_dir=tmp_path / "o2",
                   background=tmp_path / "nope.png", ffmpeg_exe=ffmpeg())
    junk = tmp_path / "A_1_3_21a.mp3"
    junk.write_bytes(np.random.default_rng(0).bytes(4000))
    bad = selected(junk, order=2, arc=1, duration=6.0, loudness=-20.0)
    with pytest.raises(RenderError, match=r"could not decode .*A_1_3_21a\.mp3"):
        render_mix(build_render_plan([good, bad], target_seconds=None), output_dir=tmp_path / "o3",
                   background=None, ffmpeg_exe=ffmpeg(), width=320, height=180)
    assert not (tmp_path / "o3" / "mix.mp4").exists()  # no half-written mix left behind


# ------------------------------------------------- crash safety, missing songs, phases

_CHILD = r"""
import json, sys, time
from pathlib import Path
from lofi_pipeline.core.models import SelectedSong
from lofi_pipeline.core.render import build_render_plan, render_mix

args = json.loads(sys.argv[1])
songs = [SelectedSong(order=i + 1, arc_number=1, arc_name="Dusk", song_id=f"id{i}", path=p,
                      filename=Path(p).name, duration_seconds=d, loudness_lufs=-20.0)
         for i, (p, d) in enumerate(args["songs"])]
plan = build_render_plan(songs, target_seconds=args["target"], crossfade_seconds=3.0)

def on_phase(name, done, total):
    print(f"{name} {done} {total}", flush=True)
    if name == "mix":
        time.sleep(0.05)  # a slow mix, so the test can kill it in the middle

render_mix(plan, output_dir=Path(args["out"]), background=None, ffmpeg_exe=args["ffmpeg"], width=320,
           height=180, on_phase=on_phase)
print("finished", flush=True)
"""


def _songs_on_disk(folder, count: int, seconds: float) -> list:
    return [write_song(folder / f"A_1_{i + 1}_21a.wav", synth_song(40 + i, seconds, peak=0.3))
            for i in range(count)]


def test_killed_render_leaves_nothing_that_looks_finished_and_the_next_one_cleans_up(tmp_path, monkeypatch):
    tmp_root = tmp_path / "tmp"
    tmp_root.mkdir()
    paths = _songs_on_disk(tmp_path / "songs", 3, 20.0)
    killed_out = tmp_path / "Rendered" / "output_1"
    args = {"songs": [[str(p), 20.0] for p in paths], "target": 240.0, "out": str(killed_out),
            "ffmpeg": ffmpeg()}
    env = {**os.environ, "TMPDIR": str(tmp_root),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                          os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(args)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    seen = []
    try:
        for line in child.stdout:
            seen.append(line.split())
            name, done = seen[-1][0], int(seen[-1][1]) if len(seen[-1]) > 1 else 0
            if name == "mix" and done >= 20:  # 20 of 240 s encoded: well inside the mix
                os.kill(child.pid, signal.SIGKILL)
                break
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, (seen[-3:], child.stderr.read()[-1500:])
    time.sleep(1.0)  # the orphaned encoder sees its stdin close and finishes its (hidden) file

    # nothing in the output folder looks finished: no mix.mp4, no report, only hidden files
    left = sorted(p.name for p in killed_out.iterdir())
    assert "mix.mp4" not in left and "render_report.json" not in left, left
    assert all(name.startswith(".") for name in left), left
    assert any(name == f".mix.partial-{child.pid}.mp4" for name in left), left
    # its work folder is still in the temp directory, marked with the dead pid
    (work,) = [p for p in tmp_root.iterdir() if p.name.startswith("lofi_render_")]
    assert (work / "owner.pid").read_text().strip() == str(child.pid)

    # the next render removes the left-overs and produces a finished mix
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_root))
    songs = [selected(p, order=i + 1, arc=1, duration=20.0, loudness=-20.0) for i, p in enumerate(paths)]
    report = render_mix(build_render_plan(songs, target_seconds=30.0),
                        output_dir=tmp_path / "Rendered" / "output_2", background=None, ffmpeg_exe=ffmpeg(),
                        width=320, height=180, measure_output=False)
    assert isinstance(report, RenderReport)
    assert not work.exists()
    assert list(killed_out.iterdir()) == []
    # its own work folder is gone too
    assert not [p for p in tmp_root.iterdir() if p.name.startswith("lofi_render_")]
    finished = sorted(p.name for p in (tmp_path / "Rendered" / "output_2").iterdir())
    assert finished == ["chapters.txt", "ffmpeg_commands.txt", "mix.mp4", "render_plan.json",
                        "render_report.json"]


def test_stale_work_folders_are_removed_only_when_their_owner_is_gone(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = subprocess.Popen(["sleep", "30"])
    try:
        folders = {}
        for name, owner, age_h in [("dead", dead.pid, 0), ("alive", alive.pid, 0), ("old_unowned", None, 7),
                                   ("new_unowned", None, 0), ("other", None, 9)]:
            d = tmp_path / (f"lofi_render_{name}" if name != "other" else "someone_elses_dir")
            d.mkdir()
            if owner:
                (d / "owner.pid").write_text(f"{owner}\n")
            t = time.time() - age_h * 3600
            os.utime(d, (t, t))
            folders[name] = d
        out = tmp_path / "Rendered" / "output_2"
        out.mkdir(parents=True)
        sibling = tmp_path / "Rendered" / "output_1"
        sibling.mkdir()
        (sibling / f".mix.partial-{dead.pid}.mp4").write_bytes(b"x")
        (sibling / f".mix.partial-{alive.pid}.mp4").write_bytes(b"x")
        (sibling / "mix.mp4").write_bytes(b"x")
        _remove_stale_leftovers(out)
        assert not folders["dead"].exists() and not folders["old_unowned"].exists()
        assert folders["alive"].exists() and folders["new_unowned"].exists() and folders["other"].exists()
        assert sorted(p.name for p in sibling.iterdir()) == [f".mix.partial-{alive.pid}.mp4", "mix.mp4"]
    finally:
        alive.kill()
        alive.wait()


def test_missing_songs_are_named_or_left_out_with_allow_missing(tmp_path):
    paths = _songs_on_disk(tmp_path / "songs", 4, 8.0)
    songs = [selected(p, order=i + 1, arc=1 + i // 2, duration=8.0, loudness=-20.0)
             for i, p in enumerate(paths)]
    paths[1].unlink()
    paths[3].unlink()
    plan = build_render_plan(songs, target_seconds=None, crossfade_seconds=2.0)
    with pytest.raises(RenderError,
                       match=r"song file not found: .*A_1_2_21a\.wav.*A_1_4_21a\.wav.*--allow-missing"):
        render_mix(plan, output_dir=tmp_path / "o1", background=None, ffmpeg_exe=ffmpeg(), width=320,
                   height=180)
    assert not (tmp_path / "o1" / "mix.mp4").exists()

    phases: list[tuple[str, int, int]] = []
    progress: list[float] = []
    report = render_mix(plan, output_dir=tmp_path / "o2", background=None, ffmpeg_exe=ffmpeg(), width=320,
                        height=180, allow_missing=True, on_phase=lambda *a: phases.append(a),
                        on_progress=progress.append)
    # the two songs left play end to end, without a hole where the others were
    assert report.planned_seconds == pytest.approx(8.0 + 8.0 - 2.0)
    assert report.duration_seconds == pytest.approx(14.0, abs=0.1)  # the audio track, decoded
    assert sorted(report.gains_db) == ["A_1_1_21a.wav", "A_1_3_21a.wav"]
    missing_warnings = [w for w in report.warnings if "missing at render time" in w]
    assert len(missing_warnings) == 2 and "A_1_4_21a.wav" in missing_warnings[1]
    saved = json.loads((tmp_path / "o2" / "render_report.json").read_text())
    assert saved["warnings"] == report.warnings
    assert "A_1_2_21a" not in (tmp_path / "o2" / "chapters.txt").read_text()
    saved_plan = json.loads((tmp_path / "o2" / "render_plan.json").read_text())
    assert [e["file"] for e in saved_plan["entries"]] == ["A_1_1_21a.wav", "A_1_3_21a.wav"]

    # phases in order, each from (0, total) to (total, total), never going back
    order = list(dict.fromkeys(name for name, _, _ in phases))
    assert order == ["loudness", "background", "mix", "check"]
    for name in order:
        steps = [(d, t) for n, d, t in phases if n == name]
        assert steps[0][0] == 0 and steps[-1][0] == steps[-1][1] > 0, (name, steps)
        assert [d for d, _ in steps] == sorted(d for d, _ in steps) and len({t for _, t in steps}) == 1
    assert [t for n, _, t in phases if n == "loudness"][0] == 2  # the two songs still there
    assert [t for n, _, t in phases if n == "mix"][0] == 14
    assert [t for n, _, t in phases if n == "background"][0] == 300  # 10 s at 30 fps
    # the mix moves block by block (2 s each), and on_progress still works beside on_phase
    assert len([1 for n, _, _ in phases if n == "mix"]) >= 7
    assert progress[-1] == 1.0 and progress == sorted(progress)

    for p in paths[::2]:
        p.unlink()
    with pytest.raises(RenderError, match="every song file is missing"):
        render_mix(plan, output_dir=tmp_path / "o3", background=None, ffmpeg_exe=ffmpeg(), allow_missing=True)


def test_an_encoded_mix_of_the_wrong_length_is_refused(rendered):
    plan, _, _, out = rendered
    assert _checked_output(out / "mix.mp4", plan=plan, ffmpeg_exe=ffmpeg()).duration_seconds == \
        pytest.approx(MIX_SECONDS, abs=0.1)
    longer = build_render_plan([e.song for e in plan.entries], target_seconds=MIX_SECONDS + 5)
    with pytest.raises(RenderError, match=r"audio lasts 70\.\d\d s, the plan 75\.00 s"):
        _checked_output(out / "mix.mp4", plan=longer, ffmpeg_exe=ffmpeg())


def test_a_mix_whose_audio_stops_early_is_refused_whatever_the_container_says(tmp_path):
    # what a killed encoder leaves: the looped video runs to the planned end, the audio stops early
    video = tmp_path / ".mix.partial-1.mp4"
    subprocess.run([ffmpeg(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=160x90:r=10:d=20", "-f", "lavfi",
                    "-i", "sine=f=220:d=5", "-c:v", "libx264", "-c:a", "aac", str(video)], check=True)
    assert probe_media(video, ffmpeg_exe=ffmpeg()).duration_seconds == pytest.approx(20.0, abs=0.2)
    song = fake_song(1, duration=20.0)
    with pytest.raises(RenderError, match=r"audio lasts 5\.\d\d s, the plan 20\.00 s"):
        _checked_output(video, plan=build_render_plan([song], target_seconds=None), ffmpeg_exe=ffmpeg())
    silent = tmp_path / "no_audio.mp4"
    subprocess.run([ffmpeg(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=160x90:r=10:d=2", "-c:v", "libx264",
                    str(silent)], check=True)
    with pytest.raises(RenderError, match="one video and one audio stream, found: video"):
        _checked_output(silent, plan=build_render_plan([song], target_seconds=None), ffmpeg_exe=ffmpeg())
