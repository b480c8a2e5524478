"""A long-lived bash process that behaves like one stack.sh run.

Python drives ``lib/driver.sh`` over two pipes: commands go in one line at
a time, events come back tab-separated, and ``ok`` closes each command. If
bash exits instead (errexit, ``exit``, ``die``), the command raises
:class:`ShellExited` with bash's exit status and the events seen so far.
"""

import os
import select
import shlex
import signal
import subprocess
import sys
import time

from pluginsd import git

LIB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'lib')
DRIVER = os.path.join(LIB_DIR, 'driver.sh')


class ShellExited(Exception):
    def __init__(self, returncode, events):
        super().__init__(f'bash exited with status {returncode}')
        self.returncode = returncode
        self.events = events


class ShellTimeout(Exception):
    def __init__(self, events):
        super().__init__('deadline passed; bash process group killed')
        self.events = events


def command(*words):
    """One shell command line with every word quoted."""
    return ' '.join(shlex.quote(str(w)) for w in words)


class BashSession:
    def __init__(
        self, bash='/bin/bash', env=None, output=None, cwd=None, deadline=None
    ):
        # Bounds every run() that names no deadline of its own.
        self.deadline = deadline
        cmd_r, self._cmd_w = os.pipe()
        self._evt_r, evt_w = os.pipe()
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env.update(
            # Plugins' own git calls may not use ext:: or fd:: either.
            GIT_ALLOW_PROTOCOL=':'.join(git.ALLOWED_PROTOCOLS),
            PLUGINSD_LIB=LIB_DIR,
            # The library's install_bindep runs bindep with our Python.
            PLUGINSD_PYTHON=sys.executable,
            PLUGINSD_CMD_FD=str(cmd_r),
            PLUGINSD_EVT_FD=str(evt_w),
        )
        self.proc = subprocess.Popen(
            [
                bash,
                '--noprofile',
                '--norc',
                DRIVER,
            ],
            stdin=subprocess.DEVNULL,
            stdout=output or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            pass_fds=(cmd_r, evt_w),
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
        os.close(cmd_r)
        os.close(evt_w)
        self._buffer = b''

    @property
    def alive(self):
        return self.proc.poll() is None

    def run(self, line, on_event=None, deadline=None):
        """Run one command line; return its events (lists of fields).

        ``on_event`` sees each event as it arrives. ``deadline`` is a
        ``time.monotonic()`` value after which the process group is killed.
        """
        events = []
        if deadline is None:
            deadline = self.deadline
        if not self.alive:
            raise ShellExited(self.proc.returncode, events)
        try:
            os.write(self._cmd_w, line.encode() + b'\n')
        except BrokenPipeError as e:
            raise ShellExited(self.proc.wait(), events) from e
        while True:
            for fields in self._read_events(deadline, events):
                if fields == ['ok']:
                    return events
                events.append(fields)
                if on_event:
                    on_event(fields)

    def _read_events(self, deadline, events):
        while b'\n' not in self._buffer:
            wait = 0.5
            if deadline is not None:
                wait = min(wait, max(deadline - time.monotonic(), 0))
                if wait == 0:
                    self.kill()
                    raise ShellTimeout(events)
            ready, _, _ = select.select([self._evt_r], [], [], wait)
            if ready:
                chunk = os.read(self._evt_r, 65536)
                if chunk:
                    self._buffer += chunk
                    continue
                self.proc.wait()  # EOF: every writer is gone, bash too
            # Quiet: a plugin's background child may hold the pipe open
            # after bash died, so the process state decides.
            if self.proc.poll() is not None:
                self._drain()
                if b'\n' not in self._buffer:
                    raise ShellExited(self.proc.returncode, events)
                break
        lines = self._buffer.split(b'\n')
        self._buffer = lines.pop()
        return [line.decode(errors='replace').split('\t') for line in lines]

    def _drain(self):
        while select.select([self._evt_r], [], [], 0)[0]:
            chunk = os.read(self._evt_r, 65536)
            if not chunk:
                return
            self._buffer += chunk

    def kill(self, sig=signal.SIGKILL):
        """Signal the whole process group: bash and everything it started."""
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def close(self, timeout=10):
        """End the session: bash reads EOF and exits; kill it if it lingers."""
        try:
            os.close(self._cmd_w)
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()
        os.close(self._evt_r)
