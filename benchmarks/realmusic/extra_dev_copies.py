"""More shift-consistency pairs for choosing key parameters: dev split only.

The corpus gives every dev piece two ``sox pitch`` copies (+2 / -3
semitones), 152 pairs: too few to tell a real gain from near-ties moving. This
script adds four more copies of every dev original (the untouched recording or
the clean render) at +1 / -2 / +4 / -5 semitones under
``corpus/extra_dev/`` (git-ignored with the corpus; built once, skipped when
present) and scores our shift consistency on them: the copy must read the
original's key moved by as much, both ``None`` counting as consistent. Test
pieces never get extra copies, so nothing here can be tuned on the test split.

Usage::

    python benchmarks/realmusic/build.py                # the corpus, first
    python benchmarks/realmusic/extra_dev_copies.py     # builds the copies (about 6 min), then scores
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from analysis_real import CORPUS, shift_consistent  # noqa: E402  (one consistency rule)

EXTRA = CORPUS / "extra_dev"
SHIFTS = (1, -2, 4, -5)


def _copy(job: tuple[str, int, str]) -> str:
    src, semitones, dst = job
    out = EXTRA / dst
    if not out.exists():
        tmp = out.with_name(f".{out.stem}.partial{out.suffix}")
        subprocess.run(["sox", str(CORPUS / src), str(tmp), "pitch", str(100 * semitones)],
                       check=True, capture_output=True)
        tmp.replace(out)
    return dst


def _key(path: str) -> tuple[str, str | None]:
    from lofi_pipeline.core import audio

    return path, audio.analyze_file(path).key


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    labels = CORPUS / "labels.csv"
    if not labels.exists():
        sys.exit(f"no corpus at {CORPUS}: run python benchmarks/realmusic/build.py first")
    with open(labels) as fh:
        originals = [r for r in csv.DictReader(fh)
                     if r["split"] == "dev" and r["variant"] in ("orig", "clean")]
    jobs = [(r["file"], s, f"{Path(r['file']).stem}__x{s:+d}.ogg") for r in originals for s in SHIFTS]
    EXTRA.mkdir(exist_ok=True)
    with ProcessPoolExecutor(args.workers) as pool:
        for i, _ in enumerate(pool.map(_copy, jobs), 1):
            print(f"\rcopies {i}/{len(jobs)}", end="", flush=True)
        print()
        paths = [str(CORPUS / r["file"]) for r in originals] + [str(EXTRA / dst) for _, _, dst in jobs]
        keys = dict(pool.map(_key, paths, chunksize=4))
    kind = {r["file"]: "recording" if r["source"] == "recording" else "score or game MIDI"
            for r in originals}
    tally: dict[str, list[bool]] = {}
    for src, s, dst in jobs:
        same = shift_consistent(keys[str(CORPUS / src)], keys[str(EXTRA / dst)], s)
        for name in (kind[src], "all"):
            tally.setdefault(name, []).append(same)
    for name, oks in sorted(tally.items()):
        print(f"shift consistency, extra dev copies, {name}: {np.mean(oks):.3f} ({len(oks)} pairs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
