"""What AgentAPI and DaemonAPI put on the wire.

Two levels: a recording double of the ``RPCClient`` object (what each API
method asks of oslo.messaging), and the real ``RPCClient`` on the in-process
``fake://`` transport with its ``_send`` observed (the target and the
message as a driver receives them, and the version cap).
"""

import oslo_messaging as messaging
import pytest

from pluginsd import conf as pluginsd_conf
from pluginsd import rpc
from pluginsd.agent.rpcapi import AgentAPI
from pluginsd.daemon.rpcapi import DaemonAPI

CTXT = {'request_id': 'req-1'}


class PlainSigner:
    """Stands in for rpc.signing.Signer: wraps instead of signing, so the
    wire shows which requests go out signed (signing has its own tests).
    """

    def sign(self, payload):
        return {'signed': payload}


SIGNER = PlainSigner()
ENVELOPE = {'sender': 'daemon', 'payload': {'run_id': 'r1'}, 'signature': 's'}


@pytest.fixture
def conf():
    c = pluginsd_conf.new_conf()
    c([], default_config_files=[])
    yield c
    c.reset()


@pytest.fixture
def transport(conf):
    t = rpc.get_transport(conf, url='fake://')
    yield t
    t.cleanup()


class RecordingClient:
    """Stands in for an RPCClient object: records prepare/cast/call."""

    def __init__(self, replies=None, log=None, options=None):
        self.log = [] if log is None else log
        self.options = options or {}
        self.replies = replies or {}

    def prepare(self, **kwargs):
        self.log.append(('prepare', kwargs))
        return RecordingClient(
            self.replies, self.log, dict(self.options, **kwargs)
        )

    def cast(self, ctxt, method, **kwargs):
        self.log.append(('cast', ctxt, method, kwargs))

    def call(self, ctxt, method, **kwargs):
        self.log.append(('call', ctxt, method, kwargs))
        return self.replies.get(method, f'reply-to-{method}')


@pytest.fixture
def agent_api(conf, transport):
    api = AgentAPI(conf, transport, SIGNER)
    api.client = RecordingClient()
    return api


@pytest.fixture
def daemon_api(conf, transport):
    api = DaemonAPI(conf, transport, signer=SIGNER)
    api.client = RecordingClient()
    return api


class TestAgentAPIRecorded:
    def test_run_phase_is_a_fanout_cast(self, agent_api):
        assert agent_api.run_phase(CTXT, ENVELOPE) is None
        assert agent_api.client.log == [
            ('prepare', {'fanout': True}),
            ('cast', CTXT, 'run_phase', {'envelope': ENVELOPE}),
        ]

    def test_cancel_run_is_a_fanout_cast(self, agent_api):
        agent_api.cancel_run(CTXT, 'run-1', 2)
        assert agent_api.client.log == [
            ('prepare', {'fanout': True}),
            (
                'cast',
                CTXT,
                'cancel_run',
                {
                    'envelope': {
                        'signed': {
                            'op': 'cancel_run',
                            'run_id': 'run-1',
                            'attempt': 2,
                        }
                    }
                },
            ),
        ]

    def test_ack_results_one_fanout_for_every_node(self, agent_api):
        acks = {'node-3': ['k1', 'k2'], 'node-4': ['k3']}
        agent_api.ack_results(CTXT, acks)
        assert agent_api.client.log == [
            ('prepare', {'fanout': True}),
            (
                'cast',
                CTXT,
                'ack_results',
                {'envelope': {'signed': {'op': 'ack_results', 'acks': acks}}},
            ),
        ]

    def test_ping_calls_the_host(self, agent_api):
        assert agent_api.ping(CTXT, 'node-3') == 'reply-to-ping'
        assert agent_api.client.log == [
            ('prepare', {'server': 'node-3', 'timeout': 5}),
            ('call', CTXT, 'ping', {}),
        ]

    def test_ping_timeout(self, agent_api):
        agent_api.ping(CTXT, 'node-3', timeout=1)
        assert agent_api.client.log[0] == (
            'prepare',
            {'server': 'node-3', 'timeout': 1},
        )

    def test_fetch_log_calls_the_host(self, agent_api):
        assert (
            agent_api.fetch_log(
                CTXT, 'node-3', 'run-1', 'install', 'alpha', offset=42
            )
            == 'reply-to-fetch_log'
        )
        assert agent_api.client.log == [
            ('prepare', {'server': 'node-3', 'timeout': 10}),
            (
                'call',
                CTXT,
                'fetch_log',
                {
                    'run_id': 'run-1',
                    'phase': 'install',
                    'plugin': 'alpha',
                    'offset': 42,
                },
            ),
        ]

    def test_fetch_log_defaults(self, agent_api):
        agent_api.fetch_log(CTXT, 'h', 'r', 'extra', '')
        assert agent_api.client.log == [
            ('prepare', {'server': 'h', 'timeout': 10}),
            (
                'call',
                CTXT,
                'fetch_log',
                {'run_id': 'r', 'phase': 'extra', 'plugin': '', 'offset': 0},
            ),
        ]


class TestDaemonAPIRecorded:
    def test_report_results_cast(self, daemon_api):
        assert daemon_api.report_results(CTXT, ENVELOPE) is None
        assert daemon_api.client.log == [
            ('cast', CTXT, 'report_results', {'envelope': ENVELOPE})
        ]

    def test_heartbeat_cast_retries_a_bounded_number_of_times(
        self, daemon_api
    ):
        daemon_api.heartbeat(CTXT, ENVELOPE)
        assert daemon_api.client.log == [
            ('prepare', {'retry': 3}),
            ('cast', CTXT, 'heartbeat', {'envelope': ENVELOPE}),
        ]

    def test_pending_work(self, daemon_api):
        assert daemon_api.pending_work(CTXT, 'h1') == 'reply-to-pending_work'
        assert daemon_api.client.log == [
            ('prepare', {'timeout': 10}),
            ('call', CTXT, 'pending_work', {'host': 'h1'}),
        ]

    def test_get_bundle_chunk(self, daemon_api):
        assert daemon_api.get_bundle_chunk(CTXT, 'ab' * 32, 1 << 20, 7) == (
            'reply-to-get_bundle_chunk'
        )
        assert daemon_api.client.log == [
            ('prepare', {'timeout': 7}),
            (
                'call',
                CTXT,
                'get_bundle_chunk',
                {'digest': 'ab' * 32, 'offset': 1 << 20},
            ),
        ]

    def test_wait_run_timeout_exceeds_the_wait(self, daemon_api):
        daemon_api.wait_run(CTXT, 'r1', 7, 60)
        assert daemon_api.client.log == [
            ('prepare', {'timeout': 90}),
            (
                'call',
                CTXT,
                'wait_run',
                {
                    'run_id': 'r1',
                    'seen': 7,
                    'timeout': 60,
                    'results_since': None,
                },
            ),
        ]

    @pytest.mark.parametrize(
        'method, args, kwargs, wire',
        [
            (
                'start_run',
                ('stack', {'controller': {}}, '/etc/local.conf'),
                {},
                {
                    'request': {
                        'signed': {
                            'op': 'start_run',
                            'mode': 'stack',
                            'local_confs': {'controller': {}},
                            'local_conf_path': '/etc/local.conf',
                        }
                    }
                },
            ),
            (
                'plan',
                ({'path': 'x'}, '/l.conf'),
                {},
                {
                    'request': {
                        'signed': {
                            'op': 'plan',
                            'local_conf': {'path': 'x'},
                            'local_conf_path': '/l.conf',
                        }
                    }
                },
            ),
            ('get_run', ('r1',), {}, {'run_id': 'r1'}),
            ('list_runs', (), {}, {}),
            ('list_nodes', (), {}, {}),
            (
                'retry_run',
                ('r1',),
                {},
                {
                    'request': {
                        'signed': {
                            'op': 'retry_run',
                            'run_id': 'r1',
                            'failed_nodes_only': False,
                        }
                    }
                },
            ),
            (
                'retry_run',
                ('r1',),
                {'failed_nodes_only': True},
                {
                    'request': {
                        'signed': {
                            'op': 'retry_run',
                            'run_id': 'r1',
                            'failed_nodes_only': True,
                        }
                    }
                },
            ),
            (
                'cancel_run',
                ('r1',),
                {},
                {'request': {'signed': {'op': 'cancel_run', 'run_id': 'r1'}}},
            ),
            (
                'delete_run',
                ('r1',),
                {},
                {'request': {'signed': {'op': 'delete_run', 'run_id': 'r1'}}},
            ),
            (
                'get_log',
                ('r1', 'h1', 'install', 'alpha'),
                {},
                {
                    'run_id': 'r1',
                    'node': 'h1',
                    'phase': 'install',
                    'plugin': 'alpha',
                    'offset': 0,
                },
            ),
            (
                'get_log',
                ('r1', 'h1', 'install', 'alpha'),
                {'offset': 9},
                {
                    'run_id': 'r1',
                    'node': 'h1',
                    'phase': 'install',
                    'plugin': 'alpha',
                    'offset': 9,
                },
            ),
        ],
    )
    def test_cli_calls(self, daemon_api, method, args, kwargs, wire):
        assert getattr(daemon_api, method)(CTXT, *args, **kwargs) == (
            f'reply-to-{method}'
        )
        assert daemon_api.client.log == [('call', CTXT, method, wire)]


@pytest.fixture
def wire(transport):
    """Observe every message the fake transport is asked to send."""
    sent = []
    send = transport._send

    def _send(target, ctxt, message, **kwargs):
        sent.append(
            {
                'topic': target.topic,
                'server': target.server,
                'fanout': target.fanout,
                'version': target.version,
                'ctxt': ctxt,
                'message': message,
                'wait_for_reply': kwargs.get('wait_for_reply'),
                'timeout': kwargs.get('timeout'),
            }
        )
        if kwargs.get('wait_for_reply'):
            return {'reply': message['method']}  # nobody listens
        return send(target, ctxt, message, **kwargs)

    transport._send = _send
    return sent


class TestOnTheWire:
    def test_agent_casts(self, conf, transport, wire):
        api = AgentAPI(conf, transport, SIGNER)
        api.run_phase(CTXT, ENVELOPE)
        api.cancel_run(CTXT, 'run-1', 2)
        api.ack_results(CTXT, {'node-3': ['k']})
        assert wire == [
            {
                'topic': 'pluginsd-agent',
                'server': None,
                'fanout': True,
                'version': '1.0',
                'ctxt': CTXT,
                'wait_for_reply': None,
                'timeout': None,
                'message': {
                    'method': 'run_phase',
                    'args': {'envelope': ENVELOPE},
                    'version': '1.0',
                },
            },
            {
                'topic': 'pluginsd-agent',
                'server': None,
                'fanout': True,
                'version': '1.0',
                'ctxt': CTXT,
                'wait_for_reply': None,
                'timeout': None,
                'message': {
                    'method': 'cancel_run',
                    'args': {
                        'envelope': {
                            'signed': {
                                'op': 'cancel_run',
                                'run_id': 'run-1',
                                'attempt': 2,
                            }
                        }
                    },
                    'version': '1.0',
                },
            },
            {
                'topic': 'pluginsd-agent',
                'server': None,
                'fanout': True,
                'version': '1.0',
                'ctxt': CTXT,
                'wait_for_reply': None,
                'timeout': None,
                'message': {
                    'method': 'ack_results',
                    'args': {
                        'envelope': {
                            'signed': {
                                'op': 'ack_results',
                                'acks': {'node-3': ['k']},
                            }
                        }
                    },
                    'version': '1.0',
                },
            },
        ]

    def test_agent_calls(self, conf, transport, wire):
        api = AgentAPI(conf, transport, SIGNER)
        assert api.ping(CTXT, 'node-3') == {'reply': 'ping'}
        assert api.fetch_log(CTXT, 'node-3', 'r', 'install', 'alpha', 5) == {
            'reply': 'fetch_log'
        }
        assert [
            (
                w['topic'],
                w['server'],
                w['fanout'],
                w['wait_for_reply'],
                w['timeout'],
                w['message'],
            )
            for w in wire
        ] == [
            (
                'pluginsd-agent',
                'node-3',
                None,
                True,
                5,
                {'method': 'ping', 'args': {}, 'version': '1.0'},
            ),
            (
                'pluginsd-agent',
                'node-3',
                None,
                True,
                10,
                {
                    'method': 'fetch_log',
                    'version': '1.0',
                    'args': {
                        'run_id': 'r',
                        'phase': 'install',
                        'plugin': 'alpha',
                        'offset': 5,
                    },
                },
            ),
        ]

    def test_daemon(self, conf, transport, wire):
        api = DaemonAPI(conf, transport, timeout=33, signer=SIGNER)
        api.report_results(CTXT, ENVELOPE)
        api.heartbeat(CTXT, ENVELOPE)
        assert api.get_run(CTXT, 'r1') == {'reply': 'get_run'}
        api.pending_work(CTXT, 'h1')
        assert [
            (
                w['topic'],
                w['server'],
                w['fanout'],
                w['wait_for_reply'],
                w['timeout'],
                w['message']['method'],
            )
            for w in wire
        ] == [
            ('pluginsd', None, None, None, None, 'report_results'),
            ('pluginsd', None, None, None, None, 'heartbeat'),
            ('pluginsd', None, None, True, 33, 'get_run'),
            ('pluginsd', None, None, True, 10, 'pending_work'),
        ]
        assert wire[0]['message'] == {
            'method': 'report_results',
            'args': {'envelope': ENVELOPE},
            'version': '1.0',
        }

    def test_daemon_default_timeout_from_config(self, conf, transport, wire):
        api = DaemonAPI(
            conf, transport, signer=SIGNER
        )  # registers rpc_response_timeout
        conf.set_override('rpc_response_timeout', 17)
        api.list_runs(CTXT)
        assert wire[0]['timeout'] == 17


class TestVersionCap:
    def test_default_cap_is_current_version(self, conf, transport):
        assert AgentAPI(conf, transport, SIGNER).client.version_cap == '1.0'
        assert (
            DaemonAPI(conf, transport, signer=SIGNER).client.version_cap
            == '1.1'
        )

    @pytest.mark.parametrize('cap', ['1.0', '1.5'])
    def test_cap_allowing_current_version(self, conf, transport, wire, cap):
        conf.set_override('agent', cap, group='upgrade_levels')
        conf.set_override('daemon', cap, group='upgrade_levels')
        agent, daemon = (
            AgentAPI(conf, transport, SIGNER),
            DaemonAPI(conf, transport, signer=SIGNER),
        )
        assert agent.client.version_cap == cap
        assert daemon.client.version_cap == cap
        agent.cancel_run(CTXT, 'r1', 1)
        daemon.heartbeat(CTXT, ENVELOPE)
        assert [w['message']['method'] for w in wire] == [
            'cancel_run',
            'heartbeat',
        ]

    def test_agent_cap_below_current_version_refuses(
        self, conf, transport, wire
    ):
        conf.set_override('agent', '0.9', group='upgrade_levels')
        api = AgentAPI(conf, transport, SIGNER)
        assert api.client.version_cap == '0.9'
        assert not api.client.can_send_version('1.0')
        with pytest.raises(messaging.RPCVersionCapError) as err:
            api.run_phase(CTXT, ENVELOPE)
        assert err.value.version == '1.0'
        assert err.value.version_cap == '0.9'
        with pytest.raises(messaging.RPCVersionCapError):
            api.ping(CTXT, 'h1')
        assert wire == []
        # The daemon's own API is pinned separately.
        DaemonAPI(conf, transport, signer=SIGNER).heartbeat(CTXT, ENVELOPE)
        assert [w['message']['method'] for w in wire] == ['heartbeat']

    def test_daemon_cap_below_current_version_refuses(
        self, conf, transport, wire
    ):
        conf.set_override('daemon', '0.1', group='upgrade_levels')
        api = DaemonAPI(conf, transport, signer=SIGNER)
        with pytest.raises(messaging.RPCVersionCapError) as err:
            api.report_results(CTXT, ENVELOPE)
        assert err.value.version_cap == '0.1'
        with pytest.raises(messaging.RPCVersionCapError):
            api.list_nodes(CTXT)
        assert wire == []
        AgentAPI(conf, transport, SIGNER).cancel_run(CTXT, 'r', 1)
        assert [w['message']['method'] for w in wire] == ['cancel_run']
