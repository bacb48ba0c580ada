"""`sources.scan_version` and `sources.problems` (migration 0006) on SQLite and PostgreSQL: the
optimistic check that keeps an older scan from replacing a newer one."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from skillmeat_pipeline.lib.catalog.errors import ScanSupersededError
from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline_tests.test_catalog import (
    BACKENDS,
    HEAD,
    SOURCE,
    T0,
    catalog_at_revision,
    clone_target,
    config,
    entry,
    schema_differences,
    schema_revision,
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_upgrading_a_0004_catalog_keeps_its_rows_at_version_zero(
    backend: str, empty_database: Callable
) -> None:
    entries = [entry("skills/pdf"), entry("skills/xlsx")]
    with empty_database(backend) as url, catalog_at_revision(url, "0004", entries) as catalog:
        catalog.migrate()

        assert schema_revision(catalog) == HEAD
        assert schema_differences(catalog) == []
        record = catalog.get_source(SOURCE)
        assert record is not None
        assert (record.scan_version, record.problems) == (0, None)
        # 0007 forgets every indexed commit, so each source is read once more for its findings
        assert record.last_indexed_commit_sha is None
        assert [e.path for e in catalog.entries(SOURCE)] == ["skills/pdf", "skills/xlsx"]


def write(catalog: Catalog, commit: str, expected: int | None, **kwargs: object) -> None:
    entries = [entry(f"skills/{commit}")]
    catalog.write_scan(
        SOURCE,
        entries,
        clone_target=clone_target(entries, commit),
        api_calls=0,
        marketplace=None,
        indexed_at=T0,
        expected_version=expected,
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_write_from_an_older_version_is_refused_and_changes_nothing(catalog: Catalog) -> None:
    catalog.upsert_sources([config(SOURCE)])
    version = catalog.get_source(SOURCE).scan_version
    write(catalog, "c1", version, problems=["path 'x\\n': the name holds control characters"])
    newer = catalog.get_source(SOURCE)
    assert newer.scan_version == version + 1
    assert newer.problems == ["path 'x\\n': the name holds control characters"]

    # a run that read `version` before c1 was written finishes last
    with pytest.raises(ScanSupersededError, match="a newer scan was written"):
        write(catalog, "c0", version)
    with pytest.raises(ScanSupersededError):
        catalog.record_current(SOURCE, "c1", 0, expected_version=version)
    assert not catalog.record_failure(SOURCE, "late failure", expected_version=version)
    assert catalog.get_source(SOURCE) == newer
    assert [e.path for e in catalog.entries(SOURCE)] == ["skills/c1"]

    # the run that read the current version writes as before
    catalog.record_current(SOURCE, "c1", 0, expected_version=newer.scan_version)
    assert catalog.record_failure(SOURCE, "its own failure", expected_version=newer.scan_version)
    write(catalog, "c2", newer.scan_version)
    assert catalog.get_source(SOURCE).scan_version == newer.scan_version + 1


def test_a_configuration_change_supersedes_runs_that_read_the_old_one(catalog: Catalog) -> None:
    catalog.upsert_sources([config(SOURCE)])
    version = catalog.get_source(SOURCE).scan_version
    catalog.upsert_sources([config(SOURCE)])  # unchanged: no new version
    assert catalog.get_source(SOURCE).scan_version == version
    catalog.upsert_sources([config(SOURCE, exclude=["drafts"])])
    assert catalog.get_source(SOURCE).scan_version == version + 1
    with pytest.raises(ScanSupersededError):
        write(catalog, "c1", version)


def test_text_that_no_driver_can_encode_is_stored_as_replacement_characters(
    catalog: Catalog,
) -> None:
    # a manifest's JSON escape `\udce9` decodes to a lone surrogate; it failed every write
    catalog.upsert_sources([config(SOURCE)])
    entries = [entry("skills/a", description="caf\udce9 \x00end")]
    catalog.write_scan(
        SOURCE,
        entries,
        clone_target=clone_target(entries, "c1"),
        api_calls=0,
        marketplace={"name": "m\ud800"},
        indexed_at=T0,
    )
    [stored] = catalog.entries(SOURCE)
    assert stored.description == "caf\ufffd end"
    assert catalog.get_source(SOURCE).marketplace == {"name": "m\ufffd"}
