"""pluginsd benchmark: end-to-end time of a 5-phase `stack`.

Scenarios (median of --repeat runs after one warm-up run each):
  * one no-op plugin on 1, 10 and 50 nodes over a private loopback RabbitMQ
    (nodes simulated, up to 10 per agent process, each with its own queue,
    DEST and bash), the daemon in this process;
  * 50 no-op plugins on one node in the all-in-one mode (embedded transport);
and, in the same run, the same work done by plain bash as the floor: one
bash process per plugin.sh call (sourcing the function library, settings
and plugin.sh), nodes in parallel, a barrier after every phase.

Usage: tools/bench.sh [--repeat N] [--nodes 1,10,50]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TOP)

from pluginsd import allinone  # noqa: E402
from pluginsd import conf as pluginsd_conf  # noqa: E402
from pluginsd import rpc  # noqa: E402
from pluginsd.daemon import rpcapi  # noqa: E402
from pluginsd.daemon import service as daemon_service  # noqa: E402
from pluginsd.rpc import signing  # noqa: E402
from pluginsd.runner import shell  # noqa: E402
from tests import gitrepos  # noqa: E402
from tests.functional import cluster  # noqa: E402
from tests.functional import rabbit as rabbit_mod  # noqa: E402

PHASES = ['pre-install', 'install', 'post-config', 'extra', 'test-config']
NOOP = {
    'devstack/settings': 'define_plugin {name}\n',
    'devstack/plugin.sh': 'if [[ "$1" == stack ]]; then : "$2"; fi\n',
}
PER_PROCESS = 10


def make_plugins(base, count):
    paths = []
    for i in range(count):
        name = f'noop{i:02d}'
        files = {k: v.format(name=name) for k, v in NOOP.items()}
        paths.append(
            (name, gitrepos.make_repo(os.path.join(base, name), files))
        )
    return paths


def local_conf(plugins):
    lines = [f'enable_plugin {name} {path}' for name, path in plugins]
    return '[[local|localrc]]\n' + '\n'.join(lines) + '\n'


def timed_runs(api, text, repeat):
    times = []
    for i in range(repeat + 1):
        start = time.perf_counter()
        run = api.start_run({}, 'stack', {'*': text}, 'bench.conf')
        seen = -1
        while True:
            view = api.wait_run({}, run['id'], seen, 30, results_since=1 << 62)
            seen = view['version']
            if view['state'] in ('completed', 'failed', 'cancelled'):
                break
        if view['state'] != 'completed':
            raise SystemExit(f'benchmark run failed: {view["error"]}')
        if i:  # the first run clones: warm-up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def bash_floor(base, plugins, nodes, repeat):
    """Plain bash: one process per call, nodes in parallel, phase barriers."""
    lib = shell.LIB_DIR
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for phase in PHASES:
            procs = []
            for node in range(nodes):
                for _name, path in plugins if nodes == 1 else plugins[:1]:
                    script = (
                        f'source {lib}/stackrc; source {lib}/functions; '
                        f'source {path}/devstack/settings; '
                        f'source {path}/devstack/plugin.sh stack {phase}'
                    )
                    procs.append(
                        subprocess.Popen(
                            ['bash', '--noprofile', '--norc', '-c', script],
                            env=dict(
                                os.environ,
                                PLUGINSD_DEST=os.path.join(base, f'n{node}'),
                            ),
                        )
                    )
                    if nodes == 1:  # one node: calls run one by one
                        procs.pop().wait()
            for proc in procs:
                proc.wait()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def rabbit_scenario(base, broker, nodes, plugins, repeat):
    _vhost, _user, url = broker.add_vhost()
    work = os.path.join(base, f'nodes-{nodes}')
    groups = cluster.base_groups(
        url, os.path.join(work, 'daemon'), 'bench-daemon'
    )
    groups['DEFAULT'].update(
        debug='False', log_file=os.path.join(work, 'daemon.log')
    )
    groups['agent'].update(allowed_sources=base + '/', heartbeat_interval=5)
    os.makedirs(os.path.join(work, 'daemon'), exist_ok=True)
    conf_path = cluster.write_conf(os.path.join(work, 'bench.conf'), groups)
    conf = pluginsd_conf.new_conf()
    conf(['--config-file', conf_path], project='pluginsd')
    transport = rpc.get_transport(conf)
    daemon = daemon_service.DaemonService(conf, transport)
    daemon.start()
    hosts = []
    try:
        for first in range(0, nodes, PER_PROCESS):
            count = min(PER_PROCESS, nodes - first)
            proc = subprocess.Popen(
                [
                    sys.executable,
                    os.path.join(TOP, 'bench', 'agent_host.py'),
                    conf_path,
                    f'p{first // PER_PROCESS}-node',
                    str(count),
                    work,
                ],
                stdout=subprocess.PIPE,
                cwd=TOP,
                env=dict(os.environ, PYTHONPATH=TOP),
            )
            hosts.append(proc)
        for proc in hosts:
            assert proc.stdout.readline().strip() == b'READY'
        api = rpcapi.DaemonAPI(
            conf,
            transport,
            timeout=60,
            signer=signing.signer_for(conf, 'bench'),
        )
        deadline = time.monotonic() + 60
        while (
            len([n for n in api.list_nodes({}) if n['state'] == 'up']) < nodes
        ):
            if time.monotonic() > deadline:
                raise SystemExit('nodes did not register')
            time.sleep(0.2)
        return timed_runs(api, local_conf(plugins), repeat)
    finally:
        for proc in hosts:
            proc.terminate()
        for proc in hosts:
            proc.wait()
        daemon.stop()
        transport.cleanup()


def allinone_scenario(base, plugins, repeat):
    state = os.path.join(base, 'aio')
    conf = pluginsd_conf.new_conf()
    conf(args=[], project='pluginsd', default_config_files=[])
    conf.set_override('state_path', state)
    conf.set_override('dest', os.path.join(state, 'dest'), group='agent')
    conf.set_override('package_installer', 'noop', group='runner')
    embedded = allinone.AllInOne(conf)
    embedded.start()
    try:
        api = rpcapi.DaemonAPI(
            conf,
            embedded.transport,
            timeout=60,
            signer=signing.signer_for(conf, 'bench'),
        )
        return timed_runs(api, local_conf(plugins), repeat)
    finally:
        embedded.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--nodes', default='1,10,50')
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix='pluginsd-bench-')
    rows = []
    try:
        one = make_plugins(os.path.join(base, 'one'), 1)
        fifty = make_plugins(os.path.join(base, 'fifty'), 50)
        broker = rabbit_mod.RabbitBroker(os.path.join(base, 'rabbit'))
        broker.start()
        try:
            for nodes in [int(n) for n in args.nodes.split(',')]:
                took = rabbit_scenario(base, broker, nodes, one, args.repeat)
                floor = bash_floor(base, one, nodes, args.repeat)
                target = '1.0' if nodes == 50 else ''
                rows.append(
                    (
                        f'1 no-op plugin x {nodes} node(s), RabbitMQ',
                        took,
                        floor,
                        target,
                    )
                )
        finally:
            broker.stop()
        took = allinone_scenario(base, fifty, args.repeat)
        floor = bash_floor(base, fifty, 1, args.repeat)
        rows.append(
            ('50 no-op plugins x 1 node, all-in-one', took, floor, '0.3')
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print()
    print(
        f'5-phase stack, median of {args.repeat} runs (seconds), '
        f'{os.cpu_count()} CPUs'
    )
    print(
        f'| {"scenario":<42} | {"pluginsd":>8} '
        f'| {"plain bash":>10} | {"target":>6} |'
    )
    print(f'|{"-" * 44}|{"-" * 10}|{"-" * 12}|{"-" * 8}|')
    for name, took, floor, target in rows:
        print(f'| {name:<42} | {took:8.3f} | {floor:10.3f} | {target:>6} |')


if __name__ == '__main__':
    main()
