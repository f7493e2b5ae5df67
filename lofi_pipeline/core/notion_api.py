"""Read track pages from the live Notion API with the official ``notion-client``.

Rate limits are notion-client's job: its ``_execute_with_retry`` already honours
``Retry-After`` on 429 (and backs off exponentially on 500/503 for GETs), so
:func:`make_client` only configures how many retries and how long a wait may
be. Paging is ``notion_client.helpers.iterate_paginated_api``. This module adds
what the client does not do: fetching nested children (toggles, columns,
synced blocks, tables) without recursion, so a list nested a thousand levels
deep is read like any other; listing the pages under a parent page or
database; and turning API errors into :class:`NotionAccessError` messages a
user can act on (share the page with the integration, check the token).

The token is checked by :func:`lofi_pipeline.core.secrets.validate_token`
before the HTTP client sees it, and every message built here passes
:func:`lofi_pipeline.core.secrets.scrub`, so it never appears in a message or
a log line.

Notion API version 2025-09-03 (notion-client 3.1's default) moved database
queries to *data sources*: a database lists its ``data_sources`` and each is
queried with ``data_sources.query``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Callable

import httpx
from notion_client import APIResponseError, Client
from notion_client.client import ClientOptions, RetryOptions
from notion_client.errors import HTTPResponseError, RequestTimeoutError
from notion_client.helpers import iterate_paginated_api

from lofi_pipeline.core.errors import NotionAccessError
from lofi_pipeline.core.notion import page_id_from_url
from lofi_pipeline.core.secrets import register_secret, scrub, validate_token

log = logging.getLogger(__name__)

#: Largest page the API hands out for block children and queries.
PAGE_SIZE = 100
# Blocks whose children are other pages' content, never this page's.
_SEPARATE_PAGES = {"child_page", "child_database"}
# Containers that may hold child pages when listing a parent page.
_LISTING_CONTAINERS = {"toggle", "column_list", "column", "synced_block"}


def make_client(token: str, *, base_url: str | None = None, timeout_s: float = 30.0,
                max_retries: int = 5, max_retry_delay_s: float = 60.0) -> Client:
    """Build a ``notion_client.Client`` set up for batch imports.

    Parameters
    ----------
    token
        Integration secret (the caller reads it with
        :func:`lofi_pipeline.core.secrets.notion_token`).
    base_url
        API root, e.g. a local test server (``http://127.0.0.1:PORT``); default
        is the real ``https://api.notion.com``.
    timeout_s
        Per-request timeout, seconds.
    max_retries
        Retries on 429 (and 500/503 for reads) before giving up.
    max_retry_delay_s
        Upper bound on one wait, seconds; ``Retry-After`` is honoured up to it.

    Raises
    ------
    ConfigError
        When the token is empty, has whitespace inside it or a character that
        is not printable ASCII (an HTTP header would fail later with the token
        quoted in the message). The message never contains the token.
    """
    token = validate_token(token, name="NOTION_TOKEN")
    register_secret(token)
    options = ClientOptions(
        auth=token,
        timeout_ms=int(timeout_s * 1000),
        retry=RetryOptions(max_retries=max_retries, initial_retry_delay_ms=500,
                           max_retry_delay_ms=int(max_retry_delay_s * 1000)),
        # notion-client logs to stdout by default; route it through logging instead.
        logger=logging.getLogger("lofi_pipeline.notion_client"),
        log_level=logging.WARNING,
    )
    if base_url:
        options.base_url = base_url.rstrip("/")
    return Client(options)


def _scrub(client: Client, text: str) -> str:
    token = getattr(getattr(client, "options", None), "auth", None)
    if isinstance(token, str) and token:
        text = text.replace(token, "***")  # even a token shorter than scrub's minimum
    return scrub(text)


def _access_error(client: Client, error: Exception, *, what: str, object_id: str) -> NotionAccessError:
    """A user-facing error for a failed call on ``what`` (e.g. 'page') ``object_id``."""
    if isinstance(error, HTTPResponseError):
        status = error.status
        code = getattr(error.code, "value", error.code)
        detail = _scrub(client, str(error))
        if status == 401:
            return NotionAccessError(
                f"Notion rejected the token (401 unauthorized) while reading {what} {object_id}: "
                f"check NOTION_TOKEN, and share the {what} with your integration "
                "(page ••• menu → Connections → add the integration)")
        if status in (403, 404):
            return NotionAccessError(
                f"Notion {what} {object_id} is not available ({status} {code}): share the "
                f"{what} with your integration (page ••• menu → Connections → add the "
                f"integration) and check the id. Notion said: {detail}")
        if status == 429:
            return NotionAccessError(
                f"Notion kept rate-limiting requests for {what} {object_id} (429) after the "
                "retries; wait a minute and run the import again")
        return NotionAccessError(f"Notion API error {status} ({code}) while reading "
                                 f"{what} {object_id}: {detail}")
    if isinstance(error, RequestTimeoutError):
        return NotionAccessError(f"Notion API timed out while reading {what} {object_id}; "
                                 "try again or raise the timeout")
    if isinstance(error, httpx.HTTPError):
        return NotionAccessError(f"cannot reach the Notion API while reading {what} {object_id}: "
                                 f"{type(error).__name__}: {_scrub(client, str(error))}")
    return NotionAccessError(f"Notion request for {what} {object_id} failed: "
                             f"{type(error).__name__}: {_scrub(client, str(error))}")


def _call(client: Client, fn: Callable[..., Any], *, what: str, object_id: str, **kwargs: Any) -> Any:
    try:
        return fn(**kwargs)
    except (HTTPResponseError, RequestTimeoutError, httpx.HTTPError) as error:
        raise _access_error(client, error, what=what, object_id=object_id) from None


def _paginate(client: Client, fn: Callable[..., Any], *, what: str, object_id: str,
              **kwargs: Any) -> list[dict[str, Any]]:
    """Every result of a paginated endpoint (notion-client's helper does the cursors)."""
    def page(**args: Any) -> Any:
        return _call(client, fn, what=what, object_id=object_id, **args)

    return list(iterate_paginated_api(page, page_size=PAGE_SIZE, **kwargs))


def list_block_children(client: Client, block_id: str, *, page_id: str | None = None,
                        recursive: bool = True) -> list[dict[str, Any]]:
    """All children of a block or page, following pagination.

    With ``recursive`` each block that ``has_children`` gets its own children
    under ``"children"`` (toggles, columns, synced blocks, table rows, nested list
    items); child pages and child databases are not entered. The walk keeps its
    own queue instead of recursing, so nesting depth is limited by memory only.
    ``page_id`` is only used to name the page in errors.
    """
    owner = page_id or block_id

    def children_of(source_id: str) -> list[dict[str, Any]]:
        return _paginate(client, client.blocks.children.list, what="page", object_id=owner,
                         block_id=source_id)

    top = children_of(block_id)
    if not recursive:
        return top
    pending = [top]
    while pending:
        for block in pending.pop():
            kind = block.get("type")
            if not block.get("has_children") or kind in _SEPARATE_PAGES:
                continue
            source_id = block["id"]
            synced_from = (block.get("synced_block") or {}).get("synced_from") or {}
            if kind == "synced_block" and synced_from.get("block_id"):
                # A duplicate synced block shows the original's content.
                source_id = synced_from["block_id"]
            block["children"] = children_of(source_id)
            pending.append(block["children"])
    return top


def page_title(page: dict[str, Any]) -> str:
    """The plain-text title of a page object (its ``title`` property)."""
    for prop in (page.get("properties") or {}).values():
        if isinstance(prop, dict) and prop.get("type") == "title":
            return "".join(t.get("plain_text") or (t.get("text") or {}).get("content", "")
                           for t in prop.get("title") or []).strip()
    return ""


def fetch_page(client: Client, page_id: str) -> dict[str, Any]:
    """Fetch a page and all its blocks.

    Parameters
    ----------
    client
        From :func:`make_client`.
    page_id
        Page id or URL in any form :func:`page_id_from_url` accepts.

    Returns
    -------
    dict
        ``{"id", "title", "last_edited_time", "url", "blocks"}``; ``blocks`` are
        nested (children under ``"children"``), ready for ``blocks_to_markdown``.

    Raises
    ------
    NotionAccessError
        401/403/404 (share the page with the integration), rate limits that
        outlast the retries, timeouts and network errors.
    """
    pid = page_id_from_url(page_id)
    page = _call(client, client.pages.retrieve, what="page", object_id=pid, page_id=pid)
    blocks = list_block_children(client, pid, page_id=pid)
    return {
        "id": page.get("id", pid),
        "title": page_title(page),
        "last_edited_time": page.get("last_edited_time"),
        "url": page.get("url"),
        "blocks": blocks,
    }


def _page_entry(page: dict[str, Any]) -> dict[str, Any]:
    return {"id": page["id"], "title": page_title(page),
            "last_edited_time": page.get("last_edited_time")}


def _database_pages(client: Client, database: dict[str, Any]) -> list[dict[str, Any]]:
    db_id = database["id"]
    sources = database.get("data_sources")
    pages: list[dict[str, Any]] = []
    if sources:
        for source in sources:
            pages.extend(_paginate(client, client.data_sources.query, what="data source",
                                   object_id=source["id"], data_source_id=source["id"]))
    else:
        # API versions before 2025-09-03 query the database itself.
        def query(**kwargs: Any) -> Any:
            body = {k: v for k, v in kwargs.items() if v is not None}  # no start_cursor: null
            return client.request(path=f"databases/{db_id}/query", method="POST", body=body)
        pages = _paginate(client, query, what="database", object_id=db_id)
    return [_page_entry(p) for p in pages
            if p.get("object") == "page" and not p.get("archived") and not p.get("in_trash")]


def _child_pages_of_block(client: Client, block_id: str, owner: str) -> list[dict[str, Any]]:
    """Child pages and database pages under a block, in page order (no recursion)."""
    found: list[dict[str, Any]] = []

    def children_of(source_id: str) -> list[dict[str, Any]]:
        return _paginate(client, client.blocks.children.list, what="page", object_id=owner,
                         block_id=source_id)

    # A stack of iterators keeps page order while entering containers depth-first.
    stack = [iter(children_of(block_id))]
    while stack:
        block = next(stack[-1], None)
        if block is None:
            stack.pop()
            continue
        kind = block.get("type")
        if block.get("archived") or block.get("in_trash"):
            continue
        if kind == "child_page":
            # A child_page block's own timestamps need not follow edits inside the page;
            # the page object's last_edited_time does, and the sync sensor's cursor relies on it.
            page = _call(client, client.pages.retrieve, what="page", object_id=block["id"],
                         page_id=block["id"])
            found.append({"id": block["id"], "title": (block.get("child_page") or {}).get("title", ""),
                          "last_edited_time": page.get("last_edited_time") or block.get("last_edited_time")})
        elif kind == "child_database":
            database = _call(client, client.databases.retrieve, what="database",
                             object_id=block["id"], database_id=block["id"])
            found.extend(_database_pages(client, database))
        elif kind in _LISTING_CONTAINERS and block.get("has_children"):
            stack.append(iter(children_of(block["id"])))
    return found


def list_child_pages(client: Client, parent_id: str, *,
                     edited_after: str | None = None) -> list[dict[str, Any]]:
    """Pages under a parent page or in a database (for ``lofi import --all --parent``).

    Parameters
    ----------
    parent_id
        Id or URL of a page (its child pages and inline databases are listed) or
        of a database (all pages of its data sources).
    edited_after
        ISO 8601 time; when given, only pages edited strictly later are returned
        (a sensor's cursor).

    Returns
    -------
    list of dict
        ``{"id", "title", "last_edited_time"}`` per page, in Notion's order.
    """
    pid = page_id_from_url(parent_id)
    try:
        database = client.databases.retrieve(database_id=pid)
    except APIResponseError as error:
        if error.status not in (400, 404):
            raise _access_error(client, error, what="database", object_id=pid) from None
        database = None  # not a database: read it as a page
    except (HTTPResponseError, RequestTimeoutError, httpx.HTTPError) as error:
        raise _access_error(client, error, what="database", object_id=pid) from None
    if database is not None and database.get("object") == "database":
        pages = _database_pages(client, database)
    else:
        pages = _child_pages_of_block(client, pid, pid)
    if edited_after:
        cutoff = _when(edited_after)
        pages = [p for p in pages if p.get("last_edited_time") is None
                 or _when(p["last_edited_time"]) > cutoff]
    return pages


def _when(iso: str) -> datetime:
    when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
