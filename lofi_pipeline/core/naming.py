"""The song filename grammar — the one place it lives.

Songs are filed as ``{prefix}_{arc}_{prompt}_{track}{take}.{ext}``, e.g.
``A_1_3_19b.mp3``: prefix ``A``, arc 1, prompt 3, made for track 19, take ``b``.
The prefix is optional (``1_1_45a.mp3``), may be lower case (``b_1_1_22f``), and
the take may be several letters (``aa``) or absent. A name outside the
convention parses to ``None``; callers import such files with null fields and
a warning, never drop them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

_SONG_NAME = re.compile(
    r"""^(?:(?P<prefix>[A-Za-z]{1,3})_)?
        (?P<arc>\d{1,2})_
        (?P<prompt>\d{1,3})_
        (?P<track>\d{1,4})
        (?P<take>[A-Za-z]{0,3})$""",
    re.VERBOSE,
)
# prepare-render prefixes mix order ("007__A_1_3_19b.mp3"); strip it when reading names back.
_SEQUENCE_PREFIX = re.compile(r"^\d{3,4}__")


@dataclass(frozen=True)
class SongName:
    prefix: str | None
    arc: int
    prompt: int
    source_track: int
    take: str | None

    def stem(self) -> str:
        head = f"{self.prefix}_" if self.prefix else ""
        return f"{head}{self.arc}_{self.prompt}_{self.source_track}{self.take or ''}"


def parse_song_filename(name: str) -> SongName | None:
    """Parse a song file name (any folder, any extension, any case) or return None."""
    stem = PurePath(name).stem
    stem = _SEQUENCE_PREFIX.sub("", stem)
    m = _SONG_NAME.match(stem.strip())
    if not m:
        return None
    return SongName(
        prefix=m["prefix"] or None,
        arc=int(m["arc"]),
        prompt=int(m["prompt"]),
        source_track=int(m["track"]),
        take=m["take"].lower() or None,
    )


def song_filename(*, arc: int, prompt: int, track: int, take: str = "a",
                  prefix: str | None = "A", ext: str = "mp3") -> str:
    """Build a conventional file name (used by the demo and by scaffolding)."""
    return SongName(prefix, arc, prompt, track, take).stem() + f".{ext.lstrip('.')}"
