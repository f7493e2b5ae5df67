"""One file, many files: the analysis entry points."""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from lofi_pipeline.core import keys
from lofi_pipeline.core.audio.decode import ANALYSIS_SR, _decode_for_analysis, _default_ffmpeg, _precheck
from lofi_pipeline.core.audio.features import energy_level, tempo_category
from lofi_pipeline.core.audio.key import estimate_key
from lofi_pipeline.core.audio.tempo import estimate_tempo
from lofi_pipeline.core.errors import AudioFileError
from lofi_pipeline.core.models import AudioFeatures

ANALYZER_VERSION = "audio-4.6"
"""Stored with every result; bump it whenever a change alters any figure, so
the library re-analyses rows written by an older analyzer."""


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
        camelot=keys.camelot_code(key) if key else None,
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


def _init_worker(parent_pid: int | None = None) -> None:
    # One process per core already; threaded BLAS/FFT inside each would oversubscribe.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    _die_with_parent(parent_pid)


def _die_with_parent(parent_pid: int | None) -> None:
    """A worker whose parent is killed (kill -9, OOM) must not live on: ask Linux for SIGTERM then."""
    if parent_pid is None or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)


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
                             initializer=_init_worker, initargs=(os.getpid(),)) as pool:
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
