"""Nodes report the DevStack checkout their plugins run on.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    # '': pluginsd's standalone library ([runner] devstack_dir unset).
    op.add_column(
        'nodes',
        sa.Column('devstack_dir', sa.Text, nullable=False, server_default=''),
    )
