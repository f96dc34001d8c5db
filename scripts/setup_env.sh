#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv with every pinned dependency.
#
# Idempotent: a second run checks a stamp (hash of the requirement files) and returns in seconds.
# The slow part of a fresh install is mmcv 2.1.0's compiled ops (~13 min on 2 cores): PyPI has only its
# sdist for Python 3.11, so we build the wheel once and keep it in $MMSPIKE_WHEEL_DIR (outside the repo,
# default ~/.cache/mmspike/wheels) where later runs and CI find it.
#
# CPU or CUDA. MMSPIKE_CUDA=12.6 (any X.Y) installs for that CUDA version, MMSPIKE_CUDA=cpu the CPU
# stack; unset, a GPU listed by `nvidia-smi -L` selects CUDA at nvcc's version, else the CPU stack.
# The CPU stack is exactly requirements/constraints.txt (+ the CPU mmcv wheel cached as
# $MMSPIKE_WHEEL_DIR/mmcv-<version>-*.whl). The CUDA stack: the same torch version as the CPU pin
# built for that CUDA (PyTorch's index; PyPI's own build when it is that CUDA), mmcv built once with
# CUDA ops for TORCH_CUDA_ARCH_LIST (default: the GPUs' compute capabilities) and cached under
# $MMSPIKE_WHEEL_DIR/torch<version>-cu<XY>-<archs>/, and the spconv-cu<XY> wheel of that CUDA major
# (spconv is an extra: requirements/spconv.txt is the CPU build, never installed next to spconv-cu*).
# MMSPIKE_TORCH_VERSION / MMSPIKE_TORCHVISION_VERSION pick another torch where the pinned one has no
# wheel for that CUDA. A new venv needs ~6.5 GiB (PyPI's torch is a CUDA build): with less than
# MMSPIKE_VENV_MIN_FREE_MIB (default 7168) free on its disk, the script stops before creating it.
#
#   scripts/setup_env.sh [--dry-run]     (or MMSPIKE_SETUP_DRY_RUN=1): print the plan, change nothing
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${MMSPIKE_VENV:-$ROOT/.venv}"
WHEEL_DIR="${MMSPIKE_WHEEL_DIR:-$HOME/.cache/mmspike/wheels}"
PYTHON="${PYTHON:-python3}"
CONSTRAINTS="$ROOT/requirements/constraints.txt"
MMCV_VERSION="$(sed -n 's/^mmcv==//p' "$CONSTRAINTS")"

log() { echo "[setup_env] $*"; }
die() { echo "[setup_env] error: $*" >&2; exit 1; }

DRY_RUN="${MMSPIKE_SETUP_DRY_RUN:-0}"
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    *) die "unknown argument '$arg' (the only option is --dry-run)" ;;
  esac
done

# ------------------------------------------------------------------------------------------ the plan
pin() { sed -n "s/^$1==//p" "$CONSTRAINTS"; }
TORCH_VERSION="$(pin torch)"
TORCHVISION_VERSION="$(pin torchvision)"
SPCONV_VERSION="$(pin spconv)"
# PyPI's torch wheel is built for the CUDA of its cuda-toolkit pin (13.0 -> cu130).
PYPI_CUDA="$(pin cuda-toolkit | cut -d. -f1,2)"

if [ -n "${MMSPIKE_CUDA:-}" ]; then
  CUDA="$MMSPIKE_CUDA"
  CUDA_SOURCE="MMSPIKE_CUDA"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
  command -v nvcc >/dev/null 2>&1 || die "nvidia-smi lists a GPU but nvcc is not on PATH: mmcv's \
CUDA ops need the CUDA toolkit. Install it (and put its bin/ on PATH), or set MMSPIKE_CUDA=cpu"
  CUDA="$(nvcc --version | sed -n 's/.*release \([0-9]*\.[0-9]*\).*/\1/p')"
  CUDA_SOURCE="nvcc --version, a GPU listed by nvidia-smi"
else
  CUDA=cpu
  CUDA_SOURCE="no GPU listed by nvidia-smi"
fi
case "$CUDA" in
  cpu) ;;
  [0-9]*.[0-9]*) [[ "$CUDA" =~ ^[0-9]+\.[0-9]+$ ]] || die "MMSPIKE_CUDA must be 'cpu' or X.Y (e.g. 12.6), got '$CUDA'" ;;
  *) die "MMSPIKE_CUDA must be 'cpu' or X.Y (e.g. 12.6), got '$CUDA'" ;;
esac

stamp_hash() {
  { cat "$CONSTRAINTS" "$ROOT"/requirements/*.txt "$ROOT/setup.py" "$ROOT/scripts/setup_env.sh"
    [ "$CUDA" = cpu ] || echo "$PLAN_KEY"; } | sha256sum | cut -d' ' -f1
}

PLAN=()
plan() { PLAN+=("$*"); }
show_plan() { for line in "${PLAN[@]}"; do log "plan: $line"; done; }
if [ "$CUDA" = cpu ]; then
  PLAN_KEY=cpu
  plan "target=cpu ($CUDA_SOURCE)"
  plan "torch=torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION from PyPI (requirements/constraints.txt)"
  plan "mmcv=$MMCV_VERSION with CPU ops, wheel cached as $WHEEL_DIR/mmcv-$MMCV_VERSION-*.whl"
  plan "spconv=spconv==$SPCONV_VERSION (requirements/spconv.txt)"
  plan "install=pip install -c requirements/constraints.txt --find-links $WHEEL_DIR -r requirements/tests.txt -r requirements/spconv.txt -e ."
  plan "points=pip install --no-deps -r requirements/points.txt (mmdet3d for LiDAR segmentation)"
else
  CU_TAG="cu${CUDA/./}"
  if [ -n "${MMSPIKE_TORCH_VERSION:-}" ]; then
    [ -n "${MMSPIKE_TORCHVISION_VERSION:-}" ] || die "MMSPIKE_TORCH_VERSION needs MMSPIKE_TORCHVISION_VERSION (the torchvision release of that torch)"
    TORCH_VERSION="$MMSPIKE_TORCH_VERSION"
    TORCHVISION_VERSION="$MMSPIKE_TORCHVISION_VERSION"
  fi
  if [ "$CUDA" = "$PYPI_CUDA" ] && [ -z "${MMSPIKE_TORCH_VERSION:-}" ]; then
    TORCH_INDEX=""  # PyPI's build is this CUDA: the CPU stack's own torch and CUDA runtime pins
    TORCH_SPEC=("torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION")
    TORCH_FROM="PyPI (its build is CUDA $PYPI_CUDA)"
  else
    TORCH_INDEX="https://download.pytorch.org/whl/$CU_TAG"
    TORCH_SPEC=("torch==$TORCH_VERSION+$CU_TAG" "torchvision==$TORCHVISION_VERSION+$CU_TAG")
    TORCH_FROM="$TORCH_INDEX (its CUDA runtime wheels from PyPI)"
  fi
  # The compute capabilities to build mmcv's kernels for: the GPUs here, or a portable default.
  if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
    caps=""
    if command -v nvidia-smi >/dev/null 2>&1; then
      caps="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | sort -u | paste -sd';' || true)"
    fi
    TORCH_CUDA_ARCH_LIST="${caps:-8.0;8.6;8.9;9.0}+PTX"
  fi
  ARCH_KEY="sm$(echo "$TORCH_CUDA_ARCH_LIST" | sed 's/\.//g; s/;/-sm/g; s/+PTX/ptx/')"
  MMCV_CACHE="$WHEEL_DIR/torch$TORCH_VERSION-$CU_TAG-$ARCH_KEY"
  # spconv-cuXY wheels on PyPI (tag:version); a newer minor of the same major runs the highest
  # lower one (CUDA minor-version compatibility).
  SPCONV_PKG=""
  major="${CUDA%%.*}"
  for tv in 118:2.3.8 120:2.3.6 121:2.3.8 124:2.3.8 126:2.3.8; do
    tag="${tv%%:*}"
    if [ "${tag:0:${#major}}" = "$major" ] && [ "${#tag}" = $((${#major} + 1)) ] \
        && [ "$tag" -le "${CUDA/./}" ]; then
      SPCONV_PKG="spconv-cu$tag==${tv##*:}"
    fi
  done
  PLAN_KEY="$CU_TAG $TORCH_VERSION $TORCHVISION_VERSION $TORCH_CUDA_ARCH_LIST $SPCONV_PKG"
  CUDA_CONSTRAINTS="$VENV/.mmspike-constraints-$CU_TAG.txt"
  plan "target=cuda $CUDA ($CUDA_SOURCE)"
  plan "torch=${TORCH_SPEC[*]} from $TORCH_FROM"
  plan "constraints=$CUDA_CONSTRAINTS (requirements/constraints.txt without its torch, torchvision, CUDA runtime (nvidia-*, cuda-*) and CPU spconv/cumm pins)"
  plan "mmcv=$MMCV_VERSION with CUDA ops (MMCV_WITH_OPS=1 FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST='$TORCH_CUDA_ARCH_LIST', -std=c++20), wheel cached in $MMCV_CACHE"
  if [ -n "$SPCONV_PKG" ]; then
    plan "spconv=$SPCONV_PKG"
  else
    plan "spconv=none (PyPI has no spconv-cu wheel for CUDA $CUDA: SSC 3D / mmspike.points need spconv built from source)"
  fi
  plan "install=pip install -c $CUDA_CONSTRAINTS $MMCV_CACHE/mmcv-$MMCV_VERSION-*.whl -r requirements/tests.txt ${SPCONV_PKG:+$SPCONV_PKG }-e ."
  plan "points=pip install --no-deps -r requirements/points.txt (mmdet3d for LiDAR segmentation)"
fi
if [ "$DRY_RUN" = 1 ]; then
  show_plan
  log "dry run: nothing installed"
  exit 0
fi

# ------------------------------------------------------------------------------------------ install
if [ -x "$VENV/bin/python" ] && [ -f "$VENV/.mmspike-stamp" ] \
    && [ "$(cat "$VENV/.mmspike-stamp")" = "$(stamp_hash)" ]; then
  log "environment up to date ($VENV)"
  exit 0
fi

show_plan
if [ ! -x "$VENV/bin/python" ]; then
  # PyPI's torch is a CUDA build (5.5 GiB with its nvidia-* runtime wheels), the whole venv ~6.5 GiB:
  # refuse up front rather than leave a half-installed venv behind an "OSError: No space left".
  need_mib="${MMSPIKE_VENV_MIN_FREE_MIB:-7168}"
  mkdir -p "$(dirname "$VENV")"
  free_mib="$(df -Pk "$(dirname "$VENV")" | awk 'NR == 2 {print int($4 / 1024)}')"
  if [ -n "$free_mib" ] && [ "$free_mib" -lt "$need_mib" ]; then
    die "a new $VENV needs about $need_mib MiB of free disk (torch's CUDA build from PyPI alone is \
5.5 GiB); df reports $free_mib MiB free on the disk of $(dirname "$VENV"). Free some space, or set \
MMSPIKE_VENV to a folder on a larger disk"
  fi
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
# Some machines' pip.conf name index folders that do not exist; pip warns once per package.
pip_run() { "${PIP[@]}" "$@" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2); }

# mmcv 2.1.0 from its sdist; torch >= 2.10 headers need C++20 and its setup.py hard-codes -std=c++17.
build_mmcv() {  # build_mmcv <wheel dir> <FORCE_CUDA> <what>
  log "building mmcv $MMCV_VERSION with $3 ops (one time) into $1"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  pip_run download -q --no-deps --no-build-isolation --no-binary :all: "mmcv==$MMCV_VERSION" -d "$tmp"
  tar -xzf "$tmp"/mmcv-"$MMCV_VERSION".tar.gz -C "$tmp"
  sed -i 's/-std=c++17/-std=c++20/g' "$tmp/mmcv-$MMCV_VERSION/setup.py"
  if [ "$2" = 1 ]; then
    # A CUDA toolkit may lack the cuSPARSE/cuBLAS headers torch's CUDA headers include; the
    # nvidia-* wheels torch depends on ship them.
    nv_inc="$("$VENV/bin/python" -c "import glob, os, site; print(':'.join(d for sp in \
site.getsitepackages() for d in sorted(glob.glob(os.path.join(sp, 'nvidia', '*', 'include')))))")"
    export CPATH="$nv_inc${CPATH:+:$CPATH}"
  fi
  MMCV_WITH_OPS=1 FORCE_CUDA="$2" MAX_JOBS="${MAX_JOBS:-2}" \
    pip_run wheel -q --no-deps --no-build-isolation "$tmp/mmcv-$MMCV_VERSION" -w "$tmp/out"
  mkdir -p "$1"
  cp "$tmp"/out/mmcv-*.whl "$1/"
}

if [ "$CUDA" = cpu ]; then
  pip_run install -q -c "$CONSTRAINTS" "pip==25.3" setuptools wheel
  # torch first: mmcv's build imports it (no build isolation).
  log "installing torch / torchvision"
  pip_run install -q -c "$CONSTRAINTS" torch torchvision

  mkdir -p "$WHEEL_DIR"
  if ! ls "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl >/dev/null 2>&1; then
    build_mmcv "$WHEEL_DIR" 0 "CPU (~13 min on 2 cores)"
  fi

  log "installing the OpenMMLab stack and mmspike (editable)"
  pip_run install -q -c "$CONSTRAINTS" --find-links "$WHEEL_DIR" \
    -r requirements/tests.txt -r requirements/spconv.txt -e "$ROOT"
  # mmdet3d without its declared dependencies (~120 packages): only what its modules import
  pip_run install -q --no-deps -c "$CONSTRAINTS" -r requirements/points.txt

  # Fail here, not in the first test, if the compiled ops did not come along.
  "$VENV/bin/python" -c "import mmcv.ops, mmdet.models, mmseg.models, mmpretrain.models, spconv.pytorch, mmspike"
else
  grep -v -E '^(torch|torchvision|spconv|cumm|nvidia-[a-z0-9-]*|cuda-[a-z-]*)==' "$CONSTRAINTS" \
    > "$CUDA_CONSTRAINTS"
  printf '%s\n' "${TORCH_SPEC[@]}" >> "$CUDA_CONSTRAINTS"
  pip_run install -q -c "$CUDA_CONSTRAINTS" "pip==25.3" setuptools wheel
  log "installing ${TORCH_SPEC[*]} from $TORCH_FROM"
  if [ -n "$TORCH_INDEX" ]; then
    pip_run install -q -c "$CUDA_CONSTRAINTS" --extra-index-url "$TORCH_INDEX" "${TORCH_SPEC[@]}" \
      || die "no ${TORCH_SPEC[*]} on $TORCH_INDEX (see its listing for the torch versions built \
for CUDA $CUDA): set MMSPIKE_TORCH_VERSION and MMSPIKE_TORCHVISION_VERSION to a pair that has \
$CU_TAG wheels, or MMSPIKE_CUDA to a CUDA version PyTorch builds $TORCH_VERSION for"
  else
    pip_run install -q -c "$CUDA_CONSTRAINTS" "${TORCH_SPEC[@]}"
  fi
  if ! ls "$MMCV_CACHE"/mmcv-"$MMCV_VERSION"-*.whl >/dev/null 2>&1; then
    TORCH_CUDA_ARCH_LIST="$TORCH_CUDA_ARCH_LIST" build_mmcv "$MMCV_CACHE" 1 \
      "CUDA $CUDA ($TORCH_CUDA_ARCH_LIST; tens of minutes)"
  fi
  log "installing the OpenMMLab stack, ${SPCONV_PKG:-no spconv} and mmspike (editable)"
  # The CUDA mmcv wheel by path: the CPU one of the same name in $WHEEL_DIR is never a candidate.
  pip_run install -q -c "$CUDA_CONSTRAINTS" "$(ls "$MMCV_CACHE"/mmcv-"$MMCV_VERSION"-*.whl | head -1)" \
    -r requirements/tests.txt ${SPCONV_PKG:+"$SPCONV_PKG"} -e "$ROOT"
  pip_run install -q --no-deps -c "$CUDA_CONSTRAINTS" -r requirements/points.txt
  "$VENV/bin/python" - "$CUDA" "${SPCONV_PKG:+spconv}" <<'EOF'
import sys
import torch
import mmcv.ops, mmdet.models, mmseg.models, mmpretrain.models, mmspike  # noqa: E401,F401
from mmcv.ops import get_compiling_cuda_version
cuda, spconv = sys.argv[1], sys.argv[2:]
if get_compiling_cuda_version() in ('not available', ''):
    sys.exit('mmcv was built without CUDA ops')
if not (torch.version.cuda or '').startswith(cuda.split('.')[0] + '.'):
    sys.exit(f'torch {torch.__version__} is built for CUDA {torch.version.cuda}, not {cuda}')
if spconv and spconv[0]:
    import spconv.pytorch  # noqa: F401
print('[setup_env] torch', torch.__version__, 'CUDA', torch.version.cuda, '| mmcv CUDA ops',
      get_compiling_cuda_version(), '| GPU visible:', torch.cuda.is_available())
EOF
fi
stamp_hash > "$VENV/.mmspike-stamp"
log "done"
