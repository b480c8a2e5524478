"""Node keys (enrollment) and replay high-water marks.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'node_keys',
        sa.Column('host', sa.String(255), primary_key=True),
        sa.Column('fingerprint', sa.String(64), primary_key=True),
        sa.Column('public_key', sa.Text, nullable=False),
        # pending, accepted or rejected
        sa.Column('state', sa.String(16), nullable=False),
        sa.Column('created_at', sa.Float, nullable=False),
        sa.Column('updated_at', sa.Float, nullable=False),
    )
    op.create_table(
        'replay_marks',
        sa.Column('fingerprint', sa.String(64), primary_key=True),
        sa.Column('seq', sa.BigInteger, nullable=False),
    )
