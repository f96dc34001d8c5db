#!/usr/bin/env bash
# README command 1: set up .venv (idempotent), then the main job: train the flagship spiking
# detector (configs/mmdet/spikeformer_digits.py: E-SpikeFormer + SpikeFPN + Mask R-CNN) on the
# digit canvases with tools/train.py, evaluate the checkpoint on the held-out canvases with
# tools/test.py and print the held-out metrics.
#
#   bash scripts/run_demo.sh [CONFIG]          # any train/test config works the same way
#   WORK_DIR=DIR bash scripts/run_demo.sh      # results into DIR (must be new or empty)
#
# Nothing is ever deleted: each run writes into a new folder,
# work_dirs/demo/<config name>/<UTC time>_<random>, unless WORK_DIR names one, and a WORK_DIR
# that exists and is not an empty folder is refused.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CONFIG="${1:-configs/mmdet/spikeformer_digits.py}"
fail() { echo "[run_demo] error: $*" >&2; exit 2; }

if [ -n "${WORK_DIR:-}" ]; then
  if [ -e "$WORK_DIR" ] && { [ ! -d "$WORK_DIR" ] || [ -n "$(ls -A "$WORK_DIR")" ]; }; then
    fail "WORK_DIR=$WORK_DIR already exists and is not an empty folder; run_demo.sh never" \
      "deletes or overwrites files: name a new folder, or leave WORK_DIR unset for a fresh" \
      "one under work_dirs/demo/"
  fi
fi
[ -f "$CONFIG" ] || fail "config file $CONFIG not found"

bash scripts/setup_env.sh
PY="$ROOT/.venv/bin/python"
if [ -z "${WORK_DIR:-}" ]; then
  base="work_dirs/demo/$(basename "${CONFIG%.py}")"
  mkdir -p "$base"
  WORK_DIR="$(mktemp -d "$base/$(date -u +%Y%m%d_%H%M%S)_XXXX")"
fi
echo "[run_demo] config $CONFIG, results in $WORK_DIR"
"$PY" tools/train.py "$CONFIG" --work-dir "$WORK_DIR"
CKPT="$(cat "$WORK_DIR/last_checkpoint")"
"$PY" tools/test.py "$CONFIG" "$WORK_DIR/$(basename "$CKPT")" \
  --work-dir "$WORK_DIR" --out "$WORK_DIR/test_metrics.json"
echo "[run_demo] metrics written to $WORK_DIR/test_metrics.json"
"$PY" - "$WORK_DIR/test_metrics.json" <<'PYEOF'
import json
import sys

metrics = json.load(open(sys.argv[1]))
names = {'coco/bbox_mAP_50': 'bbox mAP@0.5', 'coco/bbox_mAP': 'bbox mAP@[.5:.95]',
         'coco/segm_mAP_50': 'segm mAP@0.5', 'coco/segm_mAP': 'segm mAP@[.5:.95]',
         'mIoU': 'mIoU (%)', 'accuracy/top1': 'top-1 (%)'}
shown = [f'{label} {metrics[key]:.3f}' for key, label in names.items() if key in metrics]
print('[run_demo] held-out result: ' + (', '.join(shown) or json.dumps(metrics)))
PYEOF
