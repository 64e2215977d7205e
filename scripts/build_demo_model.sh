#!/usr/bin/env bash
# Rebuild the shipped demo model `weights/demo/` from fixed seeds, entirely on synthetic phantoms.
#
#   bash scripts/build_demo_model.sh [BUILD_DIR]      (default build/demo; ~30–60 min on 2 cores)
#
# 1. synthetic cohorts (medium phantoms, 256×256×~100, varied scanners):
#      train 400 cases (seed 101), held-out test 300 (seed 202),
#      scanner-shifted test 300 (seed 303, thick slices + more noise: profile thick_noisy)
# 2. all features of the training cohort (MedicalNet backbone: seeded initialisation seed:0 —
#    the official pretrained checkpoints cannot be downloaded here — plus PyRadiomics, pleura,
#    clinical)
# 3. `pleura train`: in-fold feature selection, PSO-tuned random forest, nested CV, early vs late
#    fusion, ablation → weights/demo (bundle + MODEL_CARD.md + report/)
# 4. `pleura evaluate` on the held-out and the scanner-shifted cohorts → weights/demo/report/
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build/demo}
W=${PLEURA_BUILD_WORKERS:-2}
P=.venv/bin/pleura
mkdir -p "$B"
[ -f "$B/train/clinical.csv" ]   || $P synth "$B/train"   --n 400 --seed 101 --size medium
[ -f "$B/test/clinical.csv" ]    || $P synth "$B/test"    --n 300 --seed 202 --size medium
[ -f "$B/shifted/clinical.csv" ] || $P synth "$B/shifted" --n 300 --seed 303 --size medium --scanner thick_noisy
$P features "$B/train/clinical.csv" --out "$B/train.parquet" --workers "$W" --backbone seed:0 --quiet
if [ "${PLEURA_SKIP_TRAIN:-0}" = "1" ]; then exit 0; fi
$P train "$B/train.parquet" --out weights/demo --synthetic --seed 0 ${PLEURA_TRAIN_ARGS:-}
$P evaluate weights/demo "$B/test/clinical.csv" --out "$B/eval_heldout" --name "held-out synthetic (standard scanners)" --workers "$W" --attach
$P evaluate weights/demo "$B/shifted/clinical.csv" --out "$B/eval_shifted" --name "held-out synthetic (thick slices, more noise)" --workers "$W" --attach
$P verify weights/demo
