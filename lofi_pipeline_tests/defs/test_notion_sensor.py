"""The Notion sync sensor: only pages edited since the cursor are re-imported."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from lofi_pipeline.defs.resources import NotionResource
from lofi_pipeline.defs.sensors import notion_pages_sensor
from lofi_pipeline_tests.notion_server import NotionTestServer

PAGES = Path(__file__).resolve().parents[1] / "fixtures" / "pages"
PARENT = "11111111-2222-3333-4444-555555555555"
P20 = "20202020-2020-2020-2020-202020202020"
P21 = "21212121-2121-2121-2121-212121212121"
NOTE = "99999999-9999-9999-9999-999999999999"


def _tick(instance, notion, cursor):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"notion": notion})
    return notion_pages_sensor(ctx), ctx.cursor


def test_sensor_requests_changed_track_pages_only(monkeypatch):
    md = (PAGES / "track13_checkbox_numbered.md").read_text()
    monkeypatch.setenv("NOTION_TOKEN", "tok")
    with NotionTestServer(pages={P20: md, P21: md, NOTE: "# Channel ideas\n\nnot a track",
                                 PARENT: "# Tracks\n"},
                          titles={P20: "Track 20 — Neon Rain", P21: "🌧️ TRACK 21 — Rainy Desk",
                                  NOTE: "Channel ideas"},
                          edited={P20: "2025-11-01T10:00:00.000Z", P21: "2025-11-02T10:00:00.000Z",
                                  NOTE: "2025-11-03T10:00:00.000Z"},
                          parents={PARENT: [P20, P21, NOTE]}, token="tok") as srv:
        notion = NotionResource(base_url=srv.base_url, parent=PARENT)
        instance = dg.DagsterInstance.ephemeral()

        result, cursor = _tick(instance, notion, None)
        assert sorted(r.partition_key for r in result.run_requests) == ["20", "21"]
        assert sorted(result.dynamic_partitions_requests[0].partition_keys) == ["20", "21"]
        assert cursor == "2025-11-03T10:00:00.000Z"

        result, cursor = _tick(instance, notion, cursor)
        assert isinstance(result, dg.SkipReason)

        srv.add_page(P21, md + "\n", title="🌧️ TRACK 21 — Rainy Desk", edited="2025-11-05T09:00:00.000Z")
        result, cursor = _tick(instance, notion, cursor)
        [req] = result.run_requests
        assert req.partition_key == "21"
        assert req.run_config["ops"]["notion_pages"]["config"]["page"].replace("-", "") == P21.replace("-", "")
        assert cursor == "2025-11-05T09:00:00.000Z"


def test_sensor_skips_without_parent_or_token(monkeypatch):
    monkeypatch.delenv("NOTION_TOKEN", raising=False)
    instance = dg.DagsterInstance.ephemeral()
    result, _ = _tick(instance, NotionResource(), None)
    assert "notion.parent" in result.skip_message
    result, _ = _tick(instance, NotionResource(parent=PARENT), None)
    assert "NOTION_TOKEN" in result.skip_message
