"""Plugin sources end to end (SPEC §2.1): a marketplace whose entries point at other repositories,
served by the local git server (and a second git host) and the GitHub emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from skillmeat_pipeline.defs.automation.sensors import head_queries
from skillmeat_pipeline.defs.index.partitions import marketplace_sources, sync_sources
from skillmeat_pipeline.defs.resources import HeadPollingResource, SourcesFileResource
from skillmeat_pipeline.lib.catalog.search import search_catalog
from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.core.models import ArtifactType, SourceStatus
from skillmeat_pipeline.lib.core.sources import load_sources
from skillmeat_pipeline.testing import sample_marketplace as sample
from skillmeat_pipeline.testing.git_server import GitHttpServer
from skillmeat_pipeline.testing.sample_marketplace import MARKET, SampleMarketplace
from skillmeat_pipeline_tests.fixtures_pipeline import Pipeline


@pytest.fixture(scope="module")
def backend() -> str:
    return "sqlite"


@pytest.fixture
def served_root(tmp_path: Path) -> Path:
    """Overrides the session's corpus root: these tests push to their repositories."""
    return tmp_path / "served"


@pytest.fixture
def other_host(tmp_path: Path) -> Iterator[GitHttpServer]:
    """A second git host: entries whose `url` is not on GitHub."""
    with GitHttpServer(tmp_path / "other") as server:
        yield server


@pytest.fixture
def market(served_root: Path, other_host: GitHttpServer) -> SampleMarketplace:
    return sample.build_sample_marketplace(
        served_root, other_host_url=other_host.base_url, other_root=other_host.root
    )


def key(name: str) -> str:
    return f"{name}@{MARKET}"


def sync(pipeline: Pipeline) -> tuple[list[str], list[str]]:
    catalog = pipeline.catalog()
    try:
        _, added, removed = sync_sources(pipeline.instance, catalog, load_sources())
    finally:
        catalog.dispose()
    return added, removed


def partitions(pipeline: Pipeline) -> list[str]:
    return pipeline.instance.get_dynamic_partitions(marketplace_sources.name)


def statuses(catalog: Catalog) -> dict[str, tuple[SourceStatus | None, str | None]]:
    return {r.key: (r.last_status, r.last_error) for r in catalog.source_responses()}


def index_market_and_plugins(pipeline: Pipeline) -> list[str]:
    assert pipeline.materialize([MARKET]).success
    added, removed = sync(pipeline)
    assert removed == []
    pipeline.materialize(added)  # fails: some entries cannot be fetched
    return added


def upload_packs(server: GitHttpServer, slug: str) -> int:
    """Fetches (pack negotiations) of a repository, as the server logged them."""
    return sum(1 for r in server.requests(slug) if r.path.endswith("/git-upload-pack"))


def test_every_entry_form_ends_as_the_spec_says(
    pipeline: Pipeline, market: SampleMarketplace, other_host: GitHttpServer
) -> None:
    pipeline.write_sources([{"github": MARKET}])
    added = index_market_and_plugins(pipeline)

    fetchable = [*market.scanned, *market.failed]
    assert sorted(added) == sorted(key(name) for name in fetchable)
    assert sorted(partitions(pipeline)) == sorted([MARKET, *added])
    catalog = pipeline.catalog()
    found = statuses(catalog)
    assert found[MARKET] == (SourceStatus.SCANNED, None)  # its entries never fail it
    for name, count in market.scanned.items():
        assert found[key(name)] == (SourceStatus.SCANNED, None), name
        entries = catalog.entries(key(name))
        assert len(entries) == count, (name, [(e.artifact_type, e.path) for e in entries])
    for name, words in market.failed.items():
        status, error = found[key(name)]
        assert status is SourceStatus.FAILED and words in (error or ""), (name, error)
    for name, words in market.skipped.items():
        status, reason = found[key(name)]
        assert status is SourceStatus.SKIPPED and words in (reason or ""), (name, reason)
    # relative entries stay the marketplace's own plugins; invalid and duplicate names are
    # problems recorded on the marketplace
    assert key("local") not in found
    record = catalog.get_source(MARKET)
    assert record is not None and record.marketplace is not None
    assert len(record.marketplace["problems"]) == market.problems
    assert ("plugin", ".claude-plugin/marketplace.json#local") in [
        (e.artifact_type.value, e.path) for e in catalog.entries(MARKET)
    ]

    # each entry's root is one plugin: plugin.json merged with the entry, or the entry alone
    plugins = {
        name: [e for e in catalog.entries(key(name)) if e.artifact_type is ArtifactType.PLUGIN]
        for name in market.scanned
    }
    [alpha] = plugins["alpha"]
    assert (alpha.path, alpha.name, alpha.description) == (".", "alpha", "Linting helpers")
    [beta] = plugins["beta"]
    assert (beta.path, beta.name, beta.description) == (".", "beta", "Security review agents")
    [mono_a] = plugins["mono-a"]
    assert (mono_a.path, mono_a.name) == ("plugins/a", "mono-a")
    assert {e.plugin_path for e in catalog.entries(key("mono-a"))} == {None, "plugins/a"}
    assert "stable-only" in [e.name for e in catalog.entries(key("alpha-stable"))]
    assert catalog.get_source(key("beta")).last_indexed_commit_sha == market.commits["beta"]
    assert catalog.get_source(key("gamma")).github == "tools/gamma"  # a github.com URL
    assert catalog.get_source(key("delta")).url.startswith(other_host.base_url)

    # two git-subdir entries into one repository: one fetch of it
    pipeline.git.stop()
    # (a depth-1 fetch negotiates in two requests: compare with a repository one entry names)
    assert upload_packs(pipeline.git, "tools/mono") == upload_packs(pipeline.git, "tools/gamma")
    assert upload_packs(pipeline.git, "tools/gamma") > 0

    # search names the marketplace and the plugin an artifact comes from
    [hit] = search_catalog(catalog, "database migrations", artifact_type="skill")
    assert (hit.source_key, hit.marketplace, hit.plugin) == (key("mono-a"), MARKET, "mono-a")
    assert hit.install_name == f"mono-a@{MARKET}"
    [own] = search_catalog(catalog, "helpers kept", artifact_type="plugin")
    assert (own.marketplace, own.plugin) == (MARKET, "local")
    catalog.dispose()


def test_pins_pushes_and_removals(pipeline: Pipeline, market: SampleMarketplace) -> None:
    pipeline.write_sources([{"github": MARKET}])
    index_market_and_plugins(pipeline)
    catalog = pipeline.catalog()
    indexed = catalog.indexed_commits([key("alpha"), key("beta")])

    # pushes to the referenced repositories: the pinned entry is not polled, the other is
    pushed_alpha = sample.commit_files(
        pipeline.git.root, "tools/alpha", sample.ALPHA_STABLE, tick=5
    )
    pushed_beta = sample.commit_files(pipeline.git.root, "tools/beta", sample.BETA_NEXT, tick=5)
    polled = head_queries(SourcesFileResource(), HeadPollingResource(), catalog)
    assert key("alpha") in polled and key("beta") not in polled
    assert MARKET in polled
    again = pipeline.materialize([key("alpha")])
    assert again.success
    beta_run = pipeline.materialize([key("beta")])
    assert beta_run.success
    assert pipeline.materializations(beta_run)[key("beta")]["scan_status"] == "current"
    assert catalog.indexed_commits([key("alpha"), key("beta")]) == {
        key("alpha"): pushed_alpha,
        key("beta"): indexed[key("beta")],
    }

    # the marketplace moves the pin and drops an entry
    entries = [dict(e) for e in market.entries if e["name"] != "mono-b"]
    for entry in entries:
        if entry["name"] == "beta":
            entry["source"] = {**entry["source"], "sha": pushed_beta}
    sample.commit_files(pipeline.git.root, MARKET, sample.market_files(entries), tick=6)
    assert pipeline.materialize([MARKET]).success
    added, removed = sync(pipeline)
    assert (added, removed) == ([], [key("mono-b")])
    assert key("mono-b") not in partitions(pipeline)
    moved = pipeline.materialize([key("beta")])
    assert moved.success
    assert pipeline.materializations(moved)[key("beta")]["scan_status"] == "scanned"
    assert catalog.indexed_commits([key("beta")]) == {key("beta"): pushed_beta}
    assert "tester" in [e.name for e in catalog.entries(key("beta"))]
    gone = catalog.get_source(key("mono-b"))
    assert gone is not None and gone.last_status is SourceStatus.REMOVED
    assert all(e.status.value == "removed" for e in catalog.entries(key("mono-b"), True))

    # the marketplace leaves the sources file: every plugin source goes with it
    pipeline.sources_path.write_text("sources:\n  - key: other\n    url: https://h.example/o/r\n")
    added, removed = sync(pipeline)
    assert added == ["other"]
    assert MARKET in removed and key("alpha") in removed
    assert partitions(pipeline) == ["other"]
    live = {r.key for r in catalog.source_responses()}
    assert live == {"other"}
    catalog.dispose()


@pytest.mark.usefixtures("market")
def test_plugin_sources_of_the_index_sensor_get_runs(pipeline: Pipeline) -> None:
    from skillmeat_pipeline.definitions import defs
    from skillmeat_pipeline.defs.automation.sensors import sources_sync_sensor

    pipeline.write_sources([{"github": MARKET}])
    assert pipeline.materialize([MARKET]).success
    resources = {"sources_file": SourcesFileResource(), "catalog": defs.resources["catalog"]}
    with dg.build_sensor_context(instance=pipeline.instance, resources=resources) as context:
        result = sources_sync_sensor(context)
    assert isinstance(result, dg.SensorResult)
    [add_request] = result.dynamic_partitions_requests
    assert key("alpha") in add_request.partition_keys
    assert key("pkg") not in add_request.partition_keys  # skipped entries get no partition
    ranges = [
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
        for r in result.run_requests
    ]
    assert ranges == [(add_request.partition_keys[0], add_request.partition_keys[-1])]


def test_index_all_reaches_closure_and_names_what_failed(
    pipeline: Pipeline, market: SampleMarketplace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from skillmeat_pipeline.cli import main

    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # a fresh instance, as a new user has
    pipeline.write_sources([{"github": MARKET}])

    result = CliRunner().invoke(main, ["index", "--all"])

    assert result.exit_code == 1, result.output
    lines = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[1:-1]}
    expected = {MARKET: "scanned"}
    expected |= {key(name): "scanned" for name in market.scanned}
    expected |= {key(name): "failed" for name in market.failed}
    assert lines == expected
    assert result.stdout.splitlines()[1].startswith(MARKET)  # the marketplace, then its plugins
    assert f"{len(expected)} sources indexed" in result.stdout
    failed_line = result.stderr.strip().splitlines()[-1]
    assert failed_line.startswith("failed: ")
    assert sorted(failed_line.removeprefix("failed: ").split(", ")) == sorted(
        key(name) for name in market.failed
    )
    assert "indexing" in result.stderr  # the progress bar
    with dg.DagsterInstance.get() as instance:
        assert sorted(instance.get_dynamic_partitions(marketplace_sources.name)) == sorted(expected)

    # nothing new: the plugin sources that succeeded are current, with one run per batch
    again = CliRunner().invoke(main, ["index", *[key(n) for n in market.scanned], "--no-follow"])
    assert again.exit_code == 0, again.output
    assert {line.split()[1] for line in again.stdout.splitlines()[1:-1]} == {"current"}
    usage = CliRunner().invoke(main, ["index"])
    assert usage.exit_code == 2 and "KEY ..., --all or --stale" in usage.stderr

    # sources list: plugin sources under their marketplace, with where they come from
    listed = CliRunner().invoke(main, ["sources", "list", "--json"])
    rows = {row["key"]: row for row in json.loads(listed.stdout)}
    beta = rows[key("beta")]
    assert (beta["marketplace"], beta["plugin"], beta["origin"]) == (MARKET, "beta", "marketplace")
    assert beta["pinned_commit"] == market.commits["beta"]
    assert (rows[MARKET]["origin"], rows[MARKET]["marketplace"]) == ("file", None)
    assert rows[key("no-pin")]["last_status"] == "failed"
    assert "pinned commit" in rows[key("no-pin")]["last_error"]
    assert rows[key("pkg")]["last_status"] == "skipped"
    table = CliRunner().invoke(main, ["sources", "list"]).stdout.splitlines()
    assert table[1].startswith(MARKET)
    assert all(line.startswith("  ") for line in table[2:]), table
    assert any(line.startswith(f"  {key('pkg')}") and "skipped: npm" in line for line in table)
    found = CliRunner().invoke(main, ["search", "changelogs", "--json"])
    [hit] = json.loads(found.stdout)
    assert hit["install"] == f"delta@{MARKET}"


def test_a_pin_at_the_head_shares_the_clone_of_a_ref_where_fetch_by_id_is_refused(
    pipeline: Pipeline, served_root: Path
) -> None:
    import pygit2

    head = sample.commit_files(served_root, "tools/alpha", sample.ALPHA)
    repo = pygit2.Repository(str(served_root / "tools" / "alpha.git"))
    del repo.config["uploadpack.allowReachableSHA1InWant"]  # a server that refuses it
    repo.free()
    gh = {"source": "github", "repo": "tools/alpha"}
    entries = [
        {"name": "pinned", "source": {**gh, "sha": head}},
        {"name": "followed", "source": gh},
        {
            "name": "refused",
            "source": {
                "source": "git-subdir",
                "url": "https://github.com/tools/alpha",
                "path": "skills",
                "sha": "1" * 40,
            },
        },
    ]
    sample.commit_files(served_root, MARKET, sample.market_files(entries))
    pipeline.write_sources([{"github": MARKET}])
    assert pipeline.materialize([MARKET]).success
    sync(pipeline)
    # the pinned source first in the batch: it must not lead the clone of the group
    from skillmeat_pipeline.definitions import defs
    from skillmeat_pipeline.defs.index.jobs import BATCH_JOB_NAME, batch_run_config

    order = [key("pinned"), key("refused"), key("followed")]
    run = defs.get_job_def(BATCH_JOB_NAME).execute_in_process(
        run_config=batch_run_config(order), instance=pipeline.instance, raise_on_error=False
    )

    meta = pipeline.materializations(run)
    for name in ("pinned", "followed"):  # cloned, no fallback to the API
        assert meta[key(name)]["fallback_reason"] == "none", meta[key(name)]
        assert meta[key(name)]["commit_sha"] == head
    found = statuses(pipeline.catalog())
    assert found[key("pinned")] == found[key("followed")] == (SourceStatus.SCANNED, None)
    status, error = found[key("refused")]  # fetch by id refused, then the API has no such commit
    assert status is SourceStatus.FAILED and "1" * 40 in (error or "")
