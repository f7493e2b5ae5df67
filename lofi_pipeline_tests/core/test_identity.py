"""Content identity: a renamed copy is the same song, a changed file is not."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from lofi_pipeline.core.errors import AudioFileError
from lofi_pipeline.core.identity import content_hash


@pytest.fixture()
def song_bytes(tmp_path):
    path = tmp_path / "A_1_1_12a.mp3"
    # Several MiB of random bytes, so the chunked reading crosses chunk borders.
    path.write_bytes(np.random.default_rng(7).bytes(3 * (1 << 20) + 123))
    return path


def test_hash_is_hex_digest_of_fixed_length(song_bytes):
    digest = content_hash(song_bytes)
    assert len(digest) == 40
    int(digest, 16)  # hex


def test_renamed_and_moved_copy_has_same_hash(song_bytes, tmp_path):
    other = tmp_path / "elsewhere" / "renamed_copy.MP3"
    other.parent.mkdir()
    shutil.copyfile(song_bytes, other)
    assert content_hash(other) == content_hash(song_bytes)


def test_changed_file_has_different_hash(song_bytes, tmp_path):
    changed = tmp_path / "changed.mp3"
    data = bytearray(song_bytes.read_bytes())
    data[len(data) // 2] ^= 0x01  # flip one bit in the middle
    changed.write_bytes(bytes(data))
    assert content_hash(changed) != content_hash(song_bytes)


def test_appended_byte_changes_hash(song_bytes, tmp_path):
    longer = tmp_path / "longer.mp3"
    longer.write_bytes(song_bytes.read_bytes() + b"\x00")
    assert content_hash(longer) != content_hash(song_bytes)


def test_missing_file_names_the_file(tmp_path):
    missing = tmp_path / "nope.mp3"
    with pytest.raises(AudioFileError) as err:
        content_hash(missing)
    assert "nope.mp3" in str(err.value)
