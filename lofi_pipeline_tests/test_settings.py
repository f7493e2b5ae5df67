"""lofi.yaml over the packaged defaults: one validator, one-line errors, no YAML aliases."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest
import yaml

from lofi_pipeline.core.errors import ConfigError
from lofi_pipeline.settings import (LofiSettings, Settings, default_settings_text, load_settings,
                                    validate_settings)


def load(tmp_path: Path, text: str) -> Settings:
    (tmp_path / "lofi.yaml").write_text(text, encoding="utf-8")
    return Settings.load(tmp_path)


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message and "pydantic" not in message
    assert str(tmp_path / "lofi.yaml") in message
    return message.replace(str(tmp_path) + "/", "")


def test_defaults_without_a_settings_file(tmp_path):
    s = Settings.load(tmp_path)
    assert s.duckdb_path == str(tmp_path / "data" / "lofi.duckdb")
    assert s.matching["top_k"] == 5 and s.matching["weights"]["semantic"] == 0.5
    assert s.render["width"] == 1920 and s.render.get("ffmpeg") is None
    assert s.notion.get("base_url") is None and s.analysis.get("workers") is None
    assert isinstance(s.model, LofiSettings) and s.model.render.prepare_mode == "copy"
    # The packaged defaults are the only defaults, and they validate.
    assert s.raw == LofiSettings.model_validate(yaml.safe_load(default_settings_text())).model_dump()
    assert load_settings(tmp_path) == s


def test_user_values_merge_over_the_defaults(tmp_path):
    s = load(tmp_path, "matching:\n  top_k: 8\n  weights: {semantic: 0.9}\n"
                       "library:\n  duckdb_path: /srv/lofi.duckdb\n  export_dir: s3://bucket/lofi\n")
    assert s.matching["top_k"] == 8 and s.matching["min_similarity"] == 0.6
    # One weight changed; the others keep their defaults.
    assert s.matching["weights"] == {"semantic": 0.9, "arc": 0.2, "bpm": 0.15, "key": 0.1, "usage": 0.05}
    assert s.duckdb_path == "/srv/lofi.duckdb" and s.export_dir == "s3://bucket/lofi"
    assert s.tracks_dir == str(tmp_path / "Tracks")
    # The section dicts still work with ** as resources use them.
    assert dict(**s.render)["height"] == 1080


def test_empty_file_keeps_the_defaults(tmp_path):
    assert load(tmp_path, "# nothing yet\n").raw == Settings.load(tmp_path / "..").raw


@pytest.mark.parametrize("text,expected", [
    ("matching:\n  top_k: five\n", "lofi.yaml: matching.top_k = 'five': expected an integer ≥ 1"),
    ("matching:\n  top_k: 0\n", "lofi.yaml: matching.top_k = 0: expected an integer ≥ 1"),
    ("matching:\n  top_k: '5'\n", "lofi.yaml: matching.top_k = '5': expected an integer ≥ 1"),
    ("matching:\n  top_k: 99999999999\n",
     "lofi.yaml: matching.top_k = 99999999999: expected an integer ≥ 1 and at most 2147483647"),
    ("render:\n  width: \"1920px\"\n",
     "lofi.yaml: render.width = '1920px': expected an integer number of pixels from 1 to 16384"),
    ("render:\n  height: -1080\n",
     "lofi.yaml: render.height = -1080: expected an integer number of pixels from 1 to 16384"),
    ("library:\n  duckdb_path: 12345\n", "lofi.yaml: library.duckdb_path = 12345: expected a path (text)"),
    ("library:\n  duckdb_path: ''\n", "lofi.yaml: library.duckdb_path = '': expected a path (text)"),
    ("matching:\n  min_similarity: 1.5\n",
     "lofi.yaml: matching.min_similarity = 1.5: expected a number from -1 to 1"),
    ("matching:\n  good_similarity: -2\n",
     "lofi.yaml: matching.good_similarity = -2: expected a number from -1 to 1"),
    ("matching:\n  max_repeats: many\n",
     "lofi.yaml: matching.max_repeats = 'many': expected an integer ≥ 0"),
    ("matching:\n  weights: {semantic: -1}\n",
     "lofi.yaml: matching.weights.semantic = -1: expected a number ≥ 0"),
    ("matching:\n  weights: {semantic: .inf}\n",
     "lofi.yaml: matching.weights.semantic = inf: expected a number ≥ 0"),
    ("matching:\n  weights: {semantic: 0, arc: 0, bpm: 0, key: 0, usage: 0}\n",
     "lofi.yaml: matching.weights = a mapping: expected at least one weight > 0 (they are all zero)"),
    ("matching:\n  weights: [1, 2]\n",
     "lofi.yaml: matching.weights = a list: expected a mapping of weight name → number"),
    ("matching:\n  allocation: random\n",
     "lofi.yaml: matching.allocation = 'random': expected 'prompts' or 'even'"),
    ("render:\n  prepare_mode: symlink\n",
     "lofi.yaml: render.prepare_mode = 'symlink': expected 'copy', 'hardlink' or 'move'"),
    ("render:\n  target_lufs: 3\n", "lofi.yaml: render.target_lufs = 3: expected a loudness in LUFS from -70 to 0"),
    ("analysis:\n  workers: 0\n", "lofi.yaml: analysis.workers = 0: expected an integer from 1 to 1024, or null"),
    ("notion:\n  base_url: localhost:8080\n",
     "lofi.yaml: notion.base_url = 'localhost:8080': expected an http:// or https:// URL or null"),
    ("render: 5\n", "lofi.yaml: render = 5: expected a mapping of render settings"),
    ("dagster_home: [a]\n", "lofi.yaml: dagster_home = a list: expected a path (text)"),
])
def test_bad_values_give_one_line_naming_file_key_value_and_expectation(tmp_path, text, expected):
    assert error_of(tmp_path, text) == expected


@pytest.mark.parametrize("text,words", [
    ("matching:\n  topk: 3\n", ["unknown setting 'matching.topk'", "top_k"]),
    ("matching:\n  weights: {tempo: 1}\n", ["unknown setting 'matching.weights.tempo'", "semantic"]),
    ("colour: blue\n", ["unknown setting 'colour'", "library", "render"]),
    ("- a\n- b\n", ["expected a mapping of settings", "got a list"]),
    ("matching: {top_k: 0, min_similarity: 5}\n", ["matching.top_k = 0", "(and 1 more problem)"]),
    ("render:\n  width: 1280\n  width: 720\n", ["line 3", "'width' is written twice", "line 2"]),
    ("matching:\n  top_k: [unclosed\n", ["line 3", "not valid YAML"]),
    ("render:\n  ffmpeg: !!python/object/apply:os.system ['true']\n", ["not valid YAML"]),
])
def test_structural_problems(tmp_path, text, words):
    message = error_of(tmp_path, text)
    for w in words:
        assert w in message, message


@pytest.mark.parametrize("text,line", [
    ("base: &w {semantic: 1}\nmatching:\n  weights: *w\n", 1),
    ("matching:\n  weights:\n    semantic: &s 1\n    arc: *s\n", 3),
    ("render: &r\n  width: 1280\nmatching:\n  <<: *r\n", 1),
])
def test_yaml_anchors_and_aliases_are_refused(tmp_path, text, line):
    message = error_of(tmp_path, text)
    assert f"lofi.yaml, line {line}: YAML anchors and aliases" in message


def test_alias_bomb_under_matching_weights_fails_fast_in_bounded_memory(tmp_path):
    # Nine levels of nine aliases: 9**9 (387 million) leaves if anything expanded it.
    levels = ["  a0: &a0 [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]"]
    for n in range(1, 10):
        levels.append(f"  a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]")
    text = "matching:\n  weights:\n" + "\n".join("  " + x for x in levels) + "\n"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    message = error_of(tmp_path, text)
    assert "YAML anchors and aliases" in message and "line 3" in message
    assert time.monotonic() - started < 1.0
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 50


def test_settings_file_that_is_not_utf8(tmp_path):
    (tmp_path / "lofi.yaml").write_bytes(b"matching:\n  top_k: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"lofi.yaml: cannot read the settings file \(not UTF-8 text\)"):
        Settings.load(tmp_path)


def test_a_value_with_control_characters_is_shown_escaped_and_short(tmp_path):
    message = error_of(tmp_path, 'render:\n  width: "\\e[2J' + "x" * 200 + '"\n')
    assert "\x1b" not in message and "\\x1b[2J" in message
    assert len(message) < 200


def test_validate_settings_names_its_source():
    with pytest.raises(ConfigError, match=r"^inline: render.width = 0: expected"):
        validate_settings({**yaml.safe_load(default_settings_text()),
                           "render": {**yaml.safe_load(default_settings_text())["render"], "width": 0}},
                          where="inline")


def test_lofi_home_environment_variable(tmp_path, monkeypatch):
    (tmp_path / "lofi.yaml").write_text("matching:\n  top_k: 3\n")
    monkeypatch.setenv("LOFI_HOME", str(tmp_path))
    monkeypatch.setenv("LOFI_DAGSTER_HOME", "")
    s = Settings.load()
    assert s.home == tmp_path.resolve() and s.matching["top_k"] == 3
    assert s.dagster_home == str(tmp_path.resolve() / "data" / "dagster_home")
