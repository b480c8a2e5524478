"""DevStack behaviours pluginsd used to get wrong, checked through a run.

Each test runs real plugin repositories through the all-in-one daemon and
agent and checks what the plugins saw. Rule numbers refer to
docs/plugin-contract.md.
"""

import os
import subprocess
import sys

import pytest

from pluginsd import localconf
from pluginsd.runner import packages
from tests import gitrepos
from tests.functional import aio


@pytest.fixture
def env(tmp_path, monkeypatch):
    trace = tmp_path / 'trace'
    monkeypatch.setenv('TEST_TRACE', str(trace))
    monkeypatch.setenv('TEST_DIR', str(tmp_path))
    harness = aio.AllInOne(tmp_path / 'state')
    harness.tmp = tmp_path
    harness.trace = lambda: gitrepos.read_trace(trace)
    yield harness
    harness.close()


def repo(env, name, **kwargs):
    files = gitrepos.tracing_plugin(
        name, **{k: v for k, v in kwargs.items() if k != 'extra_files'}
    )
    files.update(kwargs.get('extra_files', {}))
    return gitrepos.make_repo(str(env.tmp / 'repos' / name), files)


def localrc(*lines, extra=''):
    body = '\n'.join(lines)
    return f'[[local|localrc]]\n{body}\n{extra}'


SEEN = (
    'echo "$plugin|seen|$1|$SERVICE_HOST|$ENABLED_SERVICES|$HOST_IP"'
    ' >> "$TEST_TRACE"'
)


def test_unstack_and_clean_see_what_stack_saved(env):
    """6.3, 9.9: the values stack used are restored in unstack and clean."""
    (env.tmp / 'host').write_text('10.0.0.1')
    (env.tmp / 'services').write_text('svc-a,svc-b')
    a = repo(
        env, 'alpha', settings='enable_service from-settings', plugin=SEEN
    )
    conf = localrc(
        'SERVICE_HOST=$(<$TEST_DIR/host)',
        'HOST_IP=$(<$TEST_DIR/host)',
        'ENABLED_SERVICES=$(<$TEST_DIR/services)',
        f'enable_plugin alpha {a}',
    )
    assert env.run('stack', conf)['state'] == 'completed'
    # What localrc computes changes; unstack and clean must not care.
    (env.tmp / 'host').write_text('10.0.0.2')
    (env.tmp / 'services').write_text('other')
    for mode in ('unstack', 'clean'):
        view = env.run(mode, conf)
        assert view['state'] == 'completed', view['error']
    seen = [t[2:] for t in env.trace() if t[1] == 'seen']
    stacked = ['10.0.0.1', 'svc-a,svc-b,from-settings', '10.0.0.1']
    assert seen[0] == ['stack', *stacked]
    assert seen[5:] == [
        ['unstack', *stacked],
        ['unstack', *stacked],
        ['clean', *stacked],
    ]


def test_failing_last_line_of_settings_does_not_stop_unstack(env):
    """7.4: unstack and clean run every plugin whatever settings return."""
    marker = env.tmp / 'unstacking'
    a = repo(env, 'alpha', settings=f'[[ ! -e {marker} ]]')
    b = repo(env, 'beta')
    conf = localrc(f'enable_plugin alpha {a}', f'enable_plugin beta {b}')
    assert env.run('stack', conf)['state'] == 'completed'
    marker.write_text('')
    for mode in ('unstack', 'clean'):
        view = env.run(mode, conf)
        assert view['state'] == 'completed', view['error']
        ran = [r['plugin'] for r in view['results'] if r['status'] == 'ok']
        assert (
            ran.count('alpha')
            == ran.count('beta')
            == (1 if mode == 'unstack' else 2)
        )
    # stack, which runs with errexit, still refuses such a settings file.
    view = env.run('stack', conf)
    assert view['state'] == 'failed'
    assert 'alpha/devstack/settings' in view['error']


def test_declare_and_typeset_in_localrc_are_kept(env):
    """11.2, 4.1: localrc is sourced at the top level, as stackrc does."""
    plugin = (
        '[[ $1 == stack && $2 == install ]] && echo "alpha|vars|'
        '${MAP[b]}|$TYPED|$NUM|$PLAIN|${LOCALVAR-unset}|$(declare -p MAP)"'
        ' >> "$TEST_TRACE"; true'
    )
    a = repo(env, 'alpha', plugin=plugin)
    view = env.run(
        'stack',
        localrc(
            'declare -A MAP=([a]=1 [b]=two)',
            'typeset TYPED=typed',
            'declare -i NUM=2+3',
            'declare PLAIN=plain',
            'local LOCALVAR=x',
            f'enable_plugin alpha {a}',
        ),
    )
    assert view['state'] == 'completed', view['error']
    [vars_] = [t for t in env.trace() if t[1] == 'vars']
    assert vars_[2:7] == ['two', 'typed', '5', 'plain', 'unset']
    assert vars_[7].startswith('declare -A MAP=')
    # bash's own message for the stray `local`, with local.conf's line.
    logs = env.tmp / 'state' / 'logs'
    session = next(logs.glob('*/session-pre-install.log')).read_text()
    assert 'line 6: local: can only be used in a function' in session


@pytest.mark.parametrize('mode', ['unstack', 'clean'])
def test_exit_n_in_unstack_and_clean_is_reported_with_n(env, mode):
    """6.4: `exit N` ends the script with N; the result says N."""
    a = repo(env, 'alpha', plugin='[[ $1 == stack ]] || exit 7')
    b = repo(env, 'beta')
    conf = localrc(f'enable_plugin alpha {a}', f'enable_plugin beta {b}')
    assert env.run('stack', conf)['state'] == 'completed'
    view = env.run(mode, conf)
    [alpha] = aio.results_by(view, plugin='alpha', phase='unstack')
    assert (alpha['status'], alpha['exit_code']) == ('failed', 7)
    [node] = aio.results_by(view, plugin='', phase='unstack')
    assert (node['status'], node['exit_code']) == ('failed', 7)
    assert 'plugin alpha' in view['error'] and 'exit status 7' in view['error']
    assert view['state'] == 'failed'
    # Like unstack.sh, nothing after the exit ran in that process.
    assert ('beta', 'unstack') not in [
        (t[0], t[2]) for t in env.trace() if t[1] == 'plugin.sh'
    ]


def test_localrc_syntax_error_fails_before_any_phase(env):
    """4: bash's message and local.conf's line, not a completed empty run."""
    a = repo(env, 'alpha')
    view = env.run(
        'stack',
        localrc(f'enable_plugin alpha {a}', 'if [[ -n $X ]]; then', 'A=1'),
    )
    assert view['state'] == 'failed'
    assert view['error'].startswith('local.conf:5: bash: syntax error')
    assert 'unexpected end of file' in view['error']
    assert env.trace() == [] and view['results'] == []


@pytest.mark.parametrize(
    'body,expect',
    [
        (
            'no_such_command_xyz --flag',
            'settings:4: `no_such_command_xyz --flag` failed with status '
            '127: no_such_command_xyz: command not found',
        ),
        (
            'case x in x) echo ;; esac )',
            "settings:4: bash: syntax error near unexpected token `)'",
        ),
    ],
    ids=['fails', 'syntax'],
)
def test_settings_error_names_file_and_line(env, body, expect):
    """4: the real settings file and line, quoting bash."""
    a = repo(env, 'alpha', settings=body)
    view = env.run('stack', localrc(f'enable_plugin alpha {a}'))
    assert view['state'] == 'failed'
    path = env.tmp / 'state' / 'dest' / 'alpha' / 'devstack'
    assert view['error'].startswith(f'plugin alpha: {path}/{expect}')
    assert 'pop_var_context' not in view['error']
    assert env.trace() == []


def packages_log(view):
    [log] = {
        os.path.join(os.path.dirname(r['log_path']), 'packages.log')
        for r in aio.results_by(view, phase='pre-install')
        if r['log_path'] and r['plugin']
    }
    return open(log).read()


@pytest.mark.skipif(
    packages.os_facts()[1] != 'deb', reason='bindep case written for dpkg'
)
def test_bindep_missing_packages_installed_with_the_lists(env):
    """10.4: bindep.txt's missing packages (default profile), as bindep -b."""
    a = repo(
        env,
        'alpha',
        extra_files={
            'devstack/files/debs/alpha': 'from-debs-list\n',
            'devstack/files/bindep.txt': 'bash\n'
            'pluginsd-bindep-missing [platform:dpkg]\n'
            'pluginsd-rpm-only [platform:rpm]\n'
            'pluginsd-test-profile [test]\n',
        },
    )
    view = env.run('stack', localrc(f'enable_plugin alpha {a}'))
    assert view['state'] == 'completed', view['error']
    assert packages_log(view) == (
        'pluginsd: would install: from-debs-list pluginsd-bindep-missing\n'
    )


def test_rpms_suse_lists_on_suse(env, monkeypatch):
    """10.1: files/rpms-suse/<name> on SUSE, as DevStack read it."""
    release = env.tmp / 'os-release'
    release.write_text(
        'NAME="openSUSE Leap"\nID="opensuse-leap"\nID_LIKE="suse opensuse"\n'
        'VERSION_ID="15.5"\n'
    )
    monkeypatch.setenv('PLUGINSD_OS_RELEASE_FILE', str(release))
    env.close()
    harness = aio.AllInOne(env.tmp / 'state2')
    try:
        a = repo(
            env,
            'alpha',
            plugin='echo "alpha|distro|$DISTRO|$(is_suse && echo suse)" '
            '>> "$TEST_TRACE"',
            extra_files={
                'devstack/files/debs/alpha': 'deb-pkg\n',
                'devstack/files/rpms/alpha': 'rpm-pkg\n',
                'devstack/files/rpms-suse/alpha': 'suse-pkg\n'
                'leap-only # dist:opensuse-15.5\n'
                'not-here # dist:opensuse-15.6\n',
            },
        )
        view = harness.run('stack', localrc(f'enable_plugin alpha {a}'))
    finally:
        harness.close()
        env.embedded.stop = lambda: None
    assert view['state'] == 'completed', view['error']
    assert (
        packages_log(view) == 'pluginsd: would install: suse-pkg leap-only\n'
    )
    # The bash side agrees on the distribution (PLUGINSD_OS_RELEASE_FILE).
    assert ['alpha', 'distro', 'opensuse-15.5', 'suse'] in env.trace()


def test_localrc_file_beside_local_conf_is_used(env):
    """11.2: a localrc file beside local.conf replaces the blocks."""
    a, b = repo(env, 'alpha'), repo(env, 'beta')
    conf_dir = env.tmp / 'conf'
    conf_dir.mkdir()
    path = conf_dir / 'local.conf'
    path.write_text(localrc(f'enable_plugin alpha {a}'))
    legacy = conf_dir / 'localrc'
    legacy.write_text(f'FROM_FILE=yes\nenable_plugin beta {b}\n')
    value = localconf.read_input(str(path))
    run = env.api.start_run({}, 'stack', {'*': value}, str(path))
    view = env.wait(run['id'])
    assert view['state'] == 'completed', view['error']
    assert {t[0] for t in env.trace() if t[1] == 'plugin.sh'} == {'beta'}
    # pluginsctl sends it too, and its errors name that file and line.
    legacy.write_text(f'enable_plugin beta {b}\nif true; then\n')
    ctl = os.path.join(os.path.dirname(sys.executable), 'pluginsctl')
    state = env.tmp / 'ctl-state'
    proc = subprocess.run(
        [
            ctl,
            '--all-in-one',
            '--state-dir',
            str(state),
            '--dest',
            str(state / 'dest'),
            'plan',
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f'{path}: using {legacy} instead of its [[local|localrc]] blocks, '
        'as DevStack does',
        f'{legacy}:3: bash: syntax error: unexpected end of file',
    ]
