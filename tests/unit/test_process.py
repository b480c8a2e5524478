"""pluginsd.process: commands that a deadline and a kill really stop."""

import os
import subprocess
import threading
import time

import pytest

from pluginsd import process


def _alive(pid):
    try:
        with open(f'/proc/{pid}/stat') as f:
            # A zombie is dead too: it only waits for its parent.
            return f.read().split(')')[-1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def alive(pid):
    """Whether ``pid`` still lives a moment after a SIGKILL.

    Delivering a signal is not instantaneous.
    """
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return _alive(pid)


def child_pids(path):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if os.path.exists(path) and open(path).read().count('\n') >= 2:
            return [int(p) for p in open(path).read().split()]
        time.sleep(0.02)
    raise AssertionError('the command did not start')


# bash starts a grandchild in the background and waits: both must die.
SCRIPT = 'sleep 300 & echo $! >> "$1"; echo $$ >> "$1"; wait'


def test_outside_a_scope_commands_run_as_before():
    proc = process.run(['sh', '-c', 'echo hi'], capture_output=True, text=True)
    assert (proc.returncode, proc.stdout) == (0, 'hi\n')


def test_deadline_kills_the_whole_process_group(tmp_path):
    pids = str(tmp_path / 'pids')
    with process.Scope(time.monotonic() + 0.5):
        with pytest.raises(process.Stopped) as err:
            process.run(['bash', '-c', SCRIPT, 'x', pids])
    assert err.value.reason == 'deadline'
    for pid in child_pids(pids):
        assert not alive(pid)
    # Once the deadline has passed nothing else starts.
    scope = process.Scope(time.monotonic() - 1)
    with scope, pytest.raises(process.Stopped):
        process.call(['true'])


def test_kill_from_another_thread_stops_at_once(tmp_path):
    pids = str(tmp_path / 'pids')
    scope = process.Scope(time.monotonic() + 300)
    outcome = {}

    def work():
        with scope:
            try:
                process.call(['bash', '-c', SCRIPT, 'x', pids])
            except process.Stopped as e:
                outcome['reason'] = e.reason

    thread = threading.Thread(target=work)
    thread.start()
    started = child_pids(pids)
    scope.kill('cancelled')
    thread.join(30)
    assert outcome == {'reason': 'cancelled'}
    for pid in started:
        assert not alive(pid)
    with scope, pytest.raises(process.Stopped):
        process.call(['true'])


def test_output_and_status_within_a_scope():
    with process.Scope(time.monotonic() + 30):
        proc = process.run(
            ['sh', '-c', 'cat; echo err >&2; exit 3'],
            input='in',
            capture_output=True,
            text=True,
        )
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, 'in', 'err\n')
    assert isinstance(proc, subprocess.CompletedProcess)
