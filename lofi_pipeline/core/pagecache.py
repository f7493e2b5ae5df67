"""The local copy of each track's page: ``data/pages/track_{N}.md`` (+ ``.json`` with where it came from).

Pages are fetched by the ``notion_pages`` asset and parsed by ``track_plans``
from this copy, so a plan can be rebuilt without the network.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lofi_pipeline.core.errors import LofiError
from lofi_pipeline.core.files import write_json_atomic, write_text_atomic
from lofi_pipeline.core.models import TrackPlan
from lofi_pipeline.core.notion_blocks import flatten_blocks


def read_meta(json_path: Path) -> dict[str, Any]:
    """What we stored about the cached page, or {} before the first fetch."""
    return json.loads(json_path.read_text(encoding="utf-8")) if json_path.exists() else {}


def store_page(md_path: Path, json_path: Path, *, ref: str, markdown: str, last_edited_time: str | None,
               page_id: str | None = None, blocks: list | None = None, force: bool = False) -> bool:
    """Write the page when it changed (or ``force``); True when it was written."""
    old = read_meta(json_path)
    changed = force or old.get("last_edited_time") != last_edited_time or not md_path.exists() \
        or md_path.read_text(encoding="utf-8") != markdown
    if changed:
        write_text_atomic(md_path, markdown)
        write_json_atomic(json_path, {
            "ref": ref, "page_id": page_id, "last_edited_time": last_edited_time,
            "fetched_at": datetime.now(timezone.utc).isoformat(),
            # flat, with a depth each: json.dumps recurses per level and a page may nest a thousand deep
            "blocks": flatten_blocks(blocks) if blocks else blocks})
    return changed


def parse_cached_page(track_number: int, md_path: Path, json_path: Path) -> tuple[TrackPlan, dict[str, Any]]:
    """The track's plan from its cached page, with a warning when the page names another track."""
    from lofi_pipeline.core.notion import parse_track_markdown, read_track_page

    if not md_path.exists():
        raise LofiError(f"track {track_number}: no cached page at {md_path}; run the import with --page first")
    meta = read_meta(json_path)
    source = meta.get("ref", str(md_path))
    plan = parse_track_markdown(read_track_page(md_path), source=source)
    if plan.track_number is not None and plan.track_number != track_number:
        plan.warnings.append(f"{plan.source}: page says track {plan.track_number} but it was imported "
                             f"as track {track_number}")
    return plan, meta
