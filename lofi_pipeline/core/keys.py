"""Musical keys: the one place that parses, spells and compares them.

Conventions
-----------
* A key is a tonic pitch class (0 = C ... 11 = B) and a mode (``"major"`` or
  ``"minor"``): :class:`Key`.
* :func:`parse_key` reads any usual spelling: ``"A minor"``, ``"Am"``,
  ``"a min"``, ``"F# major"``, ``"F♯"``, ``"E♭ major"``, ``"Eb"``, ``"Bbm"``,
  and Camelot codes ``"8A"`` / ``"08b"``. A bare tonic means major.
* :func:`display_name` spells a key as a key signature would: flats for the
  flat keys, sharps for the sharp ones (``"E♭ major"``, ``"F♯ minor"``,
  ``"B♭ minor"``, ``"C♯ minor"``), with the Unicode ``♭`` / ``♯`` signs.
  For the keys with six accidentals either way the choice is ``F♯ major``
  and ``E♭ minor``. This is the spelling the analyzer stores.
* Camelot wheel: minor keys are ``A``, major keys ``B``; ``8A`` = A minor,
  ``8B`` = C major; one step round the wheel is a fifth, the same number
  with the other letter is the relative key.
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

MODES = ("major", "minor")

# Conventional (key-signature) spelling of the tonic, by pitch class.
_MAJOR_SPELLING = ("C", "D♭", "D", "E♭", "E", "F", "F♯", "G", "A♭", "A", "B♭", "B")
_MINOR_SPELLING = ("C", "C♯", "D", "E♭", "E", "F", "F♯", "G", "G♯", "A", "B♭", "B")

_LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_ACCIDENTALS = {"": 0, "#": 1, "♯": 1, "b": -1, "♭": -1, "##": 2, "bb": -2}
_MODE_WORDS = {"": "major", "maj": "major", "major": "major", "ma": "major", "m": "minor", "min": "minor",
               "minor": "minor", "mi": "minor"}
_NAME_RE = re.compile(r"^\s*([A-Ga-g])\s*(##|bb|#|♯|b|♭)?\s*[-_ ]?\s*([A-Za-z]*)\s*$")
_CAMELOT_RE = re.compile(r"^\s*0?(1[0-2]|[1-9])\s*([AaBb])\s*$")


class Key(NamedTuple):
    """A key: tonic pitch class (0 = C) and mode (``"major"`` / ``"minor"``)."""

    tonic: int
    mode: str

    @property
    def name(self) -> str:
        """Display spelling, e.g. ``"E♭ major"``."""
        return display_name(self)

    @property
    def camelot(self) -> str:
        """Camelot code, e.g. ``"5B"``."""
        return camelot_code(self)

    def transpose(self, semitones: int) -> Key:
        return Key((self.tonic + semitones) % 12, self.mode)

    def relative(self) -> Key:
        """The relative minor of a major key, or the relative major of a minor one."""
        return Key((self.tonic + 9) % 12, "minor") if self.mode == "major" else Key((self.tonic + 3) % 12, "major")


def _camelot_number(key: Key) -> int:
    # C major = 8, each fifth up adds one; a minor key takes its relative major's number.
    major_tonic = key.tonic if key.mode == "major" else (key.tonic + 3) % 12
    return (8 - 1 + 7 * major_tonic) % 12 + 1


def _from_camelot(number: int, letter: str) -> Key:
    # Inverse of _camelot_number: 7 is its own inverse modulo 12.
    major_tonic = (7 * (number - 8)) % 12
    if letter.upper() == "B":
        return Key(major_tonic, "major")
    return Key((major_tonic + 9) % 12, "minor")


def parse_key(value: object) -> Key | None:
    """Read a key from any usual spelling or a Camelot code; None if it is not one.

    Examples: ``"A minor"``, ``"Am"``, ``"F# major"``, ``"F♯"``, ``"E♭ major"``,
    ``"Eb"``, ``"bb min"``, ``"8A"``. ``None``, NaN, ``""`` and anything else
    (``"H minor"``, ``"C lydian"``, ``"13A"``) give None.
    """
    if value is None or isinstance(value, Key):
        return value
    if isinstance(value, float) and math.isnan(value):
        return None
    text = str(value).strip()
    if not text:
        return None
    m = _CAMELOT_RE.match(text)
    if m:
        return _from_camelot(int(m[1]), m[2])
    m = _NAME_RE.match(text)
    if not m:
        return None
    mode_word = m[3]
    # "m" alone is minor, "M" alone is major (chord-symbol habit); longer words any case.
    if mode_word == "M":
        mode = "major"
    else:
        mode = _MODE_WORDS.get(mode_word.lower())
    if mode is None:
        return None
    tonic = (_LETTERS[m[1].upper()] + _ACCIDENTALS[m[2] or ""]) % 12
    return Key(tonic, mode)


def display_name(key: object) -> str | None:
    """Key-signature spelling with ♭/♯: ``"Eb"`` -> ``"E♭ major"``, ``"f#m"`` -> ``"F♯ minor"``."""
    k = parse_key(key)
    if k is None:
        return None
    spelling = _MAJOR_SPELLING if k.mode == "major" else _MINOR_SPELLING
    return f"{spelling[k.tonic]} {k.mode}"


def camelot_code(key: object) -> str | None:
    """Camelot code: ``"A minor"`` -> ``"8A"``, ``"C major"`` -> ``"8B"``; None if unreadable."""
    k = parse_key(key)
    if k is None:
        return None
    return f"{_camelot_number(k)}{'A' if k.mode == 'minor' else 'B'}"


def camelot_steps(a: object, b: object) -> tuple[int, bool] | None:
    """(steps round the wheel, 0-6; whether the letters differ), or None if either is unreadable."""
    ka, kb = parse_key(a), parse_key(b)
    if ka is None or kb is None:
        return None
    na, nb = _camelot_number(ka), _camelot_number(kb)
    step = min((na - nb) % 12, (nb - na) % 12)
    return step, ka.mode != kb.mode


def compatible(a: object, b: object) -> bool:
    """Harmonically compatible for mixing: same key, one step round the wheel, or relative major/minor."""
    steps = camelot_steps(a, b)
    if steps is None:
        return False
    step, other_letter = steps
    return step == 0 or (step == 1 and not other_letter)


def semitones_between(a: object, b: object) -> int | None:
    """Tonic of ``b`` minus tonic of ``a`` in semitones, folded to -5..6; None if unreadable."""
    ka, kb = parse_key(a), parse_key(b)
    if ka is None or kb is None:
        return None
    d = (kb.tonic - ka.tonic) % 12
    return d - 12 if d > 6 else d
