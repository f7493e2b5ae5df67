"""Audio analysis: decoding, duration, tempo, key, loudness and character.

Modules, one concern each:

* :mod:`.decode` — finding audio files, one block-by-block decode per file
  (libsndfile, or the bundled ffmpeg), duration checks, the middle excerpt at
  ``ANALYSIS_SR`` for tempo and key, RMS and spectral centroid;
* :mod:`.tempo` — :func:`estimate_tempo` (BPM and a confidence; ``None`` for
  beatless material);
* :mod:`.key` — :func:`estimate_key` (key and a confidence);
* :mod:`.features` — energy level and tempo category;
* :mod:`.analyze` — :func:`analyze_file` / :func:`analyze_files`, which run all
  of the above with loudness (``lofi_pipeline.core.loudness``) in a second thread;
* :mod:`.spectral` — the STFT helper tempo and key share.

Conventions: durations in seconds, tempo in BPM (quarter notes per minute),
loudness in LUFS, peaks in dBTP / dBFS, frequencies in Hz. Keys are stored in
key-signature spelling (``"E♭ major"``, ``"F♯ minor"``; see
:mod:`lofi_pipeline.core.keys`, which also parses any other spelling) with
Camelot codes like ``"8A"``. Unknown values are ``None`` (silence has no key,
a beatless song no tempo).
"""

from lofi_pipeline.core.audio.analyze import ANALYZER_VERSION, analyze_file, analyze_files
from lofi_pipeline.core.audio.decode import (
    ANALYSIS_SR,
    EXCERPT_SECONDS,
    SUPPORTED_EXTENSIONS,
    _without_libmpg123_noise,  # noqa: F401 - the tests reach it as audio._without_libmpg123_noise
    iter_audio_files,
    load_audio,
)
from lofi_pipeline.core.audio.features import energy_level, tempo_category
from lofi_pipeline.core.audio.key import estimate_key
from lofi_pipeline.core.audio.tempo import estimate_tempo
from lofi_pipeline.core.keys import camelot_code

__all__ = [
    "ANALYSIS_SR",
    "ANALYZER_VERSION",
    "EXCERPT_SECONDS",
    "SUPPORTED_EXTENSIONS",
    "analyze_file",
    "analyze_files",
    "camelot_code",
    "energy_level",
    "estimate_key",
    "estimate_tempo",
    "iter_audio_files",
    "load_audio",
    "tempo_category",
]
