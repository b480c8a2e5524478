#!/bin/bash
# The test command: installs everything it needs, then runs the whole suite
# (unit and functional: real bash, real git, a private RabbitMQ on loopback)
# on SQLite, then the functional tests that use the daemon's database again
# on a private PostgreSQL server.
# Arguments go to a single pytest run instead, e.g. tools/run-tests.sh tests/unit -x
set -o errexit -o nounset -o pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$TOP"
tools/install-deps.sh --for-tests
export PYTHONWARNINGS=ignore::DeprecationWarning
pytest=(.venv/bin/python -m pytest -p no:cacheprovider)
if [[ $# -gt 0 ]]; then
    exec "${pytest[@]}" "$@"
fi
# Most of a functional test is waiting (for a broker, a heartbeat, a
# phase), so several workers (pytest-xdist, each with its own broker and
# PostgreSQL) keep the suite short even on two cores; work stealing evens
# out the long tests. PLUGINSD_TEST_WORKERS sets another number.
workers=(-n "${PLUGINSD_TEST_WORKERS:-3}" --dist worksteal)
"${pytest[@]}" "${workers[@]}" tests
# Again on PostgreSQL, the tests where the database decides: the run
# engine's compare-and-swap and leases (two daemons), retries and lost
# nodes, extensions' own migrations, and the daemon DevStack starts.
echo "== the functional tests where the database matters, on PostgreSQL"
PLUGINSD_TEST_DB=postgresql "${pytest[@]}" "${workers[@]}" \
    tests/functional/test_engine.py tests/functional/test_multinode.py \
    tests/functional/test_extensions.py tests/functional/test_devstack_plugin.py
