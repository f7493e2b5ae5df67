"""Benchmark: a long mix render (ours) against the seed system's method.

Ours: ``lofi_pipeline.core.render`` — background encoded once as a 10 s
segment and looped by stream copy; songs decoded one by one and mixed as a
continuous PCM stream into one AAC encoder.

Seed: one ffmpeg command that re-encodes the still image with libx264 for the
whole length and joins every song with ONE ``acrossfade`` chain, boosted by a
fixed ``volume=1.75`` (what the seed system did). It is run on a shorter mix
(``--seed-minutes``) because it is slow; both are compared per minute of output.

Songs are synthesized here with numpy (chords, bass, kick/snare/hat; distinct
keys, tempi and levels) and encoded to MP3 once, then reused from ``--workdir``.

Usage::

    .venv/bin/python benchmarks/render.py --hours 3 --seed-minutes 5

Each render runs in a child Python process so its peak memory (the process
itself and, via ``RUSAGE_CHILDREN``, its largest ffmpeg child) is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from machine import describe  # benchmarks/machine.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SR = 44100


def synth_song(seed: int, seconds: float) -> np.ndarray:
    """A simple lo-fi-ish loop: 4-chord progression, bass, drums; stereo float32."""
    rng = np.random.default_rng(seed)
    bpm = float(rng.uniform(68, 92))
    beat = 60.0 / bpm
    n = int(seconds * SR)
    t = np.arange(n) / SR
    root = 48 + int(rng.integers(0, 12))  # MIDI
    progression = [[0, 4, 7, 11], [9, 12, 16, 19], [5, 9, 12, 16], [7, 11, 14, 17]]
    bar = 4 * beat
    chord_idx = (t // bar).astype(int) % 4
    keys = np.zeros(n)
    for ci, chord in enumerate(progression):
        mask = chord_idx == ci
        tt = t[mask]
        for note in chord:
            f = 440 * 2 ** ((root + note - 69) / 12)
            keys[mask] += np.sin(2 * np.pi * f * tt) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.25 * tt))
    keys *= 0.08
    bass_f = 440 * 2 ** ((root - 12 + np.array([c[0] for c in progression])[chord_idx] - 69) / 12)
    bass = 0.25 * np.sin(2 * np.pi * np.cumsum(bass_f) / SR)
    ph = t % beat
    kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-ph * 30)) * ph) * np.exp(-ph * 9)
    ph2 = (t + beat) % (2 * beat)
    snare = rng.standard_normal(n) * np.exp(-ph2 * 25) * 0.25
    ph3 = t % (beat / 2)
    hat = np.diff(rng.standard_normal(n + 1)) * np.exp(-ph3 * 80) * 0.06
    y = keys + bass + 0.7 * kick + snare + hat + rng.standard_normal(n) * 0.004
    y /= np.max(np.abs(y))
    y *= float(rng.uniform(0.25, 0.95))  # songs at different levels, like real exports
    right = np.roll(y, int(0.004 * SR)) * 0.95 + 0.05 * y
    return np.stack([y, right], axis=1).astype(np.float32)


def make_songs(workdir: Path, *, count: int, seconds: float, ffmpeg_exe: str) -> list[dict]:
    import soundfile as sf

    songs_dir = workdir / "songs"
    songs_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        mp3 = songs_dir / f"A_{i // 5 + 1}_{i + 1}_99a.mp3"
        if not mp3.is_file():
            wav = mp3.with_suffix(".wav")
            sf.write(wav, synth_song(1000 + i, seconds), SR)
            subprocess.run([ffmpeg_exe, "-v", "error", "-y", "-i", str(wav), "-c:a", "libmp3lame", "-b:a", "192k",
                            str(mp3)], check=True)
            wav.unlink()
        out.append({"path": str(mp3), "arc": i // 5 + 1, "order": i + 1})
    return out


def make_background(workdir: Path, *, ffmpeg_exe: str) -> Path:
    img = workdir / "background.png"
    if not img.is_file():
        subprocess.run([ffmpeg_exe, "-v", "error", "-y", "-f", "lavfi", "-i",
                        "gradients=s=1920x1080:c0=0x2b1e3f:c1=0xd1768f:seed=7", "-frames:v", "1", str(img)],
                       check=True)
    return img


def _selected(songs: list[dict], ffmpeg_exe: str):
    from lofi_pipeline.core.models import SelectedSong
    from lofi_pipeline.core.probe import probe_media

    sel = []
    for s in songs:
        dur = probe_media(s["path"], ffmpeg_exe=ffmpeg_exe).duration_seconds
        sel.append(SelectedSong(order=s["order"], arc_number=s["arc"], arc_name=f"Arc {s['arc']}",
                                song_id=Path(s["path"]).stem, path=s["path"], filename=Path(s["path"]).name,
                                duration_seconds=dur))
    return sel


def worker_ours(args: argparse.Namespace) -> dict:
    from lofi_pipeline.core.ffmpeg import find_ffmpeg
    from lofi_pipeline.core.probe import measure_loudness_ffmpeg
    from lofi_pipeline.core.render import build_render_plan, render_mix

    ff = find_ffmpeg()
    songs = json.loads(Path(args.songs_json).read_text())
    t0 = time.monotonic()
    sel = _selected(songs, ff)
    # Loudness is known from analysis in real use; measure it here outside the timed render.
    for s in sel:
        s.loudness_lufs, _ = measure_loudness_ffmpeg(s.path, ffmpeg_exe=ff)
    prep = time.monotonic() - t0
    plan = build_render_plan(sel, target_seconds=args.seconds, crossfade_seconds=5.0)
    t0 = time.monotonic()
    report = render_mix(plan, output_dir=Path(args.out), background=Path(args.background), ffmpeg_exe=ff,
                        measure_output=True)
    wall = time.monotonic() - t0
    return {"method": "ours", "output_seconds": plan.total_seconds, "wall_seconds": wall,
            "song_loudness_prep_seconds": prep, "entries": len(plan.entries),
            "integrated_lufs": report.integrated_lufs, "true_peak_db": report.true_peak_db,
            "duration_seconds": report.duration_seconds, "timings": report.timings,
            "max_open_decoders": report.max_open_decoders}


def worker_seed(args: argparse.Namespace) -> dict:
    """The seed system's render: full-length still-image encode + one acrossfade chain."""
    from lofi_pipeline.core.ffmpeg import find_ffmpeg

    ff = find_ffmpeg()
    songs = json.loads(Path(args.songs_json).read_text())
    sel = _selected(songs, ff)
    # enough songs in order (repeating) to cover the length
    chosen, total, i = [], 0.0, 0
    while total < args.seconds + 5:
        s = sel[i % len(sel)]
        chosen.append(s)
        total += s.duration_seconds - (5.0 if len(chosen) > 1 else 0.0)
        i += 1
    cmd = [ff, "-hide_banner", "-v", "error", "-y", "-loop", "1", "-framerate", "30", "-i", args.background]
    for s in chosen:
        cmd += ["-i", s.path]
    chain, last = [], "[1:a]"
    for k in range(2, len(chosen) + 1):
        label = f"[x{k}]"
        chain.append(f"{last}[{k}:a]acrossfade=d=5:c1=tri:c2=tri{label}")
        last = label
    chain.append(f"{last}volume=1.75[aout]")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    cmd += ["-filter_complex", ";".join(chain), "-map", "0:v", "-map", "[aout]", "-vf",
            "scale=1920:1080,format=yuv420p", "-c:v", "libx264", "-tune", "stillimage", "-c:a", "aac",
            "-b:a", "192k", "-t", f"{args.seconds:.3f}", str(Path(args.out) / "seed.mp4")]
    t0 = time.monotonic()
    subprocess.run(cmd, check=True)
    wall = time.monotonic() - t0
    return {"method": "seed", "output_seconds": args.seconds, "wall_seconds": wall, "entries": len(chosen),
            "command": shlex.join(cmd)[:400] + " …"}


def run_worker(kind: str, *, seconds: float, songs_json: Path, background: Path, out: Path) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--_worker", kind, "--_seconds", str(seconds),
                           "--_songs", str(songs_json), "--_background", str(background), "--_out", str(out)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} render failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> str:
    return describe()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=3.0, help="length of our render, in hours")
    ap.add_argument("--seed-minutes", type=float, default=5.0, help="length of the seed-method render (0 = skip)")
    ap.add_argument("--songs", type=int, default=20, help="distinct synthesized songs")
    ap.add_argument("--song-seconds", type=float, default=180.0, help="length of each song")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/lofi_render_bench"))
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--_worker"), ap.add_argument("--_seconds", type=float), ap.add_argument("--_songs")
    ap.add_argument("--_background"), ap.add_argument("--_out"), ap.add_argument("--_count", type=int)
    args = ap.parse_args()
    args.workdir = args.workdir.resolve()

    if args._worker == "synth":
        from lofi_pipeline.core.ffmpeg import find_ffmpeg

        songs = make_songs(Path(args._out), count=args._count, seconds=args._seconds, ffmpeg_exe=find_ffmpeg())
        Path(args._songs).write_text(json.dumps(songs))
        return
    if args._worker:
        ns = argparse.Namespace(seconds=args._seconds, songs_json=args._songs, background=args._background,
                                out=args._out)
        result = worker_ours(ns) if args._worker == "ours" else worker_seed(ns)
        result["peak_rss_mb_self"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result["peak_rss_mb_largest_child"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(json.dumps(result))
        return

    from lofi_pipeline.core.ffmpeg import find_ffmpeg

    ff = find_ffmpeg()
    args.workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    songs_json = args.workdir / "songs.json"
    # Synthesis runs in a child: Linux carries a process's peak RSS across
    # fork+exec, so big numpy arrays here would inflate the workers' figures.
    subprocess.run([sys.executable, __file__, "--_worker", "synth", "--_songs", str(songs_json),
                    "--_count", str(args.songs), "--_seconds", str(args.song_seconds),
                    "--_out", str(args.workdir)], check=True)
    background = make_background(args.workdir, ffmpeg_exe=ff)
    print(f"songs ready in {time.monotonic() - t0:.1f} s ({args.songs} x {args.song_seconds:g} s MP3)")
    print(f"machine: {machine()}")

    results = []
    ours = run_worker("ours", seconds=args.hours * 3600, songs_json=songs_json, background=background,
                      out=args.workdir / "ours")
    results.append(ours)
    if args.seed_minutes > 0:
        results.append(run_worker("seed", seconds=args.seed_minutes * 60, songs_json=songs_json,
                                  background=background, out=args.workdir / "seed"))
    print(f"\n{'method':<6} {'output':>9} {'wall s':>8} {'x realtime':>10} {'s per out-min':>13} "
          f"{'peak MB py':>10} {'peak MB ffmpeg':>14}")
    for r in results:
        r["realtime_factor"] = r["output_seconds"] / r["wall_seconds"]
        r["wall_seconds_per_output_minute"] = r["wall_seconds"] / (r["output_seconds"] / 60)
        print(f"{r['method']:<6} {r['output_seconds'] / 60:>7.1f} m {r['wall_seconds']:>8.1f} "
              f"{r['realtime_factor']:>10.1f} {r['wall_seconds_per_output_minute']:>13.2f} "
              f"{r['peak_rss_mb_self']:>10.0f} {r['peak_rss_mb_largest_child']:>14.0f}")
    if len(results) == 2:
        ratio = results[1]["wall_seconds_per_output_minute"] / results[0]["wall_seconds_per_output_minute"]
        print(f"\nseed / ours, wall time per minute of output: {ratio:.1f}x")
        results.append({"seed_over_ours_per_output_minute": ratio})
    print(f"ours: {ours['integrated_lufs']} LUFS, {ours['true_peak_db']} dBTP, "
          f"{ours['entries']} entries, at most {ours['max_open_decoders']} decoders open; "
          f"timings {ours['timings']}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
