"""Many nodes over a real RabbitMQ: a daemon and agent processes.

Every test starts real `pluginsd` and `pluginsd-agent` processes, each with
its own config, state directory and DEST, on a private broker on 127.0.0.1,
and drives them with `pluginsctl` or the daemon RPC API.
"""

import itertools
import json
import os
import sqlite3
import time

import pytest

from tests import gitrepos
from tests.functional import aio
from tests.functional import cluster as cluster_mod

PHASES = ['pre-install', 'install', 'post-config', 'extra', 'test-config']


def traced(name, body=''):
    """A plugin that logs host, plugin, arguments and time at every call."""
    return {
        'devstack/settings': f'define_plugin {name}\n',
        'devstack/plugin.sh': (
            f'echo "$PLUGINSD_HOST|{name}|$*|$EPOCHREALTIME" '
            '>> "$TEST_TRACE"\n'
            f'{body}\ntrue\n'
        ),
    }


def read(path):
    return gitrepos.read_trace(path)


@pytest.fixture
def cluster(tmp_path, rabbit_vhost):
    made = []

    def make(hosts, _env=None, **daemon_extra):
        trace = str(tmp_path / 'trace')
        c = cluster_mod.Cluster(
            tmp_path / 'cluster',
            rabbit_vhost,
            [str(tmp_path / 'repos') + '/'],
            env={'TEST_TRACE': trace, **(_env or {})},
            **daemon_extra,
        )
        c.trace = trace
        for host, roles, extra in hosts:
            c.add_agent(host, roles, **extra)
        made.append(c)
        c.start()
        return c

    yield make
    for c in made:
        c.stop()


def conf_file(tmp_path, name, *lines):
    path = tmp_path / name
    path.write_text('[[local|localrc]]\n' + '\n'.join(lines) + '\n')
    return str(path)


def unacked(journal_path):
    """Results the agent has not heard acknowledged (read-only look)."""
    db = sqlite3.connect(f'file:{journal_path}?mode=ro', uri=True)
    try:
        return db.execute(
            'SELECT count(*) FROM results WHERE acked = 0'
        ).fetchone()[0]
    finally:
        db.close()


def run_id_of(proc):
    for line in proc.stderr.splitlines():
        if line.startswith('run ') and ':' in line:
            return line.split()[1].rstrip(':')
    raise AssertionError(proc.stderr)


@pytest.mark.timeout(180)
def test_stages_by_role_and_compute_only_plugin(tmp_path, cluster):
    shared = gitrepos.make_repo(
        str(tmp_path / 'repos' / 'shared'), traced('shared')
    )
    only = gitrepos.make_repo(
        str(tmp_path / 'repos' / 'computeonly'), traced('computeonly')
    )
    c = cluster(
        [
            ('ctl', 'controller', {}),
            ('cmp1', 'compute', {}),
            ('cmp2', 'compute', {}),
        ]
    )
    default = conf_file(
        tmp_path, 'local.conf', f'enable_plugin shared {shared}'
    )
    compute = conf_file(
        tmp_path,
        'compute.conf',
        f'enable_plugin shared {shared}',
        f'enable_plugin computeonly {only}',
    )

    proc = c.ctl('stack', default, '--role', f'compute={compute}')
    assert proc.returncode == 0, proc.stderr
    view = c.api.get_run({}, run_id_of(proc))
    assert view['stages'] == [['ctl'], ['cmp1', 'cmp2']]
    # Every node hears its results acknowledged (its own ack_results cast)
    # and stops resending them.
    journals = [
        os.path.join(c.base, host, 'agent', 'journal.sqlite')
        for host in ('ctl', 'cmp1', 'cmp2')
    ]
    deadline = time.monotonic() + 10
    while any(unacked(j) for j in journals) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [unacked(j) for j in journals] == [0, 0, 0]
    node = {
        (r['node'], r['phase']): r
        for r in view['results']
        if r['plugin'] == ''
    }
    # The controller finished every phase before any compute started.
    ctl_end = max(node[('ctl', p)]['ended_at'] for p in PHASES)
    assert ctl_end <= min(
        node[(h, 'pre-install')]['started_at'] for h in ('cmp1', 'cmp2')
    )
    # The computes move in lock-step: phase N starts after both ended N-1.
    for before, after in itertools.pairwise(PHASES):
        assert max(
            node[(h, before)]['ended_at'] for h in ('cmp1', 'cmp2')
        ) <= min(node[(h, after)]['started_at'] for h in ('cmp1', 'cmp2'))
    trace = read(c.trace)
    ran = {(t[0], t[1]) for t in trace}
    assert ran == {
        ('ctl', 'shared'),
        ('cmp1', 'shared'),
        ('cmp2', 'shared'),
        ('cmp1', 'computeonly'),
        ('cmp2', 'computeonly'),
    }
    # Every node runs the pinned commit, fetched from the daemon's cache.
    sha = gitrepos.git(shared, 'rev-parse', 'HEAD')
    pins = {
        role: {p['name']: p for p in plan['plugins']}
        for role, plan in view['plans'].items()
    }
    # One commit per (URL, ref) across the roles of the run.
    assert pins['*']['shared']['sha'] == pins['compute']['shared']['sha']
    assert view['commits'] == [
        {
            'role': role,
            'plugin': name,
            'url': url,
            'ref': 'master',
            'commit': gitrepos.git(url, 'rev-parse', 'HEAD'),
        }
        for role, name, url in [
            ('*', 'shared', shared),
            ('compute', 'shared', shared),
            ('compute', 'computeonly', only),
        ]
    ]
    # run show lists them: per role, each plugin's URL, ref and commit.
    shown = c.ctl('run', 'show', view['id'], '--commits', '-f', 'json')
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)
    assert [(r['Role'], r['Plugin'], r['URL'], r['Ref']) for r in rows] == [
        ('*', 'shared', shared, 'master'),
        ('compute', 'shared', shared, 'master'),
        ('compute', 'computeonly', only, 'master'),
    ]
    commits = {}
    for r in rows:
        commits.setdefault((r['URL'], r['Ref']), set()).add(r['Commit'])
    assert commits == {
        (shared, 'master'): {sha},
        (only, 'master'): {gitrepos.git(only, 'rev-parse', 'HEAD')},
    }
    table = c.ctl('run', 'show', view['id'][:8], '--commits').stdout
    # --node chooses the targets: cmp2 alone, with the compute local.conf.
    only_cmp2 = c.ctl(
        'stack', default, '--role', f'compute={compute}', '--node', 'cmp2'
    )
    assert only_cmp2.returncode == 0, only_cmp2.stderr
    picked = c.api.get_run({}, run_id_of(only_cmp2))
    assert picked['stages'] == [['cmp2']]
    assert picked['node_roles'] == {'cmp2': 'compute'}
    assert '| computeonly ' in table and f' {sha[:12]} ' in table
    bundle = pins['*']['shared']['bundle'] + '.bundle'
    for host in ('ctl', 'cmp1', 'cmp2'):
        dest = os.path.join(c.base, host, 'dest', 'shared')
        assert gitrepos.git(dest, 'rev-parse', 'HEAD') == sha
        assert os.path.exists(
            os.path.join(c.base, host, 'agent', 'bundles', bundle)
        )

    for mode in ('unstack', 'clean'):
        proc = c.ctl(mode, default, '--role', f'compute={compute}')
        assert proc.returncode == 0, proc.stderr
    calls = [(t[0], t[1], t[2]) for t in read(c.trace)]
    assert ('cmp1', 'computeonly', 'clean') in calls
    assert ('ctl', 'computeonly', 'unstack') not in calls
    nodes = c.ctl('node', 'list', '-f', 'value', '-c', 'Host', '-c', 'State')
    assert sorted(nodes.stdout.split('\n')[:3]) == [
        'cmp1 up',
        'cmp2 up',
        'ctl up',
    ]


@pytest.mark.timeout(180)
def test_lost_node_fails_the_run_and_retry_completes(tmp_path, cluster):
    mark, pidfile = tmp_path / 'slept', tmp_path / 'sleep.pid'
    body = (
        'if [[ $2 == install && $PLUGINSD_HOST == cmp1 && '
        f'! -e {mark} ]]; then\n'
        f'  touch {mark}; sleep 300 & echo $! > {pidfile}; wait\nfi'
    )
    slow = gitrepos.make_repo(
        str(tmp_path / 'repos' / 'slow'), traced('slow', body)
    )
    c = cluster(
        [
            ('ctl', 'controller', {}),
            ('cmp1', 'compute', {}),
            ('cmp2', 'compute', {}),
        ]
    )
    conf = conf_file(tmp_path, 'local.conf', f'enable_plugin slow {slow}')
    proc = c.ctl('stack', '--no-wait', conf)
    run_id = run_id_of(proc)
    deadline = time.monotonic() + 60
    while not pidfile.exists():
        assert time.monotonic() < deadline, 'cmp1 never reached install'
        time.sleep(0.2)
    c.agents['cmp1'].kill()
    # Declared lost after agent_down_time (6 s): well within the wait.
    view = c.wait_run(run_id, timeout=60)
    assert view['state'] == 'failed'
    assert 'node cmp1 lost during stack install' in view['error']

    c.agents['cmp1'].start()
    c.wait_nodes({'cmp1'})
    sleeper = int(pidfile.read_text())
    # The new agent killed the plugin session its predecessor left behind.
    assert (
        not os.path.exists(f'/proc/{sleeper}')
        or open(f'/proc/{sleeper}/stat').read().split()[2] == 'Z'
    )
    proc = c.ctl('run', 'retry', run_id)
    assert proc.returncode == 0, proc.stderr
    view = c.api.get_run({}, run_id)
    assert view['state'] == 'completed' and view['attempt'] == 2
    installs = [t[0] for t in read(c.trace) if t[2] == 'stack install']
    assert installs.count('cmp1') == 2 and installs.count('ctl') == 1


@pytest.mark.timeout(180)
def test_broker_restart_mid_run_loses_no_result(tmp_path, rabbit, cluster):
    started = tmp_path / 'install-started'
    # install waits, mid-phase, until the broker has restarted.
    gate = tmp_path / 'broker-restarted'
    body = (
        f'if [[ $2 == install ]]; then touch {started}; '
        f'while [[ ! -e {gate} ]]; do sleep 0.1; done; fi'
    )
    slow = gitrepos.make_repo(
        str(tmp_path / 'repos' / 'slow'), traced('slow', body)
    )
    quick = gitrepos.make_repo(
        str(tmp_path / 'repos' / 'quick'), traced('quick')
    )
    long_wait = {'daemon': {'agent_down_time': 120}}
    c = cluster(
        [('ctl', 'controller', long_wait), ('cmp1', 'compute', long_wait)],
        **long_wait,
    )
    conf = conf_file(
        tmp_path,
        'local.conf',
        f'enable_plugin slow {slow}',
        f'enable_plugin quick {quick}',
    )
    run_id = run_id_of(c.ctl('stack', '--no-wait', conf))
    deadline = time.monotonic() + 60
    while not started.exists():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    rabbit.restart()
    gate.touch()
    view = c.wait_run(run_id, timeout=600)
    assert view['state'] == 'completed', view['error']
    keys = [(r['node'], r['plugin'], r['phase']) for r in view['results']]
    assert len(keys) == len(set(keys))
    # 2 nodes x 5 phases x (2 plugins + the node's own phase result)
    assert len(keys) == 2 * 5 * 3
    per_node = [
        t[0]
        for t in read(c.trace)
        if t[1] == 'slow' and t[2] == 'stack install'
    ]
    assert sorted(per_node) == ['cmp1', 'ctl']


@pytest.mark.timeout(120)
def test_plugin_sources_checked_at_plan_time(tmp_path, cluster):
    # Forged, replayed, unauthorized messages: tests/functional/test_trust.py
    c = cluster([('cmp1', 'compute', {'agent': {'plugin_source': 'origin'}})])
    # A source outside [agent] allowed_sources: the node reported its
    # allow-list in its heartbeats, so the run fails at plan time, naming
    # the node and the rule, before any phase.
    outside = gitrepos.make_repo(
        str(tmp_path / 'elsewhere' / 'rogue'), traced('rogue')
    )
    proc = c.ctl(
        'stack',
        conf_file(tmp_path, 'rogue.conf', f'enable_plugin rogue {outside}'),
    )
    assert proc.returncode == 1
    assert (
        f'node cmp1 refuses plugin rogue: source {outside} is not in '
        f'[agent] allowed_sources ({tmp_path / "repos"}/)' in proc.stderr
    )
    rogue_run = c.api.get_run({}, run_id_of(proc))
    assert rogue_run['stages'] == [] and rogue_run['results'] == []
    # A URL that passed the old string-prefix check: refused at plan time
    # with the local.conf line, and git never ran on it.
    bypass = f'file://{tmp_path}/repos/../elsewhere/rogue'
    proc = c.ctl(
        'stack',
        conf_file(tmp_path, 'bypass.conf', f'enable_plugin rogue {bypass}'),
    )
    assert proc.returncode == 1
    assert (
        f'bypass.conf:2: enable_plugin rogue: plugin URL {bypass!r} '
        'refused: a ".." path segment is not allowed' in proc.stderr
    )
    bypass_run = c.api.get_run({}, run_id_of(proc))
    assert bypass_run['stages'] == [] and bypass_run['results'] == []
    assert not any(t[1] == 'rogue' for t in read(c.trace))


def slow_install(view):
    """The result of plugin slow in install, or None."""
    [install] = aio.results_by(view, plugin='slow', phase='install') or [None]
    return install


@pytest.mark.timeout(180)
def test_logs_show_cancel_and_graceful_stop(tmp_path, cluster):
    import socket

    notify = tmp_path / 'notify.sock'
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(60)
    body = (
        'if [[ $2 == install ]]; then echo "hello from install"; '
        f'touch {tmp_path}/in-install; sleep 120; fi'
    )
    slow = gitrepos.make_repo(
        str(tmp_path / 'repos' / 'slow'), traced('slow', body)
    )
    c = cluster(
        [('cmp1', 'compute', {'agent': {'graceful_shutdown_timeout': 1}})],
        _env={'NOTIFY_SOCKET': str(notify)},
    )
    # systemd's Type=notify: both services said READY=1 once they served.
    ready = sorted(sock.recv(100) for _ in range(2))
    assert ready == [b'READY=1', b'READY=1']
    conf = conf_file(tmp_path, 'local.conf', f'enable_plugin slow {slow}')

    def start_and_reach_install():
        (tmp_path / 'in-install').unlink(missing_ok=True)
        run_id = run_id_of(c.ctl('stack', '--no-wait', conf))
        deadline = time.monotonic() + 60
        while not (tmp_path / 'in-install').exists():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        return run_id

    run_id = start_and_reach_install()
    logs = c.ctl(
        'run',
        'logs',
        run_id,
        '--node',
        'cmp1',
        '--plugin',
        'slow',
        '--phase',
        'install',
    )
    assert logs.returncode == 0, logs.stderr
    assert 'hello from install' in logs.stdout
    assert '+ ' in logs.stdout  # the xtrace of the plugin
    show = c.ctl('run', 'show', run_id[:8])
    assert 'waiting on: cmp1 (install)' in show.stderr
    assert c.ctl('run', 'cancel', run_id).returncode == 0
    view = c.wait_run(run_id, timeout=60)
    assert view['state'] == 'cancelled'
    # The run ends at once; the killed plugin's result comes from the node
    # right after.
    deadline = time.monotonic() + 30
    while not (install := slow_install(view)):
        assert time.monotonic() < deadline, view['results']
        time.sleep(0.2)
        view = c.api.get_run({}, run_id)
    assert install['status'] == 'cancelled'

    run_id = start_and_reach_install()
    agent = c.agents['cmp1']
    agent.terminate()
    assert agent.proc.wait(30) == 0
    assert sock.recv(100) == b'STOPPING=1'
    view = c.wait_run(run_id, timeout=60)
    assert view['state'] == 'failed'
    install = slow_install(view)
    assert install['status'] == 'killed'
    assert 'graceful_shutdown_timeout' in install['message']
    sock.close()


@pytest.mark.timeout(120)
def test_sighup_reloads_a_mutable_option(tmp_path, cluster):
    body = 'if [[ $2 == install ]]; then sleep 30; fi'
    slow = gitrepos.make_repo(
        str(tmp_path / 'repos' / 'slow'), traced('slow', body)
    )
    c = cluster([('cmp1', 'compute', {})])
    conf = conf_file(tmp_path, 'local.conf', f'enable_plugin slow {slow}')
    # Lower [daemon] phase_timeout in the daemon's file, then SIGHUP it.
    text = open(c.daemon_conf).read()
    with open(c.daemon_conf, 'w') as f:
        f.write(text.replace('[daemon]\n', '[daemon]\nphase_timeout = 2\n'))
    c.daemon.proc.send_signal(__import__('signal').SIGHUP)
    deadline = time.monotonic() + 30
    while 'phase_timeout' not in c.daemon.log_text().split('SIGHUP')[-1]:
        assert time.monotonic() < deadline, 'the daemon did not reload'
        time.sleep(0.2)
    # With the old deadline the plugin would end by itself after 30 s
    # and the stack would succeed.
    proc = c.ctl('stack', conf)
    assert proc.returncode == 1
    assert (
        'plugin slow failed in stack install: deadline passed' in proc.stderr
    )
    assert c.daemon.proc.poll() is None  # still serving


@pytest.mark.timeout(240)
def test_services_exit_when_the_broker_stays_away(tmp_path, rabbit, cluster):
    quick = {'DEFAULT': {'broker_down_exit_after': 8}}
    c = cluster([('cmp1', 'compute', quick)], **quick)
    rabbit.stop()
    try:
        for process in (c.daemon, c.agents['cmp1']):
            # Exit status 1 (systemd's Restart=on-failure starts it again)
            # within the limit plus the time a failing send takes to give up.
            assert process.proc.wait(90) == 1, process.log_text()[-2000:]
            assert 'broker_down_exit_after' in process.log_text()
    finally:
        rabbit.start()


@pytest.mark.timeout(120)
def test_logs_follow_streams_while_the_plugin_runs(tmp_path, cluster):
    body = (
        'if [[ $2 == install ]]; then for i in 1 2 3; do echo "step $i"; '
        f'touch {tmp_path}/step-$i; sleep 1; done; fi'
    )
    chatty = gitrepos.make_repo(
        str(tmp_path / 'repos' / 'chatty'), traced('chatty', body)
    )
    c = cluster([('cmp1', 'compute', {})])
    run_id = run_id_of(
        c.ctl(
            'stack',
            '--no-wait',
            conf_file(
                tmp_path, 'local.conf', f'enable_plugin chatty {chatty}'
            ),
        )
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / 'step-1').exists():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert not (tmp_path / 'step-3').exists()  # still running: we follow
    proc = c.ctl(
        'run',
        'logs',
        run_id,
        '--node',
        'cmp1',
        '--plugin',
        'chatty',
        '--phase',
        'install',
        '--follow',
    )
    assert proc.returncode == 0, proc.stderr
    assert [
        ln for ln in proc.stdout.splitlines() if ln.startswith('step')
    ] == ['step 1', 'step 2', 'step 3']
    assert c.wait_run(run_id)['state'] == 'completed'
