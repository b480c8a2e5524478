"""The run engine (pluginsd.daemon.runs) on a real SQLite database.

The engine is driven by hand: ``kick`` only records which runs would be
advanced, and the test calls ``advance`` itself, so every step is visible.
The agents are a recording double; planning is replaced by a fixed plan
(planning has its own tests).
"""

import threading
import time
import uuid

import pytest

from pluginsd import conf as pluginsd_conf
from pluginsd import exception
from pluginsd import objects
from pluginsd import results
from pluginsd.daemon import manager as manager_mod
from pluginsd.daemon import nodes as nodes_mod
from pluginsd.daemon import runs as runs_mod
from pluginsd.db import api as db_api
from pluginsd.extensions import dispatch
from pluginsd.rpc import signing

PHASES = ['pre-install', 'install', 'post-config', 'extra', 'test-config']
LOCAL_CONF = '[[local|localrc]]\nX=1\n'


class Agents:
    """Records what the daemon asks of the agents."""

    def __init__(self):
        self.events, self.cancelled, self.ended, self.acks = [], [], [], []
        # Acks carried by fanouts: [(op, packed acks)]
        self.carried = []
        self.reads_carried_acks = True

    def carries_acks(self):
        return self.reads_carried_acks

    def sign_event(self, event):
        return {'signed': event}

    def run_phase(self, ctxt, event):
        self.events.append(objects.PhaseEvent(**event))
        if event.get('acks'):
            self.carried.append(('run_phase', event['acks']))

    def cancel_run(self, ctxt, run_id, attempt):
        self.cancelled.append((run_id, attempt))

    def end_run(self, ctxt, run_id, acks=None):
        self.ended.append(run_id)
        if acks:
            self.carried.append(('end_run', acks))

    def ack_results(self, ctxt, acks):
        self.acks.append(acks)

    def published(self):
        return [(e.phase, sorted(e.targets)) for e in self.events]


class Events:
    """Records extension events by name."""

    def __init__(self):
        self.seen = []

    def __getattr__(self, name):
        def record(*args):
            self.seen.append((name, args))

        return record

    def names(self):
        return [n for n, _ in self.seen]


def ok_result(run, node='ctl', plugin='alpha', phase='pre-install'):
    """A result of attempt 1 of a stack run, as an agent reports it."""
    return dict(
        run_id=run,
        node=node,
        plugin=plugin,
        mode='stack',
        phase=phase,
        attempt=1,
        status='ok',
    )


class FixedPlan:
    def to_dict(self):
        return {'plugins': [], 'reasons': {}, 'declared': []}


@pytest.fixture
def conf():
    c = pluginsd_conf.new_conf()
    c([], default_config_files=[])
    c.set_override('host', 'd1')
    c.set_override('agent_down_time', 10, group='daemon')
    c.set_override('republish_interval', 5, group='daemon')
    c.set_override('phase_timeout', 100, group='daemon')
    c.set_override('run_lease_time', 10, group='daemon')
    yield c
    c.reset()


@pytest.fixture
def db(tmp_path):
    database = db_api.Database('sqlite:///' + str(tmp_path / 'db.sqlite'))
    database.upgrade()
    yield database
    database.engine.dispose()


class Daemon:
    """One daemon's engine; ``kicked`` lists the runs it would advance."""

    def __init__(self, conf, db, host='d1'):
        conf.set_override('host', host)
        self.agents, self.events = Agents(), Events()
        self.nodes = nodes_mod.NodeTracker(conf, db, self.events)
        self.nodes.probe_received()
        self.runs = runs_mod.RunManager(
            conf, db, self.agents, self.nodes, self.events
        )
        self.runs.owner = host
        self.runs._make_plan = lambda *args, **kwargs: FixedPlan()
        self.kicked = []
        self.runs.kick = self.kicked.append
        self.db = db

    def beat(self, host, roles=('compute',), state='up'):
        self.nodes.heartbeat(
            objects.Heartbeat(host=host, roles=list(roles), state=state)
        )

    def report(self, run, phase, hosts, status='ok', attempt=None):
        attempt = attempt or self.db.get_run(run)['attempt']
        mode = self.db.get_run(run)['mode']
        return self.runs.on_results(
            [
                dict(
                    run_id=run,
                    node=h,
                    plugin=plugin,
                    mode=mode,
                    phase=phase,
                    attempt=attempt,
                    status=status,
                )
                for h in hosts
                for plugin in ('alpha', '')
            ]
        )

    def start(self, mode='stack'):
        run = self.runs.start_run(mode, {'*': LOCAL_CONF}, 'local.conf')
        self.runs.advance(run['id'])
        return run['id']

    def complete_phases(self, run, hosts, phases=PHASES):
        for phase in phases:
            self.report(run, phase, hosts)
            self.runs.advance(run)


@pytest.fixture
def daemon(conf, db):
    d = Daemon(conf, db)
    d.beat('ctl', ['controller'])
    d.beat('cmp1')
    d.beat('cmp2')
    return d


class TestOneRun:
    def test_plan_then_one_phase_at_a_time_per_stage(self, daemon, db):
        run = daemon.start()
        view = db.get_run(run)
        assert view['state'] == 'running'
        assert view['stages'] == [['ctl'], ['cmp1', 'cmp2']]
        assert daemon.agents.published() == [('pre-install', ['ctl'])]
        daemon.runs.advance(run)  # nothing reported: nothing new
        assert len(daemon.agents.events) == 1
        daemon.complete_phases(run, ['ctl'])
        assert daemon.agents.published()[-1] == (
            'pre-install',
            ['cmp1', 'cmp2'],
        )
        # A barrier: one compute done is not enough.
        daemon.report(run, 'pre-install', ['cmp1'])
        daemon.runs.advance(run)
        assert daemon.agents.published()[-1][0] == 'pre-install'
        daemon.report(run, 'pre-install', ['cmp2'])
        daemon.runs.advance(run)
        assert daemon.agents.published()[-1] == ('install', ['cmp1', 'cmp2'])
        daemon.complete_phases(run, ['cmp1', 'cmp2'], PHASES[1:])
        view = db.get_run(run)
        assert view['state'] == 'completed'
        assert [p for p, _ in daemon.agents.published()] == PHASES * 2
        assert daemon.agents.ended == [run]
        names = [n for n in daemon.events.names() if n != 'node_register']
        assert names[0] == 'run_start' and names[-1] == 'run_end'
        assert names.count('phase_start') == names.count('phase_end') == 10
        # Every stored result kicked the run; nothing kept per run.
        assert set(daemon.kicked) == {run}
        assert daemon.runs._scheduled == set() and daemon.runs._again == set()

    def test_stored_results_are_counted_once(self, daemon, db):
        run = daemon.start()
        daemon.report(run, 'pre-install', ['ctl'])
        daemon.report(run, 'pre-install', ['ctl'])  # a resend
        assert len(db.list_results(run)) == 2

    def test_a_failed_stack_phase_fails_the_run(self, daemon, db):
        run = daemon.start()
        daemon.report(run, 'pre-install', ['ctl'], status='failed')
        daemon.runs.advance(run)
        view = db.get_run(run)
        assert view['state'] == 'failed'
        assert 'node ctl: pre-install failed' in view['error']
        assert daemon.agents.published() == [('pre-install', ['ctl'])]
        assert daemon.events.names()[-2:] == ['phase_end', 'run_end']

    @pytest.mark.parametrize(
        'reverse, order',
        [
            (True, [['cmp1', 'cmp2'], ['ctl']]),
            (False, [['ctl'], ['cmp1', 'cmp2']]),
        ],
    )
    def test_teardown_stages_reversed_by_default(
        self, daemon, db, conf, reverse, order
    ):
        conf.set_override('reverse_teardown', reverse, group='daemon')
        run = daemon.start('unstack')
        assert db.get_run(run)['stages'] == order
        assert daemon.agents.published() == [('unstack', order[0])]

    def test_teardown_goes_on_past_failures(self, daemon, db):
        run = daemon.start('clean')
        daemon.report(run, 'unstack', ['cmp1', 'cmp2'], status='failed')
        daemon.runs.advance(run)
        assert daemon.agents.published()[-1] == ('clean', ['cmp1', 'cmp2'])
        daemon.complete_phases(run, ['cmp1', 'cmp2'], ['clean'])
        daemon.complete_phases(run, ['ctl'], ['unstack', 'clean'])
        view = db.get_run(run)
        # It went on to the end, and the failures fail it.
        assert view['stage_index'] == 2
        assert view['state'] == 'failed'
        assert view['error'].count('unstack failed') == 2

    def test_a_phase_ends_after_its_results_are_told_whoever_ends_it(
        self, daemon, db
    ):
        # CI: the tick ended a phase between the storing of its last
        # result and that result's plugin_result, in another thread.
        stored, go_on = threading.Event(), threading.Event()

        class SlowToTell(Events):
            def plugin_result(self, result):
                stored.set()  # in the database, not told yet
                go_on.wait(10)
                self.seen.append(('plugin_result', (result,)))

        daemon.runs.events = daemon.events = SlowToTell()
        run = daemon.start()
        daemon.events.seen.clear()
        storing = threading.Thread(
            target=daemon.report, args=(run, 'pre-install', ['ctl'])
        )
        storing.start()
        assert stored.wait(10)
        ticking = threading.Thread(target=daemon.runs.advance, args=(run,))
        ticking.start()
        ticking.join(0.5)  # long enough to end the phase, were it let
        go_on.set()
        storing.join(10)
        ticking.join(10)
        assert db.get_run(run)['phase_index'] == 1
        assert daemon.events.names()[:2] == ['plugin_result', 'phase_end']

    def test_a_node_registering_kicks_the_runs_waiting_to_plan(self, conf, db):
        d = Daemon(conf, db)
        run = d.start()
        d.kicked.clear()
        d.beat('ctl', ['controller'])
        assert d.kicked == [run]
        d.runs.advance(run)
        assert d.agents.published() == [('pre-install', ['ctl'])]
        d.kicked.clear()
        d.beat('ctl', ['controller'])  # just a heartbeat: nothing to do
        assert d.kicked == []

    def test_no_node_fails_after_node_wait_timeout(self, conf, db):
        d = Daemon(conf, db)
        run = d.start()
        assert db.get_run(run)['state'] == 'planning'  # waits: the tick
        conf.set_override('node_wait_timeout', 1, group='daemon')
        db.update_run(run, created_at=time.time() - 5)
        d.runs.advance(run)
        view = db.get_run(run)
        assert view['state'] == 'failed'
        assert 'no node registered within 1 s' in view['error']


def meet_after_first_call(call, prefix):
    """``call``, but the first call of each of two threads named
    ``prefix``-... waits for the other's: both read before either writes.
    """
    barrier = threading.Barrier(2)
    called = set()

    def call_then_wait(*args):
        result = call(*args)
        me = threading.current_thread().name
        if me.startswith(prefix) and me not in called:
            called.add(me)
            barrier.wait(timeout=10)
        return result

    return call_then_wait


def in_two_threads(target, prefix):
    threads = [
        threading.Thread(target=target, name=f'{prefix}-{i}') for i in (1, 2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)


class TestCompareAndSwap:
    def _failed_run(self, daemon, db):
        run = daemon.start()
        daemon.report(run, 'pre-install', ['ctl'], status='failed')
        daemon.runs.advance(run)
        assert db.get_run(run)['state'] == 'failed'
        return run

    def test_two_concurrent_retries_exactly_one_accepted(self, daemon, db):
        run = self._failed_run(daemon, db)
        # Both requests read the run before either writes.
        get_run = db.get_run
        db.get_run = meet_after_first_call(get_run, 'retry')
        outcomes = []

        def retry():
            try:
                outcomes.append(daemon.runs.retry(run)['attempt'])
            except exception.RunStateError as e:
                outcomes.append(str(e))

        in_two_threads(retry, 'retry')
        db.get_run = get_run
        accepted = [o for o in outcomes if o == 2]
        refused = [o for o in outcomes if o != 2]
        assert len(accepted) == 1, outcomes
        assert len(refused) == 1
        assert 'another retry was accepted first' in refused[0]
        view = db.get_run(run)
        assert (view['state'], view['attempt']) == ('running', 2)

    def test_a_start_asked_again_with_its_run_id_is_the_same_run(
        self, daemon, db
    ):
        run_id = str(uuid.uuid4())
        first = daemon.runs.start_run(
            'stack', {'*': LOCAL_CONF}, 'l.conf', run_id=run_id
        )
        daemon.runs.advance(run_id)  # planned: the nodes are busy now
        again = daemon.runs.start_run(
            'stack', {'*': LOCAL_CONF}, 'l.conf', run_id=run_id
        )
        assert first['id'] == again['id'] == run_id
        assert len(db.list_runs()) == 1
        # Another request under that id is refused, and says why.
        with pytest.raises(exception.PluginsdException) as e:
            daemon.runs.start_run(
                'unstack', {'*': LOCAL_CONF}, 'l.conf', run_id=run_id
            )
        assert f'run id {run_id} is the id of another request' in str(e.value)
        # Without an id, the same request is a second run: refused, busy.
        with pytest.raises(exception.PluginsdException) as e:
            daemon.runs.start_run('stack', {'*': LOCAL_CONF}, 'l.conf')
        assert 'busy' in str(e.value)
        assert len(db.list_runs()) == 1

    def test_a_start_asked_twice_at_once_makes_one_run(self, daemon, db):
        run_id = str(uuid.uuid4())
        # Both requests find no run under the id before either stores one.
        run_exists = db.run_exists
        db.run_exists = meet_after_first_call(run_exists, 'start')
        ids = []

        def start():
            ids.append(
                daemon.runs.start_run(
                    'stack', {'*': LOCAL_CONF}, 'l.conf', run_id=run_id
                )['id']
            )

        in_two_threads(start, 'start')
        db.run_exists = run_exists
        assert ids == [run_id, run_id]
        assert [r['id'] for r in db.list_runs()] == [run_id]

    def test_retry_reruns_the_failed_phase_as_a_new_attempt(self, daemon, db):
        run = self._failed_run(daemon, db)
        daemon.runs.retry(run)
        daemon.runs.advance(run)
        event = daemon.agents.events[-1]
        assert (event.phase, event.attempt) == ('pre-install', 2)
        # A late result of attempt 1 does not count for attempt 2.
        daemon.report(run, 'pre-install', ['ctl'], attempt=1)
        daemon.runs.advance(run)
        assert daemon.agents.events[-1].phase == 'pre-install'
        daemon.complete_phases(run, ['ctl'])
        daemon.complete_phases(run, ['cmp1', 'cmp2'])
        assert db.get_run(run)['state'] == 'completed'

    def test_a_running_run_cannot_be_retried(self, daemon):
        run = daemon.start()
        with pytest.raises(exception.RunStateError, match='only a failed'):
            daemon.runs.retry(run)

    def test_cancel_while_planning_wins_over_the_plan(self, daemon, db):
        run = daemon.runs.start_run('stack', {'*': LOCAL_CONF}, 'l.conf')
        planned = threading.Event()

        def plan_slowly(*args, **kwargs):
            daemon.runs.cancel(run['id'])  # arrives during planning
            planned.set()
            return FixedPlan()

        daemon.runs._make_plan = plan_slowly
        daemon.runs.advance(run['id'])
        assert planned.is_set()
        view = db.get_run(run['id'])
        assert view['state'] == 'cancelled'
        assert daemon.agents.events == []  # the stale plan never ran
        assert daemon.agents.cancelled == [(run['id'], 1)]
        with pytest.raises(exception.RunStateError, match='not running'):
            daemon.runs.cancel(run['id'])

    def test_cancel_kills_the_planning_and_a_stop_does_not_fail_it(
        self, daemon, db
    ):
        scopes = []

        def plan_until_killed(*args, scope=None, **kwargs):
            scopes.append(scope)
            if len(scopes) == 1:
                daemon.runs.cancel(first['id'])
            else:
                daemon.runs.stop()
            assert scope.killed  # its git and bash were killed
            raise exception.PluginsdException(
                f'planning stopped: {scope.killed}'
            )

        daemon.runs._make_plan = plan_until_killed
        first = daemon.runs.start_run('stack', {'*': LOCAL_CONF}, 'l.conf')
        daemon.runs.advance(first['id'])
        assert scopes[0].killed == 'the run was cancelled'
        assert db.get_run(first['id'])['state'] == 'cancelled'
        # A daemon that stops while planning leaves the run to be planned
        # again (by its next start, or another daemon): it does not fail.
        second = daemon.runs.start_run('stack', {'*': LOCAL_CONF}, 'l.conf')
        daemon.runs.advance(second['id'])
        assert scopes[1].killed == 'the daemon is stopping'
        assert db.get_run(second['id'])['state'] == 'planning'
        assert daemon.runs._planning == {}

    def test_a_stale_transition_is_refused(self, daemon, db):
        run = daemon.start()
        row = db.get_run(run)
        db.update_run(run, error='someone else')
        assert db.transition(run, row['version'], 'd1', {'state': 'x'}) is None
        assert db.get_run(run)['state'] == 'running'


class TestLeases:
    def test_only_the_owner_drives_and_another_takes_over(self, conf, db):
        d1 = Daemon(conf, db, 'd1')
        for host in ('ctl', 'cmp1'):
            d1.beat(host, ['controller'] if host == 'ctl' else ['compute'])
        run = d1.start()
        d2 = Daemon(conf, db, 'd2')
        assert db.get_run(run)['owner'] == 'd1'
        d2.report(run, 'pre-install', ['ctl'])  # d2 may store results
        d2.runs.advance(run)
        assert d2.agents.events == []  # but d1 drives
        # d1 dies: its lease runs out.
        db.update_run(run, lease_expires=time.time() - 1)
        d2.runs.advance(run)
        assert db.get_run(run)['owner'] == 'd2'
        assert d2.agents.published() == [('install', ['ctl'])]
        d1.runs.advance(run)  # back from the dead: not its run any more
        assert len(d1.agents.events) == 1
        d2.complete_phases(run, ['ctl'], PHASES[1:])
        d2.complete_phases(run, ['cmp1'])
        assert db.get_run(run)['state'] == 'completed'
        assert len(db.list_results(run)) == 2 * 5 * 2

    def test_the_lease_is_not_written_at_every_step(
        self, conf, db, monkeypatch
    ):
        d1 = Daemon(conf, db, 'd1')
        d1.beat('ctl', ['controller'])
        run = d1.start()
        taken = []
        acquire = db.acquire_lease

        def counting(*args):
            taken.append(args)
            return acquire(*args)

        monkeypatch.setattr(db, 'acquire_lease', counting)
        d1.complete_phases(run, ['ctl'])
        assert db.get_run(run)['state'] == 'completed'
        # Taken when the run started; five phases, each a publish and a
        # batch of results, write it no more.
        assert taken == []
        # Past half the lease it is taken again.
        monkeypatch.setattr(
            time,
            'monotonic',
            lambda t=time.monotonic() + conf.daemon.run_lease_time: t,
        )
        d1.runs.advance(run)
        assert len(taken) == 1

    def test_a_clean_stop_releases_the_leases(self, conf, db):
        d1 = Daemon(conf, db, 'd1')
        d1.beat('ctl', ['controller'])
        run = d1.start()
        d1.runs.stop()
        assert db.get_run(run)['owner'] is None
        d2 = Daemon(conf, db, 'd2')
        d2.runs.advance(run)
        assert db.get_run(run)['owner'] == 'd2'


class Clock:
    def __init__(self):
        self.now = time.time()

    def __call__(self):
        return self.now

    def passes(self, seconds, nodes=None):
        """Time goes by.

        With ``nodes``, the daemon's probe comes back every second meanwhile
        (it stays connected).
        """
        for _ in range(int(seconds)):
            self.now += 1
            if nodes:
                nodes.probe_received()


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(time, 'time', c)
    return c


class TestLiveness:
    def test_silence_while_connected_loses_the_node(self, daemon, db, clock):
        run = daemon.start()
        clock.passes(9, daemon.nodes)
        daemon.runs.advance(run)
        assert db.get_run(run)['state'] == 'running'
        clock.passes(2, daemon.nodes)
        daemon.runs.advance(run)
        view = db.get_run(run)
        assert view['state'] == 'failed'
        assert 'node ctl lost during stack pre-install' in view['error']

    def test_waiting_is_checked_once_a_second_not_per_result(
        self, daemon, db, clock
    ):
        run = daemon.start()
        calls = []
        states = daemon.nodes.states
        daemon.nodes.states = lambda: calls.append(1) or states()
        for _ in range(5):  # results from other nodes, in the same second
            daemon.runs.advance(run)
        assert len(calls) == 1
        clock.passes(1, daemon.nodes)
        daemon.runs.advance(run)
        assert len(calls) == 2

    def test_heartbeats_that_say_nothing_new_are_stored_together(
        self, daemon, db, clock
    ):
        def last_seen(host):
            return {n['host']: n['last_seen'] for n in db.list_nodes()}[host]

        daemon.beat('cmp7')
        first = last_seen('cmp7')
        clock.passes(2, daemon.nodes)
        daemon.beat('cmp7')  # the same again: no write of its own
        assert last_seen('cmp7') == first
        assert daemon.nodes.states()['cmp7'][0] == 'up'  # states() flushes
        assert last_seen('cmp7') == first + 2
        # Something new (roles) is written at once, and so is a beat after
        # a silence long enough for the node to have been judged lost.
        clock.passes(1, daemon.nodes)
        daemon.beat('cmp7', roles=('compute', 'network'))
        assert last_seen('cmp7') == first + 3
        clock.passes(5, daemon.nodes)  # agent_down_time 10: half of it
        daemon.beat('cmp7', roles=('compute', 'network'))
        assert last_seen('cmp7') == first + 8
        # A node deleted meanwhile is registered again by its next beat.
        clock.passes(1, daemon.nodes)
        daemon.beat('cmp7', roles=('compute', 'network'))
        db.delete_node('cmp7')
        daemon.nodes.flush()
        daemon.beat('cmp7', roles=('compute', 'network'))
        assert last_seen('cmp7') == first + 9

    def test_the_watch_reads_only_the_nodes_lost_or_stopped(
        self, daemon, db, clock
    ):
        def judged(nodes):  # the fixture's own nodes fall silent too
            return {
                h: s for h, (s, _) in nodes.items() if h in {'a', 'b', 'c'}
            }

        for host in ('a', 'b', 'c'):
            daemon.beat(host)
        assert judged(daemon.nodes.unwell()) == {}
        daemon.beat('c', state='stopped')
        clock.passes(6, daemon.nodes)
        daemon.beat('a')  # a keeps beating, b falls silent
        clock.passes(5, daemon.nodes)  # agent_down_time 10
        unwell = judged(daemon.nodes.unwell())
        assert unwell == {'b': 'lost', 'c': 'stopped'}
        every = judged(daemon.nodes.states())
        assert unwell == {h: s for h, s in every.items() if s != 'up'}
        clock.passes(60)  # no probe back: nobody is judged lost
        assert judged(daemon.nodes.unwell()) == {'c': 'stopped'}

    def test_no_node_is_lost_while_the_daemon_is_cut_off(
        self, daemon, db, clock
    ):
        run = daemon.start()
        clock.passes(60)  # no probe came back: the daemon lost the broker
        assert not daemon.nodes.connected()
        daemon.runs.advance(run)
        assert db.get_run(run)['state'] == 'running'
        assert daemon.nodes.alive().keys() == {'ctl', 'cmp1', 'cmp2'}
        # Back: every node has a fresh agent_down_time from now.
        daemon.nodes.probe_received()
        clock.passes(9, daemon.nodes)
        daemon.runs.advance(run)
        assert db.get_run(run)['state'] == 'running'
        clock.passes(2, daemon.nodes)
        daemon.runs.advance(run)
        assert db.get_run(run)['state'] == 'failed'

    def test_a_stopped_node_is_left_out_and_fails_its_phase(self, daemon, db):
        run = daemon.start()
        daemon.beat('ctl', ['controller'], state='stopped')
        daemon.runs.advance(run)
        view = db.get_run(run)
        assert view['state'] == 'failed'
        assert 'node ctl stopped during stack pre-install' in view['error']
        assert set(daemon.nodes.alive()) == {'cmp1', 'cmp2'}
        states = {h: s for h, (s, _) in daemon.nodes.states().items()}
        assert states == {'ctl': 'stopped', 'cmp1': 'up', 'cmp2': 'up'}
        daemon.beat('ctl', ['controller'])  # started again
        assert set(daemon.nodes.alive()) == {'ctl', 'cmp1', 'cmp2'}

    def test_republish_to_the_silent_nodes_only(self, daemon, db, clock):
        run = daemon.start()
        daemon.complete_phases(run, ['ctl'])
        daemon.report(run, 'pre-install', ['cmp1'])
        clock.passes(6, daemon.nodes)
        for host in ('cmp1', 'cmp2'):
            daemon.beat(host)
        daemon.runs.advance(run)
        assert daemon.agents.published()[-1] == ('pre-install', ['cmp2'])

    def test_phase_deadline(self, daemon, db, clock):
        run = daemon.start()
        for _ in range(12):  # heartbeats go on; the phase never ends
            clock.passes(9, daemon.nodes)
            daemon.beat('ctl', ['controller'])
            daemon.runs.advance(run)
        # phase_timeout + agent_down_time: 110 s
        assert db.get_run(run)['state'] == 'running'
        clock.passes(3, daemon.nodes)
        daemon.beat('ctl', ['controller'])
        daemon.runs.advance(run)
        view = db.get_run(run)
        assert view['state'] == 'failed'
        assert (
            'ctl did not report stack pre-install before the phase'
            in (view['error'])
        )


class Verifier:
    """Stands in for rpc.signing.Verifier: what was refused is logged."""

    def __init__(self):
        self.refused = []

    def reject_log(self, where, who, why):
        self.refused.append((who, why))


def node_identity(host):
    return signing.Identity('node', host, 'node', 'fp-' + host, None)


class TestIngest:
    def _manager(self, daemon, db, conf):
        return manager_mod.DaemonManager(
            conf,
            db,
            daemon.runs,
            daemon.nodes,
            daemon.agents,
            Verifier(),
            daemon.events,
        )

    def test_bad_items_rejected_alone_and_recorded_with_why(
        self, daemon, db, conf
    ):
        run = daemon.start()
        good = ok_result(run)
        malformed = dict(good, plugin='beta', status=None)
        # A newer format: a field this daemon does not know is dropped,
        # a changed meaning (a list where a string was) is refused.
        newer = dict(good, plugin='gamma', status=['ok', 'with-warnings'])
        newer_field = dict(good, plugin='delta', color='blue')
        # As versioned objects (API 1.4): a newer minor is taken (its new
        # fields dropped), a newer major is refused.
        newer_minor = {
            'object': 'Result',
            'version': '1.7',
            'data': dict(good, plugin='epsilon', color='blue'),
        }
        newer_major = {
            'object': 'Result',
            'version': '2.0',
            'data': dict(good, plugin='zeta'),
        }
        stored = []
        daemon.runs.ingest = lambda host, items, rejected: stored.append(
            (host, items, rejected)
        )
        manager = self._manager(daemon, db, conf)
        manager_mod.DaemonManager.report_results.local(
            manager,
            {},
            node_identity('ctl'),
            host='ctl',
            results=[
                malformed,
                good,
                newer,
                newer_field,
                newer_minor,
                newer_major,
            ],
        )
        [(host, items, rejected_keys)] = stored
        daemon.runs.on_results(items)
        rows = db.list_results(run)
        assert sorted(r['plugin'] for r in rows) == [
            'alpha',
            'delta',
            'epsilon',
        ]
        rejected = db.list_rejected()
        assert [(r['sender'], r['kind']) for r in rejected] == [
            ('node ctl (fp-ctl)', 'Result'),
        ] * 3
        assert "field 'status' is null, not str" in rejected[0]['reason']
        assert "field 'status' is list, not str" in rejected[1]['reason']
        assert (
            'version 2.0 is not compatible with 1.0' in rejected[2]['reason']
        )
        assert '"beta"' in rejected[0]['item']
        # Rejected items are acknowledged: the agent stops resending them.
        assert len(rejected_keys) == 3
        assert sorted(k.split('|')[2] for k in rejected_keys) == [
            'beta',
            'gamma',
            'zeta',
        ]
        # The same bad item sent again is recorded once.
        assert (
            db.record_rejected(rejected[0]['sender'], 'Result', 'x', malformed)
            is False
        )
        assert len(db.list_rejected()) == 3

    def test_results_of_a_node_the_run_does_not_target_are_dropped(
        self, daemon, db, conf
    ):
        run = daemon.start()
        queued = []
        daemon.runs.ingest = lambda host, items, rejected: queued.append(host)
        manager = self._manager(daemon, db, conf)

        def report(host):
            manager_mod.DaemonManager.report_results.local(
                manager,
                {},
                node_identity(host),
                host=host,
                results=[ok_result(run, node=host)],
            )

        report('cmp9')
        assert queued == []
        # The run's targets are remembered: no read per result batch.
        reads = []
        get_run = db.get_run
        db.get_run = lambda run_id: reads.append(run_id) or get_run(run_id)
        report('ctl')
        report('cmp9')
        assert queued == ['ctl'] and reads == []

    def test_result_marks_are_stored_with_the_results(self, daemon, db):
        """One transaction per batch, not one write per result message."""
        run = daemon.start()
        guard = signing.ReplayGuard(db, 300)
        daemon.runs.replays = guard
        guard.check('SHA256:ctl', 7, deferred=True)
        assert db.load_marks() == {}
        daemon.runs.on_results([ok_result(run)])
        assert db.load_marks() == {'SHA256:ctl': 7}
        assert [r['plugin'] for r in db.list_results(run)] == ['alpha']
        # The database away: the marks wait for the next batch.
        guard.check('SHA256:ctl', 8, deferred=True)
        store = db.store_results
        db.store_results = lambda *a: 1 / 0
        with pytest.raises(ZeroDivisionError):
            daemon.runs.on_results([ok_result(run, plugin='beta')])
        db.store_results = store
        daemon.runs.on_results([])
        assert db.load_marks() == {'SHA256:ctl': 8}

    def test_a_bad_heartbeat_is_recorded(self, daemon, db, conf):
        manager = self._manager(daemon, db, conf)
        manager_mod.DaemonManager.heartbeat.local(
            manager,
            {},
            node_identity('cmp9'),
            host='cmp9',
            roles='compute',
            version='1',
            activity='',
        )
        assert 'cmp9' not in daemon.nodes.alive()
        [row] = db.list_rejected()
        assert row['kind'] == 'Heartbeat'
        assert "field 'roles' is str, not list" in row['reason']

    def test_a_stopping_heartbeat_marks_the_node_stopped(
        self, daemon, db, conf
    ):
        manager = self._manager(daemon, db, conf)
        manager_mod.DaemonManager.heartbeat.local(
            manager,
            {},
            node_identity('cmp1'),
            host='cmp1',
            roles=['compute'],
            version='1',
            activity='',
            state='stopped',
        )
        assert daemon.nodes.states()['cmp1'][0] == 'stopped'

    def test_a_restarted_agent_is_up_whatever_order_its_beats_land_in(
        self, daemon, db
    ):
        # The old process's "stopped" and the new one's first "up" reach
        # two liveness workers at once; "stopped" is written last.
        daemon.beat('cmp1')
        writing, written = threading.Event(), threading.Event()
        upsert = db.upsert_node

        def slow_stopped_write(*args):
            if args[-1] == 'stopped':
                writing.set()
                written.wait(5)
            return upsert(*args)

        db.upsert_node = slow_stopped_write
        stopping = threading.Thread(
            target=daemon.beat, args=('cmp1',), kwargs={'state': 'stopped'}
        )
        stopping.start()
        assert writing.wait(5)
        starting = threading.Thread(target=daemon.beat, args=('cmp1',))
        starting.start()
        time.sleep(0.2)  # the "up" beat is under way (or waits its turn)
        written.set()
        stopping.join(5)
        starting.join(5)
        daemon.beat('cmp1')  # its next beat
        assert daemon.nodes.states()['cmp1'][0] == 'up'
        assert 'cmp1' in daemon.nodes.alive()

    def test_a_heartbeat_the_database_missed_is_written_by_the_next(
        self, daemon, db
    ):
        daemon.beat('cmp1')
        upsert = db.upsert_node

        def away(*args):
            raise RuntimeError('database away')

        db.upsert_node = away
        with pytest.raises(RuntimeError):
            daemon.beat('cmp1', roles=('compute', 'network'))
        db.upsert_node = upsert
        daemon.beat('cmp1', roles=('compute', 'network'))
        [node] = [n for n in db.list_nodes() if n['host'] == 'cmp1']
        assert node['roles'] == ['compute', 'network']

    def test_a_versioned_heartbeat(self, daemon, db, conf):
        manager = self._manager(daemon, db, conf)
        beat = manager_mod.DaemonManager.heartbeat.local

        def wrapped(version, **data):
            return {'object': 'Heartbeat', 'version': version, 'data': data}

        # A newer minor: its new field is dropped, the node is up.
        beat(
            manager,
            {},
            node_identity('cmp2'),
            host='cmp2',
            beat=wrapped('1.4', host='cmp2', roles=['compute'], gpus=2),
        )
        assert daemon.nodes.states()['cmp2'][0] == 'up'
        # About another host, or of a newer major: refused and recorded.
        beat(
            manager,
            {},
            node_identity('cmp3'),
            host='cmp3',
            beat=wrapped('1.0', host='cmp4', roles=['compute']),
        )
        beat(
            manager,
            {},
            node_identity('cmp3'),
            host='cmp3',
            beat=wrapped('2.0', host='cmp3', roles=['compute']),
        )
        assert 'cmp3' not in daemon.nodes.states()
        reasons = [r['reason'] for r in db.list_rejected()]
        assert reasons == [
            "Heartbeat: host 'cmp4' is not cmp3",
            'Heartbeat: version 2.0 is not compatible with 1.0 (major 1 '
            'expected)',
        ]


class TestCarriedAcks:
    """Stored results are acknowledged by the next fanout to their node;
    a node no fanout reaches within ACK_HOLD is sent its own.
    """

    @staticmethod
    def report(daemon, run, phase, hosts):
        items = [
            ok_result(run, h, plugin, phase)
            for h in hosts
            for plugin in ('alpha', '')
        ]
        acks = {
            h: [results.ack_key(r) for r in items if r['node'] == h]
            for h in hosts
        }
        daemon.runs.on_results(items, acks)
        return acks

    @staticmethod
    def age(daemon, host):
        """As if ``host``'s acks had waited ACK_HOLD."""
        since, keys = daemon.runs._acks[host]
        daemon.runs._acks[host] = (since - runs_mod.ACK_HOLD, keys)

    def test_the_next_phase_event_carries_its_targets_acks(self, daemon):
        run = daemon.start()
        acks = self.report(daemon, run, 'pre-install', ['ctl'])
        daemon.runs._flush_acks()  # not held long enough to be cast
        assert daemon.agents.acks == []
        daemon.runs.advance(run)
        assert daemon.agents.published()[-1] == ('install', ['ctl'])
        [(op, packed)] = daemon.agents.carried
        assert op == 'run_phase'
        assert results.unpack_acks(packed, 'ctl') == acks['ctl']
        assert daemon.runs._acks == {}

    def test_acks_no_fanout_carries_are_cast_after_the_hold(self, daemon):
        run = daemon.start()
        # A late resend from a compute node: no event goes to it now.
        late = self.report(daemon, run, 'pre-install', ['ctl', 'cmp1'])
        daemon.runs.advance(run)
        [(_, packed)] = daemon.agents.carried
        assert results.unpack_acks(packed, 'cmp1') == []
        daemon.runs._flush_acks()
        assert daemon.agents.acks == []
        self.age(daemon, 'cmp1')
        daemon.runs._flush_acks()
        assert daemon.agents.acks == [{'cmp1': late['cmp1']}]

    def test_the_end_of_a_run_carries_every_nodes_acks(self, daemon, db):
        run = daemon.start()
        for phase in PHASES:
            self.report(daemon, run, phase, ['ctl'])
            daemon.runs.advance(run)
        for phase in PHASES:
            last = self.report(daemon, run, phase, ['cmp1', 'cmp2'])
            daemon.runs.advance(run)
        assert db.get_run(run)['state'] == 'completed'
        op, packed = daemon.agents.carried[-1]
        assert op == 'end_run'
        for host in ('cmp1', 'cmp2'):
            assert results.unpack_acks(packed, host) == last[host]
        # The first stage's last phase rode on the end as well.
        assert len(results.unpack_acks(packed, 'ctl')) == 2
        assert daemon.runs._acks == {} and daemon.agents.acks == []

    def test_agents_older_than_1_2_are_sent_each_their_own(self, daemon):
        daemon.agents.reads_carried_acks = False
        run = daemon.start()
        acks = self.report(daemon, run, 'pre-install', ['ctl'])
        daemon.runs.advance(run)
        assert daemon.agents.published()[-1] == ('install', ['ctl'])
        assert daemon.agents.carried == []
        self.age(daemon, 'ctl')
        daemon.runs._flush_acks()
        assert daemon.agents.acks == [acks]


class TestSlowExtension:
    def test_a_blocked_extension_never_delays_storing_or_acks(self, conf, db):
        """The extension blocks until the test has seen the ack go out."""
        entered, release = threading.Event(), threading.Event()

        class Blocking:
            name = 'blocking'

            def __getattr__(self, name):
                return lambda payload: None

            def on_plugin_result(self, payload):
                entered.set()
                release.wait(30)

        daemon = Daemon(conf, db)
        daemon.runs.events = dispatch.EventDispatcher([Blocking()])
        run = daemon.start()
        daemon.runs.start()  # the ingest and acknowledgement threads
        try:
            item = ok_result(run)
            daemon.runs.ingest('ctl', [item, dict(item, plugin='beta')])
            assert entered.wait(10), 'the extension never saw the result'
            for _ in range(100):
                if daemon.agents.acks:
                    break
                time.sleep(0.1)
            assert not release.is_set()
            assert daemon.agents.acks, 'no ack while the extension blocks'
            [acks] = daemon.agents.acks
            assert sorted(acks) == ['ctl'] and len(acks['ctl']) == 2
            stored = db.list_results(run)
            assert sorted(r['plugin'] for r in stored) == ['alpha', 'beta']
        finally:
            release.set()
            daemon.runs.stop()
            daemon.runs.events.stop()


class TestFollowers:
    def test_wait_change_returns_on_a_new_version(self, daemon, db):
        run = daemon.start()
        seen = daemon.runs.version(run)
        threading.Timer(
            0.2, lambda: daemon.report(run, 'pre-install', ['ctl'])
        ).start()
        started = time.monotonic()
        daemon.runs.wait_change(run, seen, 10)
        assert daemon.runs.version(run) > seen
        assert time.monotonic() - started < 5

    def test_pending_work_is_the_unanswered_current_phase(self, daemon, db):
        run = daemon.start()
        assert len(daemon.runs.pending_work('ctl')) == 1
        assert daemon.runs.pending_work('cmp1') == []
        daemon.report(run, 'pre-install', ['ctl'])
        assert daemon.runs.pending_work('ctl') == []


def test_acks_go_out_from_several_threads_each_node_its_own(conf, db):
    daemon = Daemon(conf, db)
    agents = daemon.agents
    two_at_once = threading.Barrier(2, timeout=10)

    def ack_results(ctxt, acks):
        two_at_once.wait()  # one sender after another: broken, refused
        agents.acks.append(acks)

    agents.ack_results = ack_results
    wanted = {f'n{i:02d}': [f'key-{i}'] for i in range(10)}
    daemon.runs._acks = {host: (0.0, keys) for host, keys in wanted.items()}
    daemon.runs._flush_acks()
    assert len(agents.acks) == runs_mod.ACK_SENDERS
    merged = {}
    for share in agents.acks:
        assert not set(share) & set(merged)  # each node once
        merged.update(share)
    assert merged == wanted
