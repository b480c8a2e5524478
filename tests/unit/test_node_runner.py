"""pluginsd.runner.node.NodeRunner with a scripted bash session.

No bash runs here: BashSession is replaced by a fake that answers each
command line the runner sends with the events driver.sh would send, or
with the error bash would cause. The checkouts are already at the pinned
commit (a .git/HEAD file), so nothing is fetched. Real bash running real
plugins: tests/functional/test_contract.py.
"""

import os

import pytest

from pluginsd import localconf
from pluginsd import results
from pluginsd.runner import node
from pluginsd.runner import shell

SHA = 'a' * 40


class FakeSession:
    """Plays driver.sh: SCRIPT maps a command's first word to its events
    (lists of fields), or to a function of the command line giving them.
    """

    instances = []

    def __init__(self, bash, env=None, output=None, cwd=None):
        self.env, self.output, self.cwd = env, output, cwd
        self.lines = []
        self.killed = 0
        self.closed = False
        self.alive = True
        self.proc = type('Proc', (), {'pid': 90000 + len(self.instances)})
        FakeSession.instances.append(self)

    def run(self, line, on_event=None, deadline=None):
        self.lines.append(line)
        events = []
        for command in line.split('; '):
            answer = SCRIPT.get(command.split(' ')[0], [])
            if callable(answer):
                answer = answer(command)
            for fields in answer:
                events.append(fields)
                if on_event:
                    on_event(fields)
        return events

    def kill(self):
        self.killed += 1

    def close(self):
        self.closed = True


SCRIPT = {}


@pytest.fixture
def dest(tmp_path):
    """Two plugin checkouts, already at the pinned commit."""
    for name in ('alpha', 'beta'):
        git_dir = tmp_path / 'dest' / name / '.git'
        git_dir.mkdir(parents=True)
        (git_dir / 'HEAD').write_text(SHA + '\n')
    return tmp_path / 'dest'


@pytest.fixture
def runner(tmp_path, dest, monkeypatch):
    FakeSession.instances = []
    SCRIPT.clear()
    SCRIPT['__pluginsd_plugin_dirs'] = [
        ['dir', 'alpha', str(dest / 'alpha')],
        ['dir', 'beta', str(dest / 'beta')],
    ]
    SCRIPT['__pluginsd_run_phase'] = plugins_run(('alpha', 0), ('beta', 0))
    monkeypatch.setattr(node.shell, 'BashSession', FakeSession)
    settings = node.NodeSettings(
        host='n1',
        dest=str(dest),
        log_dir=str(tmp_path / 'logs'),
        state_dir=str(tmp_path / 'state'),
        allowed_sources=('https://example.org/',),
    )
    r = node.NodeRunner(settings)
    yield r
    r.close()


def plugins_run(*codes):
    """`start`/`end` events of plugins that exit with these codes."""

    def answer(command):
        events = []
        for i, (plugin, code) in enumerate(codes):
            events.append(['start', plugin, f'{100 + i}.0'])
            events.append(['end', plugin, str(code), f'{100 + i}.5'])
        return events

    return answer


class _Raising:
    """Events, then what bash does next (an exception): iterating raises."""

    def __init__(self, it):
        self.it = it

    def __iter__(self):
        return self.it


def event(phase='install', mode='stack', attempt=1, url=None):
    plugin = {
        'url': url or 'https://example.org/alpha',
        'ref': 'master',
        'sha': SHA,
    }
    return {
        'run_id': 'r1',
        'mode': mode,
        'phase': phase,
        'attempt': attempt,
        'deadline': 60,
        'plugins': [
            dict(plugin, name='alpha'),
            dict(plugin, name='beta', url='https://example.org/beta'),
        ],
        'localconf': localconf.parse(
            '[[local|localrc]]\nenable_plugin alpha x\n', 'local.conf'
        ).to_dict(),
    }


def run(runner, ev):
    reported = []
    summary = runner.run_phase(ev, reported.append)
    return summary, reported


def test_a_phase_reports_every_plugin_then_the_node(runner, tmp_path):
    summary, reported = run(runner, event())
    assert [(r.plugin, r.status, r.exit_code) for r in reported] == [
        ('alpha', 'ok', 0),
        ('beta', 'ok', 0),
        ('', 'ok', 0),
    ]
    assert reported[-1] is summary
    alpha = reported[0]
    assert (alpha.started_at, alpha.ended_at) == (100.0, 100.5)
    assert alpha.log_path == str(tmp_path / 'logs/r1/install/alpha.log')
    [session] = FakeSession.instances
    setup, settings, phase = session.lines
    # stack.sh's start: xtrace, localrc, errexit before the checkouts.
    assert setup.startswith('set -o xtrace; ')
    assert 'set -o errexit' in setup
    assert settings.startswith('__pluginsd_set_order alpha beta; ')
    assert '__pluginsd_load_settings' in settings
    assert 'verify_disabled_services' in settings
    assert phase == shell.command(
        '__pluginsd_run_phase',
        'stack',
        'install',
        str(tmp_path / 'logs/r1/install'),
    )
    assert session.env['PLUGINSD_HOST'] == 'n1'


def test_a_stack_session_carries_over_to_the_next_phase(runner):
    run(runner, event('pre-install'))
    run(runner, event('install'))
    [session] = FakeSession.instances  # one bash for both phases
    assert [line.split(' ')[0] for line in session.lines][-1] == (
        '__pluginsd_run_phase'
    )
    assert not session.closed


def test_unstack_gets_a_fresh_session_each_time(runner):
    run(runner, event('unstack', mode='unstack'))
    run(runner, event('unstack', mode='unstack'))
    assert len(FakeSession.instances) == 2
    assert all(s.closed for s in FakeSession.instances)
    setup = FakeSession.instances[0].lines[0]
    assert 'set -o errexit' not in setup  # unstack.sh has no errexit
    assert '__pluginsd_load_stackenv' in setup


def test_a_failing_plugin_fails_the_phase_and_closes_the_session(runner):
    SCRIPT['__pluginsd_run_phase'] = _with_current('beta', 1)
    summary, reported = run(runner, event())
    assert [(r.plugin, r.status) for r in reported] == [
        ('beta', 'failed'),
        ('', 'failed'),
    ]
    assert summary.exit_code == 1
    assert summary.message == (
        'node n1: plugin beta failed in stack install: exit status 1'
    )
    assert FakeSession.instances[0].closed


def _with_current(plugin, code):
    """bash ends (errexit) while ``plugin`` runs: a start, no end."""

    def answer(command):
        return _Raising(_gen(plugin, code))

    return answer


def _gen(plugin, code):
    yield ['start', plugin, '100.0']
    raise shell.ShellExited(code, [])


def test_exit_0_in_a_plugin_is_a_failure(runner):
    SCRIPT['__pluginsd_run_phase'] = _with_current('alpha', 0)
    summary, _ = run(runner, event())
    assert summary.status == results.FAILED
    assert 'the plugin called exit; bash ended' in summary.message


def test_the_deadline_times_the_phase_out(runner):
    def timeout(command):
        return _Raising(_timeout_gen())

    SCRIPT['__pluginsd_run_phase'] = timeout
    summary, reported = run(runner, event())
    assert [(r.plugin, r.status) for r in reported] == [
        ('alpha', 'timeout'),
        ('', 'timeout'),
    ]
    assert 'deadline passed' in summary.message


def _timeout_gen():
    yield ['start', 'alpha', '100.0']
    raise shell.ShellTimeout([])


def test_a_plugin_without_plugin_sh_is_skipped(runner):
    SCRIPT['__pluginsd_run_phase'] = [['skip', 'alpha', '100.0']]
    summary, reported = run(runner, event())
    [skipped, _] = reported
    assert (skipped.plugin, skipped.status) == ('alpha', 'skipped')
    assert skipped.message == 'no devstack/plugin.sh'
    assert skipped.log_path == ''
    assert summary.status == results.OK


def test_a_failing_setup_names_the_step(runner):
    def settings_fail(command):
        return _Raising(_setup_gen())

    SCRIPT['__pluginsd_set_order'] = settings_fail
    summary, reported = run(runner, event())
    assert [r.plugin for r in reported] == ['']
    assert summary.status == results.FAILED
    assert summary.message == (
        'node n1: settings of alpha failed in stack install: exit status 2'
    )


def _setup_gen():
    yield ['step', 'settings', 'alpha']
    raise shell.ShellExited(2, [])


def test_a_source_not_allowed_runs_nothing(runner):
    summary, reported = run(
        runner, event(url='https://evil.example.com/alpha')
    )
    assert [r.plugin for r in reported] == ['']
    assert summary.status == results.FAILED
    assert summary.message.startswith('node n1 refuses plugin alpha: source ')
    assert 'is not in [agent] allowed_sources' in summary.message
    assert FakeSession.instances == []  # no bash was started


def test_localrc_enabling_other_plugins_than_pinned_fails(runner, dest):
    SCRIPT['__pluginsd_plugin_dirs'] = [['dir', 'alpha', str(dest / 'alpha')]]
    summary, _ = run(runner, event())
    assert summary.message == (
        "node n1: localrc enables ['alpha'] but the run pinned "
        "['alpha', 'beta']"
    )


def test_end_run_closes_an_idle_session_and_cancel_kills_a_live_one(runner):
    run(runner, event('pre-install'))
    [session] = FakeSession.instances
    runner.cancel('r1', 1)
    assert session.killed == 1
    assert runner.is_cancelled('r1', 1)
    assert not runner.is_cancelled('r1', 2)  # a retry is a new attempt
    runner.end_run('r1')
    assert session.closed
    assert not runner.busy()


def test_end_run_during_a_phase_reports_it_cancelled(runner):
    # On cancel the daemon sends cancel_run, then end_run; the agent may
    # handle end_run first. The plugin it kills did not fail.
    def ended_by_the_daemon(command):
        def gen():
            yield ['start', 'alpha', '100.0']
            runner.end_run('r1')
            raise shell.ShellExited(-9, [])

        return _Raising(gen())

    SCRIPT['__pluginsd_run_phase'] = ended_by_the_daemon
    summary, reported = run(runner, event(attempt=2))
    assert [(r.plugin, r.status) for r in reported] == [
        ('alpha', 'cancelled'),
        ('', 'cancelled'),
    ]
    assert FakeSession.instances[0].killed == 1
    assert runner.is_cancelled('r1', 2)
    assert not runner.busy()


def test_only_the_latest_cancels_are_remembered(runner, monkeypatch):
    monkeypatch.setattr(node, 'CANCELS_KEPT', 3)
    for attempt in range(1, 6):
        runner.cancel('r1', attempt)
    assert [runner.is_cancelled('r1', a) for a in range(1, 6)] == [
        False,
        False,
        True,
        True,
        True,
    ]


def test_the_last_stack_phase_closes_the_session(runner):
    run(runner, event(results.STACK_PHASES[-1]))
    assert FakeSession.instances[0].closed


def test_leftover_sessions_of_a_killed_agent_are_forgotten(tmp_path, dest):
    sessions = tmp_path / 'state' / 'sessions'
    sessions.mkdir(parents=True)
    (sessions / '999999999').write_text('')  # no such process
    node.NodeRunner(
        node.NodeSettings(
            host='n1',
            dest=str(dest),
            log_dir=str(tmp_path / 'logs'),
            state_dir=str(tmp_path / 'state'),
        )
    )
    assert os.listdir(sessions) == []
