"""How results look in the Dagster UI: Markdown tables, pictures and progress lines.

Presentation only — no SQL, no rules: the numbers come from the core and the library.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import pandas as pd


def md_table(df: pd.DataFrame, max_rows: int = 50) -> dg.MetadataValue:
    if df is None or df.empty:
        return dg.MetadataValue.md("_(none)_")
    return dg.MetadataValue.md(df.head(max_rows).to_markdown(index=False))


class ProgressLog:
    """'[progress] <task> i/n item' log lines: the CLI turns them into bars, the UI shows them as logs."""

    def __init__(self, context: dg.AssetExecutionContext, task: str, total: int):
        self.context, self.task, self.total, self.done, self.last = context, task, total, 0, -1.0

    def step(self, item: str = "") -> None:
        self.done += 1
        self.context.log.info(f"[progress] {self.task} {self.done}/{self.total} {item}")

    def fraction(self, f: float) -> None:
        if f - self.last >= 0.05 or f >= 1.0:
            self.last = f
            self.context.log.info(f"[progress] {self.task} {f * 100:.0f}/100")


def arc_table(plan) -> dg.MetadataValue:
    return md_table(pd.DataFrame([{"arc": a.number, "name": a.name, "prompts": len(a.prompts),
                                   "bpm": f"{a.bpm_range[0]:g}–{a.bpm_range[1]:g}" if a.bpm_range else ""}
                                  for a in plan.arcs]))


def best_matches(matches: pd.DataFrame) -> dg.MetadataValue:
    """Each prompt's best match; a ``note`` column says when a guessed BPM or key counted less."""
    from lofi_pipeline.core.confidence import downweight_note

    if matches.empty:
        return md_table(matches)
    best = matches[matches["rank"] == 1]
    table = best[["arc_number", "prompt_number", "filename", "score", "similarity"]].copy()
    notes = [downweight_note(b, k) for b, k in zip(best.get("bpm_weight", [None] * len(best)),
                                                   best.get("key_weight", [None] * len(best)))]
    if any(notes):
        table["note"] = notes
    return md_table(table)


def mix_summary(mix) -> dict[str, Any]:
    first = [e for e in mix.entries if e.repeat == 0]
    return {"target_minutes": round(mix.target_seconds / 60, 1),
            "planned_minutes": round(mix.duration_seconds / 60, 1),
            "distinct_songs": len({e.song_id for e in mix.entries}), "entries": len(mix.entries),
            "repeats": len(mix.entries) - len(first),
            "own_songs": len({e.song_id for e in first if e.source == "own"})}


def arc_summary_table(mix) -> dg.MetadataValue:
    return md_table(pd.DataFrame([a.to_dict() if hasattr(a, "to_dict") else vars(a) for a in mix.arcs]))


def mix_table(mix) -> dg.MetadataValue:
    from lofi_pipeline.core.render import format_timestamp

    return md_table(pd.DataFrame([{"#": e.position, "start": format_timestamp(e.start_seconds), "arc": e.arc_number,
                                   "prompt": e.prompt_number, "song": e.filename,
                                   "min": round(e.length_seconds / 60, 1), "repeat": e.repeat, "source": e.source}
                                  for e in mix.entries]), 400)


def gap_markdown(report: dict) -> dg.MetadataValue:
    from lofi_pipeline.core.gaps import gap_report_markdown

    return dg.MetadataValue.md(gap_report_markdown(report))


def _picture(png: bytes, alt: str) -> dg.MetadataValue:
    from lofi_pipeline.core.charts import markdown_image

    return dg.MetadataValue.md(markdown_image(png, alt))


def timeline_picture(mix) -> dg.MetadataValue:
    from dataclasses import asdict

    from lofi_pipeline.core.charts import arc_timeline_png

    return _picture(arc_timeline_png([asdict(e) for e in mix.entries], title=f"Track {mix.track_number}"),
                    "arc timeline")


def coverage_picture(report: dict) -> dg.MetadataValue:
    from lofi_pipeline.core.charts import gap_coverage_png

    return _picture(gap_coverage_png(report.get("prompts", []), title=f"Track {report.get('track_number')}"),
                    "gap coverage")


def library_pictures(lib) -> dict[str, dg.MetadataValue]:
    from lofi_pipeline.core.charts import library_distribution_png

    return {"distribution": _picture(library_distribution_png(lib.songs()), "BPM and key distribution")}
