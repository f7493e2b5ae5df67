"""The code location as Dagster sees it: loadable, validated, served over GraphQL."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import httpx
import pytest

from lofi_pipeline.defs.build import build_definitions
from lofi_pipeline.settings import Settings

REPO = Path(__file__).resolve().parents[2]
STAGES = ["notion_pages", "track_plans", "audio_features", "songs_table", "song_embeddings",
          "track_matches", "mix_plan", "gap_report", "render_folder", "rendered_mix"]


def test_every_stage_is_an_asset_with_the_tracks_partitions(lofi_home):
    defs = build_definitions(lofi_home)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert set(STAGES) <= keys
    for name in STAGES:
        node = graph.get(dg.AssetKey(name))
        if name == "song_embeddings":
            assert node.partitions_def is None
        else:
            assert node.partitions_def.name == "tracks"
    for job in ["import_job", "plan_job", "songs_job", "render_job", "embed_job"]:
        assert defs.resolve_job_def(job)
    # Automation on by default: the file sensors only read Tracks/; Notion skips without a token and parent.
    for name in ("rendered_files_sensor", "song_files_sensor", "notion_pages_sensor"):
        assert defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING
    assert not list(defs.schedules or [])  # one Notion sync path: the sensor
    # The library writers share one concurrency pool
    for name in ["track_plans", "songs_table", "song_embeddings", "track_matches", "mix_plan"]:
        assert graph.get(dg.AssetKey(name)).pools == {"duckdb"}


def test_resources_follow_lofi_home(lofi_home):
    (lofi_home.home / "lofi.yaml").write_text("library:\n  duckdb_path: elsewhere/lib.duckdb\n")
    settings = Settings.load(lofi_home.home)
    assert settings.duckdb_path == str(lofi_home.home / "elsewhere" / "lib.duckdb")
    res = build_definitions(settings).resources
    assert res["library"].duckdb_path == settings.duckdb_path


def test_bad_settings_name_the_file(lofi_home):
    from lofi_pipeline.core.errors import ConfigError

    (lofi_home.home / "lofi.yaml").write_text("matching:\n  topk: 3\n")
    with pytest.raises(ConfigError, match=r"lofi.yaml.*topk"):
        Settings.load(lofi_home.home)


def test_dagster_definitions_validate_passes(lofi_home):
    env = {**os.environ, "LOFI_HOME": str(lofi_home.home), "DAGSTER_HOME": str(lofi_home.home)}
    proc = subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", "-w",
                           str(REPO / "workspace.yaml")], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_webserver_graphql_lists_assets_jobs_and_cli_runs_under_their_job(lofi_home):
    from lofi_pipeline.runner import run_job

    cli_run = run_job(lofi_home, "embed_job")  # what `lofi embed` launches
    port = _free_port()
    dh = Path(lofi_home.dagster_home)
    dh.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LOFI_HOME": str(lofi_home.home), "DAGSTER_HOME": str(dh)}
    proc = subprocess.Popen([sys.executable, "-m", "dagster_webserver", "-w", str(REPO / "workspace.yaml"),
                             "-h", "127.0.0.1", "-p", str(port)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}/graphql"
        query = """{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name }
                      jobs { name } assetNodes { assetKey { path } } } } } }"""
        deadline = time.monotonic() + 120
        data = None
        while time.monotonic() < deadline:
            try:
                r = httpx.post(url, json={"query": query}, timeout=10)
                nodes = r.json()["data"]["repositoriesOrError"].get("nodes")
                if nodes:
                    data = nodes[0]
                    break
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            time.sleep(1)
        assert data is not None, "webserver did not serve the code location"
        assets = {"/".join(n["assetKey"]["path"]) for n in data["assetNodes"]}
        assert set(STAGES) <= assets
        assert {"import_job", "plan_job", "songs_job"} <= {j["name"] for j in data["jobs"]}
        runs = httpx.post(url, json={"query": "{ runsOrError { ... on Runs { results { runId jobName status } } } }"},
                          timeout=30).json()["data"]["runsOrError"]["results"]
        mine = [r for r in runs if r["runId"] == cli_run.run_id]
        assert mine and mine[0]["jobName"] == "embed_job" and mine[0]["status"] == "SUCCESS"

        # The job's Runs tab: runs of this job in this repository (filtered on the run's repository label).
        location = data["location"]["name"]
        job_runs = httpx.post(url, json={"query": """query($p: PipelineSelector!) {
            pipelineOrError(params: $p) { ... on Pipeline { runs { runId } } } }""", "variables": {"p": {
            "pipelineName": "embed_job", "repositoryName": data["name"], "repositoryLocationName": location}}},
            timeout=30).json()["data"]["pipelineOrError"]["runs"]
        assert cli_run.run_id in {r["runId"] for r in job_runs}
        tab = httpx.post(url, json={"query": """query($f: RunsFilter) { runsOrError(filter: $f) {
            ... on Runs { results { runId repositoryOrigin { repositoryName repositoryLocationName } } } } }""",
            "variables": {"f": {"pipelineName": "embed_job", "tags": [
                {"key": ".dagster/repository", "value": f"{data['name']}@{location}"}]}}},
            timeout=30).json()["data"]["runsOrError"]["results"]
        found = [r for r in tab if r["runId"] == cli_run.run_id]
        # The Overview timeline places a run by its repository origin.
        assert found and found[0]["repositoryOrigin"] == {"repositoryName": data["name"],
                                                          "repositoryLocationName": location}
        events = httpx.post(url, json={"query": """{ assetOrError(assetKey: {path: ["song_embeddings"]}) {
            ... on Asset { assetMaterializations(limit: 10) { runId } } } }"""},
            timeout=30).json()["data"]["assetOrError"]["assetMaterializations"]
        assert cli_run.run_id in {e["runId"] for e in events}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_loading_the_code_location_leaves_the_analyzer_and_the_model_unloaded(lofi_home):
    """Every job command and every sensor tick loads the definitions; only the steps that analyse audio
    or embed text pay for scipy's DSP, the decoders and torch."""
    code = ("import sys, lofi_pipeline.definitions\n"
            "print(sorted(m for m in ('lofi_pipeline.core.audio.decode', 'lofi_pipeline.core.audio.tempo',"
            " 'scipy.signal', 'soxr', 'torch', 'sentence_transformers') if m in sys.modules))")
    env = {**os.environ, "LOFI_HOME": str(lofi_home.home)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_the_audio_package_resolves_every_public_name_on_first_use():
    code = ("import lofi_pipeline.core.audio as audio\n"
            "print(audio.tempo.estimate_tempo is audio.estimate_tempo, audio.key.__name__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["True", "lofi_pipeline.core.audio.key"], proc.stderr[-2000:]
    from lofi_pipeline.core import audio

    for name in audio.__all__:
        assert getattr(audio, name) is not None, name
    assert audio.SUPPORTED_EXTENSIONS == audio.decode.SUPPORTED_EXTENSIONS
    with pytest.raises(AttributeError, match="no_such_name"):
        audio.no_such_name  # noqa: B018
