"""Client side of the agent RPC API.

Daemon -> agents, on the topic ``pluginsd-agent``. Every message is a
signed envelope (pluginsd.rpc.signing) bound to its operation and its
target: a list of hosts, ``'*'`` (every agent: a
fanout whose payload says what is whose), or one host.
"""

from pluginsd import objects
from pluginsd import rpc

EVERY_AGENT = '*'


class AgentAPI:
    """Client side of the agent RPC API.

    Versions::

        1.0 - run_phase, cancel_run, end_run, ack_results, ping, fetch_log
        1.1 - a phase event (run_phase, and in the daemon's pending_work
              answer) is a versioned PhaseEvent (pluginsd.objects)
        1.2 - run_phase (PhaseEvent 1.1) and end_run may carry
              acknowledgements (``acks``, pluginsd.results.pack_acks)
    """

    RPC_API_VERSION = rpc.AGENT_API_VERSION

    def __init__(self, conf, transport, signer):
        self.signer = signer  # the daemon's key
        cap = conf.upgrade_levels.agent or self.RPC_API_VERSION
        self.client = rpc.get_client(
            transport, rpc.AGENT_TOPIC, '1.0', version_cap=cap
        )

    def _fanout(self, ctxt, op, target, payload):
        self.client.prepare(fanout=True).cast(
            ctxt, op, envelope=self.signer.sign(op, target, payload)
        )

    def sign_event(self, event):
        """A phase event signed for exactly the hosts it targets."""
        targets = sorted(event['targets'])
        if self.client.can_send_version('1.1'):
            event = objects.PhaseEvent.wrap(event)
        return self.signer.sign('run_phase', targets, event)

    def carries_acks(self):
        """Whether run_phase and end_run may carry acknowledgements."""
        return self.client.can_send_version('1.2')

    def run_phase(self, ctxt, event):
        """One publish reaches every agent; each picks its own part."""
        envelope = self.sign_event(event)
        if event.get('acks'):  # only given when carries_acks()
            version = '1.2'
        else:
            version = '1.1' if self.client.can_send_version('1.1') else '1.0'
        self.client.prepare(fanout=True, version=version).cast(
            ctxt, 'run_phase', envelope=envelope
        )

    def cancel_run(self, ctxt, run_id, attempt):
        self._fanout(
            ctxt,
            'cancel_run',
            EVERY_AGENT,
            {'run_id': run_id, 'attempt': attempt},
        )

    def end_run(self, ctxt, run_id, acks=None):
        """The run is over; ``acks`` (packed) for any node, if any."""
        if not acks:
            self._fanout(ctxt, 'end_run', EVERY_AGENT, {'run_id': run_id})
            return
        self.client.prepare(fanout=True, version='1.2').cast(
            ctxt,
            'end_run',
            envelope=self.signer.sign(
                'end_run', EVERY_AGENT, {'run_id': run_id, 'acks': acks}
            ),
        )

    def ack_results(self, ctxt, acks):
        """{host: [result key, ...]}: one cast to each host, its own keys.

        Not one fanout for all: each of N nodes would receive, parse and
        verify the keys of all N, N² in all, every half second while
        results come in.
        """
        for host, keys in sorted(acks.items()):
            self.client.prepare(server=host).cast(
                ctxt,
                'ack_results',
                envelope=self.signer.sign(
                    'ack_results', host, {'acks': {host: keys}}
                ),
            )

    def ping(self, ctxt, host, timeout=5):
        return self.client.prepare(server=host, timeout=timeout).call(
            ctxt, 'ping', envelope=self.signer.sign('ping', host, {})
        )

    def fetch_log(
        self, ctxt, host, run_id, phase, plugin, offset=0, timeout=10
    ):
        return self.client.prepare(server=host, timeout=timeout).call(
            ctxt,
            'fetch_log',
            envelope=self.signer.sign(
                'fetch_log',
                host,
                {
                    'run_id': run_id,
                    'phase': phase,
                    'plugin': plugin,
                    'offset': offset,
                },
            ),
        )
