"""Track numbers in page titles (``Track 20 — …``, ``🌧️ TRACK 21 — …``)."""

from __future__ import annotations

import re

_TRACK = re.compile(r"\btrack\s*#?\s*0*(\d{1,4})\b", re.IGNORECASE)


def track_number_from_title(title: str | None) -> int | None:
    m = _TRACK.search(title or "")
    return int(m[1]) if m else None
