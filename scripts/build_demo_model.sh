#!/usr/bin/env bash
# Rebuild the shipped demo model `weights/demo/` from fixed seeds, entirely on synthetic phantoms.
#
#   bash scripts/build_demo_model.sh [BUILD_DIR]      (default build/demo; about 2 h on 2 cores)
#
# 1. synthetic cohorts (medium phantoms, 256×256×~100, varied scanners):
#      train 1200 cases (seed 101; forests need about 1200 phantoms to reach the quality bar, see
#      docs/demo-model-analysis.md), held-out test 1000 (seed 202),
#      scanner-shifted test: the first 300 held-out patients and tumours (seed 202) imaged with
#      thick slices and more noise (profile thick_noisy), so the AUC drop is a paired comparison
# 2. all features of the training cohort (MedicalNet backbone: seeded initialisation seed:0 —
#    the official pretrained checkpoints cannot be downloaded here — plus PyRadiomics, pleura,
#    clinical)
# 3. `pleura train`: in-fold feature selection, PSO-tuned random forest, nested CV, early vs late
#    fusion, ablation → weights/demo (bundle + MODEL_CARD.md + report/). The 17 pleura features are
#    kept past selection (--keep pleura); 3 outer folds (400 test cases per fold); the late-fusion
#    stacker learns from 5-fold out-of-fold probabilities (pleura train's default --stack-folds 5)
# 4. `pleura evaluate` on the held-out and the scanner-shifted cohorts → weights/demo/report/, and
#    the paired AUC drop on the patients the two share (scripts/scanner_shift.py)
#    `pleura convert` makes sure the bundle carries its fast-loading files (forest.safetensors,
#    backbone.onnx); the same command converts an older bundle
# 5. `pleura sign` with the release key (PLEURA_RELEASE_KEY=path to its private PEM, kept outside
#    the repository); without it the bundle stays unsigned and loads only with --allow-unsigned.
#    Steps 3-4 load the freshly trained (unsigned) bundle, so they run with PLEURA_ALLOW_UNSIGNED=1.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build/demo}
W=${PLEURA_BUILD_WORKERS:-2}
P=.venv/bin/pleura
mkdir -p "$B"
export PLEURA_ALLOW_UNSIGNED=1  # the bundle is signed at the end
[ -f "$B/train/clinical.csv" ]   || $P synth "$B/train"   --n 1200 --seed 101 --size medium --generation 2
[ -f "$B/test/clinical.csv" ]    || $P synth "$B/test"    --n 1000 --seed 202 --size medium --generation 2
[ -f "$B/shifted/clinical.csv" ] || $P synth "$B/shifted" --n 300 --seed 202 --size medium --scanner thick_noisy --generation 2
$P features "$B/train/clinical.csv" --out "$B/train.parquet" --workers "$W" --backbone seed:0 --quiet
if [ "${PLEURA_SKIP_TRAIN:-0}" = "1" ]; then exit 0; fi
$P train "$B/train.parquet" --out weights/demo --synthetic --seed 0 \
    --keep clinical --keep pleura --outer-folds 3 ${PLEURA_TRAIN_ARGS:-}
$P convert weights/demo  # tree arrays + ONNX backbone (pleura train writes them already: then a no-op)
$P evaluate weights/demo "$B/test/clinical.csv" --out "$B/eval_heldout" --name "held-out synthetic (standard scanners)" --workers "$W" --attach
$P evaluate weights/demo "$B/shifted/clinical.csv" --out "$B/eval_shifted" --name "held-out synthetic, first 300 patients re-imaged with thick slices and more noise" --workers "$W" --attach
.venv/bin/python scripts/scanner_shift.py weights/demo "$B/eval_heldout" "$B/eval_shifted" --attach
if [ -n "${PLEURA_RELEASE_KEY:-}" ]; then
  $P sign weights/demo --key "$PLEURA_RELEASE_KEY" --signer "PleuraRisk maintainers (release key)"
  PLEURA_ALLOW_UNSIGNED=0 $P verify weights/demo
else
  echo "weights/demo is unsigned: sign it with  pleura sign weights/demo --key RELEASE_KEY.pem"
  $P verify weights/demo
fi
