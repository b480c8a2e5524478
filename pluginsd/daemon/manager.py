"""Server side of the daemon RPC API."""

import logging

import oslo_messaging as messaging

from pluginsd import exception
from pluginsd import rpc

LOG = logging.getLogger(__name__)
# A user error raised here is the caller's answer, not a server fault: no
# traceback in the daemon log.
user_error = messaging.expected_exceptions(exception.PluginsdException)

RUN_FIELDS = (
    'id',
    'mode',
    'state',
    'created_at',
    'updated_at',
    'local_conf_path',
    'stages',
    'node_roles',
    'stage_index',
    'phase_index',
    'attempt',
    'pending_hosts',
    'error',
)


class DaemonManager:
    target = messaging.Target(version='1.1')

    def __init__(
        self,
        conf,
        db,
        runs,
        nodes,
        agent_api,
        signer,
        events,
        extension_records=(),
    ):
        self.conf = conf
        self.extension_records = list(extension_records)
        self.db = db
        self.runs = runs
        self.nodes = nodes
        self.agents = agent_api
        self.signer = signer
        self.events = events

    # -- from agents -------------------------------------------------------

    @rpc.expose
    def report_results(self, ctxt, envelope):
        try:
            payload = self.signer.verify(envelope)
        except exception.SignatureError as e:
            LOG.warning('Results rejected: %s', e)
            return
        host = payload['host']
        items = [r for r in payload['results'] if r.get('node') == host]
        if len(items) != len(payload['results']):
            LOG.warning('Results from %s about other nodes were dropped', host)
        self.runs.ingest(host, items)

    @rpc.expose
    def heartbeat(self, ctxt, envelope):
        try:
            payload = self.signer.verify(envelope)
        except exception.SignatureError as e:
            LOG.warning('Heartbeat rejected: %s', e)
            return
        was_lost = self.nodes.is_lost(payload['host'])
        node, new = self.db.upsert_node(
            payload['host'],
            payload['roles'],
            payload['version'],
            payload['activity'],
            payload.get('allowed_sources'),
            payload.get('devstack_dir', ''),
        )
        self.nodes.seen(payload['host'])
        if new:
            LOG.info(
                'Node %s registered (roles %s)',
                node['host'],
                ','.join(node['roles']),
            )
            self.events.node_register(node)
        elif was_lost:
            LOG.info('Node %s is back', node['host'])
            self.events.node_update(node)

    @rpc.expose
    @user_error
    def get_bundle_chunk(self, ctxt, digest, offset):
        """A piece of a plugin bundle built at plan time (plugins.bundles).

        Reading a piece of a file is all it does: no git runs here.
        """
        if self.runs.bundles is None:
            raise exception.PluginsdException(
                'this daemon keeps no bundles (all-in-one mode)'
            )
        return self.runs.bundles.read_chunk(digest, int(offset))

    @rpc.expose
    def probe(self, ctxt):
        """Nothing to do: the cast reaching the broker was the point."""

    @rpc.expose
    def pending_work(self, ctxt, host):
        return self.runs.pending_work(host)

    # -- from the CLI ------------------------------------------------------

    def _verified(self, request, op):
        try:
            payload = self.signer.verify(request)
            if payload.get('op') != op:
                raise exception.SignatureError(
                    sender=request.get('sender'),
                    reason=f'signed for {payload.get("op")!r}, not {op!r}',
                )
            return payload
        except exception.SignatureError as e:
            LOG.warning('Request rejected: %s', e)
            raise

    @rpc.expose
    @user_error
    def start_run(self, ctxt, request):
        r = self._verified(request, 'start_run')
        return self._run_view(
            self.runs.start_run(
                r['mode'],
                r['local_confs'],
                r['local_conf_path'],
                nodes=r.get('nodes'),
            )
        )

    @rpc.expose
    @user_error
    def plan(self, ctxt, request):
        r = self._verified(request, 'plan')
        return self.runs.plan_only(r['local_conf'], r['local_conf_path'])

    @rpc.expose
    @user_error
    def get_run(self, ctxt, run_id):
        return self._full_view(self.db.get_run(run_id))

    @rpc.expose
    @user_error
    def wait_run(self, ctxt, run_id, seen, timeout, results_since=None):
        """Block until the run changes past version ``seen`` (or timeout).

        With ``results_since`` (a result id), only newer results come back:
        a client following a run does not reload it whole at every change.
        """
        run_id = self.db.get_run(run_id)['id']
        self.runs.wait_change(run_id, seen, min(timeout, 60))
        # The version is read before the row: a change racing with this
        # read then shows as a newer version, and the caller asks again.
        version = self.runs.version(run_id)
        return self._full_view(self.db.get_run(run_id), results_since, version)

    @rpc.expose
    def list_runs(self, ctxt):
        return [self._run_view(r) for r in self.db.list_runs()]

    def _node_view(self, node):
        node['state'] = 'lost' if self.nodes.is_lost(node['host']) else 'up'
        node['silent_for'] = self.nodes.silent_for(node['host'])
        return node

    @rpc.expose
    def list_nodes(self, ctxt):
        return [self._node_view(n) for n in self.db.list_nodes()]

    @rpc.expose
    @user_error
    def delete_node(self, ctxt, request):
        """Forget a node (decommissioned, or a phantom): new runs leave it
        out. An agent still running registers it again.
        """
        host = self._verified(request, 'delete_node')['host']
        node = next(
            (n for n in self.db.list_nodes() if n['host'] == host), None
        )
        if node is None or not self.db.delete_node(host):
            raise exception.PluginsdException(f'no node {host}')
        node = self._node_view(node)
        self.nodes.forget(host)
        LOG.info('Node %s deleted (it was %s)', host, node['state'])
        return node

    @rpc.expose
    @user_error
    def retry_run(self, ctxt, request):
        r = self._verified(request, 'retry_run')
        return self._run_view(
            self.runs.retry(r['run_id'], r['failed_nodes_only'])
        )

    @rpc.expose
    @user_error
    def cancel_run(self, ctxt, request):
        return self._run_view(
            self.runs.cancel(self._verified(request, 'cancel_run')['run_id'])
        )

    @rpc.expose
    def list_extensions(self, ctxt):
        return self.extension_records

    @rpc.expose
    @user_error
    def delete_run(self, ctxt, request):
        run = self.db.get_run(self._verified(request, 'delete_run')['run_id'])
        if run['state'] in ('planning', 'running'):
            raise exception.RunStateError(
                run=run['id'], state=run['state'], reason='cancel it first'
            )
        self.db.delete_run(run['id'])
        self.runs.forget(run['id'])
        self.events.run_delete(run)
        return self._run_view(run)

    @rpc.expose
    @user_error
    def get_log(self, ctxt, run_id, node, phase, plugin, offset=0):
        run_id = self.db.get_run(run_id)['id']
        # Logs stay on the nodes: an unknown or lost node cannot give one.
        if node not in {n['host'] for n in self.db.list_nodes()}:
            raise exception.PluginsdException(f'no node {node}')
        if self.nodes.is_lost(node):
            raise exception.PluginsdException(
                f'node {node} is lost (no heartbeat for '
                f'{self.nodes.silent_for(node) or 0:.0f} s): its logs are on '
                'it, under its [agent] log_dir'
            )
        try:
            return self.agents.fetch_log(
                {}, node, run_id, phase, plugin, offset
            )
        except messaging.MessagingTimeout:
            raise exception.PluginsdException(
                f'node {node} did not answer for its log: is its '
                'pluginsd-agent running?'
            ) from None

    # -- views -------------------------------------------------------------

    def _run_view(self, run):
        return {k: run[k] for k in RUN_FIELDS}

    def _full_view(self, run, results_since=None, version=None):
        view = self._run_view(run)
        view['version'] = (
            self.runs.version(run['id']) if version is None else version
        )
        if results_since is not None:  # a follower: it has the plans
            view['plans'] = {}
        else:
            view['plans'] = {
                role: {
                    'order': [p['name'] for p in plan['plugins']],
                    'plugins': plan['plugins'],
                    'reasons': plan['reasons'],
                }
                for role, plan in run['plans'].items()
            }
            # What ran where: per role, each plugin's URL, ref and the
            # commit the run pinned (one per URL and ref across roles).
            view['commits'] = [
                {
                    'role': role,
                    'plugin': p['name'],
                    'url': exception.redact_url(p['url']),
                    'ref': p['ref'],
                    'commit': p['sha'],
                }
                for role, plan in sorted(run['plans'].items())
                for p in plan['plugins']
            ]
        if results_since is None:
            view['attempts'] = run.get('attempts') or []
        view['results'] = self.db.list_results(run['id'], since=results_since)
        view['last_result_id'] = max(
            [r['id'] for r in view['results']], default=results_since or 0
        )
        view['waiting_on'] = []
        if run['state'] == 'running' and run['stages']:
            from pluginsd import results as results_mod

            phase = results_mod.MODE_PHASES[run['mode']][run['phase_index']]
            hosts = run['pending_hosts'] or run['stages'][run['stage_index']]
            done = {
                r['node']
                for r in self.db.list_results(
                    run['id'], plugin='', phase=phase, mode=run['mode']
                )
                if r['attempt'] == run['attempt']
            }
            view['waiting_on'] = [h for h in hosts if h not in done]
            view['phase'] = phase
        return view
