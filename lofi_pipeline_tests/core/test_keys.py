"""Key names, spellings and the Camelot wheel (lofi_pipeline.core.keys)."""

from __future__ import annotations

import math

import pytest

from lofi_pipeline.core import keys
from lofi_pipeline.core.keys import Key


@pytest.mark.parametrize("text, expected", [
    ("A minor", Key(9, "minor")),
    ("Am", Key(9, "minor")),
    ("a min", Key(9, "minor")),
    ("F# major", Key(6, "major")),
    ("F♯", Key(6, "major")),
    ("Gb major", Key(6, "major")),
    ("E♭ major", Key(3, "major")),
    ("Eb", Key(3, "major")),
    ("ebm", Key(3, "minor")),
    ("Bbm", Key(10, "minor")),
    ("B minor", Key(11, "minor")),
    ("Cb major", Key(11, "major")),
    ("B# minor", Key(0, "minor")),
    ("C#-minor", Key(1, "minor")),
    ("8A", Key(9, "minor")),
    ("8B", Key(0, "major")),
    ("08b", Key(0, "major")),
    ("1A", Key(8, "minor")),
    ("12B", Key(4, "major")),
])
def test_parse_any_spelling(text, expected):
    assert keys.parse_key(text) == expected


@pytest.mark.parametrize("junk", [None, "", "   ", "H minor", "C lydian", "13A", "0B", "minor", math.nan, "A minor 7"])
def test_unreadable_is_none(junk):
    assert keys.parse_key(junk) is None
    assert keys.camelot_code(junk) is None
    assert keys.display_name(junk) is None


@pytest.mark.parametrize("text, shown", [
    ("D# minor", "E♭ minor"),
    ("Eb", "E♭ major"),
    ("Gb minor", "F♯ minor"),
    ("A# minor", "B♭ minor"),
    ("Db minor", "C♯ minor"),
    ("C# major", "D♭ major"),
    ("G# major", "A♭ major"),
    ("Ab minor", "G♯ minor"),
    ("Gb major", "F♯ major"),
    ("e min", "E minor"),
    ("5B", "E♭ major"),
])
def test_display_uses_key_signature_spelling(text, shown):
    assert keys.display_name(text) == shown
    assert keys.parse_key(shown) == keys.parse_key(text)  # the display spelling reads back


def test_camelot_wheel_is_a_circle_of_fifths_with_relatives_on_the_same_number():
    majors = [keys.camelot_code(Key(7 * i % 12, "major")) for i in range(12)]  # C G D A ...
    assert majors[0] == "8B" and majors[1] == "9B" and majors[11] == "7B"
    assert len(set(majors)) == 12
    for tonic in range(12):
        major = Key(tonic, "major")
        assert keys.camelot_code(major)[:-1] == keys.camelot_code(major.relative())[:-1]
        assert keys.parse_key(keys.camelot_code(major)) == major
        minor = Key(tonic, "minor")
        assert keys.parse_key(keys.camelot_code(minor)) == minor


def test_compatible_keys():
    assert keys.compatible("A minor", "8A")
    assert keys.compatible("A minor", "C major")  # relative
    assert keys.compatible("A minor", "E minor") and keys.compatible("A minor", "D minor")  # +-1
    assert keys.compatible("12B", "1B")  # the wheel wraps
    assert not keys.compatible("A minor", "G major")  # 8A vs 9B
    assert not keys.compatible("A minor", "A major")  # parallel: 8A vs 11B
    assert not keys.compatible("A minor", "nonsense")
    assert keys.camelot_steps("8A", "2A") == (6, False)
    assert keys.camelot_steps("8A", "9B") == (1, True)


def test_semitones_between_and_transpose():
    assert keys.semitones_between("C major", "D major") == 2
    assert keys.semitones_between("C major", "A major") == -3
    assert keys.parse_key("F♯ minor").transpose(-3) == keys.parse_key("Eb minor")
    assert keys.parse_key("A minor").relative() == keys.parse_key("C")
