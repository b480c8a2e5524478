#!/bin/bash
# The benchmark: prints a table of end-to-end stack times (see bench/bench.py).
set -o errexit -o nounset -o pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$TOP"
tools/install-deps.sh --for-tests
export PYTHONWARNINGS=ignore::DeprecationWarning
exec .venv/bin/python bench/bench.py "$@"
