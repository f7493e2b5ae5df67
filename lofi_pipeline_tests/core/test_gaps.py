"""Gap statuses, songs needed, and the three files."""

import json

import pandas as pd
import pytest
from conftest_matching import encode_library, encode_plan, library_songs, make_plan, new_track_plan

from lofi_pipeline.core.gaps import (
    build_gap_report,
    gap_report_markdown,
    remaining_prompts_markdown,
    write_gap_files,
)
from lofi_pipeline.core.matching import query_track
from lofi_pipeline.core.selection import select_for_duration


def three_prompt_plan():
    plan = make_plan(41, [("Open", (50, 60), ["good prompt", "weak prompt"]),
                          ("End", None, ["lonely prompt"])],
                     duration_minutes=30)
    plan.title = "Rainy Desk"
    return plan


def matches_for(plan):
    """Prompt 1: good matches; prompt 2: only weak ones; prompt 3: nothing."""
    rows = []
    for rank, (sid, sim) in enumerate([("g1", 0.91), ("g2", 0.84), ("g3", 0.65)], start=1):
        rows.append((1, sid, rank, sim))
    for rank, (sid, sim) in enumerate([("w1", 0.66), ("w2", 0.62)], start=1):
        rows.append((2, sid, rank, sim))
    frame = pd.DataFrame([{"prompt_order": o, "arc_number": 1, "prompt_number": o, "song_id": sid,
                           "filename": f"{sid}.mp3", "rank": rank, "similarity": sim, "score": sim,
                           "duration_seconds": 240.0} for o, sid, rank, sim in rows])
    frame.attrs["best_similarity"] = {1: 0.91, 2: 0.66, 3: 0.41}
    return frame


def test_statuses_best_similarity_and_songs_needed():
    plan = three_prompt_plan()
    matches = matches_for(plan)
    selection = select_for_duration(plan, matches, None, target_seconds=1800, allow_repeat=False)
    report = build_gap_report(plan, matches, selection)
    by = {p["prompt_order"]: p for p in report["prompts"]}
    assert [by[o]["status"] for o in (1, 2, 3)] == ["good", "weak", "none"]
    assert by[1]["best_similarity"] == pytest.approx(0.91) and by[1]["best_song"] == "g1.mp3"
    assert by[3]["best_similarity"] == pytest.approx(0.41) and by[3]["best_song"] is None
    # Arc 1 gets 2/3 of 30 min = 20 min, 10 min per prompt; arc 2's prompt 10 min.
    assert by[1]["target_seconds"] == pytest.approx(600) and by[3]["target_seconds"] == pytest.approx(600)
    # Typical song = the candidates' median duration (240 s).
    assert report["typical_song_seconds"] == 240
    for p in report["prompts"]:
        expected = -(-max(0.0, p["target_seconds"] - p["filled_seconds"]) // 240)
        assert p["songs_needed"] == expected
    assert by[3]["songs_needed"] == 3 and by[3]["filled_seconds"] == 0
    assert by[2]["filled_seconds"] == pytest.approx(480)  # both weak songs were used
    totals = report["totals"]
    assert (totals["good"], totals["weak"], totals["none"], totals["prompts"]) == (1, 1, 1, 3)
    assert totals["songs_needed"] == sum(p["songs_needed"] for p in report["prompts"])
    assert totals["songs_needed_for_duration"] == -(-(1800 - selection.filled_seconds) // 240)


def test_thresholds_are_configurable():
    plan = three_prompt_plan()
    matches = matches_for(plan)
    report = build_gap_report(plan, matches, None, good_threshold=0.95, typical_song_seconds=300)
    assert [p["status"] for p in report["prompts"]] == ["weak", "weak", "none"]
    # Without a selection nothing is filled: every prompt needs its whole share.
    assert [p["songs_needed"] for p in report["prompts"]] == [2, 2, 2]


def test_markdown_report_and_remaining_prompts():
    plan = three_prompt_plan()
    matches = matches_for(plan)
    report = build_gap_report(plan, matches, select_for_duration(plan, matches, None, target_seconds=1800))
    md = gap_report_markdown(report)
    assert md.startswith("# Gap report — Track 41 — Rainy Desk")
    assert "1 good, 1 weak, 1 without a match" in md
    assert md.count("\n| 1 Open |") == 2 and "| 2 End | 3 | none | 0.41 |" in md
    remaining = remaining_prompts_markdown(plan, report)
    texts = {p.order: p.text for p in plan.prompts}
    assert texts[2] in remaining and texts[3] in remaining  # full Suno text, suffix included
    assert texts[3].endswith("vaporwave synthwave lofi")
    assert "## Arc 1 — Open (BPM 50–60)" in remaining and "## Arc 2 — End" in remaining


def test_write_gap_files_atomically(tmp_path):
    songs = library_songs()
    plan = new_track_plan(duration_minutes=30)
    matches = query_track(plan, encode_plan(plan), songs, encode_library(songs))
    selection = select_for_duration(plan, matches, songs)
    report = build_gap_report(plan, matches, selection)
    folder = tmp_path / "Tracks" / "30"
    paths = write_gap_files(report, plan, folder)
    assert {p.name for p in paths.values()} == {"gaps.json", "gaps.md", "remaining-prompts.md"}
    # No temp files are left behind.
    assert sorted(f.name for f in folder.iterdir()) == ["gaps.json", "gaps.md", "remaining-prompts.md"]
    loaded = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert loaded["track_number"] == 30 and loaded["totals"]["none"] == 2 and loaded["totals"]["good"] == 4
    statuses = {p["prompt_order"]: p["status"] for p in loaded["prompts"]}
    remaining = paths["remaining"].read_text(encoding="utf-8")
    for prompt in plan.prompts:
        assert (prompt.text in remaining) == (statuses[prompt.order] != "good" or
                                              loaded["prompts"][prompt.order - 1]["songs_needed"] > 0)
    assert paths["markdown"].read_text(encoding="utf-8") == gap_report_markdown(report)
    # Rewriting replaces the files in place.
    report["title"] = "Second run"
    write_gap_files(report, plan, folder)
    assert json.loads(paths["json"].read_text(encoding="utf-8"))["title"] == "Second run"
    assert len(list(folder.iterdir())) == 3


def test_a_stored_selection_gives_the_same_report():
    """The library stores only the selected songs; the report must not depend on the live object."""
    plan = three_prompt_plan()
    matches = matches_for(plan)
    selection = select_for_duration(plan, matches, None, target_seconds=1800)
    live = build_gap_report(plan, matches, selection)
    stored = build_gap_report(plan, matches.drop(columns=["duration_seconds"]), list(selection.selected),
                              target_seconds=1800)
    keys = ("status", "songs_needed", "filled_seconds", "target_seconds")
    def rows(report):
        return [[p[k] for k in keys] for p in report["prompts"]]

    assert rows(stored) == rows(live)
    assert stored["totals"] == live["totals"] and stored["repeated"] == live["repeated"]
    assert stored["typical_song_seconds"] == 240  # from the selected songs when matches lack durations
