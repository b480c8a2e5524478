"""Progress that scales: a stack on 20 nodes is a few lines, not hundreds.

20 simulated nodes run in one agent process (as the benchmark does: each a
full AgentService with its own queue, DEST and bash sessions) on a real
broker, driven by a real daemon and a real pluginsctl in a pipe.
"""

import os
import re
import subprocess
import sys

import pytest

from tests import gitrepos
from tests.functional import cluster as cluster_mod

TOP = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
NODES = 20


@pytest.mark.timeout(300)
def test_stack_on_20_nodes_is_a_few_lines(tmp_path, rabbit_vhost):
    repos = tmp_path / 'repos'
    plugins = [
        gitrepos.make_repo(
            str(repos / name), {'devstack/plugin.sh': f'echo {name} "$@"\n'}
        )
        for name in ('alpha', 'beta')
    ]
    conf = tmp_path / 'local.conf'
    conf.write_text(
        '[[local|localrc]]\n'
        + ''.join(
            f'enable_plugin {os.path.basename(p)} {p}\n' for p in plugins
        )
    )
    c = cluster_mod.Cluster(tmp_path / 'cluster', rabbit_vhost, [f'{repos}/'])
    # agent_host.py gives each simulated node a key and pre-seeds it as
    # accepted; the agents trust the cluster's daemon key.
    groups = cluster_mod.base_groups(
        rabbit_vhost,
        str(tmp_path / 'agents'),
        'agents',
        security={
            'accepted_keys_dir': c.accepted_dir,
            'daemon_public_keys': [c.key_path('daemon') + '.pub'],
        },
    )
    groups['agent'].update(allowed_sources=f'{repos}/', heartbeat_interval=2)
    # The daemon's key; agent_host.py pre-seeds each node's key.
    groups['security'] = {
        'daemon_public_keys': c.key_path('daemon') + '.pub',
        'accepted_keys_dir': c.accepted_dir,
    }
    agent_conf = cluster_mod.write_conf(str(tmp_path / 'agents.conf'), groups)
    agents = subprocess.Popen(
        [
            sys.executable,
            os.path.join(TOP, 'bench', 'agent_host.py'),
            agent_conf,
            'sim-',
            str(NODES),
            str(tmp_path / 'agents'),
        ],
        stdout=subprocess.PIPE,
        cwd=TOP,
        env=dict(os.environ, PYTHONPATH=TOP),
    )
    try:
        assert agents.stdout.readline().strip() == b'READY'
        c.start()
        c.wait_nodes({f'sim-{i:02d}' for i in range(NODES)})
        proc = c.ctl('stack', str(conf))
        assert proc.returncode == 0, proc.stderr
        lines = proc.stderr.splitlines()
        assert len(lines) < 60, proc.stderr
        # One line of counts per phase, the last ones complete.
        for phase in ('pre-install', 'install', 'test-config'):
            done = [
                ln
                for ln in lines
                if re.fullmatch(
                    rf'\d\d:\d\d:\d\d {phase}: {NODES}/{NODES} ok \(\d+ s\)',
                    ln,
                )
            ]
            assert len(done) == 1, (phase, proc.stderr)
        assert re.match(
            rf'\d\d:\d\d:\d\d stage 1/1: {NODES} nodes \(sim-00, ', lines[1]
        ), proc.stderr
        # The table still has every node and plugin.
        assert proc.stdout.count('| sim-') == NODES * 2

        # -q: only the outcome.
        quiet = c.ctl('-q', 'stack', str(conf))
        assert quiet.returncode == 0, quiet.stderr
        assert re.fullmatch(r'run [0-9a-f-]{36} completed\n', quiet.stderr), (
            quiet.stderr
        )
    finally:
        agents.terminate()
        agents.wait(60)
        c.stop()
