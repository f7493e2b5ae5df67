"""Vibe tags and mood keywords from prompt text."""

from lofi_pipeline.core.tags import (
    MOOD_KEYWORDS,
    VIBE_TAGS,
    extract_mood_keywords,
    extract_vibe_tags,
    normalize_tag,
)


def test_instruments_and_textures_in_order_of_mention():
    text = "warm Rhodes piano, vinyl crackle, soft rain on the window, 808 sub, slow arpeggio"
    assert extract_vibe_tags(text) == ["rhodes", "vinyl crackle", "rain", "808", "arpeggio"]


def test_plurals_and_synonyms_map_to_one_tag():
    assert extract_vibe_tags("lush pads") == ["pads"]
    assert extract_vibe_tags("dusty crackles") == ["vinyl crackle"]
    assert extract_vibe_tags("e-piano chords") == ["rhodes", "synth chords"]
    assert extract_vibe_tags("arpeggiated synth") == ["arpeggio", "analog synth"]
    assert extract_vibe_tags("808s and kicks") == ["808", "drums"]


def test_longest_phrase_wins_and_is_not_double_counted():
    # "tape hiss" is a texture of its own; the word "tape" must not also give "tape warmth".
    assert extract_vibe_tags("low tape hiss") == ["tape hiss"]
    assert extract_vibe_tags("warm tape saturation") == ["tape warmth"]


def test_beatless_prompt_is_not_tagged_with_drums():
    tags = extract_vibe_tags("ambient pads, no drums, muted kick in the distance")
    assert "no drums" in tags and "drums" not in tags


def test_words_are_matched_whole():
    # "bassoon" is not "bass", "rainbow" is not "rain", "low-key" is not piano keys.
    assert extract_vibe_tags("bassoon solo under a rainbow, low-key") == []


def test_mood_keywords():
    text = "nostalgic late-night calm, dreamy haze, a melancholy undertone"
    assert extract_mood_keywords(text) == ["nostalgic", "late night", "calm", "dreamy", "melancholic"]


def test_no_duplicates_and_empty_input():
    assert extract_mood_keywords("calm, calm, peaceful and serene") == ["calm"]
    assert extract_vibe_tags("") == [] and extract_vibe_tags(None) == []
    assert extract_mood_keywords(None) == []


def test_vocabularies_do_not_share_canonical_names():
    assert not set(VIBE_TAGS) & set(MOOD_KEYWORDS)


def test_normalize_tag_for_filters():
    assert normalize_tag("E-Piano") == "rhodes"
    assert normalize_tag("Vinyl") == "vinyl crackle"
    assert normalize_tag("nostalgia") == "nostalgic"
    assert normalize_tag("polka") is None


def test_split_tag_filters_sorts_and_rejects():
    import pytest

    from lofi_pipeline.core.errors import ConfigError
    from lofi_pipeline.core.tags import split_tag_filters

    vibe, mood = split_tag_filters(["E-Piano", "nostalgia"])
    assert vibe == ("rhodes",) and mood == ("nostalgic",)
    with pytest.raises(ConfigError, match="zither-core"):
        split_tag_filters(["zither-core"])
