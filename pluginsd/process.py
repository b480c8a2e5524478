"""Child processes that a phase deadline and a cancel can stop.

Everything a node runs for a phase -- bash, git, the package installer --
must end when the phase's deadline passes or the run is cancelled, or one
hung ``apt-get`` wedges the node for every later run. Bash has its own
session (runner.shell); every other command runs through :func:`run`,
which starts it in a process group of its own, waits no longer than the
deadline of the :class:`Scope` the calling thread is in, and registers it
so that :meth:`Scope.kill` (cancel, agent stop) kills the whole group at
once. The daemon plans inside a scope too (its deadline is ``[daemon]
phase_timeout``; cancel kills it). Outside a scope commands run unbounded.
"""

import os
import signal
import subprocess
import threading
import time

_current = threading.local()


class Stopped(Exception):
    """A command was killed: the deadline passed, or the scope was killed."""

    def __init__(self, reason, command):
        self.reason = reason  # 'deadline', 'cancelled' or 'stopping'
        self.command = command
        super().__init__(f'{command} killed: {reason}')


class Scope:
    """The processes of one phase on one node."""

    def __init__(self, deadline=None):
        self.deadline = deadline  # a time.monotonic() value, or None
        self.killed = None  # why kill() was called
        self._procs = set()
        self._lock = threading.Lock()

    def __enter__(self):
        self._outer = getattr(_current, 'scope', None)
        _current.scope = self
        return self

    def __exit__(self, *exc):
        _current.scope = self._outer

    def left(self):
        if self.deadline is None:
            return None
        return max(self.deadline - time.monotonic(), 0)

    def kill(self, reason):
        """Kill every process of the scope now; later ones never start."""
        with self._lock:
            self.killed = reason
            procs = list(self._procs)
        for proc in procs:
            _killpg(proc)

    def adopt(self, proc):
        """Kill ``proc`` with the scope: a process group leader started
        elsewhere, such as a bash session.
        """
        with self._lock:
            self._procs.add(proc)
            killed = self.killed
        if killed:
            _killpg(proc)

    def _start(self, cmd, kwargs):
        with self._lock:
            if self.killed:
                raise Stopped(self.killed, _name(cmd))
            if self.deadline is not None and self.left() <= 0:
                raise Stopped('deadline', _name(cmd))
            proc = subprocess.Popen(cmd, start_new_session=True, **kwargs)
            self._procs.add(proc)
        return proc

    def _done(self, proc):
        with self._lock:
            self._procs.discard(proc)


def current():
    return getattr(_current, 'scope', None)


def _name(cmd):
    return ' '.join(str(c) for c in cmd[:3])


def _killpg(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run(cmd, input=None, **kwargs):
    """Like ``subprocess.run`` (no ``check``), bounded by the current scope.

    Raises :class:`Stopped` when the scope's deadline passes or the scope is
    killed while the command runs; its process group is killed then.
    """
    scope = current()
    if scope is None:
        return subprocess.run(cmd, input=input, **kwargs)
    if input is not None:
        kwargs['stdin'] = subprocess.PIPE
    if kwargs.pop('capture_output', False):
        kwargs['stdout'] = kwargs['stderr'] = subprocess.PIPE
    proc = scope._start(cmd, kwargs)
    try:
        try:
            out, err = proc.communicate(input, timeout=scope.left())
        except subprocess.TimeoutExpired:
            _killpg(proc)
            proc.communicate()
            raise Stopped('deadline', _name(cmd)) from None
        # Whatever the command made of it: a killed scope stops the phase.
        if scope.killed:
            raise Stopped(scope.killed, _name(cmd))
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    finally:
        # A command that ended by itself keeps what it started (a package's
        # post-install may start a service); only a stopped one loses it.
        scope._done(proc)


def call(cmd, **kwargs):
    """Like ``subprocess.call``, bounded by the current scope."""
    return run(cmd, **kwargs).returncode
