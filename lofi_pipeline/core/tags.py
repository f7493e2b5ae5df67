"""Vibe tags and mood keywords read from Suno prompt text — the one vocabulary.

A prompt such as ``"warm rhodes chords, vinyl crackle, soft rain, nostalgic
late-night calm"`` yields the vibe tags ``["rhodes", "vinyl crackle", "rain"]``
(instruments and textures) and the mood keywords ``["nostalgic", "calm"]``.
Both are stored per song as lists and used as query filters, so every spelling
the producer writes ("Rhodes piano", "e-piano", "crackles") must map to one
canonical tag. That mapping lives here and nowhere else.

Conventions
-----------
* Matching is on whole words, case-insensitive; hyphens, slashes and ``+``
  separate words (``"lo-fi"`` is read as ``"lo fi"``).
* Each canonical tag lists its spellings, longest phrases first, so
  ``"tape hiss"`` wins over the bare ``"hiss"`` texture and both are not emitted.
* Output is in order of first appearance in the text, without duplicates, so
  the same prompt always gives the same list.
"""

from __future__ import annotations

import re
from functools import lru_cache

# Canonical vibe tag -> spellings (singular forms; plurals are handled by the
# tokenizer). Multi-word spellings are matched as phrases.
VIBE_TAGS: dict[str, tuple[str, ...]] = {
    # keys and synths
    "rhodes": ("rhodes", "rhodes piano", "electric piano", "e piano", "epiano", "wurlitzer", "wurli"),
    "piano": ("piano", "felt piano", "upright piano"),
    "pads": ("pad", "synth pad", "pad wash", "pad layer", "pad resonance"),
    "synth chords": ("synth chord", "analog chord", "chord", "chord progression", "complex chord"),
    "arpeggio": ("arpeggio", "arp", "arpeggiated", "arpeggiator"),
    "synth lead": ("synth lead", "lead", "lead synth", "melodic motif", "melody"),
    "analog synth": ("analog synth", "analogue synth", "synth", "synthesizer", "analog layer",
                     "synth layer", "synth texture"),
    "bass": ("bass", "bass line", "bassline", "sub bass", "bass groove"),
    "808": ("808", "tr 808", "808s"),
    "guitar": ("guitar", "guitars", "clean guitar", "jazz guitar"),
    "saxophone": ("sax", "saxophone"),
    "strings": ("string", "strings", "violin", "cello"),
    "bells": ("bell", "chime", "glockenspiel", "music box"),
    "vocal chops": ("vocal chop", "vocal", "vox", "choir"),
    # rhythm
    "drums": ("drum", "drums", "kick", "snare", "percussion", "hi hat", "hihat", "breakbeat", "boom bap"),
    "no drums": ("no drum", "no drums", "beatless", "almost beatless", "drumless", "no percussion"),
    # textures
    "vinyl crackle": ("vinyl crackle", "vinyl", "crackle", "record crackle", "vinyl noise", "tape crackle",
                      "snow crackle"),
    "tape hiss": ("tape hiss", "analog hiss", "hiss", "static hiss"),
    "tape warmth": ("tape warmth", "tape wow", "wow and flutter", "flutter", "tape saturation", "tape"),
    "static": ("static", "static haze", "static layer", "white noise", "background noise", "noise"),
    "crt hum": ("crt hum", "hum", "analog hum", "vintage hum", "crt"),
    "reverb": ("reverb", "reverb field", "reverb pad", "wide reverb"),
    "delay": ("delay", "echo", "tape delay"),
    # ambiences
    "rain": ("rain", "rainfall", "rainy", "rain ambience", "rain texture", "drizzle"),
    "thunder": ("thunder", "storm", "thunderstorm"),
    "city ambience": ("city", "city rumble", "traffic", "urban", "city light", "street"),
    "snow": ("snow", "winter", "frost", "frosted"),
    "wind": ("wind", "breeze"),
    "ocean": ("ocean", "wave", "sea", "shore"),
    "fireplace": ("fireplace", "fire crackle", "campfire"),
    "birds": ("bird", "birdsong"),
    "keyboard clicks": ("keyboard click", "typing", "keyboard"),
    # genre colour that the producer uses as texture words
    "vaporwave": ("vaporwave",),
    "synthwave": ("synthwave", "retrowave", "outrun"),
    "dreamwave": ("dreamwave",),
    "chillhop": ("chillhop", "jazzhop", "jazzy"),
    "ambient": ("ambient", "ambience", "soundscape", "synthscape", "atmospheric"),
}

# Canonical mood keyword -> spellings.
MOOD_KEYWORDS: dict[str, tuple[str, ...]] = {
    "calm": ("calm", "peaceful", "serene", "tranquil", "stillness", "quiet", "still", "restful"),
    "relaxed": ("relaxed", "relaxing", "laid back", "chill", "easygoing", "mellow"),
    "cozy": ("cozy", "cosy", "comforting", "comfortable", "intimate", "cocoon"),
    "warm": ("warm", "warmth", "golden"),
    "nostalgic": ("nostalgic", "nostalgia", "retro", "vintage", "memory", "memories", "throwback"),
    "dreamy": ("dreamy", "dreamlike", "dream", "floating", "airy", "hazy", "ethereal", "drifting", "drift"),
    "melancholic": ("melancholic", "melancholy", "sad", "wistful", "bittersweet", "somber", "sombre",
                    "lonely"),
    "introspective": ("introspective", "reflective", "reflection", "contemplative", "pensive", "thoughtful"),
    "emotional": ("emotional", "emotion", "heartfelt", "tender"),
    "focused": ("focus", "focused", "concentration", "locked in", "productive", "productivity", "study",
                "coding", "work"),
    "hypnotic": ("hypnotic", "trance", "looping", "repetitive"),
    "uplifting": ("uplifting", "hopeful", "optimism", "optimistic", "bright", "positive", "lift"),
    "energetic": ("energetic", "driving", "upbeat", "punchy", "momentum", "drive"),
    "dark": ("dark", "darker", "brooding", "moody", "shadowy"),
    "late night": ("late night", "midnight", "night", "nighttime", "2am", "after hours", "nightfall"),
    "sunrise": ("sunrise", "dawn", "morning", "daybreak", "first light"),
    "sunset": ("sunset", "dusk", "twilight", "golden hour", "evening"),
    "mysterious": ("mysterious", "mystery", "eerie", "cinematic"),
    "sleepy": ("sleepy", "sleep", "drowsy", "lullaby", "winding down", "fade to silence"),
}

_WORD_SPLIT = re.compile(r"[^a-z0-9]+")


def _singular(word: str) -> str:
    """A cheap English singular so "pads", "chords" and "crackles" match "pad" etc.

    Only strips a trailing plural ``s`` from words long enough to be plurals
    ("bass", "hiss" and "focus" are kept because they end in ``ss``/``us``).
    """
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _tokens(text: str) -> list[str]:
    return [_singular(w) for w in _WORD_SPLIT.split(text.lower().replace("lo-fi", "lofi")) if w]


@lru_cache(maxsize=2)
def _phrase_table(kind: str) -> list[tuple[tuple[str, ...], str]]:
    """All spellings as token tuples, longest first, mapped to their canonical tag."""
    vocab = VIBE_TAGS if kind == "vibe" else MOOD_KEYWORDS
    table = []
    for canonical, spellings in vocab.items():
        for spelling in {canonical, *spellings}:
            table.append((tuple(_tokens(spelling)), canonical))
    table.sort(key=lambda item: -len(item[0]))
    return table


def _extract(text: str | None, kind: str) -> list[str]:
    if not text:
        return []
    tokens = _tokens(text)
    used = [False] * len(tokens)
    # (position, tag) so the result keeps the order the producer wrote things in.
    found: list[tuple[int, str]] = []
    for phrase, canonical in _phrase_table(kind):
        n = len(phrase)
        for i in range(len(tokens) - n + 1):
            if any(used[i:i + n]) or tuple(tokens[i:i + n]) != phrase:
                continue
            # Longer phrases claim their words first: "tape hiss" must not
            # also count as the "tape warmth" texture.
            for j in range(i, i + n):
                used[j] = True
            found.append((i, canonical))
    found.sort()
    out: list[str] = []
    for _, tag in found:
        if tag not in out:
            out.append(tag)
    if kind == "vibe" and "no drums" in out and "drums" in out:
        # "no drums, muted kick" still says the song is beatless at heart.
        out.remove("drums")
    return out


def extract_vibe_tags(text: str | None) -> list[str]:
    """Instruments and textures named in a prompt, as canonical tags.

    Parameters
    ----------
    text : str or None
        Prompt text (any case; suffixes and punctuation are fine).

    Returns
    -------
    list of str
        Canonical tags from :data:`VIBE_TAGS` in order of first mention,
        e.g. ``["pads", "rain", "tape hiss"]``. Empty for empty text.
    """
    return _extract(text, "vibe")


def extract_mood_keywords(text: str | None) -> list[str]:
    """Moods named in a prompt, as canonical keywords.

    Parameters
    ----------
    text : str or None
        Prompt text.

    Returns
    -------
    list of str
        Canonical keywords from :data:`MOOD_KEYWORDS` in order of first
        mention, e.g. ``["calm", "nostalgic", "late night"]``.
    """
    return _extract(text, "mood")


def normalize_tag(tag: str) -> str | None:
    """Map a user-typed tag ("Vinyl", "e-piano", "nostalgia") to its canonical form.

    Used to read ``--tag`` style filters; returns None for a word outside the
    vocabulary so the caller can say which tag is unknown.
    """
    for kind in ("vibe", "mood"):
        found = _extract(tag, kind)
        if len(found) == 1:
            return found[0]
    return None


def split_tag_filters(tags: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Sort user-typed ``--tag`` values into (vibe tags, mood keywords), canonical names.

    Raises
    ------
    ConfigError
        For a tag outside the vocabulary, listing a few known ones.
    """
    from lofi_pipeline.core.errors import ConfigError

    vibe, mood = [], []
    for raw in tags:
        tag = normalize_tag(raw)
        if tag in VIBE_TAGS:
            vibe.append(tag)
        elif tag in MOOD_KEYWORDS:
            mood.append(tag)
        else:
            known = ", ".join(list(VIBE_TAGS)[:6] + list(MOOD_KEYWORDS)[:4])
            raise ConfigError(f"--tag '{raw}': not a known vibe tag or mood keyword (e.g. {known})")
    return tuple(vibe), tuple(mood)
