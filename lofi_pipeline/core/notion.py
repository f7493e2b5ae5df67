"""Read a track page (Notion Markdown) into a :class:`TrackPlan`.

One parser serves both sources: a Notion "Export → Markdown" file, and the
live API, whose blocks :func:`lofi_pipeline.core.notion_blocks.blocks_to_markdown`
turns into the same Markdown first.

The parser is built on the structure of the *arc section* rather than on any
one page's look. Pages grew over a year of use, so it accepts:

* section headings at any level (H1–H3), numbered or not, with or without emoji,
  and even as plain uppercase paragraphs (``🪩 1. TRACK OVERVIEW``);
* an overview table (``| Field | Value |`` or ``| Field | Example |``) whose rows
  may be missing, run together on one line, or split over two lines;
* arc headings ``Phase 1 — Name (Subtitle)``, ``PHASE 1 – Name``, ``Arc 1: Name``,
  ``🌇 **PHASE 1 — Name**`` and the seed's emoji headers 🌅 💫 🌤 🌙 (arcs 1–4),
  with an optional ``(BPM 45–55)``;
* prompt lines ``- [ ] 1. text``, ``- [x] text — anchor``, ``X 1. "text"`` /
  ``✓ 1. "text"``, numbered items ``1. text`` and plain bullets.

Conventions
-----------
* ``Prompt.number`` is the number as written; unnumbered prompts take their
  1-based position over the whole page (``Prompt.order``).
* ``Prompt.checked``: ``[x]`` and ``✓`` (done) are True, ``[ ]`` and ``X`` (not yet
  generated, the seed's Track 9 style) are False, plain list items are None.
* ``Prompt.text`` is the Suno text as written (surrounding quotes removed);
  ``Prompt.core_text`` drops the page's shared suffix and the dash before it.
* Anything the parser had to guess becomes a warning on ``plan.warnings``;
  input that cannot be a track page raises :class:`PageParseError`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lofi_pipeline.core.errors import LofiError, PageParseError
from lofi_pipeline.core.models import Arc, Prompt, TrackPlan
from lofi_pipeline.core.tracknumbers import (MAX_STORED_INT, TRACK_IN_TITLE, find_track_number,
                                             in_stored_range)

# --------------------------------------------------------------------------- ids

# A dashed UUID or 32 hex digits, not part of a longer hex run.
_ANY_ID = re.compile(
    r"(?<![0-9a-fA-F])(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{32})(?![0-9a-fA-F])")


def _dash(hex32: str) -> str:
    h = hex32.lower()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def page_id_from_url(url_or_id: str) -> str:
    """Return the dashed page id in a Notion URL, slug or bare id.

    Accepts ``https://www.notion.so/ws/Track-20-2a8433e5…?pvs=4``, database
    URLs with ``?v=<view id>`` (the view id is ignored), 32 hex digits, a dashed
    UUID, and export file names such as ``Track 20 2a8433e5….md``.

    Raises
    ------
    LofiError
        When no 32-hex-digit id can be found.
    """
    raw = (url_or_id or "").strip()
    # The page id lives in the path; ?v= (database view) and ?pvs= are noise,
    # and a #fragment names a block inside the page.
    path = re.split(r"[?#]", raw, maxsplit=1)[0]
    for candidate in (path, raw):
        found = list(_ANY_ID.finditer(candidate))
        if found:
            # The id is the last one in the path (a slug comes first).
            return _dash(found[-1].group(0).replace("-", ""))
    raise LofiError(f"could not find a Notion page id in '{raw}': expected a page URL, "
                    "a 32-character hex id or a dashed UUID")


# ---------------------------------------------------------------------- duration

_HOURS = re.compile(r"(\d+(?:[.,]\d+)?)\s*-?\s*(?:hours?|hrs?|h)(?![a-z])", re.IGNORECASE)
_MINUTES = re.compile(r"(\d+(?:[.,]\d+)?)\s*-?\s*(?:minutes?|mins?|m)(?![a-z])", re.IGNORECASE)
_CLOCK = re.compile(r"\b(\d{1,2}):(\d{2})(?::(\d{2}))?\b")


def duration_to_minutes(text: str | None) -> float | None:
    """Read a duration such as ``3 hours``, ``3 hr``, ``1 Hour``, ``2-Hour``,
    ``90 min``, ``1h 30m`` or ``1:30:00`` and return minutes (None if unreadable)."""
    if not text:
        return None
    s = str(text)
    hours = [float(m.group(1).replace(",", ".")) for m in _HOURS.finditer(s)]
    minutes = [float(m.group(1).replace(",", ".")) for m in _MINUTES.finditer(s)]
    if hours or minutes:
        # "3 hours (2h 55m of music)" — take the first of each unit only.
        return (hours[0] * 60 if hours else 0.0) + (minutes[0] if minutes else 0.0)
    clock = _CLOCK.search(s)
    if clock:
        h, m, sec = clock.group(1), clock.group(2), clock.group(3)
        if sec is not None:
            return int(h) * 60 + int(m) + int(sec) / 60
        return int(h) * 60 + int(m)
    return None


# ------------------------------------------------------------------------ lines

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_CHECKBOX = re.compile(r"^[-*+•]\s+\[( |x|X|✓|✔)\]\s*(.*)$")
# Track 9 style: ✓ marks a prompt already generated, X one not generated yet.
_DONE_MARKS = ("✓", "✔", "✅", "☑")
_MARKS = "|".join(("X", *_DONE_MARKS, "✗", "✘", "❌", "☐"))
_MARK = re.compile(rf"^({_MARKS})\s*(\d+)\s*[.)]\s*(.*)$")
_MARK_QUOTED = re.compile(rf"^({_MARKS})\s+([\"“].*)$")
_NUMBERED = re.compile(r"^(\d+)[.)]\s+(.*)$")
_BULLET = re.compile(r"^[-*+•]\s+(.*)$")
_LEADING_NUMBER = re.compile(r"^(?:\*\*)?(\d+)\s*[.)](?:\*\*)?\s+(.*)$")


@dataclass
class _Line:
    no: int  # 1-based line number in the page text
    raw: str
    indent: int
    kind: str  # blank heading table checkbox mark numbered bullet para
    text: str  # content after the list / heading marker
    level: int = 0  # heading level, 7 for a paragraph that acts as a heading
    number: int | None = None
    checked: bool | None = None
    bad_number: str | None = None  # digits written as the number but too large to store


def _number(digits: str) -> tuple[int | None, str | None]:
    """(number, None), or (None, digits) when the library's INTEGER cannot hold it."""
    value = int(digits)
    return (value, None) if in_stored_range(value) else (None, digits)


def _classify(no: int, raw: str) -> _Line:
    expanded = raw.replace("\t", "    ")
    stripped = expanded.lstrip(" \u00a0")
    indent = len(expanded) - len(stripped)
    s = stripped.rstrip()
    # Quotes and callouts exported as "> …" carry ordinary content.
    while s.startswith(">"):
        s = s[1:].lstrip()
    if not s:
        return _Line(no, raw, indent, "blank", "")
    m = _HEADING.match(s)
    if m:
        return _Line(no, raw, indent, "heading", m.group(2).strip(), level=len(m.group(1)))
    if s.startswith("|"):
        return _Line(no, raw, indent, "table", s)
    m = _CHECKBOX.match(s)
    if m:
        number, text, bad = _split_number(m.group(2))
        return _Line(no, raw, indent, "checkbox", text, number=number,
                     checked=m.group(1) != " ", bad_number=bad)
    m = _MARK.match(s)
    if m:
        number, bad = _number(m.group(2))
        return _Line(no, raw, indent, "mark", m.group(3).strip(), number=number,
                     checked=m.group(1) in _DONE_MARKS, bad_number=bad)
    m = _MARK_QUOTED.match(s)
    if m:
        return _Line(no, raw, indent, "mark", m.group(2).strip(),
                     checked=m.group(1) in _DONE_MARKS)
    m = _NUMBERED.match(s)
    if m:
        number, bad = _number(m.group(1))
        return _Line(no, raw, indent, "numbered", m.group(2).strip(), number=number, bad_number=bad)
    m = _BULLET.match(s)
    if m:
        number, text, bad = _split_number(m.group(1))
        return _Line(no, raw, indent, "bullet", text, number=number, bad_number=bad)
    return _Line(no, raw, indent, "para", s)


def _split_number(text: str) -> tuple[int | None, str, str | None]:
    m = _LEADING_NUMBER.match(text.strip())
    if m:
        number, bad = _number(m.group(1))
        return number, m.group(2).strip(), bad
    return None, text.strip(), None


_LIST_KINDS = ("checkbox", "mark", "numbered", "bullet")


def _clean(text: str) -> str:
    """Heading text without Markdown emphasis and leading emoji / symbols."""
    s = text.replace("**", "").replace("__", "").replace("`", "")
    s = re.sub(r"^[^\w\"“”'(\[]+", "", s)
    return s.strip()


def _unquote(text: str) -> str:
    s = text.strip()
    pairs = {'"': '"', "“": "”", "”": "”", "'": "'", "‘": "’", "«": "»"}
    if len(s) >= 2 and s[0] in pairs and s[-1] == pairs[s[0]]:
        return s[1:-1].strip()
    # Track 9 style sometimes closes the quote before trailing punctuation.
    if len(s) >= 3 and s[0] in pairs and s[-2] == pairs[s[0]] and s[-1] in ".,;":
        return s[1:-2].strip()
    return s


# ------------------------------------------------------------------ recognisers

_ARC_WORDS = r"(?:phase|arc|part|act|stage)"
_ARC_HEADING = re.compile(rf"^{_ARC_WORDS}\s*#?\s*(\d+)\b\s*(?:[:—–\-.|]+\s*)?(.*)$", re.IGNORECASE)
# The seed's emoji arc headers, in arc order.
_SEED_EMOJI = {"🌅": 1, "💫": 2, "🌤": 3, "🌙": 4}
_ARC_SECTION = re.compile(r"MUSIC\s+ARC|ARC\s+STRUCTURE|SUNO\s+PROMPTS|PROMPT\s+LIST|^ARCS?$|^PROMPTS$",
                          re.IGNORECASE)
_SECTION_WORDS = re.compile(
    r"OVERVIEW|\bSEO\b|DISCOVERY|DESCRIPTION|VISUAL|THUMBNAIL|CHECKLIST|BRAND|CHAPTER|"
    r"TIMESTAMP|TRACKLIST|TRACK\s+LIST|NOTES\b|ANALYTICS|PERFORMANCE|UPLOAD|PLAYLIST|REVISED|"
    r"PINNED|COMMENT|RELEASE|TAGS\b", re.IGNORECASE)
_NUMBERED_SECTION = re.compile(r"^\d+\s*[.)]\s+\S")
_BPM = re.compile(
    r"\(?\s*(?:BPM\s*[:=]?\s*(\d+(?:\.\d+)?)(?:\s*(?:[–—\-]|to)\s*(\d+(?:\.\d+)?))?"
    r"|(\d+(?:\.\d+)?)(?:\s*(?:[–—\-]|to)\s*(\d+(?:\.\d+)?))?\s*BPM)\s*\)?", re.IGNORECASE)
_ANCHOR_LABEL = re.compile(r"^anchor\s+phrase\b[^:]*?(?::\s*(.*))?$", re.IGNORECASE)
_SUFFIX_LABEL = re.compile(
    r"(?:all|each|every)\s+(?:suno\s+)?(?:prompts?|lines?)\s+(?:must\s+|should\s+|will\s+)?"
    r"ends?\s+with\b\s*:?\s*(.*)$", re.IGNORECASE)
_VISIBLE_LABEL = re.compile(r"^(?:visible\s+(?:hash)?tags|hashtags)\b[^:]*:?\s*(.*)$", re.IGNORECASE)
_HIDDEN_LABEL = re.compile(r"^hidden\s+tags\b[^:]*:?\s*(.*)$", re.IGNORECASE)

_FIELDS = {
    "title": "title", "video title": "title",
    "filename": "output_filename", "file name": "output_filename", "file": "output_filename",
    "output filename": "output_filename",
    "upload schedule": "upload_schedule", "upload": "upload_schedule", "schedule": "upload_schedule",
    "release": "upload_schedule",
    "duration": "duration", "length": "duration", "runtime": "duration",
    "mood arc": "mood_arc", "mood": "mood_arc",
    "ctr target": "ctr_target", "ctr": "ctr_target",
    "retention target": "retention_target", "retention": "retention_target",
}


def _field_key(cell: str) -> str | None:
    key = _clean(cell).rstrip(":").strip().lower()
    key = re.sub(r"\s+", " ", key)
    return _FIELDS.get(key)


def _is_uppercase_title(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return len(letters) >= 3 and sum(c.isupper() for c in letters) >= 0.7 * len(letters)


def _is_headingish(line: _Line) -> bool:
    """A heading, or a short uppercase numbered paragraph acting as one."""
    if line.kind == "heading":
        return True
    if line.kind in ("para", "numbered") and len(line.text) < 90:
        cleaned = _clean(line.raw.strip())
        if _NUMBERED_SECTION.match(cleaned) and _is_uppercase_title(cleaned):
            return True
    return False


def _heading_level(line: _Line) -> int:
    return line.level if line.kind == "heading" else 7


@dataclass
class _ArcHead:
    number: int | None
    name: str
    subtitle: str | None
    bpm: tuple[float, float] | None
    wordless: bool = False  # emoji or a number only: the name comes from the Mood Arc row
    bad_number: str | None = None  # arc number too large to store


_WORDLESS_NUMBER = re.compile(r"\d+")


def _arc_heading(line: _Line, *, allow_paragraph: bool, allow_emoji: bool,
                 allow_wordless: bool = False) -> _ArcHead | None:
    if line.kind == "heading":
        text = line.text
    elif line.kind == "para" and allow_paragraph and len(line.text) < 140:
        text = line.text
    else:
        return None
    plain = text.replace("**", "").replace("__", "").strip()
    cleaned = _clean(plain)
    m = _ARC_HEADING.match(cleaned)
    if m:
        return _split_arc_name(m.group(1), m.group(2))
    if allow_emoji:
        for emoji, number in _SEED_EMOJI.items():
            if plain.startswith(emoji):
                rest = _clean(plain[len(emoji):])
                inner = _ARC_HEADING.match(rest)
                if inner:
                    return _split_arc_name(inner.group(1), inner.group(2))
                head = _split_arc_name(str(number), rest)
                head.wordless = not head.name  # "🌙" or "🌙 (BPM 55–65)" alone
                if not rest and not allow_wordless:
                    return None  # a lone emoji outside an arc section is decoration
                return head
    if allow_wordless and line.kind == "heading":
        return _wordless_arc(plain)
    return None


def _wordless_arc(plain: str) -> _ArcHead | None:
    """``### 🌧️🌧️🌧️``, ``## 🎧``, ``### 3`` or ``### 🌙 2 (BPM 60–70)``: an arc without a name.

    Only headings with no letters at all (once a BPM range is set aside) count:
    "Notes" or "Tracklist" are sections, not arcs.
    """
    bpm_match = _BPM.search(plain)
    rest = (plain[:bpm_match.start()] + " " + plain[bpm_match.end():]) if bpm_match else plain
    if not rest.strip() or any(c.isalpha() for c in rest):
        return None
    digits = _WORDLESS_NUMBER.findall(rest)
    number, bad = _number(digits[0]) if len(digits) == 1 else (None, None)
    return _ArcHead(number, "", None, _bpm_range(bpm_match) if bpm_match else None,
                    wordless=True, bad_number=bad)


def _bpm_range(m: re.Match[str]) -> tuple[float, float]:
    lo = m.group(1) or m.group(3)
    hi = m.group(2) or m.group(4) or lo
    return float(lo), float(hi)


def _split_arc_name(digits: str | None, rest: str) -> _ArcHead:
    number, bad = _number(digits) if digits is not None else (None, None)
    bpm = None
    m = _BPM.search(rest)
    if m:
        bpm = _bpm_range(m)
        rest = (rest[:m.start()] + " " + rest[m.end():]).strip()
        rest = re.sub(r"\(\s*\)", "", rest).strip()
    rest = rest.strip(" —–-:|*\"“”")
    subtitle = None
    m = re.match(r"^(.*?)\s*\((.*)\)\s*$", rest)
    if m and m.group(1).strip():
        rest, subtitle = m.group(1).strip(), m.group(2).strip() or None
    rest = rest.strip(" —–-:|")
    return _ArcHead(number, rest, subtitle, bpm, bad_number=bad)


def _bpm_only(text: str) -> tuple[float, float] | None:
    """A line under an arc heading that is only a BPM range, e.g. ``BPM: 60–70``."""
    s = _clean(text)
    m = _BPM.fullmatch(s.strip())
    return _bpm_range(m) if m else None


# -------------------------------------------------------------------- the parser

class _Builder:
    def __init__(self, text: str, source: str):
        self.source = source
        self.lines = [_classify(i + 1, raw) for i, raw in enumerate(text.splitlines())]
        self.plan = TrackPlan(source=source)
        self.wordless_arcs: list[tuple[Arc, int, str]] = []  # (arc, line, heading text)
        self.reported_lines: set[int] = set()  # list items already named in a warning

    def prompts_follow(self, index: int, phrases: list[str]) -> bool:
        """Whether a list item that looks like a prompt comes before the next heading."""
        for line in self.lines[index + 1:]:
            if _is_headingish(line):
                return False
            if line.kind in _LIST_KINDS and _looks_like_prompt(line, phrases):
                return True
        return False

    def warn(self, message: str, line: int | None = None) -> None:
        where = f"{self.source}, line {line}" if line is not None else self.source
        self.plan.warnings.append(f"{where}: {message}")

    # .................................................................. helpers
    def next_content(self, index: int) -> _Line | None:
        for line in self.lines[index + 1:]:
            if line.kind != "blank":
                return line
        return None

    def section_end(self, index: int) -> int:
        """Index of the next heading of the same or higher rank than line ``index``."""
        level = _heading_level(self.lines[index])
        for j in range(index + 1, len(self.lines)):
            line = self.lines[j]
            if _is_headingish(line) and (_heading_level(line) <= level or _section_like(line)):
                return j
        return len(self.lines)


def _section_like(line: _Line) -> bool:
    cleaned = _clean(line.text if line.kind == "heading" else line.raw.strip())
    if _ARC_HEADING.match(cleaned):
        return False
    return bool(_NUMBERED_SECTION.match(cleaned) or _SECTION_WORDS.search(cleaned)
                or _ARC_SECTION.search(cleaned))


def parse_track_markdown(text: str, *, source: str) -> TrackPlan:
    """Parse one track page written in Notion Markdown.

    Parameters
    ----------
    text
        The page as Markdown (a Notion export, or ``blocks_to_markdown`` output).
    source
        File path, page URL or page id; named in warnings and errors.

    Returns
    -------
    TrackPlan
        With ``warnings`` for anything unusual (arc without prompts, duplicate
        prompt numbers, no arc section, prompts not ending with the anchor…).

    Raises
    ------
    PageParseError
        When the input is empty, binary, or has no heading, overview table or
        arc at all.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PageParseError(source, f"not UTF-8 text ({exc.reason} at byte {exc.start}); "
                                         "expected a Markdown track page") from None
    if text is None or not str(text).strip():
        raise PageParseError(source, "page is empty; expected a Markdown track page with an "
                                     "overview table and a music arc section")
    text = str(text).lstrip("\ufeff")
    _reject_binary(text, source)

    b = _Builder(text, source)
    _parse_overview(b)
    _parse_tags(b)
    _parse_description(b)
    _parse_arcs(b)
    _parse_track_number(b)

    plan = b.plan
    has_heading = any(_is_headingish(line) for line in b.lines)
    has_overview = any(getattr(plan, f) for f in ("title", "output_filename", "duration_minutes",
                                                   "mood_arc", "upload_schedule"))
    if not has_heading and not has_overview and not plan.arcs:
        first = next((line.no for line in b.lines if line.kind != "blank"), 1)
        raise PageParseError(source, "no heading, overview table or arc section found; "
                                     "this does not look like a track page", line=first)
    if plan.title is None and plan.page_title:
        plan.title = _strip_track_prefix(plan.page_title)
        b.warn("no Title row in the overview table; using the page heading as title")
    return plan


def _reject_binary(text: str, source: str) -> None:
    for i, raw in enumerate(text.splitlines()):
        if "\x00" in raw:
            raise PageParseError(source, "contains NUL bytes: binary data, not a Markdown track page",
                                 line=i + 1)
    controls = sum(1 for c in text if unicodedata.category(c) == "Cc" and c not in "\t\n\r\f\v")
    replaced = text.count("\ufffd")
    if controls + replaced > max(8, len(text) // 50):
        raise PageParseError(source, "mostly control characters: binary data, not a Markdown "
                                     "track page")


# ..................................................................... overview

def _table_rows(lines: list[_Line], start: int) -> tuple[list[list[str]], int]:
    """Rows of the table starting at ``start``, joining rows split over lines."""
    rows: list[str] = []
    j = start
    while j < len(lines):
        line = lines[j]
        if line.kind == "table":
            rows.append(line.text)
        elif rows and line.kind != "blank" and not rows[-1].rstrip().endswith("|") \
                and not _is_headingish(line):
            # A row whose value wrapped onto the next line.
            rows[-1] = rows[-1].rstrip() + " " + line.raw.strip()
        else:
            break
        j += 1
    cells = []
    for row in rows:
        parts = [p.strip().replace("\\|", "|") for p in re.split(r"(?<!\\)\|", row)]
        if parts and parts[0] == "":
            parts = parts[1:]
        if parts and parts[-1] == "":
            parts = parts[:-1]
        if all(re.fullmatch(r":?-{2,}:?", p) or not p for p in parts):
            continue  # header separator |---|---|
        cells.append(parts)
    return cells, j


def _parse_overview(b: _Builder) -> None:
    plan = b.plan
    found: dict[str, tuple[str, int]] = {}
    i = 0
    while i < len(b.lines):
        line = b.lines[i]
        if line.kind == "table":
            rows, end = _table_rows(b.lines, i)
            pending: str | None = None
            for row in rows:
                keys = [(k, _field_key(c)) for k, c in enumerate(row)]
                field_at = [k for k, f in keys if f]
                if pending and row and not _field_key(row[0]):
                    # "| Title |" then "| value |" on the next row.
                    found.setdefault(pending, (" | ".join(c for c in row if c), line.no))
                    pending = None
                    continue
                pending = None
                for n, k in enumerate(field_at):
                    stop = field_at[n + 1] if n + 1 < len(field_at) else len(row)
                    value = " | ".join(c for c in row[k + 1:stop] if c)
                    field = keys[k][1]
                    if value:
                        found.setdefault(field, (value, line.no))
                    else:
                        pending = field
            i = end
            continue
        if line.kind in ("para", "bullet"):
            # "Title: …" lines where a page has no table.
            m = re.match(r"^\**([A-Za-z][A-Za-z ]{1,20}?)\**\s*:\**\s*(.+)$", _clean(line.text))
            if m and _field_key(m.group(1)) and _field_key(m.group(1)) not in found:
                found[_field_key(m.group(1))] = (m.group(2).strip(), line.no)
        i += 1

    for field, (value, no) in found.items():
        if field == "duration":
            plan.duration_minutes = duration_to_minutes(value)
            if plan.duration_minutes is None:
                b.warn(f"Duration '{value}' is not a length I can read (expected e.g. '3 hours')", no)
        else:
            setattr(plan, field, value)
    if not found:
        b.warn("no overview table (Title, Filename, Duration …) found")


# ......................................................................... tags

def _label_value(b: _Builder, index: int, same_line: str) -> str | None:
    value = re.sub(r"^\([^)]*\)\s*:?\s*", "", same_line.strip()).strip()
    if value:
        return value
    nxt = b.next_content(index)
    if nxt is None or nxt.kind == "heading" or nxt.kind == "table":
        return None
    if nxt.kind == "para" and (nxt.text.startswith("✅") or nxt.text.rstrip().endswith(":")):
        return None
    return nxt.raw.strip()


def _parse_tags(b: _Builder) -> None:
    plan = b.plan
    for i, line in enumerate(b.lines):
        if line.kind not in ("heading", "para"):
            continue
        cleaned = _clean(line.text)
        m = _VISIBLE_LABEL.match(cleaned)
        if m and not plan.visible_hashtags:
            value = _label_value(b, i, m.group(1)) or ""
            value = value.replace("`", "")
            tags = re.findall(r"#[^\s#,;`]+", value)
            if not tags:
                tags = ["#" + t for t in re.split(r"[,\s]+", value) if t]
            plan.visible_hashtags = tags
            continue
        m = _HIDDEN_LABEL.match(cleaned)
        if m and not plan.hidden_tags:
            value = (_label_value(b, i, m.group(1)) or "").replace("`", "")
            plan.hidden_tags = [t.strip().lstrip("#").strip() for t in value.split(",")
                                if t.strip().lstrip("#").strip()]


def _parse_description(b: _Builder) -> None:
    for i, line in enumerate(b.lines):
        if _is_headingish(line) and re.search(r"DESCRIPTION", _clean(line.text), re.IGNORECASE):
            end = b.section_end(i)
            body = "\n".join(x.raw.rstrip() for x in b.lines[i + 1:end]).strip()
            b.plan.description = body or None
            return


def _strip_track_prefix(heading: str) -> str:
    s = _clean(heading)
    m = TRACK_IN_TITLE.match(s)
    if m:
        s = s[m.end():].lstrip(" —–-:|.")
    return _unquote(s.strip()) or _clean(heading)


def _parse_track_number(b: _Builder) -> None:
    plan = b.plan
    first = next((x for x in b.lines if x.kind != "blank"), None)
    if first is not None and first.kind in ("heading", "para"):
        plan.page_title = _clean(first.text) or None
    if plan.page_title is None:
        heading = next((x for x in b.lines if x.kind == "heading"), None)
        plan.page_title = _clean(heading.text) if heading else None
    # A heading or line that starts with "Track N" says it best; then the
    # file name, title and source, which may carry it anywhere.
    for line in b.lines:
        if line.kind in ("heading", "para"):
            number, problem = find_track_number(_clean(line.text), at_start=True)
            if problem:
                b.warn(f"{problem}; the page's track number is not read from this line", line.no)
            if number is not None:
                plan.track_number = number
                return
    for candidate in (plan.output_filename, plan.title, Path(str(b.source)).name):
        number, problem = find_track_number(candidate)
        if problem:
            b.warn(f"{problem} (in '{_excerpt(candidate)}'); not used as the track number")
        if number is not None:
            plan.track_number = number
            return


# ......................................................................... arcs

@dataclass
class _RawPrompt:
    line: _Line
    arc: Arc
    strong: bool  # checkbox, mark or numbered (not a plain bullet)


def _parse_arcs(b: _Builder) -> None:
    plan = b.plan
    lines = b.lines
    has_section_heading = any(_is_headingish(x) and _ARC_SECTION.search(_clean(x.text))
                              and not _ARC_HEADING.match(_clean(x.text)) for x in lines)
    phase_headings = [x for x in lines if x.kind == "heading"
                      and _ARC_HEADING.match(_clean(x.text.replace("**", "")))]
    seed_emoji = {e for x in lines if x.kind in ("heading", "para")
                  for e in _SEED_EMOJI if x.text.replace("**", "").lstrip().startswith(e)}
    # The seed's emoji headers count outside an explicit arc section only when
    # several of them appear (a lone 🌙 line in a description is not an arc).
    emoji_anywhere = not has_section_heading and not phase_headings and len(seed_emoji) >= 2

    in_section = False
    section_done = False
    arc_level: int | None = None
    current: Arc | None = None
    arc_lines: dict[int, int] = {}
    raw_prompts: list[_RawPrompt] = []
    orphans: list[_Line] = []  # prompt-like lines in the arc section before any arc
    anchor: tuple[str, int] | None = None
    suffix: tuple[str, int] | None = None
    last_prompt_indent: int | None = None
    in_description = True  # lines right under an arc heading describe the arc

    for i, line in enumerate(lines):
        if line.kind == "blank":
            continue
        text_clean = _clean(line.text) if line.kind in ("heading", "para") else ""

        # Anchor phrase and shared suffix declarations (anywhere on the page).
        if line.kind in ("heading", "para") and anchor is None:
            m = _ANCHOR_LABEL.match(text_clean)
            if m:
                value = m.group(1) or ""
                if not value.strip():
                    nxt = b.next_content(i)
                    value = nxt.raw.strip() if nxt is not None and nxt.kind in ("heading", "para") else ""
                    value = re.sub(r"^#+\s*", "", value)
                value = _clean_phrase(value)
                if value:
                    anchor = (value, line.no)
                    continue
        if line.kind in ("heading", "para") and suffix is None:
            m = _SUFFIX_LABEL.search(line.text.replace("**", ""))
            if m:
                value = m.group(1).strip()
                quoted = re.search(r"[\"“]([^\"”]+)[\"”]", value)
                if quoted:
                    value = quoted.group(1)
                elif not value:
                    nxt = b.next_content(i)
                    value = nxt.raw.strip() if nxt is not None and nxt.kind == "para" else ""
                value = _clean_phrase(value)
                if value:
                    suffix = (value, line.no)
                continue

        head = _arc_heading(line, allow_paragraph=in_section,
                            allow_emoji=in_section or emoji_anywhere, allow_wordless=in_section)
        if head is not None and head.wordless and arc_level is not None:
            # A wordless heading is an arc at the arcs' own level; ranked above
            # them only when prompts follow it (else it is a decoration or the
            # next section); ranked below them it is a decoration inside an arc.
            level = _heading_level(line)
            phrases = [found[0] for found in (anchor, suffix) if found]
            if level > arc_level or (level < arc_level and not b.prompts_follow(i, phrases)):
                head = None
        if head is not None:
            if section_done and plan.arcs:
                b.warn(f"arc heading '{line.text}' after the arc section ended is ignored", line.no)
                continue
            in_section = True
            level = _heading_level(line)
            if arc_level is None or not head.wordless:
                arc_level = level if arc_level is None else min(arc_level, level)
            if head.bad_number is not None:
                b.warn(f"arc number {_digits(head.bad_number)} is larger than the library stores "
                       f"(at most {MAX_STORED_INT}); numbered by its position instead", line.no)
            number = head.number if head.number is not None else len(plan.arcs) + 1
            if number in arc_lines:
                b.warn(f"arc number {number} appears twice (lines {arc_lines[number]} and {line.no})",
                       line.no)
            arc_lines.setdefault(number, line.no)
            current = Arc(number=number, name=head.name, subtitle=head.subtitle,
                          bpm_range=head.bpm)
            plan.arcs.append(current)
            if head.wordless:
                b.wordless_arcs.append((current, line.no, line.text))
            in_description = True
            last_prompt_indent = None
            continue

        if _is_headingish(line):
            if not in_section:
                if _ARC_SECTION.search(text_clean or _clean(line.raw)) and not section_done:
                    in_section = True
                    arc_level = None
                continue
            level = _heading_level(line)
            if _section_like(line) or (arc_level is not None and level < arc_level):
                if current is not None or plan.arcs or orphans:
                    in_section = False
                    section_done = True
                elif _ARC_SECTION.search(text_clean):
                    pass  # a second arc-section style heading before any arc
                else:
                    in_section = False
                    section_done = bool(plan.arcs)
                current = None
                continue
            if arc_level is not None and level == arc_level:
                # A sibling heading that is not an arc ("### Notes"): the arc ends here.
                current = None
            continue

        if not in_section:
            continue

        if line.kind in _LIST_KINDS:
            if current is None:
                orphans.append(line)
                continue
            if line.indent >= 2 and last_prompt_indent is not None \
                    and line.indent > last_prompt_indent:
                continue  # a note nested under the prompt above
            raw_prompts.append(_RawPrompt(line, current, strong=line.kind != "bullet"))
            last_prompt_indent = line.indent
            in_description = False
            continue

        if line.kind == "para" and current is not None and in_description:
            bpm = _bpm_only(line.text)
            if bpm and current.bpm_range is None:
                current.bpm_range = bpm
                continue
            desc = line.text.strip()
            if desc.startswith("(") and desc.endswith(")"):
                desc = desc[1:-1].strip()
            current.description = f"{current.description} {desc}" if current.description else desc

    if not plan.arcs and orphans:
        # An arc section with prompts but no arc headings: keep them as one arc.
        implicit = Arc(number=1, name="Prompts")
        plan.arcs.append(implicit)
        raw_prompts = [_RawPrompt(x, implicit, strong=x.kind != "bullet") for x in orphans]
        b.warn("the arc section has prompts but no arc headings (Phase 1 …); "
               "they are kept as a single arc", orphans[0].no)
    elif orphans:
        b.warn(f"{len(orphans)} list item(s) in the arc section before the first arc heading "
               f"are not prompts (lines {_line_list(x.no for x in orphans)})", orphans[0].no)
        b.reported_lines.update(x.no for x in orphans)

    if not plan.arcs:
        b.warn("page has no arc section (no 'MUSIC ARC' heading and no 'Phase 1 …' headings); "
               "no prompts were read")

    _build_prompts(b, raw_prompts, arc_lines)
    _apply_suffix(b, anchor, suffix)
    _fill_arc_names(b)
    _report_lost_prompts(b, [p for p in (plan.prompt_suffix, plan.anchor_phrase) if p])


def _line_list(numbers: Any, limit: int = 12) -> str:
    numbers = list(numbers)
    shown = ", ".join(str(n) for n in numbers[:limit])
    return shown + (f" and {len(numbers) - limit} more" if len(numbers) > limit else "")


def _digits(digits: str, limit: int = 24) -> str:
    return digits if len(digits) <= limit else f"{digits[:limit]}… ({len(digits)} digits)"


# Lines that are list items but clearly not Suno prompts.
_TIMESTAMP_START = re.compile(r"^\(?\d{1,2}:\d{2}")
_LABEL_START = re.compile(r"^[\w /&'’()-]{1,30}:\s")
# Checklist and advice items start with an instruction.
_NOTE_START = re.compile(r"^(?:include|avoid|keep|use|add|check|upload|post|pin|reply|schedule|set|"
                         r"make|create|update|share|test|export|render|write|remember|try|don'?t|"
                         r"do not|note|todo|tip)\b", re.IGNORECASE)
_PROMPT_SEPARATORS = re.compile(r",|\s[+—–|/]\s|\s-\s")


def _looks_like_prompt(line: _Line, phrases: list[str]) -> bool:
    """Whether a list item reads like a Suno prompt: it ends with the page's
    shared suffix / anchor phrase, or is a run of at least three comma- or
    dash-separated descriptors of six words or more (checklist items, chapter
    timestamps, hashtags, links and "Label: value" notes are not)."""
    text = _unquote(line.text.replace("**", "").replace("~~", "").strip())
    if not text:
        return False
    if any(_ends_with(text, p) for p in phrases):
        return True
    if _TIMESTAMP_START.match(text) or _LABEL_START.match(text) or _NOTE_START.match(text):
        return False
    if text.startswith(("#", "http://", "https://", "[")) or text.count("#") >= 2:
        return False
    if text[0].isupper() and text.endswith((".", "!", "?")):
        return False  # a sentence (brand notes, advice); prompts are descriptor runs
    if len(re.findall(r"[\"“”]", text)) >= 4:
        return False  # a list of quoted keywords ("include “lofi”, “rain”")
    return len(text.split()) >= 6 and len(_PROMPT_SEPARATORS.findall(text)) >= 2


def _report_lost_prompts(b: _Builder, phrases: list[str]) -> None:
    """Warn about every list item that looks like a prompt but was not read as one."""
    used = {p.line for p in b.plan.prompts}
    for line in b.lines:
        if line.kind not in _LIST_KINDS or line.no in used or line.no in b.reported_lines:
            continue
        if _looks_like_prompt(line, phrases):
            b.warn(f"list item looks like a Suno prompt but is not under an arc heading, so it "
                   f"was not read as one: '{_excerpt(line.text)}'", line.no)


def _excerpt(text: str, limit: int = 60) -> str:
    """Page text quoted in a warning: one line, no control characters, short."""
    s = " ".join("".join(c for c in text if unicodedata.category(c) != "Cc" or c.isspace()).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _clean_phrase(value: str) -> str:
    s = value.replace("**", "").replace("`", "").strip()
    s = re.sub(r"^[^\w\"“'‘]+", "", s)  # leading dashes, stars, emoji
    s = _unquote(s)
    s = s.strip().strip("\"“”")
    return s.strip()


def _build_prompts(b: _Builder, raw_prompts: list[_RawPrompt], arc_lines: dict[int, int]) -> None:
    plan = b.plan
    # Plain bullets are prompts only in arcs that have no checkbox / numbered
    # prompts: elsewhere they are notes between the prompts.
    strong_arcs = {id(r.arc) for r in raw_prompts if r.strong}
    kept = [r for r in raw_prompts if r.strong or id(r.arc) not in strong_arcs]
    for order, r in enumerate(kept, start=1):
        text = _unquote(r.line.text)
        if r.line.bad_number is not None:
            b.warn(f"prompt number {_digits(r.line.bad_number)} is larger than the library stores "
                   f"(at most {MAX_STORED_INT}); numbered by its position ({order}) instead",
                   r.line.no)
        number = r.line.number if r.line.number is not None else order
        r.arc.prompts.append(Prompt(number=number, order=order, text=text, core_text=text,
                                    checked=r.line.checked if r.strong and r.line.kind != "numbered"
                                    else None, line=r.line.no))
    for arc in plan.arcs:
        where = arc_lines.get(arc.number)
        label = f"arc {arc.number} '{arc.name}'" if arc.name else f"arc {arc.number}"
        if not arc.prompts:
            b.warn(f"{label} has no prompts", where)
            continue
        numbered = [p for p in kept if p.arc is arc and p.line.number is not None]
        if numbered and len(numbered) != len(arc.prompts):
            b.warn(f"{label} mixes numbered and unnumbered prompts; unnumbered ones are "
                   "numbered by their position on the page", where)
        seen: dict[int, int] = {}
        for p in arc.prompts:
            if p.number in seen:
                b.warn(f"{label}: prompt number {p.number} appears twice "
                       f"(lines {seen[p.number]} and {p.line})", p.line)
            else:
                seen[p.number] = p.line  # type: ignore[assignment]
    # Numbering that runs across arcs must not repeat between arcs either.
    all_prompts = plan.prompts
    restarts = any(a.prompts and a.prompts[0].number == 1 for a in plan.arcs[1:])
    if not restarts:
        first_arc: dict[int, int] = {}
        for arc in plan.arcs:
            for p in arc.prompts:
                if p.number in first_arc and first_arc[p.number] != arc.number:
                    b.warn(f"prompt number {p.number} is used in arc {first_arc[p.number]} "
                           f"and arc {arc.number}", p.line)
                first_arc.setdefault(p.number, arc.number)
        numbers = [p.number for p in all_prompts]
        for a, c in zip(numbers, numbers[1:]):
            if c > a + 1:
                b.warn(f"prompt numbers jump from {a} to {c} (a prompt removed or renumbered?)")


def _norm_tail(text: str) -> str:
    return re.sub(r"[\s.,;:!\"”'’)*`]+$", "", text).lower()


def _ends_with(text: str, phrase: str) -> bool:
    t, p = _norm_tail(text), _norm_tail(phrase)
    return bool(p) and t.endswith(p) and (len(t) == len(p) or not t[-len(p) - 1].isalnum())


def _strip_suffix(text: str, phrase: str) -> str:
    t = re.sub(r"[\s.,;:!\"”'’)*`]+$", "", text)
    core = t[: len(t) - len(_norm_tail(phrase))]
    return core.rstrip(" ,;:—–-|+/").strip()


_TAIL = re.compile(r"\s[—–-]\s+([^—–]+?)\s*$")


def _apply_suffix(b: _Builder, anchor: tuple[str, int] | None,
                  suffix: tuple[str, int] | None) -> None:
    plan = b.plan
    prompts = plan.prompts
    anchor_text = anchor[0] if anchor else None
    plan.anchor_phrase = anchor_text or (suffix[0] if suffix else None)
    candidates: list[str] = []
    if suffix:
        candidates.append(suffix[0])
    if anchor_text:
        candidates.append(anchor_text)
        head = re.split(r"\s[—–-]\s", anchor_text, maxsplit=1)[0].strip()
        if head and head != anchor_text:
            candidates.append(head)
    tails: dict[str, int] = {}
    for p in prompts:
        m = _TAIL.search(p.text)
        if m:
            key = _norm_tail(m.group(1))
            tails[key] = tails.get(key, 0) + 1
    if tails and len(prompts) >= 2:
        tail, count = max(tails.items(), key=lambda kv: kv[1])
        if count >= max(2, 0.6 * len(prompts)):
            candidates.append(tail)

    chosen = None
    for c in candidates:
        if prompts and sum(_ends_with(p.text, c) for p in prompts) >= 0.5 * len(prompts):
            chosen = c
            break
    if anchor_text and not suffix and prompts and chosen is None:
        b.warn(f"no prompt ends with the anchor phrase '{anchor_text}'", anchor[1] if anchor else None)
    if chosen is None:
        return
    plan.prompt_suffix = chosen
    if plan.anchor_phrase is None:
        plan.anchor_phrase = chosen
    missing = []
    for p in prompts:
        if _ends_with(p.text, chosen):
            p.core_text = _strip_suffix(p.text, chosen)
        else:
            missing.append(p)
    for p in missing:
        b.warn(f"prompt {p.number} does not end with the shared suffix '{chosen}'", p.line)


def _fill_arc_names(b: _Builder) -> None:
    """Arcs written as a bare 'Phase 2', or with no words at all (``### 🌧️🌧️🌧️``),
    take their name from the Mood Arc row ("Warm → Drift → Calm") when it names
    as many arcs as the page has; a wordless arc is otherwise called 'Arc N'."""
    plan = b.plan
    parts = [p.strip() for p in re.split(r"→|->|⇒|>", plan.mood_arc or "") if p.strip()]
    from_mood = len(parts) == len(plan.arcs)
    if from_mood:
        for arc, name in zip(plan.arcs, parts):
            if not arc.name:
                arc.name = name
    for arc, line_no, heading in b.wordless_arcs:
        if from_mood:
            b.warn(f"arc heading '{_excerpt(heading)}' has no name; named '{arc.name}' from the "
                   "Mood Arc row", line_no)
        else:
            arc.name = arc.name or f"Arc {arc.number}"
            b.warn(f"arc heading '{_excerpt(heading)}' has no name; called '{arc.name}'", line_no)


# ------------------------------------------------------- Markdown export source

def page_id_from_filename(name: str) -> str | None:
    """Page id from an export file name such as ``Track 20 2a8433e5….md`` (or None)."""
    try:
        return page_id_from_url(Path(name).stem)
    except LofiError:
        return None


def list_export_pages(folder: str | Path) -> list[dict]:
    """List the Markdown files of a Notion export folder (searched recursively).

    Returns
    -------
    list of dict
        ``{"id", "title", "path", "last_edited_time"}`` per page, sorted by path.
        ``id`` is the page id in the file name, or None for a hand-written file;
        ``title`` is the file name without the id; ``last_edited_time`` is the
        file's modification time in ISO 8601 UTC (the export has no better clock).

    Raises
    ------
    LofiError
        When ``folder`` is not a directory.
    """
    root = Path(folder)
    if not root.is_dir():
        raise LofiError(f"{root}: not a folder of Notion Markdown exports")
    pages = []
    for path in sorted(root.rglob("*.md")):
        if path.name.lower() == "readme.md":
            continue
        page_id = page_id_from_filename(path.name)
        title = re.sub(r"\s*[0-9a-fA-F]{32}$", "", path.stem).strip() or path.stem
        mtime = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
        pages.append({"id": page_id, "title": title, "path": str(path),
                      "last_edited_time": mtime.isoformat().replace("+00:00", "Z")})
    return pages


def read_track_page(path: str | Path) -> str:
    """The text of a Markdown track page on disk, or an error naming the file.

    Raises
    ------
    PageParseError
        When the file cannot be read, holds NUL bytes (binary data) or is not
        UTF-8 text; the message names the file and the first bad byte.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise PageParseError(str(p), f"cannot read the file ({exc.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if b"\x00" in data:
            raise PageParseError(str(p), "contains NUL bytes: binary data, not a Markdown "
                                         "track page") from None
        raise PageParseError(str(p), f"not UTF-8 text (bad byte at offset {exc.start}); expected "
                                     "a Markdown track page") from None


def parse_track_file(path: str | Path) -> TrackPlan:
    """Read and parse one Markdown track page; the path is the plan's source.

    Raises
    ------
    PageParseError
        When the file cannot be read or is not a track page.
    """
    return parse_track_markdown(read_track_page(path), source=str(Path(path)))
