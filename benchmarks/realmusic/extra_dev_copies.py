"""More consistency pairs for choosing key and tempo parameters: dev split only.

The corpus gives every dev recording and game-MIDI render two ``sox pitch``
copies (+2 / -3 semitones) and two ``sox tempo`` copies (x0.9 / x1.12), 152
pairs of each kind: too few to tell a real gain from near-ties moving. This
script adds, for every dev original (the untouched recording or the clean
render, scores included), four more ``sox pitch`` copies at +1 / -2 / +4 / -5
semitones and four more ``sox tempo -m`` copies at x0.85 / x0.95 / x1.05 /
x1.2 under ``corpus/extra_dev/`` (git-ignored with the corpus; built once,
skipped when present), and scores our consistency on them with the rules of
``analysis_real.py``: a pitch copy must read the original's key moved by as
much, a tempo copy the original's tempo times the factor (within 4 %), both
``None`` counting as consistent. Test pieces never get extra copies, so
nothing here can be tuned on the test split.

Usage::

    python benchmarks/realmusic/build.py                # the corpus, first
    python benchmarks/realmusic/extra_dev_copies.py     # builds the copies (about 12 min), then scores
    python benchmarks/realmusic/extra_dev_copies.py --kind stretch   # tempo copies only
    python benchmarks/realmusic/extra_dev_copies.py --tool rubberband

``--tool rubberband`` makes, instead, copies of every dev original at the
corpus's own amounts (x0.9 / x1.12, +2 / -3) with Rubber Band's R3 engine
(``rubberband-cli``; about 40 min on two cores) and prints their figures
beside those of the corpus's ``sox`` copies of the same originals: whether
the figures depend on the tool that made the copies (``sox`` splices about
every 70 ms, and the comb can read that stride). With ``--corpus
corpus/holdout`` it does the same for every piece of the second held-out set
(``holdout.py``), and writes a labels CSV beside the copies (the originals
linked in) so that ``analysis_real.py --corpus corpus/holdout/extra_copies
--split all`` scores the seed method and Essentia on the same pairs. These
copies only measure; nothing is chosen on them.
"""

from __future__ import annotations

import argparse
import csv
import functools
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

# One rule each: which labels row is a copy, and when it is consistent.
from analysis_real import CORPUS, copy_of, shift_consistent, stretch_consistent  # noqa: E402
import build  # noqa: E402  (the corpus's own copies are made the same way)

EXTRA = CORPUS / "extra_dev"
SHIFTS = (1, -2, 4, -5)
STRETCHES = (0.85, 0.95, 1.05, 1.2)


def extra_folder(corpus: Path) -> Path:
    """Where the extra copies of ``corpus``'s pieces go: ``EXTRA`` for the corpus itself."""
    return EXTRA if corpus == CORPUS else corpus / "extra_copies"


Job = tuple[str, str, float, str]
"""(source file, kind, semitones or factor, copy's file name)."""


def copy_jobs(originals: list[dict], kinds: tuple[str, ...], tool: str = "sox") -> list[Job]:
    """(source file, kind, semitones or factor, copy's file name) for every extra copy of ``kinds``.

    ``tool="sox"``: the extra amounts (``SHIFTS``, ``STRETCHES``); ``"rubberband"``:
    the corpus's own amounts (``build.SHIFTS``, ``build.STRETCHES``), to be set
    against the corpus's ``sox`` copies of the same originals.
    """
    if tool not in build.COPY_TOOLS:
        raise ValueError(f"tool {tool!r}: expected one of {', '.join(build.COPY_TOOLS)}")
    if tool == "sox":
        shifts, stretches, tag = SHIFTS, STRETCHES, ""
    else:
        shifts, stretches, tag = build.SHIFTS, build.STRETCHES, "rb"
    jobs = []
    for r in originals:
        stem = Path(r["file"]).stem
        if "shift" in kinds:
            jobs += [(r["file"], "shift", s, f"{stem}__{tag}x{s:+d}.ogg") for s in shifts]
        if "stretch" in kinds:
            jobs += [(r["file"], "stretch", f, f"{stem}__{tag}t{f}.ogg") for f in stretches]
    return jobs


def corpus_copies(rows: list[dict], originals: list[dict], kinds: tuple[str, ...]) -> list[Job]:
    """The corpus's own ``sox`` copies of ``originals`` as jobs (see ``copy_jobs``), in ``CORPUS``."""
    group = {r["group"]: r["file"] for r in originals}
    jobs = []
    for r in rows:
        copy = copy_of(r)
        if copy and copy[0] in kinds and r["group"] in group:
            jobs.append((group[r["group"]], *copy, r["file"]))
    return jobs


def copy_labels(originals: list[dict], jobs: list[Job], targets: tuple[Path, ...]) -> None:
    """A labels CSV at each of ``targets`` for ``analysis_real.py --corpus`` (the copies' folder)
    and ``--rescore --labels`` (the repository's copy, beside ``labels.csv``).

    It lists the originals (with their labels; ``build.link_files`` puts them
    beside the copies) and the copies of ``jobs`` (no labels; their stretch or
    shift), so the seed method and Essentia can be scored on the same pairs,
    with the same rules.
    """
    def label(r: dict, **kw) -> build.Row:
        return build.Row(group=r["group"], source=r["source"], split=r["split"], **kw)

    by_file = {r["file"]: r for r in originals}
    rows = [label(r, file=r["file"], variant=r["variant"], bpm=float(r["bpm"]) if r["bpm"] else None,
                  key=r["key"] or None) for r in originals]
    for src, kind, amount, dst in jobs:
        if kind == "stretch":
            rows.append(label(by_file[src], file=dst, variant=f"tempo{amount}", stretch=amount))
        else:
            rows.append(label(by_file[src], file=dst, variant=f"pitch{int(amount):+d}", shift=int(amount)))
    build.write_labels(rows, targets)


def _copy(job: Job, tool: str = "sox", corpus: Path = CORPUS) -> str:
    src, kind, amount, dst = job
    out = extra_folder(corpus) / dst
    if not out.exists():
        tmp = out.with_name(f".{out.stem}.partial{out.suffix}")
        build.COPY_TOOLS[tool](corpus / src, tmp, kind, amount)
        tmp.replace(out)
    return dst


def _analyse(path: str) -> tuple[str, tuple[float | None, str | None]]:
    from lofi_pipeline.core import audio

    a = audio.analyze_file(path)
    return Path(path).name, (a.bpm, a.key)


def tally(jobs: list[tuple[str, str, float, str]], answers: dict[str, tuple],
          source: dict[str, str]) -> dict[tuple[str, str], list[bool]]:
    """Whether each extra copy reads its original's answer moved by as much, by (kind, source).

    ``answers`` maps a file name (the original's, the copy's) to (bpm, key, ...);
    ``source`` an original's name to the group it is counted in. Every copy is
    counted under its original's source and under ``"all"``.
    """
    out: dict[tuple[str, str], list[bool]] = {}
    for src, kind, amount, dst in jobs:
        o, v = answers[src], answers[dst]
        same = (shift_consistent(o[1], v[1], int(amount)) if kind == "shift"
                else stretch_consistent(o[0], v[0], amount))
        for name in (source[src], "all"):
            out.setdefault((kind, name), []).append(same)
    return out


def source_groups(originals: list[dict]) -> dict[str, str]:
    """Each original's group in the printed figures: recordings, or scores and game MIDI."""
    return {r["file"]: "recording" if r["source"] == "recording" else "score or game MIDI" for r in originals}


def print_tally(figures: dict[tuple[str, str], list[bool]], copies: str = "extra dev copies") -> None:
    for (kind, name), oks in sorted(figures.items()):
        print(f"{kind} consistency, {copies}, {name}: {np.mean(oks):.3f} ({len(oks)} pairs)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--kind", choices=("both", "shift", "stretch"), default="both",
                    help="which extra copies to build and score")
    ap.add_argument("--tool", choices=tuple(build.COPY_TOOLS), default="sox",
                    help="sox: copies at the extra amounts; rubberband: at the corpus's own amounts, "
                         "scored beside the corpus's sox copies")
    ap.add_argument("--corpus", type=Path, default=CORPUS,
                    help="with --tool rubberband: another corpus folder, every piece of it "
                         "(e.g. corpus/holdout, built by holdout.py); default: the corpus's dev split")
    args = ap.parse_args(argv)
    corpus = args.corpus.resolve()
    if corpus != CORPUS and args.tool == "sox":
        sys.exit("extra sox copies are for choosing parameters: the corpus's dev split only")
    labels = corpus / "labels.csv"
    if not labels.exists():
        sys.exit(f"no corpus at {corpus}: run python benchmarks/realmusic/build.py (or holdout.py) first")
    with open(labels) as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "dev" or corpus != CORPUS]
    originals = [r for r in rows if r["variant"] in ("orig", "clean")]
    kinds = ("shift", "stretch") if args.kind == "both" else (args.kind,)
    jobs = copy_jobs(originals, kinds, args.tool)
    sox_jobs = corpus_copies(rows, originals, kinds) if args.tool != "sox" else []
    extra = extra_folder(corpus)
    extra.mkdir(exist_ok=True)
    with ProcessPoolExecutor(args.workers) as pool:
        for i, _ in enumerate(pool.map(functools.partial(_copy, tool=args.tool, corpus=corpus), jobs), 1):
            print(f"\rcopies {i}/{len(jobs)}", end="", flush=True)
        print()
        if args.tool != "sox":
            name = "dev" if corpus == CORPUS else corpus.name
            build.link_files([corpus / r["file"] for r in originals], extra)
            copy_labels(originals, jobs, (extra / "labels.csv", HERE / f"{name}_{args.tool}_labels.csv"))
        paths = ([str(corpus / r["file"]) for r in originals] + [str(extra / dst) for *_, dst in jobs]
                 + [str(corpus / dst) for *_, dst in sox_jobs])
        answers = dict(pool.map(_analyse, paths, chunksize=4))
    groups = source_groups(originals)
    label = "extra dev copies" if args.tool == "sox" else f"{args.tool} copies, {corpus.name}"
    print_tally(tally(jobs, answers, groups), label)
    if sox_jobs:
        # The same originals' sox copies, and the rubberband copies of those originals only.
        have_sox = {src for src, *_ in sox_jobs}
        print_tally(tally(sox_jobs, answers, groups), "the corpus's sox copies")
        print_tally(tally([j for j in jobs if j[0] in have_sox], answers, groups),
                    f"{args.tool} copies of the same originals")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
