"""pluginsctl: its command table (names, help texts, completion), its
deadline and what it says when the daemon does not answer."""

import argparse
import logging
import subprocess
import sys
import time

from cliff import commandmanager
import oslo_messaging as messaging

from pluginsd.cmd import ctl

NEW = {
    'stack',
    'unstack',
    'clean',
    'plan',
    'run list',
    'run show',
    'run status',
    'run retry',
    'run cancel',
    'run delete',
    'run report',
    'run logs',
    'node list',
    'node show',
    'node accept',
    'node reject',
    'node delete',
    'extension list',
}
OLD = {
    'runs': 'run list',
    'show': 'run show',
    'status': 'run status',
    'retry': 'run retry',
    'cancel': 'run cancel',
    'delete': 'run delete',
    'logs': 'run logs',
    'report': 'run report',
    'nodes': 'node list',
}


def commands():
    manager = commandmanager.CommandManager(ctl.NAMESPACE)
    return {name: ep.load() for name, ep in manager}


def test_every_command_and_alias_is_registered():
    found = commands()
    assert NEW | set(OLD) <= set(found)
    for old, new in OLD.items():
        assert found[old].deprecated and not found[new].deprecated
        assert issubclass(found[old], found[new])


def test_every_option_and_argument_has_help():
    app = ctl.PluginsCtl()
    missing = []
    for name, cls in commands().items():
        parser = cls(app, None).get_parser(f'pluginsctl {name}')
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if not (action.help or '').strip():
                missing.append(
                    f'{name}: {action.option_strings or action.dest}'
                )
        assert (cls.__doc__ or '').strip(), name
    assert missing == []


def test_bash_completion_knows_the_commands(capsys):
    root = logging.getLogger('')
    handlers = list(root.handlers)
    try:
        assert ctl.main(['complete']) == 0
    finally:  # cliff adds a console handler on capsys's stream
        for h in set(root.handlers) - set(handlers):
            root.removeHandler(h)
    out = capsys.readouterr().out
    assert "cmds_run='cancel delete list logs report retry show status'" in out
    assert "cmds_node='accept delete list reject show'" in out
    assert "cmds_run_list='" in out and '--state --limit --long' in out


DEADLINE_SCRIPT = '''
import sys, time
from pluginsd.cmd.cli import client
deadline = client.Deadline(float(sys.argv[1]), lambda: 'too late', 3)
time.sleep(float(sys.argv[2]))
deadline.met()
time.sleep(0.5)
'''


def run_deadline(seconds, work):
    return subprocess.run(
        [sys.executable, '-c', DEADLINE_SCRIPT, str(seconds), str(work)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_deadline_met_in_time_says_nothing():
    proc = run_deadline(0.5, 0)
    assert (proc.returncode, proc.stderr) == (0, '')


def test_a_missed_deadline_ends_the_process_with_its_message():
    started = time.monotonic()
    proc = run_deadline(0.2, 20)
    assert (proc.returncode, proc.stderr) == (3, 'too late\n')
    assert time.monotonic() - started < 15


class BusyDaemon:
    """Answers the node list, then is too slow for the request itself."""

    def list_nodes(self, ctxt):
        return [{'host': 'node-1', 'state': 'up'}]

    def __getattr__(self, method):
        def too_slow(ctxt, *args, **kwargs):
            raise messaging.MessagingTimeout()

        return too_slow


def run_against_busy_daemon(capsys, *argv):
    root = logging.getLogger('')
    handlers = list(root.handlers)
    try:
        code = ctl.main(list(argv), client_factory=lambda app: BusyDaemon())
    finally:  # cliff adds a console handler at every run
        for handler in set(root.handlers) - set(handlers):
            root.removeHandler(handler)
    return code, capsys.readouterr().err


def test_a_request_that_timed_out_may_still_happen_and_says_so(
    tmp_path, capsys
):
    local_conf = tmp_path / 'local.conf'
    local_conf.write_text('[[local|localrc]]\n')
    run_id = '0b3c3e2a-5f0e-4c55-9d4a-6b1f8e2c7d90'
    code, err = run_against_busy_daemon(
        capsys, '--timeout', '5', 'stack', str(local_conf), '--run-id', run_id
    )
    assert code == 1
    assert err.strip().endswith(
        'the daemon did not answer within 5 s: is pluginsd running on '
        'topic pluginsd (transport_url of the caller)? If it is only busy, '
        f'the run may still start (pluginsctl run list shows it). Its id: '
        f'{run_id}.'
    ), err
    # A read changes nothing: no such sentence.
    code, err = run_against_busy_daemon(
        capsys, '--timeout', '5', 'run', 'list'
    )
    assert code == 1
    assert 'did not answer within 5 s' in err
    assert 'If it is only busy' not in err
