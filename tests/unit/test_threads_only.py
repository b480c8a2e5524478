"""pluginsd processes run on native threads: eventlet is never loaded."""

import subprocess
import sys

import pytest

# What each console script imports before it parses its options.
ENTRY_POINTS = [
    'pluginsd.cmd.agent',
    'pluginsd.cmd.daemon',
    'pluginsd.cmd.ctl',
    'pluginsd.cmd.manage',
]
CHECK = """
import sys
import {module}
from oslo_service import backend
print(sys.modules.get('eventlet') is None, 'greenlet' in sys.modules,
      backend.get_backend_type().value)
"""


@pytest.mark.parametrize('module', ENTRY_POINTS)
def test_no_eventlet_in_a_pluginsd_process(module):
    # A fresh interpreter: this test process may have imported anything.
    out = subprocess.run(
        [sys.executable, '-c', CHECK.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ['True', 'False', 'threading']
