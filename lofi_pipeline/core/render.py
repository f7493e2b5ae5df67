"""Render a track's mix video: loudness-matched songs with crossfades over a looped background.

How a render works (and why it is fast and bounded)
---------------------------------------------------
**Plan.** :func:`build_render_plan` lays the selected songs end to end in mix
order, overlapping neighbours by the crossfade, repeating the sequence until the
target length is reached and trimming the last entry to the exact sample. Every
entry knows its start time, so chapters and ``render_plan.json`` come from the
same numbers as the audio.

**Audio: one continuous PCM stream, never a giant filter graph.** The seed
system built one ``acrossfade`` chain over every song; its graph grows with the
song count and its memory with the mix. Here each entry is decoded by its own
short-lived ``ffmpeg`` process (to 32-bit float stereo at the output rate) and
read block by block; Python applies the entry's gain (target LUFS minus the
song's analysed loudness), the equal-power crossfade envelope and the mix fade
in/out, and writes the summed block into the stdin of one encoder ``ffmpeg``.
At most two songs overlap at any moment, so at most two decoders (plus one
opened ahead) are alive and memory holds one block (2 s) per open decoder, for
a 5-minute test mix or a 3-hour mix of 200 entries alike. The encoder runs a
look-ahead limiter (``alimiter``, sample-peak ceiling set ``limiter_margin_db``
below the true-peak target to leave room for inter-sample peaks and AAC
overshoot) on the audio only, then AAC.

**Video: encoded once, looped by stream copy.** The background (an image, a
short loop video, or a generated solid colour) is scaled/padded to
``width``×``height`` and encoded with libx264 as one short segment whose GOP
is the whole segment (a keyframe at every loop boundary). The encoder reads it
with ``-stream_loop -1`` and copies it (``-c:v copy``) for the full length, so a
3-hour video costs one ~10 s encode.

**Output** (in ``output_dir``): ``mix.mp4``, ``ffmpeg_commands.txt`` (every
command and filter graph, with each entry's gain and envelope), ``chapters.txt``
and ``render_report.json`` (duration, streams, loudness and true peak measured
on the output with ffmpeg's ``ebur128``, wall time, realtime factor).

**A file that looks finished is finished.** The encoder writes a hidden
``.mix.partial-{pid}.mp4``; its audio track is decoded to check its length
against the plan, the text files and the report are written, and the video is
renamed to ``mix.mp4`` last. A killed render leaves only hidden files and a
``lofi_render_*`` work folder carrying its pid; the next render removes those
whose process is gone (and any older than six hours).

Units: seconds, Hz, LUFS, dB / dBTP.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lofi_pipeline.core.chapters import chapters_for_render, chapters_text, format_timestamp  # noqa: F401
from lofi_pipeline.core.errors import AudioFileError, RenderError
from lofi_pipeline.core.files import pid_alive, remove_orphans, write_json_atomic, write_text_atomic
from lofi_pipeline.core.models import SelectedSong
from lofi_pipeline.core.probe import (
    MediaInfo,
    ffmpeg_tail,
    measure_loudness_ffmpeg,
    measure_loudness_split,
    probe_media,
)

__all__ = [
    "RenderEntry", "RenderPlan", "RenderReport", "build_render_plan",
    "format_timestamp", "find_background", "render_mix", "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".m4v", ".gif")
MIX_FILENAME = "mix.mp4"
_MAX_GAIN_DB = 24.0  # a near-silent song is not boosted into noise
_BLOCK_SECONDS = 2.0
_F_SETPIPE_SZ = 1031  # Linux fcntl: enlarge pipes so decoders run ahead of the mixer


# --------------------------------------------------------------------------- plan


@dataclass
class RenderEntry:
    """One song occurrence in the mix, as the mix plan placed it.

    ``start_seconds`` is where its fade-in begins in the mix; ``play_seconds``
    is how much of the song plays (less than its length only for a trimmed
    last entry); ``fade_in_seconds`` / ``fade_out_seconds`` are the overlaps
    with the previous / next entry.
    """

    position: int  # 1-based position in the rendered mix (= the plan's position)
    song: SelectedSong
    start_seconds: float
    play_seconds: float
    fade_in_seconds: float
    fade_out_seconds: float

    @property
    def end_seconds(self) -> float:
        return self.start_seconds + self.play_seconds

    def to_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "arc_number": self.song.arc_number,
            "arc_name": self.song.arc_name,
            "prompt_number": self.song.prompt_number,
            "song_id": self.song.song_id,
            "file": self.song.filename,
            "path": self.song.path,
            "start_seconds": round(self.start_seconds, 3),
            "length_seconds": round(self.play_seconds, 3),
            "repeat": self.song.repeat_index,
            "fade_in_seconds": round(self.fade_in_seconds, 3),
            "fade_out_seconds": round(self.fade_out_seconds, 3),
        }


@dataclass
class RenderPlan:
    """The timeline of a mix; ``total_seconds`` is the exact output length."""

    entries: list[RenderEntry]
    total_seconds: float
    crossfade_seconds: float
    target_seconds: float | None  # None = the whole plan

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_seconds": round(self.total_seconds, 3),
            "crossfade_seconds": self.crossfade_seconds,
            "target_seconds": self.target_seconds,
            "entries": [e.to_dict() for e in self.entries],
        }


def build_render_plan(songs: list[SelectedSong], *, target_seconds: float | None,
                      crossfade_seconds: float = 5.0) -> RenderPlan:
    """Lay out the mix timeline: the songs once each, in ``order``, never looped.

    Parameters
    ----------
    songs : list of SelectedSong
        The mix plan's entries (repeats included, as the plan placed them);
        sorted by ``order`` here.
    target_seconds : float or None
        Cut the mix at this many seconds (the ``test`` render: 300). None
        plays the whole plan. A target past the plan's end plays the whole
        plan: a longer mix is a new plan (arcs scaled), not a loop.
    crossfade_seconds : float
        Overlap between neighbours, in seconds; shortened per join to half of
        the shorter song so that never more than two songs sound at once.

    Returns
    -------
    RenderPlan

    Raises
    ------
    RenderError
        No songs, a song without a positive duration, or a non-positive target.
    """
    if not songs:
        raise RenderError("nothing to render: the mix plan has no songs")
    for s in songs:
        if not (s.duration_seconds and s.duration_seconds > 0):
            raise RenderError(f"{s.path}: duration_seconds must be positive, got {s.duration_seconds!r}")
    if target_seconds is not None and not target_seconds > 0:
        raise RenderError(f"render target must be a positive number of seconds, got {target_seconds!r}")
    if crossfade_seconds < 0:
        raise RenderError(f"crossfade must be >= 0 seconds, got {crossfade_seconds!r}")

    entries: list[RenderEntry] = []
    for song in sorted(songs, key=lambda s: s.order):
        if entries:
            prev = entries[-1]
            overlap = min(crossfade_seconds, prev.play_seconds / 2, song.duration_seconds / 2)
            prev.fade_out_seconds = overlap
            start = prev.end_seconds - overlap
        else:
            overlap, start = 0.0, 0.0
        if target_seconds is not None and start >= target_seconds:
            break
        entries.append(RenderEntry(song.order, song, start, song.duration_seconds, overlap, 0.0))

    end = entries[-1].end_seconds
    total = end if target_seconds is None else min(float(target_seconds), end)
    # A last entry that would barely get past its crossfade is dropped and the
    # previous one trimmed instead: a song that only fades in is not a chapter.
    while len(entries) > 1 and total - entries[-1].start_seconds < entries[-1].fade_in_seconds + 1.0:
        entries.pop()
        total = min(total, entries[-1].end_seconds)
    last = entries[-1]
    last.play_seconds = total - last.start_seconds
    last.fade_out_seconds = 0.0
    return RenderPlan(entries=entries, total_seconds=total, crossfade_seconds=crossfade_seconds,
                      target_seconds=target_seconds)


# ------------------------------------------------------------------- chapters


def find_background(video_dir: Path) -> Path | None:
    """The background in ``Tracks/{N}/Video/``: a loop video if any, else an image, else None.

    Files are taken in name order, hidden files skipped.
    """
    if not video_dir.is_dir():
        return None
    files = sorted(p for p in video_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    for exts in (VIDEO_EXTENSIONS, IMAGE_EXTENSIONS):
        for p in files:
            if p.suffix.lower() in exts:
                return p
    return None


# --------------------------------------------------------------------- render


@dataclass
class RenderReport:
    """What :func:`render_mix` produced and measured (``render_report.json``)."""

    output_path: str
    planned_seconds: float
    duration_seconds: float | None  # probed from the output
    integrated_lufs: float | None  # measured on the output (ebur128)
    true_peak_db: float | None  # measured on the output (ebur128 peak=true), dBTP
    target_lufs: float
    true_peak_target_db: float
    wall_seconds: float
    realtime_factor: float  # seconds of output per second of wall time
    target_seconds: float | None  # None = the whole plan
    entries: list[dict[str, Any]]  # each placed entry (RenderEntry.to_dict)
    unique_songs: int
    max_open_decoders: int
    streams: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    gains_db: dict[str, float] = field(default_factory=dict)  # filename -> applied gain
    warnings: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _enlarge_pipe(fileobj: Any) -> None:
    try:
        import fcntl

        fcntl.fcntl(fileobj.fileno(), _F_SETPIPE_SZ, 1 << 20)
    except (OSError, ImportError, AttributeError, ValueError):
        pass  # a smaller pipe only costs speed


class _Decoder:
    """One entry's samples, read block by block from an ffmpeg child."""

    def __init__(self, *, ffmpeg_exe: str, path: str, frames: int, sample_rate: int):
        self.path = path
        self.frames = frames
        self.delivered = 0  # frames handed out (zeros past the end included)
        self.received = 0  # frames really decoded
        self.short = False
        self.returncode: int | None = None
        self.stderr_tail = ""
        # -t a little past the need so rounding never starves us; the rest is discarded.
        seconds = frames / sample_rate + 0.1
        self.cmd = [ffmpeg_exe, "-hide_banner", "-nostdin", "-v", "error", "-i", path, "-map", "0:a:0",
                    "-t", f"{seconds:.4f}", "-ac", "2", "-ar", str(sample_rate), "-f", "f32le", "pipe:1"]
        self._err = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=self._err)
        except OSError as exc:
            self._err.close()
            raise RenderError(f"cannot start ffmpeg to decode {path}: {exc}") from exc
        _enlarge_pipe(self.proc.stdout)

    def read(self, n: int) -> np.ndarray:
        """The next ``n`` frames as (n, 2) float32; zeros past the end of the file."""
        want = min(n, self.frames - self.delivered)
        raw = self.proc.stdout.read(want * 8) if want > 0 else b""
        got = len(raw) // 8
        out = np.zeros((n, 2), dtype=np.float32)
        if got:
            out[:got] = np.frombuffer(raw[: got * 8], dtype=np.float32).reshape(got, 2)
        if got < want:
            self.short = True
        self.delivered += n
        self.received += got
        return out

    def close(self) -> int:
        """Stop the child (it may still hold the 0.1 s margin) and keep its stderr tail."""
        if self.returncode is not None:
            return self.returncode
        killed = False
        if self.proc.poll() is None:
            self.proc.kill()
            killed = True
        self.proc.stdout.close()
        code = self.proc.wait()
        self._err.seek(0)
        self.stderr_tail = ffmpeg_tail(self._err.read().decode("utf-8", "replace"), lines=3)
        self._err.close()
        self.returncode = 0 if killed else code
        return self.returncode


def _fade_curve(t: np.ndarray, length: int, *, rising: bool) -> np.ndarray:
    """Equal-power (sin/cos) crossfade gain for positions ``t`` within a fade of ``length`` samples."""
    x = np.clip(t / max(length, 1), 0.0, 1.0)
    return np.sin(0.5 * np.pi * x) if rising else np.cos(0.5 * np.pi * x)


def _edge_curve(t: np.ndarray, length: int) -> np.ndarray:
    """Smooth (raised-cosine) 0→1 ramp for the mix fade-in/out."""
    x = np.clip(t / max(length, 1), 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * x)


@dataclass
class _Span:
    """An entry in samples: [start, end) on the mix timeline, fades in samples."""

    entry: RenderEntry
    start: int
    end: int
    fade_in: int
    fade_out: int
    gain: float  # linear


def _spans(plan: RenderPlan, gains_db: list[float], sample_rate: int) -> list[_Span]:
    spans: list[_Span] = []
    for entry, g in zip(plan.entries, gains_db):
        start = int(round(entry.start_seconds * sample_rate))
        end = int(round(entry.end_seconds * sample_rate))
        spans.append(_Span(entry, start, end, 0, 0, 10 ** (g / 20)))
    # Fades follow from the integer positions so neighbours overlap exactly.
    for a, b in zip(spans, spans[1:]):
        overlap = max(0, a.end - b.start)
        a.fade_out = b.fade_in = overlap
    return spans


def _song_loudness(plan: RenderPlan, *, ffmpeg_exe: str, warnings: list[str],
                   on_phase: Callable[[str, int, int], None] | None = None) -> dict[str, float]:
    """Analysed loudness per song path; measured with ebur128 where the selection has none.

    Reports phase ``"loudness"`` with one step per distinct song (a stored
    value counts as a step done at once).
    """
    paths = list(dict.fromkeys(e.song.path for e in plan.entries))
    if on_phase is not None:
        on_phase("loudness", 0, len(paths))
    loudness: dict[str, float] = {}
    for entry in plan.entries:
        s = entry.song
        if s.path in loudness:
            continue
        if s.loudness_lufs is not None:
            loudness[s.path] = float(s.loudness_lufs)
        else:
            try:
                loudness[s.path], _ = measure_loudness_ffmpeg(s.path, ffmpeg_exe=ffmpeg_exe)
            except AudioFileError as exc:
                raise RenderError(f"cannot measure the loudness of {s.path}: {exc.reason}") from exc
            warnings.append(f"{s.filename}: no analysed loudness, measured {loudness[s.path]:.1f} LUFS "
                            "with ebur128")
        if on_phase is not None:
            on_phase("loudness", len(loudness), len(paths))
    return loudness


def _background_command(*, ffmpeg_exe: str, background: Path | None, out: Path, width: int, height: int,
                        fps: int, segment_seconds: float, colour: str) -> list[str]:
    frames = max(1, int(round(segment_seconds * fps)))
    fit = (f"scale={width}:{height}:force_original_aspect_ratio=decrease,"
           f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,fps={fps},format=yuv420p")
    cmd = [ffmpeg_exe, "-hide_banner", "-nostdin", "-v", "error", "-y"]
    if background is None:
        cmd += ["-f", "lavfi", "-i", f"color=c={colour}:s={width}x{height}:r={fps}"]
        extra, gop = ["-tune", "stillimage", "-frames:v", str(frames)], frames
    elif background.suffix.lower() in IMAGE_EXTENSIONS:
        # Decode and scale the image once, then repeat the scaled frame in memory
        # (``-loop 1`` would decode and scale it again for every frame).
        cmd += ["-framerate", str(fps), "-i", str(background)]
        fit += f",loop=loop={frames - 1}:size=1:start=0"
        extra, gop = ["-tune", "stillimage", "-frames:v", str(frames)], frames
    else:
        # A loop video keeps its own length (up to the cap) so its loop point stays where it was made.
        cmd += ["-i", str(background)]
        extra, gop = ["-t", f"{segment_seconds:.3f}"], 2 * fps
    # Closed GOPs with a keyframe at the segment start: every loop boundary decodes on its own.
    cmd += ["-an", "-vf", fit, *extra, "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
            "-profile:v", "high", "-pix_fmt", "yuv420p", "-g", str(gop), "-keyint_min", str(gop),
            "-sc_threshold", "0", "-flags", "+cgop", str(out)]
    return cmd


def render_mix(
    plan: RenderPlan,
    *,
    output_dir: Path,
    background: Path | None,
    ffmpeg_exe: str,
    target_lufs: float = -14.0,
    true_peak_db: float = -1.0,
    fade_in: float = 3.0,
    fade_out: float = 10.0,
    width: int = 1920,
    height: int = 1080,
    fps: int = 30,
    sample_rate: int = 48000,
    audio_bitrate: str = "192k",
    segment_seconds: float = 10.0,
    loop_video_max_seconds: float = 60.0,
    background_colour: str = "0x1d1a2f",
    limiter_margin_db: float = 2.0,
    measure_output: bool = True,
    chapters: list[tuple[float, str]] | None = None,
    allow_missing: bool = False,
    on_progress: Callable[[float], None] | None = None,
    on_phase: Callable[[str, int, int], None] | None = None,
) -> RenderReport:
    """Render ``plan`` to ``output_dir/mix.mp4`` with chapters, commands and a report.

    A file named ``mix.mp4`` is always a finished, checked mix: the video is
    encoded to a hidden ``.mix.partial-{pid}.mp4`` beside it, its audio track
    is decoded to check its length against the plan, the report is written,
    and only then is the video renamed into place. A render that fails removes
    its partial video and its ``lofi_render_*`` work folder; one that is
    killed (SIGKILL, power cut) leaves only hidden files, which the next
    render removes (see :func:`_remove_stale_leftovers`).

    Parameters
    ----------
    plan : RenderPlan
        From :func:`build_render_plan`.
    output_dir : Path
        Created if missing; the caller passes ``Tracks/{N}/Rendered/output_{timestamp}/``.
    background : Path or None
        An image or a short loop video (see :func:`find_background`); None
        renders a solid ``background_colour`` frame.
    ffmpeg_exe : str
        The ffmpeg binary (:func:`lofi_pipeline.core.ffmpeg.find_ffmpeg`).
    target_lufs : float
        Integrated loudness the mix is set to, in LUFS: each song gets
        ``target_lufs - loudness_lufs`` dB (limited to ±24 dB).
    true_peak_db : float
        True-peak ceiling in dBTP; the limiter's sample ceiling sits
        ``limiter_margin_db`` below it.
    fade_in, fade_out : float
        Mix fade-in and fade-out, in seconds.
    width, height, fps : int
        Video frame size in pixels and frame rate.
    sample_rate : int
        Output audio rate in Hz (songs are resampled while decoding).
    audio_bitrate : str
        AAC bitrate, e.g. ``"192k"``.
    segment_seconds : float
        Length of the once-encoded still background segment, in seconds.
    loop_video_max_seconds : float
        A loop video longer than this is cut to this length, in seconds.
    measure_output : bool
        Measure loudness and true peak on the finished file (about 150x
        realtime); off only for benchmarks of the render itself.
    allow_missing : bool
        A song file missing at render time is left out (the remaining songs
        are laid out again with the plan's target and crossfade, and the
        report warns about each one) instead of failing the render.
    on_progress : callable, optional
        Called in the calling thread with the fraction of the mix encoded
        (0..1), parsed from ffmpeg's ``-progress`` output.
    on_phase : callable, optional
        Called in the calling thread as ``on_phase(name, done, total)`` for
        every phase, in this order: ``"loudness"`` (songs measured, one step
        per distinct song), ``"background"`` (video frames encoded),
        ``"mix"`` (seconds of the mix encoded) and ``"check"`` (steps of the
        final check: audio length, loudness, report). Each phase reports
        ``(0, total)`` first and ``(total, total)`` when done.

    Returns
    -------
    RenderReport

    Raises
    ------
    RenderError
        A song (unless ``allow_missing``) or the background is missing, an
        ffmpeg run fails (the message carries ffmpeg's last stderr lines), or
        the encoded audio is not as long as the plan.
    """
    t_start = time.monotonic()
    output_dir = Path(output_dir)
    warnings: list[str] = []
    plan = _without_missing_songs(plan, allow_missing=allow_missing, warnings=warnings)
    if background is not None and not Path(background).is_file():
        raise RenderError(f"background not found: {background}")
    if not Path(ffmpeg_exe).is_file():
        raise RenderError(f"ffmpeg not found: {ffmpeg_exe}")
    output_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_leftovers(output_dir)
    out_video = output_dir / MIX_FILENAME
    partial_video = output_dir / f".{out_video.stem}.partial-{os.getpid()}{out_video.suffix}"
    timings: dict[str, float] = {}
    commands: list[str] = []

    def phase(name: str, done: int, total: int) -> None:
        if on_phase is not None:
            on_phase(name, done, total)

    loudness = _song_loudness(plan, ffmpeg_exe=ffmpeg_exe, warnings=warnings, on_phase=phase)
    gains_db: list[float] = []
    for entry in plan.entries:
        g = target_lufs - loudness[entry.song.path]
        if abs(g) > _MAX_GAIN_DB:
            warnings.append(f"{entry.song.filename}: gain {g:+.1f} dB limited to ±{_MAX_GAIN_DB:.0f} dB")
            g = math.copysign(_MAX_GAIN_DB, g)
        gains_db.append(g)
    timings["loudness_seconds"] = time.monotonic() - t_start

    try:
        with tempfile.TemporaryDirectory(prefix=_WORK_DIR_PREFIX) as tmp:
            _claim_work_dir(Path(tmp))
            # ---- video: one short segment
            t0 = time.monotonic()
            segment = Path(tmp) / "background_segment.mp4"
            seg_len = segment_seconds
            if background is not None and Path(background).suffix.lower() not in IMAGE_EXTENSIONS:
                info = probe_media(background, ffmpeg_exe=ffmpeg_exe)
                seg_len = min(info.duration_seconds or segment_seconds, loop_video_max_seconds)
            seg_cmd = _background_command(ffmpeg_exe=ffmpeg_exe,
                                          background=Path(background) if background else None,
                                          out=segment, width=width, height=height, fps=fps,
                                          segment_seconds=seg_len, colour=background_colour)
            commands.append("# 1. background segment, encoded once\n" + shlex.join(seg_cmd))
            _encode_background(seg_cmd, segment=segment, frames=max(1, int(round(seg_len * fps))),
                               what=str(background or background_colour), phase=phase)
            timings["video_segment_seconds"] = time.monotonic() - t0

            # ---- audio stream + mux
            t0 = time.monotonic()
            spans = _spans(plan, gains_db, sample_rate)
            total_frames = spans[-1].end
            ceiling = 10 ** ((true_peak_db - limiter_margin_db) / 20)
            audio_graph = (f"alimiter=limit={ceiling:.4f}:attack=5:release=80:level=disabled:latency=1,"
                           f"aformat=sample_fmts=fltp")
            enc_cmd = [ffmpeg_exe, "-hide_banner", "-nostats", "-v", "warning", "-y",
                       "-f", "f32le", "-ar", str(sample_rate), "-ac", "2", "-i", "pipe:0",
                       "-stream_loop", "-1", "-i", str(segment),
                       "-map", "1:v:0", "-map", "0:a:0", "-filter:a", audio_graph,
                       "-c:v", "copy", "-c:a", "aac", "-aac_coder", "fast", "-b:a", audio_bitrate,
                       "-t", f"{total_frames / sample_rate:.6f}", "-movflags", "+faststart",
                       "-progress", "pipe:1", "-f", "mp4", str(partial_video)]
            commands.append("# 2. mix encoder: float PCM from the mixer on stdin, background looped by copy\n"
                            f"#    audio filter graph: {audio_graph}\n"
                            "#    written to a hidden partial file, renamed to "
                            f"{out_video.name} once checked\n" + shlex.join(enc_cmd))
            commands.append(_mixer_description(spans, sample_rate=sample_rate, fade_in=fade_in,
                                               fade_out=fade_out, ffmpeg_exe=ffmpeg_exe))
            max_open = _stream_mix(spans, enc_cmd=enc_cmd, ffmpeg_exe=ffmpeg_exe, sample_rate=sample_rate,
                                   fade_in=fade_in, fade_out=fade_out, on_progress=on_progress,
                                   on_phase=phase, out_video=partial_video, output_dir=output_dir,
                                   warnings=warnings)
            timings["mix_encode_seconds"] = time.monotonic() - t0

        # ---- check and measure the output, still under its hidden name
        t0 = time.monotonic()
        steps = 3 if measure_output else 2
        phase("check", 0, steps)
        info = _checked_output(partial_video, plan=plan, ffmpeg_exe=ffmpeg_exe)
        phase("check", 1, steps)
        timings["check_seconds"] = time.monotonic() - t0
        t0 = time.monotonic()
        lufs = peak = None
        if measure_output:
            if plan.total_seconds >= 600:  # long mixes: split the true-peak scan over two cores
                lufs, peak = measure_loudness_split(partial_video, ffmpeg_exe=ffmpeg_exe,
                                                    duration_seconds=plan.total_seconds)
            else:
                lufs, peak = measure_loudness_ffmpeg(partial_video, ffmpeg_exe=ffmpeg_exe)
            if abs(lufs - target_lufs) > 1.0:
                warnings.append(f"output loudness {lufs:.1f} LUFS is more than 1 LU from the target "
                                f"{target_lufs:.1f}")
            if peak > true_peak_db + 0.2:
                warnings.append(f"output true peak {peak:.1f} dBTP is above the ceiling {true_peak_db:.1f}")
            phase("check", 2, steps)
        timings["measure_seconds"] = time.monotonic() - t0

        # ---- reports first, the video last: a mix.mp4 is never without its report

        commands_path = write_text_atomic(output_dir / "ffmpeg_commands.txt", "\n\n".join(commands) + "\n")
        chapters_path = write_text_atomic(output_dir / "chapters.txt", chapters_text(
            chapters if chapters is not None else chapters_for_render(plan)))
        plan_path = write_json_atomic(output_dir / "render_plan.json", plan.to_dict())
        report_path = output_dir / "render_report.json"
        wall = time.monotonic() - t_start
        report = RenderReport(
            output_path=str(out_video), planned_seconds=plan.total_seconds,
            duration_seconds=info.duration_seconds, integrated_lufs=lufs, true_peak_db=peak,
            target_lufs=target_lufs, true_peak_target_db=true_peak_db, wall_seconds=round(wall, 3),
            realtime_factor=round(plan.total_seconds / wall, 2) if wall > 0 else 0.0,
            target_seconds=plan.target_seconds, entries=[e.to_dict() for e in plan.entries],
            unique_songs=len({e.song.song_id for e in plan.entries}),
            max_open_decoders=max_open, streams=[asdict(s) for s in info.streams],
            timings={k: round(v, 3) for k, v in timings.items()},
            gains_db={e.song.filename: round(g, 2) for e, g in zip(plan.entries, gains_db)},
            warnings=warnings,
            files={"video": str(out_video), "commands": str(commands_path), "chapters": str(chapters_path),
                   "plan": str(plan_path), "report": str(report_path)},
        )
        write_json_atomic(report_path, report.to_dict())
        os.replace(partial_video, out_video)
        phase("check", steps, steps)
    except BaseException:
        partial_video.unlink(missing_ok=True)  # a half-written or unchecked mix is not a result
        raise
    return report


# ------------------------------------------------------------- render helpers

_WORK_DIR_PREFIX = "lofi_render_"
_OWNER_FILE = "owner.pid"
_STALE_WORK_DIR_SECONDS = 6 * 3600  # a work folder without a live owner, or one this old, is left over
_PARTIAL_VIDEO = re.compile(r"^\.mix\.partial-(?P<pid>\d+)\.mp4$")


def _without_missing_songs(plan: RenderPlan, *, allow_missing: bool, warnings: list[str]) -> RenderPlan:
    """``plan`` itself when every song file is there; else an error naming them, or a plan without them."""
    missing: dict[str, RenderEntry] = {}
    for entry in plan.entries:
        if entry.song.path not in missing and not Path(entry.song.path).is_file():
            missing[entry.song.path] = entry
    if not missing:
        return plan
    named = "; ".join(f"{path} (mix position {e.position})" for path, e in list(missing.items())[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    if not allow_missing:
        raise RenderError(f"song file not found: {named}{more} — restore the file, run prepare-render again, "
                          "or render with --allow-missing to leave it out")
    kept: dict[str, SelectedSong] = {}
    for entry in plan.entries:
        if entry.song.path not in missing:
            kept.setdefault(entry.song.path, entry.song)
    if not kept:
        raise RenderError(f"nothing to render: every song file is missing ({named}{more})")
    for path, entry in missing.items():
        warnings.append(f"{entry.song.filename}: song file missing at render time ({path}); "
                        "left out of the mix")
    # The remaining songs are laid out again so the mix has no hole where a song was.
    return build_render_plan(list(kept.values()), target_seconds=plan.target_seconds,
                             crossfade_seconds=plan.crossfade_seconds)


def _claim_work_dir(work_dir: Path) -> None:
    """Record this process as the owner, so a later render knows when the folder is left over."""
    (work_dir / _OWNER_FILE).write_text(f"{os.getpid()}\n", encoding="ascii")


def _remove_stale_leftovers(output_dir: Path, *, now: float | None = None) -> list[Path]:
    """Remove what killed renders left behind; returns the paths removed.

    * ``lofi_render_*`` work folders in the temp directory whose owner process
      is gone, and any older than six hours (also those of renders from before
      the owner file existed);
    * hidden ``.mix.partial-{pid}.mp4`` videos of dead processes in
      ``output_dir`` and in its ``output_*`` sibling folders (a killed
      render's own ``Rendered/output_{stamp}`` folder is a sibling of the
      next one's; other siblings are not looked into).

    Nothing that belongs to a live render is touched. Errors are ignored: a
    left-over file only costs disk space.
    """
    now = time.time() if now is None else now
    removed: list[Path] = []
    tmp_root = Path(tempfile.gettempdir())
    try:
        candidates = [p for p in tmp_root.iterdir() if p.name.startswith(_WORK_DIR_PREFIX) and p.is_dir()]
    except OSError:
        candidates = []
    for work in candidates:
        try:
            age = now - work.stat().st_mtime
            owner_text = (work / _OWNER_FILE).read_text(encoding="ascii").strip() \
                if (work / _OWNER_FILE).is_file() else ""
            owner = int(owner_text) if owner_text.isdigit() else None
            stale = age > _STALE_WORK_DIR_SECONDS or (owner is not None and not pid_alive(owner))
            if stale and owner != os.getpid():
                shutil.rmtree(work, ignore_errors=True)
                removed.append(work)
        except OSError:
            continue
    folders = [output_dir]
    try:
        folders += [p for p in output_dir.parent.iterdir()
                    if p.name.startswith("output_") and p != output_dir and p.is_dir()]
    except OSError:
        pass
    for folder in folders:
        try:
            leftovers = [p for p in folder.iterdir() if _PARTIAL_VIDEO.match(p.name)]
        except OSError:
            continue
        removed += remove_orphans(leftovers, lambda p: int(_PARTIAL_VIDEO.match(p.name)["pid"]))
    return removed


def _encode_background(cmd: list[str], *, segment: Path, frames: int, what: str,
                       phase: Callable[[str, int, int], None]) -> None:
    """Run the background encode, reporting frames done from ffmpeg's ``-progress`` lines."""
    cmd = [*cmd[:-1], "-progress", "pipe:1", "-nostats", cmd[-1]]
    phase("background", 0, frames)
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        except OSError as exc:
            raise RenderError(f"cannot start ffmpeg to encode the background {what}: {exc}") from exc
        try:
            last = 0
            for raw in proc.stdout:
                key, _, value = raw.decode("ascii", "replace").strip().partition("=")
                if key == "frame" and value.isdigit() and int(value) > last:
                    last = min(int(value), frames)
                    phase("background", last, frames)
            code = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            proc.stdout.close()
        if code != 0 or not segment.is_file():
            err.seek(0)
            raise RenderError(f"ffmpeg could not encode the background {what}: "
                              f"{ffmpeg_tail(err.read().decode('utf-8', 'replace'))}")
    phase("background", frames, frames)


_LENGTH_TOLERANCE_SECONDS = 0.5
# "time=00:10:00.16" in ffmpeg's stats line
_STATS_TIME = re.compile(r"time=\s*(?P<h>\d+):(?P<m>\d{2}):(?P<s>\d{2}(?:\.\d+)?)")


def _checked_output(video: Path, *, plan: RenderPlan, ffmpeg_exe: str) -> MediaInfo:
    """The encoded file's streams and the real length of its audio track; RenderError when it is not the plan.

    The length comes from reading every audio packet (``-c copy`` to the null
    muxer, about 4,000x realtime), not from the container header, which a
    cut-short encode can still fill in with the full length.
    """
    try:
        info = probe_media(video, ffmpeg_exe=ffmpeg_exe)
    except AudioFileError as exc:
        raise RenderError(f"the encoded mix cannot be read back: {exc.reason}") from exc
    if not info.of_type("audio") or not info.of_type("video"):
        kinds = ", ".join(s.type for s in info.streams) or "none"
        raise RenderError(f"the encoded mix should have one video and one audio stream, found: {kinds}")
    run = subprocess.run([ffmpeg_exe, "-hide_banner", "-nostdin", "-i", str(video), "-map", "0:a:0", "-c", "copy",
                          "-f", "null", "-"], capture_output=True, text=True, errors="replace")
    times = list(_STATS_TIME.finditer(run.stderr))
    if run.returncode != 0 or not times:
        raise RenderError(f"the encoded mix's audio cannot be read back: {ffmpeg_tail(run.stderr, lines=3)}")
    m = times[-1]
    length = int(m["h"]) * 3600 + int(m["m"]) * 60 + float(m["s"])
    if abs(length - plan.total_seconds) > _LENGTH_TOLERANCE_SECONDS:
        raise RenderError(f"the encoded mix's audio lasts {length:.2f} s, the plan {plan.total_seconds:.2f} s; "
                          "the video was not kept")
    info.duration_seconds = length
    return info


def _mixer_description(spans: list[_Span], *, sample_rate: int, fade_in: float, fade_out: float,
                       ffmpeg_exe: str) -> str:
    lines = ["# 3. mixer (Python, block by block): each entry decoded by its own ffmpeg child,",
             "#    gain applied, equal-power sin/cos crossfade over the overlap, raised-cosine mix fades",
             f"#    mix fade-in {fade_in:g} s, fade-out {fade_out:g} s, {sample_rate} Hz float32 stereo",
             "#    decoder: " + shlex.join([ffmpeg_exe, "-hide_banner", "-nostdin", "-v", "error", "-i", "SONG",
                                           "-map", "0:a:0", "-t", "SECONDS", "-ac", "2", "-ar", str(sample_rate),
                                           "-f", "f32le", "pipe:1"]),
             "# position\tstart_s\tplay_s\tfade_in_s\tfade_out_s\tgain_db\tfile"]
    for s in spans:
        lines.append(f"{s.entry.position}\t{s.start / sample_rate:.3f}\t{(s.end - s.start) / sample_rate:.3f}\t"
                     f"{s.fade_in / sample_rate:.3f}\t{s.fade_out / sample_rate:.3f}\t"
                     f"{20 * math.log10(s.gain):+.2f}\t{s.entry.song.path}")
    return "\n".join(lines)


class _ProgressReader(threading.Thread):
    """Reads ``-progress pipe:1`` key=value lines; keeps the latest output time in seconds."""

    def __init__(self, stream: Any):
        super().__init__(daemon=True)
        self.stream = stream
        self.out_seconds = 0.0
        self.ended = False

    def run(self) -> None:
        for raw in self.stream:
            line = raw.decode("ascii", "replace").strip()
            key, _, value = line.partition("=")
            if key == "out_time_us" and value.lstrip("-").isdigit():
                self.out_seconds = max(self.out_seconds, int(value) / 1e6)
            elif key == "progress" and value == "end":
                self.ended = True


def _stream_mix(spans: list[_Span], *, enc_cmd: list[str], ffmpeg_exe: str, sample_rate: int, fade_in: float,
                fade_out: float, on_progress: Callable[[float], None] | None, out_video: Path,
                output_dir: Path, warnings: list[str],
                on_phase: Callable[[str, int, int], None] | None = None) -> int:
    """Feed the encoder block by block; returns the most decoders open at once.

    Progress goes to ``on_progress`` as a fraction and to ``on_phase`` as
    ``("mix", whole seconds encoded, whole seconds of the mix)``.
    """
    total = spans[-1].end
    total_seconds = total / sample_rate
    block = int(_BLOCK_SECONDS * sample_rate)
    fin, fout = int(round(fade_in * sample_rate)), int(round(fade_out * sample_rate))
    err = tempfile.TemporaryFile()
    try:
        enc = subprocess.Popen(enc_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
    except OSError as exc:
        err.close()
        raise RenderError(f"cannot start ffmpeg {ffmpeg_exe}: {exc}") from exc
    _enlarge_pipe(enc.stdin)
    progress = _ProgressReader(enc.stdout)
    progress.start()
    decoders: dict[int, _Decoder] = {}
    max_open = 0
    last_reported = -1.0
    phase_total = max(1, int(math.ceil(total_seconds)))
    last_phase = -1

    def report(done: float) -> None:
        nonlocal last_reported
        if on_progress is not None and (done - last_reported >= 0.002 or done >= 1.0):
            last_reported = done
            on_progress(done)

    def report_phase(seconds: int) -> None:
        # Seconds handed to the encoder (one step per block, so even a short mix moves);
        # the last second is reported once the encoder has finished the file.
        nonlocal last_phase
        if on_phase is not None and seconds > last_phase:
            last_phase = seconds
            on_phase("mix", seconds, phase_total)

    def fail(message: str) -> RenderError:
        err.seek(0)
        tail = ffmpeg_tail(err.read().decode("utf-8", "replace"))
        return RenderError(f"{message}: {tail}" if tail else message)

    def open_decoder(s: _Span) -> None:
        nonlocal max_open
        decoders[id(s)] = _Decoder(ffmpeg_exe=ffmpeg_exe, path=s.entry.song.path, frames=s.end - s.start,
                                   sample_rate=sample_rate)
        max_open = max(max_open, len(decoders))

    def finish(s: _Span) -> None:
        dec = decoders.pop(id(s))
        code = dec.close()
        if code != 0 or (dec.short and dec.received == 0):
            raise RenderError(f"ffmpeg could not decode {s.entry.song.path}: {dec.stderr_tail}")
        if dec.short and dec.frames - dec.received > sample_rate // 10:
            warnings.append(f"{s.entry.song.filename}: {(dec.frames - dec.received) / sample_rate:.1f} s "
                            "shorter than its recorded duration; padded with silence")

    next_span = 0  # first span not yet finished
    try:
        report(0.0)
        report_phase(0)
        pos = 0
        while pos < total:
            n = min(block, total - pos)
            out = np.zeros((n, 2), dtype=np.float32)
            i = next_span
            while i < len(spans) and spans[i].start < pos + n:
                s = spans[i]
                i += 1
                if s.end <= pos:
                    continue
                if id(s) not in decoders:
                    open_decoder(s)
                lo, hi = max(pos, s.start), min(pos + n, s.end)
                chunk = decoders[id(s)].read(hi - lo)
                t = np.arange(lo - s.start, hi - s.start, dtype=np.float64)
                env = np.full(hi - lo, s.gain)
                if s.fade_in:
                    env *= np.where(t < s.fade_in, _fade_curve(t, s.fade_in, rising=True), 1.0)
                if s.fade_out:
                    tail0 = (s.end - s.start) - s.fade_out
                    env *= np.where(t >= tail0, _fade_curve(t - tail0, s.fade_out, rising=False), 1.0)
                out[lo - pos:hi - pos] += chunk * env[:, None].astype(np.float32)
                if hi == s.end:
                    finish(s)  # as soon as its last frame is read, so short songs never pile up
            # Open the next entry's decoder one block early so its ffmpeg starts
            # decoding while this block encodes (at most 3 open: 2 sounding + 1 ahead).
            if i < len(spans) and spans[i].start < pos + 2 * n and id(spans[i]) not in decoders:
                open_decoder(spans[i])
            # Mix fades on the whole timeline.
            t = np.arange(pos, pos + n, dtype=np.float64)
            if fin and pos < fin:
                out *= _edge_curve(t, fin)[:, None].astype(np.float32)
            if fout and pos + n > total - fout:
                out *= _edge_curve(total - t, fout)[:, None].astype(np.float32)
            try:
                enc.stdin.write(out.tobytes())
            except (BrokenPipeError, OSError):
                enc.wait()
                raise fail("ffmpeg stopped while encoding the mix") from None
            pos += n
            while next_span < len(spans) and spans[next_span].end <= pos:
                next_span += 1
            report(min(progress.out_seconds / total_seconds, 1.0) * 0.99)
            report_phase(min(int(pos / sample_rate), phase_total - 1))
        enc.stdin.close()
        while enc.poll() is None:
            report(min(progress.out_seconds / total_seconds, 1.0) * 0.99)
            time.sleep(0.1)
        progress.join(timeout=5)
        if enc.returncode != 0:
            raise fail(f"ffmpeg failed writing {out_video}")
        report(1.0)
        report_phase(phase_total)
        return max_open
    except BaseException:
        if enc.poll() is None:
            enc.kill()
            enc.wait()
        out_video.unlink(missing_ok=True)  # a half-written mix is not a result
        raise
    finally:
        for dec in decoders.values():
            dec.close()
        err.close()
