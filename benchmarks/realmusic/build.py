"""Build the real-music tempo/key corpus from packaged music nobody on the team wrote.

Sources (all installed from package registries, none committed):

* **Scores** (``music21`` on PyPI, its bundled corpus: Bach chorales, Beethoven /
  Mozart / Haydn / Schumann ... MusicXML). Each score is written to MIDI with one
  tempo meta event at a BPM this script draws (deterministically, from the file
  name) and General-MIDI programs it assigns, then rendered with FluidSynth and
  the FluidR3 GM soundfont (Debian ``fluidsynth``, ``fluid-soundfont-gm``).
* **Game MIDI** (Debian ``openttd-openmsx``, ``planetblupi-music-midi``):
  rendered the same way, labels from their own meta events.
* **Recordings** (Debian ``frozen-bubble-data`` ogg music, ``pingus-data``
  tracker modules decoded by ffmpeg's libopenmpt, ``hyperrogue-music`` and
  ``drascula-music`` ogg soundtracks, ``asc-music`` mp3s, ``warzone2100-music``
  opus albums, ``singularity-music`` oggs and the oggs inside
  ``nexuiz-music``'s ``music.pk3``): no labels; used for the stretch/shift
  consistency figures.

Every labelled piece is rendered **clean** and with a **lo-fi treatment**
(4 kHz low-pass, soft tape saturation, hiss at -34 dB, vinyl crackle, 0.5 Hz
wow of +-0.15 %). Every recording, and every game-MIDI render, gets four
variants with sox: ``tempo 0.9``, ``tempo 1.12`` (time stretch, pitch kept),
``pitch 200`` and ``pitch -300`` (cents, tempo kept).

Label rules
-----------
Tempo (quarter notes per minute) is labelled only when it is constant:

* scores: the tempo is ours (one meta event), so it is exact; only x/4 time
  signatures (2/4, 3/4, 4/4, 5/4, 6/4: the quarter is the beat) are used;
* game MIDI: exactly one distinct ``set_tempo`` value in the file, a simple
  meter (x/4, or no time signature), and at least 80 % of the note onsets on
  the sixteenth-note grid of that tempo (a file played in freely, whose
  120-BPM header is a sequencer default, fails this).

Key (tonic + major/minor) is labelled only when

* the piece has one key signature throughout (a change = no key label);
* a MIDI ``C major`` key signature is dropped: it is what sequencers write
  when nobody set a key;
* scores: the lowest note of the final chord is the tonic of the signature's
  major key (-> major) or of its relative minor (-> minor); anything else
  (modal endings, Phrygian half cadences) gets no key label;
* game MIDI: the signature's own mode (``Cm`` -> C minor);
* the notes fit: at least 85 % of the note time (drum channel excluded) lies
  in the key's scale (natural minor plus raised 6th and 7th for minor).

Split: a piece's **group** is its source file name; ``sha1(group)`` decides
dev (first hex digit 0-7) or test (8-f). All variants of a piece share its
split. Parameters are chosen on dev only.

Output: ``benchmarks/realmusic/corpus/`` (git-ignored) with the audio and
``labels.csv``; a copy of the labels is kept at ``benchmarks/realmusic/labels.csv``.

Usage::

    python benchmarks/realmusic/build.py             # ~300 files, a few minutes on 2 cores
    python benchmarks/realmusic/build.py --scores 40 --seconds 45
    python benchmarks/realmusic/build.py --only new-recordings   # add recordings not built yet
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

CORPUS = HERE / "corpus"
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
GAME_MIDI_DIRS = (Path("/usr/share/games/openttd/baseset/openmsx"), Path("/usr/share/planetblupi/music"))
RECORDINGS = (sorted(Path("/usr/share/games/frozen-bubble/snd").glob("*zik*.ogg"))
              + sorted(Path("/usr/share/games/pingus/data/music").glob("*.it"))
              + sorted(Path("/usr/share/games/pingus/data/music").glob("*.s3m"))
              + sorted(Path("/usr/share/hyperrogue/music").glob("*.ogg"))
              + sorted(Path("/usr/share/scummvm/drascula/audio").glob("*.ogg"))
              + sorted(Path("/usr/share/games/asc/music").glob("*.mp3"))
              + sorted(Path("/usr/share/games/warzone2100/music/albums").glob("*/*.opus"))
              + sorted(Path("/usr/share/games/singularity/music").rglob("*.ogg")))
NEXUIZ_PK3 = Path("/usr/share/games/nexuiz/data/music.pk3")
"""A zip archive of ogg tracks (``nexuiz-music``): unpacked into ``corpus/_src`` before decoding."""
SR = 44100
PITCHES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
# Major-key tonic (pitch class) for each number of sharps (negative = flats).
_SIG_TONIC = {n: (7 * n) % 12 for n in range(-7, 8)}
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 9, 10, 11)  # natural + raised 6th and 7th
STRETCHES = (0.9, 1.12)
SHIFTS = (2, -3)
_PROGRAMS = (0, 4, 48, 19, 40, 24, 73, 42, 52, 11, 33, 71)  # GM: piano, EP, strings, organ, violin, guitar...


def split_of(group: str) -> str:
    """``dev`` or ``test``, fixed by the first hex digit of sha1(group)."""
    return "dev" if hashlib.sha1(group.encode()).hexdigest()[0] in "01234567" else "test"


def _draw(group: str, salt: str) -> float:
    """A deterministic number in [0, 1) from a name."""
    return int(hashlib.sha1(f"{salt}:{group}".encode()).hexdigest()[:8], 16) / 2**32


@dataclass
class Row:
    file: str
    group: str
    source: str  # score | game_midi | recording
    split: str
    variant: str  # clean | lofi | tempo0.9 | tempo1.12 | pitch+2 | pitch-3 | orig
    bpm: float | None = None
    key: str | None = None
    stretch: float = 1.0
    shift: int = 0


def _fits(weights: np.ndarray, tonic: int, minor: bool) -> float:
    scale = [(tonic + s) % 12 for s in (_MINOR if minor else _MAJOR)]
    total = weights.sum()
    return float(weights[scale].sum() / total) if total > 0 else 0.0


# ------------------------------------------------------------------ scores (music21)


def _score_label(path: str) -> tuple[str, float | None, str | None, bytes | None]:
    """Parse one score: (group, bpm, key, midi bytes) — bpm/midi None when unusable."""
    import mido
    from music21 import converter, key as m21key, meter

    group = "m21:" + path.split("/corpus/")[-1]
    try:
        score = converter.parse(path)
    except Exception:  # noqa: BLE001 - a score music21 cannot read is simply skipped
        return group, None, None, None
    flat = score.flatten()
    sigs = flat.getElementsByClass(m21key.KeySignature)
    tss = {(t.numerator, t.denominator) for t in flat.getElementsByClass(meter.TimeSignature)}
    if not tss or any(d != 4 for _, d in tss):
        return group, None, None, None
    notes = list(flat.notes)
    if len(notes) < 20:
        return group, None, None, None
    weights = np.zeros(12)
    for n in notes:
        for p in n.pitches:
            weights[p.pitchClass] += float(n.quarterLength)
    key = None
    if len({s.sharps for s in sigs}) == 1:
        major_tonic = _SIG_TONIC[sigs[0].sharps]
        end = max(float(n.getOffsetInHierarchy(score)) for n in notes)
        final = [p for n in notes if float(n.getOffsetInHierarchy(score)) >= end - 1e-6 for p in n.pitches]
        if final:
            bass = min(final, key=lambda p: p.ps).pitchClass
            if bass == major_tonic and _fits(weights, bass, False) >= 0.85:
                key = f"{PITCHES[bass]} major"
            elif bass == (major_tonic + 9) % 12 and _fits(weights, bass, True) >= 0.85:
                key = f"{PITCHES[bass]} minor"
    # Tempo: 60-100 BPM for 60 % of the pieces (lo-fi's range), 100-160 for the rest.
    u = _draw(group, "tempo")
    bpm = round(60 + 40 * u / 0.6, 1) if u < 0.6 else round(100 + 60 * (u - 0.6) / 0.4, 1)
    with tempfile.TemporaryDirectory() as tmp:
        mid = Path(tmp) / "x.mid"
        try:
            score.write("midi", fp=str(mid))
            midi = mido.MidiFile(str(mid))
        except Exception:  # noqa: BLE001
            return group, None, None, None
    for track in midi.tracks:
        keep = []
        carry = 0
        for msg in track:
            if msg.type == "set_tempo":
                carry += msg.time  # drop it, keep the timing of what follows
                continue
            if carry:
                msg = msg.copy(time=msg.time + carry)
                carry = 0
            keep.append(msg)
        track[:] = keep
    midi.tracks[0].insert(0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0))
    _set_programs(midi, group)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "y.mid"
        midi.save(str(out))
        data = out.read_bytes()
    return group, bpm, key, data


def _set_programs(midi, group: str) -> None:
    import mido

    offset = int(_draw(group, "program") * len(_PROGRAMS))
    for i, track in enumerate(midi.tracks):
        chans = sorted({m.channel for m in track if hasattr(m, "channel") and m.channel != 9})
        track[:] = [m for m in track if m.type != "program_change"]
        for c in chans:
            track.insert(0, mido.Message("program_change", channel=c, program=_PROGRAMS[(offset + i) % len(_PROGRAMS)]))


# ------------------------------------------------------------------ game MIDI


def _game_label(path: Path) -> tuple[float | None, str | None]:
    """Labels from a packaged MIDI file's own meta events, by the rules above."""
    import mido

    midi = mido.MidiFile(str(path))
    tempos, keys, meters = set(), set(), set()
    weights = np.zeros(12)
    onsets = []
    for track in midi.tracks:
        t, active = 0, {}
        for msg in track:
            t += msg.time
            if msg.type == "set_tempo":
                tempos.add(msg.tempo)
            elif msg.type == "key_signature":
                keys.add(msg.key)
            elif msg.type == "time_signature":
                meters.add((msg.numerator, msg.denominator))
            elif msg.type == "note_on" and msg.velocity > 0 and msg.channel != 9:
                active[(msg.channel, msg.note)] = t
                onsets.append(t)
            elif msg.type in ("note_off", "note_on") and msg.channel != 9:
                start = active.pop((msg.channel, msg.note), None)
                if start is not None:
                    weights[msg.note % 12] += t - start
    bpm = None
    if len(tempos) == 1 and all(d == 4 for _, d in meters) and onsets:
        grid = midi.ticks_per_beat / 4
        phase = (np.asarray(onsets) % grid) / grid
        on_grid = np.mean(np.minimum(phase, 1 - phase) < 0.1)
        if on_grid >= 0.8:
            bpm = round(mido.tempo2bpm(next(iter(tempos))), 2)
    key = None
    if len(keys) == 1:
        name = next(iter(keys))
        minor = name.endswith("m")
        tonic_name = name[:-1] if minor else name
        tonic = {"C": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "F": 5, "F#": 6, "Gb": 6, "G": 7,
                 "G#": 8, "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11, "Cb": 11}.get(tonic_name)
        if tonic is not None and not (tonic == 0 and not minor) and _fits(weights, tonic, minor) >= 0.85:
            key = f"{PITCHES[tonic]} {'minor' if minor else 'major'}"
    return bpm, key


# ------------------------------------------------------------------ rendering


def _truncate_midi(src: Path, dst: Path, seconds: float) -> None:
    """Cut a MIDI file after ``seconds`` (+2 s) so FluidSynth renders no more than we keep."""
    import mido

    midi = mido.MidiFile(str(src))
    fastest = min([m.tempo for t in midi.tracks for m in t if m.type == "set_tempo"] or [500000])
    limit = (seconds + 2.0) * 1e6 / fastest * midi.ticks_per_beat
    for track in midi.tracks:
        t, keep = 0, []
        for msg in track:
            t += msg.time
            if t > limit and not msg.is_meta:
                break
            keep.append(msg)
        chans = {m.channel for m in keep if hasattr(m, "channel")}
        keep = [m for m in keep if m.type != "end_of_track"]
        keep += [mido.Message("control_change", channel=c, control=123, value=0) for c in sorted(chans)]
        keep.append(mido.MetaMessage("end_of_track"))
        track[:] = keep
    midi.save(str(dst))


def _fluidsynth(midi_path: Path, wav: Path, seconds: float) -> np.ndarray:
    cut = wav.with_suffix(".cut.mid")
    _truncate_midi(midi_path, cut, seconds)
    midi_path = cut
    subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", str(SR), "-F", str(wav), str(SOUNDFONT),
                    str(midi_path)], check=True, capture_output=True)
    import soundfile as sf

    y, _ = sf.read(str(wav), dtype="float32", always_2d=True)
    return _trim(y, seconds)


def _trim(y: np.ndarray, seconds: float) -> np.ndarray:
    mono = np.abs(y).mean(axis=1)
    nz = np.flatnonzero(mono > 1e-4)
    if len(nz):
        y = y[nz[0]:]
    y = y[: int(seconds * SR)]
    peak = np.abs(y).max() if len(y) else 0
    return (y * (0.7 / peak)).astype(np.float32) if peak > 0 else y


def lofi(y: np.ndarray, seed: int) -> np.ndarray:
    """Low-pass, tape saturation, wow, hiss and crackle (deterministic per seed)."""
    from scipy import signal

    rng = np.random.default_rng(seed)
    n = len(y)
    # Wow: read the signal through a slowly wobbling clock (+-0.15 %, 0.5 Hz).
    t = np.arange(n) / SR
    warp = t + 0.0015 / (2 * np.pi * 0.5) * np.sin(2 * np.pi * 0.5 * t)
    y = np.stack([np.interp(warp * SR, np.arange(n), y[:, c]) for c in range(y.shape[1])], axis=1)
    sos = signal.butter(4, 4000, "low", fs=SR, output="sos")
    y = signal.sosfilt(sos, y, axis=0)
    y = np.tanh(2.0 * y) / np.tanh(2.0)
    hiss = rng.standard_normal(y.shape) * 10 ** (-34 / 20)
    crackle = np.zeros(n)
    pos = rng.integers(0, n, size=int(n / SR * 6))
    crackle[pos] = rng.uniform(-0.3, 0.3, size=len(pos))
    y = y + signal.sosfilt(signal.butter(2, 3000, "high", fs=SR, output="sos"), hiss, axis=0) + crackle[:, None]
    peak = np.abs(y).max()
    return (0.8 * y / peak).astype(np.float32)


def _write(y: np.ndarray, path: Path) -> None:
    import soundfile as sf

    # Block by block: libsndfile's Vorbis encoder overflows its stack on one large write.
    with sf.SoundFile(str(path), "w", SR, y.shape[1], format="OGG", subtype="VORBIS") as fh:
        for lo in range(0, len(y), 8192):
            fh.write(y[lo: lo + 8192])


def sox_copy(src: Path, dst: Path, kind: str, amount: float) -> None:
    """Write a consistency copy of ``src``: ``sox tempo -m`` by ``amount`` (``"stretch"``: the
    pitch kept) or ``sox pitch`` by ``amount`` semitones (``"shift"``: the tempo kept)."""
    effect = ["tempo", "-m", str(amount)] if kind == "stretch" else ["pitch", str(100 * int(amount))]
    subprocess.run(["sox", str(src), str(dst), *effect], check=True, capture_output=True)


def rubberband_copy(src: Path, dst: Path, kind: str, amount: float) -> None:
    """The same copy as :func:`sox_copy`, made by Rubber Band's R3 engine instead.

    ``sox tempo`` and ``sox pitch`` splice overlapping segments (WSOLA) about
    every 70 ms, and the comb reads multiples of that stride in legato pieces;
    Rubber Band is a phase vocoder that keeps transients, so its copies carry
    no such stride. Used by ``extra_dev_copies.py --tool rubberband`` to see
    how much of the consistency figures is the copying tool's.
    """
    effect = ["--time", repr(1.0 / amount)] if kind == "stretch" else ["--pitch", str(int(amount))]
    subprocess.run(["rubberband", "-3", "-q", *effect, str(src), str(dst)], check=True, capture_output=True)


COPY_TOOLS = {"sox": sox_copy, "rubberband": rubberband_copy}
"""How a consistency copy can be made: the corpus's own copies are ``sox``'s."""


def link_files(paths: list[Path], folder: Path) -> list[Path]:
    """A symbolic link in ``folder`` to each of ``paths``, under its own name: never a copy, never a move.

    A link already there is kept, so calling it again changes nothing.
    """
    if paths:
        folder.mkdir(parents=True, exist_ok=True)
    links = []
    for path in paths:
        link = folder / path.name
        if not link.is_symlink():
            link.symlink_to(path.resolve())
        links.append(link)
    return links


def _sox_variants(src: Path, stem: str, folder: Path = CORPUS) -> list[tuple[str, float, int, Path]]:
    out = []
    for f in STRETCHES:
        dst = folder / f"{stem}__tempo{f}.ogg"
        sox_copy(src, dst, "stretch", f)
        out.append((f"tempo{f}", f, 0, dst))
    for s in SHIFTS:
        dst = folder / f"{stem}__pitch{s:+d}.ogg"
        sox_copy(src, dst, "shift", s)
        out.append((f"pitch{s:+d}", 1.0, s, dst))
    return out


def _stem(group: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in group)[-60:]


def build_score(args: tuple[str, float]) -> list[Row]:
    path, seconds = args
    group, bpm, key, data = _score_label(path)
    if data is None or (bpm is None and key is None):
        return []
    stem = _stem(group)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        mid = Path(tmp) / "a.mid"
        mid.write_bytes(data)
        y = _fluidsynth(mid, Path(tmp) / "a.wav", seconds)
    if len(y) < 20 * SR:
        return []
    for variant, audio in (("clean", y), ("lofi", lofi(y, int(_draw(group, "lofi") * 1e6)))):
        dst = CORPUS / f"{stem}__{variant}.ogg"
        _write(audio, dst)
        rows.append(Row(dst.name, group, "score", split_of(group), variant, bpm, key))
    return rows


def build_game_midi(args: tuple[Path, float]) -> list[Row]:
    path, seconds = args
    group = f"midi:{path.parent.name}/{path.name}"
    bpm, key = _game_label(path)
    stem = _stem(group)
    with tempfile.TemporaryDirectory() as tmp:
        y = _fluidsynth(path, Path(tmp) / "a.wav", seconds)
    if len(y) < 20 * SR:
        return []
    rows = []
    base = CORPUS / f"{stem}__clean.ogg"
    _write(y, base)
    rows.append(Row(base.name, group, "game_midi", split_of(group), "clean", bpm, key))
    if bpm is not None or key is not None:
        dst = CORPUS / f"{stem}__lofi.ogg"
        _write(lofi(y, int(_draw(group, "lofi") * 1e6)), dst)
        rows.append(Row(dst.name, group, "game_midi", split_of(group), "lofi", bpm, key))
    for variant, f, s, dst in _sox_variants(base, stem):
        rows.append(Row(dst.name, group, "game_midi", split_of(group), variant,
                        round(bpm * f, 2) if bpm else None, _shift_key(key, s), f, s))
    return rows


def _shift_key(key: str | None, semitones: int) -> str | None:
    if key is None:
        return None
    tonic, mode = key.split()
    return f"{PITCHES[(PITCHES.index(tonic) + semitones) % 12]} {mode}"


def _recording_group(path: Path) -> str:
    return f"rec:{path.parent.name}/{path.name}"


def build_recording(args: tuple[Path, float, str], folder: Path = CORPUS) -> list[Row]:
    """The excerpt of one recording and its four sox copies, written to ``folder``; their label rows."""
    path, seconds, ffmpeg = args
    group = _recording_group(path)
    stem = _stem(group)
    base = folder / f"{stem}__orig.ogg"
    import soundfile as sf

    # ffmpeg decodes the ogg and mp3 files and the tracker modules (libopenmpt);
    # a few hyperrogue oggs have headers it refuses, which libsndfile reads.
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "a.wav"
        try:
            subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-t", str(seconds + 5), "-ac", "2",
                            "-ar", str(SR), str(wav)], check=True, capture_output=True)
            y, _ = sf.read(str(wav), dtype="float32", always_2d=True)
        except subprocess.CalledProcessError:
            import soxr

            with sf.SoundFile(str(path)) as fh:
                rate = fh.samplerate
                y = fh.read(frames=int((seconds + 5) * rate), dtype="float32", always_2d=True)
            y = np.repeat(y, 2, axis=1) if y.shape[1] == 1 else y[:, :2]
            y = soxr.resample(y, rate, SR).astype(np.float32) if rate != SR else y
    y = _trim(y, seconds)
    if len(y) < 20 * SR:
        return []
    _write(y, base)
    rows = [Row(base.name, group, "recording", split_of(group), "orig")]
    for variant, f, s, dst in _sox_variants(base, stem, folder):
        rows.append(Row(dst.name, group, "recording", split_of(group), variant, None, None, f, s))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scores", type=int, default=90, help="music21 scores to try (default 90)")
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each rendered excerpt (s)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--only", choices=("all", "recordings", "new-recordings"), default="all",
                    help="rebuild everything; only the recordings (keeping the rendered scores and game "
                         "MIDI and their labels); or only the recordings not in the corpus yet (keeping "
                         "every file already built)")
    args = ap.parse_args(argv)
    for tool in ("fluidsynth", "sox"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install fluidsynth fluid-soundfont-gm sox libsox-fmt-all")
    if not SOUNDFONT.exists():
        sys.exit(f"{SOUNDFONT} is missing: apt-get install fluid-soundfont-gm")
    from music21 import corpus

    from lofi_pipeline.core.ffmpeg import find_ffmpeg

    if args.only != "all":
        return _rebuild_recordings(args.seconds, args.workers, keep_built=args.only == "new-recordings")
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    CORPUS.mkdir(parents=True)
    scores = sorted(str(p) for p in corpus.getPaths()
                    if str(p).endswith((".mxl", ".xml", ".musicxml"))
                    and "/trecento/" not in str(p) and "/theoryExercises/" not in str(p))
    # A deterministic spread: every composer, ordered by a hash of the name.
    scores = sorted(scores, key=lambda p: hashlib.sha1(p.split("/corpus/")[-1].encode()).hexdigest())[: args.scores]
    midis = sorted(p for d in GAME_MIDI_DIRS if d.exists() for p in d.glob("*.mid"))
    ffmpeg = find_ffmpeg()
    rows: list[Row] = []
    with ProcessPoolExecutor(args.workers) as pool:
        for res in pool.map(build_score, [(p, args.seconds) for p in scores]):
            rows += res
        for res in pool.map(build_game_midi, [(p, args.seconds) for p in midis]):
            rows += res
        for res in pool.map(build_recording, [(p, args.seconds, ffmpeg) for p in _recordings()]):
            rows += res
    return _write_labels(rows)


def _recordings() -> list[Path]:
    """The installed recordings; the archive's tracks are unpacked into ``corpus/_src/cdtracks`` first."""
    found = [p for p in RECORDINGS if p.exists()]
    if NEXUIZ_PK3.exists():
        import zipfile

        dest = CORPUS / "_src" / "cdtracks"
        dest.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(NEXUIZ_PK3) as pk3:
            for info in sorted(pk3.infolist(), key=lambda i: i.filename):
                name = Path(info.filename).name
                if info.is_dir() or not name.endswith(".ogg"):
                    continue
                target = dest / name
                if not target.exists():
                    target.write_bytes(pk3.read(info))
                found.append(target)
    return found


def _rebuild_recordings(seconds: float, workers: int, keep_built: bool = False) -> int:
    """Rebuild the recordings and their variants; the other rows of labels.csv are kept as they are.

    With ``keep_built`` the recordings already in labels.csv are kept too, and only
    recordings not built yet (a newly installed package) are added.
    """
    from lofi_pipeline.core.ffmpeg import find_ffmpeg

    if not (CORPUS / "labels.csv").exists():
        sys.exit(f"no corpus in {CORPUS}: build it whole first (without --only)")
    with open(CORPUS / "labels.csv", newline="") as fh:
        kept = [Row(**{**r, "bpm": float(r["bpm"]) if r["bpm"] else None, "key": r["key"] or None,
                       "stretch": float(r["stretch"]), "shift": int(r["shift"])})
                for r in csv.DictReader(fh) if keep_built or r["source"] != "recording"]
    built = {r.group for r in kept if r.source == "recording"}
    if not keep_built:
        for old in CORPUS.glob("rec_*"):
            old.unlink()
    ffmpeg = find_ffmpeg()
    rows = list(kept)
    todo = [p for p in _recordings() if _recording_group(p) not in built]
    with ProcessPoolExecutor(workers) as pool:
        for res in pool.map(build_recording, [(p, seconds, ffmpeg) for p in todo]):
            rows += res
    return _write_labels(rows)


def write_labels(rows: list[Row], targets: tuple[Path, ...]) -> None:
    """``rows`` as a labels CSV at each of ``targets`` (no label: an empty cell)."""
    names = [f.name for f in fields(Row)]
    for target in targets:
        with open(target, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=names)
            w.writeheader()
            for r in rows:
                w.writerow({k: ("" if v is None else v) for k, v in asdict(r).items()})


def _write_labels(rows: list[Row]) -> int:
    write_labels(rows, (CORPUS / "labels.csv", HERE / "labels.csv"))
    n_bpm = sum(r.bpm is not None for r in rows)
    n_key = sum(r.key is not None for r in rows)
    print(f"{len(rows)} files in {CORPUS}: {n_bpm} tempo-labelled, {n_key} key-labelled, "
          f"{sum(r.split == 'test' for r in rows)} in the test split")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
