"""pluginsd-manage purge --older-than: runs, logs, bundles, journal, refs."""

import os
import sqlite3
import subprocess
import sys
import time

from pluginsd.plugins import bundles
from pluginsd.plugins import plan as plan_mod
from tests import gitrepos
from tests.functional import aio
from tests.functional import cluster

MANAGE = os.path.join(os.path.dirname(sys.executable), 'pluginsd-manage')


def backdate(path, seconds):
    """Make ``path`` (and what is in it) look ``seconds`` old."""
    when = time.time() - seconds
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.utime(
                os.path.join(root, name), (when, when), follow_symlinks=False
            )
    os.utime(path, (when, when))


def test_purge_removes_what_old_runs_left_and_keeps_the_rest(tmp_path):
    state = tmp_path / 'state'
    repo = gitrepos.make_repo(
        str(tmp_path / 'repos' / 'alpha'),
        {'devstack/settings': 'define_plugin alpha\n'},
    )
    conf = f'[[local|localrc]]\nenable_plugin alpha {repo}\n'
    harness = aio.AllInOne(state)
    try:
        old = harness.run('stack', conf)
        new = harness.run('unstack', conf)
    finally:
        harness.close()
    assert old['state'] == new['state'] == 'completed'
    kept_sha = old['plans']['*']['plugins'][0]['sha']
    stale_sha = gitrepos.commit(repo, {'CHANGES': 'x'})
    logs = state / 'logs'
    assert (logs / old['id']).is_dir() and (logs / new['id']).is_dir()

    # The daemon's side: a bundle per commit, and refs in the plugin cache.
    cache = str(state / 'plugins' / 'default' / 'alpha')
    subprocess.run(['git', 'clone', '-q', repo, cache], check=True)
    store = bundles.BundleStore(bundles.store_dir(harness.conf))
    entries = {}
    for sha in (kept_sha, stale_sha):
        p = plan_mod.Plugin('alpha', repo, 'master', sha=sha)
        entries[sha] = store.build(p, cache)
        gitrepos.git(cache, 'update-ref', f'refs/pluginsd/{sha}', sha)
    # A node's side: a downloaded bundle.
    downloads = state / 'agent' / 'bundles'
    downloads.mkdir(parents=True)
    (downloads / (entries[stale_sha]['digest'] + '.bundle')).write_bytes(b'x')

    # Everything of the first run is a week old; the second run is not.
    week = 7 * 86400
    db = sqlite3.connect(state / 'pluginsd.sqlite')
    db.execute(
        'UPDATE runs SET updated_at = ? WHERE id = ?',
        (time.time() - week, old['id']),
    )
    db.commit()
    db.close()
    backdate(str(logs / old['id']), week)
    backdate(str(state / 'bundles'), week)
    backdate(str(downloads), week)
    journal = sqlite3.connect(state / 'agent' / 'journal.sqlite')
    journal.execute(
        'UPDATE results SET sent_at = ? WHERE run_id = ?',
        (time.time() - week, old['id']),
    )
    journal.commit()
    old_rows = journal.execute(
        'SELECT count(*) FROM results WHERE run_id = ?', (old['id'],)
    ).fetchone()[0]
    assert old_rows > 0

    config = cluster.write_conf(
        str(tmp_path / 'purge.conf'), {'DEFAULT': {'state_path': state}}
    )
    proc = subprocess.run(
        [MANAGE, '--config-file', config, 'purge', '--older-than', '3d'],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        f'1 runs, 2 logs, 2 bundles, {old_rows} journal, 1 refs'
    )
    # The old run and all it left are gone.
    db = sqlite3.connect(state / 'pluginsd.sqlite')
    assert [r for (r,) in db.execute('SELECT id FROM runs')] == [new['id']]
    assert db.execute(
        'SELECT count(*) FROM results WHERE run_id = ?', (old['id'],)
    ).fetchone() == (0,)
    assert not (logs / old['id']).exists()
    assert not (state / 'runs' / old['id']).exists()
    assert (state / 'runs' / new['id']).exists()
    assert journal.execute(
        'SELECT count(*) FROM results WHERE run_id = ?', (old['id'],)
    ).fetchone() == (0,)
    assert not store.lookup(stale_sha)
    assert list(downloads.glob('*.bundle')) == []
    # The kept run keeps its logs, journal rows, bundle and ref.
    assert (logs / new['id']).is_dir()
    assert (
        journal.execute(
            'SELECT count(*) FROM results WHERE run_id = ?', (new['id'],)
        ).fetchone()[0]
        > 0
    )
    assert store.lookup(kept_sha) == entries[kept_sha]
    assert gitrepos.git(cache, 'for-each-ref', '--format=%(refname)') == (
        f'refs/heads/master\nrefs/pluginsd/{kept_sha}\n'
        'refs/remotes/origin/HEAD\nrefs/remotes/origin/master'
    )
    # Bad input is one clear line.
    proc = subprocess.run(
        [MANAGE, '--config-file', config, 'purge', '--older-than', 'soon'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "pluginsd-manage: --older-than 'soon': expected a number of days, "
        'or a number with s, m, h or d (e.g. 30d, 12h)'
    )


def test_rejected_list_names_when_who_and_why(tmp_path):
    from pluginsd.db import api as db_api

    url = 'sqlite:///' + str(tmp_path / 'pluginsd.sqlite')
    db = db_api.Database(url)
    db.upgrade()
    db.record_rejected(
        'node cmp1 (SHA256:x)',
        'Result',
        'Result: version 2.0 is not compatible with 1.0 (major 1 expected)',
        {'object': 'Result', 'version': '2.0', 'data': {}},
    )
    db.engine.dispose()
    config = cluster.write_conf(
        str(tmp_path / 'manage.conf'),
        {
            'DEFAULT': {'state_path': str(tmp_path)},
            'database': {'connection': url},
        },
    )
    proc = subprocess.run(
        [MANAGE, '--config-file', config, 'rejected', 'list'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    [line] = proc.stdout.splitlines()
    when, rest = line.split(' ', 1)
    assert when.endswith('+00:00')
    assert rest == (
        'node cmp1 (SHA256:x) Result: version 2.0 is not compatible with 1.0 '
        '(major 1 expected)'
    )
