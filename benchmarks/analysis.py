"""Tempo/key benchmark: our analyzer against the seed system's method.

A labelled corpus is synthesized deterministically (``lofi_pipeline.core.synth``):
tempos spread over 60-170 BPM, all 24 keys, with and without drums, swing,
16th hats, ghost notes, tape noise/crackle and low-pass texture, encoded as
44.1 kHz stereo mp3 in a temporary folder. Both methods analyse the same files,
one song at a time, each in its own worker process (spawned once and warmed
up), taking turns in blocks of a few songs with a short pause between turns:
a change in machine load hits both alike, and neither method's idle thread
pools spin while the other is timed. The script prints their figures side by side:

* Acc1: BPM within +-4 % of the label; Acc2: also accepts x2, x1/2, x3, x1/3.
* MIREX weighted key score: same key 1.0, fifth 0.5, relative 0.3, parallel 0.2.
* Seconds of analysis per minute of audio (decoding included for both), as
  wall time per song and as CPU time of the worker (all its threads) plus its
  children. Ours measures loudness in a second thread while it estimates tempo
  and key, and the seed method's libraries use several threads too, so wall
  time can be below CPU time for both.

The seed method: ``librosa.load(sr=22050)``, ``librosa.beat.beat_track`` with
defaults, key = argmax over 24 rotations of a 0/1 major/minor triad template
dotted with the mean ``chroma_stft``.

Usage::

    python benchmarks/analysis.py               # default corpus: 72 songs of 2-4 minutes, like Suno's
    python benchmarks/analysis.py --seconds 45  # 72 short clips (the fixed per-song costs weigh more)
    python benchmarks/analysis.py --n 24 --pool 2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lofi_pipeline.core import audio, keys
from lofi_pipeline.core.synth import (
    PITCH_CLASSES,
    synthesize_song,
    write_audio,
)
from machine import describe  # noqa: E402  (benchmarks/machine.py)


@dataclass
class Item:
    index: int
    bpm: float
    key: str
    drums: bool
    swing: float
    hats16: bool
    ghost_notes: bool
    noise_db: float | None
    lowpass_hz: float | None
    seconds: float = 180.0
    path: str = ""


def build_specs(n: int, seed: int = 2024, seconds: float | None = None) -> list[Item]:
    """Deterministic labels covering tempos 60-170, all 24 keys and every texture.

    Song lengths spread over 2-4 minutes (Suno's usual output) unless
    ``seconds`` fixes them.
    """
    rng = np.random.default_rng(seed)
    keys = [f"{pc} {mode}" for mode in ("major", "minor") for pc in PITCH_CLASSES]
    order = rng.permutation(max(n, 24))
    golden = 0.6180339887
    items = []
    for i in range(n):
        # Low-discrepancy tempo spread so every region of 60-170 is covered.
        bpm = round(60.0 + 110.0 * ((0.37 + i * golden) % 1.0), 1)
        items.append(Item(
            index=i,
            bpm=bpm,
            key=keys[order[i] % 24],
            drums=bool(rng.random() < 0.8),
            swing=float(rng.uniform(0.2, 0.6)) if rng.random() < 0.4 else 0.0,
            hats16=bool(rng.random() < 0.3),
            ghost_notes=bool(rng.random() < 0.4),
            noise_db=float(rng.uniform(-42, -28)) if rng.random() < 0.5 else None,
            lowpass_hz=float(rng.uniform(2500, 6000)) if rng.random() < 0.4 else None,
            seconds=seconds or round(120.0 + 120.0 * ((0.11 + i * golden * golden) % 1.0)),
        ))
    return items


def render_item(args: tuple[Item, str]) -> str:
    item, folder = args
    y = synthesize_song(bpm=item.bpm, key=item.key, seconds=item.seconds, sr=22050, seed=1000 + item.index,
                        drums=item.drums, swing=item.swing, hats16=item.hats16,
                        ghost_notes=item.ghost_notes, noise_db=item.noise_db, lowpass_hz=item.lowpass_hz)
    import soxr

    y44 = soxr.resample(y, 22050, 44100).astype(np.float32)
    # A little stereo width (a 7 ms delayed, quieter copy on the right), like a real mix.
    right = 0.85 * y44 + 0.15 * np.concatenate([np.zeros(300, np.float32), y44[:-300]])
    stereo = np.clip(np.stack([y44, right], axis=1), -1, 1)
    path = Path(folder) / f"song_{item.index:03d}.mp3"
    write_audio(stereo, 44100, path, bitrate="160k")
    return str(path)


# ---------------------------------------------------------------- seed method


_TRIAD_MAJOR = np.zeros(12)
_TRIAD_MAJOR[[0, 4, 7]] = 1
_TRIAD_MINOR = np.zeros(12)
_TRIAD_MINOR[[0, 3, 7]] = 1


def seed_method(path: str) -> tuple[float | None, str | None]:
    import librosa

    y, sr = librosa.load(path, sr=22050)
    tempo, _ = librosa.beat.beat_track(y=y, sr=sr)
    bpm = float(np.atleast_1d(tempo)[0])
    chroma = librosa.feature.chroma_stft(y=y, sr=sr).mean(axis=1)
    best, best_score = None, -np.inf
    for mode, tmpl in (("major", _TRIAD_MAJOR), ("minor", _TRIAD_MINOR)):
        for tonic in range(12):
            score = float(chroma @ np.roll(tmpl, tonic))
            if score > best_score:
                best, best_score = f"{PITCH_CLASSES[tonic]} {mode}", score
    return (bpm if bpm > 0 else None), best


# ---------------------------------------------------------------- scoring


def tempo_hits(est: float | None, ref: float) -> tuple[bool, bool]:
    if est is None:
        return False, False
    acc1 = abs(est - ref) <= 0.04 * ref
    acc2 = any(abs(est - f * ref) <= 0.04 * f * ref for f in (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0))
    return acc1, acc2


_MIR_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def mir_key(key: str | None) -> str:
    """A key in any spelling as mir_eval writes it (``"Eb major"``), ``"X"`` when unknown."""
    parsed = keys.parse_key(key) if key else None
    return "X" if parsed is None else f"{_MIR_NAMES[parsed.tonic]} {parsed.mode}"


def key_score(est: str | None, ref: str) -> float:
    """MIREX weighted key score by ``mir_eval`` (same 1.0, fifth 0.5, relative 0.3, parallel 0.2)."""
    import mir_eval

    e = mir_key(est)
    return 0.0 if e == "X" else float(mir_eval.key.weighted_score(mir_key(ref), e))


def cpu_seconds() -> float:
    """User + system CPU of this process (all threads) and its waited-for children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _ours(path: str) -> tuple[float | None, str | None, float, float]:
    f = audio.analyze_file(path)
    return f.bpm, f.key, f.bpm_confidence, f.key_confidence


def _seed(path: str) -> tuple[float | None, str | None, None, None]:
    bpm, key = seed_method(path)
    return bpm, key, None, None


_METHODS = {"ours": _ours, "seed": _seed}


def time_block(method: str, paths: list[str]) -> list[tuple[tuple, float, float]]:
    """In a worker process: run one method on each path; (result, wall s, CPU s) per song."""
    fn = _METHODS[method]
    out = []
    for p in paths:
        t0, c0 = time.perf_counter(), cpu_seconds()
        res = fn(p)
        out.append((res, time.perf_counter() - t0, cpu_seconds() - c0))
    return out


def machine() -> str:
    return describe()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=72, help="corpus size (default 72: every key 3 times)")
    ap.add_argument("--seconds", type=float, default=None,
                    help="length of every song in seconds (default: spread over 120-240 s)")
    ap.add_argument("--workers", type=int, default=os.cpu_count(), help="processes for synthesizing the corpus")
    ap.add_argument("--pool", type=int, default=0, help="also time analyze_files with this many workers")
    ap.add_argument("--skip-seed", action="store_true", help="only run our analyzer")
    ap.add_argument("--block", type=int, default=6, help="songs per turn when the methods take turns")
    ap.add_argument("--show-errors", action="store_true", help="list every miss")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)

    specs = build_specs(args.n, seconds=args.seconds)
    with tempfile.TemporaryDirectory(prefix="lofi_bench_") as folder:
        t0 = time.perf_counter()
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            paths = list(pool.map(render_item, [(s, folder) for s in specs]))
        for s, p in zip(specs, paths):
            s.path = p
        lengths = [s.seconds for s in specs]
        print(f"corpus: {len(specs)} songs of {min(lengths):.0f}-{max(lengths):.0f} s "
              f"({sum(lengths) / 60:.0f} min of 160 kbit/s mp3), synthesized in "
              f"{time.perf_counter() - t0:.1f} s")
        minutes = sum(lengths) / 60.0
        n_songs = len(specs)

        methods = ["ours"] if args.skip_seed else ["ours", "seed"]
        results: dict[str, list] = {m: [] for m in methods}
        wall: dict[str, float] = dict.fromkeys(methods, 0.0)
        cpu: dict[str, float] = dict.fromkeys(methods, 0.0)
        ctx = multiprocessing.get_context("spawn")
        workers = {m: ProcessPoolExecutor(1, mp_context=ctx) for m in methods}
        try:
            for m in methods:  # warm-up: imports, caches, numba's first compile of beat_track
                workers[m].submit(time_block, m, [specs[0].path]).result()
            load_before = os.getloadavg()
            for lo in range(0, len(specs), args.block):
                block = [s.path for s in specs[lo: lo + args.block]]
                for m in methods:
                    time.sleep(0.3)  # let the other worker's idle threads go to sleep
                    for res, w, c in workers[m].submit(time_block, m, block).result():
                        results[m].append(res)
                        wall[m] += w
                        cpu[m] += c
            load_after = os.getloadavg()
        finally:
            for pool in workers.values():
                pool.shutdown()
        ours, seed = results["ours"], results.get("seed", [])
        t_pool = None
        if args.pool:
            t0 = time.perf_counter()
            audio.analyze_files([s.path for s in specs], workers=args.pool)
            t_pool = time.perf_counter() - t0

    def figures(results):
        a1 = a2 = ks = 0.0
        for s, r in zip(specs, results):
            h1, h2 = tempo_hits(r[0], s.bpm)
            a1 += h1
            a2 += h2
            ks += key_score(r[1], s.key)
        n = len(specs)
        return a1 / n, a2 / n, ks / n

    o = figures(ours)
    s_ = figures(seed) if seed else (None, None, None)
    rows = [("Acc1 (+-4 %)", o[0], s_[0]), ("Acc2 (x2, x1/2, x3, x1/3)", o[1], s_[1]),
            ("key, MIREX weighted", o[2], s_[2]),
            ("wall s per song", wall["ours"] / n_songs, wall["seed"] / n_songs if seed else None),
            ("wall s per minute of audio", wall["ours"] / minutes, wall["seed"] / minutes if seed else None),
            ("CPU s per minute of audio", cpu["ours"] / minutes, cpu["seed"] / minutes if seed else None)]
    print(f"machine: {machine()}")
    print(f"load average (1 min) before/after the timed loop: {load_before[0]:.1f} / {load_after[0]:.1f}")
    print(f"{'metric':28s} {'ours':>8s} {'seed':>8s}")
    for name, a, b in rows:
        print(f"{name:28s} {a:8.3f} {(f'{b:8.3f}' if b is not None else '       -')}")
    if t_pool is not None:
        print(f"{'pool of ' + str(args.pool) + ', s per minute':28s} {t_pool / minutes:8.3f}")
    if seed:
        print(f"speed-up (full analysis: tempo, key, loudness, true peak, hash...): "
              f"{wall['seed'] / wall['ours']:.2f}x less wall time per song, {cpu['seed'] / cpu['ours']:.2f}x less CPU")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "machine": machine(), "analyzer_version": audio.ANALYZER_VERSION,
            "corpus": {"songs": n_songs, "seconds_min": min(lengths), "seconds_max": max(lengths),
                       "minutes_total": round(minutes, 1), "format": "mp3 160k, 44.1 kHz stereo"},
            "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
            "figures": {name: {"ours": round(a, 4), "seed": (round(b, 4) if b is not None else None)}
                        for name, a, b in rows},
            "pool": {"workers": args.pool, "s_per_minute": round(t_pool / minutes, 4)} if t_pool else None,
        }, indent=2) + "\n")
    if args.show_errors:
        for s, r in zip(specs, ours):
            h1, _ = tempo_hits(r[0], s.bpm)
            k = key_score(r[1], s.key)
            if not h1 or k < 1:
                print(f"  miss #{s.index}: ref {s.bpm} {s.key} drums={s.drums} swing={s.swing:.2f} "
                      f"hats16={s.hats16} ghost={s.ghost_notes} noise={s.noise_db} lp={s.lowpass_hz} "
                      f"-> {r[0]} ({r[2]}) {r[1]} ({r[3]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
