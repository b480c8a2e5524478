"""pluginsd's own DevStack plugin (devstack/), run by pluginsd itself.

The all-in-one daemon stacks a git copy of this tree's devstack/ folder: the
plugin writes a config pointing at a private RabbitMQ vhost, starts a real
``pluginsd`` daemon and ``pluginsd-agent`` with run_process, and waits for the
agent to register.  Then unstack stops both and clean removes their state.
"""

import configparser
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import sqlalchemy

from tests import gitrepos
from tests.functional import aio

TOP = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
BIN = os.path.dirname(sys.executable)  # the venv where pluginsd is installed
SERVICES = ('pluginsd', 'pluginsd-agent')
STACK = ['pre-install', 'install', 'post-config', 'extra', 'test-config']


def plugin_repo(path):
    """A git repo holding a copy of the working tree's devstack/ folder, so
    the test runs what is on disk, committed or not.
    """
    shutil.copytree(
        os.path.join(TOP, 'devstack'),
        os.path.join(path, 'devstack'),
        ignore=shutil.ignore_patterns('*.pyc', '__pycache__', '*~', '*.swp'),
    )
    return gitrepos.make_repo(
        path, {'README': 'pluginsd devstack/ under test\n'}
    )


def local_conf(repo, settings):
    lines = [
        f'{name}={shlex.quote(str(value))}' for name, value in settings.items()
    ]
    return (
        '[[local|localrc]]\n' + '\n'.join(lines) + '\n'
        f'enable_plugin pluginsd {repo}\n'
        '\n'
        # Merged after the plugin's post-config, before extra: the first
        # heartbeat that finds the daemon up comes within a second.
        '[[post-config|$PLUGINSD_CONF]]\n'
        '[agent]\n'
        'heartbeat_interval = 1\n'
    )


def daemon_tables(state_dir):
    """Tables of the daemon database: SQLite in the state dir, or the
    PostgreSQL database the suite runs on (PLUGINSD_TEST_DB=postgresql).
    """
    url = os.environ.get('OS_DATABASE__CONNECTION')
    if not url:
        path = state_dir / 'pluginsd.sqlite'
        if not path.exists():
            return []
        url = f'sqlite:///{path}'
    engine = sqlalchemy.create_engine(url)
    try:
        return sqlalchemy.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def own_database_harness(tmp_path):
    """The all-in-one that runs DevStack, on a database of its own.

    The daemon DevStack starts uses the suite's database (SQLite in its
    state dir, or PostgreSQL through OS_DATABASE__CONNECTION); the
    harness must not share it, or each would see the other's nodes.
    """
    url = 'sqlite:///' + str(tmp_path / 'harness.sqlite')
    return aio.AllInOne(tmp_path / 'aio', **{'database.connection': url})


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def stat_fields(pid):
    """Fields after "(comm)" in /proc/PID/stat: state ppid pgrp session ...,
    or None when the process is gone.
    """
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()
    except OSError:
        return None


def alive(pid):
    fields = stat_fields(pid)
    return fields is not None and fields[0] not in ('Z', 'X')


def kill_group(pid):
    """SIGKILL the session run_process started, if it still leads it."""
    fields = stat_fields(pid)
    if fields is not None and fields[3] == str(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass


def describe(view, service_dir):
    """What to print when a run did not complete: error, failed tails, logs."""
    parts = [f'run {view["state"]}: {view["error"]}']
    for r in view['results']:
        if r['status'] not in ('ok', 'skipped'):
            parts.append(
                f'{r["node"]} {r["plugin"]} {r["phase"]} {r["status"]}:'
                f'\n{r["tail"]}'
            )
    for service in SERVICES:
        path = os.path.join(service_dir, f'{service}.log')
        if os.path.exists(path):
            with open(path, errors='replace') as f:
                parts.append(f'--- {path}\n{f.read()[-2000:]}')
    return '\n'.join(parts)


@pytest.mark.timeout(360)
def test_devstack_plugin_stacks_unstacks_and_cleans(tmp_path, rabbit_vhost):
    repo = plugin_repo(str(tmp_path / 'repos' / 'pluginsd'))
    state_dir = tmp_path / 'pluginsd-state'
    conf_dir = tmp_path / 'etc-pluginsd'
    service_dir = tmp_path / 'services'
    conf_path = conf_dir / 'pluginsd.conf'
    host = socket.gethostname().split('.')[0]  # the settings' default
    text = local_conf(
        repo,
        {
            'PLUGINSD_TRANSPORT_URL': rabbit_vhost,
            'PLUGINSD_BIN_DIR': BIN,
            'PLUGINSD_STATE_DIR': state_dir,
            'PLUGINSD_CONF_DIR': conf_dir,
            # run_process's pid and log files (a runner variable).
            'PLUGINSD_SERVICE_DIR': service_dir,
        },
    )
    harness = own_database_harness(tmp_path)
    dest = harness.conf.agent.dest
    pids = {}
    try:
        view = harness.run('stack', text, timeout=300)
        assert view['state'] == 'completed', describe(view, service_dir)
        assert [
            r['status'] for r in aio.results_by(view, plugin='pluginsd')
        ] == ['ok'] * len(STACK)
        # setup_develop ran against the checkout (printed: pip is noop here).
        [install] = aio.results_by(view, plugin='pluginsd', phase='install')
        with open(install['log_path'], errors='replace') as f:
            assert f'would pip install: -e {dest}/pluginsd' in f.read()

        conf = configparser.RawConfigParser()
        assert conf.read(conf_path) == [str(conf_path)]
        assert dict(conf['DEFAULT']) == {
            'transport_url': rabbit_vhost,
            'state_path': str(state_dir),
            'host': host,
            'log_dir': str(state_dir / 'log'),
            'debug': 'True',
        }
        keys_dir = state_dir / 'keys'
        security = {
            k: v for k, v in conf.items('security') if k not in conf.defaults()
        }
        assert security == {
            'key_file': f'{keys_dir}/pluginsd.key',
            'accepted_keys_dir': f'{keys_dir}/accepted',
            'operator_keys': f'admin:{keys_dir}/operator.key.pub',
            'operator_key_file': f'{keys_dir}/operator.key',
            'daemon_public_keys': f'{keys_dir}/pluginsd.key.pub',
        }
        for name in ('pluginsd.key', 'operator.key'):
            assert os.stat(keys_dir / name).st_mode & 0o777 == 0o600
        assert conf['agent']['roles'] == 'controller'
        assert conf['agent']['dest'] == dest
        assert conf['agent']['allowed_sources'] == 'https://opendev.org/'
        assert conf['agent']['heartbeat_interval'] == '1'  # the user's section
        assert conf['daemon']['role_order'] == 'controller,*'
        assert conf['oslo_messaging_rabbit']['amqp_durable_queues'] == 'True'
        # pluginsd-manage db upgrade made the daemon's database.
        assert 'runs' in daemon_tables(state_dir)

        for service in SERVICES:
            pids[service] = read_pid(service_dir / f'{service}.pid')
            assert pids[service] and alive(pids[service]), service
        # Each process has its own log file, from log_dir.
        for service in SERVICES:
            assert (state_dir / 'log' / f'{service}.log').exists(), service

        nodes = subprocess.run(
            [
                os.path.join(BIN, 'pluginsctl'),
                '--config-file',
                str(conf_path),
                'node',
                'list',
                '-f',
                'value',
                '-c',
                'Host',
                '-c',
                'Roles',
                '-c',
                'State',
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert nodes.returncode == 0, nodes.stderr
        assert f'{host} controller up' in nodes.stdout.splitlines(), (
            nodes.stdout
        )

        view = harness.run('unstack', text, timeout=120)
        assert view['state'] == 'completed', describe(view, service_dir)
        for service in SERVICES:
            assert not (service_dir / f'{service}.pid').exists(), service
            deadline = time.monotonic() + 10  # stop_process waited already
            while alive(pids[service]) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not alive(pids[service]), (
                f'{service} still runs after unstack'
            )

        view = harness.run('clean', text, timeout=120)
        assert view['state'] == 'completed', describe(view, service_dir)
        assert not state_dir.exists()
        assert not conf_dir.exists()
    finally:
        # Nothing may outlive the test, whatever failed: the pids seen, and
        # any pid file left (e.g. stack failed after run_process).
        for service in SERVICES:
            for pid in (
                pids.get(service),
                read_pid(service_dir / f'{service}.pid'),
            ):
                if pid:
                    kill_group(pid)
        harness.close()


@pytest.mark.timeout(360)
def test_agent_only_node_without_a_daemon_fails_stack_clearly(
    tmp_path, rabbit_vhost
):
    """`disable_service pluginsd` makes an agent-only (compute) node.

    Without the daemon's public key (PLUGINSD_DAEMON_PUBLIC_KEY) it cannot
    trust any daemon: stack post-config dies saying so, before any service
    starts.
    """
    repo = plugin_repo(str(tmp_path / 'repos' / 'pluginsd'))
    state_dir = tmp_path / 'pluginsd-state'
    service_dir = tmp_path / 'services'
    conf_path = tmp_path / 'etc-pluginsd' / 'pluginsd.conf'
    text = local_conf(
        repo,
        {
            'PLUGINSD_TRANSPORT_URL': rabbit_vhost,
            'PLUGINSD_BIN_DIR': BIN,
            'PLUGINSD_STATE_DIR': state_dir,
            'PLUGINSD_CONF_DIR': tmp_path / 'etc-pluginsd',
            'PLUGINSD_SERVICE_DIR': service_dir,
            'PLUGINSD_HOSTNAME': 'cmp-1',
            'PLUGINSD_START_TIMEOUT': 5,
        },
    ).replace('enable_plugin', 'disable_service pluginsd\nenable_plugin', 1)
    harness = own_database_harness(tmp_path)
    pid = None
    try:
        view = harness.run('stack', text, timeout=300)
        assert view['state'] == 'failed', describe(view, service_dir)
        [post] = aio.results_by(view, plugin='pluginsd', phase='post-config')
        assert post['status'] == 'failed'
        assert 'PLUGINSD_DAEMON_PUBLIC_KEY is empty' in post['tail'], post[
            'tail'
        ]
        assert not aio.results_by(view, plugin='pluginsd', phase='extra')

        conf = configparser.RawConfigParser()
        conf.read(conf_path)
        assert conf['agent']['roles'] == 'compute'
        assert conf['DEFAULT']['host'] == 'cmp-1'
        # No daemon here: no database, no daemon process.
        assert not (state_dir / 'pluginsd.sqlite').exists()
        assert not (service_dir / 'pluginsd.pid').exists()
        # Nothing started: no agent that would obey an unknown daemon.
        assert not (service_dir / 'pluginsd-agent.pid').exists()

        view = harness.run('unstack', text, timeout=120)
        assert view['state'] == 'completed', describe(view, service_dir)
    finally:
        for p in (pid, read_pid(service_dir / 'pluginsd-agent.pid')):
            if p:
                kill_group(p)
        harness.close()
