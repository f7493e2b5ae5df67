"""Song meaning, score components and the whole-track query (real model)."""

import numpy as np
import pandas as pd
import pytest
from conftest_matching import (
    PARAPHRASES,
    UNRELATED,
    encode_library,
    encode_plan,
    library_plan,
    library_songs,
    make_plan,
    new_track_plan,
)

from lofi_pipeline.core.errors import ConfigError
from lofi_pipeline.core.matching import (
    MATCH_COLUMNS,
    MatchWeights,
    QueryFilters,
    arc_mood,
    arc_score,
    bpm_score,
    describe_song,
    find_prompt,
    key_score,
    prompt_query_texts,
    query_track,
    query_track_with_best,
    to_camelot,
    track_tempo_profile,
    usage_score,
)

# ---------------------------------------------------------------- song meaning


def test_find_prompt_handles_per_arc_and_global_numbering():
    per_arc = make_plan(5, [("A", None, ["a1", "a2"]), ("B", None, ["b1", "b2", "b3"])], per_arc_numbers=True)
    global_ = make_plan(6, [("A", None, ["a1", "a2"]), ("B", None, ["b1", "b2", "b3"])],
                        per_arc_numbers=False)
    assert find_prompt(per_arc, arc=2, prompt=3)[1].core_text == "b3"
    # Page numbers run 3..5 in arc 2: a global filename number and a per-arc one both work.
    assert find_prompt(global_, arc=2, prompt=4)[1].core_text == "b2"
    assert find_prompt(global_, arc=2, prompt=1)[1].core_text == "b1"
    assert find_prompt(global_, arc=2, prompt=9) is None
    assert find_prompt(global_, arc=7, prompt=1) is None


def test_song_text_from_prompt_drops_suffix_and_adds_arc_and_mood():
    plan = library_plan()
    meaning = describe_song(filename="A_2_3_19b.mp3", plan=plan)
    assert meaning.from_prompt
    assert meaning.core_text.startswith("warm rhodes chords")
    assert meaning.prompt_text.endswith("vaporwave synthwave lofi")  # the full Suno text is kept...
    assert "vaporwave synthwave lofi" not in meaning.text  # ...but the shared suffix is not embedded
    assert "Steady Focus Flow" in meaning.text
    assert {"rhodes", "vinyl crackle", "drums"} <= set(meaning.vibe_tags)
    assert "relaxed" in meaning.mood_keywords  # "mellow"


def test_arc_mood_takes_the_arcs_part_of_the_mood_line():
    plan = library_plan()
    assert arc_mood(plan, plan.arcs[2]) == "Midnight Clarity"
    plan.mood_arc = "calm to focused"  # not one part per arc: the whole line
    assert arc_mood(plan, plan.arcs[2]) == "calm to focused"


def test_song_without_prompt_is_flagged_and_described_by_analysis():
    meaning = describe_song(filename="rainy_night_rhodes.wav", bpm=72.4, key="A minor", energy_level="low")
    assert not meaning.from_prompt
    assert "72 BPM" in meaning.text and "A minor" in meaning.text and "low energy" in meaning.text
    assert "rainy night rhodes" in meaning.text
    assert meaning.vibe_tags == ["rain", "rhodes"]
    # A conventional name whose plan has no such prompt is flagged too.
    assert not describe_song(filename="A_9_9_19a.mp3", plan=library_plan()).from_prompt


# ------------------------------------------------------------------- weights


def test_weights_defaults_and_partial_mapping():
    assert MatchWeights().as_dict() == {"semantic": 0.5, "arc": 0.2, "bpm": 0.15, "key": 0.1, "usage": 0.05}
    w = MatchWeights.from_mapping({"usage": 0.3, "key": 0})
    assert w.usage == 0.3 and w.key == 0.0 and w.semantic == 0.5
    assert MatchWeights.from_mapping(None) == MatchWeights()


@pytest.mark.parametrize("bad, words", [
    ({"tempo": 0.1}, "unknown match weight 'tempo'"),
    ({"bpm": -1}, "'bpm' must be a finite number >= 0"),
    ({"bpm": "high"}, "'bpm' must be a number"),
    ({"bpm": True}, "'bpm' must be a number"),
    ({k: 0 for k in ("semantic", "arc", "bpm", "key", "usage")}, "all zero"),
])
def test_weights_validation_names_the_source_and_key(bad, words):
    with pytest.raises(ConfigError, match="settings.yaml") as err:
        MatchWeights.from_mapping(bad, source="settings.yaml")
    assert words in str(err.value)


# ---------------------------------------------------------------- components


def test_arc_score():
    assert arc_score(2, 2) == 1.0
    assert arc_score(1, 2) == 0.5 and arc_score(3, 2) == 0.5
    assert arc_score(4, 1) == 0.0
    assert arc_score(None, 2) == arc_score(2, None) == 0.25


def test_bpm_score_uses_arc_range_then_tempo_profile():
    assert bpm_score(65, (60, 70)) == 1.0
    assert bpm_score(80, (60, 70)) == pytest.approx(0.5)  # 10 BPM out of 20 tolerance
    assert bpm_score(95, (60, 70)) == 0.0
    # Half-time detection of a 50 BPM ambient arc: 100 BPM fits, discounted.
    assert bpm_score(100, (45, 55)) == pytest.approx(0.9)
    assert bpm_score(None, (60, 70)) == 0.5 and bpm_score(float("nan"), (60, 70)) == 0.5
    # No arc range: the track's tempo profile decides.
    assert bpm_score(60, None, (55, 65)) == 1.0
    assert bpm_score(70, None, "fast") == pytest.approx(0.1)  # 18 BPM below 88
    assert bpm_score(60, None, None) == 0.5
    with pytest.raises(ConfigError, match="tempo profile"):
        bpm_score(60, None, "glacial")


def test_track_tempo_profile():
    plan = library_plan()
    assert track_tempo_profile(plan) == (45.0, 78.0)
    no_ranges = make_plan(3, [("Sleep", None, ["x"])])
    no_ranges.title = "Deep sleep ambient mix"
    assert track_tempo_profile(no_ranges)[1] < 80


def test_key_score_on_the_camelot_wheel():
    assert key_score("8A", "8A") == 1.0
    assert key_score("8A", "9A") == key_score("8A", "7A") == 0.8
    assert key_score("12B", "1B") == 0.8  # the wheel wraps
    assert key_score("8A", "8B") == 0.8  # relative major / minor
    assert key_score("8A", "9B") == 0.2
    assert key_score("8A", "2A") == 0.2
    assert key_score(None, "8A") == 0.5 and key_score("8A", "nonsense") == 0.5
    assert key_score("A minor", "C major") == 0.8


@pytest.mark.parametrize("name, code", [
    ("A minor", "8A"), ("C major", "8B"), ("Am", "8A"), ("F# major", "2B"), ("Bb minor", "3A"),
    ("E minor", "9A"), ("G", "9B"), ("8a", "8A"), ("12B", "12B"),
    ("13A", None), ("H minor", None), ("", None),
])
def test_to_camelot(name, code):
    assert to_camelot(name) == code


def test_usage_score():
    assert usage_score(0, False) == 1.0
    assert usage_score(1, False) == 0.5
    assert usage_score(3, False) == 0.25
    assert usage_score(1, True) == 0.25
    assert usage_score(None, None) == 1.0


# ---------------------------------------------------------------------- query


@pytest.fixture(scope="module")
def library():
    songs = library_songs()
    return songs, encode_library(songs)


@pytest.fixture(scope="module")
def new_plan():
    plan = new_track_plan()
    return plan, encode_plan(plan)


def test_paraphrased_prompts_find_their_song_and_unrelated_ones_are_gaps(library, new_plan):
    songs, song_vectors = library
    plan, prompt_vectors = new_plan
    matches, best = query_track_with_best(plan, prompt_vectors, songs, song_vectors)
    assert list(matches.columns) == MATCH_COLUMNS
    closest = dict(zip(best.prompt_order, best.similarity))
    assert set(closest) == {p.order for p in plan.prompts}  # every prompt, threshold or not
    for prompt in plan.prompts:
        rows = matches[matches["prompt_order"] == prompt.order]
        source = next((k for k, v in PARAPHRASES.items() if v == prompt.core_text), None)
        if source is None:
            assert prompt.core_text in UNRELATED
            assert rows.empty, f"unrelated prompt {prompt.core_text!r} matched {list(rows.filename)}"
            assert closest[prompt.order] < 0.6
            continue
        top = rows.iloc[0]
        assert top["filename"].startswith(f"A_{source[0]}_{source[1]}_19"), \
            (prompt.core_text, list(rows.filename))
        assert top["similarity"] > 0.6 and top["rank"] == 1
        assert (rows["similarity"] >= 0.6).all() and len(rows) <= 5
        assert list(rows["rank"]) == list(range(1, len(rows) + 1))
        assert rows["score"].is_monotonic_decreasing


def test_score_is_the_weighted_sum_of_its_components(library, new_plan):
    songs, song_vectors = library
    plan, prompt_vectors = new_plan
    w = MatchWeights(semantic=0.4, arc=0.3, bpm=0.1, key=0.1, usage=0.1)
    matches = query_track(plan, prompt_vectors, songs, song_vectors, weights=w, min_similarity=0.3)
    expected = (0.4 * matches.similarity.clip(0, 1) + 0.3 * matches.arc_score + 0.1 * matches.bpm_score
                + 0.1 * matches.key_score + 0.1 * matches.usage_score) / w.total()
    np.testing.assert_allclose(matches["score"], expected, rtol=1e-9)
    # Each component agrees with its scalar function.
    arcs = {a.number: a for a in plan.arcs}
    for r in matches.itertuples():
        assert r.arc_score == arc_score(r.arc, r.arc_number)
        expected_bpm = bpm_score(r.bpm, arcs[r.arc_number].bpm_range, track_tempo_profile(plan))
        assert r.bpm_score == pytest.approx(expected_bpm)
        assert r.usage_score == usage_score(r.times_used, False)
    # The reference key of a prompt is its most similar song's key: that song
    # (one of the takes tied at the top) scores 1.
    for _, rows in matches.groupby("prompt_order"):
        assert (rows[np.isclose(rows.similarity, rows.similarity.max())]["key_score"] == 1.0).any()


def test_usage_and_recent_use_push_a_song_down(library, new_plan):
    songs, song_vectors = library
    plan, prompt_vectors = new_plan
    worn = songs.copy()
    first = worn["filename"] == "A_2_3_19a.mp3"
    worn.loc[first, "times_used"] = 4
    worn.loc[first, "recently_used"] = True
    heavy = MatchWeights(usage=0.5)
    before = query_track(plan, prompt_vectors, songs, song_vectors, weights=heavy)
    after = query_track(plan, prompt_vectors, worn, song_vectors, weights=heavy)
    def rank(m):
        return int(m[(m.prompt_order == 2) & (m.filename == "A_2_3_19a.mp3")]["rank"].iloc[0])

    assert rank(before) == 1 and rank(after) > 1
    assert after[after.filename == "A_2_3_19a.mp3"]["usage_score"].iloc[0] == pytest.approx(0.1)


def test_filters(library, new_plan):
    songs, song_vectors = library
    plan, prompt_vectors = new_plan
    loose = dict(min_similarity=0.2, top_k=50)
    def run(table, **filters):
        return query_track(plan, prompt_vectors, table, song_vectors, filters=QueryFilters(**filters),
                           **loose)

    by_bpm = run(songs, bpm_min=60, bpm_max=70)
    assert not by_bpm.empty and by_bpm["bpm"].between(60, 70).all()
    by_key = run(songs, key="A minor")
    assert not by_key.empty and (by_key["camelot"] == "8A").all() and (by_key["key_score"] == 1.0).all()
    by_arc = run(songs, arc=3)
    assert not by_arc.empty and (by_arc["arc"] == 3).all()
    worn = songs.copy()
    worn.loc[worn.index[::2], "times_used"] = 1
    unused = run(worn, unused_only=True)
    assert not unused.empty and (unused["times_used"] == 0).all()
    tagged = run(songs, vibe_tags=("rain",))
    rain_files = set(songs[songs.vibe_tags.map(lambda t: "rain" in t)].filename)
    assert not tagged.empty and set(tagged.filename) <= rain_files
    with pytest.raises(ConfigError, match="H major"):
        query_track(plan, prompt_vectors, songs, song_vectors, filters=QueryFilters(key="H major"))


def test_songs_made_for_the_same_track_are_not_offered_unless_asked(library):
    songs, song_vectors = library
    own = library_plan()  # track 19: the library songs were made for it
    own_vectors = encode_plan(own)
    assert query_track(own, own_vectors, songs, song_vectors).empty
    asked = query_track(own, own_vectors, songs, song_vectors, include_same_track=True)
    assert len(asked) > 0 and (asked["source_track"] == 19).all()
    # An explicit exclude_track wins over the plan's own number; None excludes nothing.
    other = query_track(own, own_vectors, songs, song_vectors, exclude_track=99)
    assert len(other) == len(asked)
    assert len(query_track(own, own_vectors, songs, song_vectors, exclude_track=None)) == len(asked)
    assert query_track(own, own_vectors, songs, song_vectors, exclude_track=19).empty


def test_top_k_matches_a_full_sort_on_random_vectors():
    rng = np.random.default_rng(7)
    n, d = 3000, 32
    song_vectors = rng.normal(size=(n, d)).astype(np.float32)
    song_vectors /= np.linalg.norm(song_vectors, axis=1, keepdims=True)
    plan = make_plan(1, [("One", (60, 80), ["p1", "p2"]), ("Two", None, ["p3"])])
    prompt_vectors = song_vectors[[10, 20, 30]] + 0.05 * rng.normal(size=(3, d)).astype(np.float32)
    prompt_vectors /= np.linalg.norm(prompt_vectors, axis=1, keepdims=True)
    songs = pd.DataFrame({
        "song_id": [f"s{i}" for i in range(n)], "filename": [f"s{i}.mp3" for i in range(n)],
        "arc": rng.integers(1, 4, n), "bpm": rng.uniform(50, 110, n), "key": None,
        "camelot": [f"{rng.integers(1, 13)}{'AB'[rng.integers(0, 2)]}" for _ in range(n)],
        "source_track": 5, "times_used": rng.integers(0, 3, n), "recently_used": False,
        "duration_seconds": 180.0,
    })
    matches = query_track(plan, prompt_vectors, songs, song_vectors, top_k=7, min_similarity=-1.0)
    full = query_track(plan, prompt_vectors, songs, song_vectors, top_k=n, min_similarity=-1.0)
    assert len(matches) == 21 and len(full) == 3 * n
    for order in (1, 2, 3):
        got = matches[matches.prompt_order == order]
        want = full[full.prompt_order == order].head(7)
        assert list(got.song_id) == list(want.song_id)
        rows = [int(s[1:]) for s in got.song_id]
        np.testing.assert_allclose(got.similarity, song_vectors[rows] @ prompt_vectors[order - 1], rtol=1e-5)
    assert matches[matches.prompt_order == 1].song_id.iloc[0] == "s10"


def test_shapes_are_checked(library, new_plan):
    songs, song_vectors = library
    plan, prompt_vectors = new_plan
    with pytest.raises(ValueError, match="prompt_vectors"):
        query_track(plan, prompt_vectors[:2], songs, song_vectors)
    with pytest.raises(ValueError, match="song_vectors"):
        query_track(plan, prompt_vectors, songs, song_vectors[:3])


def test_prompt_texts_follow_plan_order():
    plan = new_track_plan()
    texts = prompt_query_texts(plan)
    assert len(texts) == len(plan.prompts)
    assert texts[0].startswith(PARAPHRASES[(1, 1)]) and "Rainy Opening" in texts[0]
