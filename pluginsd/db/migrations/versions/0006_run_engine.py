"""Run engine: row versions, leases, node state, rejected wire items.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('runs') as batch:
        # Bumped by every transition: the compare-and-swap token.
        batch.add_column(
            sa.Column(
                'version', sa.Integer, nullable=False, server_default='0'
            )
        )
        # The daemon driving the run, until lease_expires.
        batch.add_column(sa.Column('owner', sa.String(255), nullable=True))
        batch.add_column(sa.Column('lease_expires', sa.Float, nullable=True))
        # When the current phase was first and last published.
        batch.add_column(
            sa.Column('phase_started_at', sa.Float, nullable=True)
        )
        batch.add_column(sa.Column('published_at', sa.Float, nullable=True))
    with op.batch_alter_table('nodes') as batch:
        batch.add_column(
            sa.Column(
                'state', sa.String(16), nullable=False, server_default='up'
            )
        )
    op.create_table(
        'rejected',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        sa.Column('received_at', sa.Float, nullable=False),
        sa.Column('sender', sa.String(255), nullable=False),
        sa.Column('kind', sa.String(32), nullable=False),
        sa.Column('reason', sa.Text, nullable=False),
        # sha256 of the item: a resent bad item is recorded once.
        sa.Column('digest', sa.String(64), nullable=False, unique=True),
        sa.Column('item', sa.Text, nullable=False),
    )
