#!/usr/bin/env bash
# README command 1: set up .venv (idempotent) and run the main job on the bundled sample data:
# train a spiking model with tools/train.py, then evaluate its checkpoint with tools/test.py.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup_env.sh
PY="$ROOT/.venv/bin/python"
CONFIG="${1:-configs/mmdet/spikeformer_coco_sample.py}"
WORK_DIR="${WORK_DIR:-work_dirs/demo/$(basename "${CONFIG%.py}")}"
rm -rf "$WORK_DIR"
"$PY" tools/train.py "$CONFIG" --work-dir "$WORK_DIR"
"$PY" tools/test.py "$CONFIG" "$WORK_DIR/$(cat "$WORK_DIR/last_checkpoint" | xargs basename)" \
  --work-dir "$WORK_DIR" --out "$WORK_DIR/test_metrics.json"
echo "[run_demo] metrics written to $WORK_DIR/test_metrics.json"
