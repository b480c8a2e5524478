"""Runs, results and nodes.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from alembic import op
import sqlalchemy as sa

revision = '0001'
down_revision = None
branch_labels = ('pluginsd',)
depends_on = None


def upgrade():
    op.create_table(
        'runs',
        sa.Column('id', sa.String(36), primary_key=True),
        sa.Column('mode', sa.String(16), nullable=False),
        sa.Column('state', sa.String(16), nullable=False),
        sa.Column('created_at', sa.Float, nullable=False),
        sa.Column('updated_at', sa.Float, nullable=False),
        sa.Column('local_conf_path', sa.Text, nullable=False),
        sa.Column('local_confs', sa.JSON, nullable=False),
        sa.Column('plans', sa.JSON, nullable=False),
        sa.Column('stages', sa.JSON, nullable=False),
        sa.Column('node_roles', sa.JSON, nullable=False),
        sa.Column('stage_index', sa.Integer, nullable=False),
        sa.Column('phase_index', sa.Integer, nullable=False),
        sa.Column('attempt', sa.Integer, nullable=False),
        sa.Column('pending_hosts', sa.JSON, nullable=True),
        sa.Column('error', sa.Text, nullable=False),
    )
    op.create_table(
        'results',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            'run_id',
            sa.String(36),
            sa.ForeignKey('runs.id', ondelete='CASCADE'),
            nullable=False,
            index=True,
        ),
        sa.Column('node', sa.String(255), nullable=False),
        sa.Column('plugin', sa.String(255), nullable=False),
        sa.Column('mode', sa.String(16), nullable=False),
        sa.Column('phase', sa.String(16), nullable=False),
        sa.Column('attempt', sa.Integer, nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('exit_code', sa.Integer, nullable=True),
        sa.Column('started_at', sa.Float, nullable=True),
        sa.Column('ended_at', sa.Float, nullable=True),
        sa.Column('log_path', sa.Text, nullable=False),
        sa.Column('tail', sa.Text, nullable=False),
        sa.Column('message', sa.Text, nullable=False),
        sa.UniqueConstraint(
            'run_id', 'node', 'plugin', 'mode', 'phase', name='uniq_result'
        ),
    )
    op.create_table(
        'nodes',
        sa.Column('host', sa.String(255), primary_key=True),
        sa.Column('roles', sa.JSON, nullable=False),
        sa.Column('version', sa.String(64), nullable=False),
        sa.Column('activity', sa.Text, nullable=False),
        sa.Column('registered_at', sa.Float, nullable=False),
        sa.Column('last_seen', sa.Float, nullable=False),
    )
