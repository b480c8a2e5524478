"""Fixtures every test may use (unit and functional)."""

import time

import pytest

# Before any test module imports an oslo library: pluginsd selects
# oslo.service's threading backend, so tests run threads-only as the
# services do.
import pluginsd  # noqa: F401

# A fixed, recent epoch: times in tests read the same in every run.
T0 = 1_800_000_000.0


@pytest.fixture
def clock(monkeypatch):
    """A controllable ``time.time()``: a one-item list holding "now".

    ``clock[0] += 5`` moves time on by five seconds for every module that
    calls ``time.time()``. Monotonic time is left alone (deadlines and
    sleeps still work).
    """
    now = [T0]
    monkeypatch.setattr(time, 'time', lambda: now[0])
    return now
