"""The low-confidence rule, its display, and how the matcher weights guessed BPMs and keys."""

import math

import numpy as np
import pandas as pd
import pytest

from lofi_pipeline.core.confidence import (
    GUESS_MARK,
    LOW_KEY_CONFIDENCE,
    LOW_TEMPO_CONFIDENCE,
    bpm_text,
    column_low_mask,
    confidence_weight,
    downweight_note,
    is_low,
    key_text,
    low_mask,
)
from lofi_pipeline.core.matching import UNKNOWN_SCORE, query_track_with_best
from lofi_pipeline.core.models import Arc, Prompt, TrackPlan


@pytest.mark.parametrize("value, low", [(0.0, True), (LOW_TEMPO_CONFIDENCE / 2, True), (LOW_TEMPO_CONFIDENCE, False),
                                        (0.9, False), (None, False), (float("nan"), False), (pd.NA, False),
                                        ("junk", False)])
def test_low_means_below_the_threshold_and_missing_is_not_low(value, low):
    assert is_low(value, LOW_TEMPO_CONFIDENCE) is low
    assert low_mask(pd.Series([value], dtype=object), LOW_TEMPO_CONFIDENCE).tolist() == [low]


def test_display_marks_guesses_and_keeps_beatless_as_a_dash():
    assert bpm_text(92.04, 0.9) == "92.0"
    assert bpm_text(92.04, LOW_TEMPO_CONFIDENCE / 2) == "92.0" + GUESS_MARK
    assert bpm_text(92.04, None) == "92.0"  # old rows without a confidence: shown as before
    assert bpm_text(None, 0.0) == "—"  # beatless is not a guess
    assert key_text("E♭ major", LOW_KEY_CONFIDENCE / 2) == "E♭ major" + GUESS_MARK
    assert key_text("E♭ major", 0.9) == "E♭ major"
    assert key_text(None, 0.0) == "—"


def test_weight_is_full_when_confident_or_missing_and_ramps_below_the_threshold():
    t = LOW_TEMPO_CONFIDENCE
    w = confidence_weight(np.array([np.nan, 1.0, t, t / 2, 0.0]), t)
    assert w.tolist() == [1.0, 1.0, 1.0, 0.5, 0.0]
    assert downweight_note(0.5, None) == "BPM guessed: counts 50 %"
    assert downweight_note(1.0, float("nan")) == ""


def _plan() -> TrackPlan:
    prompt = Prompt(number=1, order=1, text="slow rainy lofi", core_text="slow rainy lofi")
    return TrackPlan(source="t.md", track_number=9, arcs=[Arc(number=1, name="Rain", bpm_range=(70.0, 80.0),
                                                              prompts=[prompt])])


def _match(rows: list[dict], **options) -> pd.DataFrame:
    """Every song equally similar to the prompt, so only BPM and key tell them apart."""
    songs = pd.DataFrame([{"song_id": name, "filename": f"{name}.mp3", "arc": 1, "times_used": 0,
                           "duration_seconds": 120.0, **row} for name, row in enumerate(rows)])
    songs["song_id"] = songs["song_id"].astype(str)
    vectors = np.ones((len(songs), 4), np.float32) / 2.0
    matches, _ = query_track_with_best(_plan(), vectors[:1], songs, vectors, top_k=len(songs),
                                       min_similarity=0.5, exclude_track=None, **options)
    return matches.set_index("song_id").sort_index()


def test_a_guessed_wrong_bpm_loses_less_and_a_null_confidence_is_full_weight():
    guess = LOW_TEMPO_CONFIDENCE / 4
    m = _match([{"bpm": 115.0, "bpm_confidence": 0.9, "key": "A minor", "key_confidence": 0.9},
                {"bpm": 115.0, "bpm_confidence": guess, "key": "A minor", "key_confidence": 0.9},
                {"bpm": 115.0, "bpm_confidence": None, "key": "A minor", "key_confidence": None}])
    sure, guessed, old = (m.loc[str(i)] for i in range(3))
    assert sure.bpm_score == 0.0  # 35 BPM above the 70–80 range; half time (57.5) too far below
    assert guessed.bpm_score == pytest.approx(UNKNOWN_SCORE * (1 - 0.25))
    assert guessed.score > sure.score
    assert guessed.bpm_weight == pytest.approx(0.25) and sure.bpm_weight == 1.0
    # NULL confidence (rows from before the analyzer gave one): exactly as a confident song
    assert old.bpm_score == sure.bpm_score and old.score == sure.score and old.bpm_weight == 1.0


def test_a_guessed_right_bpm_gains_less():
    m = _match([{"bpm": 75.0, "bpm_confidence": 0.9}, {"bpm": 75.0, "bpm_confidence": 0.0}])
    assert m.loc["0"].bpm_score == 1.0
    assert m.loc["1"].bpm_score == UNKNOWN_SCORE  # confidence 0: no better than an unknown tempo
    assert m.loc["1"].score < m.loc["0"].score


def test_a_guessed_key_is_pulled_toward_neutral():
    far = {"bpm": 75.0, "bpm_confidence": 0.9, "key": "F♯ major"}  # 2B: far from 8A on the wheel
    m = _match([{**far, "key_confidence": 0.9}, {**far, "key_confidence": 0.0}], reference_key="A minor")
    assert m.loc["0"].key_score == pytest.approx(0.2)
    assert m.loc["1"].key_score == pytest.approx(UNKNOWN_SCORE) and m.loc["1"].key_weight == 0.0


def test_a_guessed_reference_key_weakens_the_others_but_not_itself():
    # No reference key given: the most similar song (the first, on ties) sets it.
    m = _match([{"bpm": 75.0, "key": "A minor", "key_confidence": LOW_KEY_CONFIDENCE / 2},
                {"bpm": 75.0, "key": "A minor", "key_confidence": 0.9}])
    assert m.loc["0"].key_score == 1.0 and m.loc["0"].key_weight == 1.0  # its own key matches itself
    assert m.loc["1"].key_weight == pytest.approx(0.5)
    assert math.isclose(m.loc["1"].key_score, UNKNOWN_SCORE + 0.5 * (1.0 - UNKNOWN_SCORE))


def test_column_low_mask_reads_the_column_and_treats_an_absent_one_as_never_low():
    frame = pd.DataFrame({"bpm_confidence": [0.01, None, 0.5, float("nan")]})
    assert column_low_mask(frame, "bpm_confidence", 0.05).tolist() == [True, False, False, False]
    assert column_low_mask(frame, "key_confidence", 0.2).tolist() == [False] * 4
