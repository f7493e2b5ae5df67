"""Shared fixtures: a library home in tmp_path, and the demo library built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def shared_dagster_home(tmp_path_factory: pytest.TempPathFactory):
    """One real, persistent Dagster instance for the whole session.

    Creating a SQLite-backed instance costs ~9 s of schema migrations, so the tests
    share one (each test still has its own LOFI_HOME and DuckDB file). It lives in
    /dev/shm when there is one: SQLite's fsyncs there cost nothing.
    """
    import shutil
    import tempfile

    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    home = Path(tempfile.mkdtemp(prefix="lofi-dagster-", dir=base or tmp_path_factory.getbasetemp()))
    os.environ["LOFI_DAGSTER_HOME"] = str(home)
    yield home
    os.environ.pop("LOFI_DAGSTER_HOME", None)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def lofi_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An empty library home (LOFI_HOME) with its own DuckDB file and Dagster instance."""
    from lofi_pipeline.settings import Settings

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("LOFI_HOME", str(home))
    return Settings.load(home)


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory: pytest.TempPathFactory):
    """The demo, run once (with its test render) in a session-wide LOFI_HOME."""
    from lofi_pipeline.demo import run_demo
    from lofi_pipeline.settings import Settings

    home = tmp_path_factory.mktemp("demo")
    old = {k: os.environ.get(k) for k in ("LOFI_HOME", "DAGSTER_HOME")}
    os.environ["LOFI_HOME"] = str(home)
    try:
        settings = Settings.load(home)
        summary = run_demo(settings, render=True, say=lambda _m: None)
        yield settings, summary
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
