"""Client side of the daemon RPC API.

Agents and the CLI -> daemon, on the topic ``pluginsd``.
"""

from pluginsd import rpc


class DaemonAPI:
    """Client side of the daemon RPC API.

    Versions::

        1.0 - report_results, heartbeat, pending_work, get_bundle_chunk,
              start_run, plan, get_run, wait_run, list_runs, list_nodes,
              retry_run, cancel_run, delete_run, get_log, list_extensions
        1.1 - delete_node
    """

    RPC_API_VERSION = '1.1'

    def __init__(self, conf, transport, timeout=None, signer=None, retry=None):
        # Requests that start or change runs are signed: whoever can reach
        # the broker without the shared key cannot make nodes run anything.
        self.signer = signer
        cap = conf.upgrade_levels.daemon or self.RPC_API_VERSION
        self.client = rpc.get_client(
            transport,
            rpc.DAEMON_TOPIC,
            '1.0',
            version_cap=cap,
            timeout=timeout,
            retry=retry,  # connection attempts per call (None: forever)
        )

    # agents
    def report_results(self, ctxt, envelope):
        self.client.cast(ctxt, 'report_results', envelope=envelope)

    def heartbeat(self, ctxt, envelope):
        # Bounded retries: a heartbeat that cannot go out says so, rather
        # than blocking the heartbeat thread for the whole outage.
        self.client.prepare(retry=3).cast(ctxt, 'heartbeat', envelope=envelope)

    def probe(self, ctxt, host):
        """A no-op cast to the daemon itself: is the broker taking messages?"""
        self.client.prepare(server=host, retry=3).cast(ctxt, 'probe')

    def get_bundle_chunk(self, ctxt, digest, offset, timeout=60):
        return self.client.prepare(timeout=timeout).call(
            ctxt, 'get_bundle_chunk', digest=digest, offset=offset
        )

    def pending_work(self, ctxt, host):
        return self.client.prepare(timeout=10).call(
            ctxt, 'pending_work', host=host
        )

    # CLI
    def _signed(self, op, **request):
        # The operation is signed too: a signature for one request is not
        # a signature for another with the same arguments.
        return self.signer.sign(dict(request, op=op))

    def start_run(self, ctxt, mode, local_confs, local_conf_path, nodes=None):
        extra = {'nodes': list(nodes)} if nodes else {}  # 1.0 daemons: none
        return self.client.call(
            ctxt,
            'start_run',
            request=self._signed(
                'start_run',
                mode=mode,
                local_confs=local_confs,
                local_conf_path=local_conf_path,
                **extra,
            ),
        )

    def plan(self, ctxt, local_conf, local_conf_path):
        # Planning sources localrc and settings on the daemon: signed.
        return self.client.call(
            ctxt,
            'plan',
            request=self._signed(
                'plan', local_conf=local_conf, local_conf_path=local_conf_path
            ),
        )

    def get_run(self, ctxt, run_id):
        return self.client.call(ctxt, 'get_run', run_id=run_id)

    def wait_run(
        self,
        ctxt,
        run_id,
        seen,
        timeout,
        results_since=None,
        call_timeout=None,
    ):
        call_timeout = call_timeout or timeout + 30
        return self.client.prepare(timeout=call_timeout).call(
            ctxt,
            'wait_run',
            run_id=run_id,
            seen=seen,
            timeout=timeout,
            results_since=results_since,
        )

    def list_runs(self, ctxt):
        return self.client.call(ctxt, 'list_runs')

    def list_nodes(self, ctxt):
        return self.client.call(ctxt, 'list_nodes')

    def retry_run(self, ctxt, run_id, failed_nodes_only=False):
        return self.client.call(
            ctxt,
            'retry_run',
            request=self._signed(
                'retry_run', run_id=run_id, failed_nodes_only=failed_nodes_only
            ),
        )

    def cancel_run(self, ctxt, run_id):
        return self.client.call(
            ctxt,
            'cancel_run',
            request=self._signed('cancel_run', run_id=run_id),
        )

    def delete_run(self, ctxt, run_id):
        return self.client.call(
            ctxt,
            'delete_run',
            request=self._signed('delete_run', run_id=run_id),
        )

    def delete_node(self, ctxt, host):
        return self.client.prepare(version='1.1').call(
            ctxt,
            'delete_node',
            request=self._signed('delete_node', host=host),
        )

    def list_extensions(self, ctxt):
        return self.client.call(ctxt, 'list_extensions')

    def get_log(self, ctxt, run_id, node, phase, plugin, offset=0):
        return self.client.call(
            ctxt,
            'get_log',
            run_id=run_id,
            node=node,
            phase=phase,
            plugin=plugin,
            offset=offset,
        )
