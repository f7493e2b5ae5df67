"""A second held-out set: recordings from packages no analyzer setting was ever chosen or checked on.

The corpus of ``build.py`` has been looked at many times: its dev split to
choose every parameter, its test split once per analyzer version. This
set is for the one question those looks cannot answer any more: do the
stretch and shift consistency figures, and their order against the seed
method and Essentia, hold on music that played no part in any choice?

Sources (Debian packages, none committed; ``setup.sh`` installs them):

* ``ufoai-music``: the oggs inside UFO: Alien Invasion's ``0music.pk3``
  (orchestral, electronic and ambient game scores by several composers);
* ``wesnoth-1.16-music``: Battle for Wesnoth's oggs (orchestral and folk
  pieces).

Each recording becomes a 60-s excerpt and the same four ``sox`` copies as
the corpus's recordings (``build.build_recording``: ``tempo -m`` x0.9 and
x1.12, ``pitch`` +2 and -3 semitones). There are no tempo or key labels,
only consistency pairs. ``--n`` recordings are taken, alternating between
the two packages, each package's files ordered by a hash of their name.

**Rule: nothing is chosen on this set.** It is scored after a version's
settings are fixed, like the test split, and its figures are reported as
they come; a change that is tried because of them has to be chosen on the
dev split and then this set counts as looked at.

Output: ``benchmarks/realmusic/corpus/holdout/`` (git-ignored, with its own
``labels.csv``, split ``holdout``) and a copy of the labels at
``benchmarks/realmusic/holdout_labels.csv``.

Usage::

    python benchmarks/realmusic/holdout.py --n 50
    python benchmarks/analysis_real.py --corpus benchmarks/realmusic/corpus/holdout --split all \\
        --json benchmarks/results/analysis_real_holdout.json
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from functools import partial
from itertools import zip_longest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
sys.path.insert(0, str(HERE))

# The corpus's own excerpt and copy rules.
from build import CORPUS, Row, build_recording, link_files, write_labels  # noqa: E402

HOLDOUT = CORPUS / "holdout"
UFOAI_PK3 = Path("/usr/share/games/ufoai/base/0music.pk3")
WESNOTH_MUSIC = Path("/usr/share/games/wesnoth/1.16/data/core/music")
PACKAGES = ("ufoai-music", "wesnoth-1.16-music")


def _hashed(paths: list[Path]) -> list[Path]:
    return sorted(paths, key=lambda p: hashlib.sha1(p.name.encode()).hexdigest())


def sources(src: Path) -> list[list[Path]]:
    """Each package's recordings, hash-ordered, under ``src/ufoai`` and ``src/wesnoth``.

    ufoai's are unpacked from its archive; wesnoth's are linked, so that a
    recording's group (``rec:<folder>/<file>``, ``build._recording_group``)
    names its package.
    """
    ufoai: list[Path] = []
    if UFOAI_PK3.exists():
        unpack_to = src / "ufoai"
        unpack_to.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(UFOAI_PK3) as pk3:
            for info in pk3.infolist():
                name = Path(info.filename).name
                if info.is_dir() or not name.endswith(".ogg"):
                    continue
                target = unpack_to / name
                if not target.exists():
                    tmp = target.with_name(f".{name}.partial")
                    tmp.write_bytes(pk3.read(info))
                    tmp.replace(target)
                ufoai.append(target)
    packaged = sorted(WESNOTH_MUSIC.glob("*.ogg")) if WESNOTH_MUSIC.is_dir() else []
    wesnoth = link_files(packaged, src / "wesnoth")
    return [_hashed(ufoai), _hashed(wesnoth)]


def pick(per_package: list[list[Path]], n: int) -> list[Path]:
    """``n`` recordings, taking turns between the packages (one that runs out leaves the rest)."""
    turns = [p for group in zip_longest(*per_package) for p in group if p is not None]
    return turns[:n]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=50,
                    help="recordings to take (default 50; a recording under 20 s is left out)")
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each excerpt (s)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    if not shutil.which("sox"):
        sys.exit("sox is missing: apt-get install sox libsox-fmt-all")
    per_package = sources(HOLDOUT / "_src")
    if not all(per_package):
        missing = [pkg for pkg, found in zip(PACKAGES, per_package) if not found]
        sys.exit(f"no recordings from {', '.join(missing)}: apt-get install {' '.join(missing)}")
    from lofi_pipeline.core.ffmpeg import find_ffmpeg

    chosen = pick(per_package, args.n)
    ffmpeg = find_ffmpeg()
    HOLDOUT.mkdir(parents=True, exist_ok=True)
    for old in HOLDOUT.glob("rec_*"):
        old.unlink()
    rows: list[Row] = []
    with ProcessPoolExecutor(args.workers) as pool:
        jobs = [(p, args.seconds, ffmpeg) for p in chosen]
        for res in pool.map(partial(build_recording, folder=HOLDOUT), jobs):
            rows += [replace(r, split="holdout") for r in res]
    write_labels(rows, (HOLDOUT / "labels.csv", HERE / "holdout_labels.csv"))
    originals = sum(r.variant == "orig" for r in rows)
    print(f"{originals} recordings ({len(rows)} files) in {HOLDOUT}; "
          f"labels also in {HERE / 'holdout_labels.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
