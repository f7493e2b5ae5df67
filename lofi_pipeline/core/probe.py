"""Read media facts and loudness with the ffmpeg binary alone.

The bundled imageio-ffmpeg ships no ffprobe, so :func:`probe_media` parses the
stream summary that ``ffmpeg -i FILE`` prints on stderr, and
:func:`measure_loudness_ffmpeg` runs the ``ebur128`` filter (ITU-R BS.1770,
true-peak mode) and parses its summary.

Units: seconds, Hz, LUFS (integrated loudness), dBTP (true peak).
"""

from __future__ import annotations

import math
import re
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lofi_pipeline.core.errors import AudioFileError

__all__ = ["MediaInfo", "StreamInfo", "probe_media", "measure_loudness_ffmpeg", "measure_loudness_split",
           "ffmpeg_tail", "parse_input_summary"]

# "Duration: 00:01:23.45, start: 0.000000, bitrate: 305 kb/s" ("N/A" for raw pipes)
_DURATION = re.compile(r"Duration:\s*(?P<h>\d+):(?P<m>\d{2}):(?P<s>\d{2}(?:\.\d+)?)")
# "Stream #0:1[0x2](und): Audio: aac (LC) (mp4a / 0x6134706D), 48000 Hz, stereo, fltp, 192 kb/s"
_STREAM = re.compile(r"^\s*Stream #\d+:\d+\S*:\s*(?P<type>Video|Audio|Subtitle|Data|Attachment):\s*(?P<rest>.*)$")
_SIZE = re.compile(r"(?<![\dx])(?P<w>\d{2,5})x(?P<h>\d{2,5})(?![\dx])")
_RATE = re.compile(r"(?P<hz>\d+)\s*Hz")
# "time=00:10:00.16" in ffmpeg's final stats line (used for exact durations)
_TIME = re.compile(r"time=\s*(?P<h>\d+):(?P<m>\d{2}):(?P<s>\d{2}(?:\.\d+)?)")
_LAYOUT_CHANNELS = {"mono": 1, "stereo": 2, "2.1": 3, "3.0": 3, "quad": 4, "4.0": 4,
                    "5.0": 5, "5.1": 6, "5.0(side)": 5, "5.1(side)": 6, "6.1": 7, "7.1": 8}


@dataclass
class StreamInfo:
    """One stream as ffmpeg describes it; fields that do not apply are None."""

    type: str  # "video", "audio", "subtitle", "data", "attachment"
    codec: str
    width: int | None = None
    height: int | None = None
    sample_rate: int | None = None  # Hz
    channels: int | None = None


@dataclass
class MediaInfo:
    """What ``ffmpeg -i`` says about a file.

    ``duration_seconds`` is the container duration (None when ffmpeg prints
    ``N/A``), or the decoded length when :func:`probe_media` ran with
    ``exact=True``.
    """

    path: str
    duration_seconds: float | None
    streams: list[StreamInfo] = field(default_factory=list)

    def of_type(self, kind: str) -> list[StreamInfo]:
        return [s for s in self.streams if s.type == kind]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ffmpeg_tail(stderr: str, *, lines: int = 8) -> str:
    """The last non-empty lines of ffmpeg's stderr, joined for an error message."""
    kept = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    return " | ".join(kept[-lines:])


def _hms(m: re.Match[str]) -> float:
    return int(m["h"]) * 3600 + int(m["m"]) * 60 + float(m["s"])


def _parse_stream(kind: str, rest: str) -> StreamInfo:
    codec = rest.split(",", 1)[0].split()[0].strip() if rest.strip() else "unknown"
    info = StreamInfo(type=kind.lower(), codec=codec)
    if info.type == "video":
        # the first WxH after the codec part; skip hex tags like 0x31637661
        size = _SIZE.search(re.sub(r"\b0x[0-9A-Fa-f]+\b", "", rest))
        if size:
            info.width, info.height = int(size["w"]), int(size["h"])
    elif info.type == "audio":
        parts = [p.strip() for p in rest.split(",")]
        rate = _RATE.search(rest)
        if rate:
            info.sample_rate = int(rate["hz"])
        for part in parts[1:]:
            token = part.split()[0] if part else ""
            if token in _LAYOUT_CHANNELS:
                info.channels = _LAYOUT_CHANNELS[token]
                break
            m = re.match(r"(\d+)\s+channels", part)
            if m:
                info.channels = int(m[1])
                break
    return info


def parse_input_summary(lines: list[str]) -> tuple[float | None, list[StreamInfo]]:
    """Container duration and streams from the ``Input #0`` part of ffmpeg's stderr.

    Only the input section counts: an output section (after ``Stream
    mapping:`` / ``Output #``) lists streams in the same format.

    Returns
    -------
    (float or None, list of StreamInfo)
        Duration in seconds (None for ``N/A``) and the streams in order.
    """
    duration: float | None = None
    streams: list[StreamInfo] = []
    for line in lines:
        if line.startswith(("Stream mapping:", "Output #")):
            break
        if duration is None and (m := _DURATION.search(line)):
            duration = _hms(m)
        if m := _STREAM.match(line):
            streams.append(_parse_stream(m["type"], m["rest"]))
    return duration, streams


def probe_media(path: str | Path, *, ffmpeg_exe: str, exact: bool = False) -> MediaInfo:
    """Describe a media file's duration and streams.

    Parameters
    ----------
    path : str or Path
        The file to inspect.
    ffmpeg_exe : str
        The ffmpeg binary (see :func:`lofi_pipeline.core.ffmpeg.find_ffmpeg`).
    exact : bool
        Decode the first audio stream (or the first video stream when there is
        no audio) to measure the real length, in seconds. Slower, but exact
        for files whose header has no reliable duration (VBR MP3 without a
        Xing frame, raw streams).

    Returns
    -------
    MediaInfo

    Raises
    ------
    AudioFileError
        The file is missing or ffmpeg cannot open it.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(path, "file not found")
    proc = subprocess.run([ffmpeg_exe, "-hide_banner", "-nostdin", "-i", str(path)],
                          capture_output=True, text=True, errors="replace")
    # ffmpeg exits 1 here ("At least one output file must be specified"), so
    # success is judged by whether it printed an input description.
    if "Input #0" not in proc.stderr:
        raise AudioFileError(path, f"ffmpeg cannot read it: {ffmpeg_tail(proc.stderr, lines=3)}")
    duration, streams = parse_input_summary(proc.stderr.splitlines())
    if exact and streams:
        kind = "a" if any(s.type == "audio" for s in streams) else "v"
        run = subprocess.run([ffmpeg_exe, "-hide_banner", "-nostdin", "-i", str(path), "-map", f"0:{kind}:0",
                              "-f", "null", "-"], capture_output=True, text=True, errors="replace")
        times = list(_TIME.finditer(run.stderr))
        if run.returncode != 0 or not times:
            raise AudioFileError(path, f"ffmpeg cannot decode it: {ffmpeg_tail(run.stderr, lines=3)}")
        duration = _hms(times[-1])
    return MediaInfo(path=str(path), duration_seconds=duration, streams=streams)


def _summary_value(stderr: str, label: str) -> float | None:
    """Find ``label: -14.1 LUFS`` in the last ebur128 summary; -inf → None."""
    summary = stderr[stderr.rfind("Summary:"):] if "Summary:" in stderr else ""
    m = re.search(rf"{label}:\s*(?P<v>-?inf|-?\d+(?:\.\d+)?)", summary)
    if not m:
        return None
    value = float(m["v"])
    return None if math.isinf(value) else value


def measure_loudness_ffmpeg(path: str | Path, *, ffmpeg_exe: str, start: float | None = None,
                            duration: float | None = None, true_peak: bool = True) -> tuple[float, float]:
    """Integrated loudness and true peak of a file's first audio stream.

    Parameters
    ----------
    path : str or Path
        Any file ffmpeg can decode (the rendered mp4 included).
    ffmpeg_exe : str
        The ffmpeg binary.
    start, duration : float, optional
        Measure only this window, in seconds.
    true_peak : bool
        Measure the true peak (4x oversampled; about half the cost). When
        False the peak returned is -144.0.

    Returns
    -------
    (integrated_lufs, true_peak_db) : tuple of float
        LUFS and dBTP. Digital silence reports -70.0 LUFS (the gate floor)
        and -inf dBTP becomes -144.0.

    Raises
    ------
    AudioFileError
        The file is missing, has no audio, or ffmpeg fails.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(path, "file not found")
    cmd = [ffmpeg_exe, "-hide_banner", "-nostdin", "-nostats"]
    if start is not None:
        cmd += ["-ss", f"{start:.3f}"]
    if duration is not None:
        cmd += ["-t", f"{duration:.3f}"]
    # framelog=quiet: no per-100 ms line, so a 3-hour file does not print 100k lines.
    mode = "true" if true_peak else "none"
    cmd += ["-i", str(path), "-map", "0:a:0", "-filter:a", f"ebur128=peak={mode}:framelog=quiet",
            "-f", "null", "-"]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0 or "Summary:" not in proc.stderr:
        raise AudioFileError(path, f"ffmpeg loudness measurement failed: {ffmpeg_tail(proc.stderr, lines=3)}")
    integrated = _summary_value(proc.stderr, "I")
    peak = _summary_value(proc.stderr, "Peak")
    return (integrated if integrated is not None else -70.0, peak if peak is not None else -144.0)


def measure_loudness_split(path: str | Path, *, ffmpeg_exe: str, duration_seconds: float,
                           parts: int = 2) -> tuple[float, float]:
    """Integrated loudness and true peak of a long file, using several cores.

    Exact, not an estimate: integrated loudness is gated over the whole
    programme, so one process measures it over the whole file (without the
    costly 4x-oversampled true peak), while ``parts`` processes measure the
    true peak of consecutive windows — a maximum combines exactly.

    Returns
    -------
    (integrated_lufs, true_peak_db) : tuple of float
    """
    from concurrent.futures import ThreadPoolExecutor

    step = duration_seconds / parts
    with ThreadPoolExecutor(max_workers=parts + 1) as pool:
        whole = pool.submit(measure_loudness_ffmpeg, path, ffmpeg_exe=ffmpeg_exe, true_peak=False)
        # the last window runs to the end of the file, whatever its exact length
        windows = [pool.submit(measure_loudness_ffmpeg, path, ffmpeg_exe=ffmpeg_exe, start=k * step,
                               duration=step if k < parts - 1 else None) for k in range(parts)]
        integrated = whole.result()[0]
        peak = max(w.result()[1] for w in windows)
    return integrated, peak

