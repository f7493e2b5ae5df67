"""`lofi` — the command line over the same Dagster jobs the UI shows.

Commands that run pipeline stages launch the project's jobs in-process against
the library's Dagster instance (DAGSTER_HOME under data/), as runs of the
project's code location, so they show under their job in the UI. Inputs are
checked before anything is launched: a typo costs no run and no partition.
Commands that only show what is stored (gaps, duration, stats, notion show,
query --show) read the library and never import Dagster.

Errors print one ``error:`` line on stderr and exit with code 1; Dagster's own
step messages stay in the run's log (``--verbose`` shows them).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
import typer.core
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.tree import Tree

from lofi_pipeline.core.errors import LofiError

out = Console()
err = Console(stderr=True)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Show Dagster's step messages as the run goes (lofi --verbose / -v anywhere on the line).
VERBOSE = False


def _print_error(message: object) -> None:
    from lofi_pipeline.core.secrets import scrub

    err.print("[red]error:[/red] ", end="")
    err.print(_CONTROL.sub("", scrub(message)), markup=False, highlight=False, soft_wrap=True)


def _warn(message: object) -> None:
    from lofi_pipeline.core.secrets import scrub

    err.print("[yellow]warning:[/yellow] ", end="")
    err.print(_CONTROL.sub("", scrub(message)), markup=False, highlight=False, soft_wrap=True)


class _LofiGroup(typer.core.TyperGroup):
    """Turns a LofiError from any command into one red line and exit code 1.

    ``--verbose`` / ``-v`` is accepted anywhere on the command line.
    """

    def parse_args(self, ctx, args):
        global VERBOSE
        flags = [a for a in args if a in ("--verbose", "-v")]
        if ctx.parent is None:
            VERBOSE = bool(flags)  # per invocation (tests invoke the app many times in one process)
        if flags and ctx.parent is None:
            args = [a for a in args if a not in ("--verbose", "-v")]
            if not args:
                args = ["--help"]
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LofiError as exc:
            _print_error(exc)
            raise typer.Exit(code=1) from None


app = typer.Typer(help="Plan, reuse, render and re-file long-form lo-fi mixes.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False, cls=_LofiGroup)
notion_app = typer.Typer(help="Read Notion track pages.", no_args_is_help=True)
app.add_typer(notion_app, name="notion")


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                                help="Show Dagster's step messages as runs go.")] = False) -> None:
    """Plan, reuse, render and re-file long-form lo-fi mixes."""
    global VERBOSE
    VERBOSE = VERBOSE or verbose

TrackOpt = Annotated[int, typer.Option("--track", "-t", help="Track number (the Tracks/{N} folder).")]


def _settings(*, library: bool = True):
    """The settings of LOFI_HOME; unless ``library`` is False, refuse a folder that is not a library."""
    from lofi_pipeline.settings import Settings, is_library, lofi_home, not_a_library_message

    if library and not is_library(lofi_home()):
        _fail(not_a_library_message(lofi_home()))
    return Settings.load()


def _track(track: int, *, where: str = "--track") -> int:
    """``track`` when the library can store it; else one error line (before anything runs)."""
    from lofi_pipeline.core.tracknumbers import check_track_number

    return check_track_number(track, where=where)


def _known_track(track: int, lib=None):
    """The track's stored plan; one error line when the track is not in the library."""
    _track(track)
    plan = (lib or _library()).load_plan(track)
    if plan is None:
        _fail(f"track {track} is not in the library; run `lofi import --track {track} --page …` first")
    return plan


def _planned_track(track: int, lib=None) -> None:
    """One error line unless the track has a stored mix plan."""
    lib = lib or _library()
    _known_track(track, lib)
    if lib.load_mix_plan(track) is None:
        _fail(f"track {track}: no mix plan yet; run `lofi query --track {track}` first")


def _library(settings=None):
    """The library of LOFI_HOME; says so once when it waits for another writer."""
    from lofi_pipeline.core.library import Library

    s = settings or _settings()
    return Library(s.duckdb_path, home=s.home, on_wait=_warn_once)


_SAID: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _SAID:
        _SAID.add(message)
        _warn(message)


def safe(text: object) -> str:
    """Page or file text as Rich shows it literally: control characters stripped, markup escaped."""
    from rich.markup import escape

    return escape(_CONTROL.sub("", str(text)))


class _RunProgress:
    """Feedback while a Dagster run goes, from its log lines.

    '[progress] <task> i/n item' lines become Rich bars in a terminal, and a
    line per 10 % of each task otherwise (a log file or CI still sees the run
    move). Warnings our assets log become ``warning:`` lines; Dagster's own step
    messages are left in the run's log unless ``--verbose``.
    """

    _LINE = re.compile(r"^\[progress\] ([\w-]+) (\d+)/(\d+)\s*(.*)$")
    # Dagster's orchestration warnings (logged as plain lines, not events): the error line covers them.
    _FRAMEWORK = re.compile(r"^Dependencies for step \S+ (failed|were not executed)")

    def __init__(self, title: str):
        self.title = title
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[item]}"), TimeElapsedColumn(), console=err,
                                 transient=False, disable=not err.is_terminal)
        self.tasks: dict[str, int] = {}
        self.tenths: dict[str, int] = {}
        self.said: set[str] = set()

    def __call__(self, message: str, level: int, from_dagster: bool = False) -> None:
        from lofi_pipeline.core.secrets import scrub

        m = self._LINE.match(message)
        if m:
            self._advance(m[1], int(m[2]), int(m[3]), m[4])
        elif VERBOSE:
            err.print(_CONTROL.sub("", scrub(message)), style="dim" if level < 30 else "yellow",
                      markup=False, highlight=False, soft_wrap=True)
        elif level >= 30 and not from_dagster and not self._FRAMEWORK.match(message) and message not in self.said:
            self.said.add(message)  # our assets' warnings (a bad file, a plan note, a lock wait), once
            _warn(message)

    def _advance(self, name: str, done: int, total: int, item: str) -> None:
        if err.is_terminal:
            if name not in self.tasks:
                self.tasks[name] = self.progress.add_task(name, total=total, item="")
            self.progress.update(self.tasks[name], completed=done, total=total, item=safe(item[:40]))
            return
        tenth = 10 * done // total if total else 10
        if tenth > self.tenths.get(name, -1) and (done or not total):
            self.tenths[name] = tenth
            err.print(f"{name} {done}/{total} ({100 * done // total if total else 100} %)",
                      markup=False, highlight=False)

    def __enter__(self):
        from lofi_pipeline import runner

        runner.LOG_LISTENERS.append(self)
        self.progress.start()
        if not err.is_terminal:
            err.print(f"{self.title} …", markup=False, highlight=False)
        return self

    def __exit__(self, *exc):
        from lofi_pipeline import runner

        self.progress.stop()
        runner.LOG_LISTENERS.remove(self)


def _run(job: str, *, partition: int | None = None, run_config: dict | None = None, title: str = "",
         settings=None):
    """Launch ``job`` as a run of the code location; inputs must be checked before this."""
    from lofi_pipeline.runner import run_job

    settings = settings or _settings()
    with _RunProgress(title or job):
        return run_job(settings, job, partition=partition, run_config=run_config, on_notice=_warn)


def _track_dir(track: int) -> Path:
    """Tracks/{N} of the current library."""
    from lofi_pipeline.core.trackdir import track_dir_for

    return track_dir_for(Path(_settings().tracks_dir), track)


def _fail(message: str) -> None:
    _print_error(message)
    raise typer.Exit(code=1)


# --------------------------------------------------------------------------- setup
@app.command()
def init() -> None:
    """Create lofi.yaml, data/ and Tracks/ in LOFI_HOME and the library schema."""
    from lofi_pipeline.core.library import Library
    from lofi_pipeline.runner import prepare_instance
    from lofi_pipeline.settings import SETTINGS_FILE, default_settings_text

    s = _settings(library=False)
    cfg = s.home / SETTINGS_FILE
    if not cfg.exists():
        cfg.write_text(default_settings_text())
    for d in (s.tracks_dir, s.pages_dir, s.features_dir):
        Path(d).mkdir(parents=True, exist_ok=True)
    version = Library(s.duckdb_path, home=s.home).init()
    prepare_instance(s)
    out.print(f"library ready in {safe(s.home)} (schema v{version}, settings {cfg.name})")


@app.command("import")
def import_(
    track: Annotated[Optional[int], typer.Option("--track", "-t", help="Track number.")] = None,
    page: Annotated[Optional[str], typer.Option(help="Notion URL/id or exported .md file.")] = None,
    songs_dir: Annotated[Optional[Path], typer.Option(help="Audio folder; default Tracks/N/Songs.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Import every track page under --parent.")] = False,
    parent: Annotated[Optional[str], typer.Option(help="Notion parent page or database URL.")] = None,
    force: Annotated[bool, typer.Option(help="Re-fetch the page and re-analyse every file.")] = False,
) -> None:
    """Import a track: its page (plan), its songs (audio features) and embeddings."""
    if all_:
        return _import_all(parent, force)
    if track is None:
        _fail("--track N is required (or --all --parent URL)")
    _track(track)
    s = _settings()
    if songs_dir is not None and not songs_dir.is_dir():
        _fail(f"{songs_dir}: folder not found (--songs-dir)")
    _check_page(track, page, s)
    run_config = {"ops": {
        "notion_pages": {"config": {"page": page or "", "force": force}},
        "audio_features": {"config": {"folders": [str(songs_dir.resolve())] if songs_dir else [],
                                      "force": force}}}}
    from lofi_pipeline.runner import asset_metadata

    result = _run("import_job", partition=track, run_config=run_config, title=f"import track {track}",
                  settings=s)
    plan = asset_metadata(result, "track_plans")
    feats = asset_metadata(result, "audio_features")
    songs = asset_metadata(result, "songs_table")
    gaps = asset_metadata(result, "gap_report")
    out.print(f"track {track}: [bold]{safe(plan.get('title') or '(untitled)')}[/bold] — {plan.get('arcs')} arcs, "
              f"{plan.get('prompts')} prompts; {feats.get('files')} files, {feats.get('analysed')} analysed, "
              f"{feats.get('errors')} errors; library {songs.get('library_songs')} songs; "
              f"songs to generate: {gaps.get('songs_to_generate')}")
    for w in plan.get("warnings") or []:
        _warn(w)
    if feats.get("errors"):
        _fail(f"{feats.get('errors')} file(s) could not be analysed (listed above); the rest were imported")


_PAGE_FILE_SUFFIXES = {".md", ".markdown", ".txt"}


def _check_notion_token() -> None:
    from lofi_pipeline.core.secrets import validate_token

    if not os.environ.get("NOTION_TOKEN"):
        _fail("reading a page from the Notion API needs a token: set NOTION_TOKEN "
              "(or pass an exported .md file instead)")
    validate_token(os.environ.get("NOTION_TOKEN"))


def _check_page(track: int, page: Optional[str], settings) -> None:
    """The page a run will read exists (a file) or has a Notion id's shape (a URL), before launching."""
    from lofi_pipeline.core.notion import page_id_from_url

    if page:
        path = Path(page).expanduser()
        if path.suffix.lower() in _PAGE_FILE_SUFFIXES or path.exists():
            if not path.is_file():
                _fail(f"{page}: page file not found (expected a Notion Markdown export)")
            return
        page_id_from_url(page)
        _check_notion_token()
        return
    export_dir = settings.path(settings.notion.get("export_dir"))
    if not _library(settings).page_ref(track) and not (export_dir and Path(export_dir).is_dir()):
        _fail(f"track {track}: no page given and none known; pass --page URL_OR_FILE")


def _import_all(parent: Optional[str], force: bool) -> None:
    from lofi_pipeline.core.notion import page_id_from_url

    s = _settings()
    parent = parent or s.notion.get("parent")
    if not parent:
        _fail("no Notion parent page or database: set notion.parent in lofi.yaml or pass --parent URL")
    page_id_from_url(parent)
    _check_notion_token()
    from lofi_pipeline.defs.resources import build_resources

    notion = build_resources(s)["notion"]
    pages = notion.list_pages(parent)
    imported = 0
    from lofi_pipeline.core.tracknumbers import track_number_from_title

    for page in pages:
        n = track_number_from_title(page.get("title"))
        if n is None:
            err.print(f"[yellow]skipped[/yellow] page {safe(page['id'])} ('{safe(page.get('title'))}'): "
                      "no track number in its title")
            continue
        _run("notion_sync_job", partition=n, run_config={"ops": {"notion_pages": {"config": {
            "page": page["id"], "force": force}}}}, title=f"page of track {n}", settings=s)
        imported += 1
    out.print(f"{imported} track page(s) imported from {len(pages)} page(s)")


@app.command()
def embed() -> None:
    """Bring song embeddings up to date (only new or changed texts are encoded)."""
    from lofi_pipeline.runner import asset_metadata

    meta = asset_metadata(_run("embed_job", title="embeddings"), "song_embeddings")
    out.print(f"{meta.get('encoded')} encoded, {meta.get('embeddings')} embeddings ({meta.get('model')})")


@app.command()
def analyze(
    paths: Annotated[list[Path], typer.Argument(help="Audio files or folders (walked recursively).")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line per file.")] = False,
    workers: Annotated[Optional[int], typer.Option(help="Processes; default = cores.")] = None,
) -> None:
    """Analyse audio files (duration, BPM, key, loudness, content hash) without importing them."""
    from lofi_pipeline.core.audio import analyze_files, iter_audio_files

    missing = [p for p in paths if not p.exists()]
    if missing:
        _fail(f"{missing[0]}: no such file or folder")
    files = iter_audio_files(paths)
    from lofi_pipeline.runner import start_collecting

    start_collecting()
    keys = ["path", "duration_seconds", "bpm", "bpm_confidence", "key", "key_confidence", "camelot",
            "loudness_lufs", "true_peak_db", "content_hash", "error"]
    with Progress(TextColumn("analyse"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, disable=not err.is_terminal) as bar:
        task = bar.add_task("analyse", total=len(files))
        results = analyze_files(files, workers=workers, on_result=lambda _f: bar.advance(task))
    if as_json:
        for r in results:
            d = r.to_dict()
            sys.stdout.write(json.dumps({k: d.get(k) for k in keys}) + "\n")
    else:
        from lofi_pipeline.core.confidence import (GUESS_MARK, LEGEND, LOW_KEY_CONFIDENCE, bpm_text, key_text,
                                                   mark)

        table = Table("file", "duration", "BPM", "key", "camelot", "LUFS", "error")
        guessed = False
        for r in results:
            bpm, key = bpm_text(r.bpm, r.bpm_confidence), key_text(r.key, r.key_confidence)
            camelot = mark(r.camelot or "", r.key_confidence, LOW_KEY_CONFIDENCE)
            guessed |= any(cell.endswith(GUESS_MARK) for cell in (bpm, key, camelot))
            table.add_row(safe(Path(r.path).name), f"{r.duration_seconds:.1f}s" if r.duration_seconds else "",
                          bpm, safe(key), camelot,
                          f"{r.loudness_lufs:.1f}" if r.loudness_lufs is not None else "", safe(r.error or ""))
        out.print(table)
        if guessed:
            out.print(LEGEND, markup=False, highlight=False)
    if any(r.error for r in results):
        raise typer.Exit(code=1)


# --------------------------------------------------------------------------- planning
def _query_json(track: int) -> dict:
    """The seed-compatible JSON of a track's matches.

    Each match's ``components`` also give the weights its BPM and key counted
    with (1.0 = full; less for a low-confidence guess) and ``note`` says so in words.
    """
    from lofi_pipeline.core.confidence import downweight_note
    from lofi_pipeline.core.models import number_or_none

    lib = _library()
    plan = lib.load_plan(track)
    if plan is None:
        _fail(f"track {track} is not in the library; run `lofi import --track {track} --page …` first")
    m = lib.load_matches(track, with_songs=True)
    results: dict[str, list] = {}
    for arc in plan.arcs:
        rows = []
        for p in arc.prompts:
            mm = m[m.prompt_order == p.order]
            rows.append({"prompt_number": p.number, "prompt_order": p.order, "prompt_text": p.text,
                         "matches": [{"filename": r.filename, "song_id": r.song_id, "path": r.path,
                                      "score": round(float(r.score), 4),
                                      "similarity": round(float(r.similarity), 4),
                                      "bpm": None if r.bpm != r.bpm else round(float(r.bpm), 1),
                                      "bpm_confidence": number_or_none(r.bpm_confidence),
                                      "key": r.key, "key_confidence": number_or_none(r.key_confidence),
                                      "arc": None if r.song_arc != r.song_arc else int(r.song_arc),
                                      "duration": round(float(r.duration_seconds), 2),
                                      "components": {"arc": r.arc_score, "bpm": r.bpm_score,
                                                     "key": r.key_score, "usage": r.usage_score,
                                                     "bpm_weight": _full_weight(r.bpm_weight),
                                                     "key_weight": _full_weight(r.key_weight)},
                                      "note": downweight_note(r.bpm_weight, r.key_weight)}
                                     for r in mm.itertuples()]})
        results[f"arc_{arc.number}"] = rows
    return {"track_number": track, "track_title": plan.title or plan.page_title,
            "total_prompts": len(plan.prompts), "total_matches": int(len(m)),
            "prompts_matched": int(m.prompt_order.nunique()) if len(m) else 0, "results": results}


def _full_weight(value) -> float:
    """A stored component weight; NULL (matches stored before weights existed) was full weight."""
    from lofi_pipeline.core.models import is_missing

    return 1.0 if is_missing(value) else round(float(value), 4)


def _check_query_options(*, top_k, min_similarity, duration, bpm_min, bpm_max, key, arc, tags) -> None:
    from lofi_pipeline.core.tracknumbers import MAX_STORED_INT

    if top_k is not None and not 1 <= top_k <= 1000:
        _fail(f"--top-k {top_k}: expected a number of matches from 1 to 1000")
    if min_similarity is not None and not -1.0 <= min_similarity <= 1.0:
        _fail(f"--min-similarity {min_similarity:g}: expected a cosine similarity from -1 to 1")
    if duration is not None and not 0 < duration <= 12 * 60:
        _fail(f"--duration {duration:g}: expected minutes, more than 0 and at most 720")
    for name, bpm in (("--bpm-min", bpm_min), ("--bpm-max", bpm_max)):
        if bpm is not None and not 0 < bpm <= 400:
            _fail(f"{name} {bpm:g}: expected a tempo from 1 to 400 BPM")
    if bpm_min is not None and bpm_max is not None and bpm_min > bpm_max:
        _fail(f"--bpm-min {bpm_min:g} is above --bpm-max {bpm_max:g}")
    if arc is not None and not 1 <= arc <= MAX_STORED_INT:
        _fail(f"--arc {arc}: expected an arc number from 1 to {MAX_STORED_INT}")
    if key:
        from lofi_pipeline.core.matching import to_camelot

        if to_camelot(key) is None:
            _fail(f"--key '{key}': expected a key such as 'A minor', 'F# major' or a Camelot code such as 8A")
    for t in tags or []:
        if not t.strip():
            _fail("--tag '': expected a vibe tag or mood keyword")


@app.command()
def query(
    track: TrackOpt,
    top_k: Annotated[Optional[int], typer.Option(help="Matches per prompt (default from lofi.yaml: 5).")] = None,
    min_similarity: Annotated[Optional[float], typer.Option(help="Minimum cosine similarity (0.6).")] = None,
    duration: Annotated[Optional[float], typer.Option(help="Target minutes (default: the page's).")] = None,
    unused_only: Annotated[bool, typer.Option(help="Only songs never used in a published track.")] = False,
    bpm_min: Annotated[Optional[float], typer.Option(help="Only songs at or above this BPM.")] = None,
    bpm_max: Annotated[Optional[float], typer.Option(help="Only songs at or below this BPM.")] = None,
    key: Annotated[Optional[str], typer.Option(help="Only songs in this key or Camelot code, e.g. 'A minor' / 8A.")] = None,
    arc: Annotated[Optional[int], typer.Option(help="Only songs made for this arc number.")] = None,
    tag: Annotated[Optional[list[str]], typer.Option(help="Only songs with this vibe tag or mood keyword (repeatable).")] = None,
    output: Annotated[Optional[Path], typer.Option(help="Write the matches as JSON.")] = None,
    show: Annotated[bool, typer.Option("--show", help="Show the stored matches; run nothing.")] = False,
) -> None:
    """Match library songs to every prompt of a track, plan the mix and report the gaps."""
    _track(track)
    if not show:
        _check_query_options(top_k=top_k, min_similarity=min_similarity, duration=duration, bpm_min=bpm_min,
                             bpm_max=bpm_max, key=key, arc=arc, tags=tag)
    _known_track(track)
    if not show:
        cfg = {"reuse_stored": False, "top_k": top_k or 0,
               "min_similarity": -1.0 if min_similarity is None else min_similarity,
               "unused_only": unused_only, "bpm_min": bpm_min or 0.0, "bpm_max": bpm_max or 0.0,
               "key": key or "", "arc": arc or 0, "tags": list(tag or [])}
        _run("query_job", partition=track, title=f"query track {track}", run_config={"ops": {
            "track_matches": {"config": cfg},
            "mix_plan": {"config": {"reuse_stored": False, "duration_minutes": duration or 0.0}}}})
    data = _query_json(track)
    firsts = [(arc, r, r["matches"][0] if r["matches"] else None) for arc, rows in data["results"].items()
              for r in rows]
    # A note column only when a guessed BPM or key counted less somewhere.
    noted = any(best and best["note"] for _, _, best in firsts)
    table = Table("arc", "#", "prompt", "best match", "score", "sim", *(["note"] if noted else []),
                  title=safe(data["track_title"] or ""))
    for arc, r, best in firsts:
        table.add_row(arc.split("_")[1], str(r["prompt_number"]), safe(r["prompt_text"][:50]),
                      safe(best["filename"]) if best else "[red]— gap —[/red]",
                      f"{best['score']:.2f}" if best else "", f"{best['similarity']:.2f}" if best else "",
                      *([f"[dim]{best['note']}[/dim]" if best else ""] if noted else []))
    out.print(table)
    out.print(f"{data['prompts_matched']}/{data['total_prompts']} prompts matched, {data['total_matches']} matches")
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(data, indent=2, ensure_ascii=False))
        out.print(f"wrote {safe(output)}")


@app.command()
def gaps(track: TrackOpt,
         as_json: Annotated[bool, typer.Option("--json", help="Print the stored report as JSON.")] = False) -> None:
    """Show which prompts still need new songs, from the stored gap report (nothing is re-run)."""
    _track(track)
    report = _library().load_gap_report(track)
    if report is None:
        _fail(f"track {track}: no gap report yet; run `lofi query --track {track}` (or import its songs)")
    if as_json:
        keys = ("arc_number", "prompt_number", "status", "songs_needed", "best_song")
        sys.stdout.write(json.dumps({
            "track_number": report["track_number"], "plan_id": report.get("plan_id"),
            "songs_to_generate": report["songs_to_generate"], "shortfall_minutes": report["shortfall_minutes"],
            "prompts": [{k: p.get(k) for k in keys} for p in report["prompts"]]}, ensure_ascii=False) + "\n")
        return
    table = Table("arc", "#", "status", "needs", "closest song", "prompt")
    colors = {"missing": "red", "weak": "yellow", "covered": "green"}
    for p in report["prompts"]:
        best = p.get("best_song") or {}
        table.add_row(str(p["arc_number"]), str(p["prompt_number"]),
                      f"[{colors.get(p['status'], 'white')}]{p['status']}[/]", str(p.get("songs_needed", "")),
                      safe(best.get("filename", "—") if isinstance(best, dict) else best or "—"),
                      safe((p.get("core_text") or p.get("text") or "")[:50]))
    out.print(table)
    out.print(f"songs to generate: [bold]{report['songs_to_generate']}[/bold]; duration shortfall: "
              f"{report['shortfall_minutes']} min (plan {safe(report.get('plan_id'))})")
    out.print(f"files in {safe(_track_dir(track) / 'metadata')}")


@app.command()
def scaffold(track: TrackOpt,
             force: Annotated[bool, typer.Option(help="Overwrite a README.md you edited.")] = False) -> None:
    """Create Tracks/{N}/ (Songs, Rendered, Video, metadata/track.json, README.md) from the page."""
    from lofi_pipeline.core.trackdir import scaffold_track

    _track(track)
    s = _settings()
    plan = _library(s).load_plan(track)
    if plan is None:
        _fail(f"track {track} is not in the library; run `lofi import --track {track} --page …` first")
    plan.track_number = track
    res = scaffold_track(Path(s.tracks_dir), plan, force=force)
    made = ", ".join(Path(p).name for p in res.created) or "nothing new"
    out.print(f"{safe(res.track_dir)}: README {res.readme}; created: {safe(made)}")
    for w in res.warnings:
        _warn(w)


@app.command()
def duration(track: Annotated[Optional[int], typer.Option("--track", "-t")] = None,
             folder: Annotated[Optional[Path], typer.Option("--dir", help="Any folder of songs.")] = None) -> None:
    """The track's mix plan per arc (songs, minutes, target), then the song files on disk."""
    from lofi_pipeline.core.trackdir import duration_table

    if track is None and folder is None:
        _fail("give --track N or --dir FOLDER")
    if track is not None:
        _track(track)
        stored = _library().load_mix_plan(track)
        if stored is not None:
            header, entries = stored
            summary = {a["arc_number"]: a for a in header["summary_json"].get("arcs", [])}
            table = Table("arc", "name", "songs", "plays", "minutes", "target", title=f"mix plan {safe(header['plan_id'])}")
            for arc_number, rows in entries.groupby("arc_number", sort=False):
                target = summary.get(int(arc_number), {}).get("target_seconds")
                table.add_row(str(arc_number), safe(rows["arc_name"].iloc[0] or ""), str(rows["song_id"].nunique()),
                              str(len(rows)), f"{(rows['start_seconds'].max() + rows['length_seconds'].iloc[-1] - rows['start_seconds'].min()) / 60:.1f}",
                              f"{target / 60:.1f}" if target else "")
            out.print(table)
            out.print(f"plan: {header['duration_seconds'] / 60:.1f} of {header['target_seconds'] / 60:.1f} min")
        else:
            _warn(f"track {track} has no mix plan yet; run `lofi query --track {track}`")
    target = folder or _track_dir(track) / "Songs"
    if not target.exists():
        if folder is not None:
            _fail(f"{target}: folder not found")
        return
    summary = duration_table(target)
    table = Table("arc (file name)", "songs", "minutes", title=f"files in {safe(target)}")
    for row in summary.arcs:
        table.add_row(str(row.arc if row.arc is not None else "?"), str(row.songs), f"{row.minutes:.1f}")
    out.print(table)
    out.print(f"on disk: {summary.songs} songs, {summary.total_seconds:.0f} s = "
              f"{summary.total_minutes:.1f} min = {summary.total_hours:.2f} h")


@app.command("prepare-render")
def prepare_render(track: TrackOpt,
                   mode: Annotated[Optional[str], typer.Option(help="copy | hardlink | move")] = None) -> None:
    """Place the selected songs in Tracks/{N}/Songs in mix order and write render_plan.json."""
    from lofi_pipeline.runner import asset_metadata

    if mode and mode not in {"copy", "hardlink", "move"}:
        _fail(f"--mode '{mode}': expected copy, hardlink or move")
    _planned_track(track)
    result = _run("prepare_job", partition=track, title=f"prepare track {track}",
                  run_config={"ops": {"render_folder": {"config": {"mode": mode or ""}}}})
    meta = asset_metadata(result, "render_folder")
    placed = sum(meta.get(f"songs_{a}", 0) for a in ("copied", "hardlinked", "moved"))
    out.print(f"{meta.get('songs', 0)} songs: {placed} placed, {meta.get('songs_unchanged', 0)} already there, "
              f"conflicts: {safe(', '.join(meta.get('conflicts') or []) or 'none')}")


@app.command()
def render(track: TrackOpt,
           duration: Annotated[str, typer.Option(help="test (first 5 min) | auto (the plan) | HOURS (re-plan)")] = "test",
           allow_missing: Annotated[bool, typer.Option(help="Skip planned songs whose file is gone.")] = False,
           song_chapters: Annotated[bool, typer.Option(help="A chapter per song too (titled from its arc).")] = False) -> None:
    """Render the stored mix plan with ffmpeg into Tracks/{N}/Rendered/output_{timestamp}/."""
    from lofi_pipeline.core.planning import render_target_seconds
    from lofi_pipeline.runner import asset_metadata

    _track(track)
    render_target_seconds(duration)  # validate before launching
    _planned_track(track)
    result = _run("render_job", partition=track, title=f"render track {track}",
                  run_config={"ops": {"rendered_mix": {"config": {"duration": duration,
                                                                  "allow_missing": allow_missing,
                                                                  "song_chapters": song_chapters}}}})
    meta = asset_metadata(result, "rendered_mix")
    out.print(f"rendered {safe(meta.get('output_dir'))} (plan {safe(meta.get('plan_id'))})")
    for k in ("duration_seconds", "integrated_lufs", "true_peak_db", "wall_seconds", "realtime_factor"):
        if k in meta:
            out.print(f"  {k}: {meta[k]}")


@app.command("post-render")
def post_render(track: TrackOpt,
                folder: Annotated[Optional[Path], typer.Option("--dir", help="Default Tracks/N/Rendered.")] = None) -> None:
    """Import new audio files from Tracks/{N}/Rendered (or --dir) into the library."""
    from lofi_pipeline.runner import asset_metadata

    _known_track(track)
    folder = folder or _track_dir(track) / "Rendered"
    if not folder.is_dir():
        _fail(f"{folder}: folder not found (nothing rendered yet?)")
    result = _run("songs_job", partition=track, title=f"post-render track {track}",
                  run_config={"ops": {"audio_features": {"config": {"folders": [str(folder.resolve())]}}}})
    feats = asset_metadata(result, "audio_features")
    out.print(f"{feats.get('files')} files seen, {feats.get('analysed')} new songs, "
              f"{feats.get('known_content')} already known, {feats.get('errors')} errors")


@app.command()
def publish(track: TrackOpt,
            url: Annotated[str, typer.Option(help="The YouTube URL of the published video.")],
            date: Annotated[Optional[str], typer.Option(help="Publication date YYYY-MM-DD (today).")] = None) -> None:
    """Mark a track published and count each of its songs as used once."""
    from datetime import datetime

    from lofi_pipeline.core.files import write_json_atomic
    from lofi_pipeline.core.publishing import validate_youtube_url

    _track(track)
    video_id = validate_youtube_url(url)
    try:
        day = datetime.strptime(date, "%Y-%m-%d") if date else None
    except ValueError:
        _fail(f"--date '{date}': expected YYYY-MM-DD")
    res = _library().publish(track, youtube_url=url, video_id=video_id, published_on=day)
    target = _track_dir(track) / "metadata" / "published.json"
    write_json_atomic(target, {"track_number": track, "youtube_url": url, "video_id": video_id,
                               "published_on": (day or datetime.now()).date().isoformat(),
                               "render_id": res["render_id"], "songs": res["songs"]})
    _run("stats_job", title="library stats")  # the UI's library report counts the new uses
    out.print(f"track {track} published ({video_id}); {res['songs']} songs of render {res['render_id']}, "
              f"{res['newly_counted']} new uses counted")


@app.command()
def stats() -> None:
    """Library figures: songs, tracks, hours, most-used songs, BPM and key distributions."""
    from lofi_pipeline.core.stats import guesses_line, stats_from_library, with_bars

    st = stats_from_library(_library())
    out.print(f"[bold]{st.songs}[/bold] songs, [bold]{st.hours}[/bold] h, {st.tracks} tracks "
              f"({st.published} published)")
    if st.flagged:
        out.print(f"[yellow]{st.flagged} flagged song(s)[/yellow] (silent, near-silent or over 20 min): "
                  "left out of mixes")
        table = Table("file", "flags", title="flagged")
        for row in st.flagged_songs.itertuples(index=False):
            table.add_row(safe(row[0]), safe(", ".join(row[1]) if not isinstance(row[1], str) else row[1]))
        out.print(table)
    guesses = guesses_line(st)
    if guesses:
        out.print(guesses, markup=False, highlight=False)
    for title, df in [("BPM", with_bars(st.bpm)), ("keys", with_bars(st.keys)),
                      ("energy", with_bars(st.energy)), ("most used", st.most_used)]:
        if len(df):
            table = Table(*map(str, df.columns), title=title)
            for row in df.itertuples(index=False):
                table.add_row(*(safe(v) for v in row))
            out.print(table)


@app.command()
def demo(folder: Annotated[Optional[Path], typer.Option("--dir", help="Where to build it (LOFI_HOME).")] = None,
         render_demo: Annotated[bool, typer.Option("--render/--no-render", help="Finish with a test render.")] = True) -> None:
    """Build a small synthesized library and run the whole pipeline on a new track."""
    from lofi_pipeline.demo import run_demo

    if folder:
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["LOFI_HOME"] = str(folder.resolve())
    with _RunProgress("demo") as progress:
        def say(message: str) -> None:
            if message.startswith("[progress]"):
                progress(message, 20)
            else:
                err.print(message, markup=False, highlight=False)

        summary = run_demo(_settings(library=False), render=render_demo, say=say)
    _print_summary(summary)


def _print_summary(summary: dict) -> None:
    """The demo's results as lines (a narrow table would cut off the paths it tells you to open)."""
    out.print("[bold]lofi demo[/bold]")
    for k, v in summary.items():
        text = str(v)
        if "/" in text or os.sep in text:  # a path: on a line of its own, folded, never cut
            out.print(f"  {safe(k)}:", highlight=False)
            out.print(f"    {safe(text)}", highlight=False, overflow="fold")
        else:
            out.print(f"  {safe(k)}: {safe(text)}", highlight=False)


@app.command()
def ui(port: Annotated[int, typer.Option("--port", "-p", help="Port of the web UI.")] = 3000,
       host: Annotated[str, typer.Option("--host", "-h", help="Address to listen on.")] = "127.0.0.1") -> None:
    """Start the Dagster UI and its daemon (sensors, queued runs) on this library's instance.

    Dagster 1.13 marks `dagster dev` superseded (by `dg dev`, which needs a dg
    project folder, not a library folder), so this starts what both of them
    start: `dagster-webserver` and `dagster-daemon run`, on the code location
    `lofi_pipeline.definitions`. Ctrl-C stops both.
    """
    import signal
    import subprocess

    from lofi_pipeline.runner import CODE_LOCATION_MODULE, prepare_instance

    if not 0 < port < 65536:
        _fail(f"--port {port}: expected a port from 1 to 65535")
    s = _settings()
    prepare_instance(s)  # sets DAGSTER_HOME for the children; LOFI_HOME is inherited
    os.environ["LOFI_HOME"] = str(s.home)
    target = ["-m", CODE_LOCATION_MODULE]
    webserver = subprocess.Popen([sys.executable, "-m", "dagster_webserver", *target, "-h", host, "-p", str(port)])
    daemon = subprocess.Popen([sys.executable, "-m", "dagster._daemon", "run", *target])
    out.print(f"Dagster UI on http://{host}:{port} (library {safe(s.home)}); Ctrl-C stops it")
    died = None
    try:
        while died is None:
            try:
                webserver.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
            died = next((n for n, p in (("dagster-webserver", webserver), ("dagster-daemon", daemon))
                         if p.poll() is not None), None)
    except KeyboardInterrupt:
        pass
    finally:
        for proc in (webserver, daemon):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in (webserver, daemon):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    if died:
        _fail(f"{died} stopped by itself (exit code {(webserver if died == 'dagster-webserver' else daemon).returncode}); "
              "its messages are above")


# --------------------------------------------------------------------------- notion
@notion_app.command("parse")
def notion_parse(path: Annotated[Path, typer.Argument(help="A Notion Markdown export (.md).")],
                 as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False) -> None:
    """Parse a track page and print its arcs and prompts (or JSON)."""
    from lofi_pipeline.core.notion import parse_track_markdown, read_track_page

    if not path.is_file():
        _fail(f"{path}: file not found")
    plan = parse_track_markdown(read_track_page(path), source=str(path))
    if as_json:
        sys.stdout.write(json.dumps(plan.to_dict(), ensure_ascii=False, indent=2) + "\n")
        return
    _print_plan(plan)


@notion_app.command("show")
def notion_show(track: Annotated[int, typer.Argument(help="Track number.")]) -> None:
    """Show an imported track's arcs and prompts as a tree."""
    _track(track, where="track")
    plan = _library().load_plan(track)
    if plan is None:
        _fail(f"track {track} is not in the library")
    _print_plan(plan)


def _print_plan(plan) -> None:
    tree = Tree(f"[bold]{safe(plan.title or plan.page_title or plan.source)}[/bold] "
                f"(track {plan.track_number}, {plan.duration_minutes or '?'} min)")
    for arc in plan.arcs:
        bpm = f" BPM {arc.bpm_range[0]:g}–{arc.bpm_range[1]:g}" if arc.bpm_range else ""
        branch = tree.add(f"arc {arc.number}: {safe(arc.name)}{bpm}")
        for p in arc.prompts:
            mark = {True: "[green]✓[/green]", False: "☐", None: "•"}[p.checked]
            branch.add(f"{mark} {p.number}. {safe(p.text)}")
    out.print(tree)
    for w in plan.warnings:
        _warn(w)


def main() -> None:
    """The `lofi` entry point.

    After a command that launched a job, the interpreter's own teardown (module
    finalizers of torch, Dagster's storage, thread joins) costs about a second
    and does nothing a finished command needs: output is flushed and the
    process leaves at once. Everything a run writes is committed before this.

    The garbage collector is off until the work starts
    (:func:`lofi_pipeline.runner.start_collecting`): importing Dagster, its SQL
    storage, pandas and DuckDB and building the definitions allocate only
    objects that live until exit, and the collector's passes over them cost
    0.2-0.4 s per command (``benchmarks/cli.py``).
    """
    import gc

    gc.disable()
    try:
        app()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    import logging

    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    if "dagster" in sys.modules:
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    main()
