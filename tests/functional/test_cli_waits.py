"""pluginsctl's waits are bounded and its failures are one plain line.

Real pluginsctl processes against a real broker (or none), a real daemon
(or none) and real agents.
"""

import os
import queue
import socket
import subprocess
import threading
import time

import pytest

from pluginsd import keys
from tests import gitrepos
from tests.functional import cluster as cluster_mod
from tests.functional.test_multinode import cluster  # noqa: F401 (fixture)
from tests.functional.test_multinode import conf_file
from tests.functional.test_multinode import run_id_of
from tests.functional.test_multinode import traced

CTL = os.path.join(cluster_mod.BIN, 'pluginsctl')


def run_ctl(*args, cwd=None, bound=None):
    # The promise to users: a query given --timeout N has answered, one way
    # or the other, within N + 2 s (start-up included). A pluginsctl that
    # waits longer fails here with TimeoutExpired.
    if bound is None and '--timeout' in args:
        bound = float(args[args.index('--timeout') + 1]) + 2
    return subprocess.run(
        [CTL, *args],
        capture_output=True,
        text=True,
        timeout=bound or 120,
        cwd=cwd,
    )


def ctl_conf(tmp_path, url, **groups):
    """A pluginsctl config on ``url`` with an operator key of its own."""
    key = str(tmp_path / 'operator.key')
    keys.KeyPair.generate().save(key)
    groups = {
        'DEFAULT': {'transport_url': url},
        'security': {'operator_key_file': key},
        **groups,
    }
    return cluster_mod.write_conf(str(tmp_path / 'ctl.conf'), groups), groups


def one_line(proc):
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert 'Traceback' not in proc.stderr
    return lines[0]


def closed_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_no_config_and_no_broker(tmp_path):
    with socket.socket() as s:
        if s.connect_ex(('localhost', 5672)) == 0:
            pytest.skip('something listens on localhost:5672')
    proc = run_ctl('--timeout', '8', 'node', 'list', cwd=tmp_path)
    assert proc.returncode == 1
    assert one_line(proc) == (
        'cannot reach the broker at localhost:5672 (transport_url not set '
        'and no config file (--config-file)): Connection refused'
    )


def test_broker_down_names_the_address_and_the_file(tmp_path):
    port = closed_port()
    conf = cluster_mod.write_conf(
        str(tmp_path / 'ctl.conf'),
        {'DEFAULT': {'transport_url': f'rabbit://u:p@127.0.0.1:{port}/'}},
    )
    proc = run_ctl('--config-file', conf, '--timeout', '8', 'run', 'list')
    assert proc.returncode == 1
    assert one_line(proc).startswith(
        f'cannot reach the broker at 127.0.0.1:{port} (transport_url from '
        f'{conf})'
    )


@pytest.fixture
def quiet_listener():
    """A port that takes connections and answers the AMQP header with
    ``reply`` (or nothing), then stays silent: a broker too busy to talk.

    ``quiet_listener.heard`` gets, per connection, the first bytes the
    client sent (b'' for one closed without a word).
    """
    server = socket.socket()
    server.bind(('127.0.0.1', 0))
    server.listen(16)
    held = []
    state = {'reply': b''}
    heard = queue.Queue()

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # closed: the test is over
                return
            held.append(conn)
            heard.put(conn.recv(8))
            if state['reply']:
                conn.sendall(state['reply'])

    threading.Thread(target=serve, daemon=True).start()

    def url(reply=b''):
        state['reply'] = reply
        return f'rabbit://u:p@127.0.0.1:{server.getsockname()[1]}/'

    url.heard = heard
    yield url
    server.close()
    for conn in held:
        conn.close()


def test_broker_that_says_nothing(tmp_path, quiet_listener):
    url = quiet_listener()
    conf, _ = ctl_conf(tmp_path, url)
    proc = run_ctl('--config-file', conf, '--timeout', '3', 'node', 'list')
    assert proc.returncode == 1
    port = url.rsplit(':', 1)[1].strip('/')
    assert one_line(proc) == (
        f'cannot reach the broker at 127.0.0.1:{port} '
        f'(transport_url from {conf}): it took the connection but said '
        'nothing in time'
    )


def test_broker_that_stalls_in_the_handshake(tmp_path, quiet_listener):
    # It answers the probe, then never finishes the AMQP handshake:
    # oslo.messaging would wait for good; --timeout still holds.
    conf, _ = ctl_conf(tmp_path, quiet_listener(reply=b'\x01'))
    proc = run_ctl('--config-file', conf, '--timeout', '3', 'node', 'list')
    assert proc.returncode == 1
    assert one_line(proc) == (
        'the daemon did not answer within 3 s: is pluginsd '
        f'running on topic pluginsd (transport_url from {conf})?'
    )


def test_daemon_down(tmp_path, rabbit_vhost):
    conf, _ = ctl_conf(
        tmp_path,
        rabbit_vhost,
        oslo_messaging_rabbit={'amqp_durable_queues': 'True'},
    )
    # 8 s: the start-up of pluginsctl on a loaded machine (seconds, when
    # the suite runs) is counted inside the wait, not on top of it.
    proc = run_ctl('--config-file', conf, '--timeout', '8', 'node', 'list')
    assert proc.returncode == 1
    assert one_line(proc) == (
        'the daemon did not answer within 8 s: is pluginsd running on topic '
        f'pluginsd (transport_url from {conf})?'
    )


def test_missing_key_is_said_before_talking_to_the_broker(
    tmp_path, quiet_listener
):
    # Without an operator key, even a read says what is missing, having
    # only checked that the broker's port is open. The broker here never
    # answers: any wait on it (its greeting, the daemon) would last the
    # whole --timeout, far beyond the bound. The bound leaves room for the
    # start-up alone, which took 14 s under the suite's load (0.45 s of
    # CPU, one run in 700).
    conf, groups = ctl_conf(tmp_path, quiet_listener())
    missing = str(tmp_path / 'nowhere.key')
    groups['security'] = {'operator_key_file': missing}
    conf = cluster_mod.write_conf(conf, groups)
    local = conf_file(tmp_path, 'local.conf', '')
    for command in (['stack', local], ['run', 'list']):
        proc = run_ctl(
            '--config-file', conf, '--timeout', '600', *command, bound=60
        )
        assert proc.returncode == 1
        assert one_line(proc) == (
            f'configuration: no operator key at {missing} ([security] '
            f'operator_key_file): make one with "pluginsd-manage key create '
            f'--output {missing}" and have an admin add "reader:{missing}.pub"'
            " (or admin:) to the daemon's [security] operator_keys"
        )
        # One connection (the port probe), and not a byte of AMQP on it.
        assert quiet_listener.heard.get(timeout=10) == b''
        assert quiet_listener.heard.empty()


@pytest.mark.timeout(240)
def hold_the_long_call_lane(c):
    """Three more followers long-poll the stack: other calls still answer."""
    [run] = c.api.list_runs({})
    seen = c.api.get_run({}, run['id'])['version']
    polls = [
        threading.Thread(
            target=c.api.wait_run,
            args=({}, run['id'], seen, 8),
            kwargs={'call_timeout': 10},
            daemon=True,
        )
        for _ in range(3)
    ]
    for poll in polls:
        poll.start()
    time.sleep(1)  # the polls reach the daemon and hold their threads
    # The main lane (its one thread) answers within poll_api's 2 s.
    assert [r['id'] for r in c.poll_api.list_runs({})] == [run['id']]
    assert c.poll_api.get_run({}, run['id'])['state'] == 'running'
    assert all(poll.is_alive() for poll in polls)


def test_follower_survives_a_daemon_restart(tmp_path, cluster):  # noqa: F811
    gate = tmp_path / 'gate'
    body = (
        f'if [[ $2 == install ]]; then touch {tmp_path}/in-install; '
        f'while [[ ! -e {gate} ]]; do sleep 0.2; done; fi'
    )
    slow = gitrepos.make_repo(
        str(tmp_path / 'repos' / 'slow'), traced('slow', body)
    )
    # One thread for the daemon's main RPC lane: long polls, dry-run plans
    # and log fetches must not need it (they have a lane of their own).
    c = cluster(
        [('cmp1', 'compute', {})], DEFAULT={'executor_thread_pool_size': 1}
    )
    conf = conf_file(tmp_path, 'local.conf', f'enable_plugin slow {slow}')
    err_path = tmp_path / 'follower.err'
    with open(err_path, 'w') as err_file:
        follower = subprocess.Popen(
            [
                *(CTL, '--config-file', c.daemon_conf),
                *('--timeout', str(cluster_mod.CTL_TIMEOUT), 'stack', conf),
            ],
            stdout=subprocess.PIPE,
            stderr=err_file,
            text=True,
        )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / 'in-install').exists():
            assert time.monotonic() < deadline, 'never reached install'
            time.sleep(0.2)
        hold_the_long_call_lane(c)
        c.daemon.stop()
        # Down until the follower has noticed: a stopping daemon answers
        # the calls it holds, and a restart within the next call's timeout
        # would go unseen.
        deadline = time.monotonic() + 60
        while 'waiting for it (the run goes on)' not in err_path.read_text():
            assert time.monotonic() < deadline, 'the follower never noticed'
            time.sleep(0.2)
        c.daemon.start()
        c.wait_nodes({'cmp1'})
        gate.touch()
        out, _ = follower.communicate(timeout=180)
    finally:
        follower.kill()
    err = err_path.read_text()
    assert follower.returncode == 0, err
    assert 'waiting for it (the run goes on)' in err
    assert 'the daemon answers again' in err
    assert '| cmp1 | slow ' in out
    assert 'Traceback' not in err

    # The run id is the follower's; the logs of an unknown or a lost node
    # are one line each.
    run_id = run_id_of(subprocess.CompletedProcess([], 0, out, err))
    logs = ['run', 'logs', run_id, '--plugin', 'slow', '--phase', 'install']
    proc = c.ctl(*logs, '--node', 'nowhere')
    assert proc.returncode == 1
    assert one_line(proc) == 'no node nowhere'
    # An agent stopped cleanly says so: the node is stopped at once.
    c.agents['cmp1'].stop()
    deadline = time.monotonic() + 30
    while 'stopped' not in c.ctl('node', 'show', 'cmp1', '-f', 'value').stdout:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    proc = c.ctl(*logs, '--node', 'cmp1')
    assert proc.returncode == 1
    assert one_line(proc).startswith(
        'node cmp1 is stopped (its agent stopped '
    )

    # A configuration that does not match the daemon's durability is named
    # with the option to set.
    groups = cluster_mod.base_groups(c.url, str(tmp_path), 'cli')
    groups['oslo_messaging_rabbit']['amqp_durable_queues'] = 'False'
    groups['security'] = {'operator_key_file': c.key_path('reader')}
    other = cluster_mod.write_conf(str(tmp_path / 'nondurable.conf'), groups)
    proc = run_ctl('--config-file', other, '--timeout', '8', 'run', 'list')
    assert proc.returncode == 1
    assert one_line(proc) == (
        'configuration: the broker has the exchanges with another durability '
        'than this configuration: set [oslo_messaging_rabbit] '
        "amqp_durable_queues = true as in the daemon's configuration"
    )
