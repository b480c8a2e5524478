"""Plugin code delivery: one commit per (URL, ref) in a run, bundles built
once per commit at plan time and sent to nodes in pieces."""

import os
import subprocess
import sys

import pytest

from pluginsd import localconf
from pluginsd.plugins import bundles
from pluginsd.plugins import plan as plan_mod
from tests import gitrepos
from tests.functional import cluster as cluster_mod
from tests.functional import rabbit as rabbit_mod

TOP = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
BIG = 50 << 20


def big_plugin(path):
    gitrepos.make_repo(
        path,
        {
            'devstack/settings': 'define_plugin big\n',
            'devstack/plugin.sh': (
                'if [[ "$1 $2" == "stack install" ]]; then\n'
                '    stat -c "$PLUGINSD_HOST %s" "$DEST/big/data.bin" '
                '>> "$TEST_TRACE"\n'
                'fi\n'
            ),
        },
    )
    with open(os.path.join(path, 'data.bin'), 'wb') as f:
        for _ in range(BIG >> 20):
            f.write(os.urandom(1 << 20))  # incompressible: 50 MB on the wire
    gitrepos.git(path, 'add', '-A')
    gitrepos.git(path, 'commit', '-q', '-m', 'fifty megabytes')
    return gitrepos.git(path, 'rev-parse', 'HEAD')


def test_roles_of_a_run_pin_one_commit_per_url_and_ref(tmp_path):
    repo = gitrepos.make_repo(
        str(tmp_path / 'repos' / 'alpha'),
        {'devstack/settings': 'define_plugin alpha\n'},
    )
    first = gitrepos.git(repo, 'rev-parse', 'HEAD')
    conf = localconf.parse(
        f'[[local|localrc]]\nenable_plugin alpha {repo}\n', 'local.conf'
    )
    store = bundles.BundleStore(str(tmp_path / 'bundles'))
    pins = {}
    plans = {}
    for role in ('controller', 'compute'):
        plans[role] = plan_mod.make_plan(
            conf,
            str(tmp_path / f'plan-{role}'),
            checkout_root=str(tmp_path / 'cache' / role),
            pins=pins,
            bundles=store,
        )
        # Upstream moves while the run is planned: the next role keeps
        # the commit this run already pinned.
        gitrepos.commit(repo, {'CHANGES': role})
    a, b = plans['controller'].plugins[0], plans['compute'].plugins[0]
    assert a.sha == b.sha == first
    assert a.bundle == b.bundle and a.bundle_size > 0
    assert pins == {(repo, 'master'): (first, a.path)}
    # The compute cache was never cloned: nothing fetched twice.
    assert not os.path.exists(tmp_path / 'cache' / 'compute')
    # A new run pins the new commit, and gets a new bundle.
    later = plan_mod.make_plan(
        conf,
        str(tmp_path / 'plan-later'),
        checkout_root=str(tmp_path / 'cache' / 'other'),
        pins={},
        bundles=store,
    )
    assert later.plugins[0].sha == gitrepos.git(repo, 'rev-parse', 'HEAD')
    assert later.plugins[0].bundle != a.bundle


@pytest.mark.timeout(300)
def test_thirty_nodes_get_a_fifty_megabyte_plugin(tmp_path, rabbit_vhost):
    repo = str(tmp_path / 'repos' / 'big')
    sha = big_plugin(repo)
    trace = str(tmp_path / 'trace')
    c = cluster_mod.Cluster(
        tmp_path / 'cluster',
        rabbit_vhost,
        [str(tmp_path / 'repos') + '/'],
        env={'TEST_TRACE': trace},
        daemon={'agent_down_time': 30},
    )
    hosts = []
    procs = []
    try:
        c.upgrade_db()
        c.daemon.start()
        # 30 simulated nodes in 2 agent processes (bench/agent_host.py);
        # the nodes of one process share its bundle download cache.
        for index in range(2):
            state = os.path.join(c.base, f'agents-{index}')
            os.makedirs(state)
            groups = cluster_mod.base_groups(c.url, state, f'agents-{index}')
            groups['agent'].update(allowed_sources=c.allowed)
            # The daemon's key; agent_host.py pre-seeds each node's key.
            groups['security'] = {
                'daemon_public_keys': c.key_path('daemon') + '.pub',
                'accepted_keys_dir': c.accepted_dir,
            }
            groups['daemon'] = {'agent_down_time': 30}
            conf_path = cluster_mod.write_conf(state + '.conf', groups)
            out = open(os.path.join(state, 'stdout.log'), 'wb')
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        os.path.join(TOP, 'bench', 'agent_host.py'),
                        conf_path,
                        f'p{index}-node',
                        '15',
                        state,
                    ],
                    stdout=subprocess.PIPE,
                    stderr=out,
                    cwd=TOP,
                    env=dict(os.environ, PYTHONPATH=TOP, TEST_TRACE=trace),
                )
            )
            hosts += [f'p{index}-node{i:02d}' for i in range(15)]
        for proc in procs:
            assert proc.stdout.readline().strip() == b'READY'
        c.wait_nodes(set(hosts), timeout=120)
        conf = tmp_path / 'local.conf'
        conf.write_text(f'[[local|localrc]]\nenable_plugin big {repo}\n')
        run = c.api.start_run({}, 'stack', {'*': conf.read_text()}, 'x')
        view = c.wait_run(run['id'], timeout=600)
        assert view['state'] == 'completed', view['error']
        [pinned] = view['plans']['*']['plugins']
        assert pinned['sha'] == sha
        # One bundle, built once, far bigger than one message.
        assert pinned['bundle_size'] > BIG
        assert pinned['bundle_size'] > 10 * bundles.CHUNK_SIZE
        store = os.path.join(c.base, 'daemon', 'bundles')
        assert [n for n in os.listdir(store) if n.endswith('.bundle')] == [
            pinned['bundle'] + '.bundle'
        ]
        with open(trace) as f:
            sizes = dict(line.split() for line in f)
        assert sizes == {h: str(BIG) for h in hosts}
        for host in hosts:
            dest = os.path.join(c.base, f'agents-{host[1]}', host, 'dest')
            assert (
                gitrepos.git(os.path.join(dest, 'big'), 'rev-parse', 'HEAD')
                == sha
            )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)
        c.daemon.stop()
        rabbit_mod.close_transport(c.transport)
