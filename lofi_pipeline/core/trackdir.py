"""The track folder on disk: scaffold from the page, and the durations of the songs in it.

Layout (under the library's ``Tracks/`` folder, ``library.tracks_dir`` in lofi.yaml)::

    Tracks/{N}/
        README.md              written from the page; never overwritten once edited (unless force)
        Songs/                 the mix's songs, "001__A_1_3_19b.mp3" (sequence prefix + original name)
        Rendered/              output_{timestamp}/ folders from render
        Video/                 background image or short loop
        metadata/track.json    the parsed page + the hash of the README we last wrote
        metadata/gaps.md, remaining-prompts.md   the gap report
        render_plan.json       written by prepare-render
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lofi_pipeline.core.errors import AudioFileError, LofiError, PageParseError
from lofi_pipeline.core.files import sha256_text as _sha256_text
from lofi_pipeline.core.files import write_json_atomic, write_text_atomic
from lofi_pipeline.core.models import TrackPlan
from lofi_pipeline.core.naming import parse_song_filename

_SUBFOLDERS = ("Songs", "Rendered", "Video", "metadata")


def _audio_suffixes() -> set[str]:
    from lofi_pipeline.core.audio import SUPPORTED_EXTENSIONS

    return {"." + e.lower().lstrip(".") for e in SUPPORTED_EXTENSIONS}


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

