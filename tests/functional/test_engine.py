"""The run engine survives what kills daemons: real processes, real broker.

A daemon SIGKILLed while planning, in the middle of a phase and between
phases; two daemons on one PostgreSQL database, the owner of a run killed;
the broker away for twice ``agent_down_time``. Each time the run completes
and every result is stored exactly once, and every plugin phase ran once.

Short heartbeat, lease and republish settings keep these tests quick.
"""

import os
import time

import pytest

from tests import gitrepos
from tests.functional import postgres as postgres_mod
from tests.functional.test_multinode import cluster  # noqa: F401 (fixture)
from tests.functional.test_multinode import conf_file
from tests.functional.test_multinode import run_id_of

PHASES = ['pre-install', 'install', 'post-config', 'extra', 'test-config']

QUICK = {
    'daemon': {
        'agent_down_time': 4,
        'republish_interval': 2,
        'run_lease_time': 3,
    }
}


def gated_plugin(path, gates):
    """A plugin whose first settings sourcing (the daemon's plan) is slow,
    and whose ``stack install`` and ``stack post-config`` wait for a file.

    It writes ``<phase>-started-<host>`` and ``<phase>-done-<host>`` into
    ``gates``; ``open-<phase>`` lets the phase finish.
    """
    wait = (
        f'if [[ $1 == stack && ( $2 == install || $2 == post-config ) ]]; '
        'then\n'
        f'  touch {gates}/$2-started-$PLUGINSD_HOST\n'
        f'  while [[ ! -e {gates}/open-$2 ]]; do sleep 0.1; done\n'
        'fi\n'
        f'touch {gates}/$2-done-$PLUGINSD_HOST\n'
    )
    return gitrepos.make_repo(
        path,
        {
            'devstack/settings': 'define_plugin gated\n'
            f'if [[ ! -e {gates}/planning ]]; then\n'
            f'  touch {gates}/planning; sleep 3\n'
            'fi\n',
            'devstack/plugin.sh': 'echo "$PLUGINSD_HOST|gated|$*" '
            '>> "$TEST_TRACE"\n' + wait,
        },
    )


def wait_for(predicate, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f'timed out waiting for {what}'
        time.sleep(0.1)


def files(gates, *names):
    return lambda: all(os.path.exists(os.path.join(gates, n)) for n in names)


def open_gate(gates, phase):
    open(os.path.join(gates, f'open-{phase}'), 'w').close()


def assert_once(c, view, hosts):
    """Every result stored once; every plugin phase ran once per host."""
    keys = [(r['node'], r['plugin'], r['phase']) for r in view['results']]
    assert len(keys) == len(set(keys))
    # hosts x 5 phases x (the plugin + the node's own phase result)
    assert len(keys) == len(hosts) * len(PHASES) * 2
    ran = [
        (t[0], t[2])
        for t in gitrepos.read_trace(c.trace)
        if t[1] == 'gated' and t[2].startswith('stack ')
    ]
    assert sorted(ran) == sorted(
        (h, f'stack {p}') for h in hosts for p in PHASES
    )


@pytest.fixture
def gates(tmp_path):
    path = tmp_path / 'gates'
    path.mkdir()
    return str(path)


@pytest.mark.timeout(180)
def test_daemon_sigkilled_while_planning_in_and_between_phases(
    tmp_path,
    cluster,  # noqa: F811
    gates,
):
    plugin = gated_plugin(str(tmp_path / 'repos' / 'gated'), gates)
    hosts = ['cmp1', 'cmp2']
    c = cluster([(h, 'compute', {}) for h in hosts], **QUICK)
    conf = conf_file(tmp_path, 'local.conf', f'enable_plugin gated {plugin}')

    def restart():
        c.daemon.start()
        c.wait_nodes(set(hosts))

    run_id = run_id_of(c.ctl('stack', '--no-wait', conf))
    # 1. While planning (sourcing the plugin's settings).
    wait_for(files(gates, 'planning'), 'planning')
    c.daemon.kill()
    restart()
    # 2. In the middle of a phase: both nodes run install.
    started = [f'install-started-{h}' for h in hosts]
    wait_for(files(gates, *started), 'install on both nodes')
    c.daemon.kill()
    restart()
    open_gate(gates, 'install')
    # 3. Between phases: post-config ends while no daemon runs; its
    # results wait in the broker's durable queue.
    started = [f'post-config-started-{h}' for h in hosts]
    wait_for(files(gates, *started), 'post-config on both nodes')
    c.daemon.kill()
    open_gate(gates, 'post-config')
    wait_for(
        files(gates, *[f'post-config-done-{h}' for h in hosts]),
        'post-config to end',
    )
    time.sleep(1)  # the agents send their results to the broker
    restart()

    view = c.wait_run(run_id, timeout=120)
    assert view['state'] == 'completed', view['error']
    assert_once(c, view, hosts)


@pytest.mark.timeout(180)
def test_two_daemons_the_owner_killed_the_other_completes(
    tmp_path,
    cluster,  # noqa: F811
    gates,
):
    if not postgres_mod.available():
        pytest.skip('PostgreSQL is not installed')
    server = postgres_mod.PostgresServer().start()
    try:
        url = server.create_database()
        plugin = gated_plugin(str(tmp_path / 'repos' / 'gated'), gates)
        open(os.path.join(gates, 'planning'), 'w').close()  # plan quickly
        open_gate(gates, 'post-config')
        hosts = ['ctl', 'cmp1']
        # Each daemon keeps the bundles it built: the nodes clone from
        # the plugin's origin instead.
        origin = {'agent': {'plugin_source': 'origin'}}
        c = cluster(
            [('ctl', 'controller', origin), ('cmp1', 'compute', origin)],
            database={'connection': url},
            **QUICK,
        )
        second = c.add_daemon('daemon2').start()
        wait_for(
            lambda: 'pluginsd daemon started' in second.log_text(),
            'the second daemon',
        )
        conf = conf_file(
            tmp_path, 'local.conf', f'enable_plugin gated {plugin}'
        )
        run_id = run_id_of(c.ctl('stack', '--no-wait', conf))
        wait_for(files(gates, 'install-started-ctl'), 'install on ctl')
        owner = c.api.get_run({}, run_id)['owner']
        assert owner in c.daemons
        c.daemons[owner].kill()
        open_gate(gates, 'install')

        view = c.wait_run(run_id, timeout=120)
        assert view['state'] == 'completed', view['error']
        survivor = next(h for h in c.daemons if h != owner)
        assert view['owner'] in (survivor, None)
        assert f'Run {run_id}' in c.daemons[survivor].log_text()
        assert_once(c, view, hosts)
    finally:
        server.stop()


@pytest.mark.timeout(180)
def test_broker_outage_of_twice_agent_down_time_mid_run(
    tmp_path,
    rabbit,
    cluster,  # noqa: F811
    gates,
):
    plugin = gated_plugin(str(tmp_path / 'repos' / 'gated'), gates)
    open(os.path.join(gates, 'planning'), 'w').close()
    open_gate(gates, 'post-config')
    c = cluster([('cmp1', 'compute', {})], **QUICK)
    conf = conf_file(tmp_path, 'local.conf', f'enable_plugin gated {plugin}')
    run_id = run_id_of(c.ctl('stack', '--no-wait', conf))
    wait_for(files(gates, 'install-started-cmp1'), 'install on cmp1')
    down_time = QUICK['daemon']['agent_down_time']
    rabbit.stop()
    stopped = time.monotonic()
    try:
        time.sleep(max(0, stopped + 2 * down_time - time.monotonic()))
        open_gate(gates, 'install')  # the node ends install meanwhile
    finally:
        rabbit.start()

    view = c.wait_run(run_id, timeout=180)
    assert view['state'] == 'completed', view['error']
    # The daemon was cut off as much as the node: it declared nobody lost.
    assert 'Node cmp1 lost' not in c.daemon.log_text()
    # It says so once its own probe is back, which on a loaded machine can
    # be after the node's results (another connection) finished the run.
    wait_for(
        lambda: 'every node gets a fresh grace period' in c.daemon.log_text(),
        'the daemon saying it was cut off',
        timeout=30,
    )
    assert_once(c, view, ['cmp1'])
