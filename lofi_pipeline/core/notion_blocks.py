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
* nesting depth is not limited by Python's recursion limit (the walk keeps
  its own stack);
* rich text keeps bold (``**x**``), italic (``*x*``), strikethrough (``~~x~~``),
  inline code (backticks) and links (``[x](url)``).

Blocks must already carry their children under the key ``"children"``
(:func:`lofi_pipeline.core.notion_api.fetch_page` attaches them).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

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


class _Frame:
    """One level of the walk: the blocks left to write, where and how."""

    __slots__ = ("blocks", "indent", "out", "counter", "on_done")

    def __init__(self, blocks: list[dict[str, Any]], indent: str, out: list[str],
                 on_done: Callable[[], None] | None = None):
        self.blocks: Iterator[dict[str, Any]] = iter(blocks)
        self.indent = indent
        self.out = out
        self.counter = 0  # position within the current run of numbered items
        self.on_done = on_done


_END = object()


def _render(blocks: list[dict[str, Any]], lines: list[str], *, indent: str) -> None:
    """Write ``blocks`` and their children depth-first into ``lines``.

    The walk keeps its own stack rather than recursing: a list nested 1,200
    levels deep (the API hands such pages out) is written like a flat one.
    """
    stack = [_Frame(blocks, indent, lines)]
    while stack:
        frame = stack[-1]
        block = next(frame.blocks, _END)
        if block is _END:
            stack.pop()
            if frame.on_done is not None:
                frame.on_done()
            continue
        assert isinstance(block, dict)
        out, ind = frame.out, frame.indent
        kind = block.get("type", "")
        if kind != "numbered_list_item":
            frame.counter = 0
        children = block.get("children") or []
        data = block.get(kind, {}) or {}
        text = _block_text(block)
        # Children are written before the next sibling: push them on top.
        child_indent: str | None = None

        if kind in ("heading_1", "heading_2", "heading_3"):
            out.append(f"{ind}{'#' * int(kind[-1])} {text}")
            child_indent = ind
        elif kind == "paragraph":
            out.extend(f"{ind}{part}" if part else "" for part in text.split("\n"))
            child_indent = ind + "  "
        elif kind == "to_do":
            mark = "x" if data.get("checked") else " "
            out.append(f"{ind}- [{mark}] {text}")
            child_indent = ind + "  "
        elif kind == "bulleted_list_item":
            out.append(f"{ind}- {text}")
            child_indent = ind + "  "
        elif kind == "numbered_list_item":
            if frame.counter == 0:
                start = data.get("list_start_index")
                frame.counter = int(start) if isinstance(start, int) and start > 0 else 1
            else:
                frame.counter += 1
            out.append(f"{ind}{frame.counter}. {text}")
            child_indent = ind + "  "
        elif kind in ("quote", "callout"):
            emoji = _emoji(block) if kind == "callout" else ""
            body = f"{emoji} {text}" if emoji and text else (emoji or text)
            for part in body.split("\n"):
                out.append(f"{ind}> {part}" if part else f"{ind}>")
            if children:
                # Children are written on their own, then quoted line by line.
                sub: list[str] = []

                def quote(sub: list[str] = sub, out: list[str] = out, ind: str = ind) -> None:
                    out.extend(f"{ind}> {x}" if x else f"{ind}>" for x in sub)

                stack.append(_Frame(children, "", sub, on_done=quote))
        elif kind == "divider":
            out.append(f"{ind}---")
        elif kind == "code":
            lang = data.get("language") or ""
            plain = "".join(r.get("plain_text") or (r.get("text") or {}).get("content", "")
                            for r in data.get("rich_text") or [])
            out.append(f"{ind}```{lang if lang != 'plain text' else ''}")
            out.extend(f"{ind}{part}" for part in plain.split("\n"))
            out.append(f"{ind}```")
        elif kind == "table":
            header = bool(data.get("has_column_header"))
            rows = [c for c in children if c.get("type") == "table_row"]
            for n, row in enumerate(rows):
                cells = [rich_text_to_markdown(cell)
                         for cell in (row.get("table_row") or {}).get("cells", [])]
                # A line break inside a cell stays a line break, as in the exports
                # ("rows spread over two lines"); the parser joins them back.
                row_text = "| " + " | ".join(cells) + " |"
                out.extend(f"{ind}{part}" for part in row_text.split("\n"))
                if n == 0 and header:
                    out.append(f"{ind}| " + " | ".join("---" for _ in cells) + " |")
        elif kind == "child_page":
            out.append(f"{ind}{data.get('title', '')}")
        elif kind in _CONTAINERS:
            if text:
                out.append(f"{ind}{text}")
            child_indent = ind
        else:
            # Images, files, embeds, equations …: keep any caption or text, then children.
            caption = rich_text_to_markdown(data.get("caption")) if isinstance(data, dict) else ""
            if text or caption:
                out.append(f"{ind}{text or caption}")
            child_indent = ind
        if child_indent is not None and children:
            stack.append(_Frame(children, child_indent, out))


def flatten_blocks(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Nested blocks as a flat list in page order, each with its ``"depth"`` (0 = top).

    For storing a fetched page as JSON: ``json.dumps`` recurses once per level
    and fails on a list nested a thousand levels deep; the flat form has none.
    :func:`nest_blocks` is the inverse.
    """
    flat: list[dict[str, Any]] = []
    stack: list[tuple[Iterator[dict[str, Any]], int]] = [(iter(blocks), 0)]
    while stack:
        items, depth = stack[-1]
        block = next(items, _END)
        if block is _END:
            stack.pop()
            continue
        assert isinstance(block, dict)
        flat.append({**{k: v for k, v in block.items() if k != "children"}, "depth": depth})
        if block.get("children"):
            stack.append((iter(block["children"]), depth + 1))
    return flat


def nest_blocks(flat: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Inverse of :func:`flatten_blocks`: children back under ``"children"``."""
    top: list[dict[str, Any]] = []
    parents: list[list[dict[str, Any]]] = [top]  # parents[d] receives blocks of depth d
    for item in flat:
        depth = int(item.get("depth", 0))
        block = {k: v for k, v in item.items() if k != "depth"}
        block["children"] = []
        del parents[depth + 1:]
        parents[min(depth, len(parents) - 1)].append(block)
        parents.append(block["children"])
    return top
