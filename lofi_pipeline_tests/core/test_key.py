"""Key estimation: transposed copies, overtone-rich minor progressions, confidence."""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from lofi_pipeline.core import keys
from lofi_pipeline.core.audio import key as key_mod
from lofi_pipeline.core.synth import synthesize_song

SR = 11025


def _song(**kw) -> np.ndarray:
    kw.setdefault("seconds", 30.0)
    y = synthesize_song(sr=22050, bpm=84.0, **kw)
    return soxr.resample(y, 22050, SR).astype(np.float32)


def _pitch_shift(y: np.ndarray, semitones: int) -> np.ndarray:
    """Every frequency times 2**(semitones / 12) by resampling (the song also gets shorter or longer)."""
    return soxr.resample(y, SR * 2.0 ** (semitones / 12.0), SR).astype(np.float32)


def _moved(key: str, semitones: int) -> keys.Key:
    k = keys.parse_key(key)
    return keys.Key((k.tonic + semitones) % 12, k.mode)


@pytest.mark.parametrize("key, seed", [("G# minor", 34), ("E minor", 71), ("Bb major", 72), ("D major", 73)])
@pytest.mark.parametrize("semitones", [2, -3])
def test_transposed_copy_reads_the_key_moved_by_as_much(key, seed, semitones):
    y = _song(key=key, seed=seed)
    original, _ = key_mod.estimate_key(y, SR)
    shifted, _ = key_mod.estimate_key(_pitch_shift(y, semitones), SR)
    assert keys.parse_key(original) == keys.parse_key(key)
    assert keys.parse_key(shifted) == _moved(key, semitones)


def _rich_note(hz: float, seconds: float, partials: int = 10) -> np.ndarray:
    """A sawtooth-like tone: partial h at 1/h, so the 3rd and 5th partials are strong."""
    t = np.arange(int(seconds * SR)) / SR
    y = sum(np.sin(2 * np.pi * h * hz * t) / h for h in range(1, partials + 1) if h * hz < SR / 2)
    return (y * np.exp(-t / (0.8 * seconds))).astype(np.float32)


def _progression(tonic_midi: int, chords: list[tuple[int, ...]], bass: list[int], seconds: float = 1.5,
                 loops: int = 6) -> np.ndarray:
    hz = lambda m: 440.0 * 2.0 ** ((m - 69) / 12.0)  # noqa: E731
    bars = []
    for chord, root in zip(chords, bass):
        bar = sum(_rich_note(hz(tonic_midi + s), seconds) for s in chord)
        bar = bar + 1.5 * _rich_note(hz(tonic_midi - 24 + root), seconds)
        bars.append(bar)
    y = np.concatenate(bars * loops)
    return (0.2 * y / np.abs(y).max()).astype(np.float32)


@pytest.mark.parametrize("tonic_midi", [57, 62, 64])  # A, D, E
def test_minor_progression_with_strong_overtones_is_not_its_relative_major_or_fifth(tonic_midi):
    # i - iv - VI - V (harmonic minor) - i: every 3rd partial folds onto a
    # fifth, every 5th onto a major third, which drags plain chroma towards
    # the relative major and the dominant.
    chords = [(0, 3, 7), (5, 8, 12), (8, 12, 15), (7, 11, 14), (0, 3, 7)]
    bass = [0, 5, 8, 7, 0]
    est, confidence = key_mod.estimate_key(_progression(tonic_midi, chords, bass), SR)
    assert keys.parse_key(est) == keys.Key(tonic_midi % 12, "minor")
    assert confidence > 0


_AEOLIAN_LOOP = ([(0, 3, 7), (8, 12, 15), (3, 7, 10), (0, 3, 7)], [0, 8, 3, 0])
"""i - VI - III - i in natural minor (chords, bass): no leading tone, every pitch
class also the relative major's; only the tonic's weight and the bass tell
them apart. A lo-fi staple."""


@pytest.mark.parametrize("tonic_midi", [55, 57, 59, 60, 64, 65])  # G, A, B, C, E, F
def test_aeolian_loop_reads_its_minor_tonic_not_its_relative_major(tonic_midi):
    est, confidence = key_mod.estimate_key(_progression(tonic_midi, *_AEOLIAN_LOOP, loops=4), SR)
    assert keys.parse_key(est) == keys.Key(tonic_midi % 12, "minor")
    assert confidence > 0


def test_without_the_minor_bias_aeolian_loops_lean_major(monkeypatch):
    # What _MINOR_BIAS is for: with it at 0, some of the loops above read a
    # major key (their relative major or their VI).
    monkeypatch.setattr(key_mod, "_MINOR_BIAS", 0.0)
    modes = [keys.parse_key(key_mod.estimate_key(_progression(t, *_AEOLIAN_LOOP, loops=4), SR)[0]).mode
             for t in (55, 57, 59)]
    assert "major" in modes


@pytest.mark.parametrize("tonic_midi", [57, 62, 64])
def test_major_cadence_still_reads_major_with_the_minor_bias(tonic_midi):
    chords, bass = [(0, 4, 7), (5, 9, 12), (7, 11, 14), (0, 4, 7)], [0, 5, 7, 0]
    est, _ = key_mod.estimate_key(_progression(tonic_midi, chords, bass), SR)
    assert keys.parse_key(est) == keys.Key(tonic_midi % 12, "major")


def test_confidence_is_lower_when_the_music_is_ambiguous():
    # A full cadence names its key; a bare open fifth fits the major and the minor key alike.
    clear = _progression(60, [(0, 4, 7), (5, 9, 12), (7, 11, 14), (0, 4, 7)], [0, 5, 7, 0])
    open_fifth = _progression(60, [(0, 7), (0, 7), (0, 7), (0, 7)], [0, 0, 0, 0])
    _, c_clear = key_mod.estimate_key(clear, SR)
    _, c_open = key_mod.estimate_key(open_fifth, SR)
    assert c_clear > c_open


def test_range_edges_are_soft():
    freqs = 55.0 * 2.0 ** (np.array([-4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0]) / 12.0)
    w = key_mod._range_weight(freqs, 55.0, 2100.0, 6.0)
    assert w[0] == 0.0 and w[-1] == 1.0
    assert np.all(np.diff(w) >= 0)
    assert 0.0 < w[2] < w[3] < w[4] < 1.0  # a semitone across the limit changes the weight a little
    hard = key_mod._range_weight(freqs, 55.0, 2100.0, 0.0)
    assert hard.tolist() == [0, 0, 0, 1, 1, 1, 1]


def _sustained_spectrum(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies and the drum-free magnitudes that ``_chroma`` hands to ``_tuning``."""
    freqs, spec, _ = key_mod._sustained_spectrum(y, SR, *key_mod._MAIN_SPECTRUM, key_mod._FMAX)
    return freqs, spec


def _over_loud_bass(cents: float) -> np.ndarray:
    """Chords over a loud bass (55-98 Hz: a bin spans half a semitone or more), ``cents`` off A 440."""
    hz = lambda m: 440.0 * 2.0 ** ((m - 69 + cents / 100.0) / 12.0)  # noqa: E731
    bars = [0.3 * _rich_note(hz(57 + r), 1.5) + 0.3 * _rich_note(hz(64 + r), 1.5)
            + 8.0 * _rich_note(hz(33 + r), 1.5, partials=3) for r in (0, 5, 7, 3)]
    y = np.concatenate(bars * 3)
    return (0.2 * y / np.abs(y).max()).astype(np.float32)


@pytest.mark.parametrize("cents", [0, 30, -30])
def test_tuning_is_read_to_a_few_cents_under_a_loud_bass_and_a_transposed_copy_reads_the_same(cents):
    y = _over_loud_bass(cents)
    tuning = key_mod._tuning(*_sustained_spectrum(y))
    shifted = key_mod._tuning(*_sustained_spectrum(_pitch_shift(y, 2)))
    assert tuning == pytest.approx(cents / 100.0, abs=0.02)
    assert shifted == pytest.approx(tuning, abs=0.02)


@pytest.mark.parametrize("cents", [0, 30, -30, 45, -45])
@pytest.mark.parametrize("semitones", [2, -3])
def test_transposed_copy_folds_onto_the_same_chroma_moved_along(cents, semitones):
    # audio-4.2's chroma differed by 0.042-0.056 somewhere in every one of
    # these cases, and at 45 cents sharp the +2 copy's tuning wrapped round
    # to flat: its chroma correlated at -0.31 with the original's.
    y = _over_loud_bass(cents)
    original = key_mod._chroma(y, SR)
    copy = np.roll(key_mod._chroma(_pitch_shift(y, semitones), SR), -semitones)
    original, copy = original / original.sum(), copy / copy.sum()
    assert np.abs(original - copy).max() < 0.04
    assert np.corrcoef(original, copy)[0, 1] > 0.97


def test_fold_shares_a_bin_between_the_two_nearest_pitch_classes_and_loses_none_of_it():
    # Bins on A (pitch class 9), a quarter tone above it, half-way to B flat, and on B flat.
    freqs = 440.0 * 2.0 ** (np.array([0.0, 0.25, 0.5, 1.0]) / 12.0)
    fold = key_mod._fold(freqs, 0.0, 55.0, 2100.0)
    assert fold.sum(axis=1) == pytest.approx(np.ones(4))
    assert fold[0, 9] == pytest.approx(1.0) and fold[3, 10] == pytest.approx(1.0)
    assert fold[2, 9] == pytest.approx(0.5) and fold[2, 10] == pytest.approx(0.5)
    assert 0.5 < fold[1, 9] < 1.0 and fold[1, 9] + fold[1, 10] == pytest.approx(1.0)
    # Moving the grid by the tuning moves the shares with it, still summing to one.
    tuned = key_mod._fold(freqs, 0.25, 55.0, 2100.0)
    assert tuned[1, 9] == pytest.approx(1.0)
    assert tuned.sum(axis=1) == pytest.approx(np.ones(4))
