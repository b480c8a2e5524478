"""Unit tests: no broker, no daemon process; each takes seconds at most."""

import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
# Generous for a loaded 2-core machine; a unit test taking longer is a bug.
UNIT_TIMEOUT = 30


def pytest_collection_modifyitems(items):
    # Called with every collected item, functional ones too: only ours.
    for item in items:
        if not str(item.path).startswith(HERE + os.sep):
            continue
        if item.get_closest_marker('timeout') is None:
            item.add_marker(pytest.mark.timeout(UNIT_TIMEOUT))
