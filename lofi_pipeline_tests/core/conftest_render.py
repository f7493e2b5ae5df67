"""Helpers for the render / workspace / probe tests (imported explicitly, not a conftest).

Songs are synthesized here with numpy (a chord, a bass note and a kick) and
written as WAV with soundfile or MP3 with the real ffmpeg, at chosen levels.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

from lofi_pipeline.core.ffmpeg import find_ffmpeg
from lofi_pipeline.core.models import SelectedSong

SR = 44100


def ffmpeg() -> str:
    return find_ffmpeg()


def synth_song(seed: int, seconds: float, *, peak: float = 0.5, sr: int = SR) -> np.ndarray:
    """A short stereo loop (chord + bass + kick + a little noise), scaled to ``peak``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    root = 110.0 * 2 ** (int(rng.integers(0, 12)) / 12)
    y = sum(np.sin(2 * np.pi * root * r * t) for r in (1.0, 1.26, 1.5, 2.0)) * 0.15
    y = y + 0.3 * np.sin(2 * np.pi * root / 2 * t)
    beat = 60.0 / float(rng.uniform(70, 90))
    ph = t % beat
    y = y + 0.6 * np.sin(2 * np.pi * (45 + 60 * np.exp(-ph * 25)) * ph) * np.exp(-ph * 8)
    y = y + rng.standard_normal(len(t)) * 0.01
    y = y / np.max(np.abs(y)) * peak
    return np.stack([y, np.roll(y, 120)], axis=1).astype(np.float32)


def write_song(path: Path, y: np.ndarray, *, sr: int = SR) -> Path:
    """WAV/FLAC through soundfile; MP3/M4A through ffmpeg (a temporary WAV in between)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".wav", ".flac"):
        sf.write(path, y, sr)
        return path
    tmp = path.with_name(f".tmp_{path.stem}.wav")
    sf.write(tmp, y, sr)
    codec = {".mp3": ["-c:a", "libmp3lame", "-b:a", "160k"], ".m4a": ["-c:a", "aac", "-b:a", "128k"],
             ".ogg": ["-c:a", "libvorbis"]}[path.suffix.lower()]
    subprocess.run([ffmpeg(), "-v", "error", "-y", "-i", str(tmp), *codec, str(path)], check=True)
    tmp.unlink()
    return path


def selected(path: Path, *, order: int, arc: int, duration: float, loudness: float | None = None,
             arc_name: str | None = None, song_id: str | None = None) -> SelectedSong:
    return SelectedSong(order=order, arc_number=arc, arc_name=arc_name or f"Arc{arc}",
                        song_id=song_id or f"id{order}", path=str(path), filename=path.name,
                        duration_seconds=duration, loudness_lufs=loudness)


def fake_song(order: int, *, arc: int = 1, duration: float = 180.0) -> SelectedSong:
    """A selection entry for plan-only tests (no file behind it)."""
    return SelectedSong(order=order, arc_number=arc, arc_name=f"Arc{arc}", song_id=f"h{order}",
                        path=f"/nowhere/A_{arc}_{order}_19a.mp3", filename=f"A_{arc}_{order}_19a.mp3",
                        duration_seconds=duration)
