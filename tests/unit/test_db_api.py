"""pluginsd.db.api on a real SQLite file, schema made by the migrations."""

import pytest
import sqlalchemy as sa

from pluginsd import exception
from pluginsd.db import api


@pytest.fixture
def db(tmp_path):
    database = api.Database(
        'sqlite:///' + str(tmp_path / 'state' / 'db.sqlite')
    )
    database.upgrade()
    yield database
    database.engine.dispose()


def result(
    plugin='alpha',
    node='n1',
    phase='install',
    attempt=1,
    status='ok',
    run_id='run-1',
    **extra,
):
    return dict(
        run_id=run_id,
        node=node,
        plugin=plugin,
        mode='stack',
        phase=phase,
        attempt=attempt,
        status=status,
        **extra,
    )


RUN_DEFAULTS = {
    'local_conf_path': '',
    'local_confs': {},
    'plans': {},
    'stages': [],
    'node_roles': {},
    'stage_index': 0,
    'phase_index': 0,
    'attempt': 1,
    'pending_hosts': None,
    'error': '',
    'attempts': None,
    'version': 0,
    'owner': None,
    'lease_expires': None,
    'phase_started_at': None,
    'published_at': None,
}


class TestSchema:
    def test_upgrade_creates_tables_and_is_repeatable(self, db):
        db.upgrade()
        tables = set(sa.inspect(db.engine).get_table_names())
        assert {'runs', 'results', 'nodes', 'alembic_version'} <= tables
        with db.engine.connect() as c:
            assert c.execute(
                sa.text('SELECT version_num FROM alembic_version')
            ).scalars().all() == ['0006']

    def test_an_older_schema_is_refused_naming_the_command(self, tmp_path):
        old = api.Database('sqlite:///' + str(tmp_path / 'old.sqlite'))
        with pytest.raises(exception.ConfigError) as empty:
            old.check_schema()
        assert 'nothing (empty database)' in str(empty.value)
        assert '`pluginsd-manage db upgrade`' in str(empty.value)
        with old.engine.begin() as connection:
            from alembic import command

            command.upgrade(api.alembic_cfg(connection), '0002')
        with pytest.raises(exception.ConfigError) as behind:
            old.check_schema()
        assert 'schema is at 0002, this pluginsd needs 0006: run' in str(
            behind.value
        )
        old.upgrade()
        old.check_schema()  # current: no error
        old.engine.dispose()


class TestRuns:
    def test_create_and_get(self, db, clock):
        run = db.create_run(id='11111111-aaaa', mode='stack', state='pending')
        assert run == dict(
            RUN_DEFAULTS,
            id='11111111-aaaa',
            mode='stack',
            state='pending',
            created_at=clock[0],
            updated_at=clock[0],
        )
        assert db.get_run('11111111-aaaa') == run

    def test_json_columns_round_trip(self, db, clock):
        values = dict(
            local_confs={'controller': {'path': '/x', 'sections': []}},
            plans={'controller': {'plugins': [], 'declared': ['a']}},
            stages=[['h1'], ['h2', 'h3']],
            node_roles={'h1': ['controller']},
            pending_hosts=['h2'],
        )
        db.create_run(id='r', mode='stack', state='running', **values)
        run = db.get_run('r')
        for key, value in values.items():
            assert run[key] == value

    def test_update(self, db, clock):
        db.create_run(id='r1', mode='stack', state='pending')
        clock[0] += 7
        db.update_run(
            'r1', state='running', phase_index=2, pending_hosts=['h1']
        )
        run = db.get_run('r1')
        assert (run['state'], run['phase_index'], run['pending_hosts']) == (
            'running',
            2,
            ['h1'],
        )
        assert run['updated_at'] == clock[0]
        assert run['created_at'] == clock[0] - 7

    def test_list(self, db):
        db.create_run(id='b', mode='stack', state='done', created_at=2.0)
        db.create_run(id='a', mode='clean', state='running', created_at=3.0)
        db.create_run(id='c', mode='unstack', state='pending', created_at=1.0)
        assert [r['id'] for r in db.list_runs()] == ['c', 'b', 'a']
        assert [r['id'] for r in db.list_runs(['running', 'pending'])] == [
            'c',
            'a',
        ]
        assert db.list_runs(['failed']) == []

    def test_get_by_unique_prefix(self, db):
        db.create_run(id='abc123', mode='stack', state='pending')
        db.create_run(id='abd456', mode='stack', state='pending')
        assert db.get_run('abc')['id'] == 'abc123'
        assert db.get_run('abd4')['id'] == 'abd456'

    def test_exact_id_wins_over_prefix(self, db):
        db.create_run(id='ab', mode='stack', state='pending')
        db.create_run(id='abc', mode='stack', state='pending')
        assert db.get_run('ab')['id'] == 'ab'

    def test_unknown(self, db):
        db.create_run(id='abc123', mode='stack', state='pending')
        with pytest.raises(exception.RunNotFound) as err:
            db.get_run('zzz')
        assert str(err.value) == 'no run zzz'

    def test_ambiguous_prefix(self, db):
        db.create_run(id='abc123', mode='stack', state='pending')
        db.create_run(id='abd456', mode='stack', state='pending')
        with pytest.raises(exception.RunNotFound) as err:
            db.get_run('ab')
        assert str(err.value) == 'no run ab'

    @pytest.mark.parametrize('query', ['%', '_', 'a_c', 'a%'])
    def test_like_wildcards_are_not_prefixes(self, db, query):
        db.create_run(id='abc123', mode='stack', state='pending')
        with pytest.raises(exception.RunNotFound):
            db.get_run(query)

    def test_delete_run_deletes_its_results(self, db):
        db.create_run(id='r1', mode='stack', state='done')
        db.create_run(id='r2', mode='stack', state='done')
        db.store_results([result(run_id='r1'), result(run_id='r2')])
        db.delete_run('r1')
        with pytest.raises(exception.RunNotFound):
            db.get_run('r1')
        assert len(db.list_results('r1')) == 0
        assert len(db.list_results('r2')) == 1


class TestResults:
    @pytest.fixture(autouse=True)
    def run(self, db):
        db.create_run(id='run-1', mode='stack', state='running')

    def test_store_and_list(self, db):
        r = result(
            exit_code=0,
            started_at=1.0,
            ended_at=2.0,
            log_path='/l/alpha.log',
            tail='done',
            message='',
        )
        assert db.store_results([r]) == [r]
        rows = db.list_results('run-1')
        assert len(rows) == 1
        row = dict(rows[0])
        assert isinstance(row.pop('id'), int)
        assert row == r

    def test_defaults(self, db):
        db.store_results([result()])
        row = db.list_results('run-1')[0]
        assert (
            row['exit_code'],
            row['started_at'],
            row['ended_at'],
            row['log_path'],
            row['tail'],
            row['message'],
        ) == (None, None, None, '', '', '')

    def test_idempotent_same_key_twice(self, db):
        db.store_results([result()])
        db.store_results([result()])
        assert len(db.list_results('run-1')) == 1

    def test_idempotent_within_one_batch(self, db):
        db.store_results([result(status='running'), result(status='ok')])
        assert len(db.list_results('run-1')) == 1
        assert db.list_results('run-1')[0]['status'] == 'ok'

    def test_a_resend_is_not_stored_again(self, db):
        assert db.store_results([result(exit_code=0, tail='x')]) != []
        version = db.get_run('run-1')['version']
        assert db.store_results([result(exit_code=0, tail='x')]) == []
        assert db.get_run('run-1')['version'] == version
        assert len(db.list_results('run-1')) == 1

    def test_a_batch_of_many_nodes_is_checked_in_groups(self, db, monkeypatch):
        # Groups of two nodes: five nodes take three queries, and each
        # result is still found stored under its own key.
        monkeypatch.setattr(api, 'NODES_PER_QUERY', 2)
        db.create_run(id='run-2', mode='stack', state='running')
        batch = [
            result(plugin, node=f'n{i}', run_id=run_id, exit_code=0)
            for i in range(5)
            for plugin in ('alpha', '')
            for run_id in ('run-1', 'run-2')
        ]
        assert db.store_results(batch) == batch
        assert db.store_results(batch) == []  # all of it a resend
        newer = [
            result('alpha', node=f'n{i}', attempt=2, status='failed')
            for i in (0, 4)
        ]
        later_phase = [result('alpha', node='n2', phase='extra')]
        assert db.store_results(newer + later_phase + batch) == (
            newer + later_phase
        )
        rows = {
            (r['node'], r['plugin'], r['phase']): r['status']
            for r in db.list_results('run-1')
        }
        assert len(rows) == 11
        assert rows[('n0', 'alpha', 'install')] == 'failed'
        assert rows[('n4', 'alpha', 'install')] == 'failed'
        assert rows[('n1', 'alpha', 'install')] == 'ok'
        assert rows[('n2', 'alpha', 'extra')] == 'ok'

    def test_same_attempt_replaces(self, db):
        db.store_results([result(status='running')])
        db.store_results([result(status='failed', exit_code=3)])
        rows = db.list_results('run-1')
        assert [(r['status'], r['exit_code']) for r in rows] == [('failed', 3)]

    def test_newer_attempt_replaces(self, db):
        db.store_results([result(status='failed', attempt=1)])
        db.store_results([result(status='ok', attempt=2)])
        rows = db.list_results('run-1')
        assert [(r['status'], r['attempt']) for r in rows] == [('ok', 2)]

    def test_older_attempt_does_not_overwrite(self, db):
        db.store_results([result(status='ok', attempt=2, message='new')])
        db.store_results([result(status='failed', attempt=1, message='old')])
        rows = db.list_results('run-1')
        assert [(r['status'], r['attempt'], r['message']) for r in rows] == [
            ('ok', 2, 'new')
        ]
        assert len(db.list_results('run-1')) == 1

    def test_older_attempt_not_reported_as_stored(self, db):
        newer = result(status='ok', attempt=2)
        assert db.store_results([newer]) == [newer]
        assert db.store_results([result(status='failed', attempt=1)]) == []

    def test_missing_attempt_counts_as_first(self, db):
        db.store_results([result(status='ok', attempt=2)])
        r = result(status='failed')
        del r['attempt']
        db.store_results([r])
        assert db.list_results('run-1')[0]['status'] == 'ok'

    def test_distinct_keys(self, db):
        db.store_results(
            [
                result('alpha'),
                result('beta'),
                result(
                    '',
                ),
                result('alpha', node='n2'),
                result('alpha', phase='extra'),
            ]
        )
        assert len(db.list_results('run-1')) == 5
        assert [
            (r['node'], r['plugin'], r['phase'])
            for r in db.list_results('run-1', node='n1', phase='install')
        ] == [
            ('n1', 'alpha', 'install'),
            ('n1', 'beta', 'install'),
            ('n1', '', 'install'),
        ]
        assert len(db.list_results('other')) == 0

    def test_delete_results(self, db):
        db.store_results(
            [
                result('a', node='n1', phase='install'),
                result('a', node='n2', phase='install'),
                result('a', node='n1', phase='extra'),
                result('a', node='n1', phase='post-config'),
            ]
        )
        db.delete_results('run-1', 'stack', ['install', 'extra'], ['n1'])
        assert sorted(
            (r['node'], r['phase']) for r in db.list_results('run-1')
        ) == [('n1', 'post-config'), ('n2', 'install')]

    def test_delete_results_other_mode_untouched(self, db):
        db.store_results([result()])
        db.delete_results('run-1', 'clean', ['install'], ['n1'])
        assert len(db.list_results('run-1')) == 1

    def test_result_needs_existing_run(self, db):
        with pytest.raises(sa.exc.IntegrityError):
            db.store_results([result(run_id='no-such-run')])


class TestNodes:
    def test_upsert_new_then_known(self, db, clock):
        node, before = db.upsert_node('h1', ('controller',), '1.0', 'idle')
        assert before is None
        first = {
            'host': 'h1',
            'roles': ['controller'],
            'version': '1.0',
            'activity': 'idle',
            'registered_at': clock[0],
            'last_seen': clock[0],
            'allowed_sources': None,
            'devstack_dir': '',
            'state': 'up',
        }
        assert node == first
        clock[0] += 10
        node, before = db.upsert_node(
            'h1',
            ['controller', 'compute'],
            '1.1',
            'running stack install',
            ['https://opendev.org/'],
            '/opt/stack/devstack',
            'stopped',
        )
        assert before == first
        assert node == {
            'host': 'h1',
            'roles': ['controller', 'compute'],
            'version': '1.1',
            'activity': 'running stack install',
            'registered_at': clock[0] - 10,
            'last_seen': clock[0],
            'allowed_sources': ['https://opendev.org/'],
            'devstack_dir': '/opt/stack/devstack',
            'state': 'stopped',
        }

    def test_list_nodes_sorted(self, db):
        db.upsert_node('h2', ['compute'], '1', '')
        db.upsert_node('h1', ['controller'], '1', '')
        assert [n['host'] for n in db.list_nodes()] == ['h1', 'h2']

    def test_touch_nodes_and_the_silent_ones(self, db, clock):
        for host in ('h1', 'h2', 'h3'):
            db.upsert_node(host, ['compute'], '1', '')
        db.upsert_node('h3', ['compute'], '1', '', state='stopped')
        now = clock[0]
        gone = db.touch_nodes(
            {'h1': now + 30, 'h2': now - 5, 'deleted': now + 30},
            marks={'SHA256:a': 7},
        )
        assert gone == ['deleted']
        seen = {n['host']: n['last_seen'] for n in db.list_nodes()}
        assert seen == {'h1': now + 30, 'h2': now, 'h3': now}  # never lower
        assert db.load_marks() == {'SHA256:a': 7}
        db.touch_nodes({}, marks={'SHA256:a': 3})  # a mark only rises
        assert db.load_marks() == {'SHA256:a': 7}
        silent = db.list_nodes(silent_before=now + 10)
        assert [n['host'] for n in silent] == ['h2', 'h3']
        assert [n['host'] for n in db.list_nodes(silent_before=now)] == ['h3']


class TestReplayMarks:
    def test_a_mark_only_rises(self, db):
        db.save_mark('SHA256:a', 5)
        db.save_mark('SHA256:a', 3)  # an older message, stored late
        db.save_mark('SHA256:b', 1)
        assert db.load_marks() == {'SHA256:a': 5, 'SHA256:b': 1}
        db.save_mark('SHA256:a', 9)
        assert db.load_marks()['SHA256:a'] == 9
