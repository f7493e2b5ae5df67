"""Song character from simple figures: energy level and tempo category."""

from __future__ import annotations

# Thresholds for the seed schema's categories (documented in notes/audio.md).
ENERGY_LOW_BELOW_DBFS = -20.0
ENERGY_HIGH_FROM_DBFS = -13.0
TEMPO_SLOW_BELOW_BPM = 80.0
TEMPO_FAST_FROM_BPM = 110.0


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

