"""Alembic environment: pluginsd.db.api.upgrade passes the connection."""

from alembic import context

from pluginsd.db import models

connection = context.config.attributes['connection']
context.configure(
    connection=connection,
    target_metadata=models.Base.metadata,
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
