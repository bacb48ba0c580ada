"""Alembic environment: runs the revisions on the connection `upgrade_to_head` was given."""

from alembic import context

from skillmeat_pipeline.lib.catalog.migrations import VERSION_TABLE

context.configure(
    connection=context.config.attributes["connection"],
    version_table=VERSION_TABLE,
)
# The connection is already in the caller's transaction, so this joins it rather than commits.
with context.begin_transaction():
    context.run_migrations()
