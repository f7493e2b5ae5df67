"""The real notion-client against our local Notion-compatible server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lofi_pipeline.core.errors import ConfigError, NotionAccessError
from lofi_pipeline.core.notion import parse_track_file, parse_track_markdown
from lofi_pipeline.core.notion_api import fetch_page, list_child_pages, make_client
from lofi_pipeline.core.notion_blocks import blocks_to_markdown, page_to_markdown
from lofi_pipeline_tests.notion_server import NotionTestServer, rich_text

PAGES = Path(__file__).resolve().parents[1] / "fixtures" / "pages"
TOKEN = "secret_test_token_123"
IDS = {name: f"{n:02d}a8433e57885800ab456d6dd739b5d{n:02d}"[:32]
       for n, name in enumerate(sorted(p.name for p in PAGES.glob("*.md")), start=10)}


@pytest.fixture(scope="module")
def server():
    pages = {pid: (PAGES / name).read_text() for name, pid in IDS.items()}
    # A small page size forces every page through several paginated requests.
    with NotionTestServer(pages=pages, token=TOKEN, max_page_size=7,
                          parents={"ffff0000ffff0000ffff0000ffff0000": [IDS["track13_checkbox_numbered.md"],
                                                                     IDS["numbered_list_h1.md"]]},
                          databases={"eeee0000eeee0000eeee0000eeee0000": list(IDS.values())}) as srv:
        yield srv


@pytest.fixture()
def client(server):
    server.requests.clear()
    return make_client(TOKEN, base_url=server.base_url, max_retry_delay_s=2)


@pytest.mark.parametrize("name", sorted(IDS))
def test_api_and_markdown_give_identical_plans(server, client, name):
    page = fetch_page(client, IDS[name])
    from_api = parse_track_markdown(page_to_markdown(page), source=name)
    from_file = parse_track_markdown((PAGES / name).read_text(), source=name)
    assert from_api == from_file
    assert from_api.to_dict() == from_file.to_dict()


def test_fetch_page_shape_and_pagination(server, client):
    name = "track13_checkbox_numbered.md"
    page = fetch_page(client, f"https://www.notion.so/acme/Track-13-{IDS[name]}?pvs=4")
    assert page["id"].replace("-", "") == IDS[name]
    assert page["title"] == "Track 13 — Harbor Lights Night Focus 🌊 LoFi & Synthwave Mix (3HR)"
    assert page["last_edited_time"] and page["url"].endswith(IDS[name])
    top_calls = [q for m, path, q in server.requests if path == f"/v1/blocks/{page['id']}/children"]
    # 41 top-level blocks at the server's 7 per response → 6 requests, each after
    # the first carrying the cursor the previous response gave.
    assert len(top_calls) == 6
    assert "start_cursor" not in top_calls[0] and all(q.get("start_cursor") for q in top_calls[1:])
    assert all(q.get("page_size") == "100" for q in top_calls)
    # One block per line, except the title line and the 9 lines of the one table.
    assert len(page["blocks"]) == len((PAGES / name).read_text().splitlines()) - 1 - 9 + 1
    # The overview table's rows were fetched as nested children.
    table = next(b for b in page["blocks"] if b["type"] == "table")
    assert len(table["children"]) == 8 and table["table"]["has_column_header"]


def test_rate_limit_is_retried_after_retry_after(server, client):
    name = "lost_prompts.md"
    server.fail_next(2, status=429, retry_after=1, path_contains="/pages/")
    started = time.monotonic()
    page = fetch_page(client, IDS[name])
    waited = time.monotonic() - started
    assert page["title"] == ""
    assert waited >= 1.9  # two Retry-After: 1 waits were honoured
    page_calls = [path for m, path, q in server.requests if "/pages/" in path]
    assert len(page_calls) == 3


def test_rate_limit_that_outlasts_the_retries(server):
    client = make_client(TOKEN, base_url=server.base_url, max_retries=1)
    server.fail_next(3, status=429, retry_after=0, path_contains="/pages/")
    try:
        with pytest.raises(NotionAccessError, match="rate-limiting"):
            fetch_page(client, IDS["lost_prompts.md"])
    finally:
        server._failures.clear()


@pytest.mark.parametrize("status,words", [(404, "share the page with your integration"),
                                          (403, "share the page with your integration"),
                                          (401, "check NOTION_TOKEN")])
def test_access_errors_name_the_page_never_the_token(server, client, status, words):
    pid = IDS["no_arc_section.md"]
    dashed = f"{pid[:8]}-{pid[8:12]}-{pid[12:16]}-{pid[16:20]}-{pid[20:]}"
    server.set_error(pid, status)
    try:
        with pytest.raises(NotionAccessError) as info:
            fetch_page(client, pid)
    finally:
        server.set_error(pid, None)
    message = str(info.value)
    assert dashed in message and words in message
    assert TOKEN not in message


def test_wrong_token_is_401_without_leaking_it(server):
    client = make_client("wrong-token-value", base_url=server.base_url)
    with pytest.raises(NotionAccessError, match="401") as info:
        fetch_page(client, IDS["no_arc_section.md"])
    assert "wrong-token-value" not in str(info.value)


def test_unknown_page_is_404(client):
    with pytest.raises(NotionAccessError, match="0123abcd-0123-abcd-0123-abcd0123abcd"):
        fetch_page(client, "0123abcd0123abcd0123abcd0123abcd")


def test_empty_token_is_refused():
    with pytest.raises(ConfigError, match="NOTION_TOKEN"):
        make_client("  ")


def test_list_child_pages_of_a_parent_page_and_a_database(server, client):
    under_page = list_child_pages(client, "https://www.notion.so/acme/Tracks-ffff0000ffff0000ffff0000ffff0000")
    assert [p["id"].replace("-", "") for p in under_page] == [IDS["track13_checkbox_numbered.md"],
                                                              IDS["numbered_list_h1.md"]]
    assert [p["title"] for p in under_page] == [
        "Track 13 — Harbor Lights Night Focus 🌊 LoFi & Synthwave Mix (3HR)", "Subway Platform Study Session"]
    assert all(p["last_edited_time"] for p in under_page)
    in_db = list_child_pages(client, "https://www.notion.so/eeee0000eeee0000eeee0000eeee0000?v=1234")
    assert len(in_db) == len(IDS)  # 10 pages at 7 per query → pagination
    assert sum(1 for m, path, q in server.requests if path.endswith("/query")) == 2
    assert list_child_pages(client, "eeee0000eeee0000eeee0000eeee0000",
                            edited_after="2030-01-01T00:00:00Z") == []


def _text(kind, text, **extra):
    return {"type": kind, kind: {"rich_text": rich_text(text), **extra}}


def test_nested_blocks_toggle_columns_synced_and_numbered_items(client, server):
    """Prompts hidden in toggles, columns and synced blocks, as numbered-list blocks."""
    blocks = [
        _text("callout", "TRACK 40 — Toggle Page", icon={"type": "emoji", "emoji": "🌧️"}),
        _text("heading_2", "1. TRACK OVERVIEW"),
        {"type": "table", "table": {"table_width": 2, "has_column_header": True},
         "children": [{"type": "table_row", "table_row": {"cells": [rich_text("Field"), rich_text("Value")]}},
                      {"type": "table_row", "table_row": {"cells": [rich_text("Title"), rich_text("Toggle Page Mix")]}},
                      {"type": "table_row", "table_row": {"cells": [rich_text("Duration"), rich_text("2 hr")]}}]},
        _text("heading_2", "5. MUSIC ARC STRUCTURE"),
        {**_text("heading_3", "Phase 1 — Drift (BPM 60–70)", is_toggleable=True),
         "children": [_text("numbered_list_item", "slow **pads**, soft rain"),
                      _text("numbered_list_item", "warm `tape` hiss, no drums")]},
        {"type": "column_list", "column_list": {}, "children": [
            {"type": "column", "column": {}, "children": [
                _text("heading_3", "Phase 2 — Pulse"),
                _text("to_do", "3. steady beat", checked=True)]},
            {"type": "column", "column": {}, "children": [
                {"type": "synced_block", "synced_block": {"synced_from": None}, "children": [
                    _text("to_do", "4. round bass", checked=False)]}]}]},
        {"type": "divider", "divider": {}},
        _text("heading_2", "6. POST-UPLOAD CHECKLIST"),
        {**_text("toggle", "Checklist"), "children": [_text("to_do", "Thumbnail", checked=False)]},
    ]
    server.add_page("abcdef0123456789abcdef0123456789", blocks, title="Track 40")
    page = fetch_page(client, "abcdef0123456789abcdef0123456789")
    markdown = page_to_markdown(page)
    assert "1. slow **pads**, soft rain" in markdown and "2. warm `tape` hiss" in markdown
    plan = parse_track_markdown(markdown, source="track-40")
    assert plan.track_number == 40 and plan.title == "Toggle Page Mix" and plan.duration_minutes == 120
    assert [len(a.prompts) for a in plan.arcs] == [2, 2]
    assert plan.arcs[0].bpm_range == (60, 70)
    assert [p.number for p in plan.prompts] == [1, 2, 3, 4]
    assert [p.checked for p in plan.prompts] == [None, None, True, False]
    assert not any("Thumbnail" in p.text for p in plan.prompts)


def test_blocks_to_markdown_numbering_and_start_index():
    blocks = [_text("numbered_list_item", "a", list_start_index=4), _text("numbered_list_item", "b"),
              _text("paragraph", ""), _text("numbered_list_item", "c")]
    assert blocks_to_markdown(blocks) == "4. a\n5. b\n\n1. c\n"


def test_demo_page_round_trips_through_the_api(client, server):
    demo = Path(__file__).resolve().parents[2] / "lofi_pipeline" / "demo_pages" / "track_104.md"
    server.add_page("104a8433e57885800ab456d6dd739b5d", demo.read_text())
    page = fetch_page(client, "104a8433e57885800ab456d6dd739b5d")
    from_api = parse_track_markdown(page_to_markdown(page), source=str(demo))
    assert from_api == parse_track_file(demo)


SAMPLES = Path("/work/shared/notion-samples")


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/notion-samples is not on this machine")
def test_real_samples_identical_through_the_api():
    pages = {p.stem: p.read_text() for p in SAMPLES.glob("*.md") if p.stem != "README"}
    with NotionTestServer(pages=pages, token=TOKEN) as srv:
        client = make_client(TOKEN, base_url=srv.base_url)
        for stem, text in pages.items():
            from_api = parse_track_markdown(page_to_markdown(fetch_page(client, stem)), source=stem)
            assert from_api == parse_track_markdown(text, source=stem), stem


# ------------------------------------------------------------------ secrets

CANARY = "secret_canaryQ7fZ2pLx9WmB4vTn8RkYc3HdJ5sAeU1oGi6"


@pytest.mark.parametrize("bad,words", [
    (CANARY + "\nX-Injected: 1", "whitespace"),
    (CANARY + " tail", "whitespace"),
    ("secret_cafébar0123456789abcdef", "non-ASCII"),
    (CANARY[:10] + "\x07" + CANARY[10:], "control character"),
    ("", "not set"),
])
def test_notion_token_is_checked_and_never_quoted(monkeypatch, bad, words):
    from lofi_pipeline.core.secrets import notion_token

    monkeypatch.setenv("LOFI_TEST_NOTION", bad)
    with pytest.raises(ConfigError) as info:
        notion_token("LOFI_TEST_NOTION")
    message = str(info.value)
    assert "LOFI_TEST_NOTION" in message and words in message
    assert "\n" not in message
    for piece in ("canaryQ7fZ2", "X-Injected", "café"):
        assert piece not in message


def test_notion_token_returns_the_stripped_value(monkeypatch):
    from lofi_pipeline.core.secrets import notion_token

    monkeypatch.setenv("NOTION_TOKEN", f"  {CANARY}\n")  # a trailing newline from `echo > .env`
    assert notion_token() == CANARY
    monkeypatch.delenv("NOTION_TOKEN")
    with pytest.raises(ConfigError, match="NOTION_TOKEN is not set"):
        notion_token()


def test_a_token_with_a_newline_never_reaches_the_http_client(server):
    server.requests.clear()
    with pytest.raises(ConfigError, match="NOTION_TOKEN contains whitespace") as info:
        make_client(CANARY + "\nX-Injected: 1", base_url=server.base_url)
    assert "canary" not in str(info.value)
    assert server.requests == []


@pytest.mark.parametrize("status", [401, 403, 404, 429, 500])
def test_error_statuses_never_carry_the_token(status):
    """A gateway that quotes the Authorization header in its error body: the
    message we raise names the page and status, never the token."""
    pid = "0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c"
    with NotionTestServer(pages={pid: "# Track 1\nhello"}, token=CANARY, echo_auth=True) as srv:
        client = make_client(CANARY, base_url=srv.base_url, max_retries=0)
        srv.set_error(pid, status)
        with pytest.raises(NotionAccessError) as info:
            fetch_page(client, pid)
    message = str(info.value)
    assert "0c0c0c0c-0c0c" in message
    assert str(status) in message
    assert "canaryQ7fZ2" not in message and CANARY not in message


def test_scrub_on_httpx_local_protocol_error_text(monkeypatch):
    import httpx

    from lofi_pipeline.core.secrets import scrub

    bad = CANARY + "\nX-Injected: 1"
    # The real error httpx raises for such a header, from a real request.
    with NotionTestServer(pages={}, token=CANARY) as srv:
        with httpx.Client() as http, pytest.raises(httpx.LocalProtocolError) as info:
            http.get(f"{srv.base_url}/v1/users/me", headers={"Authorization": f"Bearer {bad}"})
    text = f"{type(info.value).__name__}: {info.value}"
    assert "canaryQ7fZ2" in text  # the leak the scrubber exists for
    # With the token in the environment, and with nothing known: both scrubbed.
    monkeypatch.setenv("NOTION_TOKEN", bad)
    cleaned = scrub(text)
    assert "canaryQ7fZ2" not in cleaned and "X-Injected" not in cleaned
    assert cleaned.startswith("LocalProtocolError: Illegal header value")
    monkeypatch.delenv("NOTION_TOKEN")
    cleaned = scrub(text)
    assert "canaryQ7fZ2" not in cleaned and "X-Injected" not in cleaned


@pytest.mark.parametrize("text,gone,kept", [
    ("Authorization: Bearer abcdef123456 sent", "abcdef123456", "Authorization:"),
    ("{'Authorization': 'Bearer abcdef123456'}", "abcdef123456", "'Authorization'"),
    ("headers Bearer zyxw98765abc were refused", "zyxw98765abc", "were refused"),
    ("token ntn_4Fh7Jk2Lm9Np3Qr8St1Vw6Xy0Za5Bc was rejected", "4Fh7Jk2Lm9", "was rejected"),
    (f"old token {CANARY}.", "canaryQ7fZ2", "old token"),
    ("Basic dXNlcjpwYXNzd29yZA== in proxy", "dXNlcjpwYXNz", "in proxy"),
])
def test_scrub_removes_header_values_and_token_shapes(text, gone, kept):
    from lofi_pipeline.core.secrets import scrub

    cleaned = scrub(text)
    assert gone not in cleaned and kept in cleaned and "***" in cleaned


def test_scrub_leaves_page_text_alone(monkeypatch):
    from lofi_pipeline.core.secrets import scrub

    monkeypatch.setenv("NOTION_TOKEN", "abc")  # too short to scrub by value
    text = "Basic Lo-Fi Mix, line 12: arc 1 'secret_garden' has no prompts"
    assert scrub(text) == text


def test_scrub_removes_a_registered_secret_in_any_form(monkeypatch):
    from lofi_pipeline.core.secrets import register_secret, scrub

    monkeypatch.delenv("NOTION_TOKEN", raising=False)
    value = "plain-value-42\twith tab"
    register_secret(value)
    assert "plain-value-42" not in scrub(f"got {value!r} and {value.encode()!r}")
    assert scrub(RuntimeError("boom")) == "boom"


@pytest.mark.parametrize("text", ["Torch Bearer Nights: arc 2 'Basic Beats' has no prompts",
                                  "page 'Bearer of Light' (Bearer 2) line 4"])
def test_scrub_keeps_ordinary_words(text):
    from lofi_pipeline.core.secrets import scrub

    assert scrub(text) == text


def test_a_list_nested_1200_levels_deep_is_read_without_recursion(client, server):
    import sys

    depth = 1200
    assert depth > sys.getrecursionlimit()  # the old recursive walk died here
    deepest = _text("bulleted_list_item", "deep variant, slow tape hiss, warm pads, soft rain, far away")
    node = deepest
    for level in range(depth - 1, 0, -1):
        node = {**_text("bulleted_list_item", f"note level {level}"), "children": [node]}
    blocks = [
        _text("heading_1", "Track 41 — Deep Notes"),
        {"type": "table", "table": {"table_width": 2, "has_column_header": False},
         "children": [{"type": "table_row", "table_row": {"cells": [rich_text("Title"), rich_text("Deep Mix")]}}]},
        _text("heading_2", "MUSIC ARC"),
        _text("heading_3", "Phase 1 — Only"),
        {**_text("to_do", "1. soft pads, tape hiss, warm bass", checked=False), "children": [node]},
        _text("to_do", "2. brushed drums, mellow keys, light rain", checked=True),
    ]
    server.add_page("dddd0000dddd0000dddd0000dddd0000", blocks, title="Track 41")
    page = fetch_page(client, "dddd0000dddd0000dddd0000dddd0000")
    markdown = page_to_markdown(page)
    lines = markdown.splitlines()
    assert len(lines) == 1 + 5 + depth + 1  # title, 5 blocks, the nested list, prompt 2
    assert lines[-2].startswith(" " * 2 * depth + "- deep variant")
    plan = parse_track_markdown(markdown, source="deep")
    assert plan.track_number == 41 and plan.title == "Deep Mix"
    assert [p.number for p in plan.prompts] == [1, 2]
    # The deepest item reads like a prompt: it is reported with its line, not silently kept or lost.
    assert any(f"deep, line {len(lines) - 1}" in w and "looks like a Suno prompt" in w for w in plan.warnings)
    children_calls = [path for m, path, q in server.requests if path.endswith("/children")]
    assert len(children_calls) >= depth


def test_flat_blocks_store_any_depth_as_json_and_nest_back():
    import json

    from lofi_pipeline.core.notion_blocks import flatten_blocks, nest_blocks

    node = _text("bulleted_list_item", "bottom")
    for level in range(1500):
        node = {**_text("bulleted_list_item", f"level {level}"), "children": [node]}
    blocks = [_text("heading_2", "MUSIC ARC"), node, _text("paragraph", "after")]
    with pytest.raises(RecursionError):
        json.dumps(blocks)  # why the cache stores the flat form
    flat = json.loads(json.dumps(flatten_blocks(blocks)))
    assert len(flat) == 1 + 1501 + 1 and max(b["depth"] for b in flat) == 1500
    assert blocks_to_markdown(nest_blocks(flat)) == blocks_to_markdown(blocks)
