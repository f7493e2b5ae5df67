"""The track folder on disk: scaffold, duration table, prepare-render, and small file helpers.

Layout (under the library's ``Tracks/`` folder, ``library.tracks_dir`` in lofi.yaml)::

    Tracks/{N}/
        README.md              written from the page; never overwritten once edited (unless force)
        Songs/                 the mix's songs, "001__A_1_3_19b.mp3" (sequence prefix + original name)
        Rendered/              output_{timestamp}/ folders from render
        Video/                 background image or short loop
        metadata/track.json    the parsed page + the hash of the README we last wrote
        render_plan.json       written by prepare-render
        remaining-prompts.md   written by prepare-render

File safety rules: every file we write lands through a temporary file and a
rename (a crash never leaves half a file under the final name); a song is
placed with ``os.link`` from a verified temporary copy, which fails rather than
replaces an existing file; a move deletes the source only after the placed
copy's size and content hash match it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlparse

from lofi_pipeline.core.errors import AudioFileError, ConfigError, LofiError, PageParseError, RenderError
from lofi_pipeline.core.identity import content_hash
from lofi_pipeline.core.models import SelectedSong, TrackPlan
from lofi_pipeline.core.naming import parse_song_filename

try:  # one list of formats for the whole project once the audio module exists
    from lofi_pipeline.core.audio import SUPPORTED_EXTENSIONS as _AUDIO_EXTS
except ImportError:  # pragma: no cover - only while audio.py is being written
    _AUDIO_EXTS = ("mp3", "wav", "flac", "ogg", "m4a", "aac", "opus", "aiff", "aif", "wma")

__all__ = [
    "ScaffoldResult", "ArcDuration", "DurationSummary", "PlacedSong", "PrepareResult",
    "track_dir_for", "render_readme", "scaffold_track", "duration_table", "prepare_render_folder",
    "sequence_filename", "validate_youtube_url", "write_json_atomic", "write_text_atomic",
]

TransferMode = Literal["copy", "hardlink", "move"]
_SUBFOLDERS = ("Songs", "Rendered", "Video", "metadata")


def _audio_suffixes() -> set[str]:
    return {"." + e.lower().lstrip(".") for e in _AUDIO_EXTS}


# --------------------------------------------------------------- file helpers


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON through a temporary file and a rename.

    Paths and other non-JSON values are written with ``str``.
    """
    return write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------- scaffold


def track_dir_for(tracks_dir: Path, track_number: int) -> Path:
    """``{tracks_dir}/{N}``, where ``tracks_dir`` is the library's ``Tracks/`` folder."""
    return Path(tracks_dir) / str(int(track_number))


@dataclass
class ScaffoldResult:
    """What :func:`scaffold_track` did.

    ``readme`` is ``"created"``, ``"updated"`` (our previous text replaced by
    the new page text), ``"unchanged"``, ``"kept"`` (the user edited it and
    force was off) or ``"overwritten"`` (user edit replaced because of force).
    """

    track_dir: Path
    created: list[str] = field(default_factory=list)  # folders and files made now
    readme: str = "unchanged"
    metadata_written: bool = False
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["track_dir"] = str(self.track_dir)
        return d


def render_readme(plan: TrackPlan) -> str:
    """The track README text: title, description, tags, arcs and their Suno prompts."""
    number = plan.track_number
    title = plan.title or plan.page_title or (f"Track {number}" if number is not None else "Track")
    out = [f"# {title}", ""]
    facts = [("Track", number), ("Page", plan.page_title if plan.page_title != title else None),
             ("Output file", plan.output_filename), ("Length", f"{plan.duration_minutes:g} min"
                                                      if plan.duration_minutes else None),
             ("Upload", plan.upload_schedule), ("Mood arc", plan.mood_arc), ("CTR target", plan.ctr_target),
             ("Retention target", plan.retention_target), ("Source", plan.source)]
    out += [f"- **{k}:** {v}" for k, v in facts if v not in (None, "")]
    out.append("")
    if plan.description:
        out += ["## Description", "", plan.description.strip(), ""]
    if plan.visible_hashtags or plan.hidden_tags:
        out += ["## Tags", ""]
        if plan.visible_hashtags:
            out.append("Hashtags: " + " ".join(t if t.startswith("#") else f"#{t}" for t in plan.visible_hashtags))
        if plan.hidden_tags:
            out.append("Tags: " + ", ".join(plan.hidden_tags))
        out.append("")
    if plan.anchor_phrase or plan.prompt_suffix:
        out += ["## Prompt style", ""]
        if plan.anchor_phrase:
            out.append(f"- **Anchor phrase:** {plan.anchor_phrase}")
        if plan.prompt_suffix:
            out.append(f"- **Shared suffix:** {plan.prompt_suffix}")
        out.append("")
    if plan.arcs:
        out += ["## Arcs", ""]
    for arc in plan.arcs:
        head = f"### Arc {arc.number}: {arc.name}" if arc.name else f"### Arc {arc.number}"
        out += [head, ""]
        if arc.subtitle:
            out += [f"*{arc.subtitle}*", ""]
        if arc.bpm_range:
            out += [f"BPM {arc.bpm_range[0]:g}–{arc.bpm_range[1]:g}", ""]
        if arc.description:
            out += [arc.description.strip(), ""]
        for p in arc.prompts:
            mark = "" if p.checked is None else ("[x] " if p.checked else "[ ] ")
            out.append(f"{p.number}. {mark}{p.text.strip()}")
        if arc.prompts:
            out.append("")
    out += ["## Folders", "",
            "- `Songs/` — the mix's songs in order (`prepare-render`)",
            "- `Video/` — background image or short loop video",
            "- `Rendered/` — one `output_{timestamp}/` folder per render",
            "- `metadata/` — parsed page and publishing data", ""]
    return "\n".join(out)


def scaffold_track(tracks_dir: Path, plan: TrackPlan, *, force: bool = False) -> ScaffoldResult:
    """Create or refresh ``{tracks_dir}/{N}/`` for a parsed track page.

    Parameters
    ----------
    tracks_dir : Path
        The library's ``Tracks/`` folder (``library.tracks_dir`` in lofi.yaml).
    plan : TrackPlan
        The parsed page; its ``track_number`` names the folder.
    force : bool
        Replace a README the user edited (one that differs from the text we
        last wrote, recorded by hash in ``metadata/track.json``).

    Returns
    -------
    ScaffoldResult

    Raises
    ------
    PageParseError
        The page has no track number.
    """
    if plan.track_number is None:
        raise PageParseError(plan.source, "no track number on the page; cannot name the Tracks/{N} folder")
    track_dir = track_dir_for(tracks_dir, plan.track_number)
    result = ScaffoldResult(track_dir=track_dir)
    for name in ("", *_SUBFOLDERS):
        d = track_dir / name if name else track_dir
        if not d.is_dir():
            d.mkdir(parents=True, exist_ok=True)
            result.created.append(str(d))

    meta_path = track_dir / "metadata" / "track.json"
    old_meta: dict[str, Any] = {}
    if meta_path.is_file():
        try:
            old_meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            result.warnings.append(f"{meta_path}: unreadable ({exc}); rewriting it")
    readme_path = track_dir / "README.md"
    text = render_readme(plan)
    written_hash = old_meta.get("readme_sha256")
    if not readme_path.is_file():
        write_text_atomic(readme_path, text)
        result.readme, written_hash = "created", _sha256_text(text)
        result.created.append(str(readme_path))
    else:
        current = readme_path.read_text(encoding="utf-8", errors="replace")
        current_hash = _sha256_text(current)
        if current == text:
            result.readme, written_hash = "unchanged", current_hash
        elif current_hash == written_hash or force:
            write_text_atomic(readme_path, text)
            result.readme = "updated" if current_hash == written_hash else "overwritten"
            written_hash = _sha256_text(text)
        else:
            result.readme = "kept"
            result.warnings.append(f"{readme_path} was edited by hand; kept it (use --force to replace it)")

    meta = {"track_number": plan.track_number, "title": plan.title, "readme_sha256": written_hash,
            "plan": plan.to_dict()}
    # Rewrite only on change, keeping the first creation time, so a re-run touches nothing.
    comparable = {k: v for k, v in old_meta.items() if k != "scaffolded_at"}
    if comparable != json.loads(json.dumps(meta, default=str)):
        meta["scaffolded_at"] = old_meta.get("scaffolded_at") or datetime.now(timezone.utc).isoformat(
            timespec="seconds")
        write_json_atomic(meta_path, meta)
        result.metadata_written = True
    return result


# ------------------------------------------------------------------ durations


@dataclass
class ArcDuration:
    """Songs of one arc (``arc`` None = names outside the filename convention)."""

    arc: int | None
    songs: int = 0
    seconds: float = 0.0

    @property
    def minutes(self) -> float:
        return self.seconds / 60

    @property
    def hours(self) -> float:
        return self.seconds / 3600


@dataclass
class DurationSummary:
    """Per-arc song counts and durations of a folder (seconds; minutes/hours derived)."""

    folder: str
    arcs: list[ArcDuration] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) of unreadable files

    @property
    def songs(self) -> int:
        return sum(a.songs for a in self.arcs)

    @property
    def total_seconds(self) -> float:
        return sum(a.seconds for a in self.arcs)

    @property
    def total_minutes(self) -> float:
        return self.total_seconds / 60

    @property
    def total_hours(self) -> float:
        return self.total_seconds / 3600

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": self.folder,
            "arcs": [{"arc": a.arc, "songs": a.songs, "seconds": round(a.seconds, 3),
                      "minutes": round(a.minutes, 2), "hours": round(a.hours, 3)} for a in self.arcs],
            "songs": self.songs,
            "total_seconds": round(self.total_seconds, 3),
            "total_minutes": round(self.total_minutes, 2),
            "total_hours": round(self.total_hours, 3),
            "errors": [list(e) for e in self.errors],
        }


def _audio_duration(path: Path, *, ffmpeg_exe: str | None) -> float:
    """Length in seconds from the header (soundfile), else from ffmpeg's stream summary."""
    try:
        import soundfile

        info = soundfile.info(str(path))
        if info.frames > 0 and info.samplerate > 0:
            return info.frames / info.samplerate
    except Exception:  # noqa: BLE001 - soundfile raises its own types for unsupported containers
        pass
    from lofi_pipeline.core.ffmpeg import find_ffmpeg
    from lofi_pipeline.core.probe import probe_media

    info = probe_media(path, ffmpeg_exe=ffmpeg_exe or find_ffmpeg())
    if not info.of_type("audio"):
        raise AudioFileError(path, "no audio stream")
    if info.duration_seconds is None:
        info = probe_media(path, ffmpeg_exe=ffmpeg_exe or find_ffmpeg(), exact=True)
    return float(info.duration_seconds or 0.0)


def duration_table(folder: Path, *, ffmpeg_exe: str | None = None) -> DurationSummary:
    """Count songs and add up their durations per arc, from the files on disk.

    Every supported audio format under ``folder`` is read, recursively
    (hidden files skipped). The arc comes from the filename convention
    (``A_1_3_19b.mp3`` is arc 1; a ``001__`` sequence prefix is ignored);
    other names are grouped under arc None. Durations come from the file
    header through soundfile (wav, flac, ogg, mp3) or ffmpeg's stream summary
    (m4a, aac, …); an unreadable file is listed in ``errors``, not counted.

    Raises
    ------
    LofiError
        ``folder`` does not exist.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise LofiError(f"{folder}: folder not found")
    suffixes = _audio_suffixes()
    by_arc: dict[int | None, ArcDuration] = {}
    summary = DurationSummary(folder=str(folder))
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in suffixes:
            continue
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        try:
            seconds = _audio_duration(path, ffmpeg_exe=ffmpeg_exe)
        except LofiError as exc:
            summary.errors.append((str(path), str(exc)))
            continue
        name = parse_song_filename(path.name)
        arc = name.arc if name else None
        row = by_arc.setdefault(arc, ArcDuration(arc=arc))
        row.songs += 1
        row.seconds += seconds
    summary.arcs = sorted(by_arc.values(), key=lambda a: (a.arc is None, a.arc or 0))
    return summary


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
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _copy_file(src, tmp)
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


def prepare_render_folder(track_dir: Path, selection: list[SelectedSong], *, mode: TransferMode = "copy",
                          remaining_prompts_md: str | None = None,
                          crossfade_seconds: float = 5.0) -> PrepareResult:
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
            raise RenderError(f"prepare-render stopped at {src} -> {dest}: {reason}. {done} song(s) were "
                              "placed before it, this one is still at its source and nothing was deleted "
                              "unverified; fix the cause and run again") from exc
        if placed.action in ("copied", "hardlinked", "moved", "unchanged"):
            result.render_selection.append(SelectedSong(**{**asdict(song), "path": str(dest)}))

    result.extra_files = sorted(p.name for p in songs_dir.iterdir()
                                if p.is_file() and not p.name.startswith(".") and p.name not in targets)
    if result.extra_files:
        result.warnings.append(f"{songs_dir} holds {len(result.extra_files)} file(s) not in this selection")

    # Local import: render imports this module for write_json_atomic.
    from lofi_pipeline.core.render import build_render_plan, format_timestamp

    entries = []
    if ordered:
        by_order = {p.order: p for p in result.placed}
        plan = build_render_plan(ordered, target_seconds=None, crossfade_seconds=crossfade_seconds)
        for e in plan.entries:
            p = by_order[e.song.order]
            entries.append({
                "order": e.song.order, "arc_number": e.song.arc_number, "arc_name": e.song.arc_name,
                "song_id": e.song.song_id, "song": Path(e.song.filename).stem,
                "file": str(Path(p.dest).relative_to(track_dir)), "status": p.action,
                "duration_seconds": round(e.song.duration_seconds, 3),
                "start_seconds": round(e.start_seconds, 3), "start": format_timestamp(e.start_seconds),
            })
        total = plan.total_seconds
    else:
        total = 0.0
    result.plan_path = write_json_atomic(track_dir / "render_plan.json", {
        "mode": mode, "crossfade_seconds": crossfade_seconds, "total_seconds": round(total, 3),
        "songs": entries,
    })
    if remaining_prompts_md is not None:
        result.remaining_prompts_path = write_text_atomic(track_dir / "remaining-prompts.md", remaining_prompts_md)
    return result


# -------------------------------------------------------------------- publish

_YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_YOUTUBE_HOSTS = {"youtube.com", "www.youtube.com", "m.youtube.com", "music.youtube.com",
                  "youtube-nocookie.com", "www.youtube-nocookie.com"}


def validate_youtube_url(url: str) -> str:
    """Return the 11-character video id of a YouTube video URL.

    Accepts ``youtube.com/watch?v=ID``, ``youtu.be/ID``, ``/shorts/ID``,
    ``/live/ID`` and ``/embed/ID`` (http or https, with or without ``www.``;
    a missing scheme is allowed).

    Raises
    ------
    ConfigError
        Not a YouTube video URL, naming what was expected.
    """
    expected = "expected https://www.youtube.com/watch?v=<11-character id> or https://youtu.be/<id>"
    raw = (url or "").strip()
    if not raw:
        raise ConfigError(f"empty YouTube URL; {expected}")
    parsed = urlparse(raw if "://" in raw else "https://" + raw)
    host = (parsed.hostname or "").lower()
    parts = [p for p in parsed.path.split("/") if p]
    candidate: str | None = None
    if parsed.scheme not in ("http", "https"):
        candidate = None
    elif host in ("youtu.be", "www.youtu.be"):
        candidate = parts[0] if len(parts) == 1 else None
    elif host in _YOUTUBE_HOSTS:
        if parts == ["watch"]:
            values = parse_qs(parsed.query).get("v", [])
            candidate = values[0] if len(values) == 1 else None
        elif len(parts) == 2 and parts[0] in ("shorts", "live", "embed", "v"):
            candidate = parts[1]
    if candidate is None or not _YOUTUBE_ID.match(candidate):
        raise ConfigError(f"'{raw}' is not a YouTube video URL; {expected}")
    return candidate
