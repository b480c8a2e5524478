"""Runs keep what each earlier attempt did: a retry no longer forgets it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    # [{attempt, state, error, ended_at, results: [the results a retry
    # replaced]}], oldest first; NULL for a run never retried.
    op.add_column('runs', sa.Column('attempts', sa.JSON, nullable=True))
