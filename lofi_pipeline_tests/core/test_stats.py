import pandas as pd

from lofi_pipeline.core.confidence import LOW_KEY_CONFIDENCE, LOW_TEMPO_CONFIDENCE
from lofi_pipeline.core.stats import LOW, bar, library_stats, stats_markdown, with_bars


def test_stats_bins_counts_and_report():
    songs = pd.DataFrame({
        "filename": ["a.mp3", "b.mp3", "c.mp3", "d.mp3"],
        "bpm": [72.0, 78.5, 101.0, None],
        "key": ["A minor", "A minor", "C major", None],
        "energy_level": ["low", "low", "high", None],
        "duration_seconds": [1800.0, 1800.0, 3600.0, None],
        "times_used": [0, 2, 1, 0],
    })
    st = library_stats(songs, tracks=3, published=1)
    assert st.songs == 4 and st.hours == 2.0
    assert st.bpm.to_dict("list") == {"bpm": ["70–79", "100–109"], "songs": [2, 1], LOW: [0, 0]}
    assert st.keys.iloc[0].tolist() == ["A minor", 2, 0]
    assert st.most_used.filename.tolist() == ["b.mp3", "c.mp3"]
    md = stats_markdown(st)
    assert "### BPM" in md and "70–79" in md and "█" in md
    # no confidence columns: nothing is a guess
    assert st.low_bpm == st.low_key == 0 and "guess" not in md and "░" not in md


def test_low_confidence_values_are_counted_apart_and_drawn_light():
    guess_bpm, guess_key = LOW_TEMPO_CONFIDENCE / 2, LOW_KEY_CONFIDENCE / 2
    songs = pd.DataFrame({
        "filename": ["a.mp3", "b.mp3", "c.mp3", "d.mp3", "e.mp3"],
        "bpm": [72.0, 75.0, 78.0, 101.0, None],
        "bpm_confidence": [0.9, guess_bpm, None, guess_bpm, 0.0],  # None: an old row; e is beatless
        "key": ["A minor", "A minor", "C major", "C major", None],
        "key_confidence": [0.9, guess_key, 0.9, 0.9, None],
        "energy_level": ["low"] * 5, "duration_seconds": [60.0] * 5, "times_used": [0] * 5,
    })
    st = library_stats(songs, tracks=1, published=0)
    assert (st.low_bpm, st.low_key) == (2, 1)  # the beatless song's 0.0 is no guessed BPM
    assert st.bpm.to_dict("list") == {"bpm": ["70–79", "100–109"], "songs": [3, 1], LOW: [1, 1]}
    assert dict(zip(st.keys["key"], st.keys[LOW])) == {"A minor": 1, "C major": 0}
    chart = dict(zip(with_bars(st.bpm)["bpm"], with_bars(st.bpm)["chart"]))
    assert chart["70–79"] == "█" * 16 + "░" * 8  # a third of the peak bar is a guess
    assert chart["100–109"] == "░" * 8  # its only song is a guess: nothing solid
    md = stats_markdown(st)
    assert "2 BPM and 1 key value(s) are low-confidence guesses" in md and LOW in md.split("### BPM")[1]


def test_bars_are_proportional():
    assert bar(10, 10, width=10) == "█" * 10
    assert bar(1, 100, width=10) == "█"
    assert bar(0, 10) == ""
    assert bar(10, 10, width=10, low=3) == "█" * 7 + "░" * 3
    assert bar(100, 100, width=10, low=1) == "█" * 9 + "░"  # one guess among many still shows


def test_a_row_stored_before_flags_is_reported_with_the_rules_reasons():
    songs = pd.DataFrame({"filename": ["old.mp3", "fine.mp3"], "flags": [None, []], "loudness_lufs": [None, -16.0],
                          "duration_seconds": [60.0, 60.0], "bpm": [None, 80.0], "key": [None, "A minor"],
                          "energy_level": [None, "low"], "times_used": [0, 0]})
    st = library_stats(songs, tracks=1, published=0)  # raised TypeError joining the NULL flags
    assert st.flagged == 1 and st.flagged_songs["filename"].tolist() == ["old.mp3"]
    assert st.flagged_songs["flags"].iloc[0].startswith("silent")


def test_empty_library():
    st = library_stats(pd.DataFrame(), tracks=0, published=0)
    assert st.songs == 0 and "0 songs" in stats_markdown(st)
