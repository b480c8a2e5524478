"""A running all-in-one stack can be watched from a second pluginsctl:
read commands answer without disturbing it, a second writer is refused,
and ``plan`` is a dry run."""

import os
import subprocess
import time

from tests import gitrepos
from tests.functional import test_cli


def ctl(state, *args):
    return test_cli.ctl(state, *args)


def wait_for(path, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return
        time.sleep(0.1)
    raise AssertionError(f'{path} never appeared')


def checkout_state(path):
    """What a later run would pin from: HEAD, refs, and the files."""
    return (
        gitrepos.git(path, 'rev-parse', 'HEAD'),
        gitrepos.git(path, 'for-each-ref'),
        gitrepos.git(path, 'status', '--porcelain', '--ignored'),
    )


def test_second_pluginsctl_watches_a_running_stack(tmp_path):
    started, go = tmp_path / 'started', tmp_path / 'go'
    repo = gitrepos.make_repo(
        str(tmp_path / 'repos' / 'slow'),
        {
            'devstack/settings': 'define_plugin slow\n',
            # install waits until the test has looked from outside.
            'devstack/plugin.sh': (
                'if [[ "$1 $2" == "stack install" ]]; then\n'
                f'    touch {started}\n'
                f'    while [[ ! -e {go} ]]; do sleep 0.1; done\n'
                'fi\n'
            ),
        },
    )
    first = gitrepos.git(repo, 'rev-parse', 'HEAD')
    conf = tmp_path / 'local.conf'
    conf.write_text(
        f'[[local|localrc]]\nRECLONE=True\nenable_plugin slow {repo}\n'
    )
    state = tmp_path / 'state'
    stack = subprocess.Popen(
        [
            test_cli.CTL,
            '--all-in-one',
            '--state-dir',
            str(state),
            '--dest',
            str(state / 'dest'),
            'stack',
            str(conf),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(started)
        dest = str(state / 'dest' / 'slow')
        # Upstream moves on: a plan with RECLONE=True finds the new commit.
        newer = gitrepos.commit(repo, {'CHANGES': 'newer\n'})
        before = checkout_state(dest)
        assert before[0] == first

        runs = ctl(
            state, 'run', 'list', '-f', 'value', '-c', 'ID', '-c', 'State'
        )
        assert runs.returncode == 0, runs.stderr
        [(run_id, run_state)] = [
            line.split() for line in runs.stdout.split('\n') if line
        ]
        assert run_state == 'running'

        show = ctl(state, 'run', 'show', run_id)
        assert show.returncode == 0, show.stderr
        assert f'run {run_id}: stack running' in show.stderr
        assert 'waiting on: ' in show.stderr

        plan = ctl(state, 'plan', str(conf), '-f', 'value', '-c', 'Commit')
        assert plan.returncode == 0, plan.stderr
        assert set(plan.stdout.split()) == {newer}
        # The dry run left the checkout a later run pins from alone.
        assert checkout_state(dest) == before

        second = ctl(state, 'stack', str(conf))
        assert second.returncode == 1
        assert 'is in use by another pluginsctl --all-in-one' in second.stderr
        assert f'pid {stack.pid}' in second.stderr
    finally:
        go.touch()
        out, err = stack.communicate(timeout=120)
    assert stack.returncode == 0, err
    assert 'killing leftover' not in err
    # The stack ran the commit it pinned at its start, undisturbed.
    assert gitrepos.git(dest, 'rev-parse', 'HEAD') == first
    after = ctl(state, 'run', 'list', '-f', 'value', '-c', 'State')
    assert after.stdout.split() == ['completed']
