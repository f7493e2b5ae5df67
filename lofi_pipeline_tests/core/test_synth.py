"""The deterministic song synthesizer and the atomic audio writer."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from lofi_pipeline.core.errors import AudioFileError
from lofi_pipeline.core.synth import parse_key, synthesize_song, write_audio


def test_same_seed_same_samples_other_seed_differs():
    kw = dict(bpm=84.0, key="D minor", seconds=6.0, sr=11025, swing=0.3, noise_db=-35.0)
    a = synthesize_song(seed=3, **kw)
    b = synthesize_song(seed=3, **kw)
    c = synthesize_song(seed=4, **kw)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("options", [
    dict(drums=False),
    dict(hats16=True, ghost_notes=True),
    dict(noise_db=-30.0, lowpass_hz=3000.0),
])
def test_output_is_mono_float32_in_range(options):
    y = synthesize_song(bpm=150.0, key="F# major", seconds=5.0, sr=22050, seed=1, **options)
    assert y.dtype == np.float32 and y.ndim == 1
    assert len(y) == int(5.0 * 22050)
    assert np.max(np.abs(y)) <= 1.0
    assert np.sqrt(np.mean(y**2)) > 0.01  # not silent


def test_lowpass_removes_high_frequencies():
    sr = 22050
    bright = synthesize_song(bpm=90, key="C major", seconds=6, sr=sr, seed=2, hats16=True)
    dark = synthesize_song(bpm=90, key="C major", seconds=6, sr=sr, seed=2, hats16=True, lowpass_hz=1500)

    def high_share(y):
        spec = np.abs(np.fft.rfft(y)) ** 2
        freqs = np.fft.rfftfreq(len(y), 1 / sr)
        return spec[freqs > 4000].sum() / spec.sum()

    assert high_share(dark) < 0.1 * high_share(bright)


def test_parse_key_accepts_flats_and_rejects_junk():
    assert parse_key("Bb minor") == (10, "minor")
    assert parse_key("f# major") == (6, "major")
    with pytest.raises(ValueError):
        parse_key("H dorian")


@pytest.mark.parametrize("ext", [".wav", ".flac", ".mp3", ".ogg", ".m4a"])
def test_write_audio_round_trip_leaves_no_temp_file(tmp_path, ext):
    sr = 22050
    y = synthesize_song(bpm=100, key="E minor", seconds=3.0, sr=sr, seed=5)
    path = write_audio(y, sr, tmp_path / f"song{ext}")
    assert path.exists() and path.stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"song{ext}"]
    if ext in (".wav", ".flac"):
        back, back_sr = sf.read(path, dtype="float32")
        assert back_sr == sr
        assert np.max(np.abs(back - y)) < 1e-3  # 16-bit PCM


def test_write_audio_unknown_extension_names_file(tmp_path):
    with pytest.raises(AudioFileError) as err:
        write_audio(np.zeros(100, np.float32), 8000, tmp_path / "x.xyz")
    assert "x.xyz" in str(err.value)
    assert list(tmp_path.iterdir()) == []
