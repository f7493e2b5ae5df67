"""Benchmark: whole-track reuse query latency and prompt encoding throughput.

A track of 15 prompts (4 arcs, page-style lo-fi prompts) is queried against
synthetic libraries of 1k, 10k and 100k songs with
``lofi_pipeline.core.matching.query_track`` — the same call the Dagster asset
makes: exact cosine over the whole matrix, every score component, top-k per
prompt. The real all-MiniLM-L6-v2 model is loaded and encodes the prompts.

Song vectors are synthetic but shaped like a real library: each is a real
prompt embedding plus noise, renormalised, so a realistic share of songs clears
``min_similarity`` (random vectors would all sit near 0 and flatter the timing).
Song metadata (arc, BPM, key, usage) is random.

Reported: p50/p95/min wall time of the query alone (prompt vectors given; the
minimum is the best guide to an idle machine's latency when other jobs share
it), its p50 CPU time (all threads), p50
of the prompt encoding (15 prompts), and encoding throughput in prompts/second.

Usage::

    .venv/bin/python benchmarks/query.py              # 1k, 10k, 100k songs
    .venv/bin/python benchmarks/query.py --sizes 1000 10000 --repeats 20
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lofi_pipeline.core.embedding import Embedder  # noqa: E402
from lofi_pipeline.core.matching import prompt_query_texts, query_track  # noqa: E402
from lofi_pipeline.core.models import Arc, Prompt, TrackPlan  # noqa: E402
from machine import describe  # noqa: E402  (benchmarks/machine.py)

INSTRUMENTS = ["warm rhodes chords", "soft analog pads", "dusty piano", "slow synth arpeggio",
               "deep sub bass",
               "muted boom bap drums", "airy vaporwave chords", "gentle guitar licks", "retro synth lead",
               "808 kick and soft snare"]
TEXTURES = ["vinyl crackle", "tape hiss", "soft rain ambience", "distant city hum", "static haze",
            "wide reverb field", "CRT hum", "light tape wow", "snow crackle", "ocean waves"]
MOODS = ["late-night calm", "nostalgic drift", "dreamy haze", "melancholic undertone", "focused flow",
         "cozy warmth", "introspective tone", "sunrise optimism", "winding-down mood", "hypnotic pulse"]
ARC_NAMES = [("Rain Ambience", (45, 55)), ("Steady Focus Flow", (60, 70)), ("Midnight Clarity", (70, 78)),
             ("Vaporwave Fadeout", (45, 60))]
KEYS = [f"{n}{m}" for n in range(1, 13) for m in "AB"]


def prompt_text(rng: np.random.Generator) -> str:
    return ", ".join([rng.choice(INSTRUMENTS), rng.choice(TEXTURES), rng.choice(MOODS)])


def make_track(rng: np.random.Generator, n_prompts: int = 15) -> TrackPlan:
    arcs, order = [], 0
    per_arc = np.array_split(np.arange(n_prompts), len(ARC_NAMES))
    for number, ((name, bpm), chunk) in enumerate(zip(ARC_NAMES, per_arc), start=1):
        prompts = []
        for _ in chunk:
            order += 1
            core = prompt_text(rng)
            text = core + " — vaporwave synthwave lofi"
            prompts.append(Prompt(number=order, order=order, text=text, core_text=core))
        arcs.append(Arc(number=number, name=name, bpm_range=bpm, prompts=prompts))
    return TrackPlan(source="benchmark", track_number=999, arcs=arcs, duration_minutes=180)


def make_library(n: int, base: np.ndarray, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    pick = rng.integers(0, len(base), n)
    noise = rng.normal(scale=0.035, size=(n, base.shape[1])).astype(np.float32)
    vectors = base[pick] + noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    songs = pd.DataFrame({
        "song_id": [f"{i:016x}" for i in range(n)],
        "filename": [f"A_{a}_{p}_{t}a.mp3" for a, p, t in zip(rng.integers(1, 5, n), rng.integers(1, 16, n),
                                                              rng.integers(1, 400, n))],
        "arc": rng.integers(1, 5, n),
        "source_track": rng.integers(1, 400, n),
        "bpm": rng.uniform(45, 120, n).round(1),
        "key": None,
        "camelot": rng.choice(KEYS, n),
        "duration_seconds": rng.uniform(120, 240, n).round(1),
        "times_used": rng.integers(0, 4, n),
        "recently_used": rng.random(n) < 0.1,
    })
    return songs, vectors.astype(np.float32)


def percentile_ms(samples: list[float], q: float) -> float:
    return float(np.percentile(np.array(samples) * 1000.0, q))


def machine() -> str:
    return f"{describe()}, numpy {np.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=30, help="timed queries per size")
    parser.add_argument("--prompts", type=int, default=15)
    parser.add_argument("--encode-n", type=int, default=512, help="texts for the throughput run")
    args = parser.parse_args()

    rng = np.random.default_rng(6)
    embedder = Embedder()
    t0 = time.perf_counter()
    embedder.encode(["warm up"])
    load_s = time.perf_counter() - t0

    plan = make_track(rng, args.prompts)
    texts = prompt_query_texts(plan)
    encode_times = []
    for _ in range(10):
        t = time.perf_counter()
        prompt_vectors = embedder.encode(texts)
        encode_times.append(time.perf_counter() - t)

    corpus = [prompt_text(rng) for _ in range(args.encode_n)]
    t = time.perf_counter()
    embedder.encode(corpus, batch_size=64)
    throughput = args.encode_n / (time.perf_counter() - t)

    # 400 realistic prompt embeddings seed the synthetic library.
    base = embedder.encode([prompt_text(rng) for _ in range(400)])

    print(f"machine: {machine()}")
    print(f"model load (import + weights): {load_s:.1f} s")
    print(f"prompt encoding ({len(texts)} prompts): p50 {percentile_ms(encode_times, 50):.1f} ms")
    print(f"encoding throughput (batch 64): {throughput:.0f} prompts/s")
    print()
    print(f"load average before the runs: {os.getloadavg()[0]:.1f} (other work on the machine inflates "
          "wall times)")
    print()
    print("| songs | query p50 (ms) | query p95 (ms) | query min (ms) | query CPU p50 (ms) "
          "| with encoding p50 (ms) | candidates/prompt |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        songs, song_vectors = make_library(n, base, rng)
        query_track(plan, prompt_vectors, songs, song_vectors)  # warm caches
        times, cpu = [], []
        for _ in range(args.repeats):
            t, c = time.perf_counter(), time.process_time()
            matches = query_track(plan, prompt_vectors, songs, song_vectors)
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        sims = prompt_vectors @ song_vectors.T
        above = float((sims >= 0.6).sum(axis=1).mean())
        with_enc = percentile_ms(times, 50) + percentile_ms(encode_times, 50)
        print(f"| {n:,} | {percentile_ms(times, 50):.1f} | {percentile_ms(times, 95):.1f} "
              f"| {percentile_ms(times, 0):.1f} | {percentile_ms(cpu, 50):.1f} | {with_enc:.1f} "
              f"| {above:,.0f} (top-5 kept: {len(matches)} rows) |")


if __name__ == "__main__":
    main()
