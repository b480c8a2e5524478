"""A private RabbitMQ broker on 127.0.0.1, started by the functional tests.

Recipe and gotchas: /work/shared/docs/rabbitmq-and-oslo-messaging.md,
section 1.
Everything (AMQP, Erlang distribution, epmd) listens on 127.0.0.1/::1 only, on
ports derived from the AMQP port P: epmd on P+1000, distribution on P+20000.
"""

import atexit
import base64
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import threading
import time

RABBIT_BIN = (
    '/usr/lib/rabbitmq/bin'  # not /usr/sbin: those wrappers su to rabbitmq
)
SERVER = os.path.join(RABBIT_BIN, 'rabbitmq-server')
CTL = os.path.join(RABBIT_BIN, 'rabbitmqctl')
EPMD = 'epmd'

# The CLI tools bind their distribution ports in 35672-35682; the rest are the
# well-known ports of a system broker and epmd.
RESERVED = set(range(35672, 35683)) | {4369, 5672, 15672, 25672}
MAX_PORT = 45000  # so that P+20000 is still a valid port
MARKER = 'PLUGINSD_TEST_RABBIT'  # env var that tags every process we start


def bounded(action, timeout=30, name='teardown'):
    """action(), given at most timeout seconds, in a daemon thread.

    For teardowns, where no test timeout is armed any more: one that waits
    on a broker the test stopped is left behind rather than hang the run.
    """
    worker = threading.Thread(target=action, name=name, daemon=True)
    worker.start()
    worker.join(timeout)


def close_transport(transport, timeout=30):
    """transport.cleanup(), given at most timeout seconds.

    It joins oslo.messaging's reply-queue thread, which may be retrying a
    broker the test stopped.
    """
    bounded(transport.cleanup, timeout, 'transport-cleanup')


def stop_server(server, timeout=30):
    """An oslo.messaging server or notification listener stopped and
    waited for, given at most timeout seconds.
    """

    def stop():
        server.stop()
        server.wait()

    bounded(stop, timeout, 'server-stop')


def _free(port):
    """True if nothing listens on port, on 127.0.0.1 nor ::1.

    (epmd binds both.)
    """
    for family, host in (
        (socket.AF_INET, '127.0.0.1'),
        (socket.AF_INET6, '::1'),
    ):
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.bind((host, port))
        except OSError as e:
            if family == socket.AF_INET6 and not socket.has_ipv6:
                continue
            if e.errno in (97, 99):  # EAFNOSUPPORT/EADDRNOTAVAIL: no ::1 here
                continue
            return False
    return True


def _new_account():
    """(vhost, user, password), random."""
    return (
        'v' + secrets.token_hex(4),
        'u' + secrets.token_hex(6),
        secrets.token_hex(16),
    )


def _password_hash(password):
    """RabbitMQ's salted SHA-256 of a password, as definitions carry it."""
    salt = secrets.token_bytes(4)
    digest = hashlib.sha256(salt + password.encode()).digest()
    return base64.b64encode(salt + digest).decode()


def pick_port(attempts=500):
    """An AMQP port P with P, P+1000 (epmd) and P+20000 (dist) usable."""
    for _ in range(attempts):
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        ports = (port, port + 1000, port + 20000)
        if port > MAX_PORT or RESERVED.intersection(ports):
            continue
        if all(_free(p) for p in ports):
            return port
    raise RuntimeError('no free port triple for a private RabbitMQ broker')


def _tail(path, lines=40):
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-lines:])
    except OSError:
        return '(missing)\n'


def _tagged_pids(tag):
    """PIDs of live processes whose environment carries our marker."""
    needle = f'{MARKER}={tag}\0'.encode()
    pids = []
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open(f'/proc/{name}/environ', 'rb') as f:
                environ = f.read() + b'\0'
            with open(f'/proc/{name}/stat', 'rb') as f:
                state = f.read().rsplit(b')', 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ and state != b'Z':  # zombies are already dead
            pids.append(int(name))
    return pids


class RabbitBroker:
    """One broker node with its own state dir, ports, cookie, epmd and account.

    base_dir must belong to this broker. restart() reuses it (same port, same
    data: durable queues and persistent messages survive).
    """

    def __init__(self, base_dir, port=None, tls=None, spare_vhosts=0):
        """``tls``: {'port', 'cacert', 'cert', 'key'} for a TLS listener
        on 127.0.0.1 beside the plain one (tests/functional/test_tls.py).
        ``spare_vhosts``: vhosts (each with its user) made at boot, handed
        out by add_vhost() before it falls back to rabbitmqctl.
        """
        self.base_dir = os.path.abspath(str(base_dir))
        self.tls = tls
        self.port = port or pick_port()
        self.epmd_port = self.port + 1000
        self.dist_port = self.port + 20000
        self.node = f'pluginsd{self.port}@localhost'
        self.user = 'u' + secrets.token_hex(6)
        self.password = secrets.token_hex(16)
        self.vhost = 'v' + secrets.token_hex(4)
        self._spares = [_new_account() for _ in range(spare_vhosts)]
        self._unused_spares = list(self._spares)
        self._tag = f'{self.port}-{secrets.token_hex(4)}'
        self._proc = None
        self._atexit = False
        self.log_dir = os.path.join(self.base_dir, 'log')
        self.out_file = os.path.join(self.base_dir, 'server.out')
        self.pid_file = os.path.join(self.base_dir, 'beam.pid')
        self.env = self._make_env()

    @property
    def url(self):
        return (
            f'rabbit://{self.user}:{self.password}@127.0.0.1:{self.port}'
            f'/{self.vhost}'
        )

    @property
    def log_file(self):
        return os.path.join(self.log_dir, f'{self.node}.log')

    @property
    def pid(self):
        """PID of beam.smp while it runs (else the launcher's)."""
        if not self.running:
            return None
        try:
            with open(self.pid_file) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return self._proc.pid

    @property
    def running(self):
        return self._proc is not None and self._proc.poll() is None

    def _make_env(self):
        # Every variable must be set before the first CLI call, or a CLI node
        # spawns a public epmd on 4369 and writes a cookie into the real HOME.
        d = self.base_dir
        dist_args = '-kernel inet_dist_use_interface {127,0,0,1}'
        env = dict(os.environ)
        env.update(
            {
                'HOME': d,  # private ~/.erlang.cookie for server and CLI
                'RABBITMQ_NODENAME': self.node,
                'RABBITMQ_NODE_IP_ADDRESS': '127.0.0.1',
                'RABBITMQ_NODE_PORT': str(self.port),
                'RABBITMQ_DIST_PORT': str(self.dist_port),
                'ERL_EPMD_PORT': str(self.epmd_port),
                'ERL_EPMD_ADDRESS': '127.0.0.1',
                'RABBITMQ_MNESIA_BASE': os.path.join(d, 'mnesia'),
                'RABBITMQ_LOG_BASE': self.log_dir,
                'RABBITMQ_CONFIG_FILE': os.path.join(
                    d, 'rabbitmq'
                ),  # + ".conf"
                'RABBITMQ_CONF_ENV_FILE': os.path.join(d, 'rabbitmq-env.conf'),
                'RABBITMQ_ENABLED_PLUGINS_FILE': os.path.join(
                    d, 'enabled_plugins'
                ),
                'RABBITMQ_PID_FILE': self.pid_file,
                'RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS': dist_args,
                'RABBITMQ_CTL_ERL_ARGS': dist_args,
                'PATH': RABBIT_BIN
                + os.pathsep
                + env.get('PATH', '/usr/bin:/bin'),
                MARKER: self._tag,  # lets stop() find strays, epmd included
            }
        )
        # A private broker must not pick up the caller's broker settings.
        for key in ('RABBITMQ_ENABLED_PLUGINS', 'RABBITMQ_USE_LONGNAME'):
            env.pop(key, None)
        return env

    def _write_files(self):
        d = self.base_dir
        os.makedirs(self.log_dir, exist_ok=True)
        # default_* only apply on first boot (empty database); a restart
        # keeps them.
        conf = os.path.join(d, 'rabbitmq.conf')
        with open(conf, 'w') as f:
            f.write(
                f'listeners.tcp.default = 127.0.0.1:{self.port}\n'
                'loopback_users.guest = true\n'
                f'default_vhost = {self.vhost}\n'
                f'default_user = {self.user}\n'
                f'default_pass = {self.password}\n'
                'default_permissions.configure = .*\n'
                'default_permissions.read = .*\n'
                'default_permissions.write = .*\n'
            )
            if self._spares:
                f.write(f'load_definitions = {self._write_definitions()}\n')
            if self.tls:
                f.write(
                    f'listeners.ssl.default = 127.0.0.1:{self.tls["port"]}\n'
                    f'ssl_options.cacertfile = {self.tls["cacert"]}\n'
                    f'ssl_options.certfile = {self.tls["cert"]}\n'
                    f'ssl_options.keyfile = {self.tls["key"]}\n'
                    'ssl_options.verify = verify_none\n'
                    'ssl_options.fail_if_no_peer_cert = false\n'
                )
        # Empty: ignore /etc/rabbitmq/rabbitmq-env.conf.
        open(os.path.join(d, 'rabbitmq-env.conf'), 'w').close()
        with open(os.path.join(d, 'enabled_plugins'), 'w') as f:
            f.write('[].\n')
        cookie = os.path.join(d, '.erlang.cookie')
        if not os.path.exists(cookie):
            fd = os.open(cookie, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
            with os.fdopen(fd, 'w') as f:
                f.write(secrets.token_hex(20))

    def start(self, timeout=180):
        """Start the node and wait until its AMQP port accepts connections."""
        if self.running:
            raise RuntimeError(f'broker {self.node} is already running')
        # Readiness is "the port accepts connections", which someone else's
        # listener would fake. (Our own epmd may legitimately still be up.)
        for port in (self.port, self.dist_port):
            if not _free(port):
                raise RuntimeError(f'port {port} of {self.node} is in use')
        self._write_files()
        if os.path.exists(self.pid_file):  # stale after a kill(); pid reads it
            os.unlink(self.pid_file)
        if not self._atexit:
            atexit.register(self.stop)
            self._atexit = True
        began = time.monotonic()
        with open(self.out_file, 'ab') as out:
            # New session (setsid): beam lives in the launcher's process group,
            # so stop() can kill the whole group if the graceful path hangs.
            self._proc = subprocess.Popen(
                [SERVER],
                env=self.env,
                cwd=self.base_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        # Polling the port is cheaper than rabbitmqctl (1 s of CPU per call,
        # taken from a CPU-bound boot); the listener opens last in the boot.
        deadline = began + timeout
        while True:
            if self._proc.poll() is not None:
                rc = self._proc.returncode
                self.stop()
                raise RuntimeError(
                    self._failure(f'exited with {rc} during boot')
                )
            try:
                with socket.create_connection(
                    ('127.0.0.1', self.port), timeout=1
                ):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    self._failure(f'not ready after {timeout} s')
                )
            time.sleep(0.2)
        self.start_seconds = time.monotonic() - began
        return self

    def _failure(self, what):
        return (
            f'RabbitMQ {self.node} (dir {self.base_dir}) {what}\n'
            f'--- {self.out_file}:\n{_tail(self.out_file)}'
            f'--- {self.log_file}:\n{_tail(self.log_file)}'
        )

    def stop(self):
        """Stop gracefully; never leave beam, erl_child_setup or epmd behind.

        Idempotent: safe to call on a stopped, killed or never started broker.
        """
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            # The sh launcher traps TERM and stops beam gracefully (2-3 s).
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                # The launcher is still alive, so its group id is still ours.
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
        # The node spawned epmd -daemon, which is reparented to PID 1 and
        # outlives it; it refuses to die while a name is still registered.
        if os.path.isdir(self.base_dir):
            subprocess.run(
                [EPMD, '-port', str(self.epmd_port), '-kill'],
                env=self.env,
                cwd=self.base_dir,
                timeout=30,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        self._kill_strays()

    def _kill_strays(self, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            pids = _tagged_pids(self._tag)
            if not pids:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f'processes of {self.node} survive: {pids}')
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)

    def restart(self, timeout=180):
        """Stop, then start again on the same data dir and port."""
        self.stop()
        return self.start(timeout)

    def kill(self):
        """SIGKILL beam, as in a crash; start() then recovers the data."""
        pid = self.pid
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL)
        try:
            self._proc.wait(60)  # the launcher exits once beam is gone
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(30)

    def ctl(self, *args, timeout=120):
        """Run rabbitmqctl against this node; returns its stdout."""
        res = subprocess.run(
            [CTL, *args],
            env=self.env,
            cwd=self.base_dir,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if res.returncode:
            raise RuntimeError(
                f'rabbitmqctl {" ".join(args)} failed '
                f'({res.returncode}):\n{res.stdout}{res.stderr}'
            )
        return res.stdout

    def _write_definitions(self):
        """The spare vhosts as a definitions file, imported at every boot
        (with the default account, which an import would otherwise skip).
        """
        accounts = [(self.vhost, self.user, self.password), *self._spares]
        definitions = {
            'vhosts': [{'name': v} for v, _, _ in accounts],
            'users': [
                {
                    'name': u,
                    'password_hash': _password_hash(p),
                    'hashing_algorithm': 'rabbit_password_hashing_sha256',
                    'tags': '',
                }
                for _, u, p in accounts
            ],
            'permissions': [
                {
                    'user': u,
                    'vhost': v,
                    'configure': '.*',
                    'write': '.*',
                    'read': '.*',
                }
                for v, u, _ in accounts
            ],
        }
        path = os.path.join(self.base_dir, 'definitions.json')
        # Password hashes: readable by this user only.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as f:
            json.dump(definitions, f)
        return path

    def add_vhost(self):
        """A fresh vhost, user and password on this broker: a spare made
        at boot, else new ones (3 rabbitmqctl calls, a CPU-second each).

        Returns (vhost, user, url).
        """
        if self._unused_spares:
            vhost, user, password = self._unused_spares.pop()
        else:
            vhost, user, password = _new_account()
            self.ctl('add_vhost', vhost)
            self.ctl('add_user', user, password)
            self.ctl('set_permissions', '-p', vhost, user, '.*', '.*', '.*')
        url = f'rabbit://{user}:{password}@127.0.0.1:{self.port}/{vhost}'
        return vhost, user, url

    def __repr__(self):
        return f'<RabbitBroker {self.node} {self.base_dir}>'
