"""Loudness (ITU-R BS.1770-4 / EBU R128) and true peak of decoded audio.

Integrated loudness comes from **libebur128** (1.2.6, the reference EBU R128
implementation in C), as bundled by the ``pyebur128`` wheel. The decoder hands
each block to :class:`LoudnessMeter`, whose thread feeds libebur128 while the
caller goes on decoding and analysing: the C calls are made through ``ctypes``,
which releases the GIL, so the meter really runs on another core. Where the
wheel does not export the C symbols (Windows builds need not), the same library
is driven through pyebur128's own Python API, which holds the GIL — same
figures, less overlap.

True peak (:class:`TruePeak`) is libebur128's true-peak interpolator too, but
run only where it matters: over every sample of every channel it costs more
than the whole rest of the analysis, while an inter-sample peak can only exceed
the sample peak near the loudest samples. We pick those segments; libebur128
measures them.

Units: LUFS for loudness, dBTP for true peak (0 dBTP = full scale).
"""

from __future__ import annotations

import ctypes
import functools
import queue
import threading

import numpy as np

__all__ = ["LoudnessMeter", "TruePeak", "libebur128_version", "measure_loudness"]

_MODE_I = 5  # EBUR128_MODE_I: integrated loudness (implies momentary)
_MODE_TRUE_PEAK = 49  # EBUR128_MODE_TRUE_PEAK (implies sample peak and momentary)
_GATE_FLOOR_LUFS = -70.0  # BS.1770 absolute gate: nothing above it means silence

_F32_P = ctypes.POINTER(ctypes.c_float)

BLOCK_FRAMES = 1 << 16
"""Frames per block that decoders hand to :class:`LoudnessMeter` (at most); its
queue is sized in blocks of this length."""


class _CLibrary:
    """libebur128's C API through ctypes (the GIL is released during each call)."""

    def __init__(self, path: str):
        lib = ctypes.CDLL(path)
        lib.ebur128_init.restype = ctypes.c_void_p
        lib.ebur128_init.argtypes = [ctypes.c_uint, ctypes.c_ulong, ctypes.c_int]
        lib.ebur128_add_frames_float.restype = ctypes.c_int
        lib.ebur128_add_frames_float.argtypes = [ctypes.c_void_p, _F32_P, ctypes.c_size_t]
        lib.ebur128_loudness_global.restype = ctypes.c_int
        lib.ebur128_loudness_global.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_double)]
        lib.ebur128_prev_true_peak.restype = ctypes.c_int
        lib.ebur128_prev_true_peak.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.POINTER(ctypes.c_double)]
        lib.ebur128_destroy.restype = None
        lib.ebur128_destroy.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        self.lib = lib

    def open(self, sample_rate: int, channels: int, mode: int) -> _CState:
        state = self.lib.ebur128_init(channels, sample_rate, mode)
        if not state:
            raise MemoryError("libebur128 could not allocate its state")
        return _CState(self.lib, state, channels)


class _CState:
    def __init__(self, lib, state: int, channels: int):
        self.lib, self.state, self.channels = lib, state, channels

    def add(self, block: np.ndarray) -> None:
        # block: C-contiguous float32 (frames, channels); interleaved as libebur128 expects.
        if self.lib.ebur128_add_frames_float(self.state, block.ctypes.data_as(_F32_P), len(block)) != 0:
            raise MemoryError("libebur128 ran out of memory")

    def integrated(self) -> float:
        out = ctypes.c_double()
        self.lib.ebur128_loudness_global(self.state, ctypes.byref(out))
        return out.value

    def last_true_peak(self) -> float:
        """Largest true peak (linear) over all channels of the last :meth:`add`."""
        out, best = ctypes.c_double(), 0.0
        for c in range(self.channels):
            self.lib.ebur128_prev_true_peak(self.state, c, ctypes.byref(out))
            best = max(best, out.value)
        return best

    def close(self) -> None:
        if self.state:
            handle = ctypes.c_void_p(self.state)
            self.lib.ebur128_destroy(ctypes.byref(handle))
            self.state = 0


class _PyState:
    """The same library through pyebur128's Python API (holds the GIL)."""

    def __init__(self, sample_rate: int, channels: int, mode: int):
        import pyebur128

        self.module, self.channels = pyebur128, channels
        self.state = pyebur128.R128State(channels, sample_rate, mode)

    def add(self, block: np.ndarray) -> None:
        self.state.add_frames(block.reshape(-1), len(block))

    def integrated(self) -> float:
        return float(self.module.get_loudness_global(self.state))

    def last_true_peak(self) -> float:
        return max(float(self.module.get_previous_true_peak(self.state, c)) for c in range(self.channels))

    def close(self) -> None:
        self.state = None


@functools.cache
def _c_library() -> _CLibrary | None:
    """libebur128's C API if the pyebur128 extension exports it, else None."""
    try:
        import pyebur128.pyebur128 as ext

        return _CLibrary(ext.__file__)
    except (ImportError, OSError, AttributeError):
        return None


def _open_state(sample_rate: int, channels: int, mode: int = _MODE_I, *, use_c: bool | None = None):
    """A fresh libebur128 measurement state (C API when available, unless ``use_c`` says otherwise)."""
    lib = _c_library() if use_c is not False else None
    if use_c and lib is None:
        raise RuntimeError("libebur128's C symbols are not exported by this pyebur128 build")
    return lib.open(sample_rate, channels, mode) if lib is not None else _PyState(sample_rate, channels, mode)


def libebur128_version() -> str:
    """Version of the libebur128 that measures loudness, e.g. ``"1.2.6"``."""
    import pyebur128

    return str(pyebur128.get_libebur128_version())


class LoudnessMeter:
    """Integrated loudness and true peak of a stream of blocks, measured in a background thread.

    Feed ``(frames, channels)`` float32 blocks with :meth:`add` (the meter
    keeps a reference: do not reuse the array, or pass ``copy=True``), then
    call :meth:`result`. The thread gives each block to libebur128 (GIL
    released) and to :class:`TruePeak`, so neither costs the decoding thread
    anything but the hand-over. Channels follow libebur128's default map
    (L, R, C, LFE unused, Ls, Rs); a mono file counts as one front channel,
    like ffmpeg's ``ebur128``.

    Parameters
    ----------
    sample_rate : int
        Native rate in Hz (K-weighting is defined up to 20 kHz; do not resample).
    channels : int
        Channel count of every block.
    max_pending_bytes : int
        PCM waiting for the thread at most; :meth:`add` blocks beyond it, so
        memory stays bounded on a 2-hour file. The meter keeps pace with
        libsndfile's mp3 decoder, so a song rarely waits.
    use_c : bool or None
        Force (True) or avoid (False) the ctypes path; None picks it when available.
    """

    def __init__(self, sample_rate: int, channels: int, *, max_pending_bytes: int = 32 << 20,
                 use_c: bool | None = None):
        self.state = _open_state(sample_rate, channels, use_c=use_c)
        self.peak = TruePeak(sample_rate, channels, use_c=use_c)
        block_bytes = BLOCK_FRAMES * channels * 4
        self.queue: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=max(4, max_pending_bytes // block_bytes))
        self.error: BaseException | None = None
        self._peak_db: float | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="loudness-meter", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (block := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.state.add(block)
                    self.peak.add(block)
                except BaseException as exc:  # noqa: BLE001 - reported by result()
                    self.error = exc
        if self.error is None:
            try:
                self._peak_db = self.peak.db()
            except BaseException as exc:  # noqa: BLE001 - reported by result()
                self.error = exc

    def add(self, block: np.ndarray, *, copy: bool = False) -> None:
        """Queue one block; ``copy=True`` when the caller reuses its buffer."""
        block = np.array(block, dtype=np.float32, order="C", copy=True) if copy else \
            np.ascontiguousarray(block, dtype=np.float32)
        self.queue.put(block)

    def result(self) -> tuple[float | None, float | None]:
        """Wait for the thread: (integrated LUFS, true peak dBTP).

        Loudness is None for silence or under 400 ms; the true peak is None for
        digital silence.
        """
        self._finish()
        try:
            if self.error is not None:
                raise RuntimeError(f"loudness measurement failed: {self.error}") from self.error
            value = self.state.integrated()
        finally:
            self.state.close()
        lufs = float(value) if np.isfinite(value) and value > _GATE_FLOOR_LUFS else None
        return lufs, self._peak_db

    def abort(self) -> None:
        """Stop after an error elsewhere (idempotent)."""
        self._finish()
        self.state.close()

    def _finish(self) -> None:
        if not self._closed:
            self._closed = True
            self.queue.put(None)
            self._thread.join()


def _peak_estimate(block: np.ndarray) -> tuple[np.ndarray, float]:
    """Per frame, a cheap estimate of the peak around it: the larger of the
    sample and the cubic (4-tap Lagrange) midpoint to the next sample, over
    all channels; and the block's sample peak, from the same pass. Clipped
    masters tie on sample peak; the midpoint tells which segments overshoot
    between samples."""
    est = np.zeros(len(block), np.float32)
    sample_peak = 0.0
    for c in range(block.shape[1]):
        x = np.ascontiguousarray(block[:, c], dtype=np.float32)
        magnitude = np.abs(x)
        if len(x):
            sample_peak = max(sample_peak, float(magnitude.max()))
        np.maximum(est, magnitude, out=est)
        if len(x) >= 4:
            mid = x[1:-2] + x[2:-1]
            mid *= 9.0 / 16.0
            mid -= (x[:-3] + x[3:]) * (1.0 / 16.0)
            np.abs(mid, out=mid)
            np.maximum(est[1:-2], mid, out=est[1:-2])
    return est, sample_peak


class TruePeak:
    """True peak (dBTP), measured by libebur128 on the segments where it can be.

    libebur128's true-peak mode oversamples every sample of every channel,
    which costs six times its loudness measurement. An inter-sample peak can
    only exceed the sample peak near the loudest samples, so the stream is cut
    into ``segment``-frame pieces, each ranked by a cheap estimate
    (:func:`_peak_estimate`: the sample or the cubic midpoint to the next, which
    tells apart the pieces of a clipped master that all tie at the ceiling).
    The ``max_segments`` likeliest pieces within ``margin_db`` of the best are
    kept with ``context`` frames of real signal on each side, and at the end
    libebur128's own true-peak interpolator measures each of them (context
    tapered to zero, so starting its filter afresh does not ring). Inter-sample
    overs of more than 3 dB need pathological signals, hence the margin.
    """

    def __init__(self, sample_rate: int, channels: int, *, margin_db: float = 3.0, max_segments: int = 16,
                 segment: int = 1024, context: int = 32, use_c: bool | None = None):
        self.sample_rate, self.channels, self.use_c = sample_rate, channels, use_c
        self.ratio = 10 ** (-margin_db / 20)
        self.max_segments = max_segments
        self.segment = segment
        self.context = context
        self.best_score = 0.0
        self.sample_peak = 0.0
        # Frames not yet used as a segment's core, with `context` frames before
        # them; digital silence precedes the file.
        self.carry = np.zeros((context, channels), np.float32)
        self.kept: list[tuple[float, np.ndarray]] = []

    def add(self, block: np.ndarray) -> None:
        """Take one ``(frames, channels)`` block (copied where kept)."""
        if not len(block):
            return
        self._scan(np.concatenate([self.carry, block]))

    def _scan(self, ext: np.ndarray) -> None:
        """Rank every whole segment of ``ext`` (cores start after ``context`` frames); carry the rest.

        Every frame passes through here at least once (the last ones when
        :meth:`db` pads the carry), so the sample peak is taken here too.
        """
        c, s = self.context, self.segment
        n_seg = max(0, (len(ext) - 2 * c) // s)
        if n_seg:
            score, sample_peak = _peak_estimate(ext)
            self.sample_peak = max(self.sample_peak, sample_peak)
            seg_scores = score[c: c + n_seg * s].reshape(n_seg, s).max(axis=1)
            self.best_score = max(self.best_score, float(seg_scores.max()))
            candidates = np.flatnonzero(seg_scores >= self.best_score * self.ratio)
            if len(candidates) > self.max_segments:
                likeliest = np.argpartition(seg_scores[candidates], -self.max_segments)[-self.max_segments:]
                candidates = candidates[likeliest]
            for i in candidates:
                lo = int(i) * s  # core starts at lo + c in ext; the piece spans lo .. lo + s + 2c
                self.kept.append((float(seg_scores[i]), ext[lo: lo + s + 2 * c].copy()))
            if len(self.kept) > 4 * self.max_segments:
                self._prune()
        self.carry = ext[n_seg * s:].copy()

    def _prune(self) -> None:
        self.kept = [k for k in self.kept if k[0] >= self.best_score * self.ratio and k[0] > 0]
        self.kept.sort(key=lambda k: -k[0])
        self.kept = self.kept[: self.max_segments]

    def db(self) -> float | None:
        """The true peak in dBTP, or None for digital silence. Call once, at the end."""
        rest = len(self.carry) - self.context  # core frames not ranked yet
        if rest > 0:
            # Digital silence follows the file: pad to whole segments plus trailing context.
            n_seg = -(-rest // self.segment)
            total = n_seg * self.segment + 2 * self.context
            self._scan(np.concatenate([self.carry, np.zeros((total - len(self.carry), self.channels), np.float32)]))
        self._prune()
        if self.sample_peak <= 0:
            return None
        best = self.sample_peak
        for _, piece in self.kept:
            state = _open_state(self.sample_rate, self.channels, _MODE_TRUE_PEAK, use_c=self.use_c)
            try:
                state.add(np.ascontiguousarray(piece * _taper(len(piece), self.context)[:, None]))
                best = max(best, state.last_true_peak())
            finally:
                state.close()
        return float(20 * np.log10(best))


def _taper(n: int, context: int) -> np.ndarray:
    """Half-Hann ramps from 0 over the first and last ``context`` frames, 1 between."""
    w = np.ones(n, np.float32)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(context) + 0.5) / context)
    k = min(context, n // 2)
    w[:k] = ramp[:k]
    w[n - k:] = np.minimum(w[n - k:], ramp[:k][::-1])
    return w


def measure_loudness(y: np.ndarray, sr: int, *, use_c: bool | None = None) -> tuple[float | None, float | None]:
    """Integrated loudness and true peak of a signal in memory.

    Parameters
    ----------
    y : numpy.ndarray
        Samples, shape ``(n,)`` mono or ``(n, channels)``, float in [-1, 1].
    sr : int
        Sample rate in Hz (use the native rate: K-weighting is defined to 20 kHz).
    use_c : bool or None
        See :class:`LoudnessMeter`.

    Returns
    -------
    (float or None, float or None)
        Integrated loudness in LUFS (libebur128) and true peak in dBTP
        (:class:`TruePeak`). ``None`` for digital silence (loudness also None
        under 400 ms).
    """
    data = np.asarray(y, dtype=np.float32)
    if data.ndim == 1:
        data = data[:, None]
    meter = LoudnessMeter(sr, data.shape[1], use_c=use_c)
    try:
        for lo in range(0, len(data), BLOCK_FRAMES):
            meter.add(np.ascontiguousarray(data[lo: lo + BLOCK_FRAMES]))
    except BaseException:
        meter.abort()
        raise
    return meter.result()
