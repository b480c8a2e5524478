"""Drive runs: plan, then publish each phase to its nodes and wait.

Nodes run in stages by role (``[daemon] role_order``): by default every
controller runs the whole mode first, then every other node together;
unstack and clean take the stages in reverse (``reverse_teardown``).
Within a stage each phase is a barrier: no node gets phase N+1 before every
node of the stage has reported phase N.

The database is the only state. :meth:`RunManager.advance` reads a run and
what its nodes reported, and decides the next step; every step is a
compare-and-swap on the run's ``version``, so two callers (two threads, two
daemons) can never both move, retry or finish a run. ``advance`` runs on a
small worker pool when a result is stored, on a periodic tick, and on
start, retry and cancel: no thread per run, and nothing in memory grows with
the number of runs. A daemon drives a run only while it holds the run's
lease in the database; a daemon that dies leaves a lease that expires, and
any other daemon on the same database carries on from what is stored.
"""

import concurrent.futures
import logging
import os
import queue
import shutil
import threading
import time
import uuid

from pluginsd import exception
from pluginsd import git
from pluginsd import localconf as localconf_mod
from pluginsd import objects
from pluginsd import process
from pluginsd import results
from pluginsd.daemon import busy
from pluginsd.daemon import nodes as nodes_mod
from pluginsd.plugins import bundles as bundles_mod
from pluginsd.plugins import plan as plan_mod
from pluginsd.rpc import signing
from pluginsd.runner import devstack

LOG = logging.getLogger(__name__)

ACTIVE = ('planning', 'running')
RETRYABLE = ('failed', 'cancelled')
# A run waiting for results is checked for lost nodes, its deadline and
# republishing at most this often (seconds), not at every result that comes
# in: the check reads every node, and N nodes report N times a phase.
WAITING_CHECK_INTERVAL = 1.0
ACK_INTERVAL = 0.5  # seconds; well under [agent] result_resend_interval
# How long stored results wait for a fanout to carry their
# acknowledgement (the next phase event to their node, or the run's end)
# before each node is sent its own: a node's results are stored within
# seconds of each other at the end of a phase, and one publish then
# acknowledges them all. 500 casts, one per node, took 11 s at 500 nodes
# on two cores. Well under [agent] result_resend_interval (5 s).
ACK_HOLD = 2.0
# Acknowledgements in flight at once. Each cast waits for the broker's
# confirm: one after another, the acks of 500 nodes took seconds on a
# loaded controller, and most nodes resent their results meanwhile.
ACK_SENDERS = 4
DEFAULT_ROLE = '*'


def stages_for(role_order, node_roles):
    """Split hosts into stages: [[host, ...], ...], empty stages dropped."""
    named = {r for entry in role_order for r in entry.split('+') if r != '*'}
    stages, placed = [], set()
    for entry in role_order:
        wanted = set(entry.split('+'))
        hosts = sorted(
            h
            for h, roles in node_roles.items()
            if h not in placed
            and (
                wanted & set(roles)
                or ('*' in wanted and not named & set(roles))
            )
        )
        placed.update(hosts)
        if hosts:
            stages.append(hosts)
    return stages


def phase_hosts(run):
    """The hosts that must report the run's current phase."""
    return run['pending_hosts'] or run['stages'][run['stage_index']]


class RunManager:
    def __init__(
        self,
        conf,
        db,
        agent_api,
        nodes,
        events,
        checkout_root=None,
        replays=None,
    ):
        self.conf = conf
        self.db = db
        self.agents = agent_api
        self.nodes = nodes
        self.events = events  # extension/notification hooks
        self.checkout_root = checkout_root
        # The replay marks of result messages (signing.ReplayGuard): stored
        # with the results they carried.
        self.replays = replays
        self.owner = conf.host  # whose name goes into the leases
        # Nodes get plugin code from the daemon's cache, as bundles built
        # at plan time; the all-in-one mode clones into DEST directly.
        self.bundles = (
            bundles_mod.BundleStore(bundles_mod.store_dir(conf))
            if checkout_root is not None
            else None
        )
        self._stopping = threading.Event()
        # Runs queued or being advanced, and those that changed meanwhile:
        # both bounded by the number of active runs.
        self._lock = threading.Lock()
        self._scheduled, self._again = set(), set()
        # run id -> the process.Scope of its planning, while it plans here
        # (bounded by engine_workers): cancel kills it.
        self._planning = {}
        # run id -> when its waiting was last checked (active runs only).
        self._checked = {}
        # run id -> until when (monotonic) this daemon's lease on it needs
        # no renewing by advance(): the tick renews held leases anyway.
        self._held = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=conf.daemon.engine_workers,
            thread_name_prefix='run-engine',
        )
        # Woken by every change this daemon stores (wait_run long polls).
        self._changed = threading.Condition()
        self._incoming = queue.Queue()
        # Stored results not yet acknowledged: host -> (when the first of
        # them was stored (monotonic), [ack key, ...]).
        self._acks, self._acks_lock = {}, threading.Lock()
        # Held from storing results to handing their plugin_result events
        # to the extensions: a phase_end waits for it (see _phase_ended).
        self._telling_results = threading.Lock()
        nodes.on_node_up = self._kick_planning
        self._threads = [
            threading.Thread(target=target, daemon=True, name=name)
            for target, name in (
                (self._ingest_loop, 'results-ingest'),
                (self._ack_loop, 'results-ack'),
                (self._tick_loop, 'run-tick'),
            )
        ]

    def start(self):
        for thread in self._threads:
            thread.start()

    def stop(self):
        self._stopping.set()
        with self._lock:
            planning = list(self._planning.values())
        for scope in planning:
            scope.kill('the daemon is stopping')
        with self._changed:
            self._changed.notify_all()
        self._incoming.put(None)
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=10)
        self._pool.shutdown(wait=True, cancel_futures=True)
        try:
            # Another daemon need not wait for the leases to expire.
            self.db.release_leases(self.owner)
        except Exception as e:
            LOG.warning('Releasing run leases failed: %s', e)

    # -- entry points --------------------------------------------------------

    def start_run(self, mode, local_confs, path, nodes=None, run_id=None):
        """Start a run; ``nodes``: only these hosts (each must be up).

        ``run_id``: the caller's id for it. A caller that timed out asks
        again with the same id and gets the run its first request started,
        not a second one (nor a refusal because that run keeps the nodes
        busy).
        """
        if mode not in results.MODE_PHASES:
            raise exception.PluginsdException(
                f'unknown mode {mode!r}: expected stack, unstack or clean'
            )
        parsed = {
            role: localconf_mod.from_input(
                text,
                f'{path}' if role == DEFAULT_ROLE else f'{path} (role {role})',
            ).to_dict()
            for role, text in local_confs.items()
        }
        request = (mode, parsed, path)
        if run_id is not None and self.db.run_exists(run_id):
            return self._asked_again(run_id, request)
        alive = self.nodes.alive()
        chosen = alive
        if nodes:
            down = sorted(set(nodes) - set(alive))
            if down:
                raise exception.PluginsdException(
                    f'node(s) {", ".join(down)} not up: pluginsctl node '
                    'list shows the nodes and their state'
                )
            chosen = {h: alive[h] for h in nodes}
        try:
            busy.refuse_if_busy(
                busy.targets_for(chosen, parsed),
                self.db.list_runs(states=ACTIVE),
                alive,
            )
            run = self._create_run(run_id, mode, path, parsed, nodes)
        except (exception.NodesBusy, exception.DuplicateRun):
            # The same id asked twice at once: the other request's run
            # keeps the nodes busy, or took the id first.
            if run_id is not None and self.db.run_exists(run_id):
                return self._asked_again(run_id, request)
            raise
        LOG.info('Run %s: %s of %s requested', run['id'], mode, path)
        self.kick(run['id'])
        return run

    def _asked_again(self, run_id, request):
        """The run a request with this id started: the same request only."""
        run = self.db.get_run(run_id)
        asked = (run['mode'], run['local_confs'], run['local_conf_path'])
        if asked != request:
            raise exception.PluginsdException(
                f'run id {run_id} is the id of another request (another '
                'mode or local.conf): choose a new id'
            )
        LOG.info('Run %s: asked for again; it is %s', run_id, run['state'])
        return run

    def _create_run(self, run_id, mode, path, parsed, nodes):
        return self.db.create_run(
            id=run_id or str(uuid.uuid4()),
            mode=mode,
            state='planning',
            local_conf_path=path,
            local_confs=parsed,
            plans={},
            stages=[],
            # The hosts asked for (their roles are set at planning); empty:
            # every node up then.
            node_roles={h: None for h in nodes or ()},
            stage_index=0,
            phase_index=0,
            attempt=1,
            error='',
            version=0,
        )

    def plan_only(self, local_conf, path):
        conf = localconf_mod.from_input(local_conf, path)
        workdir = plan_mod.scratch_dir(
            os.path.join(self.conf.state_path, 'plans')
        )
        try:
            # A dry run: the cache a later run pins from stays as it is.
            return self._make_plan(
                conf, workdir, DEFAULT_ROLE, dry_run=True
            ).to_dict()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def retry(self, run_id, failed_nodes_only=False):
        run = self.db.get_run(run_id)
        if run['state'] not in RETRYABLE:
            raise exception.RunStateError(
                run=run['id'],
                state=run['state'],
                reason='only a failed or cancelled run can be retried',
            )
        if not run['plans']:
            raise exception.RunStateError(
                run=run['id'],
                state=run['state'],
                reason='it failed before planning finished; start a new run',
            )
        busy.refuse_if_busy(
            run['node_roles'],
            self.db.list_runs(states=ACTIVE),
            self.nodes.alive(),
            run['id'],
        )
        phases = results.MODE_PHASES[run['mode']]
        phase = phases[run['phase_index']]
        stage = run['stages'][run['stage_index']] if run['stages'] else []
        hosts = stage
        if failed_nodes_only:
            reports = self.db.phase_reports(run['id'], run['mode'], phase)
            hosts = [
                h
                for h in stage
                if reports.get(h, {}).get('status') != results.OK
            ]
        again = list(phases[run['phase_index'] :])
        # What the attempt did is kept for `run show` and the report: the
        # retry replaces these results.
        replaced = [
            r
            for r in self.db.list_results(run['id'], mode=run['mode'])
            if r['phase'] in again and r['node'] in hosts
        ]
        earlier = list(run.get('attempts') or []) + [
            {
                'attempt': run['attempt'],
                'state': run['state'],
                'error': run['error'],
                'ended_at': run['updated_at'],
                'results': replaced,
            }
        ]
        # One conditional update: of two concurrent retries, one wins.
        retried = self.db.retry_run(
            run['id'],
            run['version'],
            RETRYABLE,
            phases=again,
            hosts=hosts,
            pending_hosts=hosts if failed_nodes_only else None,
            attempts=earlier,
        )
        if retried is None:
            raise exception.RunStateError(
                run=run['id'],
                state=self.db.get_run(run['id'])['state'],
                reason='it changed while the retry was asked for (another '
                'retry was accepted first)',
            )
        self._let_go(run['id'])  # the retry cleared its lease
        LOG.info(
            'Run %s: retry from %s on %s', run['id'], phase, ', '.join(hosts)
        )
        self._notify()
        self.kick(run['id'])
        return retried

    def cancel(self, run_id):
        run = self.db.get_run(run_id)
        cancelled = self.db.finish_run(
            run['id'], ACTIVE, 'cancelled', 'cancelled by request'
        )
        if cancelled is None:
            raise exception.RunStateError(
                run=run['id'],
                state=self.db.get_run(run['id'])['state'],
                reason='it is not running',
            )
        LOG.info('Run %s cancelled', run['id'])
        with self._lock:
            planning = self._planning.get(run['id'])
        if planning is not None:  # its git and bash stop now
            planning.kill('the run was cancelled')
        self.agents.cancel_run({}, run['id'], run['attempt'])
        self._notify()
        self._finished(cancelled)
        return cancelled

    def forget(self, run_id):
        """A deleted run: nothing of it is kept in memory anyway."""

    # -- results -------------------------------------------------------------

    def ingest(self, host, items, rejected_keys=()):
        """Queue results from ``host``: the ingest thread stores, acks them."""
        self._incoming.put((host, items, list(rejected_keys)))

    def _ingest_loop(self):
        # Many nodes report at once at the end of a phase: store whatever
        # has arrived in one transaction, then acknowledge each node once.
        while True:
            batch = [self._incoming.get()]
            if batch[0] is None:
                return
            while True:
                try:
                    batch.append(self._incoming.get_nowait())
                except queue.Empty:
                    break
            stop = batch[-1] is None
            batch = [b for b in batch if b is not None]
            started = time.monotonic()
            acks = {}
            for host, items, rejected in batch:
                # Stale attempts and rejected items too, or the agent
                # resends them forever.
                acks.setdefault(host, []).extend(
                    [results.ack_key(r) for r in items] + rejected
                )
            try:
                stored = self.on_results(
                    [r for _, items, _ in batch for r in items], acks
                )
            except Exception:
                LOG.exception(
                    'Storing %d results failed; agents will resend',
                    sum(len(items) for _, items, _ in batch),
                )
            else:
                LOG.debug(
                    'Stored %d new results of %d messages in %.2f s',
                    len(stored),
                    len(batch),
                    time.monotonic() - started,
                )
            if stop:
                return

    def _ack_loop(self):
        # Agents only need to hear "stored" before they would resend. Most
        # acks ride on the next fanout to their node (_carried_acks); those
        # that waited ACK_HOLD go out as one cast to each node.
        while not self._stopping.wait(ACK_INTERVAL):
            self._flush_acks()
        self._flush_acks(hold=0)

    def _flush_acks(self, hold=ACK_HOLD):
        """Send each node the acks that waited ``hold`` seconds for a
        fanout to carry them.
        """
        held_since = time.monotonic() - hold
        with self._acks_lock:
            acks = {
                host: self._acks.pop(host)[1]
                for host, (since, _) in list(self._acks.items())
                if since <= held_since
            }
        if not acks:
            return
        started = time.monotonic()
        hosts = sorted(acks)
        shares = [
            {host: acks[host] for host in hosts[i::ACK_SENDERS]}
            for i in range(min(ACK_SENDERS, len(hosts)))
        ]

        def send(share):
            try:
                self.agents.ack_results({}, share)
            except Exception as e:
                LOG.warning(
                    'Acknowledging results failed (%s); agents will '
                    'resend and be acknowledged then',
                    e,
                )

        # Threads of this flush only: nothing to stop with the daemon.
        with concurrent.futures.ThreadPoolExecutor(
            len(shares), thread_name_prefix='results-ack-send'
        ) as senders:
            for share in shares:
                senders.submit(send, share)
        LOG.debug(
            'Acknowledged %d results to %d nodes in %.2f s',
            sum(len(keys) for keys in acks.values()),
            len(acks),
            time.monotonic() - started,
        )

    def _carried_acks(self, hosts=None):
        """The pending acks of ``hosts`` (None: all), packed for a fanout
        to carry (results.pack_acks); {} if the agents cannot read them.

        Taken from the pending ones: if the publish fails, the nodes resend
        those results and are acknowledged again.
        """
        if not self.agents.carries_acks():
            return {}
        with self._acks_lock:
            wanted = list(self._acks) if hosts is None else hosts
            taken = {
                h: self._acks.pop(h)[1] for h in wanted if h in self._acks
            }
            packed, left = results.pack_acks(taken)
            for host, keys in left.items():  # for the next flush to send
                self._acks[host] = (0.0, keys)
        return packed

    def on_results(self, items, acks=None):
        """Store ``items``; then ``acks`` ({host: [ack key]}) are due, before
        the runs move on: the phase event that follows carries them.
        """
        known = {
            run_id: self.db.run_exists(run_id)
            for run_id in {r['run_id'] for r in items}
        }
        for run_id, exists in known.items():
            if not exists:
                LOG.warning('Results for unknown run %s dropped', run_id)
        # Every mark deferred so far, those of the messages that carried
        # these results among them. One NodeTracker.flush took first is
        # stored by it within the second; a replay meanwhile would store
        # nothing (results are stored once).
        marks = self.replays.take_deferred() if self.replays else {}
        with self._telling_results:
            try:
                stored = self.db.store_results(
                    [r for r in items if known[r['run_id']]], marks
                )
            except Exception:
                if marks:
                    self.replays.defer_again(marks)
                raise
            for r in stored:
                if r['plugin'] != results.NODE:
                    self.events.plugin_result(r)
        now = time.monotonic()
        with self._acks_lock:
            for host, keys in (acks or {}).items():
                self._acks.setdefault(host, (now, []))[1].extend(keys)
        self._notify()
        for run_id in {r['run_id'] for r in stored}:
            self.kick(run_id)
        return stored

    # -- followers -----------------------------------------------------------

    def _notify(self):
        with self._changed:
            self._changed.notify_all()

    def version(self, run_id):
        return self.db.run_version(run_id)

    def wait_change(self, run_id, seen, timeout):
        """Return once the run's version passes ``seen`` (or at timeout).

        Woken by this daemon's own changes; another daemon's show within a
        short poll of the database.
        """
        deadline = time.monotonic() + timeout
        while self.version(run_id) <= seen:
            left = deadline - time.monotonic()
            if left <= 0 or self._stopping.is_set():
                return
            with self._changed:
                self._changed.wait(min(left, 0.5))

    def pending_work(self, host):
        """Current phase events that ``host`` has not answered yet."""
        work = []
        for run in self.db.list_runs(states=('running',)):
            if run['phase_started_at'] is None or host not in phase_hosts(run):
                continue
            phase = results.MODE_PHASES[run['mode']][run['phase_index']]
            done = self.db.reported_nodes(
                run['id'], run['mode'], phase, run['attempt']
            )
            if host not in done:
                work.append(
                    self.agents.sign_event(self._event(run, phase, [host]))
                )
        return work

    # -- scheduling ----------------------------------------------------------

    def kick(self, run_id):
        """Have ``advance(run_id)`` run soon (once, however often kicked)."""
        with self._lock:
            if self._stopping.is_set():
                return
            if run_id in self._scheduled:
                self._again.add(run_id)
                return
            self._scheduled.add(run_id)
        try:
            self._pool.submit(self._advance_task, run_id)
        except RuntimeError:  # the pool is shut down: we are stopping
            with self._lock:
                self._scheduled.discard(run_id)

    def _advance_task(self, run_id):
        while not self._stopping.is_set():
            with self._lock:
                self._again.discard(run_id)
            try:
                self.advance(run_id)
            except exception.RunNotFound:
                pass  # deleted meanwhile
            except Exception:
                # The database may be away: the next tick tries again.
                LOG.exception('Run %s: advancing failed', run_id)
            with self._lock:
                if run_id not in self._again:
                    self._scheduled.discard(run_id)
                    return
        with self._lock:
            self._scheduled.discard(run_id)
            self._again.discard(run_id)

    def _kick_planning(self):
        for run in self.db.active_runs():
            if run['state'] == 'planning':
                self.kick(run['id'])

    def _tick_loop(self):
        lease = self.conf.daemon.run_lease_time
        interval = min(1.0, lease / 4)
        while not self._stopping.wait(interval):
            try:
                self.db.renew_leases(self.owner, lease)
                now = time.time()
                active = self.db.active_runs()
                ids = {run['id'] for run in active}
                self._checked = {
                    k: v for k, v in self._checked.items() if k in ids
                }
                with self._lock:
                    self._held = {
                        k: v for k, v in self._held.items() if k in ids
                    }
                for run in active:
                    if (
                        run['owner'] in (None, self.owner)
                        or (run['lease_expires'] or 0) < now
                    ):
                        self.kick(run['id'])
            except Exception as e:  # the database is away: try again
                LOG.warning('Run tick failed: %s', e)

    # -- the one function that moves a run -----------------------------------

    def advance(self, run_id):
        """Take the next step of a run, decided from what is stored."""
        if not self._hold_lease(run_id):
            return  # another daemon drives it
        run = self.db.get_run(run_id)
        if run['state'] == 'planning':
            run = self._plan_step(run)
        while run is not None and run['state'] == 'running':
            run = self._phase_step(run)

    def _hold_lease(self, run_id):
        """Whether this daemon drives the run, its lease taken or renewed.

        Not a database write at every result batch: within half a lease of
        taking it, the lease is still ours (the tick renews it meanwhile,
        and every transition checks the owner anyway).
        """
        now = time.monotonic()
        with self._lock:
            if self._held.get(run_id, 0) > now:
                return True
        lease = self.conf.daemon.run_lease_time
        held = self.db.acquire_lease(run_id, self.owner, lease)
        with self._lock:
            if held:
                self._held[run_id] = now + lease / 2
            else:
                self._held.pop(run_id, None)
        return held

    def _let_go(self, run_id):
        with self._lock:
            self._held.pop(run_id, None)

    def _transition(self, run, **values):
        """The run with ``values`` stored, or None if it changed meanwhile."""
        new = self.db.transition(run['id'], run['version'], self.owner, values)
        if new is None:
            LOG.debug('Run %s changed meanwhile; re-reading', run['id'])
            self._let_go(run['id'])  # it may have another owner now
            self.kick(run['id'])
        else:
            self._notify()
        return new

    def _finished(self, run):
        """Let agents drop a finished run's shell; tell the extensions."""
        try:
            self.agents.end_run({}, run['id'], acks=self._carried_acks())
        except Exception as e:
            LOG.warning(
                'Run %s: telling agents it ended failed: %s', run['id'], e
            )
        self.events.run_end(run)

    def _fail(self, run, error):
        LOG.error('Run %s failed: %s', run['id'], error)
        failed = self._transition(run, state='failed', error=error)
        if failed is not None:
            self._finished(failed)

    # -- planning ------------------------------------------------------------

    def _plan_step(self, run):
        alive = self.nodes.alive()
        if not alive:
            limit = self.conf.daemon.node_wait_timeout
            if time.time() - run['created_at'] > limit:
                self._fail(
                    run,
                    f'no node registered within {limit} s: is '
                    'pluginsd-agent running and on the same transport?',
                )
            return None  # the tick looks again
        try:
            values = self._plan(run, alive)
        except exception.PluginsdException as e:
            if self._stopping.is_set():
                return None  # still planning: the next daemon plans it
            self._fail(run, str(e))
            return None
        except Exception as e:
            LOG.exception('Run %s: unexpected error while planning', run['id'])
            self._fail(run, f'internal error: {e}')
            return None
        run = self._transition(run, state='running', **values)
        if run is not None:
            LOG.info('Run %s: stages %s', run['id'], run['stages'])
            self.events.run_start(run)
        return run

    def _make_plan(
        self,
        conf,
        workdir,
        role,
        mode='stack',
        pins=None,
        build=False,
        dry_run=False,
        scope=None,
    ):
        root = self.checkout_root
        if root is not None:
            root = os.path.join(
                root, 'default' if role == DEFAULT_ROLE else role
            )
        return plan_mod.make_plan(
            conf,
            workdir,
            bash=self.conf.runner.bash,
            checkout_root=root,
            default_dest=self.conf.agent.dest,
            fetch_plugins=mode == 'stack',
            pins=pins,
            bundles=self.bundles if build and mode == 'stack' else None,
            devstack_dir=devstack.configured(self.conf),
            mode=mode,
            dry_run=dry_run,
            git_timeout=self.conf.daemon.phase_timeout,
            scope=scope,
        )

    def _plan(self, run, node_roles):
        run_id = run['id']
        chosen = set(run['node_roles'])  # --node: only these
        if chosen:
            down = sorted(chosen - set(node_roles))
            if down:
                raise exception.PluginsdException(
                    f'node(s) {", ".join(down)} not up at planning'
                )
            node_roles = {h: node_roles[h] for h in chosen}
        targets = busy.targets_for(node_roles, run['local_confs'])
        # Two runs started at once both passed start_run's check: the
        # older one keeps the nodes.
        busy.refuse_if_busy(
            targets,
            [
                r
                for r in self.db.list_runs(states=ACTIVE)
                if (r['created_at'], r['id']) < (run['created_at'], run_id)
            ],
            node_roles,
            run_id,
        )
        unused = set(run['local_confs']) - set(targets.values())
        if unused:
            LOG.warning(
                'Run %s: no node up has the role(s) %s; their local.conf '
                'is not used',
                run_id,
                ', '.join(sorted(unused)),
            )
        if not targets:
            raise exception.PluginsdException(
                f'no node matches the roles of the given local.conf files '
                f'({", ".join(run["local_confs"])}); nodes: {node_roles}'
            )
        plans, pins = {}, {}  # one commit per (URL, ref) for every role
        # One deadline for the whole planning of the run, every role.
        scope = process.Scope(
            time.monotonic() + self.conf.daemon.phase_timeout
        )
        with self._lock:
            self._planning[run_id] = scope
        try:
            for role in sorted(set(targets.values())):
                conf = localconf_mod.LocalConf.from_dict(
                    run['local_confs'][role]
                )
                workdir = os.path.join(
                    self.conf.state_path, 'runs', run_id, f'plan-{role}'
                )
                plans[role] = self._make_plan(
                    conf,
                    workdir,
                    role,
                    run['mode'],
                    pins,
                    build=True,
                    scope=scope,
                ).to_dict()
        finally:
            with self._lock:
                self._planning.pop(run_id, None)
        self._check_sources(targets, plans)
        stages = stages_for(
            self.conf.daemon.role_order, {h: node_roles[h] for h in targets}
        )
        if run['mode'] != 'stack' and self.conf.daemon.reverse_teardown:
            # Take down what depends on the controller first.
            stages.reverse()
        return {
            'plans': plans,
            'stages': stages,
            'node_roles': targets,
            'stage_index': 0,
            'phase_index': 0,
            'phase_started_at': None,
            'published_at': None,
        }

    def _check_sources(self, targets, plans):
        """Refuse, before any phase, a plugin source a target node refuses."""
        allowed = {
            n['host']: n['allowed_sources'] for n in self.db.list_nodes()
        }
        for host in sorted(targets):
            rules = allowed.get(host)
            if rules is None:
                continue  # all-in-one, or a node that did not say
            for p in plans[targets[host]]['plugins']:
                try:
                    if git.source_allowed(p['url'], rules):
                        continue
                    why = (
                        'is not in [agent] allowed_sources '
                        f'({", ".join(rules) or "empty"})'
                    )
                except git.GitInputError as e:
                    why = f'is refused: {e}'
                raise exception.PluginsdException(
                    f'node {host} refuses plugin {p["name"]}: source '
                    f'{exception.redact_url(p["url"])} {why}'
                )

    # -- phases --------------------------------------------------------------

    def _phase_ended(self, run, phase, hosts, failed):
        # Extensions see every plugin result of a phase before its end (the
        # dispatcher keeps the order). The results this step read may be
        # stored and not yet told, by another thread: wait for it.
        with self._telling_results:
            self.events.phase_end(run, phase, hosts, failed)

    def _phase_step(self, run):
        """One step of a running run; the run to look at again, or None."""
        mode = run['mode']
        phases = results.MODE_PHASES[mode]
        phase = phases[run['phase_index']]
        hosts = phase_hosts(run)
        now = time.time()
        if run['phase_started_at'] is None:
            run = self._transition(run, phase_started_at=now, published_at=now)
            if run is not None:
                self.events.phase_start(run, phase, hosts)
                self._publish(self._event(run, phase, hosts))
                LOG.debug(
                    'Run %s: %s published to %d nodes',
                    run['id'],
                    phase,
                    len(hosts),
                )
            return None  # results kick the run
        done = self.db.reported_nodes(run['id'], mode, phase, run['attempt'])
        waiting = [h for h in hosts if h not in done]
        if waiting:
            last = self._checked.get(run['id'])
            if last is None or not 0 <= now - last < WAITING_CHECK_INTERVAL:
                self._checked[run['id']] = now
                self._check_waiting(run, phase, waiting, now)
            return None
        reports = self.db.phase_reports(run['id'], mode, phase, run['attempt'])
        LOG.debug('Run %s: %s done on every node', run['id'], phase)
        failed = [
            self._failure_message(reports[h], phase)
            for h in hosts
            if reports[h]['status'] != results.OK
        ]
        if failed and mode == 'stack':
            moved = self._transition(run, state='failed', error=failed[0])
            if moved is not None:
                LOG.error('Run %s failed: %s', run['id'], failed[0])
                self._phase_ended(run, phase, hosts, failed)
                self._finished(moved)
            return None
        # Teardown goes on past failures and reports them all at the end.
        error = '; '.join([e for e in [run['error']] if e] + failed)
        if run['phase_index'] + 1 < len(phases):
            nxt = {'phase_index': run['phase_index'] + 1}
        elif run['stage_index'] + 1 < len(run['stages']):
            nxt = {'stage_index': run['stage_index'] + 1, 'phase_index': 0}
        else:
            # A teardown that went on past failures still fails the run,
            # as unstack.sh ends with the status of what failed.
            nxt = {
                'state': 'failed' if error else 'completed',
                'stage_index': len(run['stages']),
            }
        moved = self._transition(
            run,
            pending_hosts=None,
            phase_started_at=None,
            published_at=None,
            error=error,
            **nxt,
        )
        if moved is None:
            return None
        self._phase_ended(run, phase, hosts, failed)
        if moved['state'] != 'running':
            LOG.info('Run %s: %s %s', run['id'], mode, moved['state'])
            self._finished(moved)
            return None
        return moved

    def _check_waiting(self, run, phase, waiting, now):
        mode = run['mode']
        states = self.nodes.states()
        for host in waiting:
            state, node = states.get(host, (nodes_mod.LOST, None))
            if state == nodes_mod.STOPPED:
                self._fail(
                    run,
                    f'node {host} stopped during {mode} {phase} (its agent '
                    'was shut down)',
                )
                return
            if state == nodes_mod.LOST:
                silent = self.nodes.silent_for(node, now) if node else 0
                self._fail(
                    run,
                    f'node {host} lost during {mode} {phase}: no heartbeat '
                    f'for {silent:.0f} s (agent_down_time '
                    f'{self.conf.daemon.agent_down_time} s)',
                )
                return
        limit = (
            run['phase_started_at']
            + self.conf.daemon.phase_timeout
            + self.conf.daemon.agent_down_time
        )
        if now > limit:
            self._fail(
                run,
                f'{", ".join(waiting)} did not report {mode} {phase} '
                'before the phase deadline',
            )
            return
        if now - run['published_at'] > self.conf.daemon.republish_interval:
            # Fanout queues do not survive a broker restart; agents ignore
            # a phase they already run or ran (and re-send its results).
            if self.db.touch_published(run['id'], run['version'], now):
                LOG.info(
                    'Run %s: still waiting for %s in %s; publishing again',
                    run['id'],
                    ', '.join(waiting),
                    phase,
                )
                self._publish(self._event(run, phase, waiting))

    @staticmethod
    def _failure_message(row, phase):
        message = (
            row['message'] or f'node {row["node"]}: {phase} {row["status"]}'
        )
        if row['tail']:
            message += '\n--- output tail ---\n' + row['tail']
        return message

    def _event(self, run, phase, hosts):
        targets = {h: run['node_roles'][h] for h in hosts}
        parts = {}
        for role in set(targets.values()):
            plan = run['plans'][role]
            # Not the local.conf itself (it holds passwords, and localrc is
            # code): each target fetches its own, sealed to its key, and
            # checks it against this digest.
            parts[role] = {
                'plugins': plan['plugins'],
                'localconf_digest': signing.digest(
                    signing.canonical_json(run['local_confs'][role])
                ),
            }
        return objects.PhaseEvent(
            run_id=run['id'],
            mode=run['mode'],
            phase=phase,
            attempt=run['attempt'],
            targets=targets,
            parts=parts,
            deadline=self.conf.daemon.phase_timeout,
        ).to_dict()

    def _publish(self, event):
        """One fanout publish, with the acks of its targets; a failed one
        is repeated at the republish.
        """
        event = dict(event, acks=self._carried_acks(event['targets']))
        try:
            self.agents.run_phase({}, event)
        except Exception as e:
            LOG.warning(
                'Run %s: publishing %s failed (%s); it goes out again in %s s',
                event['run_id'],
                event['phase'],
                e,
                self.conf.daemon.republish_interval,
            )
