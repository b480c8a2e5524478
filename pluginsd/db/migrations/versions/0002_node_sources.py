"""Nodes report the plugin sources they allow.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    # None: the node did not say (or allows any source, all-in-one).
    op.add_column(
        'nodes', sa.Column('allowed_sources', sa.JSON, nullable=True)
    )
