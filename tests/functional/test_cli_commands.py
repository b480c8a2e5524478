"""Every pluginsctl command name and deprecated alias, on one real daemon.

pluginsctl runs in this process (``ctl.main``) against an all-in-one daemon
and agent the test starts once: real bash runs real plugins, only the
process start-up of each command is saved.
"""

import datetime
import json
import logging
import os
import re
import subprocess
import time
import uuid

import pytest
import sqlalchemy

from pluginsd import keys
from pluginsd.cmd import ctl
from pluginsd.db import models
from pluginsd.rpc import signing
from tests import gitrepos
from tests.functional import aio

HOST = 'node-1'


class Ctl:
    def __init__(self, daemon, capsys):
        self.daemon = daemon
        self.capsys = capsys

    def __call__(self, *argv):
        root = logging.getLogger('')
        handlers = list(root.handlers)
        try:
            code = ctl.main(list(argv), client_factory=lambda app: self.api)
        except SystemExit as e:  # argparse: bad usage
            code = e.code
        finally:  # cliff adds a console handler at every run
            for h in set(root.handlers) - set(handlers):
                root.removeHandler(h)
        out, err = self.capsys.readouterr()
        return code, out, err

    @property
    def api(self):
        return self.daemon.api


@pytest.fixture(scope='module')
def daemon(tmp_path_factory):
    base = tmp_path_factory.mktemp('cli')
    d = aio.AllInOne(base / 'state')
    good = gitrepos.make_repo(
        str(base / 'good'),
        {'devstack/plugin.sh': 'echo "hello from $2"\n'},
    )
    bad = gitrepos.make_repo(
        str(base / 'bad'),
        {
            'devstack/plugin.sh': 'if [[ $2 == install ]]; then\n'
            '  echo "out of widgets" >&2; exit 3\nfi\n'
        },
    )
    d.good_conf = base / 'good.conf'
    d.good_conf.write_text(f'[[local|localrc]]\nenable_plugin good {good}\n')
    d.bad_conf = base / 'bad.conf'
    d.bad_conf.write_text(
        f'[[local|localrc]]\nenable_plugin good {good}\n'
        f'enable_plugin bad {bad}\n'
    )
    d.failed = d.run('stack', d.bad_conf.read_text())
    d.completed = d.run('stack', d.good_conf.read_text())
    assert (d.failed['state'], d.completed['state']) == ('failed', 'completed')
    yield d
    d.close()


@pytest.fixture
def pc(daemon, capsys):
    return Ctl(daemon, capsys)


def parse_time(text):
    """An ISO 8601 UTC time; fails on anything else."""
    assert text.endswith('Z'), text
    t = datetime.datetime.fromisoformat(text.replace('Z', '+00:00'))
    assert t.utcoffset() == datetime.timedelta(0)
    return t


def test_no_wait_value_prints_exactly_the_id(pc, daemon):
    code, out, err = pc('stack', str(daemon.good_conf), '--no-wait')
    assert code == 0, err
    run_id = out.strip()
    assert out == run_id + '\n' and len(run_id) == 36
    assert daemon.wait(run_id)['state'] == 'completed'
    code, out, err = pc(
        'stack', str(daemon.good_conf), '--no-wait', '-f', 'value'
    )
    assert code == 0 and len(out.strip()) == 36 and '\n' not in out.strip()
    daemon.wait(out.strip())


def test_a_stack_asked_again_with_its_run_id_is_one_run(pc, daemon):
    run_id = str(uuid.uuid4())
    for _ in range(2):  # as a script would after a timeout
        code, out, err = pc(
            'stack', str(daemon.good_conf), '--run-id', run_id, '--no-wait'
        )
        assert (code, out) == (0, run_id + '\n'), err
    assert daemon.wait(run_id)['state'] == 'completed'
    code, out, err = pc(
        'stack', str(daemon.good_conf), '--run-id', run_id, '--no-wait'
    )
    assert (code, out) == (0, run_id + '\n'), err  # done: still that run
    code, out, _ = pc('run', 'list', '-f', 'value', '-c', 'ID')
    assert out.split().count(run_id) == 1
    # The id of another request: refused by the daemon, saying why.
    code, out, err = pc('unstack', str(daemon.good_conf), '--run-id', run_id)
    assert code == 1
    assert f'run id {run_id} is the id of another request' in err
    # No UUID: bad usage, said before anything is asked.
    code, out, err = pc('stack', str(daemon.good_conf), '--run-id', 'r1')
    assert code == 2
    assert err.strip() == (
        "pluginsctl: --run-id 'r1': expected a UUID in its usual "
        'lower-case form, as uuidgen prints'
    )


def test_stack_json_has_the_run_id_and_typed_fields(pc, daemon):
    code, out, err = pc('stack', str(daemon.bad_conf), '-f', 'json')
    assert code == 1, err
    rows = json.loads(out)
    run_id = err.split()[1].rstrip(':')
    assert {r['Run'] for r in rows} == {run_id}
    [bad] = [
        r for r in rows if r['Plugin'] == 'bad' and r['Phase'] == 'install'
    ]
    assert bad['Status'] == 'failed' and bad['Exit Code'] == 3
    assert isinstance(bad['Duration'], float) and bad['Attempt'] == 1
    assert parse_time(bad['Started']) <= parse_time(bad['Ended'])
    assert bad['Node'] == HOST


def test_run_list_filters_and_times(pc, daemon):
    code, out, err = pc('run', 'list', '-f', 'json')
    assert code == 0, err
    runs = json.loads(out)
    assert {daemon.failed['id'], daemon.completed['id']} <= {
        r['ID'] for r in runs
    }
    for r in runs:
        parse_time(r['Created'])
    code, out, _ = pc('run', 'list', '--state', 'failed', '-f', 'json')
    assert {r['State'] for r in json.loads(out)} == {'failed'}
    code, out, _ = pc('run', 'list', '--limit', '1', '-f', 'json')
    [last] = json.loads(out)
    assert last['ID'] == runs[-1]['ID']
    code, out, _ = pc('run', 'list', '--long', '-f', 'json', '--limit', '1')
    [long] = json.loads(out)
    assert isinstance(long['Attempt'], int)
    parse_time(long['Updated'])
    assert long['Local Conf'].endswith('.conf')


def test_run_show_status_and_logs(pc, daemon):
    run_id = daemon.failed['id']
    code, out, err = pc('run', 'show', run_id[:8])
    assert code == 0 and '| bad ' in out and 'FAILED (3)' in out
    assert f'run {run_id}: stack failed' in err
    code, out, err = pc('run', 'status', run_id, '-f', 'json')
    status = json.loads(out)
    assert status['id'] == run_id and status['attempt'] == 1
    assert status['stages'] == HOST and "['" not in out
    parse_time(status['created_at'])
    code, out, err = pc(
        'run',
        'logs',
        run_id,
        '--node',
        HOST,
        '--plugin',
        'good',
        '--phase',
        'install',
    )
    assert code == 0, err
    assert 'hello from install' in out
    # xtrace lines carry the wall-clock time, as DevStack's logs do.
    [echo] = [
        ln
        for ln in out.splitlines()
        if ln.endswith("echo 'hello from install'")
    ]
    stamp = re.match(
        r'\++ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) plugin\.sh:1: ', echo
    )
    assert stamp, echo
    datetime.datetime.strptime(stamp.group(1), '%Y-%m-%d %H:%M:%S.%f')


def test_run_report_writes_html(pc, daemon, tmp_path):
    page = tmp_path / 'r.html'
    code, _, err = pc('run', 'report', daemon.failed['id'], '-o', str(page))
    assert code == 0, err
    assert '<html' in page.read_text()


def test_retry_and_cancel_of_a_completed_run_are_refused(pc, daemon):
    for verb in ('retry', 'cancel'):
        code, out, err = pc('run', verb, daemon.completed['id'])
        assert code == 1
        assert f'run {daemon.completed["id"]} is completed' in err
        assert 'Traceback' not in err


def test_run_delete_several(pc, daemon):
    ids = []
    for _ in range(2):
        ids.append(daemon.run('stack', daemon.good_conf.read_text())['id'])
    code, _, err = pc('run', 'delete', ids[0], 'no-such-run', ids[1])
    assert code == 1  # one of the three was not deleted
    assert f'run {ids[0]}: deleted' in err and f'run {ids[1]}: deleted' in err
    assert 'no run no-such-run' in err
    code, out, _ = pc('run', 'list', '-f', 'value', '-c', 'ID')
    assert not set(ids) & set(out.split())


def test_node_commands(pc):
    code, out, err = pc('node', 'list', '-f', 'json')
    assert code == 0, err
    [node] = json.loads(out)
    assert node['Host'] == HOST and node['State'] == 'up'
    assert isinstance(node['Silent For'], float) and node['Roles']
    parse_time(node['Last Heartbeat'])
    # Formats of one string per field get words, not a Python list.
    code, out, _ = pc(
        'node', 'list', '-f', 'value', '-c', 'Host', '-c', 'Roles'
    )
    assert out.split() == [HOST, ','.join(node['Roles'])]
    code, out, err = pc('node', 'show', HOST, '-f', 'json')
    assert json.loads(out)['Host'] == HOST
    code, _, err = pc('node', 'show', 'nope')
    assert code == 1 and 'no node nope' in err
    code, _, err = pc('node', 'delete', 'nope')
    assert code == 1 and 'no node nope' in err


def test_node_delete_forgets_a_node(pc, daemon):
    # A phantom node: one heartbeat signed with the key, then silence.
    daemon.embedded.daemon.db.upsert_node('phantom', ['compute'], '0', 'idle')
    code, _, err = pc('node', 'delete', 'phantom')
    assert code == 0, err
    assert 'node phantom: deleted' in err
    code, out, _ = pc('node', 'list', '-f', 'value', '-c', 'Host')
    assert out.split() == [HOST]


def test_extension_list(pc):
    code, out, err = pc('extension', 'list', '-f', 'json')
    assert code == 0, err
    assert 'logging' in {e['Name'] for e in json.loads(out)}


def test_bad_input_is_exit_2_and_one_line(pc, daemon):
    for argv in (
        ['run', 'list', '--limit', '0'],
        ['stack', str(daemon.good_conf), '--role', 'nonsense'],
    ):
        code, out, err = pc(*argv)
        assert code == 2, (argv, err)
        assert len(err.strip().splitlines()) == 1, err
    code, _, err = pc('run', 'list', '--state', 'sleeping')
    assert code == 2 and "invalid choice: 'sleeping'" in err
    code, _, err = pc('no-such-command')
    assert code == 2


ALIASES = [
    (['runs'], ['run', 'list']),
    (['nodes', '-c', 'Host'], ['node', 'list', '-c', 'Host']),
    (['show', '{failed}'], ['run', 'show', '{failed}']),
    (['status', '{failed}'], ['run', 'status', '{failed}']),
    (
        ['logs', '{failed}', '--node', HOST, '--plugin', 'good', '--phase',
         'install'],
        ['run', 'logs', '{failed}', '--node', HOST, '--plugin', 'good',
         '--phase', 'install'],
    ),
    (['retry', '{completed}'], ['run', 'retry', '{completed}']),
    (['cancel', '{completed}'], ['run', 'cancel', '{completed}']),
    (['delete', 'no-such-run'], ['run', 'delete', 'no-such-run']),
    (['report', 'no-such-run', '-o', '/dev/null'],
     ['run', 'report', 'no-such-run', '-o', '/dev/null']),
]  # fmt: skip


@pytest.mark.parametrize('old,new', ALIASES, ids=[a[0][0] for a in ALIASES])
def test_deprecated_alias_does_what_the_new_name_does(pc, daemon, old, new):
    ids = {'failed': daemon.failed['id'], 'completed': daemon.completed['id']}
    old = [a.format(**ids) for a in old]
    new = [a.format(**ids) for a in new]
    new_code, new_out, new_err = pc(*new)
    old_code, old_out, old_err = pc(*old)
    assert (old_code, old_out) == (new_code, new_out)
    name = ' '.join(new[:2]) if new[0] in ('run', 'node') else new[0]
    warning = (
        f'pluginsctl: "{old[0]}" is deprecated and will be removed in the '
        f'next release; use "{name}"'
    )
    assert old_err.splitlines()[0] == warning
    assert old_err.replace(warning + '\n', '') == new_err


def test_shell_format_is_safe_for_eval(pc, daemon, tmp_path):
    canary = tmp_path / 'canary'
    evil = gitrepos.make_repo(
        str(tmp_path / 'evil'),
        {
            'devstack/plugin.sh': 'if [[ $2 == install ]]; then\n'
            f"  echo '$(touch {canary}-dollar)'\n"
            f"  echo '`touch {canary}-backtick`'\n"
            f"  echo \"it's \\\"quoted\\\" \\\\ ${{HOME}} $'x'\"\n"
            '  exit 1\nfi\n'
        },
    )
    view = daemon.run(
        'stack', f'[[local|localrc]]\nenable_plugin evil {evil}\n'
    )
    assert view['state'] == 'failed'
    assert f'touch {canary}-dollar' in view['error']
    code, out, err = pc('run', 'status', view['id'], '-f', 'shell')
    assert code == 0, err
    script = tmp_path / 'eval.sh'
    script.write_text(f'eval "$(cat {tmp_path}/out)"\nprintf %s "$error"\n')
    (tmp_path / 'out').write_text(out)
    shown = subprocess.run(
        ['bash', str(script)], capture_output=True, text=True, check=True
    ).stdout
    assert not list(tmp_path.glob('canary*'))  # nothing ran
    assert shown == view['error']  # and every byte came through
    code, _, err = pc(
        'run', 'status', view['id'], '-f', 'shell', '--prefix', 'x;id;'
    )
    assert code == 2 and "--prefix 'x;id;'" in err
    code, out, _ = pc('node', 'show', HOST, '-f', 'shell', '--prefix', 'n_')
    assert f"n_host={HOST}\n" in out


def test_tables_fit_120_columns_in_a_pipe(pc, daemon, tmp_path):
    long_name = 'a-plugin-with-a-rather-long-name-' + 'x' * 40
    repo = gitrepos.make_repo(
        str(tmp_path / ('deep/' * 10) / long_name),
        {'devstack/plugin.sh': 'true\n'},
    )
    conf = tmp_path / ('a-long-local-conf-name-' + 'y' * 60 + '.conf')
    conf.write_text(f'[[local|localrc]]\nenable_plugin {long_name} {repo}\n')
    code, _, err = pc('stack', str(conf))
    assert code == 0, err
    for argv in (
        ['run', 'list', '--long'],
        ['run', 'show', daemon.failed['id']],
        ['run', 'status', daemon.failed['id']],
        ['node', 'list', '--long'],
        ['plan', str(conf)],
    ):
        code, out, err = pc(*argv)
        assert code == 0, err
        widths = [len(line) for line in out.splitlines()]
        assert widths and max(widths) <= 120, (argv, out)


def test_a_node_registration_is_one_log_line(daemon, caplog):
    key = keys.KeyPair.generate()  # pre-seeded as accepted (automation)
    keys.private_write(
        os.path.join(daemon.conf.security.accepted_keys_dir, 'node-7.pub'),
        key.public,
    )
    beat = signing.Signer(key, 'node:node-7').sign(
        'heartbeat',
        'daemon',
        {
            'host': 'node-7',
            'roles': ['compute'],
            'version': '0',
            'activity': '',
        },
    )
    with caplog.at_level(logging.INFO):
        daemon.embedded.daemon.manager.heartbeat({}, beat)
    lines = [
        r.getMessage() for r in caplog.records if 'node-7' in r.getMessage()
    ]
    assert lines == ['Node node-7 registered (roles compute)']
    daemon.embedded.daemon.db.delete_node('node-7')
    daemon.embedded.daemon.db.delete_node_keys('node-7')
    daemon.embedded.daemon.nodes.forget('node-7')


def test_retry_keeps_attempt_1_and_shows_only_the_new_attempt(
    pc, daemon, tmp_path
):
    once = tmp_path / 'failed-once'
    flaky = gitrepos.make_repo(
        str(tmp_path / 'flaky'),
        {
            'devstack/plugin.sh': 'if [[ $2 == install && ! -e '
            f'{once} ]]; then\n  touch {once}; echo "first try" >&2; '
            'exit 4\nfi\necho "ran $2"\n'
        },
    )
    view = daemon.run(
        'stack', f'[[local|localrc]]\nenable_plugin flaky {flaky}\n'
    )
    assert view['state'] == 'failed'
    code, out, err = pc('run', 'retry', view['id'])
    assert code == 0, err
    # Progress: the new attempt only (install onwards), then the table.
    assert 'pre-install  flaky' not in err
    assert re.search(r'install\s+flaky\s+ok', err), err
    [row] = [ln for ln in out.splitlines() if '| flaky ' in ln]
    assert row.count('| ok ') == 5, out  # the whole run, both attempts
    after = daemon.api.get_run({}, view['id'])
    assert after['attempt'] == 2 and after['state'] == 'completed'
    [first] = after['attempts']
    assert first['attempt'] == 1 and first['state'] == 'failed'
    assert 'exit status 4' in first['error']
    [failed] = [r for r in first['results'] if r['plugin'] == 'flaky']
    assert (failed['phase'], failed['status'], failed['exit_code']) == (
        'install',
        'failed',
        4,
    )
    page = tmp_path / 'r.html'
    code, _, err = pc('run', 'report', view['id'], '-o', str(page))
    text = page.read_text()
    assert 'Attempt 1: failed' in text and 'first try' in text


def test_lost_nodes_are_named_and_require_all_nodes_refuses(pc, daemon):
    db = daemon.embedded.daemon.db
    db.upsert_node('ghost', ['compute'], '0', 'idle')  # never heard since
    # A daemon that has just connected gives every node a grace period of
    # agent_down_time; this one has been listening for longer than that.
    nodes = daemon.embedded.daemon.nodes
    down_time = daemon.embedded.daemon.conf.daemon.agent_down_time
    for _ in range(100):  # its first probe of the broker (once a second)
        if nodes.connected():
            break
        time.sleep(0.1)
    nodes._connected_since -= down_time + 1
    with db.engine.begin() as conn:  # and ghost fell silent back then
        conn.execute(
            sqlalchemy.update(models.Node)
            .where(models.Node.host == 'ghost')
            .values(last_seen=time.time() - down_time - 1)
        )
    try:
        code, _, err = pc('stack', str(daemon.good_conf))
        assert code == 0, err
        assert re.search(
            r'^node ghost is lost \(no heartbeat for \d+ s\): '
            r'this run leaves it out$',
            err,
            re.M,
        ), err
        runs_before = len(daemon.api.list_runs({}))
        code, _, err = pc(
            'stack', str(daemon.good_conf), '--require-all-nodes'
        )
        assert code == 1
        assert err.strip().splitlines()[-1] == (
            'node(s) not up: ghost (--require-all-nodes); nothing started'
        )
        code, _, err = pc('stack', str(daemon.good_conf), '--node', 'ghost')
        assert code == 1 and 'node(s) not up: ghost (--node)' in err
        code, _, err = pc('stack', str(daemon.good_conf), '--node', 'nope')
        assert code == 1 and '--node: no node nope' in err
        assert len(daemon.api.list_runs({})) == runs_before  # none started
        code, _, err = pc('stack', str(daemon.good_conf), '--node', HOST)
        assert code == 0 and 'leaves it out' not in err
    finally:
        db.delete_node('ghost')
