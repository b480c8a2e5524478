"""What AgentAPI and DaemonAPI put on the wire.

Two levels: a recording double of the ``RPCClient`` object (what each API
method asks of oslo.messaging), and the real ``RPCClient`` on the in-process
``fake://`` transport with its ``_send`` observed (the target and the
message as a driver receives them, and the version cap).
"""

import threading
import time

import oslo_messaging as messaging
from oslo_messaging import _utils as messaging_utils
from oslo_messaging._drivers import common as messaging_common
import pytest

from pluginsd import conf as pluginsd_conf
from pluginsd import exception
from pluginsd import rpc
from pluginsd.agent.rpcapi import AgentAPI
from pluginsd.daemon.rpcapi import DaemonAPI

CTXT = {'request_id': 'req-1'}


class PlainSigner:
    """Stands in for rpc.signing.Signer: wraps instead of signing.

    The wire shows what each envelope is signed for (signing has its own
    tests).
    """

    def sign(self, op, target, payload):
        return {'op': op, 'target': target, 'payload': payload}


SIGNER = PlainSigner()


def env(op, target, **payload):
    return {'envelope': SIGNER.sign(op, target, payload)}


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

    def __init__(self, replies=None, log=None, options=None, cap=None):
        self.log = [] if log is None else log
        self.options = options or {}
        self.replies = replies or {}
        self.cap = cap

    def can_send_version(self, version):
        return self.cap is None or messaging_utils.version_is_compatible(
            self.cap, version
        )

    def prepare(self, **kwargs):
        self.log.append(('prepare', kwargs))
        return RecordingClient(
            self.replies, self.log, dict(self.options, **kwargs), self.cap
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
    def test_run_phase_is_a_fanout_signed_for_its_targets(self, agent_api):
        event = {'run_id': 'r1', 'targets': {'n2': '*', 'n1': '*'}}
        assert agent_api.run_phase(CTXT, event) is None
        wrapped = {'object': 'PhaseEvent', 'version': '1.1', 'data': event}
        assert agent_api.client.log == [
            ('prepare', {'fanout': True, 'version': '1.1'}),
            (
                'cast',
                CTXT,
                'run_phase',
                {'envelope': SIGNER.sign('run_phase', ['n1', 'n2'], wrapped)},
            ),
        ]
        # An agent fleet pinned to 1.0 gets the bare fields.
        agent_api.client.log.clear()
        agent_api.client.cap = '1.0'
        agent_api.run_phase(CTXT, event)
        assert agent_api.client.log == [
            ('prepare', {'fanout': True, 'version': '1.0'}),
            (
                'cast',
                CTXT,
                'run_phase',
                {'envelope': SIGNER.sign('run_phase', ['n1', 'n2'], event)},
            ),
        ]

    def test_acks_ride_on_run_phase_and_end_run_from_1_2(self, agent_api):
        acks = {'r0|stack|extra|1': {'n1': ['alpha', '']}}
        event = {'run_id': 'r1', 'targets': {'n1': '*'}, 'acks': acks}
        assert agent_api.carries_acks()
        agent_api.run_phase(CTXT, event)
        agent_api.end_run(CTXT, 'r1', acks=acks)
        agent_api.end_run(CTXT, 'r2')
        wrapped = {'object': 'PhaseEvent', 'version': '1.1', 'data': event}
        assert agent_api.client.log == [
            ('prepare', {'fanout': True, 'version': '1.2'}),
            (
                'cast',
                CTXT,
                'run_phase',
                {'envelope': SIGNER.sign('run_phase', ['n1'], wrapped)},
            ),
            ('prepare', {'fanout': True, 'version': '1.2'}),
            (
                'cast',
                CTXT,
                'end_run',
                env('end_run', '*', run_id='r1', acks=acks),
            ),
            ('prepare', {'fanout': True}),
            ('cast', CTXT, 'end_run', env('end_run', '*', run_id='r2')),
        ]
        # A fleet pinned below 1.2 is acknowledged one node at a time.
        agent_api.client.cap = '1.1'
        assert not agent_api.carries_acks()

    def test_cancel_run_is_a_fanout_cast(self, agent_api):
        agent_api.cancel_run(CTXT, 'run-1', 2)
        assert agent_api.client.log == [
            ('prepare', {'fanout': True}),
            (
                'cast',
                CTXT,
                'cancel_run',
                env('cancel_run', '*', run_id='run-1', attempt=2),
            ),
        ]

    def test_ack_results_each_node_hears_only_its_own(self, agent_api):
        acks = {'node-4': ['k3'], 'node-3': ['k1', 'k2']}
        agent_api.ack_results(CTXT, acks)
        assert agent_api.client.log == [
            ('prepare', {'server': 'node-3'}),
            (
                'cast',
                CTXT,
                'ack_results',
                env('ack_results', 'node-3', acks={'node-3': ['k1', 'k2']}),
            ),
            ('prepare', {'server': 'node-4'}),
            (
                'cast',
                CTXT,
                'ack_results',
                env('ack_results', 'node-4', acks={'node-4': ['k3']}),
            ),
        ]

    def test_ping_calls_the_host(self, agent_api):
        assert agent_api.ping(CTXT, 'node-3') == 'reply-to-ping'
        assert agent_api.client.log == [
            ('prepare', {'server': 'node-3', 'timeout': 5}),
            ('call', CTXT, 'ping', env('ping', 'node-3')),
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
                env(
                    'fetch_log',
                    'node-3',
                    run_id='run-1',
                    phase='install',
                    plugin='alpha',
                    offset=42,
                ),
            ),
        ]


class TestDaemonAPIRecorded:
    def test_report_results_cast(self, daemon_api):
        assert daemon_api.report_results(CTXT, 'h1', [{'a': 1}]) is None
        wrapped = {'object': 'Result', 'version': '1.0', 'data': {'a': 1}}
        assert daemon_api.client.log == [
            ('prepare', {'topic': 'pluginsd-liveness', 'version': '1.3'}),
            (
                'cast',
                CTXT,
                'report_results',
                env('report_results', 'daemon', host='h1', results=[wrapped]),
            ),
        ]
        # A daemon pinned below 1.4 gets the bare fields.
        daemon_api.client.log.clear()
        daemon_api.client.cap = '1.3'
        daemon_api.report_results(CTXT, 'h1', [{'a': 1}])
        assert daemon_api.client.log[1] == (
            'cast',
            CTXT,
            'report_results',
            env('report_results', 'daemon', host='h1', results=[{'a': 1}]),
        )

    def test_liveness_on_the_main_topic_when_pinned_below_1_3(
        self, daemon_api
    ):
        # A daemon not upgraded yet has no liveness lane: the main topic.
        daemon_api.client.cap = '1.2'
        daemon_api.heartbeat(CTXT, {'host': 'h1'})
        assert daemon_api.client.log == [
            ('prepare', {'retry': 3}),
            ('cast', CTXT, 'heartbeat', env('heartbeat', 'daemon', host='h1')),
        ]

    def test_heartbeat_cast_retries_a_bounded_number_of_times(
        self, daemon_api
    ):
        daemon_api.heartbeat(CTXT, {'host': 'h1'})
        assert daemon_api.client.log == [
            (
                'prepare',
                {'topic': 'pluginsd-liveness', 'version': '1.3', 'retry': 3},
            ),
            (
                'cast',
                CTXT,
                'heartbeat',
                env(
                    'heartbeat',
                    'daemon',
                    host='h1',
                    beat={
                        'object': 'Heartbeat',
                        'version': '1.0',
                        'data': {'host': 'h1'},
                    },
                ),
            ),
        ]

    def test_pending_work_names_no_host(self, daemon_api):
        # The daemon answers for the node whose key signed the call.
        assert daemon_api.pending_work(CTXT) == 'reply-to-pending_work'
        assert daemon_api.client.log == [
            ('prepare', {'timeout': 10}),
            ('call', CTXT, 'pending_work', env('pending_work', 'daemon')),
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
                env(
                    'get_bundle_chunk',
                    'daemon',
                    digest='ab' * 32,
                    offset=1 << 20,
                ),
            ),
        ]

    def test_get_localconf(self, daemon_api):
        daemon_api.get_localconf(CTXT, 'r1')
        assert daemon_api.client.log == [
            ('prepare', {'version': '1.2', 'timeout': 30}),
            (
                'call',
                CTXT,
                'get_localconf',
                env('get_localconf', 'daemon', run_id='r1'),
            ),
        ]

    @pytest.mark.parametrize(
        'method, args, version, payload',
        [
            (
                'accept_node',
                ('h1',),
                '1.2',
                {'host': 'h1', 'fingerprint': None},
            ),
            (
                'accept_node',
                ('h1', 'SHA256:x'),
                '1.2',
                {'host': 'h1', 'fingerprint': 'SHA256:x'},
            ),
            ('reject_node', ('h1',), '1.2', {'host': 'h1'}),
            ('delete_node', ('h1',), '1.1', {'host': 'h1'}),
        ],
    )
    def test_node_calls(self, daemon_api, method, args, version, payload):
        getattr(daemon_api, method)(CTXT, *args)
        assert daemon_api.client.log == [
            ('prepare', {'version': version}),
            ('call', CTXT, method, env(method, 'daemon', **payload)),
        ]

    def test_wait_run_timeout_exceeds_the_wait(self, daemon_api):
        daemon_api.wait_run(CTXT, 'r1', 7, 60)
        assert daemon_api.client.log == [
            (
                'prepare',
                {
                    'topic': 'pluginsd-long-calls',
                    'version': '1.4',
                    'timeout': 90,
                },
            ),
            (
                'call',
                CTXT,
                'wait_run',
                env(
                    'wait_run',
                    'daemon',
                    run_id='r1',
                    seen=7,
                    timeout=60,
                    results_since=None,
                ),
            ),
        ]

    @pytest.mark.parametrize(
        'method, args, kwargs, payload',
        [
            (
                'start_run',
                ('stack', {'controller': {}}, '/etc/local.conf'),
                {},
                {
                    'mode': 'stack',
                    'local_confs': {'controller': {}},
                    'local_conf_path': '/etc/local.conf',
                },
            ),
            ('get_run', ('r1',), {}, {'run_id': 'r1'}),
            ('list_runs', (), {}, {}),
            ('list_nodes', (), {}, {}),
            (
                'retry_run',
                ('r1',),
                {},
                {'run_id': 'r1', 'failed_nodes_only': False},
            ),
            (
                'retry_run',
                ('r1',),
                {'failed_nodes_only': True},
                {'run_id': 'r1', 'failed_nodes_only': True},
            ),
            ('cancel_run', ('r1',), {}, {'run_id': 'r1'}),
            ('delete_run', ('r1',), {}, {'run_id': 'r1'}),
            ('list_extensions', (), {}, {}),
        ],
    )
    def test_cli_calls_are_signed(
        self, daemon_api, method, args, kwargs, payload
    ):
        assert getattr(daemon_api, method)(CTXT, *args, **kwargs) == (
            f'reply-to-{method}'
        )
        assert daemon_api.client.log == [
            ('call', CTXT, method, env(method, 'daemon', **payload))
        ]

    def test_start_run_names_its_run_from_1_5(self, daemon_api):
        args = ('stack', {'*': 'x'}, '/l.conf')
        fields = {
            'mode': 'stack',
            'local_confs': {'*': 'x'},
            'local_conf_path': '/l.conf',
        }
        daemon_api.start_run(CTXT, *args, run_id='r-1')
        assert daemon_api.client.log == [
            ('prepare', {'version': '1.5'}),
            (
                'call',
                CTXT,
                'start_run',
                env('start_run', 'daemon', run_id='r-1', **fields),
            ),
        ]
        # A daemon not upgraded yet would refuse the argument: left out.
        daemon_api.client.log.clear()
        daemon_api.client.cap = '1.4'
        daemon_api.start_run(CTXT, *args, run_id='r-1')
        assert daemon_api.client.log == [
            ('call', CTXT, 'start_run', env('start_run', 'daemon', **fields))
        ]

    @pytest.mark.parametrize(
        'method, args, kwargs, payload',
        [
            (
                'plan',
                ({'path': 'x'}, '/l.conf'),
                {},
                {'local_conf': {'path': 'x'}, 'local_conf_path': '/l.conf'},
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
    def test_long_calls_go_to_their_lane(
        self, daemon_api, method, args, kwargs, payload
    ):
        assert getattr(daemon_api, method)(CTXT, *args, **kwargs) == (
            f'reply-to-{method}'
        )
        call = ('call', CTXT, method, env(method, 'daemon', **payload))
        lane = {'topic': 'pluginsd-long-calls', 'version': '1.4'}
        assert daemon_api.client.log == [('prepare', lane), call]
        # A daemon not upgraded yet has no such lane: the main topic.
        daemon_api.client.log.clear()
        daemon_api.client.cap = '1.3'
        getattr(daemon_api, method)(CTXT, *args, **kwargs)
        assert daemon_api.client.log == [('prepare', {}), call]


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
    def test_agent_messages(self, conf, transport, wire):
        api = AgentAPI(conf, transport, SIGNER)
        api.run_phase(CTXT, {'targets': {'n1': '*'}})
        api.cancel_run(CTXT, 'run-1', 2)
        assert api.ping(CTXT, 'node-3') == {'reply': 'ping'}
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
                None,
                True,
                None,
                None,
                {
                    'method': 'run_phase',
                    'args': {
                        'envelope': SIGNER.sign(
                            'run_phase',
                            ['n1'],
                            {
                                'object': 'PhaseEvent',
                                'version': '1.1',
                                'data': {'targets': {'n1': '*'}},
                            },
                        )
                    },
                    'version': '1.1',
                },
            ),
            (
                'pluginsd-agent',
                None,
                True,
                None,
                None,
                {
                    'method': 'cancel_run',
                    'args': env('cancel_run', '*', run_id='run-1', attempt=2),
                    'version': '1.0',
                },
            ),
            (
                'pluginsd-agent',
                'node-3',
                None,
                True,
                5,
                {
                    'method': 'ping',
                    'args': env('ping', 'node-3'),
                    'version': '1.0',
                },
            ),
        ]

    def test_daemon(self, conf, transport, wire):
        api = DaemonAPI(conf, transport, timeout=33, signer=SIGNER)
        api.report_results(CTXT, 'h1', [])
        api.heartbeat(CTXT, {'host': 'h1'})
        assert api.get_run(CTXT, 'r1') == {'reply': 'get_run'}
        api.pending_work(CTXT)
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
            ('pluginsd-liveness', None, None, None, None, 'report_results'),
            ('pluginsd-liveness', None, None, None, None, 'heartbeat'),
            ('pluginsd', None, None, True, 33, 'get_run'),
            ('pluginsd', None, None, True, 10, 'pending_work'),
        ]
        assert wire[2]['message'] == {
            'method': 'get_run',
            'args': env('get_run', 'daemon', run_id='r1'),
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
        assert AgentAPI(conf, transport, SIGNER).client.version_cap == '1.2'
        assert (
            DaemonAPI(conf, transport, signer=SIGNER).client.version_cap
            == '1.5'
        )

    @pytest.mark.parametrize('cap', ['1.0', '1.6'])
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
        daemon.heartbeat(CTXT, {})
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
            api.run_phase(CTXT, {'targets': {}})
        assert err.value.version == '1.0'
        assert err.value.version_cap == '0.9'
        with pytest.raises(messaging.RPCVersionCapError):
            api.ping(CTXT, 'h1')
        assert wire == []
        # The daemon's own API is pinned separately.
        DaemonAPI(conf, transport, signer=SIGNER).heartbeat(CTXT, {})
        assert [w['message']['method'] for w in wire] == ['heartbeat']

    def test_daemon_cap_below_current_version_refuses(
        self, conf, transport, wire
    ):
        conf.set_override('daemon', '0.1', group='upgrade_levels')
        api = DaemonAPI(conf, transport, signer=SIGNER)
        with pytest.raises(messaging.RPCVersionCapError) as err:
            api.report_results(CTXT, 'h', [])
        assert err.value.version_cap == '0.1'
        with pytest.raises(messaging.RPCVersionCapError):
            api.list_nodes(CTXT)
        assert wire == []
        AgentAPI(conf, transport, SIGNER).cancel_run(CTXT, 'r', 1)
        assert [w['message']['method'] for w in wire] == ['cancel_run']


class TestVersionsTied:
    """Endpoints and clients share one version per API (pluginsd.rpc)."""

    def test_one_constant_per_api(self):
        from pluginsd.agent import manager as agent_manager
        from pluginsd.daemon import manager as daemon_manager

        assert DaemonAPI.RPC_API_VERSION == rpc.DAEMON_API_VERSION
        assert AgentAPI.RPC_API_VERSION == rpc.AGENT_API_VERSION
        for endpoint in (
            daemon_manager.DaemonManager,
            daemon_manager.LivenessManager,
            daemon_manager.LongCallManager,
        ):
            assert endpoint.target.version == rpc.DAEMON_API_VERSION
        assert (
            agent_manager.AgentManager.target.version == rpc.AGENT_API_VERSION
        )

    def test_the_liveness_lane_serves_what_clients_send_there(
        self, conf, transport, wire
    ):
        from pluginsd.daemon import manager as daemon_manager

        api = DaemonAPI(conf, transport, signer=SIGNER)
        api.report_results(CTXT, 'h1', [])
        api.heartbeat(CTXT, {'host': 'h1'})
        api.probe(CTXT, 'd1')
        for w in wire:
            assert w['topic'] == rpc.LIVENESS_TOPIC
            method = getattr(
                daemon_manager.LivenessManager, w['message']['method']
            )
            assert method.exposed
            assert messaging_utils.version_is_compatible(
                daemon_manager.LivenessManager.target.version,
                w['message']['version'],
            )

    def test_the_long_call_lane_serves_what_clients_send_there(
        self, conf, transport, wire
    ):
        from pluginsd.daemon import manager as daemon_manager

        api = DaemonAPI(conf, transport, signer=SIGNER)
        api.plan(CTXT, {}, 'local.conf')
        api.wait_run(CTXT, 'r1', 0, 5)
        api.get_log(CTXT, 'r1', 'h1', 'install', 'alpha')
        assert [w['message']['method'] for w in wire] == [
            'plan',
            'wait_run',
            'get_log',
        ]
        for w in wire:
            assert w['topic'] == rpc.LONG_CALL_TOPIC
            method = getattr(
                daemon_manager.LongCallManager, w['message']['method']
            )
            assert method.exposed
            assert messaging_utils.version_is_compatible(
                daemon_manager.LongCallManager.target.version,
                w['message']['version'],
            )


class TestCallUntil:
    """rpc.call_until: a node's call tried again on a timeout."""

    @pytest.fixture(autouse=True)
    def no_backoff(self, monkeypatch):
        monkeypatch.setattr(rpc, 'RETRY_WAIT_FIRST', 0)

    def test_a_timed_out_call_is_made_again_until_it_answers(self):
        calls = []

        def call():
            calls.append(1)
            if len(calls) < 3:
                raise messaging.MessagingTimeout('late')
            return 'answer'

        assert rpc.call_until(call, lambda: 10, 'x') == 'answer'
        assert len(calls) == 3

    def test_no_time_left_gives_the_timeout_back(self):
        left = [3]

        def call():
            left[0] -= 1
            raise messaging.MessagingTimeout('late')

        with pytest.raises(messaging.MessagingTimeout):
            rpc.call_until(call, lambda: left[0], 'x')
        assert left == [0]  # tried while time was left, not after

    def test_stop_ends_the_retries(self):
        def stop():
            raise RuntimeError('cancelled')

        def call():
            raise messaging.MessagingTimeout('late')

        with pytest.raises(RuntimeError, match='cancelled'):
            rpc.call_until(call, lambda: 10, 'x', stop=stop)

    def test_other_errors_are_not_tried_again(self):
        calls = []

        def call():
            calls.append(1)
            raise messaging.MessageDeliveryFailure('refused')

        with pytest.raises(messaging.MessageDeliveryFailure):
            rpc.call_until(call, lambda: 10, 'x')
        assert calls == [1]

    def test_a_call_refused_as_stale_is_signed_and_made_again(self):
        # As it comes back from the daemon: the class oslo.messaging makes
        # for a remote error, with the remote traceback in its text.
        remote = messaging_common.deserialize_remote_exception(
            messaging_common.serialize_remote_exception(
                (
                    exception.StaleMessage,
                    exception.StaleMessage(
                        sender='node:n1', reason='stale: signed 400 s ago'
                    ),
                    None,
                )
            ),
            rpc.ALLOWED_EXMODS,
        )
        assert isinstance(remote, exception.StaleMessage)
        calls = []

        def call():
            calls.append(1)
            if len(calls) == 1:
                raise remote
            return 'answer'

        assert rpc.call_until(call, lambda: 10, 'x') == 'answer'
        assert len(calls) == 2

    def test_other_refusals_are_not_tried_again(self):
        def call():
            raise exception.SignatureError(sender='node:n1', reason='revoked')

        with pytest.raises(exception.SignatureError):
            rpc.call_until(call, lambda: 10, 'x')


def test_listeners_wait_longer_between_messages_on_a_transport():
    from oslo_messaging._drivers import amqpdriver

    conf = pluginsd_conf.new_conf()
    conf([], project='pluginsd', default_config_files=[])
    rpc.get_transport(conf, url='rabbit://u:p@127.0.0.1:1/')
    # oslo.messaging's own first wait is 1 ms: 50 ms spares the CPU of
    # ~13 wake-ups per message (bench/noop_server.py measures it).
    assert amqpdriver.ACK_REQUEUE_EVERY_SECONDS_MIN == rpc.LISTENER_FIRST_WAIT
    assert rpc.LISTENER_FIRST_WAIT == 0.05


def test_an_rpc_server_hands_work_to_its_idle_threads(transport):
    """Not a new thread per message, and no idle thread that polls."""

    class Endpoint:
        target = messaging.Target(version='1.0')

        def __init__(self):
            self.threads = set()

        @rpc.expose
        def where(self, ctxt):
            self.threads.add(threading.current_thread().name)

    endpoint = Endpoint()
    server = rpc.get_server(transport, 'pool-test', 'h1', [endpoint])
    server.start(override_pool_size=8)
    try:
        client = rpc.get_client(transport, 'pool-test', '1.0', timeout=10)
        for _ in range(10):
            client.prepare(server='h1').call({}, 'where')
            time.sleep(0.05)  # the thread is idle again
    finally:
        server.stop()
        server.wait()
    # futurist's pool (oslo.messaging's own) would have started all 8,
    # each waking up once a second from then on.
    assert all(name.startswith('rpc-worker') for name in endpoint.threads)
    assert len(endpoint.threads) <= 2, endpoint.threads
