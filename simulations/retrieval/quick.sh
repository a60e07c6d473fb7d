#!/usr/bin/env bash
# The qualitative result of both settings on a CPU in minutes (2 models per setting, at most 2000 steps per cell).
# Usage: simulations/retrieval/quick.sh [OUT_DIR]   (rerunning skips the cells already finished)
set -euo pipefail
out="${1:-results/retrieval-quick}"
mkdir -p "$out"
neurofwp retrieval --setting 1 --quick --workers 2 --out "$out"
neurofwp retrieval --setting 2 --quick --workers 2 --out "$out"
