"""Which files are audio we import (no numpy: the file sensors read this on every tick)."""

SUPPORTED_EXTENSIONS = frozenset({".mp3", ".wav", ".flac", ".ogg", ".m4a", ".aac"})
"""Lower-case suffixes we import; matching ignores case (``.MP3`` is fine)."""
