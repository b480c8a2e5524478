"""pluginsd.runner.shell.BashSession, with no bash: Popen is replaced.

The fake process keeps the two pipe ends bash would get, so a test reads
the commands Python sends and writes the events bash would answer. Real
bash running real plugin files is tested in tests/functional.
"""

import os
import shlex
import signal
import subprocess
import time

import pytest

from pluginsd.runner import shell


class FakeBash:
    """Stands in for the bash subprocess.Popen object."""

    instances = []

    def __init__(self, args, **kwargs):
        self.args, self.kwargs = args, kwargs
        self.pid = 4242
        self.returncode = None
        self.wait_timeout = False
        self._dies = None  # [polls left, status]
        # BashSession closes its copies once bash has them: keep ours.
        cmd_r, evt_w = kwargs['pass_fds']
        self.cmd_r, self.evt_w = os.dup(cmd_r), os.dup(evt_w)
        FakeBash.instances.append(self)

    # -- what bash would do -------------------------------------------------

    def commands(self):
        """The command lines received so far."""
        os.set_blocking(self.cmd_r, False)
        try:
            data = os.read(self.cmd_r, 65536)
        except BlockingIOError:
            data = b''
        return data.decode().splitlines()

    def say(self, *events):
        """Write events, each a list of fields, as driver.sh does."""
        data = ''.join('\t'.join(e) + '\n' for e in events)
        os.write(self.evt_w, data.encode())

    def exit(self, status):
        self.returncode = status
        self.close_pipes()

    def dies_while_running(self, status):
        """Alive when the command is sent, gone right after."""
        self._dies = [1, status]

    def close_pipes(self):
        for fd in (self.cmd_r, self.evt_w):
            try:
                os.close(fd)
            except OSError:
                pass

    # -- the Popen interface BashSession uses --------------------------------

    def poll(self):
        if self._dies:
            self._dies[0] -= 1
            if self._dies[0] < 0:
                self.exit(self._dies[1])
                self._dies = None
        return self.returncode

    def wait(self, timeout=None):
        if self.wait_timeout and self.returncode is None:
            raise subprocess.TimeoutExpired('bash', timeout)
        if self.returncode is None:
            self.returncode = 0
        return self.returncode


@pytest.fixture(autouse=True)
def no_subprocess(monkeypatch):
    """No process is ever started here; killpg is recorded, not sent."""
    FakeBash.instances = []
    killed = []
    monkeypatch.setattr(shell.subprocess, 'Popen', FakeBash)
    monkeypatch.setattr(
        shell.os, 'killpg', lambda pid, sig: killed.append((pid, sig))
    )
    yield killed
    for fake in FakeBash.instances:
        fake.close_pipes()


@pytest.fixture
def session():
    s = shell.BashSession(env={'PLUGINSD_DEST': '/opt/stack'})
    yield s, FakeBash.instances[-1]
    try:
        os.close(s._evt_r)
        os.close(s._cmd_w)
    except OSError:
        pass


def test_command_quotes_every_word():
    line = shell.command('__pluginsd_run_phase', "it's", 'a b', '$(rm)', 7)
    assert shlex.split(line) == [
        '__pluginsd_run_phase',
        "it's",
        'a b',
        '$(rm)',
        '7',
    ]
    assert '$(rm)' not in line.replace("'$(rm)'", '')


def test_bash_starts_as_a_driver_in_its_own_session(session):
    _, fake = session
    assert fake.args == ['/bin/bash', '--noprofile', '--norc', shell.DRIVER]
    assert fake.kwargs['stdin'] == subprocess.DEVNULL
    assert fake.kwargs['start_new_session'] is True
    env = fake.kwargs['env']
    cmd_r, evt_w = fake.kwargs['pass_fds']
    assert env['PLUGINSD_CMD_FD'] == str(cmd_r)
    assert env['PLUGINSD_EVT_FD'] == str(evt_w)
    assert env['PLUGINSD_LIB'] == shell.LIB_DIR
    assert env['PLUGINSD_DEST'] == '/opt/stack'  # the caller's env is kept
    # Plugins' own git calls may not use ext:: or fd:: transports.
    assert 'ext' not in env['GIT_ALLOW_PROTOCOL'].split(':')


def test_run_sends_one_line_and_returns_events_until_ok(session):
    s, fake = session
    fake.say(['start', 'alpha', '1.5'], ['end', 'alpha', '0', '2.5'], ['ok'])
    seen = []
    events = s.run('__pluginsd_run_phase stack install', on_event=seen.append)
    assert fake.commands() == ['__pluginsd_run_phase stack install']
    assert events == [['start', 'alpha', '1.5'], ['end', 'alpha', '0', '2.5']]
    assert seen == events


def test_events_split_across_reads_are_joined(session, monkeypatch):
    s, fake = session
    os.write(fake.evt_w, b'step\tsett')
    reads = []
    real_read = os.read

    def read(fd, n):
        data = real_read(fd, n)
        reads.append(data)
        if len(reads) == 1:
            os.write(fake.evt_w, b'ings\talpha\nok\n')
        return data

    monkeypatch.setattr(shell.os, 'read', read)
    assert s.run('x') == [['step', 'settings', 'alpha']]
    assert len(reads) >= 2


def test_bash_exiting_mid_command_raises_with_the_events_so_far(session):
    s, fake = session
    fake.say(['start', 'alpha', '1.0'])
    fake.dies_while_running(3)
    with pytest.raises(shell.ShellExited) as err:
        s.run('__pluginsd_run_phase stack install')
    assert err.value.returncode == 3
    assert err.value.events == [['start', 'alpha', '1.0']]
    assert str(err.value) == 'bash exited with status 3'


def test_a_passed_deadline_kills_before_waiting(session, no_subprocess):
    s, fake = session
    with pytest.raises(shell.ShellTimeout):
        s.run('sleep', deadline=time.monotonic() - 1)
    assert no_subprocess == [(fake.pid, signal.SIGKILL)]


def test_a_dead_session_refuses_commands(session):
    s, fake = session
    fake.exit(1)
    assert not s.alive
    with pytest.raises(shell.ShellExited) as err:
        s.run('true')
    assert err.value.returncode == 1 and err.value.events == []


def test_a_closed_command_pipe_is_bash_gone(session, monkeypatch):
    s, fake = session

    def broken(fd, data):
        raise BrokenPipeError()

    monkeypatch.setattr(shell.os, 'write', broken)
    fake.returncode = 2
    with pytest.raises(shell.ShellExited) as err:
        s.run('true')
    assert err.value.returncode == 2


def test_deadline_kills_the_process_group(session, no_subprocess):
    s, fake = session
    fake.say(['start', 'slow', '1.0'])  # ... and then nothing
    with pytest.raises(shell.ShellTimeout) as err:
        s.run('sleep', deadline=time.monotonic() + 0.2)
    assert err.value.events == [['start', 'slow', '1.0']]
    assert no_subprocess == [(fake.pid, signal.SIGKILL)]


def test_kill_of_a_group_already_gone_is_quiet(session, monkeypatch):
    s, _ = session

    def gone(pid, sig):
        raise ProcessLookupError()

    monkeypatch.setattr(shell.os, 'killpg', gone)
    s.kill()  # no exception


def test_close_ends_the_command_pipe_and_waits(session, no_subprocess):
    s, fake = session
    s.close()
    os.set_blocking(fake.cmd_r, False)
    assert os.read(fake.cmd_r, 10) == b''  # bash would read EOF and exit
    assert fake.returncode == 0
    assert no_subprocess == []


def test_close_kills_a_session_that_lingers(session, no_subprocess):
    s, fake = session
    fake.wait_timeout = True
    calls = []
    real_wait = fake.wait

    def wait(timeout=None):
        calls.append(timeout)
        if len(calls) == 2:
            fake.wait_timeout = False
        return real_wait(timeout)

    fake.wait = wait
    s.close(timeout=3)
    assert calls == [3, None]
    assert no_subprocess == [(fake.pid, signal.SIGKILL)]
