"""Tempo/key benchmark on real music: ours, the seed method and Essentia side by side.

The corpus is built by ``benchmarks/realmusic/build.py`` (its docstring gives
the sources, the label rules and the split rule). This script scores one
split (``--split test`` by default; parameters are only ever chosen with
``--split dev``) with ``mir_eval``:

* tempo: Acc1 (within 4 % of the label), Acc2 (also x2, x1/2, x3, x1/3),
  P-score (``mir_eval.tempo.detection``, 8 % tolerance, the label as the
  only reference tempo);
* key: ``mir_eval.key.weighted_score`` (MIREX: same 1.0, fifth 0.5,
  relative 0.3, parallel 0.2), averaged over the key-labelled files;
* stretch consistency: a ``sox tempo`` copy at x0.9 / x1.12 reads the
  original's tempo times the factor (within 4 %); shift consistency: a
  ``sox pitch`` copy at +2 / -3 semitones reads the original's key moved by
  as much (the original is the clean render or the untouched recording; both
  ``None`` counts as consistent, one ``None`` does not);
* confidence: AUROC of the confidence for telling right from wrong answers
  (1.0: every wrong answer has a lower confidence than every right one;
  0.5: the confidence says nothing), for Acc1 and exact key, and of a
  pair's lower confidence for telling consistent pairs from the others
  (``pair_auroc``: needs no labels); and our
  consistency over the pairs whose two readings are both confident (not
  marked as guesses), and a table of confidence cuts (``calibration``:
  the share of files below each cut and how many of them are right, the
  table the guess thresholds are chosen from on the dev split);
* wall seconds per file, each method in its own spawned worker process,
  taking turns in blocks like ``benchmarks/analysis.py``.

Methods: ours (``analyze_file``, the whole analysis: decode, loudness, tempo,
key); the seed method (librosa defaults, as defined in
``benchmarks/analysis.py``); Essentia 2.1 (``RhythmExtractor2013`` multifeature
and ``KeyExtractor`` with its default profile). Essentia is AGPL-3: it is used
here only, never by ``lofi_pipeline``; without it the column is skipped with a
message (``pip install essentia`` to add it).

Usage::

    python benchmarks/realmusic/build.py      # once: builds the corpus
    python benchmarks/analysis_real.py        # test split, all three methods
    python benchmarks/analysis_real.py --split dev --methods ours --show-errors
    python benchmarks/analysis_real.py --rescore benchmarks/results/analysis_real_test.json

Every run also prints 95 % bootstrap intervals over the pieces (``bootstrap``),
so a gap can be told from the noise of a small split; ``--rescore`` scores a
stored ``--json`` file's answers again, against the labels kept in the repo.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from analysis import key_score, tempo_hits  # noqa: E402  (benchmarks/analysis.py: one scoring rule)

CORPUS = HERE / "realmusic" / "corpus"


# ---------------------------------------------------------------- methods (run in workers)


def _ours(path: str):
    from lofi_pipeline.core import audio

    f = audio.analyze_file(path)
    return f.bpm, f.key, f.bpm_confidence, f.key_confidence


def _seed(path: str):
    from analysis import seed_method

    bpm, key = seed_method(path)
    return bpm, key, None, None


_ESSENTIA = {}


def _essentia(path: str):
    import essentia
    import essentia.standard as es

    if not _ESSENTIA:
        # Essentia logs a warning per algorithm call; keep the report readable.
        essentia.log.warningActive = False
        essentia.log.infoActive = False
        _ESSENTIA["rhythm"] = es.RhythmExtractor2013(method="multifeature")
        _ESSENTIA["key"] = es.KeyExtractor()
    y = es.MonoLoader(filename=path, sampleRate=44100)()
    bpm, _, conf, _, _ = _ESSENTIA["rhythm"](y)
    tonic, scale, strength = _ESSENTIA["key"](y)
    return (float(bpm) if bpm > 0 else None), f"{tonic} {scale}", float(conf) / 5.32, float(strength)


_METHODS = {"ours": _ours, "seed": _seed, "essentia": _essentia}


def time_block(method: str, paths: list[str]) -> list[tuple[tuple, float]]:
    fn = _METHODS[method]
    out = []
    for p in paths:
        t0 = time.perf_counter()
        try:
            res = fn(p)
        except Exception as exc:  # noqa: BLE001 - a method failing on a file scores as no answer
            print(f"  {method} failed on {p}: {exc}", file=sys.stderr)
            res = (None, None, None, None)
        out.append((res, time.perf_counter() - t0))
    return out


# ---------------------------------------------------------------- scoring


def _pc(key: str | None) -> tuple[int, str] | None:
    if not key:
        return None
    from lofi_pipeline.core import keys

    parsed = keys.parse_key(key)
    return None if parsed is None else (parsed.tonic, parsed.mode)


def same_key(est: str | None, ref: str) -> bool:
    """Whether ``est`` is ``ref`` (same tonic pitch class and mode, any spelling): MIREX's 1.0."""
    e = _pc(est)
    return e is not None and e == _pc(ref)


def p_score(est: float | None, ref: float) -> float:
    import mir_eval

    if est is None:
        return 0.0
    p, _, _ = mir_eval.tempo.detection(np.array([ref / 2, ref]), 0.0, np.array([est, est]))
    return float(p)


def auroc(conf: list[float], right: list[bool]) -> float | None:
    """P(confidence of a right answer > that of a wrong one), ties count half."""
    if all(x is None for x in conf):
        return None  # a method without a confidence (the seed method)
    c = np.asarray([x if x is not None else 0.0 for x in conf], float)
    r = np.asarray(right, bool)
    if r.all() or not r.any():
        return None
    pos, neg = c[r], c[~r]
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def shift_consistent(original: str | None, copy: str | None, semitones: int) -> bool:
    """Whether a copy shifted by ``semitones`` reads the original's key moved by as much.

    Both ``None`` counts as consistent, one ``None`` does not.
    """
    po, pv = _pc(original), _pc(copy)
    if po is None or pv is None:
        return po is None and pv is None
    return pv == ((po[0] + semitones) % 12, po[1])


def stretch_consistent(original: float | None, copy: float | None, factor: float) -> bool:
    """Whether a copy stretched by ``factor`` reads the original's tempo times the factor (within 4 %).

    Both ``None`` counts as consistent, one ``None`` does not.
    """
    if original is None or copy is None:
        return original is None and copy is None
    return abs(copy - original * factor) <= 0.04 * original * factor


PAIR_CONFIDENCE = {"stretch": 2, "shift": 3}
"""Which slot of an answer (bpm, key, tempo confidence, key confidence) holds the confidence a pair
kind's reading comes with: a stretched copy is judged by its tempo, a shifted one by its key."""


def copy_of(row: dict) -> tuple[str, float] | None:
    """A labels row's copy kind and amount: ("stretch", factor) or ("shift", whole semitones, an int);
    None for an original or a render."""
    if row["variant"].startswith("tempo"):
        return "stretch", float(row["stretch"])
    if row["variant"].startswith("pitch"):
        return "shift", int(row["shift"])
    return None


def _pairs(rows: list[dict], res: dict[str, tuple]):
    """(kind, consistent, original's answer, copy's answer) for every stretched or shifted copy in ``res``."""
    base = {r["group"]: res[r["file"]] for r in rows if r["variant"] in ("clean", "orig") and r["file"] in res}
    for r in rows:
        copy = copy_of(r)
        if copy is None or r["group"] not in base or r["file"] not in res:
            continue
        (kind, amount), o, v = copy, base[r["group"]], res[r["file"]]
        if kind == "stretch":
            yield kind, stretch_consistent(o[0], v[0], amount), o, v
        else:
            yield kind, shift_consistent(o[1], v[1], amount), o, v


def _labelled(row: dict, kind: str) -> bool:
    """Whether ``row`` is graded against a ``kind`` label ("tempo": its BPM, "key": its key).

    Only the clean and lo-fi renders are; a stretched or shifted copy may carry
    its original's key, but copies are scored by consistency with the original.
    """
    return bool(row["bpm" if kind == "tempo" else "key"]) and row["variant"] in ("clean", "lofi")


def _graded(rows: list[dict], res: dict[str, tuple], kind: str) -> tuple[list[dict], list[bool], list]:
    """The rows labelled for ``kind`` ("tempo" or "key"), whether each answer is right, and its confidence.

    Right is Acc1 for a tempo and the exact key (MIREX's full credit) for a key.
    """
    if kind not in ("tempo", "key"):
        raise ValueError(f"kind {kind!r}: expected 'tempo' or 'key'")
    labelled = [r for r in rows if _labelled(r, kind)]
    if kind == "tempo":
        right = [tempo_hits(res[r["file"]][0], float(r["bpm"]))[0] for r in labelled]
        return labelled, right, [res[r["file"]][2] for r in labelled]
    right = [same_key(res[r["file"]][1], r["key"]) for r in labelled]
    return labelled, right, [res[r["file"]][3] for r in labelled]


def pair_auroc(pairs: list[tuple], kind: str) -> float | None:
    """How well a pair's lower confidence tells its consistent pairs (``kind``: stretch, shift) from the rest.

    ``pairs`` as :func:`_pairs` yields them. Needs no labels, so it also
    measures the holdout set: does the confidence warn where a reading does
    not survive a stretch or a shift? A missing confidence counts as 0;
    ``None`` for a method that gives none (the seed method).
    """
    i = PAIR_CONFIDENCE[kind]
    sel = [(ok, o, v) for k, ok, o, v in pairs if k == kind]
    conf = [None if o[i] is None and v[i] is None else min(o[i] or 0.0, v[i] or 0.0) for _, o, v in sel]
    return auroc(conf, [ok for ok, _, _ in sel]) if sel else None


def score(rows: list[dict], res: dict[str, tuple]) -> dict[str, float | None]:
    tempo_rows, right_tempo, tempo_conf = _graded(rows, res, "tempo")
    key_rows, right_key, key_conf = _graded(rows, res, "key")
    acc2 = [tempo_hits(res[r["file"]][0], float(r["bpm"]))[1] for r in tempo_rows]
    ps = [p_score(res[r["file"]][0], float(r["bpm"])) for r in tempo_rows]
    ks = [key_score(res[r["file"]][1], r["key"]) for r in key_rows]
    pairs = list(_pairs(rows, res))
    stretch = [ok for kind, ok, _, _ in pairs if kind == "stretch"]
    shift = [ok for kind, ok, _, _ in pairs if kind == "shift"]
    return {
        "n_tempo": len(tempo_rows), "n_key": len(key_rows), "n_stretch": len(stretch), "n_shift": len(shift),
        "Acc1": float(np.mean(right_tempo)) if tempo_rows else None,
        "Acc2": float(np.mean(acc2)) if tempo_rows else None,
        "P-score": float(np.mean(ps)) if ps else None,
        "key (MIREX)": float(np.mean(ks)) if ks else None,
        "stretch consistency": float(np.mean(stretch)) if stretch else None,
        "shift consistency": float(np.mean(shift)) if shift else None,
        "tempo conf AUROC": auroc(tempo_conf, right_tempo),
        "key conf AUROC": auroc(key_conf, right_key),
        "stretch pair conf AUROC": pair_auroc(pairs, "stretch"),
        "shift pair conf AUROC": pair_auroc(pairs, "shift"),
    }


def confident_consistency(rows: list[dict], res: dict[str, tuple]) -> dict[str, float | int | None]:
    """Our consistency over the pairs whose two readings are both confident (not marked as guesses).

    A reading is confident at or above the thresholds below which ``analyze``,
    ``stats`` and the UI mark a value with ``?`` (``lofi_pipeline.core.confidence``).
    """
    from lofi_pipeline.core.confidence import LOW_KEY_CONFIDENCE, LOW_TEMPO_CONFIDENCE

    out: dict[str, float | int | None] = {}
    for kind, low in (("stretch", LOW_TEMPO_CONFIDENCE), ("shift", LOW_KEY_CONFIDENCE)):
        i = PAIR_CONFIDENCE[kind]
        sure = [ok for k, ok, o, v in _pairs(rows, res)
                if k == kind and (o[i] or 0) >= low and (v[i] or 0) >= low]
        out[f"{kind} consistency, both confident"] = float(np.mean(sure)) if sure else None
        out[f"n_{kind}, both confident"] = len(sure)
    return out


BOOTSTRAP_METRICS = {"Acc1": "n_tempo", "Acc2": "n_tempo", "P-score": "n_tempo", "key (MIREX)": "n_key",
                     "stretch consistency": "n_stretch", "shift consistency": "n_shift"}
"""The figures :func:`bootstrap` gives intervals for, each with the count it is averaged over."""


def _replicates(rows: list[dict], results: dict[str, dict[str, tuple]], resamples: int,
                seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Each method's figures over ``resamples`` resamplings of the pieces, drawn with replacement.

    The unit is the piece (a labels row's ``group``), not the file: a piece's
    clean and lo-fi renders and its stretched and shifted copies go in or out
    together, as they are not independent (a piece read wrong tends to be
    read wrong in every render, and both copies are judged against the same
    original). Every method sees the same draws, so the differences are paired.
    Returns ``{method: {metric: array of resamples}}`` (``nan`` where a draw
    has nothing to average).
    """
    groups = sorted({r["group"] for r in rows})
    by_group: dict[str, list[dict]] = {g: [] for g in groups}
    for r in rows:
        by_group[r["group"]].append(r)
    counts = np.random.default_rng(seed).multinomial(len(groups), np.full(len(groups), 1 / len(groups)),
                                                    size=resamples)
    out: dict[str, dict[str, np.ndarray]] = {}
    for method, res in results.items():
        # Every figure is a mean, so a resample's is the draws' weighted sums over their weighted counts.
        sums = np.zeros((len(groups), len(BOOTSTRAP_METRICS)))
        ns = np.zeros_like(sums)
        for i, g in enumerate(groups):
            fig = score(by_group[g], res)
            for j, (metric, n) in enumerate(BOOTSTRAP_METRICS.items()):
                if fig[n]:
                    sums[i, j], ns[i, j] = fig[metric] * fig[n], fig[n]
        with np.errstate(invalid="ignore", divide="ignore"):
            values = (counts @ sums) / (counts @ ns)
        out[method] = {metric: values[:, j] for j, metric in enumerate(BOOTSTRAP_METRICS)}
    return out


def bootstrap(rows: list[dict], results: dict[str, dict[str, tuple]], resamples: int = 2000,
              seed: int = 0) -> dict:
    """95 % intervals of every method's figures, and of ours against each other method.

    A percentile bootstrap over pieces (see :func:`_replicates`). ``"intervals"``:
    ``{method: {metric: [low, high]}}``. ``"ours against"``: ``{method: {metric:
    {"difference": [low, high], "ahead": share, "behind": share}}}``, where the
    difference is ours minus theirs and ``ahead`` / ``behind`` the shares of
    resamples in which ours is higher / lower. On the test split one labelled
    piece is about 2 points of Acc1 (two renders among 96 files) and one
    original 1 point of a consistency (two copies among 194): the intervals
    say which gaps are wider than that noise.
    """
    reps = _replicates(rows, results, resamples, seed)

    def interval(x: np.ndarray) -> list[float] | None:
        x = x[~np.isnan(x)]
        return [float(np.percentile(x, 2.5)), float(np.percentile(x, 97.5))] if len(x) else None

    out: dict = {"resamples": resamples, "unit": "piece", "pieces": len({r["group"] for r in rows}),
                 "intervals": {m: {k: interval(v) for k, v in figs.items()} for m, figs in reps.items()},
                 "ours against": {}}
    for other in reps:
        if other == "ours" or "ours" not in reps:
            continue
        out["ours against"][other] = {}
        for metric in BOOTSTRAP_METRICS:
            d = reps["ours"][metric] - reps[other][metric]
            d = d[~np.isnan(d)]
            out["ours against"][other][metric] = {
                "difference": interval(d), "ahead": float(np.mean(d > 0)) if len(d) else None,
                "behind": float(np.mean(d < 0)) if len(d) else None}
    return out


def _print_bootstrap(boot: dict, figures: dict[str, dict]) -> None:
    print(f"95 % intervals ({boot['resamples']} resamplings of the {boot['pieces']} pieces):")
    methods = list(boot["intervals"])
    print(f"{'metric':22s}" + "".join(f"{m:>22s}" for m in methods))
    for metric in BOOTSTRAP_METRICS:
        cells = []
        for m in methods:
            iv = boot["intervals"][m][metric]
            cells.append(f"{figures[m][metric]:.3f} [{iv[0]:.2f}, {iv[1]:.2f}]" if iv else "-")
        print(f"{metric:22s}" + "".join(f"{c:>22s}" for c in cells))
    for other, diffs in boot["ours against"].items():
        print(f"ours minus {other} (share of resamples where ours is ahead / behind):")
        for metric, d in diffs.items():
            if d["difference"]:
                print(f"  {metric:22s} [{d['difference'][0]:+.3f}, {d['difference'][1]:+.3f}]  "
                      f"ahead {d['ahead']:.2f}, behind {d['behind']:.2f}")


CALIBRATION_CUTS = {
    "tempo": (0.02, 0.03, 0.05, 0.08, 0.1, 0.15, 0.2),
    "key": (0.05, 0.1, 0.15, 0.2, 0.25, 0.3),
}
"""Confidence cuts tabulated by :func:`calibration` (the product's thresholds among them)."""


def calibration(rows: list[dict], res: dict[str, tuple], kind: str,
                cuts: tuple[float, ...] | None = None) -> list[dict[str, float | int | None]]:
    """How well each confidence cut separates right from wrong answers (``kind``: "tempo" or "key").

    For every cut: the share of labelled files whose confidence is below it,
    the share of right answers (Acc1, or an exact key) below and above it,
    and how many of all the wrong answers fall below it. This is the table
    ``LOW_TEMPO_CONFIDENCE`` and ``LOW_KEY_CONFIDENCE``
    (``lofi_pipeline.core.confidence``) are chosen from, on the dev split. A
    missing confidence counts as 0.
    """
    _, right, conf = _graded(rows, res, kind)
    c = np.asarray([x if x is not None else 0.0 for x in conf], float)
    ok = np.asarray(right, bool)
    out = []
    for cut in cuts or CALIBRATION_CUTS[kind]:
        below = c < cut
        out.append({
            "cut": cut, "share below": float(below.mean()) if len(c) else None,
            "right below": float(ok[below].mean()) if below.any() else None,
            "right above": float(ok[~below].mean()) if (~below).any() else None,
            "errors below": int((~ok & below).sum()), "errors": int((~ok).sum()),
        })
    return out


def _share(x: float | None) -> str:
    return f"{x:.2f}" if x is not None else "   -"


def _print_calibration(rows: list[dict], res: dict[str, tuple]) -> dict[str, list]:
    from lofi_pipeline.core.confidence import LOW_KEY_CONFIDENCE, LOW_TEMPO_CONFIDENCE

    tables = {}
    for kind, threshold in (("tempo", LOW_TEMPO_CONFIDENCE), ("key", LOW_KEY_CONFIDENCE)):
        tables[kind] = table = calibration(rows, res, kind)
        if table[0]["share below"] is None:
            continue  # no labelled files of this kind in the split
        print(f"ours, {kind} confidence cuts ({table[0]['errors']} wrong answers; * the product's threshold):")
        for t in table:
            star = "*" if abs(t["cut"] - threshold) < 1e-9 else " "
            print(f"  {star} below {t['cut']:.2f}: {t['share below']:4.0%} of the files, right "
                  f"{_share(t['right below'])} (above: {_share(t['right above'])}), "
                  f"{t['errors below']} of the wrong answers")
    return tables


def _essentia_available() -> bool:
    try:
        import essentia  # noqa: F401
    except ImportError:
        return False
    return True


def _run(rows: list[dict], methods: list[str], block: int, corpus: Path = CORPUS
         ) -> tuple[dict[str, dict[str, tuple]], dict[str, float]]:
    """Each method's answers for every row's file in ``corpus``, and its wall seconds per file."""
    paths = [str(corpus / r["file"]) for r in rows]
    results: dict[str, dict[str, tuple]] = {m: {} for m in methods}
    wall = dict.fromkeys(methods, 0.0)
    ctx = multiprocessing.get_context("spawn")
    workers = {m: ProcessPoolExecutor(1, mp_context=ctx) for m in methods}
    try:
        for m in methods:  # warm-up: imports, numba compiles, Essentia's graph
            workers[m].submit(time_block, m, [paths[0]]).result()
        for lo in range(0, len(paths), block):
            chunk = paths[lo: lo + block]
            for m in methods:
                time.sleep(0.2)
                for p, (res, w) in zip(chunk, workers[m].submit(time_block, m, chunk).result()):
                    results[m][Path(p).name] = res
                    wall[m] += w
    finally:
        for pool in workers.values():
            pool.shutdown()
    return results, {m: wall[m] / len(paths) for m in methods}


def read_rows(labels: Path, split: str) -> list[dict]:
    """The rows of a labels CSV in ``split`` ("all": every row)."""
    with open(labels) as fh:
        return [r for r in csv.DictReader(fh) if split == "all" or r["split"] == split]


def _stored(path: Path) -> tuple[dict, dict[str, dict[str, tuple]], dict[str, float | None]]:
    """A ``--json`` file's header, answers (as tuples) and seconds per file, for ``--rescore``."""
    try:
        stored = json.loads(path.read_text())
        answers = {m: {f: tuple(a) for f, a in files.items()} for m, files in stored["answers"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        sys.exit(f"{path}: expected a results file written by analysis_real.py --json ({exc})")
    return stored, answers, {m: stored.get("figures", {}).get(m, {}).get("s/file") for m in answers}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=("dev", "test", "all"), default="test")
    ap.add_argument("--methods", default="ours,seed,essentia", help="comma-separated: ours, seed, essentia")
    ap.add_argument("--block", type=int, default=6)
    ap.add_argument("--show-errors", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--corpus", type=Path, default=CORPUS,
                    help="a corpus folder with its labels.csv (default: build.py's; "
                         "realmusic/holdout.py builds corpus/holdout)")
    ap.add_argument("--labels", type=Path, default=HERE / "realmusic" / "labels.csv",
                    help="the labels --rescore scores against (default: the corpus's copy in the repo; "
                         "realmusic/holdout_labels.csv for the holdout set)")
    ap.add_argument("--rescore", type=Path, metavar="RESULTS_JSON",
                    help="score the answers stored in a --json file again, against the labels kept in the "
                         "repo (no corpus and no analysis needed; its split and methods are used)")
    ap.add_argument("--resamples", type=int, default=2000,
                    help="bootstrap resamplings of the pieces (0: none)")
    args = ap.parse_args(argv)
    if args.rescore:
        stored, results, per_file = _stored(args.rescore)
        split, methods, machine_name = stored["split"], list(results), stored["machine"]
        rows = [r for r in read_rows(args.labels, split) if r["file"] in results[methods[0]]]
        if not rows:
            sys.exit(f"{args.labels}: none of the files answered in {args.rescore} (split {split})")
        analyzer = stored.get("analyzer_version")
        load = stored.get("load_average")
    else:
        labels = args.corpus / "labels.csv"
        if not labels.exists():
            sys.exit(f"no corpus at {args.corpus}: run python benchmarks/realmusic/build.py "
                     "(or realmusic/holdout.py) first")
        split = args.split
        rows = read_rows(labels, split)
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        if "essentia" in methods and not _essentia_available():
            print("Essentia is not installed (pip install essentia; AGPL-3, benchmark only): column skipped")
            methods.remove("essentia")
        results, per_file = _run(rows, methods, args.block, args.corpus)
        from analysis import machine
        from lofi_pipeline.core import audio

        machine_name, analyzer, load = machine(), audio.ANALYZER_VERSION, os.getloadavg()[0]
    figures = {m: score(rows, results[m]) for m in methods}
    for m in methods:
        figures[m]["s/file"] = per_file[m]

    first = figures[methods[0]]
    print(f"machine: {machine_name}; split {split}: {len(rows)} files, {first['n_tempo']} tempo-labelled, "
          f"{first['n_key']} key-labelled, {first['n_stretch']} stretched and {first['n_shift']} shifted copies")
    metrics = ["Acc1", "Acc2", "P-score", "key (MIREX)", "stretch consistency", "shift consistency",
               "tempo conf AUROC", "key conf AUROC", "stretch pair conf AUROC", "shift pair conf AUROC",
               "s/file"]
    print(f"{'metric':24s}" + "".join(f"{m:>10s}" for m in methods))
    for k in metrics:
        cells = [figures[m][k] for m in methods]
        print(f"{k:24s}" + "".join(f"{c:10.3f}" if c is not None else f"{'-':>10s}" for c in cells))
    if "ours" in methods:
        figures["ours"].update(confident_consistency(rows, results["ours"]))
        print("ours, pairs whose two readings are both confident: stretch "
              f"{figures['ours']['stretch consistency, both confident'] or 0:.3f} "
              f"({figures['ours']['n_stretch, both confident']} pairs), shift "
              f"{figures['ours']['shift consistency, both confident'] or 0:.3f} "
              f"({figures['ours']['n_shift, both confident']} pairs)")
        figures["ours"]["calibration"] = _print_calibration(rows, results["ours"])
    if "seed" in methods and "ours" in methods and per_file["seed"] and per_file["ours"]:
        speed_up = per_file["seed"] / per_file["ours"]
        print(f"speed-up vs the seed method: {speed_up:.2f}x less wall time per file")
    boot = bootstrap(rows, results, args.resamples) if args.resamples > 0 else None
    if boot:
        _print_bootstrap(boot, figures)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine_name, "split": split,
                                         "analyzer_version": analyzer, "load_average": load,
                                         "figures": figures, "bootstrap": boot,
                                         "answers": {m: {f: list(r) for f, r in sorted(results[m].items())}
                                                     for m in methods}}, indent=1) + "\n")
    if args.show_errors:
        for m in methods[:1]:
            for r in rows:
                res = results[m][r["file"]]
                bad_t = _labelled(r, "tempo") and not tempo_hits(res[0], float(r["bpm"]))[0]
                bad_k = _labelled(r, "key") and not same_key(res[1], r["key"])
                if bad_t or bad_k:
                    print(f"  {m} miss {r['file']}: ref {r['bpm'] or '-'} {r['key'] or '-'} -> "
                          f"{res[0]} ({res[2]}) {res[1]} ({res[3]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
