"""The DevStack plugin contract, checked on real bash, git and plugin.sh.

Each test builds real plugin repositories in a temporary directory, runs
them through the all-in-one daemon and agent, and reads the trace the
plugins wrote. Rule numbers refer to docs/plugin-contract.md.
"""

import os
import textwrap

import pytest

from tests import gitrepos
from tests.functional import aio

STACK = ['pre-install', 'install', 'post-config', 'extra', 'test-config']


@pytest.fixture
def env(tmp_path, monkeypatch):
    trace = tmp_path / 'trace'
    monkeypatch.setenv('TEST_TRACE', str(trace))
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


def calls(trace, kind='plugin.sh'):
    return [(t[0], t[2]) for t in trace if len(t) > 2 and t[1] == kind]


def test_phases_run_in_declared_order_with_two_arguments(env):
    """5.1, 5.2, 5.3: every stack phase, declared order, `stack <phase>`."""
    a, b = repo(env, 'alpha'), repo(env, 'beta')
    view = env.run(
        'stack',
        localrc(f'enable_plugin beta {b}', f'enable_plugin alpha file://{a}'),
    )
    assert view['state'] == 'completed', view['error']
    trace = env.trace()
    assert calls(trace) == [
        (p, f'stack {ph}') for ph in STACK for p in ('beta', 'alpha')
    ]
    assert {t[3] for t in trace if t[1] == 'plugin.sh'} == {'2'}
    # 6.2: DevStack's loop variables are visible to plugin.sh
    assert trace[-1][5] == 'plugin=alpha mode=stack phase=test-config'
    assert [r['status'] for r in aio.results_by(view, plugin='alpha')] == [
        'ok'
    ] * 5


def test_stack_shell_options(env):
    """7.1: errexit and xtrace in stack; 7.4: no errexit in unstack."""
    a = repo(env, 'alpha')
    conf = localrc(f'enable_plugin alpha {a}')
    env.run('stack', conf)
    env.run('unstack', conf)
    flags = {t[2]: t[4] for t in env.trace() if t[1] == 'plugin.sh'}
    assert 'e' in flags['stack install'] and 'x' in flags['stack install']
    assert 'e' not in flags['unstack'] and 'x' in flags['unstack']
    assert 'u' not in flags['stack install']


def test_settings_loaded_before_any_phase_and_override_defaults_first(env):
    """4.1, 4.2, 4.3: all override-defaults, then all settings, then phases."""
    a = repo(
        env,
        'alpha',
        override_defaults='SHARED=${SHARED:-from-alpha-od}',
        settings='SHARED=${SHARED:-from-alpha-settings}\n'
        'SEEN_BETA_IN_ALPHA=${BETA_SETTING:-unset}',
        plugin='[[ $1 == stack && $2 == install ]] && '
        'echo "alpha|vars||$SHARED|$SEEN_BETA_IN_ALPHA|$BETA_SETTING"'
        ' >> "$TEST_TRACE"; true',
    )
    b = repo(
        env,
        'beta',
        settings='SEEN_ALPHA_IN_BETA=$ALPHA_SETTING',
        plugin='[[ $1 == stack && $2 == install ]] && '
        'echo "beta|vars||$SEEN_ALPHA_IN_BETA" >> "$TEST_TRACE"; true',
    )
    view = env.run(
        'stack', localrc(f'enable_plugin alpha {a}', f'enable_plugin beta {b}')
    )
    assert view['state'] == 'completed', view['error']
    trace = env.trace()
    kinds = [(t[0], t[1]) for t in trace][:3]
    assert kinds == [
        ('alpha', 'override-defaults'),
        ('alpha', 'settings'),
        ('beta', 'settings'),
    ]
    assert trace[1][3] == '0'  # settings sourced with no arguments
    alpha_vars = next(t for t in trace if t[:2] == ['alpha', 'vars'])
    # override-defaults beats settings; a later plugin's settings are unset
    # while an earlier one's settings run, but set by the first phase.
    assert alpha_vars[3:] == ['from-alpha-od', 'unset', 'from-beta-settings']
    beta_vars = next(t for t in trace if t[:2] == ['beta', 'vars'])
    assert beta_vars[3] == 'from-alpha-settings'


def test_state_is_shared_across_plugins_and_phases(env):
    """6.1: variables, functions, counters and cwd persist in one shell."""
    a = repo(
        env,
        'alpha',
        plugin=textwrap.dedent('''
        COUNT=$(( ${COUNT:-0} + 1 ))
        function alpha_helper { echo "helped-by-alpha"; }
        if [[ $1 == stack && $2 == install ]]; then
            ALPHA_INSTALLED=yes; cd /tmp
        fi
        true'''),
    )
    b = repo(
        env,
        'beta',
        plugin=textwrap.dedent('''
        if [[ $1 == stack && $2 == test-config ]]; then
            helper=$(alpha_helper)
            seen="$COUNT|$ALPHA_INSTALLED|$helper|$PWD|$USER_VALUE"
            echo "beta|state||$seen" >> "$TEST_TRACE"
        fi
        true'''),
    )
    view = env.run(
        'stack',
        localrc(
            'USER_VALUE=from-localrc',
            f'enable_plugin alpha {a}',
            f'enable_plugin beta {b}',
        ),
    )
    assert view['state'] == 'completed', view['error']
    state = next(t for t in env.trace() if t[1] == 'state')
    assert state[3:] == ['5', 'yes', 'helped-by-alpha', '/tmp', 'from-localrc']


def test_failure_in_install_stops_the_run(env):
    """7.2: the first failure ends everything after it, with its status."""
    a = repo(
        env,
        'alpha',
        plugin='[[ $2 == install ]] && echo "alpha breaks" && false\ntrue',
    )
    b = repo(env, 'beta')
    view = env.run(
        'stack', localrc(f'enable_plugin alpha {a}', f'enable_plugin beta {b}')
    )
    assert view['state'] == 'failed'
    assert (
        'node node-1: plugin alpha failed in stack install: exit status 1'
        in view['error']
    )
    assert 'alpha breaks' in view['error']  # the output tail
    assert calls(env.trace()) == [
        ('alpha', 'stack pre-install'),
        ('beta', 'stack pre-install'),
        ('alpha', 'stack install'),
    ]
    [failed] = aio.results_by(view, plugin='alpha', phase='install')
    assert (failed['status'], failed['exit_code']) == ('failed', 1)
    assert os.path.isfile(failed['log_path'])
    assert not aio.results_by(view, plugin='beta', phase='install')


def test_nonzero_final_status_of_the_file_is_a_failure(env):
    """7.3: `[[ $1 == clean ]] && cleanup` as the last line fails stack."""
    a = repo(env, 'alpha', plugin='[[ "$1" == clean ]] && echo cleaning')
    view = env.run('stack', localrc(f'enable_plugin alpha {a}'))
    assert view['state'] == 'failed'
    assert 'plugin alpha failed in stack pre-install' in view['error']


def test_unstack_runs_every_plugin_past_failures(env):
    """7.4: unstack has no errexit; failures are recorded, all plugins run."""
    a = repo(
        env,
        'alpha',
        plugin='[[ $1 == unstack ]] && '
        '{ false; echo after-false >> "$TEST_TRACE"; }\n'
        '[[ $1 != unstack ]]',
    )
    b = repo(env, 'beta')
    conf = localrc(f'enable_plugin alpha {a}', f'enable_plugin beta {b}')
    assert env.run('stack', conf)['state'] == 'completed'
    view = env.run('unstack', conf)
    assert view['state'] == 'completed'
    assert calls(env.trace())[-2:] == [
        ('alpha', 'unstack'),
        ('beta', 'unstack'),
    ]
    assert ['after-false'] in env.trace()
    [alpha] = aio.results_by(view, plugin='alpha', phase='unstack')
    assert (alpha['status'], alpha['exit_code']) == ('failed', 1)
    [beta] = aio.results_by(view, plugin='beta', phase='unstack')
    assert beta['status'] == 'ok'


def test_clean_runs_unstack_then_clean_in_fresh_shells(env):
    """6.3, 5.2: clean.sh runs unstack.sh first; one argument each."""
    a = repo(
        env,
        'alpha',
        plugin='[[ $1 == stack ]] && STACK_ONLY=set\n'
        'echo "alpha|fresh|$1|${STACK_ONLY:-unset}" >> "$TEST_TRACE"',
    )
    conf = localrc(f'enable_plugin alpha {a}')
    env.run('stack', conf)
    view = env.run('clean', conf)
    assert view['state'] == 'completed', view['error']
    assert calls(env.trace())[-2:] == [
        ('alpha', 'unstack'),
        ('alpha', 'clean'),
    ]
    fresh = [t for t in env.trace() if t[1] == 'fresh']
    assert fresh[-2:] == [
        ['alpha', 'fresh', 'unstack', 'unset'],
        ['alpha', 'fresh', 'clean', 'unset'],
    ]


def test_meta_sections_merge_at_devstack_points(env):
    """5.4, 11.4, 11.6: post-config after the plugins, extra before, etc."""
    conf_file = env.tmp / 'etc' / 'alpha.conf'
    plugin = textwrap.dedent('''
        if [[ $1 == stack ]]; then
            opt=$(iniget $ALPHA_CONF DEFAULT opt)
            extra=$(iniget $ALPHA_CONF DEFAULT extra_opt)
            echo "alpha|seen|$2|$opt|$extra" >> "$TEST_TRACE"
            if [[ $2 == post-config ]]; then
                iniset $ALPHA_CONF DEFAULT opt from-plugin
            fi
        fi
        true''')
    a = repo(env, 'alpha', settings=f'ALPHA_CONF={conf_file}', plugin=plugin)
    text = localrc(
        f'enable_plugin alpha {a}',
        extra=textwrap.dedent('''
        [[post-config|$ALPHA_CONF]]
        [DEFAULT]
        opt = from-user
        multi = one
        [[extra|$ALPHA_CONF]]
        [DEFAULT]
        extra_opt = from-extra
        [[post-config|$ALPHA_CONF]]
        [DEFAULT]
        multi = two
        '''),
    )
    view = env.run('stack', text)
    assert view['state'] == 'completed', view['error']
    seen = {t[2]: t[3:] for t in env.trace() if t[1] == 'seen'}
    assert seen['post-config'] == ['', '']  # not merged yet
    assert seen['extra'] == [
        'from-user',
        'from-extra',
    ]  # user wins, extra merged
    content = conf_file.read_text()
    assert 'multi = one\nmulti = two' in content  # repeated key: multi-line


def test_enable_plugin_defaults_to_master_and_dest_name(env):
    """1.2, 1.3: ref defaults to master; checkout in $DEST/<name>."""
    a = repo(env, 'alpha')
    dest = env.tmp / 'mydest'
    view = env.run(
        'stack', localrc(f'DEST={dest}', f'enable_plugin custom-name {a}')
    )
    assert view['state'] == 'completed', view['error']
    assert (dest / 'custom-name' / 'devstack' / 'plugin.sh').is_file()
    plan = view['plans']['*']['plugins'][0]
    assert plan['ref'] == 'master'
    assert plan['sha'] == gitrepos.git(a, 'rev-parse', 'HEAD')


def test_dest_is_read_when_enable_plugin_runs(env):
    """1.4: moving DEST after an enable_plugin line leaves that plugin put."""
    a, b = repo(env, 'alpha'), repo(env, 'beta')
    view = env.run(
        'stack',
        localrc(
            f'DEST={env.tmp}/first',
            f'enable_plugin alpha {a}',
            f'DEST={env.tmp}/second',
            f'enable_plugin beta {b}',
        ),
    )
    assert view['state'] == 'completed', view['error']
    assert (env.tmp / 'first' / 'alpha' / '.git').is_dir()
    assert (env.tmp / 'second' / 'beta' / '.git').is_dir()


def test_main_only_repository_fails_without_ref(env):
    """1.2: no ref means master; a repo with only main fails before phases."""
    path = gitrepos.make_repo(
        str(env.tmp / 'repos' / 'mainonly'),
        gitrepos.tracing_plugin('mainonly'),
        branch='main',
    )
    view = env.run('stack', localrc(f'enable_plugin mainonly {path}'))
    assert view['state'] == 'failed'
    assert 'plugin mainonly' in view['error'] and 'master' in view['error']
    assert env.trace() == []


def test_duplicate_enable_plugin_is_fatal(env):
    """1.5: the second line's name, URL and ref, before anything is cloned."""
    a = repo(env, 'alpha')
    view = env.run(
        'stack',
        localrc(
            f'enable_plugin alpha {a}', f'enable_plugin alpha {a}-other stable'
        ),
    )
    assert view['state'] == 'failed'
    assert 'alpha' in view['error'] and f'{a}-other' in view['error']
    assert 'stable' in view['error'] and 'local.conf:3' in view['error']
    assert not (env.tmp / 'state' / 'dest' / 'alpha').exists()


def test_existing_checkout_is_reused_unless_reclone(env):
    """2.3, 2.5, 2.6: no update unless RECLONE; RECLONE follows the branch."""
    a = repo(env, 'alpha')
    first = gitrepos.git(a, 'rev-parse', 'HEAD')
    conf = localrc(f'enable_plugin alpha {a}')
    assert env.run('stack', conf)['state'] == 'completed'
    second = gitrepos.commit(a, {'devstack/new-file': 'x\n'})
    view = env.run('stack', conf)
    assert view['plans']['*']['plugins'][0]['sha'] == first
    view = env.run('stack', localrc('RECLONE=yes', f'enable_plugin alpha {a}'))
    assert view['state'] == 'completed', view['error']
    assert view['plans']['*']['plugins'][0]['sha'] == second


@pytest.mark.parametrize(
    'setting,word',
    [('ERROR_ON_CLONE=True', 'ERROR_ON_CLONE'), ('OFFLINE=True', 'OFFLINE')],
)
def test_clone_forbidden(env, setting, word):
    """2.8, 2.9: an absent checkout is an error naming the setting."""
    a = repo(env, 'alpha')
    view = env.run('stack', localrc(setting, f'enable_plugin alpha {a}'))
    assert view['state'] == 'failed'
    assert word in view['error'] and 'plugin alpha' in view['error']
    assert env.trace() == []


@pytest.mark.parametrize('case', ['bad-url', 'missing-ref', 'no-devstack'])
def test_fetch_errors_leave_nothing_behind(env, case):
    """2.4 (fixed): a failed clone leaves no directory for a later run."""
    a = repo(env, 'alpha')
    if case == 'bad-url':
        line, expect = (
            f'enable_plugin alpha {env.tmp}/no-such-repo',
            'does not',
        )
    elif case == 'missing-ref':
        line, expect = f'enable_plugin alpha {a} no-such-ref', 'no-such-ref'
    else:
        plain = gitrepos.make_repo(
            str(env.tmp / 'repos' / 'plain'), {'README': 'x\n'}
        )
        line, expect = f'enable_plugin alpha {plain}', 'no devstack/ folder'
    view = env.run('stack', localrc(line))
    assert view['state'] == 'failed'
    assert 'plugin alpha' in view['error'] and expect in view['error']
    dest = env.tmp / 'state' / 'dest'
    assert not (dest / 'alpha').exists()
    assert [p.name for p in dest.iterdir()] == [] if dest.exists() else True
    assert env.trace() == []


def test_plugin_requires_reorders_and_reports_why(env):
    """12.3 done right: stable topological order, reasons in the plan."""
    c = repo(env, 'core')
    w = repo(env, 'web', requires=['core'])
    d = repo(env, 'db', requires=['core'])
    app = repo(env, 'app', requires=['web', 'db'])
    view = env.run(
        'stack',
        localrc(
            *(
                f'enable_plugin {n} {p}'
                for n, p in [('app', app), ('web', w), ('db', d), ('core', c)]
            )
        ),
    )
    assert view['state'] == 'completed', view['error']
    order = ['core', 'web', 'db', 'app']
    assert view['plans']['*']['order'] == order
    assert calls(env.trace())[:4] == [(n, 'stack pre-install') for n in order]
    reasons = view['plans']['*']['reasons']
    assert any(
        r.startswith('web moved before app: app requires web') for r in reasons
    )
    assert any(
        r.startswith('core moved before app: app requires web')
        and 'web requires core' in r
        and '/web/devstack/settings:2' in r
        for r in reasons
    )


def test_dependency_cycle_and_unknown_dependency(env):
    """12.4, 12.5: errors that name the plugins and settings files."""
    foo = repo(env, 'foo', requires=['bar'])
    bar = repo(env, 'bar', requires=['foo'])
    view = env.run(
        'stack',
        localrc(f'enable_plugin foo {foo}', f'enable_plugin bar {bar}'),
    )
    assert view['state'] == 'failed'
    assert 'dependency cycle: foo -> bar -> foo' in view['error']
    assert 'foo/devstack/settings:2' in view['error']
    lone = repo(env, 'lone', requires=['ghost'])
    view = env.run('stack', localrc(f'enable_plugin lone {lone}'))
    assert view['state'] == 'failed'
    assert (
        "plugin lone requires 'ghost', which is not enabled" in view['error']
    )
    assert 'lone/devstack/settings:2' in view['error']


def test_disabled_service_forced_back_is_fatal(env):
    """9.3: stack dies naming a disabled service put back in the list."""
    a = repo(env, 'alpha', settings='ENABLED_SERVICES+=,forbidden')
    view = env.run(
        'stack',
        localrc('disable_service forbidden', f'enable_plugin alpha {a}'),
    )
    assert view['state'] == 'failed'
    assert 'forbidden' in (
        view['error'] + ''.join(r['tail'] for r in view['results'])
    )


def test_exit_in_a_plugin_ends_the_run(env):
    """6.4: `exit 0` ends the whole shell; later plugins and phases don't."""
    a = repo(env, 'alpha', plugin='[[ $2 == install ]] && exit 0\ntrue')
    b = repo(env, 'beta')
    view = env.run(
        'stack', localrc(f'enable_plugin alpha {a}', f'enable_plugin beta {b}')
    )
    assert view['state'] == 'failed'
    assert 'called exit' in view['error']
    assert ('beta', 'stack install') not in calls(env.trace())


def test_extras_d_scripts_run_first_in_order(env, tmp_path):
    """8.1: NN-*.sh hooks, sorted, before plugins, with every mode."""
    extras = tmp_path / 'extras.d'
    extras.mkdir()
    for name in ('50-second.sh', '10-first.sh', 'README'):
        (extras / name).write_text(
            f'echo "{name}|extras|$*|$#" >> "$TEST_TRACE"\n'
        )
    env.close()
    harness = aio.AllInOne(
        tmp_path / 'state2', **{'runner.extras_dir': str(extras)}
    )
    try:
        a = repo(env, 'alpha')
        view = harness.run('stack', localrc(f'enable_plugin alpha {a}'))
        assert view['state'] == 'completed', view['error']
    finally:
        harness.close()
        env.embedded.stop = lambda: None  # already closed above
    trace = env.trace()
    first = [(t[0], t[2]) for t in trace][:6]
    assert first[:4] == [
        ('10-first.sh', 'override_defaults'),
        ('50-second.sh', 'override_defaults'),
        ('10-first.sh', 'source'),
        ('50-second.sh', 'source'),
    ]
    pre = [(t[0], t[1]) for t in trace if 'pre-install' in t[2]]
    assert pre == [
        ('10-first.sh', 'extras'),
        ('50-second.sh', 'extras'),
        ('alpha', 'plugin.sh'),
    ]


def test_deadline_kills_the_process_group(env, tmp_path):
    """A phase past its deadline is killed with everything it started."""
    env.close()
    env.embedded.stop = lambda: None
    harness = aio.AllInOne(tmp_path / 'state2', **{'daemon.phase_timeout': 2})
    pidfile = tmp_path / 'child.pid'
    try:
        a = repo(
            env,
            'alpha',
            plugin=f'[[ $2 == install ]] && '
            f'{{ sleep 300 & echo $! > {pidfile}; wait; }}\ntrue',
        )
        view = harness.run(
            'stack', localrc(f'enable_plugin alpha {a}'), timeout=60
        )
    finally:
        harness.close()
    assert view['state'] == 'failed'
    assert 'deadline' in view['error']
    [alpha] = aio.results_by(view, plugin='alpha', phase='install')
    assert alpha['status'] == 'timeout'
    child = int(pidfile.read_text())
    assert (
        not os.path.exists(f'/proc/{child}')
        or open(f'/proc/{child}/stat').read().split()[2] == 'Z'
    )


def test_hypervisor_plugin_functions_run_at_devstack_points(env):
    """Seed 003: hypervisor-$VIRT_DRIVER on n-cpu nodes, at DevStack's
    points.
    """
    functions = ''.join(
        f'function {f}_nova_hypervisor {{\n'
        f'  echo "hv|{f}|$VIRT_DRIVER" >> "$TEST_TRACE"\n}}\n'
        for f in ('install', 'configure', 'start', 'stop', 'cleanup')
    )
    a = repo(
        env,
        'alpha',
        settings='enable_service n-cpu',
        extra_files={'devstack/lib/nova_plugins/hypervisor-traced': functions},
    )
    conf = localrc('VIRT_DRIVER=traced', f'enable_plugin alpha {a}')
    for mode in ('stack', 'unstack', 'clean'):
        view = env.run(mode, conf)
        assert view['state'] == 'completed', view['error']
    seq = [
        f'{t[0]}:{t[1]}:{t[2]}' if t[0] == 'hv' else f'{t[0]}:{t[2]}'
        for t in env.trace()
        if t[0] == 'hv' or t[1] == 'plugin.sh'
    ]
    assert seq == [
        'alpha:stack pre-install',
        'hv:install:traced',
        'alpha:stack install',
        'hv:configure:traced',
        'alpha:stack post-config',
        'hv:start:traced',
        'alpha:stack extra',
        'alpha:stack test-config',
        'alpha:unstack',
        'hv:stop:traced',  # unstack of clean.sh
        'alpha:unstack',
        'hv:stop:traced',
        'alpha:clean',
        'hv:cleanup:traced',
    ]
    [result] = aio.results_by(view, plugin='hypervisor-traced', phase='clean')
    assert result['status'] == 'ok'


def test_fake_hypervisor_ships_with_pluginsd_and_needs_n_cpu(env):
    nova_conf = env.tmp / 'nova.conf'
    a = repo(env, 'alpha', settings=f'NOVA_CONF={nova_conf}')
    view = env.run(
        'stack', localrc('VIRT_DRIVER=fake', f'enable_plugin alpha {a}')
    )
    assert view['state'] == 'completed', view['error']
    assert not aio.results_by(view, plugin='hypervisor-fake')  # no n-cpu
    view = env.run(
        'stack',
        localrc(
            'VIRT_DRIVER=fake',
            'enable_service n-cpu',
            f'enable_plugin alpha {a}',
        ),
    )
    assert view['state'] == 'completed', view['error']
    assert [
        r['phase'] for r in aio.results_by(view, plugin='hypervisor-fake')
    ] == ['install', 'post-config', 'extra']
    assert 'compute_driver = fake.FakeDriver' in nova_conf.read_text()


def test_unstack_and_clean_never_fetch(env):
    """5.6: a plugin missing from DEST is skipped by unstack, not cloned."""
    a = repo(env, 'alpha')
    view = env.run('unstack', localrc(f'enable_plugin alpha {a}'))
    assert view['state'] == 'completed', view['error']
    assert not (env.tmp / 'state' / 'dest' / 'alpha').exists()
    assert [r['status'] for r in aio.results_by(view, plugin='alpha')] == [
        'skipped'
    ]
    assert env.trace() == []
