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
# phase), so two workers (pytest-xdist, each with its own broker and
# PostgreSQL) keep the suite short on two cores; PLUGINSD_TEST_WORKERS sets
# another number.
workers=(-n "${PLUGINSD_TEST_WORKERS:-2}")
"${pytest[@]}" "${workers[@]}" tests
echo "== the functional tests again, on PostgreSQL"
PLUGINSD_TEST_DB=postgresql "${pytest[@]}" "${workers[@]}" \
    tests/functional/test_contract.py tests/functional/test_cli.py \
    tests/functional/test_multinode.py tests/functional/test_extensions.py
# Not test_devstack_plugin.py here: on one shared PostgreSQL its DevStack-made
# daemon and the test's all-in-one share a database and a host name, so one's
# agent allow-list refuses the other's plugin (a fixture to fix; it runs on
# SQLite above).
