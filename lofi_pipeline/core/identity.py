"""Content identity of a song file.

A song is identified by the hash of its bytes, not by its name or folder: a
renamed or moved copy is the same song, and a re-exported file (new bytes) is a
new one that gets analysed again.

The hash is BLAKE2b with a 20-byte (160-bit) digest, written as 40 hex digits.
BLAKE2b is in hashlib everywhere, is faster than SHA-256 on 64-bit CPUs without
SHA extensions, and 160 bits leave no practical chance of collision in a music
library. The file is read in 1 MiB chunks, so memory stays flat for any size.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from lofi_pipeline.core.errors import AudioFileError

HASH_NAME = "blake2b-160"
_CHUNK_BYTES = 1 << 20


def content_hash(path: str | Path) -> str:
    """Return the BLAKE2b-160 hex digest (40 characters) of the file's bytes.

    Parameters
    ----------
    path : str or Path
        The file to hash.

    Returns
    -------
    str
        Lower-case hex digest.

    Raises
    ------
    AudioFileError
        The file is missing or cannot be read (the reason names the OS error).
    """
    digest = hashlib.blake2b(digest_size=20)
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK_BYTES):
                digest.update(chunk)
    except OSError as exc:
        raise AudioFileError(path, f"cannot read the file to hash it ({exc.strerror or exc})") from exc
    return digest.hexdigest()
