#!/bin/bash
# Regenerate etc/pluginsd/pluginsd.conf.sample from the option definitions.
# tests/unit/test_sample_config.py fails until this is run after any option
# change (or after an upgrade of oslo.messaging / oslo.log).
set -o errexit -o nounset -o pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$TOP"
exec .venv/bin/oslo-config-generator \
    --config-file etc/oslo-config-generator/pluginsd.conf "$@"
