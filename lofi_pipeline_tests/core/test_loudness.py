"""Loudness (libebur128 through our threaded meter) and our true peak, against references."""

from __future__ import annotations

import numpy as np
import pytest

from lofi_pipeline.core import loudness
from lofi_pipeline.core.ffmpeg import find_ffmpeg
from lofi_pipeline.core.loudness import LoudnessMeter, TruePeak, measure_loudness
from lofi_pipeline.core.probe import measure_loudness_ffmpeg
from lofi_pipeline.core.synth import synthesize_song, write_audio


def _stereo_song(seconds=20, sr=44100, seed=41):
    y = synthesize_song(bpm=90, key="D major", seconds=seconds, sr=sr, seed=seed, noise_db=-30)
    stereo = np.stack([y, 0.6 * y + 0.1 * np.roll(y, 500)], axis=1).astype(np.float32)
    stereo[: 5 * sr] *= 0.01  # a quiet passage, so both gates matter
    return stereo


def test_known_level_sine_reads_minus_23_lufs():
    sr = 48000
    t = np.arange(10 * sr) / sr
    sine = 0.1 * np.sin(2 * np.pi * 997.0 * t)  # -20 dBFS peak, one channel
    lufs, peak = measure_loudness(sine, sr)
    # BS.1770: a full-scale 1 kHz sine on one channel reads -3.01 LKFS.
    assert lufs == pytest.approx(-23.01, abs=0.05)
    assert peak == pytest.approx(-20.0, abs=0.05)


def test_matches_pyloudnorm_on_a_stereo_song():
    import pyloudnorm

    stereo = _stereo_song()
    ours, _ = measure_loudness(stereo, 44100)
    reference = pyloudnorm.Meter(44100).integrated_loudness(stereo.astype(np.float64))
    assert ours == pytest.approx(reference, abs=0.05)


def test_matches_ffmpeg_ebur128_on_a_file(tmp_path):
    stereo = _stereo_song(seconds=15, sr=48000, seed=7)
    path = write_audio(stereo, 48000, tmp_path / "song.flac")
    import soundfile as sf

    decoded, sr = sf.read(path, dtype="float32")
    ours, ours_peak = measure_loudness(decoded, sr)
    theirs, their_peak = measure_loudness_ffmpeg(path, ffmpeg_exe=find_ffmpeg(), true_peak=True)
    assert ours == pytest.approx(theirs, abs=0.1)  # ffmpeg prints 0.1 LU steps
    assert ours_peak == pytest.approx(their_peak, abs=0.3)


@pytest.mark.skipif(loudness._c_library() is None, reason="this pyebur128 build exports no C symbols")
def test_threaded_c_path_equals_pyebur128_api():
    stereo = _stereo_song(seconds=12)
    fast, _ = measure_loudness(stereo, 44100, use_c=True)
    slow, _ = measure_loudness(stereo, 44100, use_c=False)
    assert fast == pytest.approx(slow, abs=1e-9)


def test_meter_reports_silence_and_too_short_as_none():
    assert measure_loudness(np.zeros((44100 * 2, 2), np.float32), 44100) == (None, None)
    short = 0.3 * np.sin(2 * np.pi * 440 * np.arange(int(0.3 * 44100)) / 44100)
    assert measure_loudness(short, 44100)[0] is None  # under one 400 ms gating block


def test_meter_copies_a_reused_buffer_when_asked():
    sr = 44100
    song = _stereo_song(seconds=10)
    reference = measure_loudness(song, sr)
    meter = LoudnessMeter(sr, 2)
    buf = np.empty((4096, 2), np.float32)
    for lo in range(0, len(song), 4096):
        part = song[lo: lo + 4096]
        buf[: len(part)] = part
        meter.add(buf[: len(part)], copy=True)
    buf[:] = 0.0  # overwriting the buffer afterwards must not matter
    assert meter.result() == pytest.approx(reference, abs=1e-6)


def test_meter_abort_is_safe_twice():
    import threading

    before = {t.ident for t in threading.enumerate() if t.name == "loudness-meter"}
    meter = LoudnessMeter(44100, 2)
    meter.add(np.zeros((1000, 2), np.float32))
    meter.abort()
    meter.abort()  # idempotent: no second sentinel, no second close of the state
    assert not meter._thread.is_alive()  # the meter thread ended, nothing left running
    assert {t.ident for t in threading.enumerate() if t.name == "loudness-meter"} <= before
    assert meter.queue.empty() and meter.error is None


def test_true_peak_finds_inter_sample_peak():
    sr = 44100
    n = np.arange(sr)
    # A quarter-rate sine sampled 45 degrees off its crests: samples reach only
    # 0.707 of the true amplitude (-3 dB), the oversampled peak finds it.
    x = 0.5 * np.sin(2 * np.pi * 0.25 * n + np.pi / 4)
    _, peak = measure_loudness(x, sr)
    assert 20 * np.log10(np.abs(x).max()) == pytest.approx(-9.03, abs=0.05)
    assert peak == pytest.approx(-6.02, abs=0.1)


@pytest.mark.parametrize(("drive", "ceiling"), [(1.2, 0.8), (2.5, 0.9), (4.0, 0.99)])
def test_true_peak_of_limited_and_clipped_masters_matches_libebur128(drive, ceiling):
    # A loud, clipped master sits at its ceiling almost everywhere, so the
    # segments to oversample cannot be chosen by sample peak alone. Reference:
    # libebur128's true-peak mode over every sample of the song.
    import pyebur128

    sr = 44100
    y = synthesize_song(bpm=120, key="A minor", seconds=20, sr=sr, seed=3)
    loud = np.clip(y / np.abs(y).max() * drive, -ceiling, ceiling).astype(np.float32)
    stereo = np.ascontiguousarray(np.stack([loud, np.roll(loud, 3)], axis=1))
    state = pyebur128.R128State(2, sr, pyebur128.MeasurementMode.MODE_TRUE_PEAK)
    state.add_frames(stereo.reshape(-1), len(stereo))
    reference = 20 * np.log10(max(pyebur128.get_true_peak(state, c) for c in (0, 1)))
    peak = TruePeak(sr, 2)
    for lo in range(0, len(stereo), 65536):
        peak.add(stereo[lo: lo + 65536])
    # The segments picked hold the maximum, measured by the same interpolator.
    assert peak.db() == pytest.approx(reference, abs=0.01)


def test_libebur128_version_is_reported():
    assert loudness.libebur128_version().count(".") == 2
