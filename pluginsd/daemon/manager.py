"""Server side of the daemon RPC API."""

import collections
import functools
import inspect
import logging
import threading
import time

import oslo_messaging as messaging

from pluginsd import exception
from pluginsd import keys
from pluginsd import objects
from pluginsd import rpc
from pluginsd.daemon import nodes as nodes_mod
from pluginsd.daemon import trust
from pluginsd.rpc import signing

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
    'owner',
)
# Runs whose planned parts the node-facing calls remember (they are fixed
# once a run is planned): the runs of the moment, not every run ever.
PLANNED_CACHED = 64


class Planned:
    """What planning fixed for a run (a retry keeps it): the target nodes
    with their roles, each role's local.conf and the bundles it pins.

    Every node asks for its part at the start of a phase; with this, 500
    of them cost the daemon no read of the whole run row each.
    """

    def __init__(self, run):
        self.node_roles = dict(run['node_roles'])
        self.local_confs = run['local_confs']
        self.bundles = {
            role: {p.get('bundle') for p in plan.get('plugins', [])} - {None}
            for role, plan in (run['plans'] or {}).items()
        }

    def pins(self, host, digest):
        return digest in self.bundles.get(self.node_roles.get(host), ())


def signed(method):
    """An RPC method whose one argument is a signed envelope.

    The envelope is opened (signature, sender key, operation, target,
    freshness, replay) and the sender authorized for the method (see
    pluginsd.daemon.trust.POLICY) before ``method(self, ctxt, who,
    **payload)`` runs; anything else is refused, logged at a bounded rate.
    """
    op = method.__name__
    signature = inspect.signature(method)

    @functools.wraps(method)
    def wrapper(self, ctxt, envelope):
        who, payload = self.verifier.open(envelope, op, self.targets)
        try:
            trust.authorize(who, op)
            try:
                signature.bind(self, ctxt, who, **payload)
            except TypeError as e:
                raise exception.SignatureError(
                    sender=str(who), reason=f'bad arguments: {e}'
                ) from None
            return method(self, ctxt, who, **payload)
        except (exception.NotAuthorized, exception.SignatureError) as e:
            refused = e
        self.verifier.reject_log('daemon', str(who), f'{op}: {refused}')
        raise refused

    exposed = rpc.expose(user_error(wrapper))
    # What a reader of the state dir itself calls (allinone.Reader): whoever
    # reads the files needs no envelope.
    exposed.local = method
    return exposed


class LivenessManager:
    """Heartbeats, results and the probe: their own topic and threads.

    The same signed methods as the daemon's endpoint (one place checks who
    is asking), served by a server of their own so that they never wait
    behind planning, bundles, log fetches or long polls.
    """

    target = messaging.Target(version=rpc.DAEMON_API_VERSION)

    def __init__(self, daemon_manager):
        self.daemon = daemon_manager

    @rpc.expose
    def heartbeat(self, ctxt, envelope):
        return self.daemon.heartbeat(ctxt, envelope)

    @rpc.expose
    def report_results(self, ctxt, envelope):
        return self.daemon.report_results(ctxt, envelope)

    @rpc.expose
    def probe(self, ctxt, envelope):
        return self.daemon.probe(ctxt, envelope)


class LongCallManager:
    """Dry-run plans, log fetches and long polls: a lane of their own.

    Each of these may hold its thread for seconds (git, a node's answer,
    a follower waiting for a change); on their own server and threads they
    never hold up the daemon's other calls.
    """

    target = messaging.Target(version=rpc.DAEMON_API_VERSION)

    def __init__(self, daemon_manager):
        self.daemon = daemon_manager

    @rpc.expose
    def plan(self, ctxt, envelope):
        return self.daemon.plan(ctxt, envelope)

    @rpc.expose
    def wait_run(self, ctxt, envelope):
        return self.daemon.wait_run(ctxt, envelope)

    @rpc.expose
    def get_log(self, ctxt, envelope):
        return self.daemon.get_log(ctxt, envelope)


class DaemonManager:
    target = messaging.Target(version=rpc.DAEMON_API_VERSION)
    # What a message for this daemon is signed for.
    targets = ('daemon',)

    def __init__(
        self,
        conf,
        db,
        runs,
        nodes,
        agent_api,
        verifier,
        events,
        extension_records=(),
    ):
        self.conf = conf
        self.extension_records = list(extension_records)
        self.db = db
        self.runs = runs
        self.nodes = nodes
        self.agents = agent_api
        self.verifier = verifier
        self.events = events
        # run id -> Planned: not a database read per node call
        self._planned = collections.OrderedDict()
        self._planned_lock = threading.Lock()

    # -- from agents -------------------------------------------------------

    @signed
    def report_results(self, ctxt, who, host, results):
        """Results of one node, about itself, for runs that target it."""
        # Each result stands alone: a malformed one (or one of a newer
        # major version) is refused, recorded and acknowledged (it will not
        # get better by being resent); the others are stored.
        good, rejected_keys = [], []
        for raw in results:
            try:
                good.append(objects.Result.from_wire(raw))
            except (objects.InvalidObject, TypeError) as e:
                self._reject(str(who), 'Result', raw, e)
                key = objects.ack_key_of(raw)
                if key:
                    rejected_keys.append(key)
        items, dropped = [], 0
        targeted = {}
        for r in good:
            if r.run_id not in targeted:
                targeted[r.run_id] = self._targets(r.run_id, who.name)
            if r.node == who.name == host and targeted[r.run_id]:
                items.append(r.to_dict())
            else:
                dropped += 1
        if dropped:
            self.verifier.reject_log(
                'daemon',
                str(who),
                f'{dropped} results about other nodes or runs that do not '
                'target it',
            )
        if items or rejected_keys:
            self.runs.ingest(who.name, items, rejected_keys)

    def _targets(self, run_id, host):
        try:
            planned = self._planned_run(run_id)
        except exception.RunNotFound:
            return True  # on_results drops (and acknowledges) unknown runs
        return planned is not None and host in planned.node_roles

    def _planned_run(self, run_id):
        """The run's Planned parts; None for a prefix of another run's id.

        Raises RunNotFound. A run still planning is read, not cached: its
        targets may still change.
        """
        run_id = str(run_id)  # as sent: the caller may be wrong about it
        with self._planned_lock:
            planned = self._planned.get(run_id)
        if planned is not None:
            return planned
        run = self.db.get_run(run_id)
        if run['id'] != run_id:
            return None
        planned = Planned(run)
        if run['state'] != 'planning':
            with self._planned_lock:
                self._planned[run_id] = planned
                if len(self._planned) > PLANNED_CACHED:
                    self._planned.popitem(last=False)
        return planned

    @signed
    def heartbeat(self, ctxt, who, host, beat=None, **fields):
        """``beat``: a versioned Heartbeat (API 1.4); before, its fields."""
        if host != who.name:
            raise exception.SignatureError(
                sender=str(who), reason=f'heartbeat for another host {host}'
            )
        raw = beat if beat is not None else dict(fields, host=host)
        try:
            beat = objects.Heartbeat.from_wire(raw)
            if beat.host != host:
                raise objects.InvalidObject(
                    name='Heartbeat',
                    reason=f'host {beat.host!r} is not {host}',
                )
        except (objects.InvalidObject, TypeError) as e:
            self._reject(str(who), 'Heartbeat', raw, e)
            return
        self.nodes.heartbeat(beat)

    def _reject(self, sender, kind, item, reason):
        """Log and keep (once per distinct item) what was refused, and why."""
        self.verifier.reject_log('daemon', sender, f'{kind}: {reason}')
        try:
            self.db.record_rejected(sender, kind, str(reason), item)
        except Exception as e:  # the database is away: the log says it
            LOG.warning('Recording a rejected %s failed: %s', kind, e)

    def _run_for(self, who, run_id):
        """The Planned parts of ``run_id`` if it targets the calling node;
        else refuse.
        """
        planned = self._planned_run(run_id)
        if planned is None or who.name not in planned.node_roles:
            raise exception.NotAuthorized(
                who=f'node {who.name}',
                op=f'read run {run_id}',
                needed='a run that targets it',
            )
        return planned

    @signed
    def get_bundle_chunk(self, ctxt, who, digest, offset):
        """A piece of a plugin bundle built at plan time (plugins.bundles),
        for a node that an active run pins that bundle for.

        Reading a piece of a file is all it does: no git runs here.
        """
        if self.runs.bundles is None:
            raise exception.PluginsdException(
                'this daemon keeps no bundles (all-in-one mode)'
            )
        if not self._bundle_for(who.name, digest):
            raise exception.NotAuthorized(
                who=f'node {who.name}',
                op=f'read bundle {digest}',
                needed='an active run that pins it for this node',
            )
        return self.runs.bundles.read_chunk(digest, offset)

    def _bundle_for(self, host, digest):
        for run in self.db.active_runs():
            if run['state'] != 'running':
                continue
            try:
                planned = self._planned_run(run['id'])
            except exception.RunNotFound:
                continue  # deleted meanwhile
            if planned is not None and planned.pins(host, digest):
                return True
        return False

    @signed
    def get_localconf(self, ctxt, who, run_id):
        """The local.conf of the caller's role, sealed to the caller's key.

        Phase events carry only its digest: no other node and no broker
        account can read it, not even from the reply queue.
        """
        planned = self._run_for(who, run_id)
        localconf = planned.local_confs[planned.node_roles[who.name]]
        data = signing.canonical_json(localconf)
        return {
            'sealed': keys.seal(who.key, data),
            'digest': signing.digest(data),
        }

    @signed
    def probe(self, ctxt, who):
        """The daemon's own cast came back: it is connected to the broker."""
        self.nodes.probe_received()

    @signed
    def pending_work(self, ctxt, who):
        return self.runs.pending_work(who.name)

    # -- from the CLI ------------------------------------------------------

    @signed
    def start_run(
        self,
        ctxt,
        who,
        mode,
        local_confs,
        local_conf_path,
        nodes=None,
        run_id=None,
    ):
        spec = objects.RunSpec(
            mode=mode,
            local_confs=local_confs,
            local_conf_path=local_conf_path,
            nodes=nodes,
            run_id=run_id,
        )
        LOG.info('Run requested by %s', who)
        return self._run_view(
            self.runs.start_run(
                spec.mode,
                spec.local_confs,
                spec.local_conf_path,
                nodes=spec.nodes,
                run_id=spec.run_id,
            )
        )

    @signed
    def plan(self, ctxt, who, local_conf, local_conf_path):
        return self.runs.plan_only(local_conf, local_conf_path)

    @signed
    def get_run(self, ctxt, who, run_id):
        return self._full_view(self.db.get_run(run_id))

    @signed
    def wait_run(self, ctxt, who, run_id, seen, timeout, results_since=None):
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

    @signed
    def list_runs(self, ctxt, who):
        return [self._run_view(r) for r in self.db.list_runs()]

    @signed
    def list_nodes(self, ctxt, who):
        nodes = []
        self.nodes.flush()  # the heartbeats of the last second too
        known = {n['host']: n for n in self.db.list_nodes()}
        keys_by_host = {}
        for k in self.db.list_node_keys():
            keys_by_host.setdefault(k['host'], []).append(k)
        for host in sorted(set(known) | set(keys_by_host)):
            node = known.get(host) or {
                'host': host,
                'roles': [],
                'version': '',
                'activity': '',
                'allowed_sources': None,
            }
            host_keys = keys_by_host.get(host, [])
            accepted = [k for k in host_keys if k['state'] == 'accepted']
            waiting = [k for k in host_keys if k['state'] != 'accepted']
            node['fingerprint'] = (
                accepted[0]['fingerprint'] if accepted else ''
            )
            node['pending_keys'] = [
                {'fingerprint': k['fingerprint'], 'state': k['state']}
                for k in waiting
            ]
            if host in known:
                self._node_view(node)
            else:
                node['state'] = waiting[-1]['state'] if waiting else 'unknown'
                node['silent_for'] = None
            nodes.append(node)
        return nodes

    @signed
    def accept_node(self, ctxt, who, host, fingerprint=None):
        """Accept the pending key of ``host`` (rotation: replaces the old)."""
        pending = [
            k
            for k in self.db.list_node_keys(host)
            if k['state'] in ('pending', 'rejected')
            and (fingerprint is None or k['fingerprint'] == fingerprint)
        ]
        if not pending:
            raise exception.PluginsdException(
                f'node {host} has no pending key'
                + (f' {fingerprint}' if fingerprint else '')
            )
        if len(pending) > 1:
            raise exception.PluginsdException(
                f'node {host} has {len(pending)} pending keys ('
                + ', '.join(k['fingerprint'] for k in pending)
                + '): name one with --fingerprint'
            )
        chosen = pending[0]['fingerprint']
        retired = self.db.delete_node_keys(host, keep=chosen)
        for fp in retired:
            self.verifier.replays.forget(fp)
        self.db.set_node_key_state(host, chosen, 'accepted')
        self.verifier.keyring.reload()
        LOG.info('Node %s: key %s accepted by %s', host, chosen, who)
        return {'host': host, 'fingerprint': chosen, 'retired': retired}

    @signed
    def reject_node(self, ctxt, who, host):
        """Refuse the pending keys of ``host``, or revoke its accepted key."""
        host_keys = self.db.list_node_keys(host)
        if not host_keys:
            raise exception.PluginsdException(f'no node {host}')
        pending = [k for k in host_keys if k['state'] == 'pending']
        for k in pending or host_keys:
            self.db.set_node_key_state(host, k['fingerprint'], 'rejected')
        self.verifier.keyring.reload()
        if not pending:
            self.db.delete_node(host)  # revoked: it takes part in no run
        LOG.info('Node %s: key(s) rejected by %s', host, who)
        return {
            'host': host,
            'rejected': [k['fingerprint'] for k in pending or host_keys],
        }

    @signed
    def delete_node(self, ctxt, who, host):
        """Forget a node (decommissioned, or a phantom): its row and keys.

        New runs leave it out; its agent, if still running, shows as
        pending again and needs accepting.
        """
        node = next(
            (n for n in self.db.list_nodes() if n['host'] == host), None
        )
        gone = self.db.delete_node_keys(host)
        self.verifier.keyring.reload()
        for fp in gone:
            self.verifier.replays.forget(fp)
        if node is None and not gone:
            raise exception.PluginsdException(f'no node {host}')
        if node is not None:
            node = self._node_view(node)
            self.db.delete_node(host)
        self.nodes.forget(host)
        LOG.info('Node %s deleted by %s', host, who)
        return dict(node or {'host': host, 'state': 'pending'}, keys=gone)

    def _node_view(self, node):
        # up, lost or stopped (pluginsd.daemon.nodes)
        node['state'] = self.nodes.state_of(node)
        node['silent_for'] = time.time() - node['last_seen']
        return node

    @signed
    def retry_run(self, ctxt, who, run_id, failed_nodes_only=False):
        return self._run_view(self.runs.retry(run_id, failed_nodes_only))

    @signed
    def cancel_run(self, ctxt, who, run_id):
        return self._run_view(self.runs.cancel(run_id))

    @signed
    def list_extensions(self, ctxt, who):
        return self.extension_records

    @signed
    def delete_run(self, ctxt, who, run_id):
        run = self.db.get_run(run_id)
        if run['state'] in ('planning', 'running'):
            raise exception.RunStateError(
                run=run['id'], state=run['state'], reason='cancel it first'
            )
        self.db.delete_run(run['id'])
        self.runs.forget(run['id'])
        with self._planned_lock:  # its local.confs are not kept either
            self._planned.pop(run['id'], None)
        self.events.run_delete(run)
        return self._run_view(run)

    @signed
    def get_log(self, ctxt, who, run_id, node, phase, plugin, offset=0):
        run_id = self.db.get_run(run_id)['id']
        # Logs stay on the nodes: an unknown or lost node cannot give one.
        self.nodes.flush()
        row = next(
            (n for n in self.db.list_nodes() if n['host'] == node), None
        )
        if row is None:
            raise exception.PluginsdException(f'no node {node}')
        state = self.nodes.state_of(row)
        silent = time.time() - row['last_seen']
        if state == nodes_mod.STOPPED:
            raise exception.PluginsdException(
                f'node {node} is stopped (its agent stopped {silent:.0f} s '
                'ago): its logs are on it, under its [agent] log_dir'
            )
        if state == nodes_mod.LOST:
            raise exception.PluginsdException(
                f'node {node} is lost (no heartbeat for {silent:.0f} s): '
                'its logs are on it, under its [agent] log_dir'
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
            done = self.db.reported_nodes(
                run['id'], run['mode'], phase, run['attempt']
            )
            view['waiting_on'] = [h for h in hosts if h not in done]
            view['phase'] = phase
        return view
