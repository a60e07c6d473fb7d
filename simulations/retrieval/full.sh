#!/usr/bin/env bash
# The paper's full sweeps: setting 1 with 8 models at S = 20..600, setting 2 with 6 models at S = 20..200,
# up to 100,000 Adam steps per cell. Meant for a CUDA GPU (days on a CPU); resumable: rerun to continue.
# Usage: simulations/retrieval/full.sh [OUT_DIR] [extra neurofwp retrieval options, e.g. --scheduler tcp://HOST:8786]
set -euo pipefail
out="${1:-docs/results/retrieval}"
shift || true
mkdir -p "$out"
neurofwp retrieval --setting 1 --S 20:600:20 --device cuda --out "$out" "$@"
neurofwp retrieval --setting 2 --S 20:200:20 --device cuda --out "$out" "$@"
