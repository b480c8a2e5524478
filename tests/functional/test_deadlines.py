"""The phase deadline and cancel bound more than bash: a package installer
that hangs is killed, and the node runs the next run."""

import os
import threading
import time

import pytest
from stevedore import driver
from stevedore import extension

from pluginsd import exception
from pluginsd import localconf
from pluginsd import process
from pluginsd.plugins import plan as plan_mod
from pluginsd.runner import packages
from tests import gitrepos
from tests.functional import aio


class SleepingInstaller(packages.Installer):
    """Hangs the way a stuck apt-get does: a real process that sleeps."""

    name = 'sleeping'

    def __init__(self, pidfile):
        self.pidfile = pidfile

    def install(self, wanted, log):
        return self.run(
            ['bash', '-c', 'echo $$ > "$0"; exec sleep 600', self.pidfile],
            log,
        )


def dead(pid):
    deadline = time.monotonic() + 10  # a SIGKILL takes a moment to land
    while time.monotonic() < deadline:
        try:
            with open(f'/proc/{pid}/stat') as f:
                if f.read().split(')')[-1].split()[0] == 'Z':
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def wait_for(path, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and open(path).read().strip():
            return int(open(path).read())
        time.sleep(0.05)
    raise AssertionError(f'{path} never appeared')


def node_result(harness, run_id, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = harness.api.get_run({}, run_id)
        found = aio.results_by(view, plugin='', phase='pre-install')
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f'run {run_id}: no pre-install result')


def test_hung_package_install_timed_out_cancelled_then_next_run(tmp_path):
    pidfile = str(tmp_path / 'installer.pid')
    repo = gitrepos.make_repo(
        str(tmp_path / 'repos' / 'needy'),
        {
            'devstack/settings': 'define_plugin needy\n',
            'devstack/plugin.sh': 'true\n',
            'devstack/files/debs/needy': 'some-package\n',
            'devstack/files/rpms/needy': 'some-package\n',
        },
    )
    plain = gitrepos.make_repo(
        str(tmp_path / 'repos' / 'plain'),
        {'devstack/settings': 'define_plugin plain\n'},
    )
    harness = aio.AllInOne(tmp_path / 'state', **{'daemon.phase_timeout': 3})
    # The installer driver, loaded the way stevedore loads any driver.
    manager = driver.DriverManager.make_test_instance(
        extension.Extension(
            'sleeping', None, SleepingInstaller, SleepingInstaller(pidfile)
        ),
        namespace=packages.NAMESPACE,
    )
    harness.embedded.agent.runner.settings.installer = manager.driver
    needy = f'[[local|localrc]]\nenable_plugin needy {repo}\n'
    plain_conf = f'[[local|localrc]]\nenable_plugin plain {plain}\n'
    try:
        # 1. The phase deadline kills the hung installer.
        view = harness.run('stack', needy, timeout=120)
        assert view['state'] == 'failed'
        [node] = aio.results_by(view, plugin='', phase='pre-install')
        assert node['status'] == 'timeout'
        assert 'installing plugin packages' in node['message']
        assert 'deadline' in node['message']
        assert dead(wait_for(pidfile))
        os.unlink(pidfile)

        # 2. Cancel kills it at once (the deadline is far away now).
        harness.conf.set_override('phase_timeout', 3600, group='daemon')
        run = harness.start('stack', needy)
        pid = wait_for(pidfile)
        # Meanwhile a second run aimed at the busy node is refused, saying
        # which run holds it (it would wait behind the hung one unseen).
        with pytest.raises(exception.NodesBusy) as err:
            harness.start('stack', plain_conf)
        assert f'node(s) node-1 busy with run {run["id"]}' in str(err.value)
        harness.api.cancel_run({}, run['id'])
        view = harness.wait(run['id'], timeout=60)
        assert view['state'] == 'cancelled'
        # The run is cancelled on the daemon at once; the node's result
        # follows once the installer is killed (long before the deadline).
        [node] = node_result(harness, run['id'])
        assert node['status'] == 'cancelled', node['message']
        assert 'the run was cancelled' in node['message']
        assert dead(pid)

        # 3. The node is free: the next run runs.
        view = harness.run('stack', plain_conf)
        assert view['state'] == 'completed', view['error']
    finally:
        harness.close()


def test_a_hung_git_fetch_at_plan_time_is_killed(tmp_path, monkeypatch):
    """The daemon's git calls are bounded too.

    An ssh transport that never answers is killed, naming the plugin.
    """
    pidfile = tmp_path / 'ssh.pid'
    fake_ssh = tmp_path / 'ssh'
    fake_ssh.write_text(f'#!/bin/bash\necho $$ > {pidfile}\nexec sleep 600\n')
    fake_ssh.chmod(0o755)
    monkeypatch.setenv('GIT_SSH_COMMAND', str(fake_ssh))
    conf = localconf.parse(
        '[[local|localrc]]\n'
        'enable_plugin stuck ssh://git.example.invalid/stuck\n',
        'local.conf',
    )
    with pytest.raises(exception.FetchError) as err:
        plan_mod.make_plan(
            conf,
            str(tmp_path / 'plan'),
            checkout_root=str(tmp_path / 'cache'),
            git_timeout=2,
        )
    assert str(err.value).startswith(
        'plugin stuck (ssh://git.example.invalid/stuck master): "git clone '
    )
    assert 'was still running after 2 s ([daemon] phase_timeout)' in str(
        err.value
    )
    assert dead(wait_for(str(pidfile)))
    assert os.listdir(tmp_path / 'cache') == []


def sleeping_settings_repo(tmp_path):
    """A plugin whose settings start a sleep and wait: planning hangs."""
    pidfile = tmp_path / 'settings-sleep.pid'
    repo = gitrepos.make_repo(
        str(tmp_path / 'repos' / 'slow'),
        {
            'devstack/settings': (
                f'sleep 600 & echo $! > {pidfile}\nwait\ndefine_plugin slow\n'
            ),
        },
    )
    conf = localconf.parse(
        f'[[local|localrc]]\nenable_plugin slow {repo}\n', 'local.conf'
    )
    return conf, pidfile


def test_settings_that_hang_at_plan_time_are_killed(tmp_path):
    conf, pidfile = sleeping_settings_repo(tmp_path)
    with pytest.raises(exception.SettingsError) as err:
        plan_mod.make_plan(
            conf,
            str(tmp_path / 'plan'),
            checkout_root=str(tmp_path / 'cache'),
            git_timeout=3,
        )
    assert str(err.value) == (
        f'plugin slow: sourcing {tmp_path}/cache/slow/devstack/settings was '
        'still running at the planning deadline ([daemon] phase_timeout) and '
        'was killed'
    )
    assert dead(wait_for(str(pidfile)))


def test_cancel_stops_planning_at_once(tmp_path):
    conf, pidfile = sleeping_settings_repo(tmp_path)
    scope = process.Scope()  # no deadline: only the kill ends it
    raised = []

    def plan():
        try:
            plan_mod.make_plan(
                conf,
                str(tmp_path / 'plan'),
                checkout_root=str(tmp_path / 'cache'),
                scope=scope,
            )
        except exception.PluginsdException as e:
            raised.append(str(e))

    planner = threading.Thread(target=plan)
    planner.start()
    pid = wait_for(str(pidfile))  # the settings are being sourced
    scope.kill('the run was cancelled')
    planner.join(30)
    assert not planner.is_alive()
    assert raised == ['planning stopped: the run was cancelled']
    assert dead(pid)
