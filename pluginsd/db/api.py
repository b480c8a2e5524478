"""Every database access of the daemon, in one place."""

import hashlib
import json
import os
import threading
import time

from alembic import command as alembic_command
from alembic import config as alembic_config
import sqlalchemy as sa
from sqlalchemy import orm
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite

from pluginsd import exception
from pluginsd.db import models

MAX_REJECTED = 4096  # characters of a rejected item kept
# INSERT ... ON CONFLICT DO UPDATE, where the dialect has it.
_UPSERTS = {'sqlite': sqlite.insert, 'postgresql': postgresql.insert}
MIGRATIONS = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), 'migrations'
)


def _sqlite_pragmas(dbapi_connection, _record):
    cursor = dbapi_connection.cursor()
    cursor.execute('PRAGMA journal_mode=WAL')
    cursor.execute('PRAGMA synchronous=NORMAL')
    cursor.execute('PRAGMA foreign_keys=ON')
    cursor.close()


def make_engine(url):
    if url.startswith('sqlite:///'):
        path = url[len('sqlite:///') :]
        if path and path != ':memory:':
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    engine = sa.create_engine(url)
    if engine.dialect.name == 'sqlite':
        sa.event.listen(engine, 'connect', _sqlite_pragmas)
    return engine


def alembic_cfg(connection, extra_locations=()):
    cfg = alembic_config.Config()
    cfg.set_main_option('script_location', MIGRATIONS)
    cfg.set_main_option(
        'version_locations',
        ' '.join([os.path.join(MIGRATIONS, 'versions'), *extra_locations]),
    )
    cfg.attributes['connection'] = connection
    return cfg


def upgrade(engine, extra_locations=()):
    """Apply every migration (pluginsd's and its extensions' branches)."""
    with engine.begin() as connection:
        alembic_command.upgrade(
            alembic_cfg(connection, extra_locations), 'heads'
        )


def pending_heads(engine, extra_locations=()):
    """(applied heads, wanted heads): equal when the schema is current."""
    from alembic.runtime import migration
    from alembic.script import ScriptDirectory

    with engine.connect() as connection:
        applied = set(
            migration.MigrationContext.configure(
                connection
            ).get_current_heads()
        )
        script = ScriptDirectory.from_config(
            alembic_cfg(connection, extra_locations)
        )
        wanted = set(script.get_heads())
    return applied, wanted


def check_schema(engine, extra_locations=()):
    """Refuse a database this code's migrations have not all been applied to.

    Several daemons may share one database: the schema only changes when an
    operator runs ``pluginsd-manage db upgrade``, never at a daemon's start.
    """
    applied, wanted = pending_heads(engine, extra_locations)
    if applied == wanted:
        return
    raise exception.ConfigError(
        reason=f'the database schema is at '
        f'{", ".join(sorted(applied)) or "nothing (empty database)"}, this '
        f'pluginsd needs {", ".join(sorted(wanted))}: '
        'run `pluginsd-manage db upgrade`'
    )


# Well under SQLite's oldest limit of 999 bound parameters per statement.
NODES_PER_QUERY = 500
RESULT_FIELDS = (
    'attempt',
    'status',
    'exit_code',
    'started_at',
    'ended_at',
    'log_path',
    'tail',
    'message',
)


def _content(result):
    """What makes two results with the same key the same result."""
    defaults = {'attempt': 1, 'log_path': '', 'tail': '', 'message': ''}
    return tuple(result.get(k, defaults.get(k)) for k in RESULT_FIELDS)


def _stored_under(session, results):
    """What is stored under the keys of ``results``: {key: (attempt, row
    id)} and the set of (key, content) pairs.

    A few queries for a whole batch (its runs, in groups of nodes), not one
    per node: hundreds of nodes report at the end of every phase.
    """
    R = models.Result
    columns = [R.id, R.run_id, R.node, R.plugin, R.mode, R.phase]
    columns += [getattr(R, name) for name in RESULT_FIELDS]
    asked = {}
    for r in results:
        nodes, phases = asked.setdefault(r['run_id'], (set(), set()))
        nodes.add(r['node'])
        phases.add(r['phase'])
    known, same = {}, set()
    for run_id, (nodes, phases) in asked.items():
        nodes = sorted(nodes)
        for first in range(0, len(nodes), NODES_PER_QUERY):
            query = sa.select(*columns).where(
                R.run_id == run_id,
                R.node.in_(nodes[first : first + NODES_PER_QUERY]),
                R.phase.in_(phases),
            )
            for row in session.execute(query):
                key = (row.run_id, row.node, row.plugin, row.mode, row.phase)
                known[key] = (row.attempt, row.id)
                same.add((key, _content(row._mapping)))
    return known, same


def _row(obj):
    return {c.name: getattr(obj, c.name) for c in obj.__table__.columns}


def _raise_marks(connection, marks):
    """Raise each stored replay mark to its new value, never lower."""
    table = models.ReplayMark.__table__
    upsert = _UPSERTS.get(connection.dialect.name)
    if upsert is not None:  # SQLite and PostgreSQL: one statement
        insert = upsert(table)
        connection.execute(
            insert.on_conflict_do_update(
                index_elements=[table.c.fingerprint],
                set_={'seq': insert.excluded.seq},
                where=table.c.seq < insert.excluded.seq,
            ),
            [{'fingerprint': fp, 'seq': seq} for fp, seq in marks.items()],
        )
        return
    for fingerprint, seq in marks.items():  # another database
        stored = connection.execute(
            sa.select(table.c.seq).where(table.c.fingerprint == fingerprint)
        ).first()
        if stored is None:
            connection.execute(
                table.insert().values(fingerprint=fingerprint, seq=seq)
            )
        elif stored.seq < seq:
            connection.execute(
                table.update()
                .where(table.c.fingerprint == fingerprint)
                .values(seq=seq)
            )


class Database:
    def __init__(self, url):
        self.engine = make_engine(url)
        self._session = orm.sessionmaker(self.engine, expire_on_commit=False)
        self._lock = threading.Lock()  # SQLite has one writer anyway

    def upgrade(self, extra_locations=()):
        upgrade(self.engine, extra_locations)

    def check_schema(self, extra_locations=()):
        check_schema(self.engine, extra_locations)

    # -- runs --------------------------------------------------------------

    def create_run(self, **values):
        """Store a new run; DuplicateRun if its id is taken."""
        now = time.time()
        values.setdefault('created_at', now)
        values.setdefault('updated_at', now)
        try:
            with self._lock, self._session.begin() as s:
                run = models.Run(**values)
                s.add(run)
        except sa.exc.IntegrityError:
            if self.run_exists(values['id']):
                raise exception.DuplicateRun(run=values['id']) from None
            raise
        return _row(run)

    def get_run(self, run_id):
        with self._session() as s:
            run = s.get(models.Run, run_id)
            if run is None:
                matches = s.scalars(
                    sa.select(models.Run).where(
                        models.Run.id.startswith(run_id, autoescape=True)
                    )
                ).all()
                if len(matches) != 1:
                    raise exception.RunNotFound(run=run_id)
                run = matches[0]
            return _row(run)

    def run_exists(self, run_id):
        with self._session() as s:
            return (
                s.scalar(
                    sa.select(models.Run.id).where(models.Run.id == run_id)
                )
                is not None
            )

    def update_run(self, run_id, **values):
        values['updated_at'] = time.time()
        with self._lock, self._session.begin() as s:
            s.execute(
                sa.update(models.Run)
                .where(models.Run.id == run_id)
                .values(version=models.Run.version + 1, **values)
            )

    def run_version(self, run_id):
        with self._session() as s:
            return s.scalar(
                sa.select(models.Run.version).where(models.Run.id == run_id)
            )

    # Every change of a running run below is one conditional UPDATE (a
    # compare-and-swap): it applies only if the row is still as the caller
    # read it, and the caller learns whether it did.

    def _swap(self, where, values):
        R = models.Run
        values = dict(values, updated_at=time.time(), version=R.version + 1)
        with self._lock, self._session.begin() as s:
            ids = s.scalars(
                sa.update(R).where(*where).values(**values).returning(R.id)
            ).all()
            return _row(s.get(R, ids[0])) if ids else None

    def transition(self, run_id, version, owner, values):
        """Apply ``values`` if the run is at ``version`` and ``owner``'s."""
        R = models.Run
        return self._swap(
            (R.id == run_id, R.version == version, R.owner == owner), values
        )

    def finish_run(self, run_id, from_states, state, error):
        """End a run that is in one of ``from_states`` (e.g. cancel it)."""
        R = models.Run
        return self._swap(
            (R.id == run_id, R.state.in_(from_states)),
            {'state': state, 'error': error},
        )

    def retry_run(
        self,
        run_id,
        version,
        from_states,
        phases,
        hosts,
        pending_hosts,
        attempts=None,
    ):
        """Start the run's next attempt, if it is still as the caller saw it.

        The results the new attempt replaces go in the same transaction.
        """
        R = models.Run
        with self._lock, self._session.begin() as s:
            ids = s.scalars(
                sa.update(R)
                .where(
                    R.id == run_id,
                    R.version == version,
                    R.state.in_(from_states),
                )
                .values(
                    state='running',
                    attempt=R.attempt + 1,
                    version=R.version + 1,
                    pending_hosts=pending_hosts,
                    attempts=attempts or [],
                    error='',
                    owner=None,
                    lease_expires=None,
                    phase_started_at=None,
                    published_at=None,
                    updated_at=time.time(),
                )
                .returning(R.id)
            ).all()
            if not ids:
                return None
            run = s.get(R, run_id)
            s.execute(
                sa.delete(models.Result).where(
                    models.Result.run_id == run_id,
                    models.Result.mode == run.mode,
                    models.Result.phase.in_(phases),
                    models.Result.node.in_(hosts),
                )
            )
            return _row(run)

    def touch_published(self, run_id, version, now):
        """Note a republish (not a change a follower needs to see)."""
        R = models.Run
        with self._lock, self._session.begin() as s:
            return (
                s.execute(
                    sa.update(R)
                    .where(R.id == run_id, R.version == version)
                    .values(published_at=now)
                ).rowcount
                == 1
            )

    # -- leases ----------------------------------------------------------

    def acquire_lease(self, run_id, owner, duration):
        """Whether ``owner`` holds the run's lease (taken or renewed now)."""
        R = models.Run
        now = time.time()
        with self._lock, self._session.begin() as s:
            return (
                s.execute(
                    sa.update(R)
                    .where(
                        R.id == run_id,
                        R.state.in_(('planning', 'running')),
                        sa.or_(
                            R.owner.is_(None),
                            R.owner == owner,
                            R.lease_expires < now,
                        ),
                    )
                    .values(owner=owner, lease_expires=now + duration)
                ).rowcount
                == 1
            )

    def renew_leases(self, owner, duration):
        R = models.Run
        with self._lock, self._session.begin() as s:
            s.execute(
                sa.update(R)
                .where(R.owner == owner, R.state.in_(('planning', 'running')))
                .values(lease_expires=time.time() + duration)
            )

    def release_leases(self, owner):
        """Let go of the active runs of ``owner``.

        A finished run keeps the name of the daemon that drove it.
        """
        R = models.Run
        with self._lock, self._session.begin() as s:
            s.execute(
                sa.update(R)
                .where(R.owner == owner, R.state.in_(('planning', 'running')))
                .values(owner=None, lease_expires=None)
            )

    def active_runs(self):
        """id, state, owner and lease expiry of every active run."""
        R = models.Run
        with self._session() as s:
            return [
                r._asdict()
                for r in s.execute(
                    sa.select(R.id, R.state, R.owner, R.lease_expires).where(
                        R.state.in_(('planning', 'running'))
                    )
                )
            ]

    def list_runs(self, states=None):
        with self._session() as s:
            query = sa.select(models.Run).order_by(models.Run.created_at)
            if states:
                query = query.where(models.Run.state.in_(states))
            return [_row(r) for r in s.scalars(query)]

    def delete_run(self, run_id):
        with self._lock, self._session.begin() as s:
            s.execute(
                sa.delete(models.Result).where(models.Result.run_id == run_id)
            )
            s.execute(sa.delete(models.Run).where(models.Run.id == run_id))

    # -- results -----------------------------------------------------------

    def store_results(self, results, marks=None):
        """Store results idempotently; return the ones that were stored.

        A result replaces the stored one with the same (run, node, plugin,
        mode, phase) unless it belongs to an older attempt. The same result
        sent again (an agent resends what it has not heard acknowledged) is
        not stored again, nor returned: it is stored exactly once. One query
        reads what a batch's nodes already have; new rows go in as one
        insert. ``marks`` ({fingerprint: seq}): replay marks of the
        messages that carried them, raised in the same transaction.
        """
        R = models.Result
        stored, inserts, updates = [], {}, []
        with self._lock, self._session.begin() as s:
            if marks:
                _raise_marks(s.connection(), marks)
            known, same = _stored_under(s, results)
            for r in results:
                key = (
                    r['run_id'],
                    r['node'],
                    r['plugin'],
                    r['mode'],
                    r['phase'],
                )
                attempt = r.get('attempt', 1)
                if key in inserts:  # twice in one batch
                    if attempt >= inserts[key].get('attempt', 1):
                        inserts[key] = r
                        stored.append(r)
                elif key not in known:
                    inserts[key] = r
                    stored.append(r)
                elif (key, _content(r)) in same:
                    pass  # a resend of what is stored
                elif attempt >= known[key][0]:
                    updates.append((known[key][1], r))
                    stored.append(r)
                # else: a late result of an older attempt
            if inserts:
                s.execute(sa.insert(R), list(inserts.values()))
            for row_id, r in updates:
                s.execute(sa.update(R).where(R.id == row_id).values(**r))
            changed = {r['run_id'] for r in stored}
            if changed:  # followers of these runs see a new version
                s.execute(
                    sa.update(models.Run)
                    .where(models.Run.id.in_(changed))
                    .values(version=models.Run.version + 1)
                )
        return stored

    def list_results(self, run_id, since=None, **filters):
        """Results of a run in arrival order; ``since``: only ids above it."""
        with self._session() as s:
            query = sa.select(models.Result).where(
                models.Result.run_id == run_id
            )
            if since is not None:
                query = query.where(models.Result.id > since)
            for key, value in filters.items():
                query = query.where(getattr(models.Result, key) == value)
            return [
                _row(r) for r in s.scalars(query.order_by(models.Result.id))
            ]

    @staticmethod
    def _phase_reports_query(what, run_id, mode, phase, attempt):
        """The one place that answers "has host H reported phase P at
        attempt A": the node's own result (plugin '') is written last.
        """
        R = models.Result
        query = sa.select(what).where(
            R.run_id == run_id,
            R.mode == mode,
            R.phase == phase,
            R.plugin == '',
        )
        if attempt is not None:
            query = query.where(R.attempt == attempt)
        return query

    def phase_reports(self, run_id, mode, phase, attempt=None):
        """{node: its whole-phase result row} for one phase (and attempt)."""
        query = self._phase_reports_query(
            models.Result, run_id, mode, phase, attempt
        )
        with self._session() as s:
            return {r.node: _row(r) for r in s.scalars(query)}

    def reported_nodes(self, run_id, mode, phase, attempt=None):
        """The nodes that have reported the phase: names only, no rows (a
        running phase asks after every batch of results).
        """
        query = self._phase_reports_query(
            models.Result.node, run_id, mode, phase, attempt
        )
        with self.engine.connect() as connection:
            return set(connection.scalars(query))

    def delete_results(self, run_id, mode, phases, nodes):
        with self._lock, self._session.begin() as s:
            s.execute(
                sa.delete(models.Result).where(
                    models.Result.run_id == run_id,
                    models.Result.mode == mode,
                    models.Result.phase.in_(phases),
                    models.Result.node.in_(nodes),
                )
            )

    # -- nodes -------------------------------------------------------------

    def upsert_node(
        self,
        host,
        roles,
        version,
        activity,
        allowed_sources=None,
        devstack_dir='',
        state='up',
    ):
        """Record a heartbeat; return (node row, the row before or None)."""
        now = time.time()
        with self._lock, self._session.begin() as s:
            node = s.get(models.Node, host)
            before = None if node is None else _row(node)
            if node is None:
                node = models.Node(host=host, registered_at=now)
                s.add(node)
            node.roles, node.version, node.activity, node.state = (
                list(roles),
                version,
                activity,
                state,
            )
            node.last_seen = now
            node.allowed_sources = (
                None if allowed_sources is None else list(allowed_sources)
            )
            node.devstack_dir = devstack_dir or ''
        return _row(node), before

    # -- rejected wire items ---------------------------------------------

    def record_rejected(self, sender, kind, reason, item):
        """Keep a refused item and why; the same item resent is kept once."""
        text = json.dumps(item, sort_keys=True, default=repr)[:MAX_REJECTED]
        digest = hashlib.sha256(f'{sender}|{kind}|{text}'.encode()).hexdigest()
        with self._lock, self._session.begin() as s:
            if s.scalar(
                sa.select(models.Rejected.id).where(
                    models.Rejected.digest == digest
                )
            ):
                return False
            s.add(
                models.Rejected(
                    received_at=time.time(),
                    sender=str(sender)[:255],
                    kind=kind,
                    reason=reason,
                    digest=digest,
                    item=text,
                )
            )
        return True

    def list_rejected(self):
        with self._session() as s:
            return [
                _row(r)
                for r in s.scalars(
                    sa.select(models.Rejected).order_by(models.Rejected.id)
                )
            ]

    def delete_node(self, host):
        """Forget a node; True if it was known."""
        with self._lock, self._session.begin() as s:
            node = s.get(models.Node, host)
            if node is None:
                return False
            s.delete(node)
            return True

    def list_nodes(self, silent_before=None):
        """Every node, as plain rows (read every second: no ORM objects).

        ``silent_before``: only the nodes stopped or not seen since then.
        """
        table = models.Node.__table__
        query = sa.select(table).order_by(table.c.host)
        if silent_before is not None:
            query = query.where(
                sa.or_(
                    table.c.last_seen < silent_before,
                    table.c.state == 'stopped',
                )
            )
        with self.engine.connect() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    def touch_nodes(self, seen, marks=None):
        """Store {host: last_seen} in one transaction; the hosts that have
        no row any more (deleted meanwhile) are returned.

        ``marks`` ({fingerprint: seq}): replay marks of the same
        heartbeats, raised in that transaction.
        """
        table = models.Node.__table__
        with self._lock, self.engine.begin() as connection:
            if marks:
                _raise_marks(connection, marks)
            if not seen:
                return []
            connection.execute(  # one statement, many rows
                table.update()
                .where(table.c.host == sa.bindparam('node'))
                .where(table.c.last_seen < sa.bindparam('when'))
                .values(last_seen=sa.bindparam('when')),
                [{'node': h, 'when': w} for h, w in seen.items()],
            )
            present = set(
                connection.scalars(
                    sa.select(table.c.host).where(table.c.host.in_(seen))
                )
            )
        return [host for host in seen if host not in present]

    # -- node keys (enrollment) ----------------------------------------------

    def list_node_keys(self, host=None):
        with self._session() as s:
            query = sa.select(models.NodeKey).order_by(
                models.NodeKey.host, models.NodeKey.created_at
            )
            if host is not None:
                query = query.where(models.NodeKey.host == host)
            return [_row(k) for k in s.scalars(query)]

    def accepted_node_keys(self):
        """[(host, fingerprint)] of every accepted node key."""
        table = models.NodeKey.__table__
        query = sa.select(table.c.host, table.c.fingerprint).where(
            table.c.state == 'accepted'
        )
        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(query)]

    def get_node_key(self, host, fingerprint):
        # Read for every message a node sends: a plain row, no ORM object.
        table = models.NodeKey.__table__
        query = sa.select(table).where(
            table.c.host == host, table.c.fingerprint == fingerprint
        )
        with self.engine.connect() as connection:
            row = connection.execute(query).mappings().first()
        return None if row is None else dict(row)

    def add_node_key(self, host, fingerprint, public_key, state):
        """Record a key (if new); return its row."""
        now = time.time()
        with self._lock, self._session.begin() as s:
            key = s.get(models.NodeKey, (host, fingerprint))
            if key is None:
                key = models.NodeKey(
                    host=host,
                    fingerprint=fingerprint,
                    public_key=public_key,
                    state=state,
                    created_at=now,
                    updated_at=now,
                )
                s.add(key)
        return _row(key)

    def set_node_key_state(self, host, fingerprint, state):
        with self._lock, self._session.begin() as s:
            s.execute(
                sa.update(models.NodeKey)
                .where(
                    models.NodeKey.host == host,
                    models.NodeKey.fingerprint == fingerprint,
                )
                .values(state=state, updated_at=time.time())
            )

    def delete_node_keys(self, host, keep=None):
        """Forget the keys of ``host`` (but ``keep``); return fingerprints."""
        with self._lock, self._session.begin() as s:
            query = sa.select(models.NodeKey.fingerprint).where(
                models.NodeKey.host == host
            )
            gone = [fp for fp in s.scalars(query) if fp != keep]
            s.execute(
                sa.delete(models.NodeKey).where(
                    models.NodeKey.host == host,
                    models.NodeKey.fingerprint.in_(gone),
                )
            )
            s.execute(
                sa.delete(models.ReplayMark).where(
                    models.ReplayMark.fingerprint.in_(gone)
                )
            )
        return gone

    # -- replay marks --------------------------------------------------------

    def load_marks(self):
        with self._session() as s:
            return {
                m.fingerprint: m.seq
                for m in s.scalars(sa.select(models.ReplayMark))
            }

    def save_mark(self, fingerprint, seq):
        """Raise the stored mark of ``fingerprint`` to ``seq`` (never lower).

        A mark is written for nearly every message received: one upsert
        statement on SQLite and PostgreSQL.
        """
        with self._lock, self.engine.begin() as connection:
            _raise_marks(connection, {fingerprint: seq})
