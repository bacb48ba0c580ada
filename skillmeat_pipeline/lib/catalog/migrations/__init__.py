"""Schema migrations of the catalog database, driven by alembic from `Catalog.migrate()`.

The revisions are plain Python modules inside the package, so they ship with an installed wheel and
no `alembic.ini` is needed. To change the schema, add a module to `versions/` whose `down_revision`
is the current head, and change the tables in `catalog.py` to match (a test compares the two).
Migrations only go forward: a catalog is rebuilt by re-indexing, never downgraded.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

SCRIPT_LOCATION = str(Path(__file__).parent)
# Not alembic's default `alembic_version`: the catalog may share a PostgreSQL database with the
# Dagster instance storage, which keeps its own alembic history there.
VERSION_TABLE = "skillmeat_catalog_version"


def upgrade_to_head(connection: Connection) -> None:
    """Apply every pending revision inside the caller's transaction (which also holds its lock)."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
