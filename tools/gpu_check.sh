#!/usr/bin/env bash
# Device check of mmspike's GPU path (tools/gpu_check.py): kernels, neurons, fast == plain training,
# bf16 AMP training of the 10M classifier and of the flagship detector's backbone + neck, SSC on the
# GPU (if spconv-cuXY is installed) and a benchmark. ~8 minutes on one H200; exit status 1 on failure.
#
#   tools/gpu_check.sh [--dry-run] [--json FILE] [--only kernels,neurons,...]
#   tools/gpu_check.sh --prepare-deps [DIR]   # pure-Python deps for a GPU box that has only torch
#
# Python: $PYTHON, else the project's .venv (scripts/setup_env.sh), else python3. mmspike's core needs
# torch + mmengine only: on a machine with just torch (+ Triton), `--prepare-deps` (run where pip
# reaches PyPI) installs mmengine and its pure-Python dependencies for that machine's Python into
# DIR (default build/gpu_deps, which this script puts on PYTHONPATH when it exists).
# --dry-run runs the same code paths on the CPU at tiny sizes (CI runs it).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DEPS="${MMSPIKE_GPU_DEPS:-$ROOT/build/gpu_deps}"
if [ -n "${PYTHON:-}" ]; then
  :
elif [ -x "$ROOT/.venv/bin/python" ]; then
  PYTHON="$ROOT/.venv/bin/python"
else
  PYTHON=python3
fi

if [ "${1:-}" = "--prepare-deps" ]; then
  DEPS="${2:-$DEPS}"
  PYV="${MMSPIKE_GPU_PYTHON_VERSION:-3.12}"  # the GPU machine's Python
  pin() { sed -n "s/^$1==//p" requirements/constraints.txt; }
  pkgs=()
  # numpy is not among them (70 MB): torch machines have it.
  for p in mmengine addict yapf termcolor rich markdown-it-py mdurl Pygments platformdirs PyYAML \
      packaging; do
    v="$(pin "$p")"
    pkgs+=("$p${v:+==$v}")
  done
  "$PYTHON" -m pip install -q --disable-pip-version-check --no-deps --target "$DEPS" \
    --python-version "$PYV" --only-binary :all: --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 "${pkgs[@]}"
  echo "[gpu_check] installed ${pkgs[*]} for Python $PYV into $DEPS"
  exit 0
fi

if [ -d "$DEPS" ]; then
  export PYTHONPATH="$DEPS${PYTHONPATH:+:$PYTHONPATH}"
fi
exec "$PYTHON" "$ROOT/tools/gpu_check.py" "$@"
