import sqlalchemy as sa
from sqlalchemy import orm


class Base(orm.DeclarativeBase):
    pass


class Run(Base):
    __tablename__ = 'runs'

    id = sa.Column(sa.String(36), primary_key=True)
    mode = sa.Column(sa.String(16), nullable=False)
    state = sa.Column(sa.String(16), nullable=False)
    created_at = sa.Column(sa.Float, nullable=False)
    updated_at = sa.Column(sa.Float, nullable=False)
    local_conf_path = sa.Column(sa.Text, nullable=False, default='')
    # {role: LocalConf dict}, {role: Plan dict}, [[host, ...], ...]
    local_confs = sa.Column(sa.JSON, nullable=False, default=dict)
    plans = sa.Column(sa.JSON, nullable=False, default=dict)
    stages = sa.Column(sa.JSON, nullable=False, default=list)
    node_roles = sa.Column(sa.JSON, nullable=False, default=dict)
    stage_index = sa.Column(sa.Integer, nullable=False, default=0)
    phase_index = sa.Column(sa.Integer, nullable=False, default=0)
    attempt = sa.Column(sa.Integer, nullable=False, default=1)
    # hosts that must run the current phase (a retry of failed nodes only)
    pending_hosts = sa.Column(sa.JSON, nullable=True)
    error = sa.Column(sa.Text, nullable=False, default='')
    # earlier attempts: state, error and the results a retry replaced
    attempts = sa.Column(sa.JSON, nullable=True)
    # Bumped by every transition: the compare-and-swap token.
    version = sa.Column(sa.Integer, nullable=False, default=0)
    # The daemon driving the run, until lease_expires (time.time()).
    owner = sa.Column(sa.String(255), nullable=True)
    lease_expires = sa.Column(sa.Float, nullable=True)
    phase_started_at = sa.Column(sa.Float, nullable=True)
    published_at = sa.Column(sa.Float, nullable=True)


class Result(Base):
    __tablename__ = 'results'
    __table_args__ = (
        sa.UniqueConstraint(
            'run_id', 'node', 'plugin', 'mode', 'phase', name='uniq_result'
        ),
    )

    id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
    run_id = sa.Column(
        sa.String(36),
        sa.ForeignKey('runs.id', ondelete='CASCADE'),
        nullable=False,
        index=True,
    )
    node = sa.Column(sa.String(255), nullable=False)
    plugin = sa.Column(sa.String(255), nullable=False)
    mode = sa.Column(sa.String(16), nullable=False)
    phase = sa.Column(sa.String(16), nullable=False)
    attempt = sa.Column(sa.Integer, nullable=False, default=1)
    status = sa.Column(sa.String(16), nullable=False)
    exit_code = sa.Column(sa.Integer, nullable=True)
    started_at = sa.Column(sa.Float, nullable=True)
    ended_at = sa.Column(sa.Float, nullable=True)
    log_path = sa.Column(sa.Text, nullable=False, default='')
    tail = sa.Column(sa.Text, nullable=False, default='')
    message = sa.Column(sa.Text, nullable=False, default='')


class Node(Base):
    __tablename__ = 'nodes'

    host = sa.Column(sa.String(255), primary_key=True)
    roles = sa.Column(sa.JSON, nullable=False, default=list)
    version = sa.Column(sa.String(64), nullable=False, default='')
    activity = sa.Column(sa.Text, nullable=False, default='')
    registered_at = sa.Column(sa.Float, nullable=False)
    last_seen = sa.Column(sa.Float, nullable=False)
    # [agent] allowed_sources as the node reported it; None: any source.
    allowed_sources = sa.Column(sa.JSON, nullable=True)
    # [runner] devstack_dir as the node reported it; '': standalone library.
    devstack_dir = sa.Column(
        sa.Text, nullable=False, default='', server_default=''
    )
    state = sa.Column(sa.String(16), nullable=False, default='up')


class Rejected(Base):
    """A wire item refused on receipt, with why (one row per distinct item)."""

    __tablename__ = 'rejected'

    id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
    received_at = sa.Column(sa.Float, nullable=False)
    sender = sa.Column(sa.String(255), nullable=False)
    kind = sa.Column(sa.String(32), nullable=False)
    reason = sa.Column(sa.Text, nullable=False)
    digest = sa.Column(sa.String(64), nullable=False, unique=True)
    item = sa.Column(sa.Text, nullable=False)


class NodeKey(Base):
    """A node's public key and whether an operator accepted it."""

    __tablename__ = 'node_keys'

    host = sa.Column(sa.String(255), primary_key=True)
    fingerprint = sa.Column(sa.String(64), primary_key=True)
    public_key = sa.Column(sa.Text, nullable=False)
    state = sa.Column(sa.String(16), nullable=False)  # pending/accepted/...
    created_at = sa.Column(sa.Float, nullable=False)
    updated_at = sa.Column(sa.Float, nullable=False)


class ReplayMark(Base):
    """Highest message sequence accepted from a key (no replay, ever)."""

    __tablename__ = 'replay_marks'

    fingerprint = sa.Column(sa.String(64), primary_key=True)
    seq = sa.Column(sa.BigInteger, nullable=False)
