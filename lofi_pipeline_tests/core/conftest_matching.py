"""Shared fixtures for the reuse-engine tests (imported explicitly, not a conftest).

A small hand-written library: track 19's page (4 arcs, rainy-night prompts)
and the songs made from it, plus a new track 30 whose prompts paraphrase some
library prompts and ask for things the library does not have.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from lofi_pipeline.core.embedding import Embedder, text_hash
from lofi_pipeline.core.matching import describe_song, prompt_query_texts
from lofi_pipeline.core.models import Arc, Prompt, TrackPlan

SUFFIX = " — vaporwave synthwave lofi"


@lru_cache(maxsize=1)
def shared_embedder() -> Embedder:
    """One model per test process: loading costs seconds, encoding milliseconds."""
    return Embedder()


def make_plan(track: int, arcs: list[tuple[str, tuple[float, float] | None, list[str]]], *,
              mood_arc: str | None = None, suffix: str = SUFFIX, per_arc_numbers: bool = False,
              duration_minutes: float | None = None) -> TrackPlan:
    """A TrackPlan from (arc name, BPM range, [core prompt texts]) triples."""
    built = []
    order = 0
    for a_index, (name, bpm, cores) in enumerate(arcs, start=1):
        prompts = []
        for p_index, core in enumerate(cores, start=1):
            order += 1
            prompts.append(Prompt(number=p_index if per_arc_numbers else order, order=order,
                                  text=core + suffix, core_text=core))
        built.append(Arc(number=a_index, name=name, bpm_range=bpm, prompts=prompts))
    return TrackPlan(source=f"track-{track}.md", track_number=track, arcs=built, mood_arc=mood_arc,
                     prompt_suffix=suffix.strip(" —"), duration_minutes=duration_minutes)


LIBRARY_ARCS = [
    ("Rain Ambience", (45.0, 55.0), [
        "ambient vaporwave pads with soft rain textures, slow drift, no drums, warm analog hiss",
        "evolving low-frequency pads, distant city rumble, minimal movement, atmospheric bloom",
        "gentle lofi piano over rain on the window, light reverb, early evening calm",
    ]),
    ("Steady Focus Flow", (60.0, 70.0), [
        "midtempo lofi beat, soft compressed drums, smooth bass line, stable rhythm",
        "rhythmic synth chords with teal timbre, soft static layer, consistent pulse",
        "warm rhodes chords, vinyl crackle, boom bap drums, mellow jazzy groove",
    ]),
    ("Midnight Clarity", (70.0, 78.0), [
        "quiet analog chords, low tape hiss, stable beat with softened transients",
        "nostalgic synth arpeggio, late-night harmonic drift, muted kick and snare",
        "deep emotional tone, subdued bass, wide reverb field, introspective energy",
    ]),
    ("Vaporwave Fadeout", (45.0, 60.0), [
        "slow vaporwave chords, static haze, falling energy curve",
        "warm drifting pads with gentle delay, reduced rhythm, soft dissolve",
        "analog fade-out, rain ambience emphasized, dissolve to silence",
    ]),
]
LIBRARY_MOOD = "Rain Ambience → Steady Focus Flow → Midnight Clarity → Vaporwave Fadeout"

# Each paraphrases one library prompt (arc, prompt position inside that arc).
PARAPHRASES = {
    (1, 1): ("soft rain sounds under ambient vaporwave pad layers, drifting slowly, beatless, "
             "warm analog noise"),
    (2, 3): "mellow jazzy groove with warm rhodes piano chords, dusty vinyl crackle and boom bap drums",
    (3, 2): "late night nostalgic synth arpeggios, drifting harmonies, soft muted kick and snare",
    (4, 3): "analog fade out with the rain ambience brought forward, dissolving into silence",
}
UNRELATED = [
    "bright tropical summer beach party with ukulele and steel drums, upbeat and sunny",
    "aggressive heavy metal guitar riffs with double kick drums and screaming vocals",
]
SONG_KEYS = ["A minor", "C major", "E minor", "G major", "D minor", "F major"]


def library_plan() -> TrackPlan:
    return make_plan(19, LIBRARY_ARCS, mood_arc=LIBRARY_MOOD, per_arc_numbers=True)


def new_track_plan(*, duration_minutes: float | None = 30) -> TrackPlan:
    """Track 30: four paraphrases in arc order, unrelated prompts in arcs 2 and 4."""
    arcs = [
        ("Rainy Opening", (45.0, 55.0), [PARAPHRASES[(1, 1)]]),
        ("Focus Loop", (60.0, 72.0), [PARAPHRASES[(2, 3)], UNRELATED[0]]),
        ("Late Night", (70.0, 80.0), [PARAPHRASES[(3, 2)]]),
        ("Fade", None, [PARAPHRASES[(4, 3)], UNRELATED[1]]),
    ]
    return make_plan(30, arcs, mood_arc=None, duration_minutes=duration_minutes)


def library_songs(plan: TrackPlan | None = None, *, takes: str = "ab",
                  duration: float = 180.0) -> pd.DataFrame:
    """The songs table for track 19's songs (``takes`` per prompt), lead's schema."""
    plan = plan or library_plan()
    rows = []
    i = 0
    for arc in plan.arcs:
        for p_index, prompt in enumerate(arc.prompts, start=1):
            for take in takes:
                filename = f"A_{arc.number}_{p_index}_{plan.track_number}{take}.mp3"
                lo, hi = arc.bpm_range or (70, 80)
                bpm = (lo + hi) / 2
                key = SONG_KEYS[i % len(SONG_KEYS)]
                meaning = describe_song(filename=filename, plan=plan, bpm=bpm, key=key)
                rows.append({
                    "song_id": text_hash(filename)[:16],
                    "filename": filename,
                    "path": f"/lib/{filename}",
                    "prefix": "A",
                    "arc": arc.number,
                    "prompt": p_index,
                    "source_track": plan.track_number,
                    "take": take,
                    "duration_seconds": duration + 7 * (i % 5),
                    "bpm": bpm,
                    "key": key,
                    "camelot": None,
                    "loudness_lufs": -14.0,
                    "energy_level": "low",
                    "times_used": 0,
                    "last_used_track": None,
                    "recently_used": False,
                    "prompt_text": meaning.prompt_text,
                    "song_text": meaning.text,
                    "vibe_tags": meaning.vibe_tags,
                    "mood_keywords": meaning.mood_keywords,
                })
                i += 1
    return pd.DataFrame(rows)


@lru_cache(maxsize=32)
def _encode(texts: tuple[str, ...]) -> np.ndarray:
    vectors = shared_embedder().encode(list(texts))
    vectors.flags.writeable = False  # shared between tests
    return vectors


def encode_library(songs: pd.DataFrame) -> np.ndarray:
    return _encode(tuple(songs["song_text"]))


def encode_plan(plan: TrackPlan) -> np.ndarray:
    return _encode(tuple(prompt_query_texts(plan)))
