"""A small deterministic song synthesizer.

It produces lo-fi / chillhop / synthwave-like material with a known tempo and
key: a drum kit (kick, snare, hats), a four-chord progression in the key, a bass
line on the chord roots, a pentatonic melody, and optional lo-fi textures (tape
noise with vinyl crackle, a low-pass "muffled" filter). The benchmark, the test
suite and ``lofi demo`` use it, so the same ``seed`` always gives the same samples.

Conventions: ``bpm`` in beats (quarter notes) per minute, ``seconds`` in seconds,
``sr`` in Hz, ``key`` written like ``"A minor"`` or ``"F# major"``. The output is
mono float32 in [-1, 1].
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from lofi_pipeline.core.errors import AudioFileError

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLAT_NAMES = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#", "Cb": "B", "Fb": "E"}

# Scale steps (semitones above the tonic) of the diatonic modes we write in.
_MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
_MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)

# Progressions as (scale degree 0-based, chord quality) per bar. The tonic
# chord opens every loop, as it does in nearly every lo-fi loop; several
# progressions touch the dominant or subdominant so the key is audible from
# the harmony, not just from one chord.
_MAJOR_PROGRESSIONS = (
    ((0, "maj7"), (5, "min7"), (3, "maj7"), (4, "dom7")),  # I vi IV V
    ((0, "maj7"), (3, "maj7"), (1, "min7"), (4, "dom7")),  # I IV ii V
    ((0, "maj"), (4, "maj"), (5, "min"), (3, "maj")),  # I V vi IV
    ((0, "maj7"), (2, "min7"), (3, "maj7"), (4, "dom7")),  # I iii IV V
)
_MINOR_PROGRESSIONS = (
    ((0, "min7"), (3, "min7"), (0, "min7"), (4, "dom7")),  # i iv i V (harmonic V)
    ((0, "min7"), (5, "maj7"), (3, "min7"), (4, "dom7")),  # i VI iv V
    ((0, "min"), (3, "min"), (6, "maj"), (0, "min")),  # i iv VII i
    ((0, "min7"), (3, "min7"), (5, "maj7"), (4, "min7")),  # i iv VI v
)
_CHORD_STEPS = {
    "maj": (0, 4, 7),
    "min": (0, 3, 7),
    "maj7": (0, 4, 7, 11),
    "min7": (0, 3, 7, 10),
    "dom7": (0, 4, 7, 10),
}


def parse_key(key: str) -> tuple[int, str]:
    """Split ``"F# major"`` into (pitch class 0-11, ``"major"``/``"minor"``).

    Flats (``"Bb minor"``) are accepted. Raises ``ValueError`` for anything else.
    """
    parts = key.strip().split()
    if len(parts) != 2 or parts[1].lower() not in ("major", "minor"):
        raise ValueError(f"key {key!r}: expected '<tonic> major' or '<tonic> minor', e.g. 'A minor'")
    tonic = parts[0][:1].upper() + parts[0][1:]
    tonic = _FLAT_NAMES.get(tonic, tonic)
    if tonic not in PITCH_CLASSES:
        raise ValueError(f"key {key!r}: unknown tonic {parts[0]!r}")
    return PITCH_CLASSES.index(tonic), parts[1].lower()


def _midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69.0) / 12.0)


def _add(out: np.ndarray, start: int, sound: np.ndarray) -> None:
    """Mix ``sound`` into ``out`` at sample ``start`` (clipped at both ends)."""
    if start >= len(out):
        return
    if start < 0:
        sound = sound[-start:]
        start = 0
    end = min(len(out), start + len(sound))
    out[start:end] += sound[: end - start]


def _kick(sr: int, rng: np.random.Generator) -> np.ndarray:
    n = int(0.35 * sr)
    t = np.arange(n) / sr
    # A falling sine sweep (~130 -> 45 Hz) is the classic synthesized kick.
    freq = 45.0 + 85.0 * np.exp(-t / 0.04)
    phase = 2 * np.pi * np.cumsum(freq) / sr
    click = rng.standard_normal(n) * np.exp(-t / 0.003) * 0.3
    return ((np.sin(phase) + click) * np.exp(-t / 0.12)).astype(np.float32)


def _snare(sr: int, rng: np.random.Generator, sos_band: np.ndarray) -> np.ndarray:
    n = int(0.25 * sr)
    t = np.arange(n) / sr
    noise = signal.sosfilt(sos_band, rng.standard_normal(n)) * np.exp(-t / 0.06)
    body = np.sin(2 * np.pi * 185.0 * t) * np.exp(-t / 0.04)
    return (0.9 * noise / (np.abs(noise).max() + 1e-9) + 0.5 * body).astype(np.float32)


def _hat(sr: int, rng: np.random.Generator, sos_high: np.ndarray) -> np.ndarray:
    n = int(0.06 * sr)
    t = np.arange(n) / sr
    noise = signal.sosfilt(sos_high, rng.standard_normal(n)) * np.exp(-t / 0.015)
    return (noise / (np.abs(noise).max() + 1e-9)).astype(np.float32)


@functools.lru_cache(maxsize=512)
def _keys_note(freq: float, dur: float, sr: int, *, attack: float, decay: float) -> np.ndarray:
    """A soft electric-piano-like tone: fundamental plus two decaying partials.

    Cached: a loop repeats the same notes every few bars. Callers must not
    modify the returned array (they scale it, which makes a copy).
    """
    n = max(1, int(dur * sr))
    t = np.arange(n, dtype=np.float32) / np.float32(sr)
    tone = (np.sin(2 * np.pi * freq * t) + 0.35 * np.sin(2 * np.pi * 2 * freq * t) * np.exp(-t / 0.3)
            + 0.12 * np.sin(2 * np.pi * 3 * freq * t) * np.exp(-t / 0.15))
    env = np.minimum(1.0, t / attack) * np.exp(-t / decay)
    release = min(n, int(0.03 * sr))
    env[n - release:] *= np.linspace(1.0, 0.0, release)
    return (tone * env).astype(np.float32)


def synthesize_song(
    *,
    bpm: float,
    key: str,
    seconds: float,
    sr: int = 22050,
    seed: int,
    drums: bool = True,
    swing: float = 0.0,
    hats16: bool = False,
    ghost_notes: bool = False,
    noise_db: float | None = None,
    lowpass_hz: float | None = None,
) -> np.ndarray:
    """Synthesize a short song with a known tempo and key.

    Parameters
    ----------
    bpm : float
        Tempo in quarter notes per minute (the label a listener would tap).
    key : str
        ``"<tonic> major"`` or ``"<tonic> minor"``; sharps or flats.
    seconds : float
        Length in seconds.
    sr : int
        Sample rate in Hz.
    seed : int
        Seeds every random choice (progression, drum variations, melody, noise).
    drums : bool
        With drums: a backbeat kit and sustained chords. Without: the chords are
        played as stabs on every beat (accent on the downbeat), so the tempo is
        still audible from the harmony and bass alone.
    swing : float
        0 (straight) .. 1 (full triplet swing): delays off-beat 8th (or 16th) hats.
    hats16 : bool
        Hats on 16th notes instead of 8ths.
    ghost_notes : bool
        Quiet snare ghost notes on some 16th positions.
    noise_db : float or None
        Tape hiss plus vinyl crackle at this level in dBFS RMS (e.g. -35).
    lowpass_hz : float or None
        Low-pass the whole mix at this cutoff in Hz (the muffled lo-fi sound).

    Returns
    -------
    numpy.ndarray
        Mono float32 samples in [-1, 1], ``int(seconds * sr)`` long.

    Raises
    ------
    ValueError
        For a non-positive tempo/length or an unknown key.
    """
    if bpm <= 0 or seconds <= 0:
        raise ValueError(f"bpm and seconds must be positive (got bpm={bpm}, seconds={seconds})")
    tonic, mode = parse_key(key)
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    beat = 60.0 / bpm
    n_beats = int(np.ceil(seconds / beat)) + 1

    scale = _MAJOR_SCALE if mode == "major" else _MINOR_SCALE
    progressions = _MAJOR_PROGRESSIONS if mode == "major" else _MINOR_PROGRESSIONS
    progression = progressions[int(rng.integers(len(progressions)))]
    # Tonic MIDI note in the octave starting at C3 (48): chords sit at 48-67.
    root_midi = 48 + tonic

    harmony = np.zeros(n, np.float32)
    bass = np.zeros(n, np.float32)
    melody = np.zeros(n, np.float32)
    drum_bus = np.zeros(n, np.float32)

    def degree_midi(degree: int) -> int:
        octave, step = divmod(degree, 7)
        return root_midi + 12 * octave + scale[step]

    for bar in range(n_beats // 4 + 1):
        deg, quality = progression[bar % len(progression)]
        chord_root = degree_midi(deg)
        if mode == "minor" and deg == 4 and quality == "dom7":
            chord_root = root_midi + 7  # harmonic-minor V: same root, major third
        notes = [chord_root + s for s in _CHORD_STEPS[quality]]
        # Keep voicings in one register (close position around C4).
        notes = [m - 12 if m > 67 else m for m in notes]
        bar_start = bar * 4 * beat
        if drums:
            for m in notes:
                _add(harmony, int(bar_start * sr),
                     0.22 * _keys_note(_midi_hz(m), 4 * beat, sr, attack=0.02, decay=4.0 * beat))
        else:
            for b in range(4):
                accent = 1.0 if b == 0 else 0.7
                for m in notes:
                    _add(harmony, int((bar_start + b * beat) * sr),
                         accent * 0.25 * _keys_note(_midi_hz(m), 0.9 * beat, sr, attack=0.005,
                                                    decay=0.35 * beat))
        bass_root = chord_root - 24 if chord_root - 24 >= 28 else chord_root - 12
        for b in (0, 2):
            _add(bass, int((bar_start + b * beat) * sr),
                 0.5 * _keys_note(_midi_hz(bass_root), 1.9 * beat, sr, attack=0.005, decay=0.8 * beat))
        # Melody: pentatonic-ish scale tones an octave above, on some 8th notes.
        mel_degrees = (0, 1, 2, 4, 5) if mode == "major" else (0, 2, 3, 4, 6)
        for eighth in range(8):
            if rng.random() < 0.35:
                deg_m = int(rng.choice(mel_degrees)) + 7
                start = bar_start + eighth * beat / 2
                _add(melody, int(start * sr),
                     0.12 * _keys_note(_midi_hz(degree_midi(deg_m)), beat, sr, attack=0.01, decay=0.4 * beat))

    if drums:
        sos_band = signal.butter(2, [300, min(5000, 0.45 * sr)], btype="band", fs=sr, output="sos")
        sos_high = signal.butter(2, min(6000, 0.4 * sr), btype="high", fs=sr, output="sos")
        kick, snare, hat = _kick(sr, rng), _snare(sr, rng, sos_band), _hat(sr, rng, sos_high)
        four_on_floor = bpm >= 115 and rng.random() < 0.5  # synthwave / outrun style
        extra_kick = rng.random() < 0.6  # boom-bap "and of three"
        sub = 4 if hats16 else 2
        swing_shift = swing * (beat / sub) / 3.0  # full swing = triplet feel
        for b in range(n_beats):
            t0 = b * beat
            pos = b % 4
            if four_on_floor or pos in (0, 2):
                _add(drum_bus, int(t0 * sr), 0.9 * kick)
            if extra_kick and not four_on_floor and pos == 2:
                _add(drum_bus, int((t0 + beat / 2) * sr), 0.6 * kick)
            if pos in (1, 3):
                _add(drum_bus, int(t0 * sr), 0.7 * snare)
            for s in range(sub):
                t_h = t0 + s * beat / sub + (swing_shift if s % 2 == 1 else 0.0)
                vel = 0.22 if s == 0 else 0.14
                _add(drum_bus, int(t_h * sr), vel * hat)
            if ghost_notes:
                for s in (1, 3):
                    if rng.random() < 0.4:
                        _add(drum_bus, int((t0 + s * beat / 4) * sr), 0.12 * snare)

    mix = harmony + bass + melody + drum_bus
    if noise_db is not None:
        level = 10.0 ** (noise_db / 20.0)
        # Tape hiss: white noise tilted toward low frequencies (a one-pole filter).
        hiss = signal.lfilter([1.0], [1.0, -0.7], rng.standard_normal(n)).astype(np.float32)
        hiss *= level / (np.sqrt(np.mean(hiss**2)) + 1e-12)
        # Vinyl crackle: sparse random clicks, a few per second.
        crackle = np.zeros(n, np.float32)
        idx = rng.integers(0, n, size=max(1, int(seconds * 6)))
        crackle[idx] = rng.uniform(-1, 1, size=len(idx)) * level * 8
        mix = mix + hiss + crackle
    if lowpass_hz is not None and lowpass_hz < 0.45 * sr:
        sos_lp = signal.butter(4, lowpass_hz, btype="low", fs=sr, output="sos")
        mix = signal.sosfilt(sos_lp, mix).astype(np.float32)
    peak = float(np.max(np.abs(mix))) if n else 0.0
    if peak > 0:
        mix = mix * (0.89 / peak)  # about -1 dBFS sample peak
    return np.clip(mix, -1.0, 1.0).astype(np.float32)


_SOUNDFILE_WRITE = {".wav": "WAV", ".flac": "FLAC"}
_FFMPEG_CODECS = {
    ".mp3": ["-c:a", "libmp3lame"],
    # libvorbis refuses many bitrate/rate pairs (e.g. 128k mono at 22.05 kHz);
    # its quality scale always works, so ogg ignores ``bitrate``.
    ".ogg": ["-c:a", "libvorbis", "-q:a", "5"],
    ".m4a": ["-c:a", "aac"],
    ".aac": ["-c:a", "aac", "-f", "adts"],
}


def write_audio(
    y: np.ndarray,
    sr: int,
    path: str | Path,
    *,
    ffmpeg_exe: str | None = None,
    bitrate: str = "128k",
) -> Path:
    """Write samples to an audio file; the format follows the extension.

    wav and flac are written with soundfile; mp3, ogg, m4a and aac are encoded
    by ffmpeg (``ffmpeg_exe``, else the bundled imageio-ffmpeg binary). The data
    goes to a temporary file in the same folder that is renamed into place, so a
    crash never leaves a half-written file under the final name.

    Parameters
    ----------
    y : numpy.ndarray
        Float samples in [-1, 1], shape ``(n,)`` mono or ``(n, channels)``.
    sr : int
        Sample rate in Hz.
    path : str or Path
        Destination; its suffix (any case) picks the format.
    ffmpeg_exe : str or None
        ffmpeg to use for compressed formats.
    bitrate : str
        Encoder bitrate for mp3/m4a/aac, e.g. ``"128k"`` (ogg uses Vorbis quality 5).

    Returns
    -------
    Path
        The written path.

    Raises
    ------
    AudioFileError
        Unsupported extension or an encoder failure (with ffmpeg's message).
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in _SOUNDFILE_WRITE and ext not in _FFMPEG_CODECS:
        raise AudioFileError(path, f"cannot write '{ext}' files; use one of "
                             + ", ".join(sorted([*_SOUNDFILE_WRITE, *_FFMPEG_CODECS])))
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.asarray(y, dtype=np.float32)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=ext, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if ext in _SOUNDFILE_WRITE:
            sf.write(tmp, data, sr, format=_SOUNDFILE_WRITE[ext], subtype="PCM_16")
        else:
            if ffmpeg_exe is None:
                import imageio_ffmpeg

                ffmpeg_exe = imageio_ffmpeg.get_ffmpeg_exe()
            channels = 1 if data.ndim == 1 else data.shape[1]
            cmd = [ffmpeg_exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                   "-f", "f32le", "-ar", str(sr), "-ac", str(channels), "-i", "pipe:0",
                   *_FFMPEG_CODECS[ext], *([] if ext == ".ogg" else ["-b:a", bitrate]), str(tmp)]
            proc = subprocess.run(cmd, input=np.ascontiguousarray(data).tobytes(),
                                  capture_output=True, check=False)
            if proc.returncode != 0:
                msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
                raise AudioFileError(path, "ffmpeg could not encode: " + (msg[-1] if msg else "unknown error"))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
