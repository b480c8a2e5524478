"""A private PostgreSQL server on 127.0.0.1 that the tests start themselves.

initdb refuses to run as root, so when the tests run as root the server
runs as the `postgres` system user (created by Debian's package).
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid


def _bin_dir():
    dirs = sorted(glob.glob('/usr/lib/postgresql/*/bin'))
    return dirs[-1] if dirs else None


def available():
    return _bin_dir() is not None


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self):
        self.bin = _bin_dir()
        # Not under pytest's tmp dir: that is private to root, and the
        # server may run as another user.
        self.base = tempfile.mkdtemp(prefix='pluginsd-pg-')
        self.data = os.path.join(self.base, 'data')
        self.port = _free_port()
        self.user = 'postgres' if os.geteuid() == 0 else None

    def _run(self, *cmd, check=True):
        if self.user:
            cmd = ('runuser', '-u', self.user, '--', *cmd)
        return subprocess.run(
            cmd, check=check, capture_output=True, text=True, timeout=120
        )

    def start(self):
        os.makedirs(self.base, exist_ok=True)
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
        self._run(
            os.path.join(self.bin, 'initdb'),
            '-D',
            self.data,
            '-A',
            'trust',
            '-U',
            'postgres',
            '--no-sync',
        )
        self._run(
            os.path.join(self.bin, 'pg_ctl'),
            '-D',
            self.data,
            '-w',
            '-t',
            '120',
            '-l',
            os.path.join(self.base, 'server.log'),
            '-o',
            f'-h 127.0.0.1 -p {self.port} -k {self.base} -F',
            'start',
        )
        return self

    def create_database(self):
        name = 'pluginsd_' + uuid.uuid4().hex[:12]
        self._run(
            os.path.join(self.bin, 'createdb'),
            '-h',
            '127.0.0.1',
            '-p',
            str(self.port),
            '-U',
            'postgres',
            name,
        )
        return f'postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{name}'

    def stop(self):
        if os.path.isdir(self.data):
            self._run(
                os.path.join(self.bin, 'pg_ctl'),
                '-D',
                self.data,
                '-m',
                'fast',
                '-w',
                'stop',
                check=False,
            )
        shutil.rmtree(self.base, ignore_errors=True)
        time.sleep(0.1)
