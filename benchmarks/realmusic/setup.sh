#!/usr/bin/env bash
# Install what the real-music benchmark needs (Debian/Ubuntu, as root), then build the corpus.
#   bash benchmarks/realmusic/setup.sh [python]
# Essentia (AGPL-3) is installed into the same environment for the comparison
# column only; lofi_pipeline never imports it.
set -euo pipefail
PY="${1:-python}"
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y fluidsynth fluid-soundfont-gm sox libsox-fmt-all rubberband-cli \
    openttd-openmsx planetblupi-music-midi frozen-bubble-data pingus-data \
    hyperrogue-music drascula-music asc-music warzone2100-music singularity-music nexuiz-music \
    ufoai-music wesnoth-1.16-music
"$PY" -m pip install -e ".[bench]"
"$PY" -m pip install essentia || echo "essentia not installed: benchmarks/analysis_real.py will skip its column"
nice -n 10 "$PY" benchmarks/realmusic/build.py
# The second held-out set (recordings only; never used to choose anything).
nice -n 10 "$PY" benchmarks/realmusic/holdout.py
