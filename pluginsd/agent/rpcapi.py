"""Client side of the agent RPC API.

Daemon -> agents, on the topic ``pluginsd-agent``.
"""

from pluginsd import rpc


class AgentAPI:
    """Client side of the agent RPC API.

    1.0 - run_phase, cancel_run, end_run, ack_results, ping, fetch_log
    """

    RPC_API_VERSION = '1.0'

    def __init__(self, conf, transport, signer=None):
        self.signer = signer  # signs what changes an agent's state
        cap = conf.upgrade_levels.agent or self.RPC_API_VERSION
        self.client = rpc.get_client(
            transport, rpc.AGENT_TOPIC, '1.0', version_cap=cap
        )

    def run_phase(self, ctxt, envelope):
        """One publish reaches every agent; each picks its own part."""
        self.client.prepare(fanout=True).cast(
            ctxt, 'run_phase', envelope=envelope
        )

    def cancel_run(self, ctxt, run_id, attempt):
        self.client.prepare(fanout=True).cast(
            ctxt,
            'cancel_run',
            envelope=self.signer.sign(
                {'op': 'cancel_run', 'run_id': run_id, 'attempt': attempt}
            ),
        )

    def end_run(self, ctxt, run_id):
        self.client.prepare(fanout=True).cast(
            ctxt,
            'end_run',
            envelope=self.signer.sign({'op': 'end_run', 'run_id': run_id}),
        )

    def ack_results(self, ctxt, acks):
        """{host: [result key, ...]}: one publish for every node at once."""
        self.client.prepare(fanout=True).cast(
            ctxt,
            'ack_results',
            envelope=self.signer.sign({'op': 'ack_results', 'acks': acks}),
        )

    def ping(self, ctxt, host, timeout=5):
        return self.client.prepare(server=host, timeout=timeout).call(
            ctxt, 'ping'
        )

    def fetch_log(
        self, ctxt, host, run_id, phase, plugin, offset=0, timeout=10
    ):
        return self.client.prepare(server=host, timeout=timeout).call(
            ctxt,
            'fetch_log',
            run_id=run_id,
            phase=phase,
            plugin=plugin,
            offset=offset,
        )
