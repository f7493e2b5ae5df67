"""Turn Notion API block JSON into the Markdown our track-page parser reads.

Both sources of a track page — the live API and a Markdown export — end in
:func:`lofi_pipeline.core.notion.parse_track_markdown`, so this module only has
to write blocks the way the exports look:

* one line per block, no blank line between blocks (an empty paragraph is an
  empty line), so line numbers in warnings point at blocks in order;
* ``heading_1..3`` → ``#``..``###``; ``to_do`` → ``- [ ]`` / ``- [x]``;
  ``bulleted_list_item`` → ``- ``; ``numbered_list_item`` → ``1.``, ``2.`` … counted
  within a run of consecutive items (starting at ``list_start_index`` when the
  block carries one); ``quote`` → ``> ``; ``callout`` → ``> `` + its emoji;
  ``divider`` → ``---``; ``code`` → a fenced block; ``table`` → ``| a | b |`` rows
  (with a ``| --- |`` row under a column header);
* containers (``toggle``, ``column_list``/``column``, ``synced_block``, toggle
  headings) are flattened: their children follow at the same level, because a
  prompt inside a toggle is still a prompt;
* children of list items and to-dos are indented by two spaces (notes on the item);
* rich text keeps bold (``**x**``), italic (``*x*``), strikethrough (``~~x~~``),
  inline code (backticks) and links (``[x](url)``).

Blocks must already carry their children under the key ``"children"``
(:func:`lofi_pipeline.core.notion_api.fetch_page` attaches them).
"""

from __future__ import annotations

from typing import Any

_CONTAINERS = {"toggle", "column_list", "column", "synced_block", "template",
               "link_to_page", "child_database", "table_of_contents", "breadcrumb"}
_LIST_TYPES = {"to_do", "bulleted_list_item", "numbered_list_item"}


def rich_text_to_markdown(rich_text: list[dict[str, Any]] | None) -> str:
    """Render a Notion rich-text array as inline Markdown."""
    out = []
    for item in rich_text or []:
        text = item.get("plain_text")
        if text is None:
            text = (item.get("text") or {}).get("content", "")
        if not text:
            continue
        ann = item.get("annotations") or {}
        href = item.get("href") or ((item.get("text") or {}).get("link") or {}).get("url")
        # Markers go inside surrounding spaces: "** x**" is not bold in Markdown.
        core = text.strip()
        lead = text[: len(text) - len(text.lstrip())]
        trail = text[len(text.rstrip()):]
        if core:
            if ann.get("code"):
                core = f"`{core}`"
            if ann.get("bold"):
                core = f"**{core}**"
            if ann.get("italic"):
                core = f"*{core}*"
            if ann.get("strikethrough"):
                core = f"~~{core}~~"
            if href and item.get("type", "text") == "text":
                core = f"[{core}]({href})"
        out.append(f"{lead}{core}{trail}")
    return "".join(out)


def _block_text(block: dict[str, Any]) -> str:
    data = block.get(block.get("type", ""), {}) or {}
    return rich_text_to_markdown(data.get("rich_text"))


def _emoji(block: dict[str, Any]) -> str:
    icon = (block.get("callout") or {}).get("icon") or {}
    return icon.get("emoji", "") if icon.get("type") == "emoji" else ""


def blocks_to_markdown(blocks: list[dict[str, Any]]) -> str:
    """Convert a page's blocks (children attached under ``"children"``) to Markdown.

    Parameters
    ----------
    blocks
        Block objects in the real API's shape, in page order.

    Returns
    -------
    str
        Markdown, one line per block, ending with a newline when not empty.
    """
    lines: list[str] = []
    _render(blocks, lines, indent="")
    return "\n".join(lines) + ("\n" if lines else "")


def page_to_markdown(page: dict[str, Any]) -> str:
    """Markdown of a fetched page as an export would write it: ``# title`` then blocks.

    ``page`` is the dict returned by :func:`lofi_pipeline.core.notion_api.fetch_page`.
    """
    body = blocks_to_markdown(page.get("blocks") or [])
    title = (page.get("title") or "").strip()
    return f"# {title}\n{body}" if title else body


def _render(blocks: list[dict[str, Any]], lines: list[str], *, indent: str) -> None:
    counter = 0  # position within the current run of numbered items
    for block in blocks:
        kind = block.get("type", "")
        if kind != "numbered_list_item":
            counter = 0
        children = block.get("children") or []
        data = block.get(kind, {}) or {}
        text = _block_text(block)

        if kind in ("heading_1", "heading_2", "heading_3"):
            lines.append(f"{indent}{'#' * int(kind[-1])} {text}")
            _render(children, lines, indent=indent)
        elif kind == "paragraph":
            lines.extend(f"{indent}{part}" if part else "" for part in text.split("\n"))
            _render(children, lines, indent=indent + "  ")
        elif kind == "to_do":
            mark = "x" if data.get("checked") else " "
            lines.append(f"{indent}- [{mark}] {text}")
            _render(children, lines, indent=indent + "  ")
        elif kind == "bulleted_list_item":
            lines.append(f"{indent}- {text}")
            _render(children, lines, indent=indent + "  ")
        elif kind == "numbered_list_item":
            if counter == 0:
                start = data.get("list_start_index")
                counter = int(start) if isinstance(start, int) and start > 0 else 1
            else:
                counter += 1
            lines.append(f"{indent}{counter}. {text}")
            _render(children, lines, indent=indent + "  ")
        elif kind in ("quote", "callout"):
            emoji = _emoji(block) if kind == "callout" else ""
            body = f"{emoji} {text}" if emoji and text else (emoji or text)
            for part in body.split("\n"):
                lines.append(f"{indent}> {part}" if part else f"{indent}>")
            sub: list[str] = []
            _render(children, sub, indent="")
            lines.extend(f"{indent}> {s}" if s else f"{indent}>" for s in sub)
        elif kind == "divider":
            lines.append(f"{indent}---")
        elif kind == "code":
            lang = data.get("language") or ""
            plain = "".join(r.get("plain_text") or (r.get("text") or {}).get("content", "")
                            for r in data.get("rich_text") or [])
            lines.append(f"{indent}```{lang if lang != 'plain text' else ''}")
            lines.extend(f"{indent}{part}" for part in plain.split("\n"))
            lines.append(f"{indent}```")
        elif kind == "table":
            header = bool(data.get("has_column_header"))
            rows = [c for c in children if c.get("type") == "table_row"]
            for n, row in enumerate(rows):
                cells = [rich_text_to_markdown(cell)
                         for cell in (row.get("table_row") or {}).get("cells", [])]
                # A line break inside a cell stays a line break, as in the exports
                # ("rows spread over two lines"); the parser joins them back.
                row_text = "| " + " | ".join(cells) + " |"
                lines.extend(f"{indent}{part}" for part in row_text.split("\n"))
                if n == 0 and header:
                    lines.append(f"{indent}| " + " | ".join("---" for _ in cells) + " |")
        elif kind == "child_page":
            lines.append(f"{indent}{data.get('title', '')}")
        elif kind in _CONTAINERS:
            if text:
                lines.append(f"{indent}{text}")
            _render(children, lines, indent=indent)
        else:
            # Images, files, embeds, equations …: keep any caption or text, then children.
            caption = rich_text_to_markdown(data.get("caption")) if isinstance(data, dict) else ""
            if text or caption:
                lines.append(f"{indent}{text or caption}")
            _render(children, lines, indent=indent)
