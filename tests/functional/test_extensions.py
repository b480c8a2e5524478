"""Extensions found through stevedore, and notifications on a real broker."""

import json
import os
import subprocess
import sys
import textwrap
import threading

import oslo_messaging as messaging
import pytest
import sqlalchemy as sa

from pluginsd import conf as pluginsd_conf
from tests import gitrepos
from tests.functional import cluster as cluster_mod
from tests.functional import rabbit as rabbit_mod

TOP = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
BIN = os.path.dirname(sys.executable)
EXAMPLE = os.path.join(TOP, 'examples', 'extensions', 'pluginsd-audit')
PHASES = ['pre-install', 'install', 'post-config', 'extra', 'test-config']


def pip(*args):
    subprocess.run(
        [
            sys.executable,
            '-m',
            'pip',
            '-q',
            '--disable-pip-version-check',
            *args,
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )


def ctl(state, *args, env=None, config=None):
    cmd = [
        os.path.join(BIN, 'pluginsctl'),
        '--all-in-one',
        '--state-dir',
        str(state),
        '--dest',
        str(state / 'dest'),
    ]
    if config:
        cmd += ['--config-file', str(config)]
    return subprocess.run(
        cmd + list(args),
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, **(env or {})),
    )


def two_plugins(tmp_path):
    a = gitrepos.make_repo(
        str(tmp_path / 'repos' / 'alpha'), gitrepos.tracing_plugin('alpha')
    )
    b = gitrepos.make_repo(
        str(tmp_path / 'repos' / 'beta'), gitrepos.tracing_plugin('beta')
    )
    conf = tmp_path / 'local.conf'
    conf.write_text(
        f'[[local|localrc]]\nenable_plugin alpha {a}\nenable_plugin beta {b}\n'
    )
    return conf


@pytest.fixture
def audit_installed(tmp_path):
    """pip installs the example extension where only this test's processes
    look (their PYTHONPATH): tests running beside it on other workers share
    the virtualenv and must not find it. Yields their environment.
    """
    target = tmp_path / 'site-packages'
    pip('install', '--no-deps', '--target', str(target), EXAMPLE)
    return {'PYTHONPATH': str(target)}


@pytest.mark.timeout(180)
def test_pip_installed_extension_is_found_and_sees_every_event(
    tmp_path, audit_installed, database_url
):
    state = tmp_path / 'state'
    env = {'TEST_TRACE': str(tmp_path / 'trace'), **audit_installed}
    # A new pluginsctl --all-in-one process is a daemon restart.
    listing = ctl(state, 'extension', 'list', '-f', 'json', env=env)
    assert listing.returncode == 0, listing.stderr
    rows = {e['Name']: e for e in json.loads(listing.stdout)}
    assert rows['audit']['State'] == 'loaded'
    assert rows['audit']['Version'] == '1.0.0'
    assert rows['audit']['Description'].startswith('Audit trail')
    assert rows['logging']['State'] == 'loaded'

    proc = ctl(state, 'stack', str(two_plugins(tmp_path)), env=env)
    assert proc.returncode == 0, proc.stderr
    lines = [
        json.loads(x)
        for x in (state / 'audit-events.jsonl').read_text().splitlines()
    ]
    # Node events interleave (the node comes back from the previous
    # process's clean stop): the run's own events, in order.
    run_events = [e for e in lines if not e['event'].startswith('node_')]
    expected = ['run_start']
    for _ in PHASES:
        expected += [
            'phase_start',
            'plugin_result',
            'plugin_result',
            'phase_end',
        ]
    expected.append('run_end')
    assert [e['event'] for e in run_events] == expected
    assert [
        e['phase'] for e in run_events if e['event'] == 'phase_start'
    ] == PHASES
    assert [e['plugin'] for e in run_events if e['event'] == 'plugin_result'][
        :2
    ] == ['alpha', 'beta']
    assert run_events[-1]['state'] == 'completed'
    assert {e['event'] for e in lines} >= {'node_register'}
    # Its own Alembic branch made its own table, in the daemon's database.
    url = database_url or f'sqlite:///{state}/pluginsd.sqlite'
    with sa.create_engine(url).connect() as db:
        count = db.execute(
            sa.text('select count(*) from audit_events')
        ).scalar()
        heads = {
            r[0]
            for r in db.execute(
                sa.text('select version_num from alembic_version')
            )
        }
    assert count == len(lines)
    assert heads == {'0006', 'audit_0001'}
    # pluginsd-manage applies the extension's branch too, on a new database.
    manage_conf = tmp_path / 'manage.conf'
    manage_conf.write_text(f'[DEFAULT]\nstate_path = {tmp_path / "manage"}\n')
    manage = [
        os.path.join(BIN, 'pluginsd-manage'),
        '--config-file',
        str(manage_conf),
    ]
    env = dict(os.environ, **audit_installed)
    upgrade = subprocess.run(
        manage + ['db', 'upgrade'], capture_output=True, text=True, env=env
    )
    assert upgrade.returncode == 0, upgrade.stderr
    version = subprocess.run(
        manage + ['db', 'version'], capture_output=True, text=True, env=env
    )
    assert sorted(version.stdout.split()) == ['0006', 'audit_0001']
    # Its option shows up in the generated sample configuration.
    sample = subprocess.run(
        [
            os.path.join(BIN, 'oslo-config-generator'),
            '--namespace',
            'pluginsd',
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    assert '[audit]' in sample.stdout and 'events_file' in sample.stdout


def broken_extensions(base):
    """Two installed distributions: one that cannot import, one that raises."""
    site = base / 'site'
    for dist, name, module, code in [
        (
            'broken_import',
            'broken',
            'broken_mod',
            'import no_such_module_here\n',
        ),
        (
            'raising',
            'raising',
            'raising_mod',
            textwrap.dedent('''
                from pluginsd.extensions import base
                class Raising(base.Extension):
                    version = '0.1'
                    description = 'raises in every handler'
                    def on_run_start(self, run):
                        raise RuntimeError('raising on purpose')
                    on_phase_start = on_plugin_result = on_run_start
                '''),
        ),
    ]:
        info = site / f'{dist}-0.1.dist-info'
        info.mkdir(parents=True)
        (info / 'METADATA').write_text(
            f'Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n'
        )
        attr = ':Raising' if dist == 'raising' else ':Thing'
        (info / 'entry_points.txt').write_text(
            f'[pluginsd.extensions]\n{name} = {module}{attr}\n'
        )
        (site / f'{module}.py').write_text(code)
    return site


@pytest.mark.timeout(180)
def test_broken_extensions_are_listed_and_the_run_succeeds(tmp_path):
    site = broken_extensions(tmp_path)
    env = {'PYTHONPATH': str(site), 'TEST_TRACE': str(tmp_path / 'trace')}
    state = tmp_path / 'state'
    listing = ctl(state, 'extension', 'list', '-f', 'json', env=env)
    assert listing.returncode == 0, listing.stderr
    rows = {e['Name']: e for e in json.loads(listing.stdout)}
    assert rows['broken']['State'] == 'failed'
    assert "No module named 'no_such_module_here'" in rows['broken']['Reason']
    assert rows['raising']['State'] == 'loaded'
    local_conf = str(two_plugins(tmp_path))
    proc = ctl(state, '-v', 'stack', local_conf, env=env)
    assert proc.returncode == 0, proc.stderr
    assert 'Extension raising failed in on_run_start' in proc.stderr
    assert 'raising on purpose' in proc.stderr

    strict = tmp_path / 'strict.conf'
    strict.write_text('[extensions]\nfail_on_error = True\n')
    # A command that starts the all-in-one daemon (a read-only one reads the
    # state dir and loads no extension).
    proc = ctl(state, 'stack', local_conf, env=env, config=strict)
    assert proc.returncode == 1
    # The load failure is logged with its traceback; the verdict is one line.
    assert 'Traceback' in proc.stderr and 'broken_mod:Thing' in proc.stderr
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .endswith(
            'configuration: extensions failed to load: broken '
            '([extensions] fail_on_error is set)'
        )
    )


@pytest.mark.timeout(180)
def test_lifecycle_notifications_on_the_broker(tmp_path, rabbit_vhost):
    conf_file = two_plugins(tmp_path)
    c = cluster_mod.Cluster(
        tmp_path / 'cluster',
        rabbit_vhost,
        [str(tmp_path / 'repos') + '/'],
        env={'TEST_TRACE': str(tmp_path / 'trace')},
        oslo_messaging_notifications={
            'driver': 'messagingv2',
            'topics': 'notifications',
        },
    )
    c.add_agent('node-1', 'controller')
    received, done = [], threading.Event()

    class Endpoint:
        def info(self, ctxt, publisher_id, event_type, payload, metadata):
            received.append((event_type, payload))
            if event_type == 'pluginsd.run.end':
                done.set()

        error = info

    # The daemon's own settings: durable queues must match on one exchange.
    conf = pluginsd_conf.new_conf()
    conf(['--config-file', c.daemon_conf], project='pluginsd')
    transport = messaging.get_notification_transport(conf)
    listener = messaging.get_notification_listener(
        transport,
        [messaging.Target(topic='notifications')],
        [Endpoint()],
        executor='threading',
    )
    listener.start()  # its queue must exist before anything is sent
    try:
        c.start()
        proc = c.ctl('stack', str(conf_file))
        assert proc.returncode == 0, proc.stderr
        assert done.wait(30), [e for e, _ in received]
    finally:
        rabbit_mod.stop_server(listener)
        c.stop()
        rabbit_mod.close_transport(transport)
    types = [e for e, _ in received]
    assert types[0] == 'pluginsd.node.register'
    run_types = types[types.index('pluginsd.run.start') :]
    assert run_types[:2] == ['pluginsd.run.start', 'pluginsd.phase.start']
    assert run_types.count('pluginsd.phase.end') == 5
    assert run_types.count('pluginsd.plugin.result') == 10
    assert run_types[-1] == 'pluginsd.run.end'
    end = dict(received)['pluginsd.run.end']
    assert end['state'] == 'completed' and end['mode'] == 'stack'
