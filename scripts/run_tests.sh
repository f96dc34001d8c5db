#!/usr/bin/env bash
# README command 2: set up .venv (idempotent) and run the test suite.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup_env.sh
# One thread per test process: two xdist workers share the 2 cores of a CI machine.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# Two workers: the suite is dominated by single-threaded model steps and subprocess runs.
exec "$ROOT/.venv/bin/python" -m pytest -q -n "${PYTEST_WORKERS:-2}" tests "$@"
