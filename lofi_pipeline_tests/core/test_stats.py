import pandas as pd

from lofi_pipeline.core.stats import bar, library_stats, stats_markdown


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
    assert st.bpm.to_dict("list") == {"bpm": ["70–79", "100–109"], "songs": [2, 1]}
    assert st.keys.iloc[0].tolist() == ["A minor", 2]
    assert st.most_used.filename.tolist() == ["b.mp3", "c.mp3"]
    md = stats_markdown(st)
    assert "### BPM" in md and "70–79" in md and "█" in md


def test_bars_are_proportional():
    assert bar(10, 10, width=10) == "█" * 10
    assert bar(1, 100, width=10) == "█"
    assert bar(0, 10) == ""


def test_empty_library():
    st = library_stats(pd.DataFrame(), tracks=0, published=0)
    assert st.songs == 0 and "0 songs" in stats_markdown(st)
