"""Duration-aware selection over synthetic matches and one real query."""

import pandas as pd
import pytest
from conftest_matching import encode_library, encode_plan, library_songs, make_plan, new_track_plan

from lofi_pipeline.core.errors import ConfigError
from lofi_pipeline.core.matching import query_track
from lofi_pipeline.core.selection import arc_targets, select_for_duration


def plan_3_arcs():
    # 2, 1 and 3 prompts: "prompts" allocation gives arcs 2/6, 1/6 and 3/6 of the target.
    return make_plan(40, [("Open", None, ["o1", "o2"]), ("Middle", None, ["m1"]),
                          ("End", None, ["e1", "e2", "e3"])])


def fake_matches(plan, per_prompt: int, *, duration=200.0, shared=()) -> pd.DataFrame:
    """``per_prompt`` candidates for each prompt, scores falling with rank.

    ``shared`` lists (song_id, {prompt_order: score}) for songs offered to several prompts.
    """
    rows = []
    for arc in plan.arcs:
        for p in arc.prompts:
            cands = [(f"p{p.order}s{k}", 0.9 - 0.05 * k) for k in range(per_prompt)]
            cands += [(sid, scores[p.order]) for sid, scores in shared if p.order in scores]
            cands.sort(key=lambda c: -c[1])
            for rank, (sid, score) in enumerate(cands, start=1):
                rows.append({"arc_number": arc.number, "prompt_number": p.number, "prompt_order": p.order,
                             "rank": rank, "song_id": sid, "filename": f"{sid}.mp3", "score": score,
                             "similarity": score, "duration_seconds": duration})
    return pd.DataFrame(rows)


def songs_for(matches: pd.DataFrame) -> pd.DataFrame:
    ids = matches.drop_duplicates("song_id")
    return pd.DataFrame({"song_id": ids.song_id, "path": "/lib/" + ids.filename, "filename": ids.filename,
                         "duration_seconds": ids.duration_seconds, "loudness_lufs": -14.0})


def test_arc_targets_by_prompts_and_even():
    plan = plan_3_arcs()
    assert arc_targets(plan, target_seconds=600) == pytest.approx([200, 100, 300])
    assert arc_targets(plan, target_seconds=600, allocation="even") == pytest.approx([200, 200, 200])
    with pytest.raises(ConfigError, match="allocation"):
        arc_targets(plan, target_seconds=600, allocation="random")


def test_fills_the_target_with_distinct_songs_in_arc_order():
    plan = plan_3_arcs()
    matches = fake_matches(plan, per_prompt=6)
    result = select_for_duration(plan, matches, songs_for(matches), target_seconds=60 * 60)
    assert 3600 <= result.filled_seconds < 3600 + 200
    assert result.shortfall_seconds == 0 and not result.repeated
    ids = [s.song_id for s in result.selected]
    assert len(ids) == len(set(ids))
    assert [s.order for s in result.selected] == list(range(1, len(ids) + 1))
    arcs = [s.arc_number for s in result.selected]
    assert arcs == sorted(arcs)
    # Paths and loudness come from the songs table.
    assert result.selected[0].path.startswith("/lib/") and result.selected[0].loudness_lufs == -14.0
    # Per-arc fill follows the prompt allocation (within one song of each share).
    for fill, share in zip(result.arcs, [1200, 600, 1800]):
        assert fill.target_seconds == pytest.approx(share)
        assert abs(fill.filled_seconds - share) <= 200


def test_prompts_take_turns_and_best_matches_come_first():
    plan = plan_3_arcs()
    matches = fake_matches(plan, per_prompt=6)
    result = select_for_duration(plan, matches, None, target_seconds=60 * 60)
    end = [s for s in result.selected if s.arc_number == 3]
    # 1800 s of 200 s songs over 3 prompts: each prompt gives its three best.
    assert sorted(s.song_id for s in end) == sorted(f"p{o}s{k}" for o in (4, 5, 6) for k in range(3))
    # Mix order inside the arc follows the prompt order.
    assert [s.prompt_number for s in end] == sorted(s.prompt_number for s in end)
    # Unused candidates stay available as alternates, best first.
    assert [a["song_id"] for a in result.alternates[4]] == ["p4s3", "p4s4", "p4s5"]


def test_a_song_fitting_two_arcs_goes_where_it_scored_best():
    plan = plan_3_arcs()
    shared = [("both", {1: 0.95, 6: 0.99})]
    matches = fake_matches(plan, per_prompt=6, shared=shared)
    result = select_for_duration(plan, matches, None, target_seconds=60 * 60)
    placed = [s for s in result.selected if s.song_id == "both"]
    assert len(placed) == 1 and placed[0].arc_number == 3


def test_short_library_repeats_arcs_and_says_so():
    plan = plan_3_arcs()
    matches = fake_matches(plan, per_prompt=1)  # 6 songs x 200 s = 20 min for a 60 min target
    result = select_for_duration(plan, matches, None, target_seconds=60 * 60)
    assert result.repeated and result.filled_seconds >= 3600
    repeats = [s for s in result.selected if s.repeat]
    firsts = {s.song_id for s in result.selected if not s.repeat}
    assert len(firsts) == 6 and {s.song_id for s in repeats} <= firsts
    # A repeat comes after the arc's songs were played once, inside the same arc.
    for s in repeats:
        first = next(f for f in result.selected if f.song_id == s.song_id and not f.repeat)
        assert s.arc_number == first.arc_number
    assert any("library short: arc 3" in n and "repeats" in n for n in result.notes)
    assert sum(f.repeats for f in result.arcs) == len(repeats)
    # Gap accounting sees only distinct songs.
    assert sum(result.prompt_seconds.values()) == pytest.approx(6 * 200)


def test_without_repeats_the_shortfall_is_reported():
    plan = plan_3_arcs()
    matches = fake_matches(plan, per_prompt=1)
    result = select_for_duration(plan, matches, None, target_seconds=60 * 60, allow_repeat=False)
    assert not result.repeated and result.filled_seconds == pytest.approx(1200)
    assert result.shortfall_seconds == pytest.approx(2400)
    assert any("short of the target by 40.0 min" in n for n in result.notes)


def test_arc_without_matches_is_noted_and_target_comes_from_the_page():
    plan = plan_3_arcs()
    plan.duration_minutes = 30
    matches = fake_matches(plan, per_prompt=4)
    matches = matches[matches.arc_number != 2]
    result = select_for_duration(plan, matches, None)
    assert result.target_seconds == 1800
    assert result.arcs[1].songs == 0
    assert any("arc 2 (Middle) has no matching songs" in n for n in result.notes)
    assert result.filled_seconds >= 1800  # arc 3 makes up for the empty arc
    with pytest.raises(ConfigError, match="no target duration"):
        select_for_duration(make_plan(1, [("A", None, ["a"])]), matches, None)
    with pytest.raises(ConfigError, match="> 0 seconds"):
        select_for_duration(plan, matches, None, target_seconds=0)


def test_even_allocation_changes_the_arc_shares():
    plan = plan_3_arcs()
    matches = fake_matches(plan, per_prompt=6)
    result = select_for_duration(plan, matches, None, target_seconds=3600, allocation="even")
    assert [a.target_seconds for a in result.arcs] == pytest.approx([1200, 1200, 1200])
    assert result.arcs[1].filled_seconds >= 1000  # the one-prompt arc now plays ~20 min


def test_selection_from_a_real_query_has_no_duplicates():
    songs = library_songs(takes="abc")
    plan = new_track_plan(duration_minutes=20)
    matches = query_track(plan, encode_plan(plan), songs, encode_library(songs), min_similarity=0.5)
    result = select_for_duration(plan, matches, songs)
    firsts = [s.song_id for s in result.selected if not s.repeat]
    assert len(firsts) == len(set(firsts))
    assert result.filled_seconds >= 1200
    frame = result.selected_frame()
    assert list(frame["order"]) == list(range(1, len(frame) + 1))
    assert result.to_dict()["target_seconds"] == 1200
