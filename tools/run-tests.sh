#!/bin/bash
# The test command: installs everything it needs, then runs the whole suite
# (unit and functional: real bash, real git, a private RabbitMQ on loopback).
# Extra arguments go to pytest, e.g. tools/run-tests.sh tests/unit -x
set -o errexit -o nounset -o pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$TOP"
tools/install-deps.sh --with-rabbitmq
export PYTHONWARNINGS=ignore::DeprecationWarning
exec .venv/bin/python -m pytest -p no:cacheprovider "${@:-tests}"
