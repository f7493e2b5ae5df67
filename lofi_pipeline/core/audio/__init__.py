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
Names are loaded on first use (PEP 562): importing the package, or one light
name such as ``SUPPORTED_EXTENSIONS`` (the file sensors need it), does not
load numpy, scipy or the decoders.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_HOMES = {
    "ANALYZER_VERSION": "analyze", "analyze_file": "analyze", "analyze_files": "analyze",
    "ANALYSIS_SR": "decode", "EXCERPT_SECONDS": "decode", "analysis_excerpt": "decode",
    "iter_audio_files": "decode",
    "load_audio": "decode", "_without_libmpg123_noise": "decode",
    "SUPPORTED_EXTENSIONS": "formats",
    "energy_level": "features", "tempo_category": "features",
    "estimate_key": "key", "estimate_tempo": "tempo",
    "camelot_code": "lofi_pipeline.core.keys",
}
"""Where each public name lives: a submodule of this package, or a full module name."""

_SUBMODULES = frozenset({"analyze", "decode", "features", "formats", "key", "spectral", "tempo"})

if TYPE_CHECKING:
    from lofi_pipeline.core.audio.analyze import ANALYZER_VERSION, analyze_file, analyze_files
    from lofi_pipeline.core.audio.decode import (ANALYSIS_SR, EXCERPT_SECONDS, analysis_excerpt,
                                                 iter_audio_files, load_audio)
    from lofi_pipeline.core.audio.features import energy_level, tempo_category
    from lofi_pipeline.core.audio.formats import SUPPORTED_EXTENSIONS
    from lofi_pipeline.core.audio.key import estimate_key
    from lofi_pipeline.core.audio.tempo import estimate_tempo
    from lofi_pipeline.core.keys import camelot_code


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        home = _HOMES[name]
        return getattr(importlib.import_module(home if "." in home else f"{__name__}.{home}"), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ANALYSIS_SR",
    "ANALYZER_VERSION",
    "EXCERPT_SECONDS",
    "SUPPORTED_EXTENSIONS",
    "analysis_excerpt",
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
