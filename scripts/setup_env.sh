#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv with every pinned dependency.
#
# Idempotent: a second run checks a stamp (hash of the requirement files) and returns in seconds.
# The slow part of a fresh install is mmcv 2.1.0's compiled ops (~13 min on 2 cores): PyPI has only its
# sdist for Python 3.11, so we build the wheel once and keep it in $MMSPIKE_WHEEL_DIR (outside the repo,
# default ~/.cache/mmspike/wheels) where later runs and CI find it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${MMSPIKE_VENV:-$ROOT/.venv}"
WHEEL_DIR="${MMSPIKE_WHEEL_DIR:-$HOME/.cache/mmspike/wheels}"
PYTHON="${PYTHON:-python3}"
CONSTRAINTS="$ROOT/requirements/constraints.txt"
MMCV_VERSION="$(sed -n 's/^mmcv==//p' "$CONSTRAINTS")"

log() { echo "[setup_env] $*"; }

stamp_hash() {
  cat "$CONSTRAINTS" "$ROOT"/requirements/*.txt "$ROOT/setup.py" "$ROOT/scripts/setup_env.sh" \
    | sha256sum | cut -d' ' -f1
}

if [ -x "$VENV/bin/python" ] && [ -f "$VENV/.mmspike-stamp" ] \
    && [ "$(cat "$VENV/.mmspike-stamp")" = "$(stamp_hash)" ]; then
  log "environment up to date ($VENV)"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
# Some machines' pip.conf name index folders that do not exist; pip warns once per package.
pip_run() { "${PIP[@]}" "$@" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2); }
pip_run install -q -c "$CONSTRAINTS" "pip==25.3" setuptools wheel
# torch first: mmcv's build imports it (no build isolation).
log "installing torch / torchvision"
pip_run install -q -c "$CONSTRAINTS" torch torchvision

mkdir -p "$WHEEL_DIR"
if ! ls "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl >/dev/null 2>&1; then
  log "building mmcv $MMCV_VERSION with CPU ops (one time, ~13 min on 2 cores) into $WHEEL_DIR"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  pip_run download -q --no-deps --no-build-isolation --no-binary :all: "mmcv==$MMCV_VERSION" -d "$tmp"
  tar -xzf "$tmp"/mmcv-"$MMCV_VERSION".tar.gz -C "$tmp"
  # torch >= 2.10 headers need C++20; mmcv 2.1.0's setup.py hard-codes -std=c++17.
  sed -i 's/-std=c++17/-std=c++20/g' "$tmp/mmcv-$MMCV_VERSION/setup.py"
  MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-2}" \
    pip_run wheel -q --no-deps --no-build-isolation "$tmp/mmcv-$MMCV_VERSION" -w "$tmp/out"
  cp "$tmp"/out/mmcv-*.whl "$WHEEL_DIR/"
fi

log "installing the OpenMMLab stack and mmspike (editable)"
pip_run install -q -c "$CONSTRAINTS" --find-links "$WHEEL_DIR" \
  -r requirements/tests.txt -e "$ROOT"

# Fail here, not in the first test, if the compiled ops did not come along.
"$VENV/bin/python" -c "import mmcv.ops, mmdet.models, mmseg.models, mmpretrain.models, spconv.pytorch, mmspike"
stamp_hash > "$VENV/.mmspike-stamp"
log "done"
