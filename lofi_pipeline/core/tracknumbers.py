"""Track numbers: the one rule for finding them in titles, and the range the library stores.

A title, heading or file name carries its track number as ``Track 20 — …``,
``🌧️ TRACK 21 — …``, ``Track #7``, ``track_13`` or ``track-13``
(case-insensitive; "soundtrack 5" and "Tracklist 1" are not track numbers).

The library stores track, arc and prompt numbers in DuckDB ``INTEGER``
columns, so every number read from a page or an option must lie in
``0 … MAX_STORED_INT``; a larger one would fail later with a DuckDB
"Conversion Error … INT32" that names no page or line.
"""

from __future__ import annotations

import re

from lofi_pipeline.core.errors import ConfigError

#: The largest number a DuckDB INTEGER column holds (2**31 - 1).
MAX_STORED_INT = 2**31 - 1

#: "Track" then its number: after spaces and an optional "#", or straight after
#: one "_" / "-" as in file names (``track_13``). Group 1 is the number.
TRACK_IN_TITLE = re.compile(r"\btrack(?:[_\-]|\s*#?\s*)(\d+)\b", re.IGNORECASE)
# "Track -5", "Track #-5": a minus sign, not a separator.
_NEGATIVE_TRACK = re.compile(r"\btrack\s*#?\s*[-−–]\s*\d", re.IGNORECASE)


def in_stored_range(number: int) -> bool:
    """True when ``number`` fits the library's INTEGER columns and is not negative."""
    return 0 <= number <= MAX_STORED_INT


def find_track_number(text: str | None, *, at_start: bool = False) -> tuple[int | None, str | None]:
    """The track number in ``text`` and, when one is written but unusable, why.

    Parameters
    ----------
    text
        A title, heading (emoji and Markdown already removed when ``at_start``)
        or file name.
    at_start
        Only a number written at the very start counts (``Track 20 — …`` as a
        heading), not one further in the text.

    Returns
    -------
    (number, problem)
        ``(20, None)`` for ``Track 20``; ``(None, None)`` when there is no track
        number; ``(None, reason)`` for a negative number or one larger than the
        library stores (``reason`` says which, for a warning).
    """
    s = text or ""
    negative = _NEGATIVE_TRACK.match(s) if at_start else _NEGATIVE_TRACK.search(s)
    if negative:
        return None, f"track number '{negative.group(0).strip()}…' is negative"
    m = TRACK_IN_TITLE.match(s) if at_start else TRACK_IN_TITLE.search(s)
    if not m:
        return None, None
    number = int(m.group(1))
    if not in_stored_range(number):
        return None, (f"track number {_short(m.group(1))} is larger than the library stores "
                      f"(at most {MAX_STORED_INT})")
    return number, None


def track_number_from_title(title: str | None) -> int | None:
    """The track number in a page title or file name, or None (also for an unusable one)."""
    return find_track_number(title)[0]


def check_track_number(value: int, *, where: str = "--track") -> int:
    """``value`` when it is a track number the library can store.

    Raises
    ------
    ConfigError
        ``"--track = -5: expected a track number from 0 to 2147483647"``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not in_stored_range(value):
        raise ConfigError(f"{where} = {_short(str(value))}: expected a track number from 0 to "
                          f"{MAX_STORED_INT}")
    return value


def _short(digits: str, limit: int = 24) -> str:
    return digits if len(digits) <= limit else digits[:limit] + "…"
