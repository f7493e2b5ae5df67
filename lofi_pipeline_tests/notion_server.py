"""A local Notion-compatible HTTP server for tests (stdlib only).

It speaks enough of the Notion REST API (version 2025-09-03) for the real
``notion-client`` to import track pages from it through ``base_url``:

* ``GET  /v1/pages/{id}`` — a page object with its title property;
* ``GET  /v1/blocks/{id}/children`` — block children with ``page_size`` /
  ``start_cursor`` pagination (``has_more``, ``next_cursor``);
* ``GET  /v1/databases/{id}`` — a database listing one data source;
* ``POST /v1/data_sources/{id}/query`` — the database's pages, paginated;
* ``Authorization: Bearer <token>`` is checked (401 otherwise); unknown ids
  give 404 ``object_not_found``; scripted failures give 429 (with
  ``Retry-After``), 401, 403, 404 or 500.

Pages are given as Markdown (converted to blocks by :func:`markdown_to_blocks`,
the first ``# heading`` becoming the page title) or as hand-built block lists::

    with NotionTestServer(pages={page_id: markdown}, token="secret") as srv:
        client = make_client("secret", base_url=srv.base_url)
        srv.fail_next(2, status=429, retry_after=0)
        page = fetch_page(client, page_id)
        srv.requests  # [(method, path, query), ...]

``parents={parent_id: [child ids]}`` makes a parent page with ``child_page``
blocks; ``databases={db_id: [page ids]}`` makes a database.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

EDITED = "2025-11-01T10:00:00.000Z"
_NAMESPACE = uuid.UUID("8a6a7c1e-4f6b-4c1e-9a55-0d1f1e0b7a11")


def dashed(page_id: str) -> str:
    """A page id as a dashed UUID (accepts 32 hex or dashed)."""
    return str(uuid.UUID(page_id.replace("-", "")))


# ----------------------------------------------------------- markdown → blocks

def rich_text(text: str) -> list[dict[str, Any]]:
    """Rich-text items for ``text``, reading ``**bold**`` and ``\\`code\\``` spans."""
    items = []
    for part in re.split(r"(\*\*[^*]+\*\*|`[^`]+`)", text):
        if not part:
            continue
        bold = part.startswith("**") and part.endswith("**") and len(part) > 4
        code = part.startswith("`") and part.endswith("`") and len(part) > 2
        content = part[2:-2] if bold else part[1:-1] if code else part
        items.append({
            "type": "text",
            "text": {"content": content, "link": None},
            "annotations": {"bold": bold, "italic": False, "strikethrough": False,
                            "underline": False, "code": code, "color": "default"},
            "plain_text": content,
            "href": None,
        })
    return items


def _block(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"object": "block", "type": kind, kind: data, "children": []}


def _text_block(kind: str, text: str, **extra: Any) -> dict[str, Any]:
    data = {"rich_text": rich_text(text), "color": "default", **extra}
    return _block(kind, data)


def markdown_to_blocks(markdown: str) -> list[dict[str, Any]]:
    """Blocks (children nested under ``"children"``) for a Markdown track page.

    The inverse of ``blocks_to_markdown`` for the Markdown our fixtures use: one
    block per line, a blank line is an empty paragraph, ``| a | b |`` runs are a
    table (a ``|---|`` row marks a column header), lines indented by two spaces
    under a list item are its children.
    """
    top: list[dict[str, Any]] = []
    # Stack of (indent, children list) to attach indented list children.
    stack: list[tuple[int, list[dict[str, Any]]]] = [(-1, top)]
    lines = markdown.splitlines()
    i = 0
    prev_numbered: int | None = None
    while i < len(lines):
        raw = lines[i]
        stripped = raw.lstrip(" ")
        indent = len(raw) - len(stripped)
        while len(stack) > 1 and indent <= stack[-1][0]:
            stack.pop()
        target = stack[-1][1]
        s = stripped.rstrip()
        block: dict[str, Any]
        numbered_now: int | None = None
        if not s:
            block = _text_block("paragraph", "")
        elif s.startswith("```"):
            lang = s[3:].strip() or "plain text"
            body = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                body.append(lines[i][indent:])
                i += 1
            block = _block("code", {"rich_text": rich_text_plain("\n".join(body)),
                                    "language": lang, "caption": []})
        elif re.match(r"^#{1,6}\s", s):
            level = min(3, len(s) - len(s.lstrip("#")))
            block = _text_block(f"heading_{level}", s.lstrip("#").strip(), is_toggleable=False)
        elif s.startswith("|"):
            rows = []
            header = False
            while i < len(lines) and lines[i].strip().startswith("|"):
                row = lines[i].strip()
                # A cell with a line break: the row goes on until a line ends with "|".
                while not row.endswith("|") and i + 1 < len(lines):
                    i += 1
                    row += "\n" + lines[i].strip()
                cells = [c.strip(" ") for c in row.strip("|").split("|")]
                if all(re.fullmatch(r":?-{2,}:?", c) for c in cells):
                    header = header or len(rows) == 1
                else:
                    rows.append(cells)
                i += 1
            i -= 1
            width = max(len(r) for r in rows)
            block = _block("table", {"table_width": width, "has_column_header": header,
                                     "has_row_header": False})
            block["children"] = [
                _block("table_row", {"cells": [rich_text(c) for c in r + [""] * (width - len(r))]})
                for r in rows]
        elif s == "---":
            block = _block("divider", {})
        elif m := re.match(r"^[-*]\s+\[( |x|X)\]\s?(.*)$", s):
            block = _text_block("to_do", m.group(2), checked=m.group(1) != " ")
        elif m := re.match(r"^[-*]\s+(.*)$", s):
            block = _text_block("bulleted_list_item", m.group(1))
        elif m := re.match(r"^(\d+)\.\s+(.*)$", s):
            number = int(m.group(1))
            extra = {}
            if prev_numbered is None and number != 1:
                extra["list_start_index"] = number
            block = _text_block("numbered_list_item", m.group(2), **extra)
            numbered_now = number
        elif s.startswith(">"):
            block = _text_block("quote", s[1:].strip())
        else:
            block = _text_block("paragraph", s)
        prev_numbered = numbered_now
        target.append(block)
        if block["type"] in ("to_do", "bulleted_list_item", "numbered_list_item"):
            stack.append((indent, block["children"]))
        i += 1
    return top


def rich_text_plain(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": {"content": text, "link": None},
             "annotations": {"bold": False, "italic": False, "strikethrough": False,
                             "underline": False, "code": False, "color": "default"},
             "plain_text": text, "href": None}]


def split_title(markdown: str) -> tuple[str, str]:
    """(page title, body) — an export's first ``# heading`` is the page title."""
    lines = markdown.splitlines()
    if lines and re.match(r"^#\s", lines[0]):
        return lines[0][2:].strip(), "\n".join(lines[1:]) + ("\n" if len(lines) > 1 else "")
    return "", markdown


# ------------------------------------------------------------------ the server

class NotionTestServer:
    """A threaded local Notion API (see the module docstring).

    Parameters
    ----------
    pages
        ``{page_id: markdown or list of blocks}``.
    token
        The only bearer token accepted.
    titles
        Optional page titles (default: the Markdown's first ``# heading``).
    parents
        ``{parent_page_id: [child page ids]}``; parent pages may also be in ``pages``.
    databases
        ``{database_id: [page ids]}``.
    max_page_size
        The server's cap on ``page_size`` (the real API caps at 100); small values
        force pagination.
    echo_auth
        Quote the request's ``Authorization`` header in every error message, as a
        misbehaving proxy or gateway might: the hostile case for our scrubber.
    """

    def __init__(self, *, pages: dict[str, Any] | None = None, token: str = "secret",
                 titles: dict[str, str] | None = None,
                 parents: dict[str, list[str]] | None = None,
                 databases: dict[str, list[str]] | None = None,
                 edited: dict[str, str] | None = None,
                 max_page_size: int = 100, echo_auth: bool = False):
        self.token = token
        self.echo_auth = echo_auth
        self.max_page_size = max_page_size
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self._failures: deque[tuple[int, int | None, str | None]] = deque()
        self._errors: dict[str, int] = {}
        self._lock = threading.Lock()
        self.pages: dict[str, dict[str, Any]] = {}
        self.blocks: dict[str, dict[str, Any]] = {}  # block id → block (with children)
        self.children: dict[str, list[str]] = {}  # parent id → child block ids
        self.databases: dict[str, list[str]] = {}
        self.data_sources: dict[str, str] = {}  # data source id → database id
        for pid, content in (pages or {}).items():
            self.add_page(pid, content, title=(titles or {}).get(pid),
                          edited=(edited or {}).get(pid, EDITED))
        for parent, kids in (parents or {}).items():
            self.add_parent(parent, kids)
        for db, kids in (databases or {}).items():
            self.add_database(db, kids)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ................................................................ content
    def add_page(self, page_id: str, content: Any, *, title: str | None = None,
                 edited: str = EDITED) -> None:
        pid = dashed(page_id)
        if isinstance(content, str):
            md_title, body = split_title(content)
            blocks = markdown_to_blocks(body)
            title = title if title is not None else md_title
        else:
            blocks = content  # _register stores its own shallow copies
        self.pages[pid] = {
            "object": "page", "id": pid, "created_time": EDITED, "last_edited_time": edited,
            "archived": False, "in_trash": False,
            "parent": {"type": "workspace", "workspace": True},
            "url": f"https://www.notion.so/{re.sub(r'[^A-Za-z0-9]+', '-', title or 'page').strip('-')}"
                   f"-{pid.replace('-', '')}",
            "properties": {"title": {"id": "title", "type": "title",
                                     "title": rich_text_plain(title or "")}},
        }
        self.children[pid] = self._register(pid, blocks, edited)

    def _register(self, parent_id: str, blocks: list[dict[str, Any]], edited: str) -> list[str]:
        """Store ``blocks`` and their descendants; return the top-level ids.

        Walks with its own stack (a list nested 1,200 levels deep is a test case)
        and copies each block shallowly, leaving the caller's blocks untouched.
        """
        top: list[str] = []
        pending = [(parent_id, blocks, top)]
        while pending:
            parent, items, ids = pending.pop()
            for n, block in enumerate(items):
                bid = block.get("id") or str(uuid.uuid5(_NAMESPACE, f"{parent}/{n}"))
                kids = block.get("children") or []
                stored = {k: v for k, v in block.items() if k != "children"}
                stored.update({"object": "block", "id": bid, "has_children": bool(kids)
                               or bool(block.get("has_children")),
                               "created_time": EDITED, "last_edited_time": edited,
                               "archived": False, "in_trash": False,
                               "parent": {"type": "block_id", "block_id": parent}})
                self.blocks[bid] = stored
                self.children[bid] = []
                pending.append((bid, kids, self.children[bid]))
                ids.append(bid)
        return top

    def add_parent(self, parent_id: str, child_ids: list[str], *, title: str = "Tracks") -> None:
        pid = dashed(parent_id)
        if pid not in self.pages:
            self.add_page(pid, [], title=title)
        for cid in child_ids:
            cid = dashed(cid)
            page = self.pages[cid]
            block = {"object": "block", "id": cid, "type": "child_page",
                     "child_page": {"title": page["properties"]["title"]["title"][0]["plain_text"]},
                     "has_children": True, "created_time": EDITED,
                     "last_edited_time": page["last_edited_time"], "archived": False,
                     "in_trash": False, "parent": {"type": "page_id", "page_id": pid}}
            self.blocks[cid] = block
            self.children[pid].append(cid)

    def add_database(self, database_id: str, page_ids: list[str]) -> None:
        db = dashed(database_id)
        self.databases[db] = [dashed(p) for p in page_ids]
        self.data_sources[str(uuid.uuid5(_NAMESPACE, f"ds/{db}"))] = db

    # ................................................................ scripting
    def fail_next(self, count: int = 1, *, status: int = 429, retry_after: int | None = 0,
                  path_contains: str | None = None) -> None:
        """Answer the next ``count`` matching requests with ``status``."""
        with self._lock:
            for _ in range(count):
                self._failures.append((status, retry_after, path_contains))

    def set_error(self, object_id: str, status: int | None) -> None:
        """Always answer requests about ``object_id`` with ``status`` (None clears)."""
        oid = dashed(object_id)
        if status is None:
            self._errors.pop(oid, None)
        else:
            self._errors[oid] = status

    # ................................................................ lifecycle
    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "start the server first (use it as a context manager)"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "NotionTestServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                server._handle(self, "GET")

            def do_POST(self) -> None:
                server._handle(self, "POST")

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "NotionTestServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ................................................................ handling
    def _send(self, handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any],
              headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            handler.send_header(k, v)
        handler.end_headers()
        handler.wfile.write(data)

    def _error(self, handler: BaseHTTPRequestHandler, status: int, oid: str = "",
               retry_after: int | None = None) -> None:
        codes = {400: ("validation_error", "Invalid request."),
                 401: ("unauthorized", "API token is invalid."),
                 403: ("restricted_resource", "Insufficient permissions for this endpoint."),
                 404: ("object_not_found", f"Could not find object with ID: {oid}. Make sure the "
                                           "relevant pages and databases are shared with your "
                                           "integration."),
                 429: ("rate_limited", "You have been rate limited. Please try again in a few "
                                       "minutes."),
                 500: ("internal_server_error", "Unexpected error occurred.")}
        code, message = codes.get(status, ("internal_server_error", "error"))
        if self.echo_auth:
            message += f" (request header Authorization: {handler.headers.get('Authorization')})"
        headers = {"Retry-After": str(retry_after)} if status == 429 and retry_after is not None else None
        self._send(handler, status, {"object": "error", "status": status, "code": code,
                                     "message": message, "request_id": str(uuid.uuid4())}, headers)

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        url = urlparse(handler.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        body: dict[str, Any] = {}
        length = int(handler.headers.get("Content-Length") or 0)
        if length:
            body = json.loads(handler.rfile.read(length) or b"{}")
        with self._lock:
            self.requests.append((method, url.path, {**query, **body}))
            failure = None
            for n, (status, retry, needle) in enumerate(self._failures):
                if needle is None or needle in url.path:
                    failure = (status, retry)
                    del self._failures[n]
                    break
        if handler.headers.get("Authorization") != f"Bearer {self.token}":
            return self._error(handler, 401)
        if failure is not None:
            return self._error(handler, failure[0], retry_after=failure[1])

        parts = url.path.strip("/").split("/")
        if len(parts) < 3 or parts[0] != "v1":
            return self._error(handler, 400)
        try:
            oid = dashed(parts[2])
        except ValueError:
            return self._error(handler, 400)
        if oid in self._errors:
            return self._error(handler, self._errors[oid], oid)
        resource = parts[1]
        if method == "GET" and resource == "pages" and len(parts) == 3:
            if oid not in self.pages:
                return self._error(handler, 404, oid)
            return self._send(handler, 200, self.pages[oid])
        if method == "GET" and resource == "blocks" and parts[3:] == ["children"]:
            if oid not in self.children:
                return self._error(handler, 404, oid)
            ids = self.children[oid]
            return self._send(handler, 200, self._paged(
                [self.blocks[b] for b in ids], ids, query, {"type": "block", "block": {}}))
        if method == "GET" and resource == "databases" and len(parts) == 3:
            if oid not in self.databases:
                if oid in self.pages:
                    return self._error(handler, 400, oid)
                return self._error(handler, 404, oid)
            sources = [{"id": ds, "name": "Tracks"} for ds, db in self.data_sources.items() if db == oid]
            return self._send(handler, 200, {"object": "database", "id": oid,
                                             "title": rich_text_plain("Tracks"),
                                             "data_sources": sources})
        if method == "POST" and resource == "data_sources" and parts[3:] == ["query"]:
            if oid not in self.data_sources:
                return self._error(handler, 404, oid)
            ids = self.databases[self.data_sources[oid]]
            return self._send(handler, 200, self._paged(
                [self.pages[p] for p in ids], ids, body, {"type": "page_or_data_source",
                                                           "page_or_data_source": {}}))
        return self._error(handler, 400)

    def _paged(self, items: list[dict[str, Any]], ids: list[str], params: dict[str, Any],
               extra: dict[str, Any]) -> dict[str, Any]:
        size = min(int(params.get("page_size") or 100), self.max_page_size)
        start = 0
        cursor = params.get("start_cursor")
        if cursor:
            start = ids.index(cursor)  # the real API's cursor is the next item's id
        chunk = items[start:start + size]
        more = start + size < len(items)
        return {"object": "list", "results": chunk, "has_more": more,
                "next_cursor": ids[start + size] if more else None, **extra}
