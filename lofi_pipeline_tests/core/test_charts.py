"""Charts for the Dagster UI: real PNGs, decoded and checked for the colours that carry meaning."""

from __future__ import annotations

import base64
import io
import re
import subprocess
import sys

import matplotlib
import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from lofi_pipeline.core.charts import (
    STATUS_COLOURS,
    UNKNOWN_COLOUR,
    arc_colour,
    arc_timeline_png,
    gap_coverage_png,
    library_distribution_png,
    markdown_image,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def decode(png: bytes) -> np.ndarray:
    """RGB floats in 0..1, shape (height, width, 3); checks the PNG on the way."""
    assert png[:8] == PNG_SIGNATURE
    assert 2_000 < len(png) <= 100_000, len(png)
    img = matplotlib.image.imread(io.BytesIO(png), format="png")
    assert img.shape[:2] == (400, 900)
    return img[..., :3]


def rgb(hex_colour: str, alpha: float = 1.0) -> np.ndarray:
    """The colour as drawn over white with ``alpha``."""
    c = np.array(matplotlib.colors.to_rgb(hex_colour))
    return alpha * c + (1 - alpha) * np.ones(3)


def pixels(img: np.ndarray, hex_colour: str, alpha: float = 1.0, tol: float = 0.03) -> int:
    return int(np.all(np.abs(img - rgb(hex_colour, alpha)) <= tol, axis=-1).sum())


def songs_frame(n: int, *, unknown_every: int = 0, low_conf: bool = False,
                keys: tuple[str, ...] = ("A minor", "C major", "F# minor", "E major")) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for i in range(n):
        unknown = unknown_every and i % unknown_every == 0
        rows.append({"bpm": None if unknown else float(rng.normal(84, 7)),
                     "key": None if unknown else keys[i % len(keys)],
                     "bpm_confidence": 0.01 if low_conf and i % 2 else 0.9,  # below both thresholds
                     "key_confidence": 0.01 if low_conf and i % 2 else 0.9})
    return pd.DataFrame(rows)


def timeline(arcs: int, plays_per_arc: int, *, repeat: bool = False, reused_every: int = 0) -> list[dict]:
    entries, t, k = [], 0.0, 0
    for rep in range(2 if repeat else 1):
        for a in range(1, arcs + 1):
            for j in range(plays_per_arc):
                k += 1
                entries.append({"arc_number": a, "arc_name": f"Mood {a}", "start_seconds": t,
                                "length_seconds": 170.0, "repeat": rep, "filename": f"A_{a}_{j + 1}_19a.mp3",
                                "source": "reused" if reused_every and k % reused_every == 0 else "own"})
                t += 165.0
    return entries


# ------------------------------------------------------------------ library


def test_library_chart_counts_unknown_values_in_grey():
    with_unknown = decode(library_distribution_png(songs_frame(40, unknown_every=4)))
    all_known = decode(library_distribution_png(songs_frame(40)))
    # grey appears in the legend either way; the unknown bars add a great deal more
    assert pixels(with_unknown, UNKNOWN_COLOUR) > pixels(all_known, UNKNOWN_COLOUR) + 500


def test_library_chart_shows_low_confidence_pale():
    from lofi_pipeline.core.charts import _BPM_COLOUR

    sure = decode(library_distribution_png(songs_frame(40)))
    unsure = decode(library_distribution_png(songs_frame(40, low_conf=True)))
    # low-confidence bars are the BPM colour at 35 % over white (between the hatch lines)
    assert pixels(unsure, _BPM_COLOUR, alpha=0.35) > pixels(sure, _BPM_COLOUR, alpha=0.35) + 300
    # and fewer full-strength bars than the all-confident library
    assert pixels(unsure, _BPM_COLOUR) < pixels(sure, _BPM_COLOUR)


def test_library_chart_separates_minor_and_major():
    from lofi_pipeline.core.charts import _MAJOR_COLOUR, _MINOR_COLOUR

    minor_only = decode(library_distribution_png(songs_frame(30, keys=("A minor", "D minor"))))
    mixed = decode(library_distribution_png(songs_frame(30, keys=("A minor", "C major"))))
    assert pixels(mixed, _MAJOR_COLOUR) > pixels(minor_only, _MAJOR_COLOUR) + 500
    assert pixels(minor_only, _MINOR_COLOUR) > pixels(mixed, _MINOR_COLOUR)


def test_library_chart_reads_camelot_codes_and_odd_values():
    df = pd.DataFrame({"bpm": [80.0, float("nan"), -3.0, "fast"],
                       "key": ["8A", "Eb major", "not a key", None], "camelot": [None, None, "5B", None]})
    decode(library_distribution_png(df))  # no confidence columns, junk values: still a chart


def test_library_chart_of_an_empty_library_is_a_placeholder():
    empties = (pd.DataFrame(), pd.DataFrame(columns=["bpm", "key"]), None)
    pictures = {library_distribution_png(df) for df in empties}
    assert len(pictures) == 1
    img = decode(pictures.pop())
    assert (img > 0.95).all(axis=-1).mean() > 0.9  # mostly white, with a line of text
    assert pixels(img, UNKNOWN_COLOUR) < 300  # anti-aliased text only, no bar


# ------------------------------------------------------------------ timeline


def test_timeline_colours_each_arc_and_only_those():
    img = decode(arc_timeline_png(timeline(3, 4), title="Track 19"))
    for arc in (1, 2, 3):
        assert pixels(img, arc_colour(arc)) > 2000, arc
    assert pixels(img, arc_colour(5)) == 0
    assert arc_colour(1) == arc_colour(11)  # the palette wraps instead of failing


def test_timeline_marks_repeats_pale_and_hatched():
    first_only = decode(arc_timeline_png(timeline(2, 3), title="t"))
    repeated = decode(arc_timeline_png(timeline(2, 3, repeat=True), title="t"))
    colour = arc_colour(1)
    # anti-aliased edges of full-colour blocks give a few pale pixels; a pale block gives thousands
    assert pixels(repeated, colour, alpha=0.45) > pixels(first_only, colour, alpha=0.45) + 2000


def test_timeline_of_a_three_hour_mix_stays_small():
    entries = timeline(6, 11, repeat=True, reused_every=3)  # 132 plays, about 6 h
    img = decode(arc_timeline_png(entries, title="Track 7 — 3 h"))
    assert all(pixels(img, arc_colour(a)) > 300 for a in range(1, 7))


def test_timeline_survives_hostile_names_and_skips_empty_entries():
    entries = timeline(1, 2)
    entries[0]["arc_name"] = "Rain $x^ [/bold]\x1b[2J night"
    entries[1]["filename"] = "$$$.mp3"
    entries.append({"arc_number": 2, "arc_name": "Zero", "start_seconds": 10.0, "length_seconds": 0.0,
                    "repeat": 0, "filename": "z.mp3", "source": "own"})
    img = decode(arc_timeline_png(entries, title="Track $1 \x00"))
    # the zero-length entry drew nothing, not even its arc's row label
    assert pixels(img, arc_colour(2)) == 0


def test_empty_timeline_is_a_placeholder():
    img = decode(arc_timeline_png([], title="Track 19"))
    assert pixels(img, arc_colour(1)) == 0 and (img > 0.95).all(axis=-1).mean() > 0.9


# ------------------------------------------------------------------ gaps


def prompts(statuses: dict[int, list[str]]) -> list[dict]:
    return [{"arc_number": a, "prompt_number": i + 1, "status": s, "songs_needed": 0 if s == "covered" else 2}
            for a, ss in statuses.items() for i, s in enumerate(ss)]


def test_gap_chart_colours_prompts_by_status():
    covered = decode(gap_coverage_png(prompts({1: ["covered"] * 4, 2: ["covered"] * 3}), title="g"))
    mixed = decode(gap_coverage_png(prompts({1: ["covered", "weak", "missing", "missing"], 2: ["weak"] * 3}),
                                    title="g"))
    red, amber, green = STATUS_COLOURS["missing"], STATUS_COLOURS["weak"], STATUS_COLOURS["covered"]
    # the legend holds a little of each colour; the cells hold the rest
    assert pixels(mixed, red) > pixels(covered, red) + 3000
    assert pixels(mixed, amber) > pixels(covered, amber) + 3000
    assert pixels(covered, green) > pixels(mixed, green) + 3000
    # each arc's row label is drawn in the arc's colour
    assert pixels(mixed, arc_colour(2)) > 10


def test_gap_chart_handles_unknown_status_and_empty_input():
    decode(gap_coverage_png([{"arc_number": 1, "prompt_number": 1, "status": None, "songs_needed": None}],
                            title="g"))
    img = decode(gap_coverage_png([], title="Track 3 gaps"))
    assert all(pixels(img, c) == 0 for c in STATUS_COLOURS.values())


# ------------------------------------------------------------------ Markdown and global state


def test_markdown_image_embeds_the_png_and_escapes_the_alt_text():
    png = gap_coverage_png(prompts({1: ["weak"]}), title="g")
    md = markdown_image(png, "gaps [track 19]\n![x](javascript:alert)")
    m = re.fullmatch(r"!\[(?P<alt>(?:\\.|[^\]\\])*)\]\(data:image/png;base64,(?P<data>[A-Za-z0-9+/=]+)\)", md)
    assert m, md[:120]
    assert base64.b64decode(m["data"]) == png
    assert "\n" not in m["alt"] and r"\[track 19\]" in m["alt"]
    with pytest.raises(ValueError, match="PNG"):
        markdown_image(b"GIF89a", "x")


def test_charts_leave_matplotlib_global_state_alone():
    code = (
        "import sys, matplotlib\n"
        "matplotlib.rcParams['font.size'] = 21.0\n"
        "before = dict.__getitem__(matplotlib.rcParams, 'backend')\n"
        "from lofi_pipeline.core import charts\n"
        "import pandas as pd\n"
        "charts.arc_timeline_png([{'arc_number': 1, 'arc_name': 'a', 'start_seconds': 0,"
        " 'length_seconds': 60, 'repeat': 0, 'filename': 'f', 'source': 'own'}], title='t')\n"
        "charts.library_distribution_png(pd.DataFrame({'bpm': [80.0], 'key': ['A minor']}))\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
        "assert matplotlib.rcParams['font.size'] == 21.0, 'rcParams changed'\n"
        "assert dict.__getitem__(matplotlib.rcParams, 'backend') == before, 'backend switched'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
