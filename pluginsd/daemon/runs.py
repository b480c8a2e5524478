"""Drive runs: plan, then publish each phase to its nodes and wait.

Nodes run in stages by role (``[daemon] role_order``): by default every
controller runs the whole mode first, then every other node together.
Within a stage each phase is a barrier: no node gets phase N+1 before every
node of the stage has reported phase N. A run's position is stored after
every phase, so a restarted daemon picks the run up where it was.
"""

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
from pluginsd import results
from pluginsd.daemon import busy
from pluginsd.plugins import bundles as bundles_mod
from pluginsd.plugins import plan as plan_mod
from pluginsd.rpc import signing
from pluginsd.runner import devstack

LOG = logging.getLogger(__name__)

ACTIVE = ('planning', 'running')
ACK_INTERVAL = 0.5  # seconds; well under [agent] result_resend_interval
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


class NodeTracker:
    """Last heartbeat of every node, in memory; the database keeps a copy."""

    def __init__(self, conf, db):
        self.conf = conf
        self.db = db
        started = time.time()
        # After a daemon restart every known node gets a full grace period.
        self._seen = {
            n['host']: max(n['last_seen'], started) for n in db.list_nodes()
        }
        self._lock = threading.Lock()

    def seen(self, host):
        with self._lock:
            self._seen[host] = time.time()

    def silent_for(self, host):
        with self._lock:
            last = self._seen.get(host)
        return None if last is None else time.time() - last

    def forget(self, host):
        with self._lock:
            self._seen.pop(host, None)

    def is_lost(self, host):
        silent = self.silent_for(host)
        return silent is None or silent > self.conf.daemon.agent_down_time

    def alive(self):
        return {
            n['host']: n['roles']
            for n in self.db.list_nodes()
            if not self.is_lost(n['host'])
        }


class RunManager:
    def __init__(self, conf, db, agent_api, nodes, events, checkout_root=None):
        self.conf = conf
        self.db = db
        self.agents = agent_api
        self.nodes = nodes
        self.events = events  # extension/notification hooks
        self.checkout_root = checkout_root
        # Nodes get plugin code from the daemon's cache, as bundles built
        # at plan time; the all-in-one mode clones into DEST directly.
        self.bundles = (
            bundles_mod.BundleStore(bundles_mod.store_dir(conf))
            if checkout_root is not None
            else None
        )
        self._cond = threading.Condition()
        self._versions = {}
        self._summaries = {}  # run_id -> {(node, phase): (status, attempt)}
        self._threads = {}
        self._cancelled = set()
        self._stopping = threading.Event()
        self._incoming = queue.Queue()
        self._acks, self._acks_lock = {}, threading.Lock()
        self._ingest = threading.Thread(
            target=self._ingest_loop, daemon=True, name='results-ingest'
        )
        self._ingest.start()
        self._acker = threading.Thread(
            target=self._ack_loop, daemon=True, name='results-ack'
        )
        self._acker.start()

    # -- entry points --------------------------------------------------------

    def start_run(self, mode, local_confs, path, nodes=None):
        """Start a run; ``nodes``: only these hosts (each must be up)."""
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
        busy.refuse_if_busy(
            busy.targets_for(chosen, parsed),
            self.db.list_runs(states=ACTIVE),
            alive,
        )
        run = self.db.create_run(
            id=str(uuid.uuid4()),
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
        )
        LOG.info('Run %s: %s of %s requested', run['id'], mode, path)
        self._spawn(run['id'])
        return run

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

    def resume_all(self):
        for run in self.db.list_runs(states=ACTIVE):
            LOG.info(
                'Run %s: resuming %s at stage %d phase %d',
                run['id'],
                run['mode'],
                run['stage_index'],
                run['phase_index'],
            )
            self._spawn(run['id'])

    def retry(self, run_id, failed_nodes_only=False):
        run = self.db.get_run(run_id)
        if (
            run['state'] not in ('failed', 'cancelled')
            or run['id'] in self._threads
        ):
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
        run_id = run['id']
        busy.refuse_if_busy(
            run['node_roles'],
            self.db.list_runs(states=ACTIVE),
            self.nodes.alive(),
            run_id,
        )
        phases = results.MODE_PHASES[run['mode']]
        phase = phases[run['phase_index']]
        stage = run['stages'][run['stage_index']] if run['stages'] else []
        summaries = self._summaries_for(run_id)
        hosts = stage
        if failed_nodes_only:
            hosts = [
                h
                for h in stage
                if summaries.get((h, phase), (None,))[0] != results.OK
            ]
        again = list(phases[run['phase_index'] :])
        # What the attempt did is kept for `run show` and the report: the
        # retry replaces these results.
        replaced = [
            r
            for r in self.db.list_results(run_id, mode=run['mode'])
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
        self.db.delete_results(run_id, run['mode'], again, hosts)
        with self._cond:
            self._cancelled.discard(run_id)
            self._summaries.pop(run_id, None)
        self.db.update_run(
            run_id,
            state='running',
            attempt=run['attempt'] + 1,
            pending_hosts=hosts if failed_nodes_only else None,
            error='',
            attempts=earlier,
        )
        LOG.info(
            'Run %s: retry from %s on %s', run_id, phase, ', '.join(hosts)
        )
        self._spawn(run_id)
        return self.db.get_run(run_id)

    def cancel(self, run_id):
        run = self.db.get_run(run_id)
        run_id = run['id']
        if run['state'] not in ACTIVE:
            raise exception.RunStateError(
                run=run_id, state=run['state'], reason='it is not running'
            )
        with self._cond:
            self._cancelled.add(run_id)
            self._cond.notify_all()
        self.agents.cancel_run({}, run_id, run['attempt'])
        return run

    def stop(self):
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        for thread in list(self._threads.values()):
            thread.join(timeout=10)
        self._incoming.put(None)
        self._ingest.join(timeout=10)
        self._acker.join(timeout=10)

    # -- results -----------------------------------------------------------

    # -- ingest ------------------------------------------------------------

    def ingest(self, host, items):
        """Queue results from ``host``; the ingest thread stores, acks."""
        self._incoming.put((host, items))

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
            try:
                self.on_results([r for _, items in batch for r in items])
            except Exception:
                LOG.exception(
                    'Storing %d results failed; agents will resend',
                    sum(len(items) for _, items in batch),
                )
            else:
                with self._acks_lock:
                    for host, items in batch:
                        # Stale attempts too, or the agent resends them
                        # forever.
                        self._acks.setdefault(host, []).extend(
                            results.ack_key(r) for r in items
                        )
            if stop:
                return

    def _ack_loop(self):
        # Agents only need to hear "stored" before they would resend: one
        # fanout now and then carries the acknowledgements of every node.
        while not self._stopping.wait(ACK_INTERVAL):
            self._flush_acks()
        self._flush_acks()

    def _flush_acks(self):
        with self._acks_lock:
            acks, self._acks = self._acks, {}
        if acks:
            try:
                self.agents.ack_results({}, acks)
            except Exception as e:
                LOG.warning(
                    'Acknowledging results failed (%s); agents will '
                    'resend and be acknowledged then',
                    e,
                )

    def _run_exists(self, run_id):
        return self.db.run_exists(run_id)

    def forget(self, run_id):
        """A deleted run: drop what is kept of it in memory."""
        with self._cond:
            for table in (self._versions, self._summaries):
                table.pop(run_id, None)
            self._cancelled.discard(run_id)

    def on_results(self, items):
        known = {
            run_id: self._run_exists(run_id)
            for run_id in {r['run_id'] for r in items}
        }
        for run_id, exists in known.items():
            if not exists:
                LOG.warning('Results for unknown run %s dropped', run_id)
        stored = self.db.store_results(
            [r for r in items if known[r['run_id']]]
        )
        # Before the run thread hears of them: extensions see every plugin
        # result of a phase before that phase's end.
        for r in stored:
            if r['plugin'] != results.NODE:
                self.events.plugin_result(r)
        with self._cond:
            for r in stored:
                if r['plugin'] == results.NODE:
                    self._summaries.setdefault(r['run_id'], {})[
                        (r['node'], r['phase'])
                    ] = (r['status'], r['attempt'])
                self._bump(r['run_id'])
            self._cond.notify_all()
        return stored

    def _end_on_agents(self, run_id):
        """Let agents drop a finished run's shell (failed stacks leave one)."""
        try:
            self.agents.end_run({}, run_id)
        except Exception as e:
            LOG.warning(
                'Run %s: telling agents it ended failed: %s', run_id, e
            )

    def _bump(self, run_id):
        self._versions[run_id] = self._versions.get(run_id, 0) + 1

    def version(self, run_id):
        return self._versions.get(run_id, 0)

    def wait_change(self, run_id, seen, timeout):
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._versions.get(run_id, 0) <= seen:
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping.is_set():
                    break
                self._cond.wait(left)

    def _summaries_for(self, run_id):
        with self._cond:
            if run_id not in self._summaries:
                self._summaries[run_id] = {
                    (r['node'], r['phase']): (r['status'], r['attempt'])
                    for r in self.db.list_results(run_id, plugin=results.NODE)
                }
            return dict(self._summaries[run_id])

    def pending_work(self, host):
        """Current phase events that ``host`` has not answered yet."""
        work = []
        for run in self.db.list_runs(states=('running',)):
            event = self._current_event(run)
            if event and host in event['targets']:
                done = self._summaries_for(run['id']).get(
                    (host, event['phase'])
                )
                if not done or done[1] != run['attempt']:
                    work.append(self.agents.sign_event(event))
        return work

    # -- driving -----------------------------------------------------------

    def _spawn(self, run_id):
        if run_id in self._threads:
            raise exception.RunStateError(
                run=run_id,
                state='running',
                reason='it is being driven already',
            )
        thread = threading.Thread(
            target=self._drive,
            args=(run_id,),
            daemon=True,
            name=f'run-{run_id[:8]}',
        )
        self._threads[run_id] = thread
        thread.start()

    def _set(self, run_id, **values):
        self.db.update_run(run_id, **values)
        with self._cond:
            self._bump(run_id)
            self._cond.notify_all()

    def _drive(self, run_id):
        try:
            run = self.db.get_run(run_id)
            if run['state'] == 'planning':
                run = self._plan(run)
                self.events.run_start(run)
            self._execute(run)
        except _Stopping:
            return
        except _Cancelled as e:
            LOG.info('Run %s cancelled', run_id)
            self._set(run_id, state='cancelled', error=str(e))
        except exception.PluginsdException as e:
            LOG.error('Run %s failed: %s', run_id, e)
            self._set(run_id, state='failed', error=str(e))
        except Exception as e:
            LOG.exception('Run %s: unexpected error', run_id)
            self._set(run_id, state='failed', error=f'internal error: {e}')
        finally:
            self._threads.pop(run_id, None)
            run = self.db.get_run(run_id)
            if run['state'] not in ACTIVE and not self._stopping.is_set():
                self._end_on_agents(run_id)
                self.events.run_end(run)

    def _make_plan(
        self,
        conf,
        workdir,
        role,
        mode='stack',
        pins=None,
        build=False,
        dry_run=False,
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
        )

    def _plan(self, run):
        run_id = run['id']
        node_roles = self._wait_for_nodes(run_id)
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
        for role in sorted(set(targets.values())):
            conf = localconf_mod.LocalConf.from_dict(run['local_confs'][role])
            workdir = os.path.join(
                self.conf.state_path, 'runs', run_id, f'plan-{role}'
            )
            plans[role] = self._make_plan(
                conf, workdir, role, run['mode'], pins, build=True
            ).to_dict()
        self._check_sources(targets, plans)
        stages = stages_for(
            self.conf.daemon.role_order, {h: node_roles[h] for h in targets}
        )
        self.db.update_run(
            run_id,
            plans=plans,
            stages=stages,
            node_roles=targets,
            state='running',
        )
        LOG.info('Run %s: stages %s', run_id, stages)
        return self.db.get_run(run_id)

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

    def _wait_for_nodes(self, run_id):
        deadline = time.monotonic() + self.conf.daemon.node_wait_timeout
        while True:
            alive = self.nodes.alive()
            if alive:
                return alive
            if self._stopping.is_set():
                raise _Stopping()
            if time.monotonic() > deadline:
                raise exception.PluginsdException(
                    'no node registered within '
                    f'{self.conf.daemon.node_wait_timeout} s: is '
                    'pluginsd-agent running and on the same transport?'
                )
            if run_id in self._cancelled:
                raise _Cancelled('cancelled while waiting for nodes')
            time.sleep(0.1)

    def _current_event(self, run):
        phases = results.MODE_PHASES[run['mode']]
        if run['stage_index'] >= len(run['stages']):
            return None
        hosts = run['pending_hosts'] or run['stages'][run['stage_index']]
        return self._event(run, phases[run['phase_index']], hosts)

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
        return {
            'run_id': run['id'],
            'mode': run['mode'],
            'phase': phase,
            'attempt': run['attempt'],
            'targets': targets,
            'parts': parts,
            'deadline': self.conf.daemon.phase_timeout,
        }

    def _execute(self, run):
        run_id, mode = run['id'], run['mode']
        phases = results.MODE_PHASES[mode]
        failures = []
        for stage_index in range(run['stage_index'], len(run['stages'])):
            first = stage_index == run['stage_index']
            for phase_index in range(
                run['phase_index'] if first else 0, len(phases)
            ):
                run = self.db.get_run(run_id)
                phase = phases[phase_index]
                hosts = (
                    run['pending_hosts']
                    if first and run['pending_hosts']
                    else run['stages'][stage_index]
                )
                self.db.update_run(
                    run_id,
                    stage_index=stage_index,
                    phase_index=phase_index,
                    pending_hosts=hosts if run['pending_hosts'] else None,
                )
                self.events.phase_start(run, phase, hosts)
                event = self._event(run, phase, hosts)
                self._publish(event)
                LOG.debug(
                    'Run %s: %s published to %d nodes',
                    run_id,
                    phase,
                    len(hosts),
                )
                failed = self._wait_phase(run, phase, hosts, event)
                LOG.debug('Run %s: %s done on every node', run_id, phase)
                self.events.phase_end(run, phase, hosts, failed)
                self.db.update_run(run_id, pending_hosts=None)
                first = False
                if failed and mode == 'stack':
                    self._set(run_id, state='failed', error=failed[0])
                    return
                # unstack and clean go on, as clean.sh goes on after
                # unstack.sh; a node whose bash ended (`exit N`, deadline)
                # still fails the run, as it ends unstack.sh with N.
                failures += failed
        self._set(
            run_id,
            state='failed' if failures else 'completed',
            stage_index=len(run['stages']),
            error='; '.join(failures),
        )
        LOG.info('Run %s: %s completed', run_id, mode)

    def _publish(self, event):
        """One fanout publish; retried while the broker cannot take it."""
        while not self._stopping.is_set():
            try:
                self.agents.run_phase({}, event)
                return
            except Exception as e:
                LOG.warning(
                    'Run %s: publishing %s failed (%s); retrying',
                    event['run_id'],
                    event['phase'],
                    e,
                )
                time.sleep(1)
        raise _Stopping()

    def _wait_phase(self, run, phase, hosts, event):
        """Wait until every host reported ``phase``; return failure messages.

        The event is published again now and then: fanout queues do not
        survive a broker restart, and agents ignore a phase they already
        run or ran (they re-send its results instead).
        """
        run_id, attempt = run['id'], run['attempt']
        limit = (
            time.monotonic()
            + self.conf.daemon.phase_timeout
            + self.conf.daemon.agent_down_time
        )
        republish_at = time.monotonic() + self.conf.daemon.republish_interval
        while True:
            if self._stopping.is_set():
                raise _Stopping()
            summaries = self._summaries_for(run_id)
            waiting = [
                h
                for h in hosts
                if summaries.get((h, phase), (None, 0))[1] != attempt
            ]
            if not waiting:
                break
            if run_id in self._cancelled:
                raise _Cancelled(f'cancelled during {run["mode"]} {phase}')
            for host in waiting:
                if self.nodes.is_lost(host):
                    silent = self.nodes.silent_for(host)
                    raise exception.PluginsdException(
                        f'node {host} lost during {run["mode"]} {phase}: no '
                        f'heartbeat for {silent or 0:.0f} s (agent_down_time '
                        f'{self.conf.daemon.agent_down_time} s)'
                    )
            if time.monotonic() > republish_at:
                LOG.info(
                    'Run %s: still waiting for %s in %s; publishing again',
                    run_id,
                    ', '.join(waiting),
                    phase,
                )
                self._publish(
                    dict(
                        event,
                        targets={h: event['targets'][h] for h in waiting},
                    )
                )
                republish_at = (
                    time.monotonic() + self.conf.daemon.republish_interval
                )
            if time.monotonic() > limit:
                raise exception.PluginsdException(
                    f'{", ".join(waiting)} did not report '
                    f'{run["mode"]} {phase} before the phase deadline'
                )
            with self._cond:
                self._cond.wait(0.5)
        failed = []
        for row in self.db.list_results(
            run_id, plugin=results.NODE, phase=phase, mode=run['mode']
        ):
            if row['node'] in hosts and row['status'] != results.OK:
                message = (
                    row['message']
                    or f'node {row["node"]}: {phase} {row["status"]}'
                )
                if row['tail']:
                    message += '\n--- output tail ---\n' + row['tail']
                failed.append(message)
        return failed


class _Stopping(Exception):
    """The daemon is stopping; the run stays active and resumes at restart."""


class _Cancelled(Exception):
    """Someone cancelled the run."""
