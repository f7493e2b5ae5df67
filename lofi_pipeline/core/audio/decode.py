"""Decoding for the analysis: one pass over a file, block by block.

A file is decoded once, in this process, at its native rate (libsndfile for
wav, flac, ogg and mp3, with libmpg123's fd-2 chatter filtered out; the bundled
ffmpeg through a pipe for m4a/aac and whatever libsndfile refuses). Each block
goes to the loudness meter thread and to :class:`_BlockStats` (RMS of the mono
mix, spectral-centroid snapshots, and the middle ``EXCERPT_SECONDS`` as mono,
resampled with soxr to ``ANALYSIS_SR``). Memory does not grow with the file.
Duration comes from the decoded sample count and is checked against the header.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr
from scipy import fft as sp_fft

from lofi_pipeline.core.audio.formats import SUPPORTED_EXTENSIONS
from lofi_pipeline.core.errors import AudioFileError
from lofi_pipeline.core.loudness import BLOCK_FRAMES, LoudnessMeter
from lofi_pipeline.core.probe import parse_input_summary


ANALYSIS_SR = 11025
"""Sample rate (Hz) for tempo and key: kick, snare, chords and bass all live
below 5.5 kHz, and a quarter of 44.1 kHz makes both STFTs four times cheaper."""

EXCERPT_SECONDS = 120.0
"""Tempo and key use at most this many seconds from the middle of the song:
enough for a stable estimate, and it bounds time and memory on long files."""



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


def analysis_excerpt(path: str | Path, *, ffmpeg_exe: str | None = None) -> np.ndarray:
    """The mono excerpt at ``ANALYSIS_SR`` (the middle ``EXCERPT_SECONDS``) that tempo and key read.

    The same checks and decode as :func:`analyze_file`'s (and the same
    ``AudioFileError`` for a bad file), so ``estimate_tempo`` and
    ``estimate_key`` on it give that function's answers; benchmarks cache it
    to try analyzer variants without decoding again.
    """
    path = Path(path)
    _precheck(path)
    dec = _decode_for_analysis(path, ffmpeg_exe or _default_ffmpeg())
    dec.wait_loudness()
    return dec.excerpt


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

