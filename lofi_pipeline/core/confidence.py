"""Which analysed BPM and key values are guesses, how they are shown, and how much they count.

The analyzer gives every BPM and key a confidence in ``[0, 1]``
(``bpm_confidence``, ``key_confidence``; see ``core/audio/tempo.py`` and
``key.py`` for their formulas). This module is the one place that turns it
into a decision; ``lofi analyze``, ``lofi stats``, the library report and
chart in the Dagster UI, and the matcher all ask here.

* A value is **low-confidence** when its confidence is below the threshold of
  its kind (:data:`LOW_TEMPO_CONFIDENCE`, :data:`LOW_KEY_CONFIDENCE`). A
  missing confidence (rows from before the analyzer gave one, NULL, NaN) is
  *not* low: such values are shown and weighted as before.
* It is **shown** with a trailing :data:`GUESS_MARK` (``92.0?``,
  ``E♭ major?``, ``8B?``) in tables and Markdown alike, so the mark survives
  copy and paste, plain terminals and screen readers; :data:`LEGEND` says
  what it means. A beatless song (``bpm = None``) stays ``—``: it has no
  tempo, which is not a guess.
* In matching, a low-confidence BPM or key **counts less**: its component
  score is pulled toward the neutral score of an unknown value by
  :func:`confidence_weight` (see :func:`blend_toward_neutral`), so a guess is
  neither strongly rewarded nor strongly punished.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from lofi_pipeline.core.models import is_missing

__all__ = [
    "LOW_TEMPO_CONFIDENCE", "LOW_KEY_CONFIDENCE", "GUESS_MARK", "LEGEND", "is_low", "low_mask",
    "column_low_mask",
    "confidence_weight", "blend_toward_neutral", "mark", "bpm_text", "key_text", "downweight_note",
]

LOW_TEMPO_CONFIDENCE = 0.05
"""``bpm_confidence`` below this is a guess.

Chosen on the real-music benchmark's dev split (never the test split), and
re-checked there with every analyzer version that changed the tempo:
``benchmarks/analysis_real.py --split dev --methods ours`` prints the table
of cuts (``calibration``). With ``audio-4.0`` it was the simplest cut that
separates right from wrong tempi: below 0.05 are 26 % of the dev files and
41 % of them are right (Acc1), above it 90 % are; 17 of the 25 dev errors
fall below it. No demo song (synthesized) falls below it: their confidences
were 0.18–0.44 then, 0.83–0.92 with ``audio-4.4``. ``audio-4.0``'s tempo
confidence was a product of two saturating terms, so its useful range was
low: a half of the dev files read below 0.25. Re-checked with ``audio-4.1`` on the same split: 0.05 is still
the best simple cut (24 % of the files below it, 54 % of those right against
85 % above; 12 of the 25 errors below it; 0.1-0.3 flag more files for less).
With ``audio-4.2`` (its confidence also weighs the winning level's own
evidence): 27 % below, 53 % of them right against 86 % above, 14 of the 25
errors below it; from 0.03 up the accuracy above the cut stays at 86 %, and
0.08-0.15 flag 3-11 more files for at most one more error, so 0.05 stays.
With ``audio-4.4`` (the candidates start from the level with the most periodic
binary hierarchy): 28 % below, 55 % of them right against 86 % above, 14 of
the 25 errors below it; 0.03 marks 4 files fewer for the same errors, and
0.08-0.2 mark 3-16 files more for one more error: 0.05 stays.
With ``audio-4.6`` (an even mid band counts where it has a pulse and the
hats have none): every dev tempo and confidence is ``audio-4.5``'s, so the
table is the same and 0.05 stays.
"""

LOW_KEY_CONFIDENCE = 0.2
"""``key_confidence`` below this is a guess.

Chosen like :data:`LOW_TEMPO_CONFIDENCE` (dev split, ``audio-4.0``):
below 0.2 are 19 % of the key-labelled dev files, 69 % of them right against
86 % above it; on the 30 demo songs it marks 5, among them both wrong keys.
With ``audio-4.1``: 10 % below, 71 % of them right against 84 % above.
With ``audio-4.2`` (finer bass spectra): 11 % below, 75 % right against 84 %
above; kept. With ``audio-4.3`` (the tuning read from every frame's peaks, a
shared fold; unchanged in ``audio-4.4``): 9 % below, none of them right
against 88 % above, 6 of the 14 errors below it; 0.25 and 0.3 mark 11 % and
14 % of the files, a quarter and two fifths of those right, for no more
errors, and 0.1-0.15 leave 2 of those 6 errors unmarked: 0.2 stays. Of the
30 demo songs, all read in the right key, it marks 3. With ``audio-4.5``
(minor keys get a head start, ``key._MINOR_BIAS``): 11 % below, 75 % of them
right against 87 % above, 2 of the 10 errors below it. The minor pieces now
read right were near-ties with their relative major and keep a small
margin, so the cut marks more right keys than before; no cut separates
better on these 70 keys (0.05: 3 % below, none right, the same 2 errors;
0.3: 17 %, two thirds right, 4 errors), so 0.2 stays. Of the 30 demo
songs, all still read in the right key, it marks 2.
"""

GUESS_MARK = "?"
LEGEND = f"{GUESS_MARK} = low confidence: the analyzer's best guess, down-weighted when matching"


def _as_float(value: Any) -> float | None:
    """A finite number, or None (missing, NaN, infinite, not a number)."""
    if is_missing(value) or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def is_low(confidence: Any, threshold: float) -> bool:
    """True when ``confidence`` is a number below ``threshold``; missing or unreadable is not low."""
    f = _as_float(confidence)
    return f is not None and f < threshold


def low_mask(confidences: Any, threshold: float) -> np.ndarray:
    """Vectorised :func:`is_low`: a bool array, False where the confidence is missing."""
    if isinstance(confidences, pd.Series):
        values = pd.to_numeric(confidences, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        values = np.asarray(confidences, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (values < threshold)


def column_low_mask(frame: pd.DataFrame, column: str, threshold: float) -> np.ndarray:
    """:func:`low_mask` of ``frame[column]``; all False when the frame has no such column (older rows)."""
    if column not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return low_mask(frame[column], threshold)


def confidence_weight(confidences: Any, threshold: float) -> np.ndarray:
    """How much a BPM or key component counts in matching, in ``[0, 1]`` per value.

    1.0 at or above ``threshold`` and where the confidence is missing (NULL or
    NaN: old rows keep their full weight); below it, ``confidence / threshold``,
    so the weight falls linearly to 0 at confidence 0 and joins 1.0 without a
    step at the threshold.
    """
    values = np.asarray(confidences, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        ramp = np.clip(values / threshold, 0.0, 1.0)
    return np.where(np.isfinite(values), ramp, 1.0)


def blend_toward_neutral(scores: np.ndarray, weights: np.ndarray, neutral: float) -> np.ndarray:
    """``neutral + weight * (score - neutral)``: weight 1 keeps the score, weight 0 gives ``neutral``."""
    return neutral + np.asarray(weights, dtype=np.float64) * (np.asarray(scores, dtype=np.float64) - neutral)


def mark(text: str, confidence: Any, threshold: float) -> str:
    """``text`` with :data:`GUESS_MARK` appended when the confidence is low (empty text stays empty)."""
    return f"{text}{GUESS_MARK}" if text and is_low(confidence, threshold) else text


def bpm_text(bpm: Any, confidence: Any, *, digits: int = 1) -> str:
    """A BPM for people: ``"92.0"``, ``"92.0?"`` when low-confidence, ``"—"`` when beatless or unknown."""
    f = _as_float(bpm)
    if f is None or f <= 0:
        return "—"
    return mark(f"{f:.{digits}f}", confidence, LOW_TEMPO_CONFIDENCE)


def key_text(key: Any, confidence: Any) -> str:
    """A key (name or Camelot code) for people: ``"E♭ major"``, ``"E♭ major?"``, ``"—"`` when unknown."""
    if is_missing(key) or not str(key).strip():
        return "—"
    return mark(str(key), confidence, LOW_KEY_CONFIDENCE)


def downweight_note(bpm_weight: Any = None, key_weight: Any = None) -> str:
    """Why a match's BPM or key counted less, for reports: ``"BPM guessed: counts 40 %"``.

    ``bpm_weight`` and ``key_weight`` are the matcher's weights (``[0, 1]``);
    missing or 1 says nothing, so a match without guesses gets ``""``.
    """
    notes = []
    for name, weight in (("BPM", bpm_weight), ("key", key_weight)):
        w = _as_float(weight)
        if w is not None and w < 1.0:
            notes.append(f"{name} guessed: counts {math.floor(w * 100)} %")
    return "; ".join(notes)
