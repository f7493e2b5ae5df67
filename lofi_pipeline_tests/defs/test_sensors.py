"""The post-render sensor, evaluated with build_sensor_context against a real instance."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pytest

from lofi_pipeline.defs.resources import build_resources
from lofi_pipeline.defs.sensors import rendered_files_sensor
from lofi_pipeline.settings import Settings


def _tick(instance, library, cursor):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"library": library})
    result = rendered_files_sensor(ctx)
    return result, ctx.cursor


@pytest.fixture
def setup(lofi_home: Settings):
    instance = dg.DagsterInstance.ephemeral()
    library = build_resources(lofi_home)["library"]
    rendered = Path(lofi_home.tracks_dir) / "12" / "Rendered"
    rendered.mkdir(parents=True)
    return instance, library, rendered


def _requests(result):
    if isinstance(result, dg.SkipReason):
        return []
    return list(result.run_requests)


def test_file_is_imported_once_when_stable(setup):
    instance, library, rendered = setup
    song = rendered / "A_1_2_12a.mp3"
    song.write_bytes(b"\x00" * 1000)

    result, cursor = _tick(instance, library, None)
    assert isinstance(result, dg.SkipReason) and "still changing" in result.skip_message

    result, cursor = _tick(instance, library, cursor)
    [req] = _requests(result)
    assert req.partition_key == "12"
    folders = req.run_config["ops"]["audio_features"]["config"]["folders"]
    assert folders == [str(song)]  # exactly the stable file, not its folder
    assert result.dynamic_partitions_requests[0].partition_keys == ["12"]

    result, cursor = _tick(instance, library, cursor)
    assert _requests(result) == []  # the cursor remembers the import
    assert str(song) in json.loads(cursor)["imported"]


def test_growing_file_waits_until_its_size_is_stable(setup):
    instance, library, rendered = setup
    song = rendered / "A_1_2_12a.wav"
    song.write_bytes(b"\x00" * 100)
    _, cursor = _tick(instance, library, None)
    with song.open("ab") as f:  # still being written
        f.write(b"\x00" * 100)
    result, cursor = _tick(instance, library, cursor)
    assert _requests(result) == []
    result, cursor = _tick(instance, library, cursor)
    assert len(_requests(result)) == 1


def test_replaced_file_is_requested_again_and_other_files_ignored(setup):
    instance, library, rendered = setup
    song = rendered / "mix_part.flac"
    song.write_bytes(b"\x01" * 500)
    (rendered / "output.mp4").write_bytes(b"video")  # not audio: never imported
    (rendered / "notes.txt").write_text("x")
    _, cursor = _tick(instance, library, None)
    result, cursor = _tick(instance, library, cursor)
    [first] = _requests(result)
    song.write_bytes(b"\x02" * 800)
    os.utime(song, (1_700_000_000, 1_700_000_000))
    _, cursor = _tick(instance, library, cursor)
    result, cursor = _tick(instance, library, cursor)
    [second] = _requests(result)
    assert second.run_key != first.run_key
