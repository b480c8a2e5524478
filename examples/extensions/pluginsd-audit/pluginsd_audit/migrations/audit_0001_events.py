"""audit_events: the audit trail of pluginsd-audit.

Revision ID: audit_0001
Revises:
Create Date: 2026-11-22
"""

from alembic import op
import sqlalchemy as sa

revision = 'audit_0001'
down_revision = None
branch_labels = ('audit',)
depends_on = None


def upgrade():
    op.create_table(
        'audit_events',
        sa.Column('id', sa.Integer, primary_key=True, autoincrement=True),
        sa.Column('event', sa.String(32), nullable=False),
        sa.Column('run_id', sa.String(36), nullable=False, index=True),
        sa.Column('detail', sa.Text, nullable=False),
        sa.Column('created_at', sa.Float, nullable=False),
    )
