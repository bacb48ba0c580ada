"""What the commands open: the Dagster instance of DAGSTER_HOME and the catalog of
SKILLMEAT_INDEX_URL, or one line saying what to set."""

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from skillmeat_pipeline.cli.output import fail
from skillmeat_pipeline.lib.catalog.engine import DEFAULT_INDEX_URL, INDEX_URL_ENV, normalize_url
from skillmeat_pipeline.lib.catalog.store import Catalog

if TYPE_CHECKING:
    import dagster as dg

NO_INSTANCE_FILE_WARNING = "No dagster instance configuration file"


class _WithoutInstanceFileWarning(logging.Filter):
    """Drops Dagster's warning that DAGSTER_HOME has no dagster.yaml.

    An instance without that file keeps everything under DAGSTER_HOME (README "Environment
    variables"), which is what a local user wants; Dagster repeats the warning on every command.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(NO_INSTANCE_FILE_WARNING)


@contextmanager
def dagster_instance() -> Iterator["dg.DagsterInstance"]:
    """The instance the daemon and the UI use; exits 2 with one line when DAGSTER_HOME is unset
    or is not a folder, instead of Dagster's traceback."""
    # Imported here: Dagster takes a second to import and most commands never need it.
    import dagster as dg

    home = os.environ.get("DAGSTER_HOME", "")
    if not home:
        fail(
            "DAGSTER_HOME is not set: set it to the folder of the Dagster instance that the "
            "daemon and the UI use, e.g. `export DAGSTER_HOME=$PWD/.dagster_home`"
        )
    if not Path(home).is_dir():
        fail(
            f"DAGSTER_HOME={home} is not a folder: create it (`mkdir -p {home}`) or point "
            "DAGSTER_HOME at the daemon's instance folder"
        )
    dagster_logger = logging.getLogger("dagster")
    quiet = _WithoutInstanceFileWarning()
    dagster_logger.addFilter(quiet)
    try:
        with dg.DagsterInstance.get() as instance:
            yield instance
    finally:
        dagster_logger.removeFilter(quiet)


SYNC = "skillmeat-pipeline sources sync"


def missing_catalog() -> Path | None:
    """The file of a SQLite catalog that does not exist yet (opening it would create it)."""
    url = normalize_url(os.environ.get(INDEX_URL_ENV) or DEFAULT_INDEX_URL)
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    path = Path(database)
    return None if path.exists() else path


def no_catalog_message(path: Path) -> str:
    return (
        f"no catalog at {path}: run `{SYNC}`, then index the sources (or set "
        f"{INDEX_URL_ENV} to the catalog's URL)"
    )


@contextmanager
def existing_catalog() -> Iterator[Catalog]:
    """The catalog, migrated; exits 2 with one line when its SQLite file does not exist, as
    opening it would create an empty catalog where the user may have mistyped the URL."""
    missing = missing_catalog()
    if missing is not None:
        fail(no_catalog_message(missing))
    catalog = Catalog.from_env()
    try:
        catalog.migrate()
        yield catalog
    finally:
        catalog.dispose()
