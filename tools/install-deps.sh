#!/bin/bash
# Install what pluginsd needs on a fresh Debian/Ubuntu machine:
#   system packages (git, bash, gawk; rabbitmq-server with --with-rabbitmq)
#   and a virtualenv at .venv with pluginsd and its Python dependencies.
# Safe to run again: it only installs what is missing.
set -o errexit -o nounset -o pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WITH_RABBITMQ=False
[[ "${1:-}" == "--with-rabbitmq" ]] && WITH_RABBITMQ=True

SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO=sudo

missing=()
command -v git >/dev/null || missing+=(git)
command -v gawk >/dev/null || missing+=(gawk)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if [[ $WITH_RABBITMQ == True && ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]]; then
    missing+=(rabbitmq-server)
fi
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "install-deps: installing ${missing[*]} from Debian's packages"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [[ $WITH_RABBITMQ == True ]]; then
    # The package starts a system broker where systemd runs; the tests
    # start their own private brokers and need none.
    $SUDO systemctl disable --now rabbitmq-server >/dev/null 2>&1 || true
fi

VENV=$TOP/.venv
if [[ ! -x $VENV/bin/python ]]; then
    python3 -m venv "$VENV"
fi
stamp=$VENV/.pluginsd-deps
want=$(cat "$TOP/requirements.txt" "$TOP/test-requirements.txt" "$TOP/setup.cfg" | md5sum)
if [[ ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
    "$VENV/bin/pip" install -q --disable-pip-version-check \
        -r "$TOP/requirements.txt" -r "$TOP/test-requirements.txt" 2>&1 \
        | grep -v '^WARNING: Location' || true
    "$VENV/bin/pip" install -q --disable-pip-version-check -e "$TOP" 2>&1 \
        | grep -v '^WARNING: Location' || true
    "$VENV/bin/python" -c 'import pluginsd.cmd.ctl' # fail here if the install did
    echo "$want" > "$stamp"
fi
