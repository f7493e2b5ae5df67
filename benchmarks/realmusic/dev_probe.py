"""A quick dev-split loop for trying analyzer changes: decode once, then score in about a minute.

``analysis_real.py --split dev`` and ``extra_dev_copies.py`` run the whole
``analyze_file`` on every file, decode included: minutes per try. This
script decodes every dev-split file and every extra dev copy once, to the
excerpt that tempo and key read (``cache``: ``analysis_excerpt``, mono
float32 at ``ANALYSIS_SR``, one ``.npy`` each under ``corpus/excerpts/``,
git-ignored with the corpus). ``score`` then runs ``estimate_tempo`` and
``estimate_key`` on those excerpts, in two worker processes, and prints the
dev split's figures (``analysis_real.score``: Acc1, Acc2, key, stretch and
shift consistency, confidence AUROC) and the extra copies' consistency by
source (``extra_dev_copies.tally``): the same answers and figures as those
two scripts, from the same decode.

``--patch FILE`` runs a Python file in each worker before scoring: a variant
to try, written as assignments to the analyzer's modules, e.g.::

    from lofi_pipeline.core.audio import tempo
    tempo._HIERARCHY_WEIGHT = 0.3

Only dev-split files and their extra copies are read, never the test split:
parameters are chosen here, and ``analysis_real.py`` on the test split
reports the chosen ones.

Usage::

    python benchmarks/realmusic/build.py               # the corpus
    python benchmarks/realmusic/extra_dev_copies.py    # the extra dev copies
    python benchmarks/realmusic/dev_probe.py cache     # the excerpts, once (a few minutes)
    python benchmarks/realmusic/dev_probe.py score --patch variant.py --json answers.json
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from analysis_real import CORPUS, confident_consistency, read_rows, score  # noqa: E402  (the benchmark's own scoring)
from extra_dev_copies import EXTRA, copy_jobs, print_tally, source_groups, tally  # noqa: E402

EXCERPTS = CORPUS / "excerpts"


def dev_files() -> tuple[list[dict], list[tuple[str, str, float, str]]]:
    """The dev split's label rows and the extra copies of its originals that have been built."""
    labels = CORPUS / "labels.csv"
    if not labels.exists():
        sys.exit(f"no corpus at {CORPUS}: run python benchmarks/realmusic/build.py first")
    rows = read_rows(labels, "dev")
    originals = [r for r in rows if r["variant"] in ("orig", "clean")]
    jobs = [j for j in copy_jobs(originals, ("shift", "stretch")) if (EXTRA / j[3]).exists()]
    return rows, jobs


def excerpt_path(name: str) -> Path:
    return EXCERPTS / f"{name}.npy"


def _cache_one(path: Path, folder: Path | None = None) -> str:
    """Decode ``path``'s analysis excerpt once, into ``folder`` (default: the dev cache, EXCERPTS)."""
    from lofi_pipeline.core.audio import analysis_excerpt

    out = folder / f"{path.name}.npy" if folder else excerpt_path(path.name)
    if not out.exists():
        tmp = out.with_name(f".{path.name}.partial.npy")
        np.save(tmp, analysis_excerpt(path))
        tmp.replace(out)  # a killed run leaves no half-written excerpt under the real name
    return path.name


def _apply_patch(patch: str | None) -> None:
    if patch:
        runpy.run_path(patch, run_name="dev_probe_patch")


def _read(name: str) -> tuple[str, tuple]:
    from lofi_pipeline.core.audio import ANALYSIS_SR, key, tempo

    y = np.load(excerpt_path(name))
    bpm, bpm_conf = tempo.estimate_tempo(y, ANALYSIS_SR)
    k, key_conf = key.estimate_key(y, ANALYSIS_SR)
    return name, (bpm, k, bpm_conf, key_conf if k else None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=("cache", "score"))
    ap.add_argument("--patch", help="a Python file run in each worker before scoring (a variant to try)")
    ap.add_argument("--json", type=Path, help="write every answer and the figures here")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    rows, jobs = dev_files()
    names = [r["file"] for r in rows] + [dst for *_, dst in jobs]
    if args.command == "cache":
        EXCERPTS.mkdir(exist_ok=True)
        paths = [CORPUS / r["file"] for r in rows] + [EXTRA / dst for *_, dst in jobs]
        with ProcessPoolExecutor(args.workers) as pool:
            for i, _ in enumerate(pool.map(_cache_one, paths, chunksize=4), 1):
                print(f"\rexcerpts {i}/{len(paths)}", end="", flush=True)
        print(f"\n{len(paths)} excerpts in {EXCERPTS}")
        return 0
    missing = [n for n in names if not excerpt_path(n).exists()]
    if missing:
        sys.exit(f"{len(missing)} excerpts missing (first: {missing[0]}): run dev_probe.py cache first")
    with ProcessPoolExecutor(args.workers, initializer=_apply_patch, initargs=(args.patch,)) as pool:
        answers = dict(pool.map(_read, names, chunksize=8))
    figures = score(rows, answers)
    figures.update(confident_consistency(rows, answers))
    print(f"dev split ({len(rows)} files{', patched by ' + args.patch if args.patch else ''}):")
    for k, v in figures.items():
        print(f"  {k:40s} {v:.3f}" if isinstance(v, float) else f"  {k:40s} {v}")
    originals = [r for r in rows if r["variant"] in ("orig", "clean")]
    extra = tally(jobs, answers, source_groups(originals))
    print_tally(extra)
    if args.json:
        args.json.write_text(json.dumps({
            "patch": args.patch, "figures": figures,
            "extra": {f"{kind}, {name}": float(np.mean(oks)) for (kind, name), oks in extra.items()},
            "answers": {n: list(a) for n, a in sorted(answers.items())},
        }, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
