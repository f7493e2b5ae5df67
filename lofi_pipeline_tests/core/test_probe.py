"""probe_media and measure_loudness_ffmpeg against files with known answers (real ffmpeg)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import soundfile as sf
from conftest_render import ffmpeg, synth_song, write_song

from lofi_pipeline.core.errors import AudioFileError
from lofi_pipeline.core.probe import measure_loudness_ffmpeg, measure_loudness_split, probe_media


def test_wav_and_mp3_streams_and_durations(tmp_path):
    mono = tmp_path / "mono.wav"
    sf.write(mono, np.zeros(22050 * 3, dtype=np.float32), 22050)
    info = probe_media(mono, ffmpeg_exe=ffmpeg())
    assert info.duration_seconds == pytest.approx(3.0, abs=0.01)
    (a,) = info.streams
    assert (a.type, a.codec, a.sample_rate, a.channels) == ("audio", "pcm_s16le", 22050, 1)

    mp3 = write_song(tmp_path / "s.mp3", synth_song(1, 4.5))
    info = probe_media(mp3, ffmpeg_exe=ffmpeg())
    (a,) = info.of_type("audio")
    assert a.codec == "mp3" and a.sample_rate == 44100 and a.channels == 2
    exact = probe_media(mp3, ffmpeg_exe=ffmpeg(), exact=True)
    assert exact.duration_seconds == pytest.approx(4.5, abs=0.06)


def test_video_stream_size(tmp_path):
    clip = tmp_path / "clip.mp4"
    subprocess.run([ffmpeg(), "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=2",
                    "-f", "lavfi", "-i", "sine=f=440:d=2", "-c:v", "libx264", "-c:a", "aac", "-shortest",
                    str(clip)], check=True)
    info = probe_media(clip, ffmpeg_exe=ffmpeg())
    v, a = info.of_type("video"), info.of_type("audio")
    assert len(v) == 1 and (v[0].codec, v[0].width, v[0].height) == ("h264", 320, 240)
    assert len(a) == 1 and a[0].codec == "aac" and a[0].channels == 1
    assert info.duration_seconds == pytest.approx(2.0, abs=0.1)


def test_missing_and_unreadable_files_are_named(tmp_path):
    with pytest.raises(AudioFileError, match="nope.mp3: file not found"):
        probe_media(tmp_path / "nope.mp3", ffmpeg_exe=ffmpeg())
    junk = tmp_path / "junk.mp3"
    junk.write_text("not audio at all")
    with pytest.raises(AudioFileError, match="junk.mp3"):
        probe_media(junk, ffmpeg_exe=ffmpeg())
    with pytest.raises(AudioFileError, match="junk.mp3"):
        measure_loudness_ffmpeg(junk, ffmpeg_exe=ffmpeg())


def test_loudness_of_a_known_sine(tmp_path):
    # A 997 Hz sine at -20 dBFS in both channels reads about -20 LUFS (BS.1770),
    # and its true peak is its amplitude.
    sr = 48000
    t = np.arange(sr * 6) / sr
    y = 10 ** (-20 / 20) * np.sin(2 * np.pi * 997 * t)
    path = tmp_path / "sine.wav"
    sf.write(path, np.stack([y, y], axis=1).astype(np.float32), sr)
    lufs, peak = measure_loudness_ffmpeg(path, ffmpeg_exe=ffmpeg())
    assert lufs == pytest.approx(-20.0, abs=0.3)
    assert peak == pytest.approx(-20.0, abs=0.3)
    # 6 dB quieter in a window after a 3 s start
    sf.write(path, np.stack([y, y], axis=1).astype(np.float32) * np.where(t < 3, 1.0, 0.5)[:, None]
             .astype(np.float32), sr)
    lufs_tail, _ = measure_loudness_ffmpeg(path, ffmpeg_exe=ffmpeg(), start=3.2, duration=2.5)
    assert lufs_tail == pytest.approx(-26.0, abs=0.4)


def test_silence_reports_floor_values(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros((48000 * 2, 2), dtype=np.float32), 48000)
    lufs, peak = measure_loudness_ffmpeg(path, ffmpeg_exe=ffmpeg())
    assert lufs == -70.0 and peak == -144.0


def test_split_measurement_matches_the_single_pass(tmp_path):
    # louder second half: the true peak sits in the second window, the gate spans both
    y = np.concatenate([synth_song(3, 8.0, peak=0.2), synth_song(4, 7.0, peak=0.7)])
    path = write_song(tmp_path / "two_levels.wav", y)
    single = measure_loudness_ffmpeg(path, ffmpeg_exe=ffmpeg())
    split = measure_loudness_split(path, ffmpeg_exe=ffmpeg(), duration_seconds=15.0, parts=2)
    assert split == pytest.approx(single, abs=0.05)
    assert single[1] == pytest.approx(20 * np.log10(0.7), abs=0.5)
