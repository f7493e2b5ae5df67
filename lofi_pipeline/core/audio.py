"""Audio analysis: decoding, duration, tempo, key, loudness and character.

Design in one paragraph: a file is decoded once, in this process, block by
block at its native rate (libsndfile for wav, flac, ogg and mp3, with
libmpg123's fd-2 chatter filtered out; the bundled ffmpeg through a pipe for
m4a/aac and whatever libsndfile refuses). Each block goes to a meter thread
(:class:`lofi_pipeline.core.loudness.LoudnessMeter`: libebur128 integrated
loudness and true peak, with the GIL released) and to :class:`_BlockStats`
(RMS of the mono mix, spectral-centroid snapshots, and the middle
``EXCERPT_SECONDS`` as mono, resampled with soxr to ``ANALYSIS_SR`` = 11025 Hz).
Tempo and key are estimated on that excerpt while the meter finishes on the
other core. Memory does not grow with the file. Duration comes from the
decoded sample count and is checked against the header.

Conventions: durations in seconds, tempo in BPM (quarter notes per minute),
loudness in LUFS, peaks in dBTP / dBFS, frequencies in Hz. Keys are written
``"A minor"`` / ``"F# major"`` (sharps only) with Camelot codes like ``"8A"``.
Unknown values are ``None`` (silence has no key, a beatless song no tempo).
"""

from __future__ import annotations

import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr
from scipy import fft as sp_fft
from scipy import ndimage

from lofi_pipeline.core.errors import AudioFileError
from lofi_pipeline.core.loudness import BLOCK_FRAMES, LoudnessMeter
from lofi_pipeline.core.models import AudioFeatures
from lofi_pipeline.core.probe import parse_input_summary

ANALYZER_VERSION = "audio-3.0"
"""Stored with every result; bump it whenever a change alters any figure, so
the library re-analyses rows written by an older analyzer."""

SUPPORTED_EXTENSIONS = frozenset({".mp3", ".wav", ".flac", ".ogg", ".m4a", ".aac"})
"""Lower-case suffixes we import; matching ignores case (``.MP3`` is fine)."""

ANALYSIS_SR = 11025
"""Sample rate (Hz) for tempo and key: kick, snare, chords and bass all live
below 5.5 kHz, and a quarter of 44.1 kHz makes both STFTs four times cheaper."""

EXCERPT_SECONDS = 120.0
"""Tempo and key use at most this many seconds from the middle of the song:
enough for a stable estimate, and it bounds time and memory on long files."""


# Thresholds for the seed schema's categories (documented in notes/audio.md).
ENERGY_LOW_BELOW_DBFS = -20.0
ENERGY_HIGH_FROM_DBFS = -13.0
TEMPO_SLOW_BELOW_BPM = 80.0
TEMPO_FAST_FROM_BPM = 110.0

# Tempo: search range and the prior suited to lo-fi / chillhop / synthwave.
TEMPO_MIN_BPM = 50.0
TEMPO_MAX_BPM = 200.0
TEMPO_PRIOR_CENTER_BPM = 90.0
TEMPO_PRIOR_WIDTH_OCTAVES = 1.0
TEMPO_MIN_CONFIDENCE = 0.2
"""Below this confidence the tempo is reported as ``None`` (beatless/ambient)."""

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

# Key profiles (published listener / corpus statistics, tonic first).
# Krumhansl & Kessler (1982) probe-tone ratings.
_KK_MAJOR = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
_KK_MINOR = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)
# Temperley (2007), Kostka-Payne corpus pitch-class frequencies.
_TEMPERLEY_MAJOR = (0.748, 0.060, 0.488, 0.082, 0.670, 0.460, 0.096, 0.715, 0.104, 0.366, 0.057, 0.400)
_TEMPERLEY_MINOR = (0.712, 0.084, 0.474, 0.618, 0.049, 0.460, 0.105, 0.747, 0.404, 0.067, 0.133, 0.330)

# Camelot wheel: minor keys are "A", major keys "B"; 8A = A minor, 8B = C major.
_CAMELOT_MINOR = {"G#": 1, "D#": 2, "A#": 3, "F": 4, "C": 5, "G": 6, "D": 7, "A": 8, "E": 9, "B": 10,
                  "F#": 11, "C#": 12}
_CAMELOT_MAJOR = {"B": 1, "F#": 2, "C#": 3, "G#": 4, "D#": 5, "A#": 6, "F": 7, "C": 8, "G": 9, "D": 10,
                  "A": 11, "E": 12}
_FLATS = {"DB": "C#", "EB": "D#", "GB": "F#", "AB": "G#", "BB": "A#", "CB": "B", "FB": "E",
          "E#": "F", "B#": "C"}


# --------------------------------------------------------------------------- files


def iter_audio_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files and folders into a sorted list of supported audio files.

    Folders are walked recursively; hidden files (``.name``, e.g. our own
    half-written temporaries) are skipped. A file given explicitly is kept
    whatever its extension, so the caller gets a per-file error for it rather
    than a silent drop.

    Parameters
    ----------
    paths : iterable of str or Path
        Files and/or folders.

    Returns
    -------
    list of Path
        Unique paths, sorted.
    """
    found: set[Path] = set()
    for p in paths:
        p = Path(p)
        if p.is_dir():
            for child in p.rglob("*"):
                if (child.is_file() and not child.name.startswith(".")
                        and child.suffix.lower() in SUPPORTED_EXTENSIONS):
                    found.add(child)
        else:
            found.add(p)
    return sorted(found)


# --------------------------------------------------------------------------- decoding


def _default_ffmpeg() -> str:
    from lofi_pipeline.core.ffmpeg import find_ffmpeg

    return find_ffmpeg()


@dataclass
class _Header:
    """What ffmpeg's input summary says about the first audio stream."""

    sample_rate: int
    channels: int
    duration: float | None  # seconds, from the container/stream header


def _precheck(path: Path) -> None:
    """Turn the common unusable-file cases into clear reasons before decoding."""
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise AudioFileError(path, "file not found") from exc
    except OSError as exc:
        raise AudioFileError(path, f"cannot access the file ({exc.strerror or exc})") from exc
    if path.is_dir():
        raise AudioFileError(path, "is a folder, not an audio file")
    if size == 0:
        raise AudioFileError(path, "empty file (0 bytes)")
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except PermissionError as exc:
        raise AudioFileError(path, "permission denied: the file is not readable") from exc
    except OSError as exc:
        raise AudioFileError(path, f"cannot read the file ({exc.strerror or exc})") from exc
    if _looks_like_text(head):
        raise AudioFileError(path, "this is a text file, not audio (despite its extension)")


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    # An ID3 tag or a known audio magic is never text even if it is printable.
    if head[:3] in (b"ID3",) or head[:4] in (b"RIFF", b"fLaC", b"OggS", b"FORM"):
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return printable / len(text) > 0.97


def _parse_header(stderr_lines: list[str]) -> _Header | None:
    """The first audio stream of ffmpeg's ``Input #0`` summary (None if there is none)."""
    duration, streams = parse_input_summary(stderr_lines)
    audio_streams = [s for s in streams if s.type == "audio"]
    if not audio_streams or not audio_streams[0].sample_rate:
        return None
    first = audio_streams[0]
    return _Header(first.sample_rate, first.channels or 2, duration)


# ffmpeg's lines that explain a failure, most telling first.
_REASON_WORDS = (("invalid data", "permission denied", "no such file", "does not contain", "not supported",
                  "header missing"), ("error", "could not", "cannot"))


def _ffmpeg_reason(stderr: str) -> str:
    """The most telling line of ffmpeg's stderr, without its ``[component @ 0x...]`` prefix."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for words in _REASON_WORDS:
        for ln in reversed(lines):
            low = ln.lower()
            if any(w in low for w in words) and "terminating thread" not in low:
                return re.sub(r"^(\[[^\]]*\]\s*)+", "", ln)
    return lines[-1] if lines else "unknown error"


class _StderrReader(threading.Thread):
    """Drains ffmpeg's stderr so it can never block on a full pipe.

    ``header_ready`` is set once the input summary has been printed (ffmpeg
    prints it before it decodes anything) or at end of stream.
    """

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream = stream
        self.lines: list[str] = []
        self.header_ready = threading.Event()

    def run(self) -> None:
        for raw in iter(self.stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.lines.append(line)
            if line.startswith(("Stream mapping:", "Output #")):
                self.header_ready.set()
        self.header_ready.set()

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def load_audio(path: str | Path, *, sr: int, ffmpeg_exe: str | None = None) -> np.ndarray:
    """Decode a whole file to mono float32 at ``sr`` Hz with ffmpeg.

    The channels are averaged and the rate converted by ffmpeg (libswresample
    with the soxr engine; ``rematrix_maxval=1`` makes the down-mix a mean:
    swresample's default stereo-to-mono matrix is 0.707 * (L + R), 3 dB hotter). Meant for short files (tests, previews):
    :func:`analyze_file` streams instead.

    Parameters
    ----------
    path : str or Path
        The audio file.
    sr : int
        Output sample rate in Hz.
    ffmpeg_exe : str or None
        The ffmpeg binary; the bundled one by default.

    Returns
    -------
    numpy.ndarray
        Mono samples, float32, shape ``(n,)``.

    Raises
    ------
    AudioFileError
        Empty, text, truncated, unreadable or undecodable file (the reason says which).
    """
    path = Path(path)
    _precheck(path)
    exe = ffmpeg_exe or _default_ffmpeg()
    cmd = [exe, "-nostdin", "-hide_banner", "-nostats", "-i", str(path), "-map", "0:a:0",
           "-af", f"aresample=out_chlayout=mono:rematrix_maxval=1:out_sample_rate={sr}:resampler=soxr", "-f", "f32le", "pipe:1"]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    err = proc.stderr.decode("utf-8", "replace")
    header = _parse_header(err.splitlines())
    if proc.returncode != 0 or header is None:
        raise AudioFileError(path, "not a decodable audio file (ffmpeg: " + _ffmpeg_reason(err) + ")")
    mono = np.frombuffer(proc.stdout[: len(proc.stdout) // 4 * 4], dtype="<f4").copy()
    _check_duration(path, len(mono) / sr, header)
    return mono


def _check_duration(path: Path, decoded: float, header: _Header) -> None:
    if decoded <= 0:
        raise AudioFileError(path, "no audio could be decoded")
    if header.duration and header.duration > 0:
        # mp3 headers are estimates; a real truncation loses far more than this.
        tolerance = max(1.0, 0.03 * header.duration)
        if decoded < header.duration - tolerance:
            raise AudioFileError(
                path, f"truncated: the header says {header.duration:.1f} s but only "
                f"{decoded:.1f} s could be decoded")


@dataclass
class _Decoded:
    """Everything one decode of a file yields for :func:`analyze_file`."""

    header: _Header
    duration: float  # seconds, from the decoded sample count
    excerpt: np.ndarray  # mono float32 at ANALYSIS_SR, the middle EXCERPT_SECONDS
    rms: float  # RMS of the mono mix at the native rate over the whole file, full scale = 1
    centroid_hz: float | None
    wait_loudness: Callable[[], tuple[float | None, float | None]]
    """(integrated LUFS, true peak dBTP), None for silence. Waits for the meter
    thread, so call it after the tempo and key work that runs meanwhile."""


_CENTROID_FRAME = 2048


def _excerpt_window(duration: float | None, sr: int) -> tuple[int, int]:
    """Frame range (at ``sr``) of the middle EXCERPT_SECONDS; the start when the length is unknown."""
    if duration and duration > EXCERPT_SECONDS:
        lo = int((duration - EXCERPT_SECONDS) / 2 * sr)
    else:
        lo = 0
    return lo, lo + int(EXCERPT_SECONDS * sr)


class _BlockStats:
    """The per-block work both decoders share, at the native rate.

    Hands each block to the loudness meter (its own thread), and keeps the RMS
    sum of the mono mix (channel mean), the middle excerpt of the mono mix and
    the spectral-centroid snapshots. Each
    block is seen once, so memory does not grow with the file (only the
    excerpt, at most EXCERPT_SECONDS, is kept).
    """

    def __init__(self, header: _Header):
        self.header = header
        sr, ch = header.sample_rate, header.channels
        self.ex_lo, self.ex_hi = _excerpt_window(header.duration, sr)
        self.mix = np.full(ch, 1.0 / ch, np.float32)
        self.centroid_every = max(_CENTROID_FRAME, sr // 2)  # one window per half second of excerpt
        self.meter = LoudnessMeter(sr, ch)  # loudness and true peak, in its own thread
        self.excerpt: list[np.ndarray] = []
        self.centroid_frames: list[np.ndarray] = []
        self.sum_sq = 0.0
        self.pos = 0

    def add(self, block: np.ndarray, *, reused: bool = False) -> None:
        """Take one ``(frames, channels)`` float32 block; ``reused`` if the caller overwrites it later."""
        n = len(block)
        if not n:
            return
        self.meter.add(block, copy=reused)
        # A matrix-vector product is several times faster than .mean(axis=1).
        mono = block @ self.mix if block.shape[1] > 1 else block[:, 0].copy()
        self.sum_sq += float(np.dot(mono, mono))
        lo, hi = max(self.ex_lo, self.pos), min(self.ex_hi, self.pos + n)
        if lo < hi:
            part = mono[lo - self.pos: hi - self.pos]
            self.excerpt.append(part)
            for start in range(0, len(part) - _CENTROID_FRAME, self.centroid_every):
                self.centroid_frames.append(part[start: start + _CENTROID_FRAME])
        self.pos += n

    def abort(self) -> None:
        """Stop the loudness meter after an error."""
        self.meter.abort()

    def finish(self, path: Path) -> _Decoded:
        """Check the decoded length against the header and collect the results.

        The loudness meter may still be running: :attr:`_Decoded.wait_loudness` waits for it.
        """
        sr = self.header.sample_rate
        duration = self.pos / sr
        try:
            _check_duration(path, duration, self.header)
        except AudioFileError:
            self.meter.abort()
            raise
        y = np.concatenate(self.excerpt) if self.excerpt else np.zeros(0, np.float32)
        if len(y) and sr != ANALYSIS_SR:
            y = soxr.resample(y, sr, ANALYSIS_SR, quality="MQ").astype(np.float32)
        return _Decoded(
            header=self.header,
            duration=duration,
            excerpt=y,
            rms=float(np.sqrt(self.sum_sq / self.pos)) if self.pos else 0.0,
            centroid_hz=_spectral_centroid(self.centroid_frames, sr),
            wait_loudness=self.meter.result,
        )


# libmpg123 (libsndfile's mp3 decoder) prints diagnostics such as
# "[src/libmpg123/layer3.c:...] error: part2_3_length (3264) too large ..." or
# "Note: Illegal Audio-MPEG-Header ..." straight to fd 2; Python cannot catch them.
_MPG123_NOISE = re.compile(rb"^(\[src/libmpg123/|Note: |Warning: Xing stream size|Warning: Encountered more data"
                           rb"|big_resync|Did not find any)")
_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_saved: int | None = None
_quiet_sink = None


@contextmanager
def _without_libmpg123_noise():
    """Keep libmpg123's fd-2 messages off the terminal while libsndfile decodes.

    While at least one decode runs, fd 2 points to an anonymous temporary file;
    when the last one ends, fd 2 is restored and every captured line that is
    not libmpg123's is written back, so nothing anyone else printed meanwhile is
    lost. The redirect is process-wide, so it is reference-counted: decodes in
    several threads nest. If fd 2 cannot be duplicated (closed), nothing is
    redirected.
    """
    global _quiet_depth, _quiet_saved, _quiet_sink
    with _quiet_lock:
        if _quiet_depth == 0:
            try:
                sys.stderr.flush()
                sink = tempfile.TemporaryFile()  # noqa: SIM115 - closed when the last decode ends
                saved = os.dup(2)
                os.dup2(sink.fileno(), 2)
                _quiet_saved, _quiet_sink = saved, sink
            except (OSError, ValueError):
                _quiet_saved, _quiet_sink = None, None
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _quiet_saved is not None:
                try:
                    sys.stderr.flush()
                except (OSError, ValueError):
                    pass
                os.dup2(_quiet_saved, 2)
                os.close(_quiet_saved)
                sink, _quiet_saved, _quiet_sink = _quiet_sink, None, None
                sink.seek(0)
                kept = b"".join(line for line in sink.read().splitlines(keepends=True)
                                if not _MPG123_NOISE.match(line))
                sink.close()
                if kept:
                    os.write(2, kept)


_NOT_FOR_LIBSNDFILE = frozenset({".m4a", ".aac"})
"""Suffixes libsndfile has no decoder for; those go straight to ffmpeg."""


def _decode_for_analysis(path: Path, exe: str) -> _Decoded:
    """Decode a file once for :func:`analyze_file`, measuring its loudness on the way.

    libsndfile (in this process; libmpg123 inside it for mp3) decodes wav, flac,
    ogg and mp3 about three times faster than the ffmpeg command line, whose
    thread-per-stage pipeline costs as much system time as decoding. Each
    block goes to :class:`_BlockStats` (and from there to the loudness
    meter's thread). m4a/aac, and anything libsndfile refuses, are decoded by
    ffmpeg itself (:func:`_decode_with_ffmpeg`).
    """
    if path.suffix.lower() not in _NOT_FOR_LIBSNDFILE:
        decoded = _decode_with_libsndfile(path)
        if decoded is not None:
            return decoded
    return _decode_with_ffmpeg(path, exe)


def _decode_with_libsndfile(path: Path) -> _Decoded | None:
    """Decode with libsndfile; None when libsndfile cannot open the file."""
    import soundfile as sf

    with _without_libmpg123_noise():
        try:
            sfile = sf.SoundFile(str(path))
        except (sf.LibsndfileError, RuntimeError, TypeError):
            return None
        with sfile:
            sr, ch = sfile.samplerate, sfile.channels
            if sr <= 0 or ch <= 0:
                return None
            header = _Header(sr, ch, sfile.frames / sr if sfile.frames > 0 else None)
            stats = _BlockStats(header)
            try:
                while True:
                    # A fresh array per block: the loudness thread keeps it without a copy.
                    block = sfile.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
                    if not len(block):
                        break
                    stats.add(block)
            except (sf.LibsndfileError, RuntimeError) as exc:
                stats.abort()
                raise AudioFileError(path, f"decoding failed after {stats.pos / sr:.1f} s ({exc})") from exc
            except BaseException:
                stats.abort()
                raise
    return stats.finish(path)


def _decode_with_ffmpeg(path: Path, exe: str) -> _Decoded:
    """Decode with one ffmpeg process (m4a/aac, and whatever libsndfile refuses).

    ffmpeg decodes the first audio stream and pipes native-rate interleaved
    f32 to us; while it decodes the next block, this process does the
    per-block work. ffmpeg's stderr is a pipe drained by a thread, so nothing
    reaches our fd 2.
    """
    cmd = [exe, "-nostdin", "-hide_banner", "-nostats", "-i", str(path), "-map", "0:a:0",
           "-f", "f32le", "pipe:1"]
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise AudioFileError(path, f"cannot run ffmpeg ({exc})") from exc
    err_reader = _StderrReader(proc.stderr)
    err_reader.start()
    header: _Header | None = None
    stats: _BlockStats | None = None
    try:
        assert proc.stdout is not None
        # The input summary precedes any decoded sample: once ffmpeg has sent
        # audio, the reader thread has (or will shortly have) the header.
        first = proc.stdout.peek(1) if hasattr(proc.stdout, "peek") else b""
        if first:
            err_reader.header_ready.wait(timeout=60)
            header = _parse_header(list(err_reader.lines))
        if header is not None:
            stats = _BlockStats(header)
            ch = header.channels
            frame_bytes = 4 * ch
            # Read straight into a reused float32 buffer (no bytes copies).
            buf = np.empty(BLOCK_FRAMES * ch, np.float32)
            raw = memoryview(buf).cast("B")
            filled = 0
            while True:
                got = proc.stdout.readinto(raw[filled:])
                filled += got or 0
                if got and filled < len(raw):
                    continue
                frames = filled // frame_bytes
                if frames:
                    stats.add(buf[: frames * ch].reshape(-1, ch), reused=True)
                    rest = filled - frames * frame_bytes
                    raw[:rest] = raw[frames * frame_bytes: filled]
                    filled = rest
                if not got:
                    break
        else:
            proc.stdout.read()
        returncode = proc.wait()
    except BaseException:
        if stats is not None:
            stats.abort()
        raise
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err_reader.join(timeout=10)
    stderr = err_reader.text
    header = header or _parse_header(err_reader.lines)
    if header is None or stats is None:
        raise AudioFileError(path, "not a decodable audio file (ffmpeg: " + _ffmpeg_reason(stderr) + ")")
    if returncode != 0:
        stats.abort()
        raise AudioFileError(path, "ffmpeg could not decode it: " + _ffmpeg_reason(stderr))
    return stats.finish(path)


def _spectral_centroid(frames: list[np.ndarray], sr: int) -> float | None:
    """Energy-weighted mean spectral centroid (Hz) over sampled 2048-frame windows."""
    if not frames:
        return None
    x = np.stack(frames) * np.hanning(_CENTROID_FRAME).astype(np.float32)
    power = np.abs(sp_fft.rfft(x, axis=1)) ** 2
    total = power.sum()
    if total <= 0:
        return None
    freqs = np.fft.rfftfreq(_CENTROID_FRAME, 1.0 / sr)
    return float((power @ freqs).sum() / total)


# --------------------------------------------------------------------------- STFT helpers


def _stft_mag(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Magnitude STFT, shape (frames, n_fft // 2 + 1); frames start at sample 0.

    Computed 256 frames at a time so the windowed copies and complex spectra
    never exist for the whole excerpt at once (bounded memory).
    """
    if len(y) < n_fft:
        y = np.pad(y, (0, n_fft - len(y)))
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop]
    window = np.hanning(n_fft).astype(np.float32)
    out = np.empty((len(frames), n_fft // 2 + 1), np.float32)
    for lo in range(0, len(frames), 256):
        # scipy's FFT keeps float32 (numpy's computes in float64): half the time.
        out[lo: lo + 256] = np.abs(sp_fft.rfft(frames[lo: lo + 256] * window, axis=1))
    return out


# --------------------------------------------------------------------------- tempo


def _onset_envelope(y: np.ndarray, sr: int) -> tuple[np.ndarray, float]:
    """Band-weighted spectral-flux novelty; returns (envelope, frames per second).

    Three bands are normalised separately and weighted: kick/bass (30-180 Hz)
    and snare/chords (180-1800 Hz) mark the beat; the top band (hats, noise)
    mostly marks subdivisions, so it gets a quarter of the weight. That is the
    main defence against the 2x error of hats on 8th notes.
    """
    n_fft, hop = 512, 128
    mag = _stft_mag(y, n_fft, hop)
    # log(1 + 100 |X|), in place in float32; np.log on (1 + x) is 3x faster
    # than np.log1p here (log1p has no SIMD loop) and equal at these magnitudes.
    mag *= 100.0
    mag += 1.0
    logm = np.log(mag, out=mag)
    flux = np.diff(logm, axis=0)
    np.maximum(flux, 0.0, out=flux)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    bands = ((30, 180, 1.0), (180, 1800, 1.0), (1800, sr / 2, 0.25))
    env = np.zeros(len(flux), np.float32)
    for lo, hi, weight in bands:
        # Bands are contiguous bins: sum a column slice (a view, no copy).
        i0, i1 = np.searchsorted(freqs, lo), np.searchsorted(freqs, hi)
        band = flux[:, i0:i1].sum(axis=1, dtype=np.float64)
        # Remove the slowly varying part (sustained notes, noise floor).
        band = band - ndimage.uniform_filter1d(band, size=int(sr / hop))
        band = np.maximum(band, 0.0)
        std = band.std()
        if std > 0:
            env += weight * band / std
    return env, sr / hop


def _autocorrelation(env: np.ndarray, max_lag: int) -> np.ndarray:
    x = env - env.mean()
    n = len(x)
    spec = np.fft.rfft(x, 2 * n)
    acf = np.fft.irfft(spec * np.conj(spec))[: max_lag + 1]
    if acf[0] <= 0:
        return np.zeros(max_lag + 1)
    # Unbiased: divide by the overlap length so long lags are not penalised.
    acf = acf / (n - np.arange(max_lag + 1))
    return acf / acf[0]


def _interp(acf: np.ndarray, lag: np.ndarray) -> np.ndarray:
    return np.interp(lag, np.arange(len(acf)), acf, right=0.0)


def estimate_tempo(y: np.ndarray, sr: int) -> tuple[float | None, float]:
    """Estimate the tempo of a mono signal.

    Method: band-weighted spectral flux -> autocorrelation -> a comb salience
    ``S(T)`` (mean autocorrelation at 1..4 beat periods) on a 0.5 %-spaced grid
    over 50-200 BPM, weighted by a log-normal prior centred at 90 BPM (one
    octave wide: lo-fi sits at 60-90, synthwave at 80-120). Octave errors are
    then settled explicitly: the double tempo wins when its own salience is at
    least 80 % of the candidate's, i.e. when kick and snare really land on the
    faster pulse, which is how a true 140-170 BPM song is still reported as
    such; the half tempo wins only when the candidate is above 120 BPM and its
    salience is clearly weaker. The period is refined on the autocorrelation
    peak near four beats.

    Parameters
    ----------
    y : numpy.ndarray
        Mono samples (``ANALYSIS_SR`` = 11025 Hz recommended).
    sr : int
        Sample rate in Hz.

    Returns
    -------
    (float or None, float)
        BPM (None when no beat is found) and a confidence in [0, 1].
    """
    y = np.asarray(y, dtype=np.float32)
    if len(y) < 4 * sr or not np.any(y):
        return None, 0.0
    env, fps = _onset_envelope(y, sr)
    if not np.any(env):
        return None, 0.0
    max_lag = int(fps * 4 * 60.0 / TEMPO_MIN_BPM) + 2
    max_lag = min(max_lag, len(env) - 1)
    acf = _autocorrelation(env, max_lag)
    grid = TEMPO_MIN_BPM * 2 ** (np.arange(0, np.log2(TEMPO_MAX_BPM / TEMPO_MIN_BPM), 0.007))

    def salience(bpm: np.ndarray) -> np.ndarray:
        period = 60.0 * fps / np.asarray(bpm, dtype=float)
        return np.mean([_interp(acf, k * period) for k in (1, 2, 3, 4)], axis=0)

    sal = salience(grid)
    prior = np.exp(-0.5 * (np.log2(grid / TEMPO_PRIOR_CENTER_BPM) / TEMPO_PRIOR_WIDTH_OCTAVES) ** 2)
    best = float(grid[int(np.argmax(sal * prior))])

    def local_best(bpm: float) -> tuple[float, float]:
        """The salience peak within +-4 % of ``bpm``."""
        cand = bpm * np.linspace(0.96, 1.04, 33)
        s = salience(cand)
        i = int(np.argmax(s))
        return float(cand[i]), float(s[i])

    best, s_best = local_best(best)
    for _ in range(2):  # at most two octave moves
        if best * 2 <= TEMPO_MAX_BPM:
            fast, s_fast = local_best(best * 2)
            if s_fast >= 0.8 * s_best:
                best, s_best = fast, s_fast
                continue
        if best > 120 and best / 2 >= TEMPO_MIN_BPM:
            slow, s_slow = local_best(best / 2)
            if s_best < 0.6 * s_slow:
                best, s_best = slow, s_slow
                continue
        break

    best = _refine_period(acf, fps, best)
    baseline = float(np.median(sal))
    confidence = float(np.clip((s_best - baseline) / 0.35, 0.0, 1.0))
    if confidence < TEMPO_MIN_CONFIDENCE:
        return None, confidence
    return round(float(best), 2), round(confidence, 3)


def _refine_period(acf: np.ndarray, fps: float, bpm: float) -> float:
    """Refine BPM from the autocorrelation peak near the longest usable multiple of the beat."""
    period = 60.0 * fps / bpm
    for k in (8, 4, 2, 1):
        lag = k * period
        lo, hi = int(lag * 0.97), int(np.ceil(lag * 1.03))
        if hi + 1 >= len(acf) or lo < 1:
            continue
        i = lo + int(np.argmax(acf[lo: hi + 1]))
        if i <= lo or i >= hi:
            continue
        a, b, c = acf[i - 1], acf[i], acf[i + 1]
        denom = a - 2 * b + c
        offset = 0.5 * (a - c) / denom if denom != 0 else 0.0
        return 60.0 * fps * k / (i + offset)
    return bpm


# --------------------------------------------------------------------------- key


def _chroma(y: np.ndarray, sr: int) -> np.ndarray:
    """Summed harmonic chroma (12,) of a mono signal.

    A long-window STFT (4096 at 11025 Hz: 2.7 Hz bins) is minimum-filtered along
    time over three frames (hop 2048: ~0.75 s), which keeps sustained (harmonic) partials and
    removes drum hits, like the harmonic half of HPSS; spectral peaks from 60 Hz to 2.1 kHz
    are folded onto pitch classes with a triangular weight around each semitone.
    """
    n_fft, hop = 4096, 2048
    mag = _stft_mag(y, n_fft, hop)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    sel = (freqs >= 60.0) & (freqs <= 2100.0)
    spec = mag[:, sel]
    if len(spec) >= 3:
        # Minimum over three frames (~0.3 s): a drum hit is shorter and vanishes,
        # a held note survives. Same effect here as a median (HPSS-style)
        # filter on the benchmark corpus, at 1/30 of the cost.
        spec = ndimage.minimum_filter1d(spec, 3, axis=0, mode="nearest")
    # Keep spectral peaks only: the skirts of a low note's main lobe would
    # otherwise leak into the neighbouring semitones.
    peaks = (spec >= np.roll(spec, 1, axis=1)) & (spec >= np.roll(spec, -1, axis=1))
    spec = spec * peaks
    # Mild log compression (tuned on the benchmark corpus: stronger compression
    # flattens the chroma, none lets a few loud partials dominate).
    spec = np.log(1.0 + 10.0 * spec / (spec.max() + 1e-12))
    midi = 69.0 + 12.0 * np.log2(freqs[sel] / 440.0)
    nearest = np.round(midi)
    weight = np.maximum(0.0, 1.0 - 2.0 * np.abs(midi - nearest))
    fold = np.zeros((len(midi), 12))
    fold[np.arange(len(midi)), nearest.astype(int) % 12] = weight
    return spec.sum(axis=0) @ fold


def _profile_matrix() -> np.ndarray:
    """z-scored key profiles, shape (2 profile sets, 24 keys, 12): rows 0-11 major C..B, 12-23 minor."""
    sets = []
    for profiles in ((_KK_MAJOR, _KK_MINOR), (_TEMPERLEY_MAJOR, _TEMPERLEY_MINOR)):
        rows = [np.roll(np.asarray(prof, float), tonic) for prof in profiles for tonic in range(12)]
        sets.append(np.array(rows))
    m = np.array(sets)
    return (m - m.mean(axis=2, keepdims=True)) / m.std(axis=2, keepdims=True)


_PROFILES_Z = _profile_matrix()


def _key_scores(chroma: np.ndarray) -> np.ndarray:
    """Pearson correlation of the chroma with each of 24 keys, averaged over both profile sets.

    Rows 0-11 are major (C..B), 12-23 minor.
    """
    c = np.asarray(chroma, float)
    cz = (c - c.mean()) / c.std()
    return (_PROFILES_Z @ cz).mean(axis=0) / 12.0


def estimate_key(y: np.ndarray, sr: int) -> tuple[str | None, float]:
    """Estimate the key (tonic and mode) of a mono signal.

    The harmonic chroma (see ``_chroma``) is correlated with the Krumhansl-
    Kessler and Temperley major/minor profiles in all 12 transpositions; the
    two correlations are averaged and the best of the 24 keys wins.

    Parameters
    ----------
    y : numpy.ndarray
        Mono samples (11025 Hz recommended).
    sr : int
        Sample rate in Hz.

    Returns
    -------
    (str or None, float)
        Key like ``"A minor"`` (None for silence or no pitched content) and a
        confidence in [0, 1]: the margin of the best key over the runner-up,
        relative to the room left above the runner-up.
    """
    y = np.asarray(y, dtype=np.float32)
    if len(y) < sr or not np.any(y):
        return None, 0.0
    chroma = _chroma(y, sr)
    if not np.any(chroma) or np.ptp(chroma) < 1e-9:
        return None, 0.0
    scores = _key_scores(chroma)
    order = np.argsort(scores)[::-1]
    top, second = scores[order[0]], scores[order[1]]
    if top <= 0:
        return None, 0.0
    confidence = float(np.clip((top - second) / max(1e-9, 1.0 - second) * 4.0, 0.0, 1.0) * min(1.0, top / 0.6))
    idx = int(order[0])
    name = f"{PITCH_CLASSES[idx % 12]} {'major' if idx < 12 else 'minor'}"
    return name, round(float(confidence), 3)


def camelot_code(key: str) -> str | None:
    """Camelot wheel code of a key: ``"A minor"`` -> ``"8A"``, ``"C major"`` -> ``"8B"``.

    Accepts sharps or flats and any case; returns None for anything else.
    """
    if not key:
        return None
    parts = key.strip().split()
    if len(parts) != 2:
        return None
    tonic = parts[0].upper()
    tonic = _FLATS.get(tonic, tonic)
    mode = parts[1].lower()
    if mode == "minor" and tonic in _CAMELOT_MINOR:
        return f"{_CAMELOT_MINOR[tonic]}A"
    if mode == "major" and tonic in _CAMELOT_MAJOR:
        return f"{_CAMELOT_MAJOR[tonic]}B"
    return None


# --------------------------------------------------------------------------- character


def energy_level(rms_dbfs: float | None) -> str | None:
    """``low`` below -20 dBFS RMS, ``high`` from -13 dBFS, else ``medium``.

    Mastered lo-fi (about -14 LUFS) lands around -16 dBFS RMS: medium; a loud
    synthwave master (-9 LUFS) is high; quiet ambient pieces are low.
    """
    if rms_dbfs is None:
        return None
    if rms_dbfs < ENERGY_LOW_BELOW_DBFS:
        return "low"
    if rms_dbfs >= ENERGY_HIGH_FROM_DBFS:
        return "high"
    return "medium"


def tempo_category(bpm: float | None) -> str | None:
    """``slow`` below 80 BPM (lo-fi), ``fast`` from 110 BPM, else ``mid``; None without a tempo."""
    if bpm is None:
        return None
    if bpm < TEMPO_SLOW_BELOW_BPM:
        return "slow"
    if bpm >= TEMPO_FAST_FROM_BPM:
        return "fast"
    return "mid"


# --------------------------------------------------------------------------- one file


def analyze_file(path: str | Path, *, ffmpeg_exe: str | None = None, digest: str | None = None) -> AudioFeatures:
    """Analyse one audio file: one decode, loudness in a second thread, tempo and key in numpy.

    Parameters
    ----------
    path : str or Path
        The audio file (any of ``SUPPORTED_EXTENSIONS``, any case).
    ffmpeg_exe : str or None
        The ffmpeg binary for m4a/aac; the bundled one
        (:func:`lofi_pipeline.core.ffmpeg.find_ffmpeg`) by default.
    digest : str or None
        The file's :func:`~lofi_pipeline.core.identity.content_hash` when the
        caller has just computed it (an import checks it to skip known
        content), so the file is not read twice; computed here otherwise.

    Returns
    -------
    AudioFeatures
        Duration (s, from the decoded samples), BPM + confidence, key +
        confidence + Camelot, loudness (LUFS) and true peak (dBTP), both
        libebur128's, RMS energy of the mono mix (linear, full scale = 1),
        spectral centroid (Hz), categories, content hash, native sample rate,
        channels and ``ANALYZER_VERSION``.

    Raises
    ------
    AudioFileError
        The file is empty, text, truncated, unreadable or cannot be decoded.
    """
    from lofi_pipeline.core.identity import content_hash

    path = Path(path)
    _precheck(path)
    digest = digest or content_hash(path)
    dec = _decode_for_analysis(path, ffmpeg_exe or _default_ffmpeg())
    try:
        # The meter thread is still measuring loudness and true peak meanwhile.
        bpm, bpm_conf = estimate_tempo(dec.excerpt, ANALYSIS_SR)
        key, key_conf = estimate_key(dec.excerpt, ANALYSIS_SR)
    finally:
        lufs, true_peak = dec.wait_loudness()
    rms_db = 20 * np.log10(dec.rms) if dec.rms > 0 else None
    return AudioFeatures(
        path=str(path),
        duration_seconds=round(dec.duration, 3),
        bpm=bpm,
        bpm_confidence=bpm_conf,
        key=key,
        key_confidence=key_conf if key else None,
        camelot=camelot_code(key) if key else None,
        loudness_lufs=round(lufs, 2) if lufs is not None else None,
        true_peak_db=round(true_peak, 2) if true_peak is not None else None,
        content_hash=digest,
        rms_energy=round(dec.rms, 5),
        spectral_centroid_hz=round(dec.centroid_hz, 1) if dec.centroid_hz else None,
        energy_level=energy_level(rms_db),
        tempo_category=tempo_category(bpm),
        sample_rate=dec.header.sample_rate,
        channels=dec.header.channels,
        analyzer_version=ANALYZER_VERSION,
    )


# --------------------------------------------------------------------------- many files


def _analyze_safely(path: str, ffmpeg_exe: str | None, digest: str | None = None) -> AudioFeatures:
    """Worker entry point: never raises, so one bad file cannot stop the batch."""
    try:
        return analyze_file(path, ffmpeg_exe=ffmpeg_exe, digest=digest)
    except AudioFileError as exc:
        return AudioFeatures(path=path, error=exc.reason, analyzer_version=ANALYZER_VERSION)
    except Exception as exc:  # noqa: BLE001 - a decoder bug must not end the import
        return AudioFeatures(path=path, error=f"analysis failed: {type(exc).__name__}: {exc}",
                             analyzer_version=ANALYZER_VERSION)


def _init_worker() -> None:
    # One process per core already; threaded BLAS/FFT inside each would oversubscribe.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def analyze_files(
    paths: Iterable[str | Path],
    *,
    workers: int | None = None,
    on_result: Callable[[AudioFeatures], None] | None = None,
    ffmpeg_exe: str | None = None,
    digests: Mapping[str, str] | None = None,
) -> list[AudioFeatures]:
    """Analyse many files in a process pool; a bad file never stops the batch.

    Parameters
    ----------
    paths : iterable of str or Path
        Audio files (use :func:`iter_audio_files` to expand folders).
    workers : int or None
        Worker processes; default ``os.cpu_count()``. ``1`` runs in this process.
    on_result : callable or None
        Called in this process with each result as it completes (any order),
        e.g. to advance a progress bar or write a row.
    ffmpeg_exe : str or None
        ffmpeg for formats libsndfile cannot read.
    digests : mapping of str to str, optional
        Content hashes already computed, by ``str(path)`` (see :func:`analyze_file`).

    Returns
    -------
    list of AudioFeatures
        One per input path, in input order; a file that failed has ``error``
        set (with the reason) and no figures.
    """
    items = [str(p) for p in paths]
    digests = digests or {}
    workers = workers or os.cpu_count() or 1
    results: dict[int, AudioFeatures] = {}
    if workers <= 1 or len(items) <= 1:
        for i, p in enumerate(items):
            results[i] = _analyze_safely(p, ffmpeg_exe, digests.get(p))
            if on_result:
                on_result(results[i])
        return [results[i] for i in range(len(items))]
    # "spawn": the caller may hold threads (Dagster, torch) that fork would copy badly.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(items)), mp_context=ctx,
                             initializer=_init_worker) as pool:
        futures = {pool.submit(_analyze_safely, p, ffmpeg_exe, digests.get(p)): i for i, p in enumerate(items)}
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - e.g. a worker killed by the OS
                res = AudioFeatures(path=items[i], error=f"analysis worker failed: {exc}",
                                    analyzer_version=ANALYZER_VERSION)
            results[i] = res
            if on_result:
                on_result(res)
    return [results[i] for i in range(len(items))]
