"""Real pluginsd processes on a real broker: one daemon, several agents."""

import os
import signal
import subprocess
import sys
import time

from pluginsd import conf as pluginsd_conf
from pluginsd import keys
from pluginsd import rpc
from pluginsd.daemon import rpcapi
from pluginsd.rpc import signing
from tests.functional import aio
from tests.functional import rabbit as rabbit_mod

BIN = os.path.dirname(sys.executable)
CTL_TIMEOUT = 30  # pluginsctl --timeout in tests


def write_conf(path, groups):
    with open(path, 'w') as f:
        for group, options in groups.items():
            f.write(f'[{group}]\n')
            for key, value in options.items():
                if isinstance(value, (list, tuple)):
                    value = ','.join(value)
                f.write(f'{key} = {value}\n')
            f.write('\n')
    return path


def base_groups(url, state, host, **extra):
    groups = {
        'DEFAULT': {
            'transport_url': url,
            'state_path': state,
            'host': host,
            'log_file': os.path.join(state, 'service.log'),
            'debug': 'True',
        },
        'oslo_messaging_rabbit': {
            # Measured (docs/rabbitmq-and-oslo-messaging.md): durable queues
            # keep results across a broker restart; short reconnects.
            'amqp_durable_queues': 'True',
            'rabbit_retry_interval': 1,
            'rabbit_retry_backoff': 0,
            'rabbit_interval_max': 2,
            'kombu_reconnect_delay': 0.5,
            'heartbeat_timeout_threshold': 10,
        },
        'runner': {'package_installer': 'noop'},
        'agent': {'heartbeat_interval': 1, 'result_resend_interval': 2},
        'daemon': {
            'agent_down_time': 6,
            'republish_interval': 3,
            'node_wait_timeout': 30,
        },
    }
    for group, options in extra.items():
        groups.setdefault(group, {}).update(options)
    return groups


class Process:
    def __init__(self, command, conf_path, state, env=None):
        self.command = command
        self.conf_path = conf_path
        self.state = state
        self.env = env
        self.proc = None

    @property
    def log(self):
        return os.path.join(self.state, 'service.log')

    def start(self):
        os.makedirs(self.state, exist_ok=True)
        out = open(os.path.join(self.state, 'stdout.log'), 'ab')
        self.proc = subprocess.Popen(
            [os.path.join(BIN, self.command), '--config-file', self.conf_path],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ, **(self.env or {})),
            start_new_session=True,
        )
        return self

    def terminate(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout=60):
        if self.proc and self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode if self.proc else None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def log_text(self):
        try:
            with open(self.log, errors='replace') as f:
                return f.read()
        except OSError:
            return ''


class Cluster:
    """A daemon and agents, each with its own config, state dir and DEST."""

    def __init__(self, base, url, allowed, env=None, **daemon_extra):
        self.base = str(base)
        self.url = url
        self.allowed = allowed
        self.env = env or {}
        self.agents = {}
        state = os.path.join(self.base, 'daemon')
        os.makedirs(state, exist_ok=True)
        # Keys, as an operator makes them with pluginsd-manage key create:
        # the daemon's, an admin's and a reader's; agents get theirs in
        # add_agent, pre-seeded as accepted (see accepted_keys_dir).
        self.keys_dir = os.path.join(self.base, 'keys')
        self.daemon_key = self.make_key('daemon')
        self.admin_key = self.make_key('admin')
        self.reader_key = self.make_key('reader')
        self.accepted_dir = os.path.join(self.base, 'accepted')
        os.makedirs(self.accepted_dir, exist_ok=True)
        security = {
            'key_file': self.key_path('daemon'),
            'accepted_keys_dir': self.accepted_dir,
            'operator_keys': [
                f'admin:{self.key_path("admin")}.pub',
                f'reader:{self.key_path("reader")}.pub',
            ],
            # pluginsctl reads this file too: it signs as the admin.
            'operator_key_file': self.key_path('admin'),
        }
        daemon_extra = dict(daemon_extra)
        security.update(daemon_extra.pop('security', {}))
        self.daemon_security, self.daemon_extra = security, daemon_extra
        self.daemon_conf = write_conf(
            os.path.join(self.base, 'daemon.conf'),
            base_groups(
                url, state, 'daemon', security=security, **daemon_extra
            ),
        )
        self.daemon = Process('pluginsd', self.daemon_conf, state, self.env)
        self.daemons = {'daemon': self.daemon}
        self.conf = pluginsd_conf.new_conf()
        self.conf(['--config-file', self.daemon_conf], project='pluginsd')
        self.transport = rpc.get_transport(self.conf)
        self.api = rpcapi.DaemonAPI(
            self.conf,
            self.transport,
            timeout=30,
            signer=signing.Signer(self.admin_key, 'operator'),
        )
        # Polls while the daemon may not be up yet: a call to a queue that
        # does not exist is dropped and only times out.
        self.poll_api = rpcapi.DaemonAPI(
            self.conf,
            self.transport,
            timeout=2,
            signer=signing.Signer(self.reader_key, 'operator'),
        )

    def add_daemon(self, host):
        """Another daemon on the same database and broker (not started).

        It signs with the same daemon key: agents trust one daemon key.
        """
        state = os.path.join(self.base, host)
        os.makedirs(state, exist_ok=True)
        path = write_conf(
            os.path.join(self.base, f'{host}.conf'),
            base_groups(
                self.url,
                state,
                host,
                security=self.daemon_security,
                **self.daemon_extra,
            ),
        )
        self.daemons[host] = Process('pluginsd', path, state, self.env)
        return self.daemons[host]

    def upgrade_db(self):
        """`pluginsd-manage db upgrade`: a daemon never migrates by itself."""
        proc = subprocess.run(
            [
                os.path.join(BIN, 'pluginsd-manage'),
                '--config-file',
                self.daemon_conf,
                'db',
                'upgrade',
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=dict(os.environ, **self.env),
        )
        assert proc.returncode == 0, proc.stderr

    def key_path(self, name):
        return os.path.join(self.keys_dir, f'{name}.key')

    def make_key(self, name):
        pair = keys.KeyPair.generate()
        pair.save(self.key_path(name))
        return pair

    def add_agent(self, host, roles, accepted=True, **extra):
        state = os.path.join(self.base, host)
        os.makedirs(state, exist_ok=True)
        key = self.make_key(host)
        if accepted:
            keys.private_write(
                os.path.join(self.accepted_dir, f'{host}.pub'), key.public
            )
        extra = dict(extra)
        security = {
            'key_file': self.key_path(host),
            'daemon_public_keys': [self.key_path('daemon') + '.pub'],
        }
        security.update(extra.pop('security', {}))
        groups = base_groups(self.url, state, host, security=security, **extra)
        groups['agent'].update(
            roles=roles,
            dest=os.path.join(state, 'dest'),
            allowed_sources=self.allowed,
        )
        path = write_conf(os.path.join(self.base, f'{host}.conf'), groups)
        self.agents[host] = Process('pluginsd-agent', path, state, self.env)
        return self.agents[host]

    def start(self, timeout=60):
        self.upgrade_db()
        self.daemon.start()
        for agent in self.agents.values():
            agent.start()
        self.wait_nodes(set(self.agents), timeout)

    def wait_nodes(self, hosts, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                up = {
                    n['host']
                    for n in self.poll_api.list_nodes({})
                    if n['state'] == 'up'
                }
                if hosts <= up:
                    return
            except Exception:
                pass
            time.sleep(0.3)
        raise AssertionError(
            f'nodes {hosts} not up in {timeout} s; daemon log:\n'
            + self.daemon.log_text()[-3000:]
        )

    def ctl(self, *args, timeout=300):
        return subprocess.run(
            [
                os.path.join(BIN, 'pluginsctl'),
                '--config-file',
                self.daemon_conf,
                # Not the 10 s a user waits by default: on a loaded test
                # machine pluginsctl's own start-up can take most of it.
                # (test_cli_waits.py holds pluginsctl to its --timeout.)
                '--timeout',
                str(CTL_TIMEOUT),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(os.environ, **self.env),
        )

    def wait_run(self, run_id, timeout=120):
        return aio.wait_final(self.api, run_id, timeout)

    def stop(self):
        for agent in self.agents.values():  # in parallel: each may wait
            agent.terminate()
        for agent in self.agents.values():
            agent.stop()
        for daemon in self.daemons.values():
            daemon.stop()
        rabbit_mod.close_transport(self.transport)
