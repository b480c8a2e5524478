"""pluginsctl as a user runs it: a real process, real exit codes and output."""

import json
import os
import subprocess
import sys
import time

from tests import gitrepos

TOP = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
CTL = os.path.join(os.path.dirname(sys.executable), 'pluginsctl')


def ctl(state, *args, env=None):
    cmd = [
        CTL,
        '--all-in-one',
        '--state-dir',
        str(state),
        '--dest',
        str(state / 'dest'),
        *args,
    ]
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, **(env or {})),
    )


def test_failing_install_names_node_plugin_phase_code_and_tail(tmp_path):
    good = gitrepos.make_repo(
        str(tmp_path / 'good'), gitrepos.tracing_plugin('good')
    )
    bad = gitrepos.make_repo(
        str(tmp_path / 'bad'),
        {
            'devstack/plugin.sh': 'if [[ $2 == install ]]; then\n'
            '    echo "compiling the thing"\n'
            '    echo "fatal: out of widgets" >&2\n'
            '    exit 3\nfi\n'
        },
    )
    conf = tmp_path / 'local.conf'
    conf.write_text(
        f'[[local|localrc]]\nenable_plugin good {good}\n'
        f'enable_plugin bad {bad}\n'
    )
    trace = tmp_path / 'trace'
    proc = ctl(
        tmp_path / 'state', 'stack', str(conf), env={'TEST_TRACE': str(trace)}
    )
    assert proc.returncode == 1, proc.stderr
    host = proc.stderr  # the host name is this machine's
    assert 'plugin bad failed in stack install: exit status 3' in proc.stderr
    assert 'fatal: out of widgets' in proc.stderr
    assert 'node ' in host
    # The table still shows what ran: good ok in install, bad FAILED (3).
    lines = proc.stdout.splitlines()
    bad_row = next(ln for ln in lines if '| bad ' in ln)
    assert 'FAILED (3)' in bad_row
    assert bad_row.count('| -') == 3  # post-config, extra, test-config
    phases = [t[2] for t in gitrepos.read_trace(trace) if t[1] == 'plugin.sh']
    assert 'stack post-config' not in phases

    runs = ctl(tmp_path / 'state', 'run', 'list', '-f', 'json')
    assert runs.returncode == 0, runs.stderr
    [run] = json.loads(runs.stdout)
    assert run['State'] == 'failed'


def test_bad_local_conf_is_one_clear_line(tmp_path):
    conf = tmp_path / 'local.conf'
    conf.write_text('[[local|localrc]]\nFOO=1\n[[post-config | $X]]\n')
    proc = ctl(tmp_path / 'state', 'stack', str(conf))
    assert proc.returncode == 1
    assert f'{conf}:3: malformed meta-section header' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_missing_local_conf(tmp_path):
    proc = ctl(tmp_path / 'state', 'stack', str(tmp_path / 'nope.conf'))
    assert proc.returncode == 1
    assert 'nope.conf: cannot read: No such file or directory' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_plan_shows_order_and_reasons(tmp_path):
    base = gitrepos.make_repo(
        str(tmp_path / 'base'), gitrepos.tracing_plugin('base')
    )
    app = gitrepos.make_repo(
        str(tmp_path / 'app'),
        gitrepos.tracing_plugin('app', requires=['base']),
    )
    conf = tmp_path / 'local.conf'
    conf.write_text(
        f'[[local|localrc]]\nenable_plugin app {app}\n'
        f'enable_plugin base {base}\n'
    )
    proc = ctl(tmp_path / 'state', 'plan', str(conf), '-f', 'json')
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    # The order once (it is the same in every phase), not once per phase.
    assert [(r['#'], r['Plugin']) for r in rows] == [(1, 'base'), (2, 'app')]
    assert rows[0]['Moved Because'].startswith(
        'base moved before app: app requires base'
    )
    assert rows[1]['Moved Because'] == ''
    assert rows[0]['URL'] == str(base) and len(rows[0]['Commit']) == 40
    assert 'moved: base moved before app' in proc.stderr
    assert 'phases: pre-install, install, post-config' in proc.stderr


def test_demo_stacks_the_examples(tmp_path):
    """The README's first command, on a fresh state directory."""
    proc = subprocess.run(
        [os.path.join(TOP, 'tools', 'demo.sh')],
        cwd=TOP,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PLUGINSD_DEMO_STATE=str(tmp_path)),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = proc.stdout
    assert '| base-service ' in table and '| app-service ' in table
    assert table.index('| base-service ') < table.index('| app-service ')
    app_conf = tmp_path / 'dest' / 'data' / 'app-service' / 'app.conf'
    text = app_conf.read_text()
    assert 'base_url = http://' in text and ':9111' in text
    assert 'workers = 4' in text  # [[post-config]] beat the plugin's 2
    # It says what it left running and the command that stops it.
    left = table.split('== left running\n')[1].splitlines()
    assert left[0].startswith('base-api (pid ')
    pid = int(left[0].split('(pid ')[1].split(',')[0])
    assert os.path.exists(f'/proc/{pid}')
    assert left[1] == "== stop it with (the plugins' unstack phase):"
    stop = subprocess.run(
        ['bash', '-c', left[2]],
        cwd=TOP,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert stop.returncode == 0, stop.stderr
    assert 'run ' in stop.stderr and ' completed' in stop.stderr
    deadline = time.monotonic() + 10
    while os.path.exists(f'/proc/{pid}') and 'Z' not in _state(pid):
        assert time.monotonic() < deadline, 'base-api still runs'
        time.sleep(0.1)


def _state(pid):
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rpartition(')')[2].split()[0]
    except OSError:
        return 'gone'
