"""Files we write: through a hidden temporary name and a rename, with the user's umask.

A crash never leaves half a file under the final name (habit 12: a file that
looks finished is finished). ``tempfile.mkstemp`` creates files mode 0600;
the final file gets the mode a plain ``open()`` would have given it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def umask_mode(base: int = 0o666) -> int:
    """``base`` with the process umask applied (what ``open()`` would create)."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a hidden temporary file, fsync and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), umask_mode())
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON atomically. Paths and other non-JSON values are written with ``str``."""
    return write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def pid_alive(pid: int) -> bool:
    """True while a process with this id exists on this machine (another user's counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    except OSError:
        return False
    return True


def remove_orphans(paths: Iterable[Path], owner: Callable[[Path], int | None]) -> list[Path]:
    """Remove the files a killed process left behind; returns those removed.

    ``owner(path)`` is the pid that wrote the file, or None when none was
    recorded (a leftover by definition). Files of this process or of a live one
    stay. Errors are ignored: a leftover only costs disk space.
    """
    removed = []
    for p in paths:
        pid = owner(p)
        if pid is not None and (pid == os.getpid() or pid_alive(pid)):
            continue
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed
