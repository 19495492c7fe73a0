#!/usr/bin/env bash
# benchmarks/mfu.py on a GPU machine without network, as one prepared command: its python3 already holds torch,
# Lightning and the rest of lclab's needs but for those passed as wheels (on the H100 image mfu.json was measured
# on: Optuna and colorlog; fetch them where pip works, for that machine's Python:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d WHEELS optuna==5.0.0 colorlog==6.12.0).
#
#   bash benchmarks/mfu_offline.sh WHEELS OUT COMMIT [mfu.py options]    (WHEELS may be empty)
#
# lclab is installed from this tree into a throwaway folder (no network, no build isolation), the GPU is named, and
# mfu.py writes its JSON into OUT, the partial one after each part too, so a run its time limit cuts short keeps
# what it measured there. COMMIT is the commit the tree holds, recorded in the JSON (a copied tree's git HEAD can
# be stale).
set -euo pipefail
wheels=$(realpath "$1") out=$(realpath -m "$2") commit=$3
shift 3
cd "$(dirname "$0")/.."
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
shopt -s nullglob
whl=("$wheels"/*.whl)
[ ${#whl[@]} -eq 0 ] || python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" "${whl[@]}"
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target "$site" .
mkdir -p "$out"
export PYTHONPATH=$site PYTHONUNBUFFERED=1 LCLAB_BENCH_RESULTS=$out LCLAB_BENCH_COMMIT=$commit
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv 2>&1 | tee "$out/nvidia-smi.txt" || true
python3 benchmarks/mfu.py "$@" 2>&1 | tee "$out/mfu.log"  # lclab from $site: a script's folder is on its path, not the tree
