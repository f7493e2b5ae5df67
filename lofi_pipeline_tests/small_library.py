"""A small library for the loop and hostile-input tests: pages written here, songs synthesized.

Pages follow the real export format (overview table, ``### Phase N — Name (BPM a–b)``
headings, ``- [ ] N. prompt`` items); songs are short synthesized clips with a
known tempo and key, named ``A_{arc}_{prompt}_{track}{take}.mp3`` like Suno
downloads. Renders are made small (320×180) so a whole mix encodes in seconds.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from lofi_pipeline.core.naming import song_filename

# Arc = (name, (bpm_low, bpm_high), [(prompt_number, prompt_text), ...])
Arc = tuple[str, tuple[float, float], list[tuple[int, str]]]

SMALL_RENDER_SETTINGS = "render:\n  width: 320\n  height: 180\n  fade_out_seconds: 3.0\n"
KEYS = ["A minor", "D minor", "C major", "F major", "G major", "E minor"]


def seed(*parts: object) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


def page_markdown(track: int, title: str, arcs: list[Arc], *, minutes: float) -> str:
    """A track page in the Notion export format the parser reads."""
    lines = [f"# Track {track} — {title}", "## 1. TRACK OVERVIEW", "| Field | Value |", "|---|---|",
             f"| Title | {title} |", f"| Filename | track-{track}.mp4 |", f"| Duration | {minutes:g} minutes |",
             f"| Mood Arc | {' → '.join(a[0] for a in arcs)} |",
             "## 2. SEO & DISCOVERY", "### Visible Hashtags", "#LoFi #StudyMusic",
             "### Hidden Tags (≤ 500 chars)", "lofi,studymusic,royaltyfree",
             "## 3. DESCRIPTION", f"{title}: a short mix for the tests.",
             "## 5. MUSIC ARC STRUCTURE — Suno Prompts"]
    for number, (name, (low, high), prompts) in enumerate(arcs, 1):
        lines.append(f"### Phase {number} — {name} (BPM {low:g}–{high:g})")
        lines += [f"- [ ] {n}. {text}" for n, text in prompts]
    return "\n".join(lines) + "\n"


def write_page(folder: Path, track: int, title: str, arcs: list[Arc], *, minutes: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"Track {track}.md"
    path.write_text(page_markdown(track, title, arcs, minutes=minutes), encoding="utf-8")
    return path


def synth_song(path: Path, *, bpm: float, key: str, seconds: float, seed_value: int,
               loudness_scale: float = 1.0) -> Path:
    """One synthesized song written as mp3/wav (``loudness_scale`` multiplies the samples)."""
    from lofi_pipeline.core.synth import synthesize_song, write_audio

    y = synthesize_song(bpm=bpm, key=key, seconds=seconds, sr=22050, seed=seed_value, lowpass_hz=6000)
    return write_audio(y * loudness_scale, 22050, path)


def arc_of(arcs: list[Arc], prompt: int) -> tuple[int, Arc]:
    for number, arc in enumerate(arcs, 1):
        if any(n == prompt for n, _ in arc[2]):
            return number, arc
    raise KeyError(prompt)


def make_song(songs_dir: Path, track: int, arcs: list[Arc], *, arc: int, prompt: int, take: str,
              seconds: float) -> Path:
    """The song Suno would give for ``prompt`` of ``track``: tempo inside its arc's range."""
    low, high = arcs[arc - 1][1]
    s = seed(track, arc, prompt, take)
    return synth_song(songs_dir / song_filename(arc=arc, prompt=prompt, track=track, take=take),
                      bpm=round(low + (high - low) * (0.3 + 0.4 * (s % 100) / 100), 1),
                      key=KEYS[s % len(KEYS)], seconds=seconds, seed_value=s)


def make_track_songs(tracks_dir: Path, track: int, arcs: list[Arc], *, seconds: float) -> list[Path]:
    """One take (``a``) per prompt in ``Tracks/{track}/Songs``."""
    songs = Path(tracks_dir) / str(track) / "Songs"
    return [make_song(songs, track, arcs, arc=a, prompt=n, take="a", seconds=seconds)
            for a, (_name, _bpm, prompts) in enumerate(arcs, 1) for n, _ in prompts]
