"""The track-page parser on our own fixture pages, bad input, and the real samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from lofi_pipeline.core.errors import LofiError, PageParseError
from lofi_pipeline.core.notion import (duration_to_minutes, list_export_pages, page_id_from_url,
                                       parse_track_file, parse_track_markdown, read_track_page)

PAGES = Path(__file__).resolve().parents[1] / "fixtures" / "pages"
DEMO = Path(__file__).resolve().parents[2] / "lofi_pipeline" / "demo_pages"
SAMPLES = Path("/work/shared/notion-samples")


def parse(name: str):
    return parse_track_file(PAGES / name)


def shape(plan):
    return [len(a.prompts) for a in plan.arcs]


def has_warning(plan, *words: str) -> bool:
    return any(all(w in w_ for w in words) for w_ in plan.warnings)


# ------------------------------------------------------------------ fixtures

def test_track13_style_checkbox_numbered_with_anchor_suffix():
    plan = parse("track13_checkbox_numbered.md")
    assert plan.track_number == 13
    assert plan.title == "Harbor Lights ⚓ LoFi & Synthwave Mix (3HR Night Focus • Royalty Free)"
    assert plan.output_filename == "harbor-lights-lofi-synthwave-3hr-night-focus.mp4"
    assert plan.duration_minutes == 180
    assert shape(plan) == [3, 3, 2, 2]
    assert [a.name for a in plan.arcs] == ["Fog Horn Calm", "Dockside Pulse", "Lighthouse Drift", "Tide Fade"]
    assert plan.arcs[0].subtitle == "Harbor at Rest"
    assert plan.arcs[0].description == "Ambient, drum-free opening"
    assert plan.anchor_phrase == "harbor lights night focus"
    first = plan.arcs[0].prompts[0]
    assert first.text.endswith("— harbor lights night focus")
    assert first.core_text == "low fog horn drone under soft synth pads, distant water lapping"
    assert [p.checked for p in plan.arcs[0].prompts] == [True, True, False]
    assert [p.number for p in plan.prompts] == list(range(1, 11))
    assert plan.visible_hashtags == ["#LoFi", "#Synthwave", "#NightFocus", "#HarborLights", "#RoyaltyFree"]
    assert plan.hidden_tags[0] == "harborlights" and len(plan.hidden_tags) == 8
    # Checklist to-dos after the arc section are never prompts.
    assert not any("Thumbnail" in p.text for p in plan.prompts)
    assert plan.warnings == []


def test_track9_style_marks_and_seed_emoji_arc_headers():
    plan = parse("track9_marks_emoji_arcs.md")
    assert plan.track_number == 9
    assert plan.duration_minutes == 60
    assert shape(plan) == [3, 2, 2, 2]
    assert [a.number for a in plan.arcs] == [1, 2, 3, 4]
    assert [a.bpm_range for a in plan.arcs] == [(60, 70), (70, 80), (65, 75), (55, 65)]
    p1, p2 = plan.arcs[0].prompts[:2]
    assert p1.checked is False and p2.checked is True  # X = not generated, ✓ = generated
    assert p1.text == "soft felt piano, light drizzle on a tin roof, vinyl crackle — attic rain sketchbook"
    assert p1.core_text == "soft felt piano, light drizzle on a tin roof, vinyl crackle"
    assert plan.anchor_phrase == "attic rain sketchbook"
    assert not any("Upload" in p.text for p in plan.prompts)


def test_unnumbered_prompts_are_numbered_in_page_order():
    plan = parse("unnumbered_phase_emoji_bold.md")
    assert [a.name for a in plan.arcs] == ["Spin Cycle", "Warm Dryer", "Midnight Fold"]
    assert shape(plan) == [3, 2, 2]
    assert [p.number for p in plan.prompts] == [1, 2, 3, 4, 5, 6, 7]
    assert [p.order for p in plan.prompts] == [1, 2, 3, 4, 5, 6, 7]
    assert plan.prompt_suffix == "neon laundromat hum"
    assert plan.arcs[1].prompts[1].checked is False
    # The last prompt lacks the suffix: kept whole, with a warning naming its line.
    last = plan.prompts[-1]
    assert last.core_text == last.text
    assert has_warning(plan, "line 28", "prompt 7", "does not end with")
    assert plan.visible_hashtags == ["#LoFi", "#Vaporwave", "#NightMix", "#Laundromat"]


def test_numbered_list_prompts_restart_per_arc_and_chapters_are_not_prompts():
    plan = parse("numbered_list_h1.md")
    assert shape(plan) == [3, 3, 2, 2]
    assert [p.number for p in plan.arcs[1].prompts] == [1, 2, 3]
    assert [p.order for p in plan.arcs[1].prompts] == [4, 5, 6]
    assert all(p.checked is None for p in plan.prompts)
    assert plan.arcs[1].bpm_range == (70, 78)
    # Overview rows run together on one line, and split over two lines.
    assert plan.title == "Last Train Home — LoFi Synthwave Study Mix"
    assert plan.output_filename == "last-train-home-lofi-synthwave-study-mix.mp4"
    assert plan.retention_target == "30–40 min (after the first week)"
    assert plan.duration_minutes == 120  # "2-Hour"
    # "All prompts end with" wins over a differently worded anchor phrase.
    assert plan.anchor_phrase == "late train glow — quiet motion, steady focus"
    assert plan.prompt_suffix == "subway synthwave lofi"
    assert plan.arcs[0].prompts[0].core_text == "distant train rumble, soft pad bed, station hum, slow drift"
    assert plan.visible_hashtags == ["#LoFi", "#Synthwave", "#StudyMusic", "#NightTrain"]
    assert plan.hidden_tags == ["lastrain", "subwaylofi", "nighttrain", "synthwave", "studymix"]
    assert not any("0:30:00" in p.text for p in plan.prompts)


def test_five_arcs_and_anchor_that_prompts_do_not_end_with():
    plan = parse("five_arcs_anchor_mismatch.md")
    assert shape(plan) == [2, 2, 2, 2, 2]
    assert plan.anchor_phrase == "greenhouse glass calm"
    assert plan.prompt_suffix is None
    assert all(p.core_text == p.text for p in plan.prompts)
    assert has_warning(plan, "no prompt ends with the anchor phrase")
    assert plan.description.startswith("Warm glass, wet leaves")


def test_h3_sections_with_revised_block_after_the_arcs():
    plan = parse("h3_sections_revised.md")
    assert shape(plan) == [3, 3, 2, 2]
    assert plan.title == "Orbit Break 🛰️ LoFi Synthwave Mix"
    assert plan.track_number == 12  # from "## 🎵 Track 12 — …" in the revised block
    assert plan.mood_arc == "Launch Calm → Zero-G Focus → Earthrise → Reentry"
    assert plan.visible_hashtags == ["#LoFi", "#Synthwave", "#SpaceMusic", "#FocusMusic"]
    assert plan.warnings == []


def test_h2_phases_and_anchor_whose_head_is_the_suffix():
    plan = parse("h2_phases_anchor_head.md")
    assert shape(plan) == [2, 2, 1, 2]
    assert plan.title == "Paper Lanterns 🏮 Dreamwave & LoFi Mix | 2-Hour Soft Focus & Sleep (Royalty Free)"
    assert plan.anchor_phrase == "lantern light memory — warm, hushed, floating dreamwave."
    assert plan.prompt_suffix == "lantern light memory"
    assert plan.prompts[0].core_text == "ambient pad + paper rustle"
    assert plan.duration_minutes == 120


def test_phases_without_prompts_warn_instead_of_failing():
    plan = parse("lost_prompts.md")
    assert len(plan.arcs) == 5 and plan.prompts == []
    assert sum("has no prompts" in w for w in plan.warnings) == 5
    assert has_warning(plan, "line 9", "arc 1 'Pier Wait' has no prompts")


def test_page_without_arc_section_warns():
    plan = parse("no_arc_section.md")
    assert plan.arcs == [] and plan.track_number == 30
    assert plan.title == "Desert Highway Synthwave (idea)"
    assert has_warning(plan, "no arc section")


def test_plain_bullets_duplicates_and_notes():
    plan = parse("plain_bullets_duplicates.md")
    assert shape(plan) == [2, 3, 0]
    assert plan.arcs[0].bpm_range == (60, 66)
    assert plan.arcs[1].bpm_range == (70, 76)  # from a "BPM: 70–76" line under the heading
    assert [p.checked for p in plan.arcs[0].prompts] == [None, None]
    # Nested notes and plain bullets between checkbox prompts are not prompts.
    assert not any("note:" in p.text or "reminder" in p.text for p in plan.prompts)
    assert not any("80 BPM" in p.text for p in plan.prompts)
    assert has_warning(plan, "prompt number 3 appears twice")
    assert has_warning(plan, "arc 3 'Closing Time' has no prompts")
    assert has_warning(plan, "Duration 'about an hour'")
    assert plan.duration_minutes is None


def test_json_contract_keys():
    data = parse("track13_checkbox_numbered.md").to_dict()
    for key in ("track_number", "title", "output_filename", "duration_minutes", "mood_arc",
                "visible_hashtags", "hidden_tags", "anchor_phrase", "arcs", "warnings"):
        assert key in data
    arc = data["arcs"][0]
    assert set(("number", "name", "bpm_range", "prompts")) <= set(arc)
    assert set(("number", "text", "checked")) <= set(arc["prompts"][0])


def test_demo_pages_parse_with_expected_shape():
    shapes = {101: [3, 3, 2, 2], 102: [2, 2, 2, 2, 2], 103: [3, 3, 2, 2], 104: [3, 3, 3, 3]}
    for number, expected in shapes.items():
        plan = parse_track_file(DEMO / f"track_{number}.md")
        assert plan.track_number == number
        assert shape(plan) == expected
        assert all(a.bpm_range for a in plan.arcs)
        assert plan.warnings == []
    assert parse_track_file(DEMO / "track_104.md").duration_minutes == 60


# ----------------------------------------------------------------- bad input

@pytest.mark.parametrize("text", ["", "   \n\n  "])
def test_empty_page_is_an_error(text):
    with pytest.raises(PageParseError, match="empty") as info:
        parse_track_markdown(text, source="pages/empty.md")
    assert "pages/empty.md" in str(info.value)


def test_binary_page_is_an_error_naming_the_line():
    with pytest.raises(PageParseError, match="binary") as info:
        parse_track_markdown("# Track 1\nok\n\x00\x01\x02PNG", source="cover.png")
    assert info.value.line == 3 and "cover.png, line 3" in str(info.value)


def test_text_without_any_track_structure_is_an_error():
    with pytest.raises(PageParseError, match="does not look like a track page") as info:
        parse_track_markdown("just a shopping list\nmilk, eggs\n", source="notes.md")
    assert info.value.line == 1


def test_binary_file_on_disk(tmp_path):
    path = tmp_path / "Track 5 0123456789abcdef0123456789abcdef.md"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(PageParseError, match="binary"):
        parse_track_file(path)


# ---------------------------------------------------------------- helpers

@pytest.mark.parametrize("text,minutes", [
    ("3 hours", 180), ("3 hr", 180), ("1 Hour", 60), ("2-Hour", 120), ("3HR", 180),
    ("2 hours (Sleep / Reflection category)", 120), ("90 min", 90), ("1h 30m", 90),
    ("1.5 hours", 90), ("1:30:00", 90), ("soon", None), (None, None),
])
def test_duration_to_minutes(text, minutes):
    assert duration_to_minutes(text) == minutes


@pytest.mark.parametrize("url", [
    "https://www.notion.so/acme/Track-20-2a8433e57885800ab456d6dd739b5d36",
    "https://www.notion.so/acme/Track-20-2a8433e57885800ab456d6dd739b5d36?pvs=4",
    "https://www.notion.so/2a8433e57885800ab456d6dd739b5d36?v=0123456789abcdef0123456789abcdef",
    "2a8433e57885800ab456d6dd739b5d36",
    "2A8433E5-7885-800A-B456-D6DD739B5D36",
    "https://acme.notion.site/Track-20-2a8433e57885800ab456d6dd739b5d36#1234",
    "Track 20 2a8433e57885800ab456d6dd739b5d36.md",
])
def test_page_id_from_every_url_form(url):
    assert page_id_from_url(url) == "2a8433e5-7885-800a-b456-d6dd739b5d36"


@pytest.mark.parametrize("bad", ["", "https://www.notion.so/acme/Track-20", "12345"])
def test_page_id_error_is_clear(bad):
    with pytest.raises(LofiError, match="could not find a Notion page id"):
        page_id_from_url(bad)


def test_export_folder_listing(tmp_path):
    sub = tmp_path / "Tracks"
    sub.mkdir()
    text = (PAGES / "track13_checkbox_numbered.md").read_text()
    (sub / "Track 13 2a8433e57885800ab456d6dd739b5d36.md").write_text(text)
    (tmp_path / "hand written.md").write_text(text)
    pages = list_export_pages(tmp_path)
    assert [p["title"] for p in pages] == ["Track 13", "hand written"]
    assert pages[0]["id"] == "2a8433e5-7885-800a-b456-d6dd739b5d36" and pages[1]["id"] is None
    assert pages[0]["last_edited_time"].endswith("Z")
    with pytest.raises(LofiError, match="not a folder"):
        list_export_pages(tmp_path / "missing")


# ------------------------------------------------------ the real sample pages

# (file stem → prompts per arc, title, BPM ranges (None when the page has none), track number)
REAL = {
    "28e433e57885807c8920d867916c5ac0": ([0, 0, 0, 0, 0], "Morning Sunrise Chill Synthwave & LoFi Mix — 3 Hour Relaxing Study & Focus Music (Royalty Free)", None, None),
    "291433e57885806792f6e0aa1ac46418": ([3, 4, 4, 4, 3], "Rainy Dusk Coding Desk — 3 Hour Lo-Fi & Synthwave Deep Focus (Royalty Free)", None, None),
    "293433e5788580459a0adbe61113fc73": ([3, 3, 3, 3], "Dawn Drive 🚗 LoFi Synthwave Mix", None, 11),
    "293433e578858077a73fec9de06741f7": ([3, 3, 3, 3], "Static Dreams ❄️ Winter Nights LoFi Synthwave Mix", None, None),
    "293433e5788580b8b868fd7acd0abe31": ([3, 4, 3, 3], "City Signals 🌃 LoFi Vaporwave Night Mix", None, None),
    "293433e5788580dd9240d2845e48c419": ([3, 4, 3, 3], "Night Shift Coding Vol. 2 — 3 Hour LoFi Synthwave Mix for Deep Focus & Late Night Study (Royalty Free)", None, None),
    "2a8433e57885800ab456d6dd739b5d36": ([4, 4, 3, 3], "3HR Night Coding — LoFi Synthwave Neon Rain Deep Focus (Royalty Free)", None, None),
    "2a8433e5788580ae8965c2b6eb22d5a6": ([4, 4, 3, 3], "Pre-Dawn Citylight Focus ⌨️ LoFi & Synthwave Mix (3HR Deep Study Music • Royalty Free)", None, 20),
    "2a8433e5788580b38210f405dafd42f1": ([3, 3, 3, 3], "Static Reflections 🌙 Dreamwave & LoFi Mix | 2-Hour Soft Focus, Calm Energy & Reflective Study Music (Royalty Free)", None, None),
    "2c2433e5788580d59ae5e3c7cda39e57": ([3, 4, 3, 3], "3HR Rainy Desk Coding ⌨️ LoFi & Synthwave Mix — Deep Night Focus (Royalty Free)", [(45, 55), (60, 70), (70, 78), (45, 60)], 21),
}


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/notion-samples is not on this machine")
@pytest.mark.parametrize("stem", sorted(REAL))
def test_real_sample_pages(stem):
    counts, title, bpm, track = REAL[stem]
    plan = parse_track_file(SAMPLES / f"{stem}.md")
    assert shape(plan) == counts
    assert plan.title == title
    assert [a.bpm_range for a in plan.arcs] == (bpm or [None] * len(counts))
    assert plan.track_number == track
    numbers = [p.number for p in plan.prompts]
    assert numbers == list(range(1, len(numbers) + 1))  # all real pages number 1…N
    if stem.startswith("28e"):
        assert sum("has no prompts" in w for w in plan.warnings) == 5
    elif stem.startswith("291"):
        assert [w for w in plan.warnings if "anchor phrase" in w]
    else:
        assert plan.warnings == []
    if stem.startswith("2c2"):
        assert plan.prompt_suffix == "vaporwave synthwave lofi"
        assert plan.prompts[0].core_text.endswith("warm analog hiss")


# ------------------------------------------------------ no silent loss (issue 13.5)

def test_wordless_arc_headings_are_arcs_named_from_the_mood_arc_row():
    plan = parse("wordless_emoji_arcs.md")
    assert plan.track_number == 22
    # Phase 1, "### 🌧️🌧️🌧️", "## 🎧" (ranked above the arcs, but prompts follow) and "### 4".
    assert shape(plan) == [2, 3, 2, 3]
    assert [a.number for a in plan.arcs] == [1, 2, 3, 4]
    assert [a.name for a in plan.arcs] == ["Warm", "Drift", "Calm", "Fade"]
    assert [p.number for p in plan.prompts] == list(range(1, 11))
    assert all(p.core_text and not p.core_text.endswith("study") for p in plan.prompts)
    assert has_warning(plan, "line 14", "'🌧️🌧️🌧️' has no name", "'Drift' from the Mood Arc row")
    assert has_warning(plan, "line 18", "'🎧'")
    assert has_warning(plan, "line 21", "'4' has no name", "'Fade'")


def test_a_prompt_outside_the_arcs_is_reported_with_its_line():
    plan = parse("wordless_emoji_arcs.md")
    lost = [w for w in plan.warnings if "looks like a Suno prompt" in w]
    # The checklist's "- [ ] 11. …" prompt; never the checklist items or brand notes.
    assert len(lost) == 1 and "line 28" in lost[0] and "extra outro idea" in lost[0]


WORDLESS_NO_MOOD = """# Track 23 — Numbers Only
| Field | Value |
| Title | Numbers Only Mix |
## MUSIC ARC
### 1
1. soft pads, slow tape hiss, warm bass, quiet room
2. brushed drums, mellow keys, light rain
### 🌧️🌧️ (BPM 50–55)
3. drifting synth, faint hum, slow pulse
### 3.
4. dissolving chords, tape stop, slow fade into silence
"""


def test_number_only_and_emoji_headings_without_a_mood_row_are_called_arc_n():
    plan = parse_track_markdown(WORDLESS_NO_MOOD, source="numbers.md")
    assert shape(plan) == [2, 1, 1]
    assert [a.number for a in plan.arcs] == [1, 2, 3]
    assert [a.name for a in plan.arcs] == ["Arc 1", "Arc 2", "Arc 3"]
    assert plan.arcs[1].bpm_range == (50, 55)
    assert has_warning(plan, "numbers.md, line 8", "'🌧️🌧️ (BPM 50–55)' has no name", "'Arc 2'")


def test_prompts_after_the_arc_section_are_reported_not_dropped():
    text = WORDLESS_NO_MOOD.replace("### 3.\n", "## Notes\n")
    plan = parse_track_markdown(text, source="notes.md")
    assert shape(plan) == [2, 1]
    assert has_warning(plan, "notes.md, line 11", "looks like a Suno prompt", "dissolving chords")


def test_notes_nested_under_a_prompt_that_read_like_prompts_are_reported():
    text = WORDLESS_NO_MOOD.replace(
        "3. drifting synth, faint hum, slow pulse\n",
        "3. drifting synth, faint hum, slow pulse\n   - alt: slower take\n"
        "   - drifting synth, faint hum, slow pulse, more reverb\n")
    plan = parse_track_markdown(text, source="nested.md")
    assert shape(plan) == [2, 1, 1]
    lost = [w for w in plan.warnings if "looks like a Suno prompt" in w]
    assert len(lost) == 1 and "line 11" in lost[0]


def test_list_items_before_the_first_arc_are_reported_with_every_line():
    text = WORDLESS_NO_MOOD.replace("## MUSIC ARC\n", "## MUSIC ARC\n- intro idea\n- second idea\n")
    plan = parse_track_markdown(text, source="orphans.md")
    assert has_warning(plan, "orphans.md, line 5", "2 list item(s)", "(lines 5, 6)")


HUGE = 10**15


def test_numbers_the_library_cannot_store_are_warned_with_page_and_line():
    text = (f"# Track {HUGE} — Too Big\n| Field | Value |\n| Title | Big |\n## MUSIC ARC\n"
            f"### Phase {HUGE} — Wide\n- [ ] {HUGE}. soft pads, tape hiss, warm bass, slow\n"
            "- [ ] 2. brushed drums, mellow keys, light rain\n")
    plan = parse_track_markdown(text, source="big.md")
    assert plan.track_number is None
    assert has_warning(plan, "big.md, line 1", "track number 1000000000000000 is larger than")
    assert [a.number for a in plan.arcs] == [1]  # by position
    assert has_warning(plan, "big.md, line 5", "arc number 1000000000000000", "at most 2147483647")
    assert [p.number for p in plan.prompts] == [1, 2]
    assert has_warning(plan, "big.md, line 6", "prompt number 1000000000000000", "at most 2147483647")
    assert all(abs(n) <= 2**31 - 1 for n in [p.number for p in plan.prompts] + [p.order for p in plan.prompts])


def test_a_negative_track_number_is_not_read_as_positive():
    plan = parse_track_markdown("# Track -5 — Minus\n| Field | Value |\n| Title | Minus |\n",
                                source="minus.md")
    assert plan.track_number is None
    assert has_warning(plan, "minus.md, line 1", "negative")


def test_a_binary_page_names_the_file(tmp_path):
    path = tmp_path / "Track 7 cover.md"
    path.write_bytes(b"# Track 7\n\xff\xd8\xff\xe0 JFIF \x80\x81 not text\n")
    with pytest.raises(PageParseError) as info:
        parse_track_file(path)
    assert str(path) in str(info.value) and "not UTF-8 text" in str(info.value)
    with pytest.raises(PageParseError, match="Track 7 cover.md"):
        read_track_page(path)


def test_one_track_number_rule():
    from lofi_pipeline.core.tracknumbers import (check_track_number, find_track_number,
                                                 track_number_from_title)

    assert track_number_from_title("🌧️ TRACK 21 — Rain") == 21
    assert track_number_from_title("Track #7: Dawn") == 7
    assert track_number_from_title("harbor-track_13-final.mp4") == 13
    assert track_number_from_title("Soundtrack 5 and a Tracklist 1") is None
    assert track_number_from_title(f"Track {HUGE}") is None
    assert find_track_number("Track -5")[1] is not None
    assert find_track_number("Notes about Track 4", at_start=True) == (None, None)
    assert check_track_number(13) == 13
    for bad in (-5, 99999999999, True):
        with pytest.raises(LofiError, match=r"--track = .*expected a track number from 0 to 2147483647"):
            check_track_number(bad)
