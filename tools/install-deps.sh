#!/bin/bash
# Install what pluginsd needs on a fresh Debian/Ubuntu machine:
#   the system packages of bindep.txt (with --for-tests also its "test"
#   profile: rabbitmq-server, postgresql and chromium for the functional
#   tests) and a virtualenv at .venv with pluginsd and its Python
#   dependencies.
# Safe to run again: it only installs what is missing.
set -o errexit -o nounset -o pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# --for-tests: also the servers the functional tests start privately.
FOR_TESTS=False
[[ "${1:-}" == "--for-tests" ]] && FOR_TESTS=True

SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO=sudo

# The packages of bindep.txt for this machine (dpkg) and these profiles.
# bindep itself needs the virtualenv, which needs python3-venv first: so a
# small reader of the subset bindep.txt uses; bindep checks it below.
function bindep_packages {
    local line name atoms atom platform_ok profile_ok has_platform
    while read -r line || [[ -n $line ]]; do
        line=${line%%#*}
        [[ -n ${line// /} ]] || continue
        name=${line%%[[:space:]]*}
        atoms=""
        if [[ $line == *"["*"]"* ]]; then
            atoms=${line#*[}
            atoms=${atoms%%]*}
        fi
        has_platform=False platform_ok=False profile_ok=True
        for atom in $atoms; do
            case $atom in
                platform:dpkg | platform:debian | platform:ubuntu)
                    has_platform=True platform_ok=True ;;
                platform:*) has_platform=True ;;
                test) [[ $FOR_TESTS == True ]] || profile_ok=False ;;
                *) profile_ok=False ;;
            esac
        done
        if [[ $has_platform == True && $platform_ok == False ]]; then
            profile_ok=False  # a package of another platform
        fi
        if [[ $profile_ok == True ]]; then
            echo "$name"
        fi
    done < "$TOP/bindep.txt"
}

missing=()
for package in $(bindep_packages); do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null |
        grep -q 'install ok installed' || missing+=("$package")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "install-deps: installing ${missing[*]} from Debian's packages"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        "${missing[@]}" >/dev/null
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

# bindep (now in the venv) agrees that nothing of bindep.txt is missing.
profile=()
[[ $FOR_TESTS == True ]] && profile=(test)
if ! "$VENV/bin/bindep" -b "${profile[@]}" >/dev/null; then
    echo "install-deps: bindep still finds missing packages:" \
        "$("$VENV/bin/bindep" -b "${profile[@]}" | tr '\n' ' ')" >&2
    exit 1
fi
