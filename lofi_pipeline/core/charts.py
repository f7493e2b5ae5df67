"""Small PNG charts for the Dagster UI: library spread, a mix's arc timeline, gap coverage.

Every function returns the bytes of a PNG of about 900×400 px (well under
100 KB) drawn with matplotlib's Agg canvas on a :class:`matplotlib.figure.Figure`
of its own: pyplot is never imported, the global backend is never switched and
rcParams are only overridden inside a ``rc_context`` for the duration of one
drawing, so a notebook or a test that uses matplotlib itself is not affected.

Colours mean the same thing in every picture: arc *n* is always
:func:`arc_colour` (n) (the timeline's blocks, the gap chart's row markers);
gap statuses are green (covered), amber (weak) and red (missing); unknown values
are grey and low-confidence values (the rule of :mod:`lofi_pipeline.core.confidence`)
are drawn pale and hatched.

An empty input never raises: it gives a picture saying there is nothing to
show, so an asset can always attach its chart.

Units: seconds in the inputs, minutes on the timeline's axis, BPM.
"""

from __future__ import annotations

import base64
import io
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Patch

from lofi_pipeline.core.confidence import LOW_KEY_CONFIDENCE, LOW_TEMPO_CONFIDENCE, column_low_mask
from lofi_pipeline.core.matching import to_camelot

__all__ = [
    "ARC_COLOURS", "STATUS_COLOURS", "UNKNOWN_COLOUR", "arc_colour",
    "library_distribution_png", "arc_timeline_png", "gap_coverage_png", "markdown_image",
]

WIDTH_PX, HEIGHT_PX, DPI = 900, 400, 100

# Okabe–Ito-like, distinguishable for colour-blind viewers, and dark enough for white text.
ARC_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#8C564B", "#6A3D9A",
               "#1B9E77", "#B8860B")
STATUS_COLOURS = {"covered": "#2E9E4F", "weak": "#E8A317", "missing": "#D64541"}
UNKNOWN_COLOUR = "#9A9A9A"
_MINOR_COLOUR, _MAJOR_COLOUR = "#5B4B8A", "#E07B39"
_BPM_COLOUR = "#3C7DBF"
_HATCH = "////"

_STYLE = {
    "font.size": 9.0, "axes.titlesize": 10.5, "axes.labelsize": 9.0, "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0, "legend.fontsize": 8.0, "axes.spines.top": False, "axes.spines.right": False,
    "axes.edgecolor": "#555555", "axes.facecolor": "white", "figure.facecolor": "white",
    "hatch.linewidth": 0.8, "font.family": "DejaVu Sans", "text.usetex": False,
}


def arc_colour(arc_number: int) -> str:
    """The colour of arc ``arc_number`` (1-based) in every chart, as ``#RRGGBB``."""
    return ARC_COLOURS[(int(arc_number) - 1) % len(ARC_COLOURS)]


# ------------------------------------------------------------------ drawing helpers


def _new_figure() -> Figure:
    fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # No bbox_inches="tight": the picture keeps its exact 900×400 size.
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None}, pil_kwargs={"optimize": True})
    return buf.getvalue()


def _placeholder(title: str, message: str) -> bytes:
    with matplotlib.rc_context(_STYLE):
        fig = _new_figure()
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_axis_off()
        ax.text(0.5, 0.62, title, ha="center", va="center", fontsize=13, weight="bold", color="#333333")
        ax.text(0.5, 0.42, message, ha="center", va="center", fontsize=11, color="#666666")
        return _png(fig)


def _clean(text: Any, limit: int = 40) -> str:
    """Page text as plain chart text: no control characters, no mathtext ``$``, bounded length."""
    s = re.sub(r"[\x00-\x1f\x7f]", " ", "" if text is None else str(text)).replace("$", r"\$").strip()
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _number(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


# ------------------------------------------------------------------ library spread


def _camelot_of(df: pd.DataFrame) -> pd.Series:
    if "key" in df.columns:
        codes = df["key"].map(to_camelot)
    else:
        codes = pd.Series(None, index=df.index, dtype=object)
    if "camelot" in df.columns:  # the stored code fills in where the key name is unreadable
        codes = codes.where(codes.notna(), df["camelot"].map(to_camelot))
    return codes


def library_distribution_png(songs: pd.DataFrame) -> bytes:
    """BPM histogram and key distribution of the library, as a PNG.

    Parameters
    ----------
    songs : pandas.DataFrame
        One row per song with ``bpm`` (BPM) and ``key`` (``"A minor"``,
        ``"F# major"``, or a Camelot code) and optionally ``camelot``,
        ``bpm_confidence`` and ``key_confidence`` (0..1). Missing columns and
        None/NaN values count as unknown.

    Returns
    -------
    bytes
        A 900×400 PNG: left, songs per 5-BPM bin; right, songs per Camelot
        number (1–12, the wheel's order) with minor (A) and major (B) side by
        side. Low-confidence values (:mod:`lofi_pipeline.core.confidence`) are
        stacked on top, pale and hatched, and counted in the title; unknown
        values form a grey "unknown" bar in each panel.
    """
    if songs is None or len(songs) == 0:
        return _placeholder("Library: BPM and key", "No songs in the library yet")
    df = songs.reset_index(drop=True)
    if "bpm" in df.columns:
        bpm = pd.to_numeric(df["bpm"], errors="coerce")
    else:
        bpm = pd.Series(np.nan, index=df.index)
    bpm = bpm.where(bpm > 0)
    bpm_ok = ~column_low_mask(df, "bpm_confidence", LOW_TEMPO_CONFIDENCE)
    codes = _camelot_of(df)
    key_ok = ~column_low_mask(df, "key_confidence", LOW_KEY_CONFIDENCE)

    with matplotlib.rc_context(_STYLE):
        fig = _new_figure()
        ax_bpm, ax_key = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.0, 1.35], "wspace": 0.22})
        fig.subplots_adjust(left=0.06, right=0.985, top=0.86, bottom=0.2)
        known = bpm.dropna()
        low_bpm = int((bpm.notna() & ~bpm_ok).sum())
        low_key = int((codes.notna() & ~key_ok).sum())
        fig.suptitle(f"Library: {len(df)} songs — BPM known for {len(known)} ({low_bpm} guessed), "
                     f"key for {int(codes.notna().sum())} ({low_key} guessed)", fontsize=11, weight="bold",
                     x=0.02, ha="left")

        # ---- BPM: 5-BPM bins over the known range, unknown as a separate bar
        step = 5.0
        if len(known):
            lo = math.floor(known.min() / step) * step
            hi = max(math.floor(known.max() / step) * step + step, lo + step)
        else:
            lo, hi = 60.0, 100.0
        edges = np.arange(lo, hi + step / 2, step)
        sure, _ = np.histogram(bpm[bpm_ok].dropna(), bins=edges)
        unsure, _ = np.histogram(bpm[~bpm_ok].dropna(), bins=edges)
        centres = edges[:-1] + step / 2
        ax_bpm.bar(centres, sure, width=step * 0.9, color=_BPM_COLOUR, label="BPM")
        ax_bpm.bar(centres, unsure, width=step * 0.9, bottom=sure, color=_BPM_COLOUR, alpha=0.35,
                   hatch=_HATCH, edgecolor=_BPM_COLOUR, label="low confidence")
        unknown_x = edges[-1] + 1.5 * step
        n_unknown = int(bpm.isna().sum())
        ax_bpm.bar([unknown_x], [n_unknown], width=step * 0.9, color=UNKNOWN_COLOUR, label="unknown")
        ticks = list(edges[:: max(1, len(edges) // 7)])
        ax_bpm.set_xticks(ticks + [unknown_x], [f"{t:g}" for t in ticks] + ["unknown"])
        ax_bpm.set_xlabel("tempo (BPM, 5-BPM bins)")
        ax_bpm.set_ylabel("songs")
        ax_bpm.set_title("Tempo", loc="left")
        ax_bpm.yaxis.get_major_locator().set_params(integer=True)
        ax_bpm.legend(loc="upper left", frameon=False)

        # ---- keys: Camelot 1..12, minor (A) and major (B) side by side
        numbers = np.arange(1, 13)
        width = 0.4
        for letter, colour, offset, label in (("A", _MINOR_COLOUR, -width / 2, "minor (A)"),
                                              ("B", _MAJOR_COLOUR, width / 2, "major (B)")):
            sure_k = [int(((codes == f"{n}{letter}") & key_ok).sum()) for n in numbers]
            unsure_k = [int(((codes == f"{n}{letter}") & ~key_ok).sum()) for n in numbers]
            ax_key.bar(numbers + offset, sure_k, width=width, color=colour, label=label)
            ax_key.bar(numbers + offset, unsure_k, width=width, bottom=sure_k, color=colour, alpha=0.35,
                       hatch=_HATCH, edgecolor=colour)
        ax_key.bar([13.5], [int(codes.isna().sum())], width=width * 2, color=UNKNOWN_COLOUR)
        ax_key.set_xticks(list(numbers) + [13.5], [str(n) for n in numbers] + ["unknown"])
        ax_key.set_xlabel("Camelot wheel number (8A = A minor, 8B = C major)")
        ax_key.set_title("Key", loc="left")
        ax_key.yaxis.get_major_locator().set_params(integer=True)
        handles = [Patch(color=_MINOR_COLOUR, label="minor (A)"),
                   Patch(color=_MAJOR_COLOUR, label="major (B)"),
                   Patch(facecolor="#dddddd", hatch=_HATCH, edgecolor="#777777",
                         label="low confidence"),
                   Patch(color=UNKNOWN_COLOUR, label="unknown")]
        ax_key.legend(handles=handles, loc="upper left", frameon=False, ncols=2)
        for ax in (ax_bpm, ax_key):
            ax.set_ylim(0, max(1.0, ax.get_ylim()[1]) * 1.3)  # room for the legend
        return _png(fig)


# ------------------------------------------------------------------ arc timeline


def arc_timeline_png(entries: Sequence[Mapping[str, Any]], *, title: str) -> bytes:
    """A mix as coloured blocks over time, one row per arc, as a PNG.

    Parameters
    ----------
    entries : sequence of mappings
        One per song occurrence with ``arc_number``, ``arc_name``,
        ``start_seconds``, ``length_seconds``, ``repeat`` (0 on the first
        play of a song, 1, 2, … when it plays again), ``filename`` and
        ``source`` (``"own"`` or ``"reused"``). Entries without a positive
        length are skipped.
    title : str
        Shown above the chart (e.g. ``"Track 19 — test render"``).

    Returns
    -------
    bytes
        A 900×400 PNG; x is minutes into the mix. Blocks take their arc's
        :func:`arc_colour`; repeated plays are pale and hatched; songs reused
        from another track have a dark dashed outline.
    """
    rows = []
    for e in entries or ():
        start, length = _number(e.get("start_seconds")), _number(e.get("length_seconds"))
        arc = e.get("arc_number")
        if start is None or length is None or length <= 0 or arc is None:
            continue
        rows.append({"arc": int(arc), "name": _clean(e.get("arc_name"), 28), "start": start / 60.0,
                     "length": length / 60.0, "repeat": int(e.get("repeat") or 0),
                     "reused": str(e.get("source") or "own") == "reused",
                     "file": _clean(e.get("filename"), 30)})
    if not rows:
        return _placeholder(_clean(title, 80) or "Mix timeline", "No songs placed in this mix yet")

    arcs = sorted({r["arc"] for r in rows})
    names = {}
    for r in rows:
        names.setdefault(r["arc"], r["name"])
    lane = {a: i for i, a in enumerate(reversed(arcs))}  # arc 1 on top
    end = max(r["start"] + r["length"] for r in rows)
    with matplotlib.rc_context(_STYLE):
        fig = _new_figure()
        ax = fig.add_axes((0.2, 0.2, 0.77, 0.66))
        for r in rows:
            colour = arc_colour(r["arc"])
            ax.barh(lane[r["arc"]], r["length"], left=r["start"], height=0.72,
                    color=colour, alpha=0.45 if r["repeat"] else 1.0,
                    hatch=_HATCH if r["repeat"] else None,
                    edgecolor="#222222" if r["reused"] else "white",
                    linestyle="--" if r["reused"] else "-", linewidth=1.2 if r["reused"] else 0.6)
            # a song name only where the block is wide enough to hold it
            block_px = r["length"] / end * 0.77 * WIDTH_PX
            if block_px > 7 * len(r["file"]) * 0.8 and len(rows) <= 40:
                ax.text(r["start"] + r["length"] / 2, lane[r["arc"]], r["file"], ha="center", va="center",
                        fontsize=7, color="white" if not r["repeat"] else "#222222", clip_on=True)
        ax.set_yticks([lane[a] for a in arcs],
                      [f"Arc {a} · {names[a]}" if names[a] else f"Arc {a}" for a in arcs])
        for tick, a in zip(ax.get_yticklabels(), arcs):
            tick.set_color(arc_colour(a))
            tick.set_fontweight("bold")
        ax.set_xlim(0, end * 1.01)
        ax.set_ylim(-0.6, len(arcs) - 0.4)
        ax.set_xlabel("minutes into the mix")
        ax.grid(axis="x", color="#e5e5e5", linewidth=0.6)
        ax.set_axisbelow(True)
        n_repeat = sum(1 for r in rows if r["repeat"])
        n_reused = sum(1 for r in rows if r["reused"])
        ax.set_title(f"{_clean(title, 80)} — {len(rows)} plays, {end:.1f} min", loc="left", weight="bold",
                     fontsize=11)
        handles = [Patch(facecolor="#bbbbbb", edgecolor="white", label="first play"),
                   Patch(facecolor="#bbbbbb", alpha=0.45, hatch=_HATCH, edgecolor="#888888",
                         label=f"repeat ({n_repeat})"),
                   Patch(facecolor="white", edgecolor="#222222", linestyle="--",
                         label=f"reused from another track ({n_reused})")]
        fig.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.2, 0.0), ncols=3, frameon=False)
        return _png(fig)


# ------------------------------------------------------------------ gap coverage


def gap_coverage_png(prompts: Sequence[Mapping[str, Any]], *, title: str) -> bytes:
    """Each arc's prompts as cells coloured by coverage, as a PNG.

    Parameters
    ----------
    prompts : sequence of mappings
        One per prompt with ``arc_number``, ``prompt_number``, ``status``
        (``"covered"``, ``"weak"`` or ``"missing"``; anything else is drawn
        grey) and ``songs_needed`` (songs still to make for it, 0 when none).
    title : str
        Shown above the chart.

    Returns
    -------
    bytes
        A 900×400 PNG: one row per arc (its name tag in the arc's colour),
        one cell per prompt in prompt order labelled ``P{n}`` and, when songs
        are needed, ``+{songs_needed}``; a legend with the count per status.
    """
    rows = []
    for p in prompts or ():
        arc, number = p.get("arc_number"), p.get("prompt_number")
        if arc is None or number is None:
            continue
        needed = _number(p.get("songs_needed"))
        rows.append({"arc": int(arc), "prompt": int(number), "status": str(p.get("status") or "").lower(),
                     "needed": int(needed) if needed else 0})
    if not rows:
        return _placeholder(_clean(title, 80) or "Gap coverage", "No prompts to cover yet")

    arcs = sorted({r["arc"] for r in rows})
    per_arc = {a: sorted((r for r in rows if r["arc"] == a), key=lambda r: r["prompt"]) for a in arcs}
    columns = max(len(v) for v in per_arc.values())
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in STATUS_COLOURS}
    needed_total = sum(r["needed"] for r in rows)
    with matplotlib.rc_context(_STYLE):
        fig = _new_figure()
        ax = fig.add_axes((0.1, 0.17, 0.88, 0.69))
        label_size = 8 if columns <= 14 else 6
        for i, a in enumerate(arcs):
            y = len(arcs) - 1 - i
            for j, r in enumerate(per_arc[a]):
                colour = STATUS_COLOURS.get(r["status"], UNKNOWN_COLOUR)
                ax.add_patch(FancyBboxPatch(
                    (j + 0.06, y - 0.38), 0.88, 0.76, boxstyle="round,pad=0,rounding_size=0.08",
                    facecolor=colour, edgecolor="white"))
                text = f"P{r['prompt']}" + (f"\n+{r['needed']}" if r["needed"] else "")
                ax.text(j + 0.5, y, text, ha="center", va="center", fontsize=label_size, color="white",
                        weight="bold")
            need = sum(r["needed"] for r in per_arc[a])
            ax.text(len(per_arc[a]) + 0.15, y, f"{need} to make" if need else "", va="center", fontsize=8,
                    color="#444444")
        ax.set_xlim(0, columns + 1.2)
        ax.set_ylim(-0.6, len(arcs) - 0.4)
        ax.set_yticks([len(arcs) - 1 - i for i in range(len(arcs))], [f"Arc {a}" for a in arcs])
        for tick, a in zip(ax.get_yticklabels(), arcs):
            tick.set_color(arc_colour(a))
            tick.set_fontweight("bold")
        ax.set_xticks([])
        for side in ("left", "bottom"):
            ax.spines[side].set_visible(False)
        ax.tick_params(axis="y", length=0)
        ax.set_title(f"{_clean(title, 80)} — {len(rows)} prompts, {needed_total} songs to make", loc="left",
                     weight="bold", fontsize=11)
        handles = [Patch(color=c, label=f"{s} ({counts[s]})") for s, c in STATUS_COLOURS.items()]
        other = len(rows) - sum(counts.values())
        if other:
            handles.append(Patch(color=UNKNOWN_COLOUR, label=f"other ({other})"))
        fig.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.1, 0.0), ncols=len(handles),
                   frameon=False)
        return _png(fig)


# ------------------------------------------------------------------ Dagster metadata


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown that shows ``png`` inline: ``![alt](data:image/png;base64,…)``.

    Meant for ``dagster.MetadataValue.md``. Checked in the Dagster 1.13 UI
    with headless Chromium: its Markdown sanitizer allows ``data:`` image
    sources, and the picture shows in the asset's metadata (Overview and
    Events tabs). Markdown longer than 1,000 characters, which every chart
    is, sits behind a ``[Show Markdown]`` link that opens it in a dialog;
    ``MetadataValue.path`` or ``.url`` to a PNG file only show the path as
    text. ``alt`` is page text made safe: brackets, backslashes and line
    breaks cannot end the image syntax early.
    """
    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ValueError("markdown_image expects PNG bytes")
    safe_alt = re.sub(r"[\x00-\x1f\x7f]", " ", alt)
    safe_alt = re.sub(r"([\\\[\]])", r"\\\1", safe_alt)
    return f"![{safe_alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
