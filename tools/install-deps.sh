#!/bin/bash
# Install what pluginsd needs on a fresh Debian/Ubuntu machine:
#   system packages (git, bash, gawk; with --for-tests also rabbitmq-server,
#   postgresql and chromium for the functional tests)
#   and a virtualenv at .venv with pluginsd and its Python dependencies.
# Safe to run again: it only installs what is missing.
set -o errexit -o nounset -o pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# --for-tests: also the servers the functional tests start privately.
FOR_TESTS=False
[[ "${1:-}" == "--for-tests" ]] && FOR_TESTS=True

SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO=sudo

missing=()
command -v git >/dev/null || missing+=(git)
command -v gawk >/dev/null || missing+=(gawk)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if [[ $FOR_TESTS == True ]]; then
    [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || missing+=(rabbitmq-server)
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
    command -v chromium >/dev/null || missing+=(chromium)
fi
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "install-deps: installing ${missing[*]} from Debian's packages"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [[ $FOR_TESTS == True ]]; then
    # The packages start system servers where systemd runs; the tests start
    # their own private ones on free ports and need none.
    $SUDO systemctl disable --now rabbitmq-server postgresql >/dev/null 2>&1 || true
fi

VENV=$TOP/.venv
if [[ ! -x $VENV/bin/python ]]; then
    python3 -m venv "$VENV"
fi
stamp=$VENV/.pluginsd-deps
want=$(cat "$TOP/requirements.txt" "$TOP/test-requirements.txt" \
    "$TOP/doc/requirements.txt" "$TOP/setup.cfg" | md5sum)
if [[ ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
    "$VENV/bin/pip" install -q --disable-pip-version-check \
        -r "$TOP/requirements.txt" -r "$TOP/test-requirements.txt" 2>&1 \
        | grep -v '^WARNING: Location' || true
    "$VENV/bin/pip" install -q --disable-pip-version-check -e "$TOP" 2>&1 \
        | grep -v '^WARNING: Location' || true
    "$VENV/bin/python" -c 'import pluginsd.cmd.ctl' # fail here if the install did
    echo "$want" > "$stamp"
fi
