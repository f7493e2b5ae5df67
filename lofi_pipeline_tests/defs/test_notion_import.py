"""Importing from the Notion API through Dagster: real notion-client over HTTP to a local server."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from lofi_pipeline.cli import app
from lofi_pipeline.core.library import Library
from lofi_pipeline_tests.notion_server import NotionTestServer

PAGES = Path(__file__).resolve().parents[1] / "fixtures" / "pages"
TOKEN = "secret_test_token_do_not_log_7c1f"
PAGE_ID = "2a8433e5-7885-800a-b456-d6dd739b5d36"
runner = CliRunner()


@pytest.fixture
def server(lofi_home, monkeypatch):
    markdown = (PAGES / "track13_checkbox_numbered.md").read_text()
    with NotionTestServer(pages={PAGE_ID: markdown}, token=TOKEN, max_page_size=5) as srv:
        (lofi_home.home / "lofi.yaml").write_text(f"notion:\n  base_url: {srv.base_url}\n")
        monkeypatch.setenv("NOTION_TOKEN", TOKEN)
        yield srv


def test_import_from_notion_url_matches_the_markdown_path(lofi_home, server):
    from lofi_pipeline.core.notion import parse_track_markdown

    url = f"https://www.notion.so/My-Track-{PAGE_ID.replace('-', '')}?pvs=4"
    result = runner.invoke(app, ["import", "--track", "13", "--page", url])
    assert result.exit_code == 0, result.output
    plan = Library(lofi_home.duckdb_path).load_plan(13)
    from_md = parse_track_markdown((PAGES / "track13_checkbox_numbered.md").read_text(), source="x")
    assert [len(a.prompts) for a in plan.arcs] == [len(a.prompts) for a in from_md.arcs]
    assert [p.text for p in plan.prompts] == [p.text for p in from_md.prompts]
    assert any("/blocks/" in r[1] for r in server.requests)  # it really went over HTTP


def test_token_never_reaches_logs_metadata_or_files(lofi_home, server):
    url = PAGE_ID
    result = runner.invoke(app, ["import", "--track", "13", "--page", url])
    assert result.exit_code == 0, result.output
    instance = dg.DagsterInstance.from_config(lofi_home.dagster_home)
    for run in instance.get_runs():
        for record in instance.all_logs(run.run_id):
            assert TOKEN not in str(record)
    for path in lofi_home.home.rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000:
            assert TOKEN.encode() not in path.read_bytes(), path
    assert TOKEN not in result.output


def test_unshared_page_gives_one_clear_line(lofi_home, server):
    server.set_error(PAGE_ID, 404)
    result = runner.invoke(app, ["import", "--track", "13", "--page", PAGE_ID])
    assert result.exit_code == 1
    assert "share" in result.output.lower() and PAGE_ID.replace("-", "")[:8] in result.output.replace("-", "")
    assert TOKEN not in result.output and "Traceback" not in result.output


def test_missing_token_is_explained(lofi_home, server, monkeypatch):
    monkeypatch.delenv("NOTION_TOKEN")
    result = runner.invoke(app, ["import", "--track", "13", "--page", PAGE_ID])
    assert result.exit_code == 1 and "NOTION_TOKEN" in result.output


def test_import_all_under_a_parent_page(lofi_home, monkeypatch):
    parent = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    p1, p2, other = ("12121212-1212-1212-1212-121212121212", "13131313-1313-1313-1313-131313131313",
                     "77777777-7777-7777-7777-777777777777")
    md = (PAGES / "track13_checkbox_numbered.md").read_text()
    with NotionTestServer(pages={parent: "# Tracks\n", p1: md, p2: md, other: "# Ideas\n\nnothing"},
                          titles={p1: "Track 12 — Dawn", p2: "TRACK 13 — Dusk", other: "Ideas"},
                          parents={parent: [p1, p2, other]}, token=TOKEN) as srv:
        (lofi_home.home / "lofi.yaml").write_text(f"notion:\n  base_url: {srv.base_url}\n")
        monkeypatch.setenv("NOTION_TOKEN", TOKEN)
        result = runner.invoke(app, ["import", "--all", "--parent", f"https://www.notion.so/{parent}"])
        assert result.exit_code == 0, result.output
        assert "2 track page(s) imported" in result.output and "Ideas" in result.output
    lib = Library(lofi_home.duckdb_path)
    assert lib.track_numbers() == [12, 13]
    assert lib.load_plan(12).prompts
