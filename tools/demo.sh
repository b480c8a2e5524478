#!/bin/bash
# The all-in-one demo: the daemon and one local agent in one process, on
# the embedded transport, stack the example plugins of examples/ and print
# the node x plugin x phase table.  State goes to ./state/demo.
set -o errexit -o nounset -o pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$TOP"
tools/install-deps.sh

STATE=${PLUGINSD_DEMO_STATE:-$TOP/state/demo}
export PLUGINSD_EXAMPLES_GIT=$STATE/examples-git
mkdir -p "$STATE"

# Plugins are git repositories: publish each example as one.
for dir in examples/plugins/*/; do
    name=$(basename "$dir")
    repo=$PLUGINSD_EXAMPLES_GIT/$name
    rm -rf "$repo"
    mkdir -p "$repo"
    cp -r "$dir/." "$repo/"
    git -C "$repo" init -q -b master
    git -C "$repo" add -A
    git -C "$repo" -c user.name=pluginsd -c user.email=demo@pluginsd.invalid \
        commit -q -m "$name example plugin"
done

ctl=(.venv/bin/pluginsctl --all-in-one --state-dir "$STATE"
    --dest "$STATE/dest" --config-file etc/pluginsd/all-in-one.conf)
echo "== pluginsctl plan examples/local.conf"
"${ctl[@]}" plan examples/local.conf
echo "== pluginsctl stack examples/local.conf"
"${ctl[@]}" stack "${@}" examples/local.conf

# Say what the run left behind and how to undo it: the example plugins start
# a service (run_process), as DevStack's do.
echo "== left running"
left=0
for pidfile in "$STATE/dest/data/pluginsd-services/"*.pid; do
    [[ -s $pidfile ]] || continue
    read -r pid < "$pidfile" || true
    if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
        echo "$(basename "$pidfile" .pid) (pid $pid, started by run_process)"
        left=1
    fi
done
if [[ $left == 0 ]]; then
    echo "nothing"
fi
echo "== stop it with (the plugins' unstack phase):"
printf 'PLUGINSD_EXAMPLES_GIT=%q' "$PLUGINSD_EXAMPLES_GIT"
printf ' %q' "${ctl[@]}" unstack examples/local.conf
echo
