"""The filename grammar."""

import pytest

from lofi_pipeline.core.catalog import filename_fields
from lofi_pipeline.core.naming import parse_song_filename, song_filename


@pytest.mark.parametrize("name, expected", [
    ("A_1_1_12a.mp3", ("A", 1, 1, 12, "a")),
    ("b_1_1_22f.mp3", ("b", 1, 1, 22, "f")),
    ("1_1_45a.mp3", (None, 1, 1, 45, "a")),
    ("A_3_10_13b.mp3", ("A", 3, 10, 13, "b")),
    ("A_3_10_13B.FLAC", ("A", 3, 10, 13, "b")),
    ("Tracks/19/Songs/A_2_7_19.wav", ("A", 2, 7, 19, None)),
    ("007__A_1_3_19b.m4a", ("A", 1, 3, 19, "b")),
    ("A_1_3_19ab.ogg", ("A", 1, 3, 19, "ab")),
])
def test_names_in_the_convention(name, expected):
    n = parse_song_filename(name)
    assert (n.prefix, n.arc, n.prompt, n.source_track, n.take) == expected


@pytest.mark.parametrize("name", ["rainy night.mp3", "A_1_12a.mp3", "A_x_1_12a.mp3", "final_mix_v2.wav", ""])
def test_names_outside_the_convention(name):
    assert parse_song_filename(name) is None


def test_outside_names_get_nulls_and_a_warning_naming_the_file():
    fields = filename_fields("my favourite.mp3")
    assert fields["arc"] is None and fields["source_track"] is None
    assert "my favourite.mp3" in fields["name_warning"]


def test_round_trip():
    name = song_filename(arc=2, prompt=11, track=104, take="c")
    assert name == "A_2_11_104c.mp3"
    assert parse_song_filename(name).stem() == "A_2_11_104c"
