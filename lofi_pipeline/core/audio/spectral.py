"""Short-time Fourier transform helper shared by tempo and key."""

from __future__ import annotations

import numpy as np
from scipy import fft as sp_fft


def stft_mag(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
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

