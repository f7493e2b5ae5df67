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
"""

from __future__ import annotations

import argparse
import csv
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from analysis_real import CORPUS, shift_consistent, stretch_consistent  # noqa: E402  (one rule each)
from build import sox_copy  # noqa: E402  (the corpus's own copies are made the same way)

EXTRA = CORPUS / "extra_dev"
SHIFTS = (1, -2, 4, -5)
STRETCHES = (0.85, 0.95, 1.05, 1.2)


def copy_jobs(originals: list[dict], kinds: tuple[str, ...]) -> list[tuple[str, str, float, str]]:
    """(source file, kind, semitones or factor, copy's file name) for every extra copy of ``kinds``."""
    jobs = []
    for r in originals:
        stem = Path(r["file"]).stem
        if "shift" in kinds:
            jobs += [(r["file"], "shift", s, f"{stem}__x{s:+d}.ogg") for s in SHIFTS]
        if "stretch" in kinds:
            jobs += [(r["file"], "stretch", f, f"{stem}__t{f}.ogg") for f in STRETCHES]
    return jobs


def _copy(job: tuple[str, str, float, str]) -> str:
    src, kind, amount, dst = job
    out = EXTRA / dst
    if not out.exists():
        tmp = out.with_name(f".{out.stem}.partial{out.suffix}")
        sox_copy(CORPUS / src, tmp, kind, amount)
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


def print_tally(figures: dict[tuple[str, str], list[bool]]) -> None:
    for (kind, name), oks in sorted(figures.items()):
        print(f"{kind} consistency, extra dev copies, {name}: {np.mean(oks):.3f} ({len(oks)} pairs)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--kind", choices=("both", "shift", "stretch"), default="both",
                    help="which extra copies to build and score")
    args = ap.parse_args(argv)
    labels = CORPUS / "labels.csv"
    if not labels.exists():
        sys.exit(f"no corpus at {CORPUS}: run python benchmarks/realmusic/build.py first")
    with open(labels) as fh:
        originals = [r for r in csv.DictReader(fh)
                     if r["split"] == "dev" and r["variant"] in ("orig", "clean")]
    kinds = ("shift", "stretch") if args.kind == "both" else (args.kind,)
    jobs = copy_jobs(originals, kinds)
    EXTRA.mkdir(exist_ok=True)
    with ProcessPoolExecutor(args.workers) as pool:
        for i, _ in enumerate(pool.map(_copy, jobs), 1):
            print(f"\rcopies {i}/{len(jobs)}", end="", flush=True)
        print()
        paths = [str(CORPUS / r["file"]) for r in originals] + [str(EXTRA / dst) for *_, dst in jobs]
        answers = dict(pool.map(_analyse, paths, chunksize=4))
    print_tally(tally(jobs, answers, source_groups(originals)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
