"""Client side of the daemon RPC API.

Agents and the CLI -> daemon, on the topic ``pluginsd``. Every call is one
signed envelope (pluginsd.rpc.signing), signed for its operation and for
the daemon: an agent signs with its node key, pluginsctl with the
operator's key; the daemon decides what each may do.
"""

from pluginsd import objects
from pluginsd import rpc

DAEMON_TARGET = 'daemon'


class DaemonAPI:
    """Client side of the daemon RPC API.

    Versions::

        1.0 - report_results, heartbeat, pending_work, get_bundle_chunk,
              start_run, plan, get_run, wait_run, list_runs, list_nodes,
              retry_run, cancel_run, delete_run, get_log, list_extensions
        1.1 - delete_node
        1.2 - every argument in one signed ``envelope``
              (pluginsd.rpc.signing); get_localconf, accept_node,
              reject_node
        1.3 - heartbeat, report_results and probe also on the liveness
              topic; heartbeats may say state "stopped"; each result is
              checked on its own (pluginsd.objects)
        1.4 - plan, wait_run and get_log also on the long-call topic;
              each result a versioned Result, a heartbeat one versioned
              Heartbeat (``beat``) (pluginsd.objects)
        1.5 - start_run takes ``run_id``, the caller's id for the run:
              asking again with it returns that run (RunSpec 1.1)
    """

    RPC_API_VERSION = rpc.DAEMON_API_VERSION

    def __init__(self, conf, transport, timeout=None, signer=None, retry=None):
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

    def _envelope(self, op, **payload):
        return self.signer.sign(op, DAEMON_TARGET, payload)

    def _call(self, ctxt, op, client=None, **payload):
        return (client or self.client).call(
            ctxt, op, envelope=self._envelope(op, **payload)
        )

    def can_send_version(self, version):
        return self.client.can_send_version(version)

    def _liveness(self, **options):
        """Heartbeats and results: their own lane when the daemon has one."""
        if self.can_send_version('1.3'):
            return self.client.prepare(
                topic=rpc.LIVENESS_TOPIC, version='1.3', **options
            )
        return self.client.prepare(**options)

    def _long_call(self, **options):
        """Calls that may take long: their own lane when the daemon has one."""
        if self.can_send_version('1.4'):
            return self.client.prepare(
                topic=rpc.LONG_CALL_TOPIC, version='1.4', **options
            )
        return self.client.prepare(**options)

    # agents
    def report_results(self, ctxt, host, results):
        if self.can_send_version('1.4'):
            results = [objects.Result.wrap(r) for r in results]
        self._liveness().cast(
            ctxt,
            'report_results',
            envelope=self._envelope(
                'report_results', host=host, results=results
            ),
        )

    def heartbeat(self, ctxt, payload):
        if self.can_send_version('1.4'):
            payload = {
                'host': payload.get('host'),
                'beat': objects.Heartbeat.wrap(payload),
            }
        # Bounded retries: a heartbeat that cannot go out says so, rather
        # than blocking the heartbeat thread for the whole outage.
        self._liveness(retry=3).cast(
            ctxt, 'heartbeat', envelope=self._envelope('heartbeat', **payload)
        )

    def probe(self, ctxt, host):
        """A no-op cast to the daemon itself: is the broker taking messages?"""
        self._liveness(server=host, retry=3).cast(
            ctxt, 'probe', envelope=self._envelope('probe')
        )

    def get_bundle_chunk(self, ctxt, digest, offset, timeout=60):
        return self._call(
            ctxt,
            'get_bundle_chunk',
            self.client.prepare(timeout=timeout),
            digest=digest,
            offset=offset,
        )

    def get_localconf(self, ctxt, run_id):
        return self._call(
            ctxt,
            'get_localconf',
            self.client.prepare(version='1.2', timeout=30),
            run_id=run_id,
        )

    def pending_work(self, ctxt):
        return self._call(
            ctxt, 'pending_work', self.client.prepare(timeout=10)
        )

    # CLI
    def start_run(
        self, ctxt, mode, local_confs, local_conf_path, nodes=None, run_id=None
    ):
        """Start a run. With ``run_id`` (a UUID of the caller's), asking
        again after a timeout returns that run instead of a second one; a
        daemon older than 1.5 picks the id itself (the caller then gets
        another id back, and may not ask again blindly).
        """
        extra = {'nodes': list(nodes)} if nodes else {}
        client = None
        if run_id is not None and self.can_send_version('1.5'):
            client = self.client.prepare(version='1.5')
            extra['run_id'] = run_id
        return self._call(
            ctxt,
            'start_run',
            client,
            mode=mode,
            local_confs=local_confs,
            local_conf_path=local_conf_path,
            **extra,
        )

    def plan(self, ctxt, local_conf, local_conf_path):
        return self._call(
            ctxt,
            'plan',
            self._long_call(),
            local_conf=local_conf,
            local_conf_path=local_conf_path,
        )

    def get_run(self, ctxt, run_id):
        return self._call(ctxt, 'get_run', run_id=run_id)

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
        return self._call(
            ctxt,
            'wait_run',
            self._long_call(timeout=call_timeout),
            run_id=run_id,
            seen=seen,
            timeout=timeout,
            results_since=results_since,
        )

    def list_runs(self, ctxt):
        return self._call(ctxt, 'list_runs')

    def list_nodes(self, ctxt):
        return self._call(ctxt, 'list_nodes')

    def accept_node(self, ctxt, host, fingerprint=None):
        return self._call(
            ctxt,
            'accept_node',
            self.client.prepare(version='1.2'),
            host=host,
            fingerprint=fingerprint,
        )

    def reject_node(self, ctxt, host):
        return self._call(
            ctxt, 'reject_node', self.client.prepare(version='1.2'), host=host
        )

    def delete_node(self, ctxt, host):
        return self._call(
            ctxt, 'delete_node', self.client.prepare(version='1.1'), host=host
        )

    def retry_run(self, ctxt, run_id, failed_nodes_only=False):
        return self._call(
            ctxt,
            'retry_run',
            run_id=run_id,
            failed_nodes_only=failed_nodes_only,
        )

    def cancel_run(self, ctxt, run_id):
        return self._call(ctxt, 'cancel_run', run_id=run_id)

    def delete_run(self, ctxt, run_id):
        return self._call(ctxt, 'delete_run', run_id=run_id)

    def list_extensions(self, ctxt):
        return self._call(ctxt, 'list_extensions')

    def get_log(self, ctxt, run_id, node, phase, plugin, offset=0):
        return self._call(
            ctxt,
            'get_log',
            self._long_call(),
            run_id=run_id,
            node=node,
            phase=phase,
            plugin=plugin,
            offset=offset,
        )
