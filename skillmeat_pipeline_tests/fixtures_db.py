"""Scratch catalog databases for tests: a SQLite file, or a PostgreSQL database of their own.

Every PostgreSQL database is created under a random name and dropped afterwards, so parallel runs do
not collide. PostgreSQL comes from `SKILLMEAT_TEST_POSTGRES_URL` (an admin URL, default the local
server's `postgres` database). When it cannot be reached the tests that need it are skipped, except
under `CI=true`, where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from skillmeat_pipeline.lib.catalog.engine import normalize_url
from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.catalog.tables import catalog_entries, sources

POSTGRES_URL_ENV = "SKILLMEAT_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    """An autocommit engine on the PostgreSQL server, to create and drop databases."""
    url = normalize_url(os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL)
    engine = sa.create_engine(
        url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        engine.dispose()
        reason = (
            f"PostgreSQL at {url.render_as_string(hide_password=True)} is unreachable "
            f"({str(exc.orig).strip()}); set {POSTGRES_URL_ENV} to an admin URL"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    yield engine
    engine.dispose()


@contextmanager
def scratch_postgres_database(admin: Engine) -> Iterator[URL]:
    """A new, empty database on the admin engine's server, dropped on exit."""
    name = f"skillmeat_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield admin.url.set(database=name)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[str], AbstractContextManager[str]]:
    """`with empty_database(backend) as url:` an unmigrated database of that backend."""

    @contextmanager
    def make(backend: str) -> Iterator[str]:
        if backend == "sqlite":
            yield f"sqlite:///{tmp_path / f'{uuid.uuid4().hex}.sqlite'}"
            return
        with scratch_postgres_database(request.getfixturevalue("postgres_admin")) as url:
            yield url.render_as_string(hide_password=False)

    return make


@pytest.fixture(scope="module")
def sqlite_catalog_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('catalog') / 'index.sqlite'}"
    _migrate(url)
    return url


@pytest.fixture(scope="module")
def postgresql_catalog_url(postgres_admin: Engine) -> Iterator[str]:
    with scratch_postgres_database(postgres_admin) as url:
        rendered = url.render_as_string(hide_password=False)
        _migrate(rendered)
        yield rendered


def _migrate(url: str) -> None:
    catalog = Catalog.from_url(url)
    catalog.migrate()
    catalog.dispose()


@contextmanager
def open_catalog(url: str) -> Iterator[Catalog]:
    """A catalog on a migrated database, emptied first (the database is shared by a module)."""
    catalog = Catalog.from_url(url)
    with catalog.engine.begin() as conn:
        conn.execute(catalog_entries.delete())
        conn.execute(sources.delete())
    try:
        yield catalog
    finally:
        catalog.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request: pytest.FixtureRequest) -> Iterator[Catalog]:
    """An empty, migrated catalog on each backend in turn."""
    with open_catalog(request.getfixturevalue(f"{request.param}_catalog_url")) as opened:
        yield opened


@pytest.fixture
def sqlite_catalog(sqlite_catalog_url: str) -> Iterator[Catalog]:
    with open_catalog(sqlite_catalog_url) as opened:
        yield opened


@pytest.fixture
def postgres_catalog(postgresql_catalog_url: str) -> Iterator[Catalog]:
    with open_catalog(postgresql_catalog_url) as opened:
        yield opened
