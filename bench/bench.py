"""pluginsd benchmark: end-to-end time of a 5-phase `stack`.

Scenarios (median of --repeat runs after one warm-up run each):
  * one no-op plugin on 1, 10, 50, 200 and 500 nodes over a private
    loopback RabbitMQ: the daemon is a `pluginsd` process of its own, one
    node is a real `pluginsd-agent` process, the others are simulated, 10
    per agent process up to 50 nodes and 25 above
    (each node with its own queue, DEST, journal and bash), default
    heartbeat_interval, agent_down_time, result_resend_interval and
    republish_interval;
  * 50 no-op plugins on one node in the all-in-one mode (embedded transport);
and, in the same run, the same work done by plain bash as the floor: one
bash process per plugin.sh call (sourcing the function library, settings
and plugin.sh), nodes in parallel, a barrier after every phase. Beside a
RabbitMQ row: the CPU of the bash and git pluginsd ran, over the CPU count,
which no stack on this machine can beat.

For every RabbitMQ row it also reports: one phase fanned out to every node,
from the daemon's publish to the last result stored (the daemon's own log
lines, median over the phases of the timed runs), beside one phase of the
plain-bash floor (its median phase); whether every node was still up at
the end; the RSS of the real agent and of the simulated nodes' processes;
the CPU time per node and phase of the timed runs (the daemon, the
simulated nodes' processes, the real agent, the bash and git they ran, and
the broker); and, for 200 nodes and more, the daemon's CPU while the nodes
only heartbeat (30 s), beside the real agent's in the same time and that
of a no-op oslo.messaging server receiving as many casts a second
(noop_server.py): the floor of any oslo.messaging daemon.
``--idle-only`` starts the nodes and measures only that (no runs).

Usage: tools/bench.sh [--repeat N] [--nodes 1,10,50,200,500] [--idle-only]
                      [--keep]
(default --nodes 1,10,50)
"""

import argparse
import datetime
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TOP)

# pluginsd first: it selects oslo.service's threading backend before an
# oslo library would load eventlet (the all-in-one row runs in-process).
import pluginsd  # noqa: E402, F401, I001

from oslo_log import _options as log_options  # noqa: E402
import oslo_messaging as messaging  # noqa: E402

from pluginsd import allinone  # noqa: E402
from pluginsd import conf as pluginsd_conf  # noqa: E402
from pluginsd import keys  # noqa: E402
from pluginsd import rpc  # noqa: E402
from pluginsd.daemon import rpcapi  # noqa: E402
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
IDLE_SECONDS = 30
LOG_LINE = re.compile(
    r'^(\S+ \S+) \d+ DEBUG pluginsd\.daemon\.runs \[[^]]*\] Run (\S+): '
    r'(\S+) (published to (\d+) nodes|done on every node)'
)


def per_process(nodes):
    """Simulated nodes per agent process: 10 up to 50 nodes, 25 above.

    10 at 500 nodes (50 processes) measured no faster: the time goes to
    the thousands of threads the nodes have in all, not to one GIL.
    """
    return 10 if nodes <= 50 else 25


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


class RowFailed(Exception):
    """A scenario could not be measured; the others still are."""


def timed_runs(api, text, repeat, run_ids=None, after_warmup=None):
    times = []
    for i in range(repeat + 1):
        start = time.perf_counter()
        run = api.start_run({}, 'stack', {'*': text}, 'bench.conf')
        seen = -1
        while True:
            try:
                view = api.wait_run(
                    {}, run['id'], seen, 30, results_since=1 << 62
                )
            except messaging.MessagingTimeout:
                # A daemon starved of CPU answers late; the run goes on.
                print('wait_run timed out; asking again', file=sys.stderr)
                continue
            seen = view['version']
            if view['state'] in ('completed', 'failed', 'cancelled'):
                break
        if view['state'] != 'completed':
            raise RowFailed(f'a run {view["state"]}: {view["error"]}')
        if i:  # the first run clones: warm-up
            times.append(time.perf_counter() - start)
            if run_ids is not None:
                run_ids.append(run['id'])
        elif after_warmup:
            after_warmup()
    return statistics.median(times)


def bash_floor(base, plugins, nodes, repeat):
    """Plain bash: one process per call, nodes in parallel, phase barriers.

    Returns the median of the 5-phase totals and of the single phases: the
    floor of a run and of one phase fanned out to every node.
    """
    lib = shell.LIB_DIR
    times, phase_times = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        for phase in PHASES:
            phase_start = time.perf_counter()
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
            phase_times.append(time.perf_counter() - phase_start)
        times.append(time.perf_counter() - start)
    return statistics.median(times), statistics.median(phase_times)


def fanout_times(log_path, run_ids, nodes):
    """Seconds from a phase's publish to its last result stored.

    One figure per phase of the given runs published to all ``nodes``,
    from the daemon's own DEBUG lines.
    """
    published, took = {}, []
    with open(log_path, errors='replace') as f:
        for line in f:
            match = LOG_LINE.match(line)
            if not match or match.group(2) not in run_ids:
                continue
            when = datetime.datetime.strptime(
                match.group(1), '%Y-%m-%d %H:%M:%S.%f'
            ).timestamp()
            key = (match.group(2), match.group(3))
            if match.group(4).startswith('published'):
                if int(match.group(5)) == nodes:
                    published.setdefault(key, when)  # not a republish
            elif key in published:
                took.append(when - published.pop(key))
    return took


def cpu_seconds(pid, children=False):
    """CPU seconds of ``pid`` (with ``children``: of its reaped children)."""
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    first = 13 if children else 11
    return (int(fields[first]) + int(fields[first + 1])) / os.sysconf(
        'SC_CLK_TCK'
    )


def cpu_snapshot(daemon_pid, host_pids, agent_pid, broker_pid):
    """CPU seconds so far: the daemon, the simulated nodes' processes, the
    real agent, the bash and git of all of them, and the broker (it shares
    the same cores).
    """
    return (
        cpu_seconds(daemon_pid),
        sum(cpu_seconds(pid) for pid in host_pids),
        cpu_seconds(agent_pid),
        sum(
            cpu_seconds(pid, children=True) for pid in [*host_pids, agent_pid]
        ),
        cpu_seconds(broker_pid),
    )


def rss_mb(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return 0.0


def noop_server_cpu(conf_path, transport, rate):
    """CPU (% of a core) of a no-op oslo.messaging server (noop_server.py)
    that receives ``rate`` heartbeat-sized casts a second: the floor of
    the idle daemon, which receives as many.
    """
    topic = 'bench-noop'
    server = subprocess.Popen(
        [
            sys.executable,
            os.path.join(TOP, 'bench', 'noop_server.py'),
            conf_path,
            topic,
        ],
        stdout=subprocess.PIPE,
        cwd=TOP,
        env=dict(os.environ, PYTHONPATH=TOP),
    )
    try:
        assert server.stdout.readline().strip() == b'READY'
        client = rpc.get_client(transport, topic, rpc.DAEMON_API_VERSION)
        signer = signing.Signer(keys.KeyPair.generate(), 'node:bench-noop')
        beat = {
            'host': 'bench-noop',
            'state': 'up',
            'roles': ['compute'],
            'version': '1.0',
            'activity': 'idle',
            'allowed_sources': ['/tmp/pluginsd-bench-xxxxxxxx/'],
            'devstack_dir': '',
        }
        before, start, sent = cpu_seconds(server.pid), time.monotonic(), 0
        while time.monotonic() - start < IDLE_SECONDS:
            envelope = signer.sign('heartbeat', 'daemon', beat)
            client.cast({}, 'heartbeat', envelope=envelope)
            sent += 1
            time.sleep(max(0, start + sent / rate - time.monotonic()))
        return 100 * (cpu_seconds(server.pid) - before) / IDLE_SECONDS
    finally:
        server.kill()
        server.wait()


def real_agent(groups, work, accepted_dir):
    """One node of the row as a real ``pluginsd-agent`` process: its RSS is
    what an operator's node costs (the simulated nodes share processes).
    """
    host = 'real-node'
    state = os.path.join(work, host)
    key_file = os.path.join(state, 'keys', 'agent.key')
    key = keys.KeyPair.load_or_create(key_file)
    keys.private_write(os.path.join(accepted_dir, f'{host}.pub'), key.public)
    own = {group: dict(options) for group, options in groups.items()}
    own['DEFAULT'].update(
        host=host,
        state_path=state,
        log_file=os.path.join(state, 'service.log'),
    )
    own['security'] = dict(own['security'], key_file=key_file)
    # The simulated nodes' role: one stage, one phase fanned out to all.
    own['agent'] = dict(
        own['agent'], roles='compute', dest=os.path.join(state, 'dest')
    )
    path = cluster.write_conf(os.path.join(work, f'{host}.conf'), own)
    return cluster.Process('pluginsd-agent', path, state).start()


def rabbit_scenario(base, broker, nodes, plugins, repeat, runs=True):
    _vhost, _user, url = broker.add_vhost()
    work = os.path.join(base, f'nodes-{nodes}')
    state = os.path.join(work, 'daemon')
    groups = cluster.base_groups(url, state, 'bench-daemon')
    # Defaults where the test fixtures shorten them: what an operator runs.
    del groups['agent']['heartbeat_interval']
    del groups['agent']['result_resend_interval']
    del groups['daemon']['agent_down_time']
    # The tests' 3 s, at 500 nodes, sent every phase out again while it
    # was still being answered: hundreds of resends each time.
    del groups['daemon']['republish_interval']
    # oslo.messaging's own AMQP heartbeat and reconnect pacing: 25 nodes
    # share one process (one GIL) here, next to hundreds of bash sessions on
    # two cores, and miss the tests' 10 s AMQP heartbeats; each node then
    # reconnects within 1-2 s, all at once (measured at 500 nodes: over
    # 4000 reconnects in 4 minutes, the first phase never done).
    groups['oslo_messaging_rabbit'] = {'amqp_durable_queues': 'True'}
    groups['DEFAULT'].update(
        debug='False',
        # The daemon's publish and all-stored lines, and nothing else.
        default_log_levels=','.join(
            [*log_options.DEFAULT_LOG_LEVELS, 'pluginsd.daemon.runs=DEBUG']
        ),
    )
    groups['daemon']['node_wait_timeout'] = 300
    groups['agent'].update(allowed_sources=base + '/')
    os.makedirs(state, exist_ok=True)
    # Keys: the daemon's (made at its start), an admin's for this script;
    # agent_host.py pre-seeds each simulated node's key as accepted.
    keys_dir = os.path.join(state, 'keys')
    keys.KeyPair.load_or_create(os.path.join(keys_dir, 'pluginsd.key'))
    admin = keys.KeyPair.generate()
    admin.save(os.path.join(keys_dir, 'bench-admin.key'))
    groups['security'] = {
        'daemon_public_keys': os.path.join(keys_dir, 'pluginsd.key.pub'),
        'operator_keys': 'admin:'
        + os.path.join(keys_dir, 'bench-admin.key.pub'),
    }
    conf_path = cluster.write_conf(os.path.join(work, 'bench.conf'), groups)
    conf = pluginsd_conf.new_conf()
    conf(['--config-file', conf_path], project='pluginsd')
    transport = rpc.get_transport(conf)
    # A daemon never migrates its database: pluginsd-manage does.
    subprocess.run(
        [
            os.path.join(cluster.BIN, 'pluginsd-manage'),
            '--config-file',
            conf_path,
            'db',
            'upgrade',
        ],
        check=True,
        capture_output=True,
    )
    daemon = cluster.Process('pluginsd', conf_path, state).start()
    hosts = []
    row = {}
    agent = None
    try:
        agent = real_agent(groups, work, conf.security.accepted_keys_dir)
        per = per_process(nodes)
        simulated = nodes - 1
        for first in range(0, simulated, per):
            count = min(per, simulated - first)
            proc = subprocess.Popen(
                [
                    sys.executable,
                    os.path.join(TOP, 'bench', 'agent_host.py'),
                    conf_path,
                    f'p{first // per}-node',
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
            timeout=120,
            signer=signing.Signer(admin, 'operator'),
        )
        poll = rpcapi.DaemonAPI(
            conf,
            transport,
            timeout=5,
            signer=signing.Signer(admin, 'operator'),
        )
        deadline = time.monotonic() + 300
        while True:
            try:
                up = [n for n in poll.list_nodes({}) if n['state'] == 'up']
            except Exception:
                up = []
            if len(up) >= nodes:
                break
            if time.monotonic() > deadline:
                raise RowFailed(f'{len(up)} of {nodes} nodes registered')
            time.sleep(0.5)
        run_ids = []
        if runs:
            pids = [proc.pid for proc in hosts]
            before = []

            def after_warmup():
                before[:] = cpu_snapshot(
                    daemon.proc.pid, pids, agent.proc.pid, broker.pid
                )

            row['took'] = timed_runs(
                api, local_conf(plugins), repeat, run_ids, after_warmup
            )
            # Bash sessions end with their run: reaped, counted by now.
            used = cpu_snapshot(
                daemon.proc.pid, pids, agent.proc.pid, broker.pid
            )
            # Per node and phase: the daemon's for all nodes, the simulated
            # nodes' for theirs (many to a process), the real agent's for
            # its one, the bash and git for all, the broker's for all.
            phases = len(PHASES) * repeat
            counts = [nodes, max(simulated, 1), 1, nodes, nodes]
            row['cpu_ms'] = [
                1000 * (after - was) / (count * phases)
                for was, after, count in zip(before, used, counts, strict=True)
            ]
        fanout = fanout_times(daemon.log, set(run_ids), nodes)
        row['fanout'] = statistics.median(fanout) if fanout else None
        row['fanout_max'] = max(fanout) if fanout else None
        if nodes >= 200 or not runs:
            # Let the last run's (or the start's) traffic settle.
            time.sleep(5)
            before = cpu_seconds(daemon.proc.pid)
            agent_before = cpu_seconds(agent.proc.pid)
            time.sleep(IDLE_SECONDS)
            row['idle_cpu'] = (
                100 * (cpu_seconds(daemon.proc.pid) - before) / IDLE_SECONDS
            )
            row['idle_agent_cpu'] = (
                100
                * (cpu_seconds(agent.proc.pid) - agent_before)
                / IDLE_SECONDS
            )
            # The nodes' heartbeats and the daemon's probe of itself (1/s).
            rate = nodes / conf.agent.heartbeat_interval + 1
            row['noop_cpu'] = noop_server_cpu(conf_path, transport, rate)
            row['msg_rate'] = rate
        row['up'] = len([n for n in api.list_nodes({}) if n['state'] == 'up'])
        rss = [rss_mb(proc.pid) for proc in hosts]
        row['rss'] = (max(rss, default=0), per if nodes > 1 else 1)
        row['daemon_rss'] = rss_mb(daemon.proc.pid)
        row['real_rss'] = rss_mb(agent.proc.pid)
        return row
    finally:
        if agent is not None:
            agent.stop()
        for proc in hosts:
            proc.terminate()
        for proc in hosts:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                print(
                    f'agent host {proc.pid} ignored SIGTERM: killed',
                    file=sys.stderr,
                )
                proc.kill()
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
            signer=signing.Signer(embedded.operator_key, 'operator'),
        )
        return timed_runs(api, local_conf(plugins), repeat)
    finally:
        embedded.stop()


def unwind(*_):
    """SIGTERM (timeout, pkill) unwinds like Ctrl-C: the finally blocks stop
    the daemon, the agent hosts and the broker instead of leaving them. Once:
    a second SIGTERM (pkill reaches `timeout` too, which passes it on) would
    cut that cleanup short.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(128 + signal.SIGTERM)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--nodes', default='1,10,50')
    parser.add_argument(
        '--idle-only',
        action='store_true',
        help='start the nodes and measure the idle daemon only (no runs)',
    )
    parser.add_argument(
        '--keep',
        action='store_true',
        help='keep the work directory (daemon and node logs, journals)',
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, unwind)
    base = tempfile.mkdtemp(prefix='pluginsd-bench-')
    rows, extra, failed = [], [], []
    try:
        one = make_plugins(os.path.join(base, 'one'), 1)
        fifty = make_plugins(os.path.join(base, 'fifty'), 50)
        broker = rabbit_mod.RabbitBroker(os.path.join(base, 'rabbit'))
        broker.start()
        try:
            for nodes in [int(n) for n in args.nodes.split(',')]:
                try:
                    row = rabbit_scenario(
                        base,
                        broker,
                        nodes,
                        one,
                        args.repeat,
                        not args.idle_only,
                    )
                except (RowFailed, messaging.MessagingException) as e:
                    print(f'{nodes} nodes: not measured: {e}', file=sys.stderr)
                    failed.append((nodes, f'{type(e).__name__}: {e}'))
                    continue
                if args.idle_only:
                    extra.append((nodes, row))
                    continue
                floor, row['phase_floor'] = bash_floor(
                    base, one, nodes, args.repeat
                )
                target = {50: '1.0'}.get(nodes, '')
                # The CPU of the bash and git that pluginsd itself ran, on
                # every core at once: no stack can be faster on this machine.
                own_bash = (
                    row['cpu_ms'][3] * nodes * len(PHASES) / 1000
                ) / os.cpu_count()
                rows.append(
                    (
                        f'1 no-op plugin x {nodes} node(s), RabbitMQ',
                        row['took'],
                        floor,
                        own_bash,
                        target,
                    )
                )
                extra.append((nodes, row))
                # As it goes: a later row that fails loses nothing.
                print(
                    f'{nodes} nodes: {row} floor {floor:.3f}', file=sys.stderr
                )
        finally:
            broker.stop()
        if not args.idle_only:
            took = allinone_scenario(base, fifty, args.repeat)
            floor, _ = bash_floor(base, fifty, 1, args.repeat)
            rows.append(
                (
                    '50 no-op plugins x 1 node, all-in-one',
                    took,
                    floor,
                    None,
                    '0.3',
                )
            )
    finally:
        if args.keep:
            print(f'Work directory kept: {base}', file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    print()
    print(
        f'{os.cpu_count()} CPUs, load average '
        f'{" ".join(f"{x:.1f}" for x in os.getloadavg())} at the end'
    )
    if rows:  # none with --idle-only
        print()
        print(f'5-phase stack, median of {args.repeat} runs (seconds)')
        print(
            f'| {"scenario":<42} | {"pluginsd":>8} | {"plain bash":>10} '
            f'| {"ratio":>5} | {"its bash+git CPU / cores":>24} '
            f'| {"target":>6} |'
        )
        print(
            f'|{"-" * 44}|{"-" * 10}|{"-" * 12}|{"-" * 7}|{"-" * 26}'
            f'|{"-" * 8}|'
        )
        for name, took, floor, own_bash, target in rows:
            bound = '' if own_bash is None else f'{own_bash:.3f}'
            print(
                f'| {name:<42} | {took:8.3f} | {floor:10.3f} '
                f'| {took / floor:5.2f} | {bound:>24} | {target:>6} |'
            )
    print()
    print(
        '| nodes | one phase: publish -> last result stored, median / max '
        '(s) | plain bash, one phase (s) '
        '| nodes up at the end | idle daemon CPU (% of a core) '
        '| idle real agent CPU (% of a core) '
        '| no-op oslo.messaging server, same messages/s (% of a core) '
        '| agent RSS (MB): a pluginsd-agent / a simulated nodes\' process '
        '| daemon RSS (MB) '
        '| CPU per node-phase (ms): daemon / simulated nodes / the real '
        'agent / all their bash+git / the broker |'
    )
    print('|---|---|---|---|---|---|---|---|---|---|')
    for nodes, row in extra:
        fan = (
            f'{row["fanout"]:.3f} / {row["fanout_max"]:.3f}'
            if row['fanout'] is not None
            else 'n/a'
        )
        idle = f'{row["idle_cpu"]:.1f}' if 'idle_cpu' in row else ''
        idle_agent = (
            f'{row["idle_agent_cpu"]:.2f}' if 'idle_agent_cpu' in row else ''
        )
        noop = (
            f'{row["noop_cpu"]:.1f} ({row["msg_rate"]:.1f}/s)'
            if 'noop_cpu' in row
            else ''
        )
        rss, per = row['rss']
        simulated = f'{rss:.0f} (up to {per} nodes)' if rss else 'none'
        cpu = ' / '.join(f'{ms:.1f}' for ms in row.get('cpu_ms', ()))
        phase_floor = (
            f'{row["phase_floor"]:.3f}' if 'phase_floor' in row else ''
        )
        print(
            f'| {nodes} | {fan} | {phase_floor} | {row["up"]} of {nodes} '
            f'| {idle} | {idle_agent} | {noop} '
            f'| {row["real_rss"]:.0f} / {simulated} '
            f'| {row["daemon_rss"]:.0f} | {cpu} |'
        )
    for nodes, why in failed:
        print(f'| {nodes} | not measured: {why} | | | | | | | | |')
    print()
    print(
        'Targets: 50 nodes <= 1.0 s; 500 nodes complete with no node lost; '
        'one phase to 500 nodes <= 3 s; idle daemon with 500 nodes <= 5 % '
        'of a core; agent RSS <= 60 MB.'
    )


if __name__ == '__main__':
    main()
