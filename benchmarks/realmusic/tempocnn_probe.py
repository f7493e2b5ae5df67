"""tempo-CNN on the real-music corpus: a published learned tempo model as one more comparison.

Schreiber and Müller's tempo-CNN (the ``tempocnn`` package on PyPI, AGPL-3)
is one of the few learned tempo estimators whose trained weights come inside
the wheel, so it runs here without a download. It was trained with
time-stretched copies, which makes it a fair test of the stretch-consistency
target of #15: does a learned model read a ``sox tempo`` copy at the
original's tempo times the factor more often than our DSP does?

It is a benchmark comparison only, never used by ``lofi_pipeline`` (AGPL-3,
TensorFlow 2.17, numpy < 2: it cannot share the project's environment).
So the work is split in three steps, each in the environment it needs:

1. ``excerpts`` (project venv): the middle 120 s that our analyzer reads
   (``analysis_excerpt``, mono at 11 025 Hz, the rate tempo-CNN expects),
   one ``.npy`` per file of a split, into a folder of your choice.
   The dev split's are already cached by ``dev_probe.py cache``.
2. ``run`` (a venv with ``tempocnn``): the model's tempo distribution per
   file, averaged over 256-frame windows (hop 128) of a 40-band mel
   spectrum (20-5000 Hz, 1024-point frames, hop 512: the model's input);
   its peak (quadratically interpolated) is the tempo, its height the
   confidence. Written as JSON: the model, the seconds per excerpt and
   ``answers`` (``{file: [bpm, confidence]}``).
3. ``score`` (project venv): those tempi scored with ``analysis_real.score``
   (Acc1, Acc2, stretch consistency, confidence AUROC), next to our stored
   figures; on dev also the extra copies' stretch consistency by source.

Usage::

    python3.11 -m venv /tmp/tcnn
    /tmp/tcnn/bin/pip install tempocnn==0.0.8 soundfile     # brings TensorFlow 2.17 and numpy 1.26
    .venv/bin/python benchmarks/realmusic/tempocnn_probe.py excerpts --split test /tmp/exc_test
    /tmp/tcnn/bin/python benchmarks/realmusic/tempocnn_probe.py run /tmp/exc_test /tmp/tcnn_test.json
    .venv/bin/python benchmarks/realmusic/tempocnn_probe.py score --split test /tmp/tcnn_test.json

The second held-out set: ``excerpts --split all --corpus
benchmarks/realmusic/corpus/holdout``, then ``score --split all --labels
benchmarks/realmusic/holdout_labels.csv --compare
benchmarks/results/analysis_real_holdout.json``.

(``run --model cnn`` picks another of the package's models; ``fcn`` is its default.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WINDOW, HOP = 256, 128  # mel frames per model input, and between inputs


def _excerpts(split: str, out: Path, corpus: Path | None) -> None:
    sys.path.insert(0, str(HERE.parent))
    sys.path.insert(0, str(HERE))
    from analysis_real import CORPUS, read_rows
    from dev_probe import _cache_one

    corpus = corpus or CORPUS
    out.mkdir(parents=True, exist_ok=True)
    rows = read_rows(corpus / "labels.csv", split)
    for i, row in enumerate(rows, 1):
        _cache_one(corpus / row["file"], out)  # dev_probe's decode: written whole or not at all
        print(f"\rexcerpts {i}/{len(rows)}", end="", flush=True)
    print(f"\n{len(rows)} excerpts in {out}")


def _windows(mel: np.ndarray) -> np.ndarray:
    """(bands, frames) -> (n, bands, WINDOW, 1): overlapping model inputs, zero-padded when short."""
    if mel.shape[1] < WINDOW:
        mel = np.pad(mel, ((0, 0), (0, WINDOW - mel.shape[1])))
    starts = range(0, mel.shape[1] - WINDOW + 1, HOP)
    return np.stack([mel[:, s:s + WINDOW] for s in starts])[..., None]


def _run(folder: Path, out: Path, model: str) -> None:
    import librosa
    from tempocnn.classifier import TempoClassifier

    clf = TempoClassifier(model)
    paths = sorted(folder.glob("*.npy"))
    answers, t0 = {}, time.perf_counter()
    for i, path in enumerate(paths, 1):
        y = np.load(path)
        mel = librosa.feature.melspectrogram(y=y, sr=11025, n_fft=1024, hop_length=512, power=1,
                                             n_mels=40, fmin=20, fmax=5000)
        windows = clf.normalize(_windows(mel))  # the model's own input scaling
        dist = clf.model.predict(windows, batch_size=len(windows), verbose=0).mean(axis=0)
        index, _ = clf.quad_interpol_argmax(dist)
        answers[path.name[:-len(".npy")]] = [float(clf.to_bpm(index)), float(dist.max())]
        print(f"\r{model} {i}/{len(paths)}", end="", flush=True)
    per_file = (time.perf_counter() - t0) / max(len(paths), 1)
    run = {"model": model, "seconds_per_file": per_file, "answers": answers}
    out.write_text(json.dumps(run, indent=1) + "\n")
    print(f"\n{len(paths)} files, {per_file:.2f} s each -> {out}")


SHOWN = ("Acc1", "Acc2", "stretch consistency", "tempo conf AUROC", "stretch pair conf AUROC")


def _as_answers(run: dict) -> dict[str, tuple]:
    """``run``'s tempi in analysis_real's answer shape (bpm, key, bpm confidence, key confidence)."""
    return {name: (bpm, None, conf, None) for name, (bpm, conf) in run["answers"].items()}


def score_runs(split: str, runs: list[dict], labels: Path = HERE / "labels.csv") -> dict:
    """``run``'s outputs scored on one split: a results dict with figures and answers per model."""
    sys.path.insert(0, str(HERE.parent))
    from analysis_real import read_rows, score

    rows = read_rows(labels, split)
    results: dict = {"split": split, "labels": labels.name, "figures": {}, "seconds_per_excerpt": {},
                     "answers": {}}
    for run in runs:
        answers = _as_answers(run)
        missing = [r["file"] for r in rows if r["file"] not in answers]
        if missing:
            sys.exit(f"{run['model']}: no answer for {len(missing)} {split} files (first: {missing[0]})")
        figures = score(rows, answers)
        results["figures"][run["model"]] = {k: figures.get(k) for k in ("n_tempo", "n_stretch", *SHOWN)}
        results["seconds_per_excerpt"][run["model"]] = run["seconds_per_file"]
        results["answers"][run["model"]] = {r["file"]: list(run["answers"][r["file"]]) for r in rows}
    return results


def _score(split: str, paths: list[Path], out: Path | None, labels: Path, compare: Path | None) -> None:
    runs = []
    for path in paths:
        try:
            run = json.loads(path.read_text())
            lacking = {"model", "answers", "seconds_per_file"} - set(run if isinstance(run, dict) else ())
            if lacking:
                raise KeyError(f"no {', '.join(sorted(lacking))}")
        except (OSError, ValueError, KeyError) as exc:
            sys.exit(f"{path}: expected a file written by tempocnn_probe.py run ({exc})")
        runs.append(run)
    results = score_runs(split, runs, labels)
    for model, figures in results["figures"].items():
        print(f"tempo-CNN ({model}) on the {split} split, "
              f"{results['seconds_per_excerpt'][model]:.2f} s per excerpt:")
        for name in SHOWN:
            value = figures[name]
            print(f"  {name:28s} {value:.3f}" if isinstance(value, float) else f"  {name:28s} {value}")
    ours = compare or HERE.parent / "results" / f"analysis_real_{split}.json"
    if ours.exists():
        for method, figs in json.loads(ours.read_text())["figures"].items():
            shown = [f"{n} {figs[n]:.3f}" for n in SHOWN[:3] if figs.get(n) is not None]
            print(f"  stored {method:10s} " + ", ".join(shown))
    if split == "dev":  # the extra dev copies (built by extra_dev_copies.py), when their answers are there
        sys.path.insert(0, str(HERE))
        from dev_probe import dev_files
        from extra_dev_copies import print_tally, source_groups, tally

        dev_rows, jobs = dev_files()
        originals = [r for r in dev_rows if r["variant"] in ("orig", "clean")]
        results["extra dev copies, stretch consistency"] = {}
        for run in runs:
            answers = _as_answers(run)
            extra = tally([j for j in jobs if j[3] in answers], answers, source_groups(originals))
            stretch = {group: oks for (kind, group), oks in extra.items() if kind == "stretch"}
            results["extra dev copies, stretch consistency"][run["model"]] = {
                group: [float(np.mean(oks)), len(oks)] for group, oks in stretch.items()}
            print(f"tempo-CNN ({run['model']}):")
            print_tally({("stretch", group): oks for group, oks in stretch.items()})
    if out:
        out.write_text(json.dumps(results, indent=1) + "\n")
        print(f"figures and answers -> {out}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("excerpts", help="our analysis excerpts of one split, as .npy (project venv)")
    ex.add_argument("--split", default="test")
    ex.add_argument("--corpus", type=Path, help="a corpus folder with its labels.csv (default: build.py's)")
    ex.add_argument("out", type=Path)
    run = sub.add_parser("run", help="tempo-CNN on a folder of excerpts (tempocnn venv)")
    run.add_argument("folder", type=Path)
    run.add_argument("out", type=Path)
    run.add_argument("--model", default="fcn")
    sc = sub.add_parser("score", help="score run's answers on a split (project venv)")
    sc.add_argument("--split", default="test")
    sc.add_argument("--json", type=Path, help="write the figures and the split's answers here")
    sc.add_argument("--labels", type=Path, default=HERE / "labels.csv",
                    help="the labels to score against (realmusic/holdout_labels.csv for the holdout set)")
    sc.add_argument("--compare", type=Path,
                    help="analysis_real.py results to print beside "
                         "(default: results/analysis_real_SPLIT.json)")
    sc.add_argument("runs", type=Path, nargs="+", help="files written by run, one per model")
    args = ap.parse_args(argv)
    if args.command == "excerpts":
        _excerpts(args.split, args.out, args.corpus)
    elif args.command == "run":
        _run(args.folder, args.out, args.model)
    else:
        _score(args.split, args.runs, args.json, args.labels, args.compare)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
