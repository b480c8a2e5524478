"""A compromised node, or a broker account, can make no node run anything.

One cluster for the whole module (a controller and two computes on the
real broker), driven as three attackers would:

* ``cmp1`` compromised: its own key and its broker credentials;
* a broker account with no key at all (another RabbitMQ user);
* someone who captured messages from the bus and sends them again, also
  after the daemon and the agent restarted.

Each attempt must be refused and logged, run nothing and change nothing
stored.
"""

import json
import os
import secrets
import subprocess
import time

import kombu
import nacl.exceptions
import pytest

from pluginsd import keys
from pluginsd import rpc
from pluginsd.rpc import signing
from tests import gitrepos
from tests.functional import cluster as cluster_mod
from tests.functional import rabbit as rabbit_mod

CTL_SECRET = 'ctl-admin-' + secrets.token_hex(6)
CMP_SECRET = 'cmp-token-' + secrets.token_hex(6)
PLUGIN = {
    'devstack/settings': 'define_plugin probe\n',
    'devstack/plugin.sh': 'echo "$PLUGINSD_HOST|probe|$*" >> "$TEST_TRACE"\n'
    # A plugin that prints a password, as plugins do by accident.
    'echo "using ${ADMIN_PASSWORD:-} ${COMPUTE_TOKEN:-}"\n'
    'true\n',
}


class World:
    """The cluster, a finished run, and the attackers' tools."""

    def __init__(self, base, rabbit):
        self.transports = []
        vhost, _, url = rabbit.add_vhost()
        self.rabbit, self.vhost = rabbit, vhost
        self.trace = os.path.join(base, 'trace')
        repos = os.path.join(base, 'repos')
        self.plugin = gitrepos.make_repo(os.path.join(repos, 'probe'), PLUGIN)
        self.cluster = c = cluster_mod.Cluster(
            os.path.join(base, 'cluster'),
            url,
            [repos + '/'],
            env={'TEST_TRACE': self.trace},
        )
        c.add_agent('ctl1', 'controller')
        c.add_agent('cmp1', 'compute')
        c.add_agent('cmp2', 'compute')
        c.start()
        confs = {
            '*': '[[local|localrc]]\n'
            f'ADMIN_PASSWORD={CTL_SECRET}\n'
            f'enable_plugin probe {self.plugin}\n',
            'compute': '[[local|localrc]]\n'
            f'COMPUTE_TOKEN={CMP_SECRET}\n'
            f'enable_plugin probe {self.plugin}\n',
        }
        self.capture = Capture(url)
        run = c.api.start_run({}, 'stack', confs, 'local.conf')
        self.run = c.wait_run(run['id'])
        assert self.run['state'] == 'completed', self.run['error']
        self.captured_events = self.capture.stop()
        # The compromised compute: its key file and the broker URL.
        self.cmp1_key = keys.KeyPair.load(c.key_path('cmp1'))
        # Another broker account, with no key.
        user, password = 'intruder' + secrets.token_hex(3), 'pw'
        rabbit.ctl('add_user', user, password)
        rabbit.ctl('set_permissions', '-p', vhost, user, '.*', '.*', '.*')
        self.intruder_url = (
            f'rabbit://{user}:{password}@127.0.0.1:{rabbit.port}/{vhost}'
        )

    def transport(self, url=None):
        transport = rpc.get_transport(self.cluster.conf, url=url)
        self.transports.append(transport)
        return transport

    def daemon_client(self, url=None):
        return rpc.get_client(
            self.transport(url), rpc.DAEMON_TOPIC, '1.0', timeout=15
        )

    def agent_client(self, url=None):
        return rpc.get_client(self.transport(url), rpc.AGENT_TOPIC, '1.0')

    def stored(self):
        """Everything stored that an attack could change."""
        api = self.cluster.api
        nodes = [
            {k: n[k] for k in ('host', 'roles', 'state', 'fingerprint')}
            for n in api.list_nodes({})
        ]
        runs = api.list_runs({})
        views = [api.get_run({}, r['id']) for r in runs]
        for view in views:
            view.pop('version')
        return nodes, runs, views

    def traces(self):
        return gitrepos.read_trace(self.trace)

    def wait_log(self, process, text, timeout=20):
        deadline = time.monotonic() + timeout
        while text not in process.log_text():
            assert time.monotonic() < deadline, (
                f'{text!r} not in {process.log}:\n{process.log_text()[-3000:]}'
            )
            time.sleep(0.2)


class Capture:
    """A queue another broker account binds to the agents' fanout."""

    def __init__(self, url):
        self.connection = kombu.Connection(url.replace('rabbit://', 'amqp://'))
        exchange = kombu.Exchange(
            f'{rpc.AGENT_TOPIC}_fanout',
            type='fanout',
            durable=False,
            auto_delete=True,
        )
        self.queue = kombu.Queue(
            'sniffer-' + secrets.token_hex(4),
            exchange,
            auto_delete=True,
            durable=False,
        )
        self.messages = []
        self.consumer = kombu.Consumer(
            self.connection, [self.queue], callbacks=[self._on_message]
        )
        self.consumer.consume()

    def _on_message(self, body, message):
        self.messages.append(message.body)
        message.ack()

    def stop(self):
        try:
            while True:
                self.connection.drain_events(timeout=1)
        except Exception:
            pass
        self.connection.release()
        out = []
        for raw in self.messages:
            text = raw.decode() if isinstance(raw, bytes) else raw
            inner = json.loads(json.loads(text)['oslo.message'])
            out.append((text, inner['method'], inner['args']['envelope']))
        return out


@pytest.fixture(scope='module')
def world(tmp_path_factory, rabbit):
    w = World(str(tmp_path_factory.mktemp('trust')), rabbit)
    yield w
    w.cluster.stop()
    for transport in w.transports:
        rabbit_mod.close_transport(transport)


def test_the_run_ran_and_masked_its_secrets(world):
    assert sorted(t[0] for t in world.traces()) == sorted(
        ['cmp1', 'cmp2', 'ctl1'] * 5
    )
    api = world.cluster.api
    text = json.dumps(world.run)
    assert CTL_SECRET not in text and CMP_SECRET not in text
    assert 'using ******' in text  # the tail, masked on the node
    log = api.get_log({}, world.run['id'], 'ctl1', 'install', 'probe')
    assert 'using ******' in log['data'] and CTL_SECRET not in log['data']
    log = api.get_log({}, world.run['id'], 'cmp1', 'install', 'probe')
    assert 'using  ******' in log['data'] and CMP_SECRET not in log['data']


def test_the_bus_never_carries_a_localrc(world):
    # Another broker account bound a queue to the fanout during the run.
    assert world.captured_events
    for text, _, _ in world.captured_events:
        assert CTL_SECRET not in text and CMP_SECRET not in text
        assert 'ADMIN_PASSWORD' not in text


def test_compromised_node_cannot_make_another_node_run_code(world):
    before = world.stored(), world.traces()
    [(_, _, captured)] = [
        e for e in world.captured_events if e[1] == 'run_phase'
    ][:1]
    event = dict(captured['payload'], run_id=world.run['id'], attempt=9)
    event['targets'] = {'cmp2': 'compute'}
    agents = world.agent_client()
    for sender in ('daemon', 'node:cmp1'):
        forged = signing.Signer(world.cmp1_key, sender).sign(
            'run_phase', ['cmp2'], event
        )
        agents.prepare(fanout=True).cast({}, 'run_phase', envelope=forged)
    agents.prepare(fanout=True).cast({}, 'run_phase', envelope=event)
    cmp2 = world.cluster.agents['cmp2']
    world.wait_log(
        cmp2,
        'run_phase: not signed by a daemon key in [security] '
        'daemon_public_keys',
    )
    world.wait_log(cmp2, 'run_phase: the message is not signed')
    assert 'rejected' in cmp2.log_text() and 'from daemon (key SHA256:' in (
        cmp2.log_text()
    )
    time.sleep(1)
    assert (world.stored(), world.traces()) == before


def test_forged_result_heartbeat_and_phantom_node(world):
    before = world.stored()
    daemon = world.daemon_client()
    run_id = world.run['id']
    forged_result = dict(world.run['results'][0], node='cmp2', status='failed')
    forged_result.pop('id')
    sign = signing.Signer(world.cmp1_key, 'node:cmp1').sign
    as_cmp2 = signing.Signer(world.cmp1_key, 'node:cmp2').sign
    for envelope in (
        # its own envelope, another host's results or payload host
        sign(
            'report_results',
            'daemon',
            {'host': 'cmp2', 'results': [forged_result]},
        ),
        sign(
            'report_results',
            'daemon',
            {'host': 'cmp1', 'results': [forged_result]},
        ),
        # cmp1's key claiming to be cmp2, or a new node
        as_cmp2(
            'report_results',
            'daemon',
            {'host': 'cmp2', 'results': [forged_result]},
        ),
        as_cmp2(
            'heartbeat',
            'daemon',
            {
                'host': 'cmp2',
                'roles': ['controller'],
                'version': 'x',
                'activity': 'forged',
            },
        ),
        sign(
            'heartbeat',
            'daemon',
            {
                'host': 'cmp2',
                'roles': ['controller'],
                'version': 'x',
                'activity': 'forged',
            },
        ),
        signing.Signer(world.cmp1_key, 'node:phantom').sign(
            'heartbeat',
            'daemon',
            {
                'host': 'phantom',
                'roles': ['controller'],
                'version': 'x',
                'activity': 'idle',
            },
        ),
    ):
        daemon.cast({}, envelope['op'], envelope=envelope)
    d = world.cluster.daemon
    world.wait_log(
        d, 'results about other nodes or runs that do not target it'
    )
    world.wait_log(d, 'heartbeat for another host cmp2')
    world.wait_log(d, 'the key of node cmp1 signed for node phantom')
    world.wait_log(d, 'the key of node cmp1 signed for node cmp2')
    time.sleep(1)
    assert world.stored() == before
    assert (
        world.cluster.api.get_run({}, run_id)['results']
        == world.run['results']
    )

    # A phantom with a key of its own is only ever pending, until deleted.
    phantom = keys.KeyPair.generate()
    envelope = signing.Signer(phantom, 'node:phantom').sign(
        'heartbeat',
        'daemon',
        {
            'host': 'phantom',
            'roles': ['compute'],
            'version': 'x',
            'activity': '',
        },
    )
    daemon.cast({}, 'heartbeat', envelope=envelope)
    world.wait_log(d, 'Node phantom: new key')
    [node] = [
        n for n in world.cluster.api.list_nodes({}) if n['host'] == 'phantom'
    ]
    assert node['state'] == 'pending' and node['fingerprint'] == ''
    assert node['pending_keys'] == [
        {'fingerprint': phantom.fingerprint, 'state': 'pending'}
    ]
    proc = world.cluster.ctl('node', 'delete', 'phantom')
    assert proc.returncode == 0, proc.stderr
    assert world.stored() == before


def test_compromised_node_and_reader_cannot_drive_runs(world):
    before = world.stored()
    daemon = world.daemon_client()
    run_id = world.run['id']
    requests = [
        (
            'start_run',
            {
                'mode': 'stack',
                'local_confs': {'*': ''},
                'local_conf_path': 'x',
            },
        ),
        ('retry_run', {'run_id': run_id, 'failed_nodes_only': False}),
        ('cancel_run', {'run_id': run_id}),
        ('delete_run', {'run_id': run_id}),
        ('accept_node', {'host': 'cmp1', 'fingerprint': None}),
    ]
    reader = keys.KeyPair.load(world.cluster.key_path('reader'))
    for op, payload in requests:
        for signer, expected in (
            (
                signing.Signer(world.cmp1_key, 'node:cmp1'),
                f'node cmp1 may not call {op}',
            ),
            (
                signing.Signer(world.cmp1_key, 'operator'),
                'not a key in [security] operator_keys',
            ),
            (
                signing.Signer(reader, 'operator'),
                f'operator reader (role reader) may not call {op}',
            ),
        ):
            with pytest.raises(Exception) as err:
                daemon.call(
                    {}, op, envelope=signer.sign(op, 'daemon', payload)
                )
            assert expected in str(err.value)
    # A node reads no run; and only its own role's local.conf, sealed.
    node = signing.Signer(world.cmp1_key, 'node:cmp1')
    with pytest.raises(Exception) as err:
        daemon.call(
            {},
            'get_run',
            envelope=node.sign('get_run', 'daemon', {'run_id': run_id}),
        )
    assert 'node cmp1 may not call get_run' in str(err.value)
    reply = daemon.call(
        {},
        'get_localconf',
        envelope=node.sign('get_localconf', 'daemon', {'run_id': run_id}),
    )
    assert CMP_SECRET not in json.dumps(reply)
    mine = world.cmp1_key.unseal(reply['sealed']).decode()
    assert CMP_SECRET in mine and CTL_SECRET not in mine
    cmp2_key = keys.KeyPair.load(world.cluster.key_path('cmp2'))
    with pytest.raises(nacl.exceptions.CryptoError):
        cmp2_key.unseal(reply['sealed'])
    world.wait_log(
        world.cluster.daemon,
        'operator reader (role reader) may not call delete_run',
    )
    # Plugin bundles only for an active run that pins them for the node.
    [plugin] = world.run['plans']['compute']['plugins']
    assert plugin['bundle']
    with pytest.raises(Exception) as err:
        daemon.call(
            {},
            'get_bundle_chunk',
            envelope=node.sign(
                'get_bundle_chunk',
                'daemon',
                {'digest': plugin['bundle'], 'offset': 0},
            ),
        )
    assert (
        f'node cmp1 may not call read bundle {plugin["bundle"]} (needs an '
        'active run that pins it for this node)'
    ) in str(err.value)
    assert world.stored() == before


def test_a_broker_account_without_a_key(world):
    before = world.stored()
    daemon = world.daemon_client(world.intruder_url)
    stranger = signing.Signer(keys.KeyPair.generate(), 'operator')
    # Results and heartbeats: unsigned, or signed by a key nobody accepted.
    result = dict(world.run['results'][0], status='failed')
    result.pop('id')
    claims = {
        'report_results': {'host': 'cmp1', 'results': [result]},
        'heartbeat': {
            'host': 'cmp1',
            'roles': ['controller'],
            'version': 'x',
            'activity': 'forged',
        },
    }
    for op, payload in claims.items():
        daemon.cast({}, op, envelope={'payload': payload})
    daemon.cast(
        {},
        'report_results',
        envelope=signing.Signer(keys.KeyPair.generate(), 'node:cmp1').sign(
            'report_results', 'daemon', claims['report_results']
        ),
    )
    world.wait_log(
        world.cluster.daemon, 'rejected heartbeat: the message is not signed'
    )
    world.wait_log(
        world.cluster.daemon, 'report_results: the key of node cmp1 is unknown'
    )
    for op, payload in (
        (
            'start_run',
            {
                'mode': 'stack',
                'local_confs': {'*': ''},
                'local_conf_path': 'x',
            },
        ),
        ('get_localconf', {'run_id': world.run['id']}),
        ('pending_work', {}),
        ('get_run', {'run_id': world.run['id']}),
    ):
        with pytest.raises(Exception) as err:
            daemon.call({}, op, envelope={'payload': payload})
        assert 'the message is not signed' in str(err.value)
        with pytest.raises(Exception) as err:
            daemon.call({}, op, envelope=stranger.sign(op, 'daemon', payload))
        assert 'rejected message' in str(err.value)
    agents = world.agent_client(world.intruder_url)
    with pytest.raises(Exception) as err:
        agents.prepare(server='cmp1', timeout=10).call(
            {}, 'fetch_log', envelope={'payload': {}}
        )
    assert 'refused' in str(err.value)
    assert world.stored() == before


def test_every_file_under_state_and_log_dirs_is_private(world):
    c = world.cluster
    checked = 0
    for state in [c.daemon.state] + [a.state for a in c.agents.values()]:
        for root, dirs, files in os.walk(state):
            if root == state and 'dest' in dirs:
                dirs.remove('dest')  # plugin checkouts: DevStack's umask
            for name in dirs:
                mode = os.stat(os.path.join(root, name)).st_mode & 0o777
                assert mode == 0o700, (os.path.join(root, name), oct(mode))
            for name in files:
                if root == state and name == 'stdout.log':
                    continue  # the test harness's file, not pluginsd's
                path = os.path.join(root, name)
                mode = os.stat(path).st_mode & 0o777
                # 0600; 0700 for the few executables git copies into the
                # plugin cache (hook samples): nothing for group or others.
                assert mode in (0o600, 0o700), (path, oct(mode))
                checked += 1
    assert checked > 30  # databases, journals, keys, localrc, logs


def test_node_key_rotation(world):
    c = world.cluster
    agent = c.agents['cmp2']
    agent.stop()
    manage = os.path.join(cluster_mod.BIN, 'pluginsd-manage')
    proc = subprocess.run(
        [manage, 'key', 'create', '--force', '--output', c.key_path('cmp2')],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    new = keys.KeyPair.load(c.key_path('cmp2'))
    agent.start()
    world.wait_log(c.daemon, f'Node cmp2: new key {new.fingerprint}')
    [node] = [n for n in c.api.list_nodes({}) if n['host'] == 'cmp2']
    assert node['pending_keys'] == [
        {'fingerprint': new.fingerprint, 'state': 'pending'}
    ]
    old = node['fingerprint']
    proc = c.ctl('node', 'accept', 'cmp2', '--fingerprint', new.fingerprint)
    assert proc.returncode == 0, proc.stderr
    assert f'accepted (replaces {old})' in proc.stderr
    deadline = time.monotonic() + 20
    while True:
        [node] = [n for n in c.api.list_nodes({}) if n['host'] == 'cmp2']
        if node['fingerprint'] == new.fingerprint and node['state'] == 'up':
            break
        assert time.monotonic() < deadline, node
        time.sleep(0.3)
    assert node['pending_keys'] == []


def test_replays_after_restarting_the_daemon_and_agent(world):
    c = world.cluster
    admin = signing.Signer(keys.KeyPair.load(c.key_path('admin')), 'operator')
    confs = {'*': f'[[local|localrc]]\nenable_plugin probe {world.plugin}\n'}
    start = admin.sign(
        'start_run',
        'daemon',
        {'mode': 'stack', 'local_confs': confs, 'local_conf_path': 'r.conf'},
    )
    daemon = world.daemon_client()
    run = daemon.call({}, 'start_run', envelope=start)  # as captured
    assert c.wait_run(run['id'])['state'] == 'completed'
    phase_event = next(
        e for _, op, e in world.captured_events if op == 'run_phase'
    )
    before = world.stored(), world.traces()

    c.daemon.stop()
    c.agents['ctl1'].stop()
    c.daemon.start()
    c.agents['ctl1'].start()
    c.wait_nodes({'ctl1', 'cmp1', 'cmp2'})

    with pytest.raises(Exception) as err:
        daemon.call({}, 'start_run', envelope=start)
    assert 'replayed message' in str(err.value)
    assert 'not above the high-water mark' in str(err.value)
    world.agent_client().prepare(fanout=True).cast(
        {}, 'run_phase', envelope=phase_event
    )
    world.wait_log(c.agents['ctl1'], 'not above the high-water mark')
    world.wait_log(c.daemon, 'start_run: replayed message')
    time.sleep(1)
    after = world.stored(), world.traces()
    assert after == before
