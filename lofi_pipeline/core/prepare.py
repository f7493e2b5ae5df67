"""prepare-render: place a mix's songs in Tracks/{N}/Songs in mix order, without losing a file.

A song is placed with ``os.link`` from a verified temporary copy, which fails
rather than replaces an existing file; a move deletes the source only after
the placed copy's size and content hash match it.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from lofi_pipeline.core.errors import AudioFileError, ConfigError, RenderError
from lofi_pipeline.core.files import remove_orphans, umask_mode, write_json_atomic, write_text_atomic
from lofi_pipeline.core.identity import content_hash
from lofi_pipeline.core.models import SelectedSong

TransferMode = Literal["copy", "hardlink", "move"]

# -------------------------------------------------------------- prepare-render


@dataclass
class PlacedSong:
    """One selected song and what happened to it.

    ``action``: ``copied``, ``hardlinked``, ``moved``, ``unchanged`` (already
    in place with the same content), ``conflict`` (a different file has the
    name; left alone) or ``missing`` (the source does not exist).
    """

    order: int
    source: str
    dest: str
    action: str
    detail: str | None = None


@dataclass
class PrepareResult:
    """What :func:`prepare_render_folder` did; ``ok`` when every song is in place."""

    track_dir: Path
    songs_dir: Path
    placed: list[PlacedSong] = field(default_factory=list)
    extra_files: list[str] = field(default_factory=list)  # in Songs/ but not in this selection
    warnings: list[str] = field(default_factory=list)
    plan_path: Path | None = None
    remaining_prompts_path: Path | None = None
    render_selection: list[SelectedSong] = field(default_factory=list)  # paths in Songs/

    @property
    def conflicts(self) -> list[PlacedSong]:
        return [p for p in self.placed if p.action == "conflict"]

    @property
    def missing(self) -> list[PlacedSong]:
        return [p for p in self.placed if p.action == "missing"]

    @property
    def ok(self) -> bool:
        return not self.conflicts and not self.missing

    def to_dict(self) -> dict[str, Any]:
        return {
            "track_dir": str(self.track_dir), "songs_dir": str(self.songs_dir), "ok": self.ok,
            "placed": [asdict(p) for p in self.placed], "extra_files": self.extra_files,
            "warnings": self.warnings, "plan_path": str(self.plan_path) if self.plan_path else None,
            "remaining_prompts_path": str(self.remaining_prompts_path) if self.remaining_prompts_path else None,
        }


def sequence_filename(order: int, filename: str, *, width: int = 3) -> str:
    """``001__A_1_3_19b.mp3``: mix position, two underscores, the original name."""
    return f"{order:0{width}d}__{Path(filename).name}"


def _copy_file(src: Path, dst: Path) -> None:
    """Byte copy (module level so a test can make it fail to prove nothing is lost)."""
    shutil.copyfile(src, dst)


def _same_content(a: Path, b: Path, *, a_hash: str | None = None) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    return (a_hash or content_hash(a)) == content_hash(b)


def _place(src: Path, dest: Path, *, mode: TransferMode, src_hash: str) -> str:
    """Put ``src`` at ``dest`` (which must not exist); returns the action done.

    The copy goes to a temporary name, is verified (size and hash) and linked
    into place with ``os.link`` — that fails instead of replacing a file that
    appeared meanwhile. Only then does a move delete the source.
    """
    if mode == "hardlink":
        try:
            os.link(src, dest)
            return "hardlinked"
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            # other filesystem / no hardlinks there: fall back to a verified copy
    # Hidden, and named with our pid so a later run can tell a killed run's leftover from a live copy.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.{os.getpid()}-", suffix=_PARTIAL_SUFFIX, dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _copy_file(src, tmp)
        os.chmod(tmp, umask_mode())  # mkstemp made it 0600; a placed song gets the user's umask
        if tmp.stat().st_size != src.stat().st_size or content_hash(tmp) != src_hash:
            raise OSError(errno.EIO, f"copy of {src} does not match the source (size or hash)")
        os.link(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    if mode == "move":
        # Verify the file under its final name once more before the source goes.
        if not _same_content(src, dest, a_hash=src_hash):
            raise OSError(errno.EIO, f"{dest} does not match {src} after the move; source kept")
        src.unlink()
        return "moved"
    return "copied" if mode == "copy" else "hardlinked"


_PARTIAL_SUFFIX = ".partial"
_PARTIAL_PID = re.compile(r"^\..+\.(?P<pid>\d+)-[^.]*\.partial$")


def _remove_stale_partials(songs_dir: Path) -> list[Path]:
    """Remove hidden ``.partial`` copies that killed runs left in ``songs_dir``; returns them.

    A copy whose pid is a live process other than this one is another
    prepare-render at work and stays. Unreadable names (copies of versions that
    did not record the pid) are left over by definition.
    """
    def owner(p: Path) -> int | None:
        m = _PARTIAL_PID.match(p.name)
        return int(m["pid"]) if m else None

    return remove_orphans((p for p in songs_dir.iterdir() if p.name.startswith(".")
                           and p.name.endswith(_PARTIAL_SUFFIX) and p.is_file()), owner)


def prepare_render_folder(track_dir: Path, selection: list[SelectedSong], *, mode: TransferMode = "copy",
                          remaining_prompts_md: str | None = None,
                          crossfade_seconds: float = 5.0, plan_id: str | None = None) -> PrepareResult:
    """Place the selected songs in ``Tracks/{N}/Songs/`` in mix order and write the render plan.

    Parameters
    ----------
    track_dir : Path
        ``Tracks/{N}``; ``Songs/`` is created inside it.
    selection : list of SelectedSong
        The mix, any order (sorted by ``order``).
    mode : {"copy", "hardlink", "move"}
        ``hardlink`` falls back to a verified copy across filesystems;
        ``move`` deletes each source only after its copy is verified.
    remaining_prompts_md : str, optional
        Markdown for ``remaining-prompts.md`` (prompts without a song yet).
    crossfade_seconds : float
        Used for the start times in ``render_plan.json``, in seconds.

    Returns
    -------
    PrepareResult
        A re-run with the same selection changes nothing (``unchanged``); a
        different file under a target name is a ``conflict`` and untouched.

    Raises
    ------
    RenderError
        A file operation failed midway (disk full, permissions). Songs placed
        before the failure stay placed, the failing one stays at its source,
        and running again carries on.
    """
    if mode not in ("copy", "hardlink", "move"):
        raise ConfigError(f"prepare-render mode must be copy, hardlink or move, got {mode!r}")
    track_dir = Path(track_dir)
    songs_dir = track_dir / "Songs"
    songs_dir.mkdir(parents=True, exist_ok=True)
    result = PrepareResult(track_dir=track_dir, songs_dir=songs_dir)
    for p in _remove_stale_partials(songs_dir):
        result.warnings.append(f"removed {p.name}, a partial copy left by an interrupted prepare-render")
    ordered = sorted(selection, key=lambda s: s.order)
    width = max(3, len(str(max((s.order for s in ordered), default=1))))
    targets: set[str] = set()
    for song in ordered:
        src = Path(song.path)
        dest = songs_dir / sequence_filename(song.order, song.filename or src.name, width=width)
        targets.add(dest.name)
        placed = PlacedSong(order=song.order, source=str(src), dest=str(dest), action="unchanged")
        result.placed.append(placed)
        try:
            if dest.exists():
                if src.is_file():
                    if _same_content(src, dest):
                        if mode == "move":
                            # An earlier move copied but stopped before deleting: finish it.
                            src.unlink()
                            placed.detail = "source removed (copy was already verified in place)"
                    else:
                        placed.action, placed.detail = "conflict", "a different file already has this name"
                elif song.song_id and content_hash(dest) != song.song_id:
                    placed.action = "conflict"
                    placed.detail = "source gone and the file in place is not this song (hash differs)"
            elif not src.is_file():
                placed.action, placed.detail = "missing", "source file not found"
            else:
                src_hash = content_hash(src)
                if song.song_id and src_hash != song.song_id:
                    result.warnings.append(f"{src}: content changed since it was analysed (hash differs)")
                placed.action = _place(src, dest, mode=mode, src_hash=src_hash)
        except (OSError, AudioFileError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            done = sum(p.action in ("copied", "hardlinked", "moved", "unchanged") for p in result.placed[:-1])
            error = RenderError(f"prepare-render stopped at {src} -> {dest}: {reason}. {done} song(s) were "
                                "placed before it, this one is still at its source and nothing was deleted "
                                "unverified; fix the cause and run again")
            error.partial = result  # what was placed (and moved) before it, for the caller to record
            raise error from exc
        if placed.action in ("copied", "hardlinked", "moved", "unchanged"):
            result.render_selection.append(SelectedSong(**{**asdict(song), "path": str(dest)}))

    result.extra_files = sorted(p.name for p in songs_dir.iterdir()
                                if p.is_file() and not p.name.startswith(".") and p.name not in targets)
    if result.extra_files:
        result.warnings.append(f"{songs_dir} holds {len(result.extra_files)} file(s) not in this selection")

    # Where each planned song was placed: the render reads its files from here.
    by_order = {p.order: p for p in result.placed}
    entries = [{"order": song.order, "arc_number": song.arc_number, "arc_name": song.arc_name,
                "song_id": song.song_id, "song": Path(song.filename).stem,
                "file": str(Path(by_order[song.order].dest).relative_to(track_dir)),
                "status": by_order[song.order].action, "duration_seconds": round(song.duration_seconds, 3)}
               for song in ordered]
    result.plan_path = write_json_atomic(track_dir / "render_plan.json", {
        "plan_id": plan_id, "mode": mode, "crossfade_seconds": crossfade_seconds, "songs": entries})
    if remaining_prompts_md is not None:
        result.remaining_prompts_path = write_text_atomic(track_dir / "remaining-prompts.md", remaining_prompts_md)
    return result

