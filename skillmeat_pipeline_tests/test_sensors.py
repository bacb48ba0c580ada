"""Sensors: the sources file sync, and push detection by polling heads over the git protocol.

The 50-source tests poll real heads (libgit2 `list_heads()` against the local git server, with
GitHub sources read over the GitHub emulator during indexing); the 5,000-source tests inject a
fake head lister into the same polling logic and into the sensor itself.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pygit2
import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner

from skillmeat_pipeline.cli import main
from skillmeat_pipeline.definitions import defs
from skillmeat_pipeline.defs.automation.sensors import (
    HeadPollingResource,
    source_heads_sensor,
    sources_sync_sensor,
)
from skillmeat_pipeline.defs.index.assets import SOURCES_PER_RUN, marketplace_index
from skillmeat_pipeline.defs.index.jobs import BATCH_JOB_NAME, BATCH_OP_NAME
from skillmeat_pipeline.defs.index.partitions import marketplace_sources
from skillmeat_pipeline.defs.resources import CatalogResource, SourcesFileResource
from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.catalog.tables import sources
from skillmeat_pipeline.lib.core.secrets import Secret
from skillmeat_pipeline.lib.core.sources import SourceConfig
from skillmeat_pipeline.lib.fetch.git.heads import (
    BatchHeadLister,
    HeadAnswer,
    HeadCursor,
    HeadLister,
    HeadQuery,
    poll_heads,
)
from skillmeat_pipeline.testing.git_server import Fault, GitHttpServer, RequestRecord
from skillmeat_pipeline.testing.github_emulator import GitHubEmulator
from skillmeat_pipeline_tests.fixtures_github import make_repo

LOCAL = [f"local/repo-{i:02d}" for i in range(40)]
GITHUB = [f"gh/repo-{i:02d}" for i in range(10)]
SIGNATURE = pygit2.Signature("Test", "test@example.com", 1_700_000_000, 0)


def skill_files(name: str) -> dict[str, bytes]:
    text = f"---\nname: {name}\ndescription: skill of {name}\n---\n"
    return {f"skills/{name}/SKILL.md": text.encode()}


def push_commit(root: Path, slug: str) -> str:
    """A new commit on `main` of the served bare repository: a push, as the server sees it."""
    repo = pygit2.Repository(str(root / f"{slug}.git"))
    parent = repo.head.peel(pygit2.Commit)
    blob = repo.create_blob(f"pushed at {time.monotonic_ns()}\n".encode())
    builder = repo.TreeBuilder(parent.tree)
    builder.insert("PUSHED.md", blob, pygit2.enums.FileMode.BLOB)
    oid = repo.create_commit(
        "refs/heads/main", SIGNATURE, SIGNATURE, "push", builder.write(), [parent.id]
    )
    return str(oid)


@pytest.fixture(scope="module")
def repos_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("heads-repos")
    for slug in LOCAL + GITHUB:
        make_repo(root / f"{slug}.git", skill_files(slug.replace("/", "-")))
    return root


@dataclass
class Setup:
    root: Path
    git: GitHttpServer
    github: GitHubEmulator
    instance: dg.DagsterInstance
    catalog: Catalog
    sources_path: Path
    ticks: list[tuple[float, float]] = field(default_factory=list)  # (start, end) of each tick

    def resources(self, **polling: object) -> dict[str, object]:
        return {
            "sources_file": SourcesFileResource(),
            "catalog": CatalogResource(),
            "head_polling": HeadPollingResource(**polling),
        }

    def tick(self, cursor: str | None, **polling: object) -> dg.SensorResult:
        started = time.monotonic()
        with dg.build_sensor_context(
            instance=self.instance, cursor=cursor, resources=self.resources(**polling)
        ) as context:
            result = source_heads_sensor(context)
        self.ticks.append((started, time.monotonic()))
        return result

    def served_per_tick(self) -> list[list[RequestRecord]]:
        """The git requests each tick made. Stops the server: only then is its log complete."""
        self.git.stop()
        requests = self.git.requests()
        return [[r for r in requests if start <= r.started <= end] for start, end in self.ticks]


@pytest.fixture
def setup(repos_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    with (
        GitHttpServer(repos_root) as git,
        GitHubEmulator(repos_root, git_base_url=git.base_url) as github,
        dg.instance_for_test() as instance,
    ):
        index_url = f"sqlite:///{tmp_path / 'index.sqlite'}"
        sources_path = tmp_path / "sources.yaml"
        entries = [{"key": k, "url": git.url_for(k)} for k in LOCAL] + [
            {"github": k} for k in GITHUB
        ]
        sources_path.write_text(yaml.safe_dump({"sources": entries}))
        for name, value in {
            "SKILLMEAT_SOURCES_FILE": str(sources_path),
            "SKILLMEAT_INDEX_URL": index_url,
            "SKILLMEAT_GITHUB_API_URL": github.api_url,
            "SKILLMEAT_GITHUB_RAW_URL": github.raw_url,
            "SKILLMEAT_GITHUB_GIT_URL": git.base_url,
            "CLONE_TIMEOUT_SECONDS": "30",
            "MIN_CLONE_DISK_SPACE_MB": "1",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("GITHUB_TOKEN", raising=False)
        catalog = Catalog.from_url(index_url)
        catalog.migrate()
        try:
            yield Setup(repos_root, git, github, instance, catalog, sources_path)
        finally:
            catalog.dispose()


def test_sources_sync_sensor_adds_partitions_and_indexes_new_sources_in_ranges(setup: Setup):
    with dg.build_sensor_context(instance=setup.instance, resources=setup.resources()) as context:
        result = sources_sync_sensor(context)
    (add,) = result.dynamic_partitions_requests
    assert list(add.partition_keys) == LOCAL + GITHUB
    ranges = [
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
        for r in result.run_requests
    ]
    keys = LOCAL + GITHUB
    chunks = [keys[i : i + SOURCES_PER_RUN] for i in range(0, len(keys), SOURCES_PER_RUN)]
    assert ranges == [(chunk[0], chunk[-1]) for chunk in chunks]
    assert [s.key for s in setup.catalog.list_sources()] == sorted(keys)


def test_push_sensor_requests_exactly_the_moved_sources_in_one_batch(setup: Setup):
    keys = LOCAL + GITHUB
    setup.instance.add_dynamic_partitions("marketplace_sources", keys)
    indexed = dg.materialize(
        [marketplace_index],
        instance=setup.instance,
        resources=defs.resources,
        tags={
            "dagster/asset_partition_range_start": keys[0],
            "dagster/asset_partition_range_end": keys[-1],
        },
    )
    assert indexed.success
    before = setup.catalog.indexed_commits(keys)
    assert all(before.values())

    # nothing moved: the first tick polls every head (one page) and requests nothing
    setup.github.clear_calls()
    first = setup.tick(None, page_size=50, tick_budget_seconds=20)
    assert first.run_requests == []
    assert HeadCursor.from_json(first.cursor).cycles == 1

    # three scattered sources are pushed to (one of them a GitHub source)
    moved = [LOCAL[3], LOCAL[27], GITHUB[6]]
    new_heads = {key: push_commit(setup.root, key) for key in moved}
    second = setup.tick(first.cursor, page_size=50, tick_budget_seconds=20)
    (request,) = second.run_requests  # one batched run, not one per source
    assert request.job_name in (None, BATCH_JOB_NAME)
    assert request.run_config["ops"][BATCH_OP_NAME]["config"]["sources"] == moved
    cursor = HeadCursor.from_json(second.cursor)
    assert cursor.cycles == 2
    assert {k: sha for k, (sha, _) in cursor.requested.items()} == new_heads

    # no change since: nothing is requested again while the run has not indexed them
    third = setup.tick(second.cursor, page_size=50, tick_budget_seconds=20)
    assert third.run_requests == []
    assert HeadCursor.from_json(third.cursor).requested.keys() == set(moved)

    # polling made no REST call (the emulator logs a call before it answers)
    assert setup.github.api_calls() == []

    # the requested run indexes exactly those sources at their new heads
    run = defs.resolve_job_def(BATCH_JOB_NAME).execute_in_process(
        run_config=request.run_config, instance=setup.instance, tags=request.tags
    )
    assert run.success
    materialized = {
        m.partition: m.metadata["commit_sha"].value
        for m in run.asset_materializations_for_node("write_index_rows")
    }
    assert materialized == new_heads
    after = setup.catalog.indexed_commits(keys)
    assert {k for k in keys if after[k] != before[k]} == set(moved)

    # the index caught up: the in-flight entries are dropped, still nothing requested
    fourth = setup.tick(third.cursor, page_size=50, tick_budget_seconds=20)
    assert fourth.run_requests == []
    assert HeadCursor.from_json(fourth.cursor).requested == {}

    # and no clone: each tick made one ref advertisement (a GET) per source, nothing else
    for polled in setup.served_per_tick():
        assert sorted(r.repo for r in polled) == sorted(keys)
        assert {(r.method, r.status) for r in polled} == {("GET", 200)}


def test_sources_synced_before_the_daemon_ran_get_their_first_index_from_the_heads_sensor(
    setup: Setup,
):
    # `skillmeat-pipeline sources sync` with no daemon running: partitions exist, nothing indexed
    keys = LOCAL + GITHUB
    synced = CliRunner().invoke(
        main, ["sources", "sync"], env={"DAGSTER_HOME": setup.instance.root_directory}
    )
    assert synced.exit_code == 0, synced.output
    assert synced.stdout.startswith(f"{len(keys)} sources: {len(keys)} added, 0 removed")
    assert set(
        marketplace_sources.get_partition_keys(dynamic_partitions_store=setup.instance)
    ) == set(keys)
    assert all(sha is None for sha in setup.catalog.indexed_commits(keys).values())

    # the daemon starts: the sync sensor sees nothing new ...
    with dg.build_sensor_context(instance=setup.instance, resources=setup.resources()) as context:
        assert isinstance(sources_sync_sensor(context), dg.SkipReason)
    # ... and the heads sensor requests the first index of every source it polls, once
    first = setup.tick(None, page_size=50, tick_budget_seconds=20)
    requested = [
        key
        for request in first.run_requests
        for key in request.run_config["ops"][BATCH_OP_NAME]["config"]["sources"]
    ]
    assert sorted(requested) == sorted(keys)
    assert len(first.run_requests) == -(-len(keys) // SOURCES_PER_RUN)
    second = setup.tick(first.cursor, page_size=50, tick_budget_seconds=20)
    assert second.run_requests == []


def test_a_first_index_already_in_progress_is_not_requested_again_by_the_heads_sensor(
    setup: Setup,
):
    keys = LOCAL[:4]
    setup.sources_path.write_text(
        yaml.safe_dump({"sources": [{"key": k, "url": setup.git.url_for(k)} for k in keys]})
    )
    with dg.build_sensor_context(instance=setup.instance, resources=setup.resources()) as context:
        synced = sources_sync_sensor(context)
    setup.instance.add_dynamic_partitions("marketplace_sources", keys)
    (range_request,) = synced.run_requests
    # the daemon submits the sync sensor's run (queued, not yet started)
    setup.instance.create_run_for_job(
        defs.resolve_job_def("index_sources"),
        run_config=range_request.run_config,
        tags=range_request.tags,
    )

    polled = setup.tick(None, page_size=50, tick_budget_seconds=20)

    assert polled.run_requests == []


def test_push_sensor_pages_through_sources_across_ticks_with_real_heads(setup: Setup):
    keys = LOCAL + GITHUB
    setup.instance.add_dynamic_partitions("marketplace_sources", keys)
    cursor = None
    for _ in range(3):  # 20 + 20 + 10
        cursor = setup.tick(cursor, page_size=20, tick_budget_seconds=20).cursor
    assert HeadCursor.from_json(cursor).cycles == 1
    pages = [[r.repo for r in polled] for polled in setup.served_per_tick()]
    assert [len(page) for page in pages] == [20, 20, 10]
    assert sorted(k for page in pages for k in page) == sorted(keys)  # each once, in pages
    assert [sorted(page) for page in pages] == [sorted(keys[i : i + 20]) for i in (0, 20, 40)]


def test_batch_lister_kills_a_lookup_that_never_ends_at_the_budget(setup: Setup):
    setup.git.set_fault(LOCAL[0], Fault.TRICKLE_FOREVER, bytes_per_second=2000)
    queries = [HeadQuery(k, setup.git.url_for(k)) for k in LOCAL[:4]]
    queries.append(HeadQuery("missing/repo", setup.git.url_for("missing/repo")))
    started = time.monotonic()
    answers = BatchHeadLister(max_parallel=4)(queries, 3.0)
    elapsed = time.monotonic() - started
    assert 3.0 <= elapsed < 6.0  # waited for the slow one until the budget, not longer
    assert LOCAL[0] not in answers  # not answered in time
    assert all(answers[k].commit_sha for k in LOCAL[1:4])
    assert "404" in (answers["missing/repo"].error or "")


def test_batch_lister_sends_a_secret_token_and_never_shows_it(repos_root: Path, monkeypatch):
    token = "s3cr3t-heads-TOKEN-0123456789"
    slug = LOCAL[0]
    with GitHttpServer(repos_root, token=token) as git:
        # the token goes to GitHub's hosts only: this server plays GitHub
        monkeypatch.setenv("SKILLMEAT_GITHUB_GIT_URL", git.base_url)
        url = git.url_for(slug)
        queries = [
            HeadQuery("with-token", url, token=Secret(token)),
            HeadQuery("without-token", url),
        ]
        assert token not in repr(queries)
        answers = BatchHeadLister(max_parallel=2)(queries, 20.0)
    assert answers["with-token"].commit_sha == str(
        pygit2.Repository(str(repos_root / f"{slug}.git")).head.target
    )
    error = answers["without-token"].error or ""
    assert "no token" in error and token not in error


# -- 5,000 sources: a fake head lister in the polling logic and in the sensor ---------------------

N = 5000


def fake_sha(key: str, generation: int = 0) -> str:
    return f"{abs(hash((key, generation))) % (1 << 160):040x}"


class FakeLister:
    """Answers from a dict; records what it was asked; `slow` keys never answer."""

    def __init__(self, heads: dict[str, str], slow: frozenset[str] = frozenset()) -> None:
        self.heads = heads
        self.slow = slow
        self.calls: list[list[str]] = []

    def __call__(self, queries: Sequence[HeadQuery], _budget_s: float) -> Mapping[str, HeadAnswer]:
        self.calls.append([q.key for q in queries])
        return {
            q.key: HeadAnswer(q.key, commit_sha=self.heads[q.key])
            for q in queries
            if q.key not in self.slow
        }


def test_polling_5000_sources_pages_once_through_all_and_finds_the_moved():
    keys = [f"org-{i // 100:02d}/repo-{i:04d}" for i in range(N)]
    queries = {k: HeadQuery(k, f"https://git.example.com/{k}.git") for k in keys}
    indexed = {k: fake_sha(k) for k in keys}
    heads = dict(indexed)
    moved = {keys[7]: fake_sha(keys[7], 1), keys[2600]: fake_sha(keys[2600], 1)}
    heads.update(moved)
    slow = frozenset({keys[1234]})
    lister = FakeLister(heads, slow)
    cursor = HeadCursor()
    found: dict[str, str] = {}
    unanswered: list[str] = []
    ticks = []
    for _ in range(10):
        started = time.monotonic()
        outcome = poll_heads(
            keys,
            queries,
            cursor,
            lister=lister,
            indexed_commits=lambda page: {k: indexed[k] for k in page},
            page_size=500,
            budget_s=30,
        )
        ticks.append(time.monotonic() - started)
        found.update(outcome.moved)
        unanswered.extend(outcome.unanswered)
        cursor = HeadCursor.from_json(outcome.cursor.to_json())
    assert [len(c) for c in lister.calls] == [500] * 10
    assert [k for call in lister.calls for k in call] == keys  # in order, each once
    assert found == moved
    assert unanswered == [keys[1234]]  # reported, and the page moved on past it
    assert (cursor.position, cursor.cycles) == (0, 1)
    assert set(cursor.requested) == set(moved)
    assert len(cursor.to_json()) < 1000  # only in-flight sources are kept
    assert max(ticks) < 1.0

    # the next cycle: the moved ones are in flight, nothing else changed
    outcome = poll_heads(
        keys,
        queries,
        cursor,
        lister=lister,
        indexed_commits=lambda page: {k: indexed[k] for k in page},
        page_size=N,
        budget_s=30,
    )
    assert outcome.moved == {} and outcome.in_flight == 2


def test_polling_resumes_after_the_last_source_when_sources_are_removed():
    keys = [f"k{i:03d}" for i in range(100)]
    queries = {k: HeadQuery(k, "https://h/x.git") for k in keys}
    lister = FakeLister(dict.fromkeys(keys, "a" * 40))
    first = poll_heads(
        keys, queries, HeadCursor(), lister=lister, indexed_commits=dict.fromkeys, page_size=30
    )
    assert first.page == keys[:30]
    shrunk = keys[10:]  # ten sources before the cursor were removed
    second = poll_heads(
        shrunk, queries, first.cursor, lister=lister, indexed_commits=dict.fromkeys, page_size=30
    )
    assert second.page == keys[30:60]
    assert HeadCursor.from_json("not json").position == 0


class FakePolling(HeadPollingResource):
    """The sensor's resource with the head lister replaced (set per test)."""

    def lister(self) -> HeadLister:
        return FAKE_LISTER[0]


FAKE_LISTER: list[HeadLister] = []


def test_push_sensor_tick_at_5000_sources_stays_far_inside_the_sensor_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    keys = [f"org-{i // 100:02d}/repo-{i:04d}" for i in range(N)]
    sources_path = tmp_path / "sources.yaml"
    entries = [{"key": k, "url": f"https://git.example.com/{k}.git"} for k in keys]
    sources_path.write_text(yaml.safe_dump({"sources": entries}))
    index_url = f"sqlite:///{tmp_path / 'index.sqlite'}"
    monkeypatch.setenv("SKILLMEAT_SOURCES_FILE", str(sources_path))
    monkeypatch.setenv("SKILLMEAT_INDEX_URL", index_url)
    catalog = Catalog.from_url(index_url)
    catalog.migrate()
    catalog.upsert_sources([SourceConfig(**e) for e in entries])
    with catalog.engine.begin() as conn:
        conn.execute(
            sa.update(sources).where(sources.c.key == sa.bindparam("k")),
            [{"k": k, "last_indexed_commit_sha": fake_sha(k)} for k in keys],
        )
    catalog.dispose()
    heads = {k: fake_sha(k) for k in keys}
    moved = [keys[i] for i in (11, 1999, 2000, 4321)]
    heads.update({k: fake_sha(k, 1) for k in moved})
    lister = FakeLister(heads)
    FAKE_LISTER[:] = [lister]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("marketplace_sources", keys)
        resources = {
            "sources_file": SourcesFileResource(),
            "catalog": CatalogResource(),
            "head_polling": FakePolling(page_size=N),
        }
        started = time.monotonic()
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            result = source_heads_sensor(context)
        elapsed = time.monotonic() - started
    print(f"\nsource_heads_sensor tick, {N} sources in one page (fake lister): {elapsed:.2f} s")
    assert lister.calls == [keys]
    (request,) = result.run_requests
    assert request.run_config["ops"][BATCH_OP_NAME]["config"]["sources"] == moved
    assert elapsed < 15.0


def test_a_push_storm_becomes_runs_of_sources_per_run_not_one_per_source():
    from skillmeat_pipeline.defs.index.jobs import batch_run_requests

    keys = [f"k{i:03d}" for i in range(0, 600, 7)]  # 86 scattered sources
    requests = batch_run_requests(keys, "heads:x")
    assert len(requests) == -(-len(keys) // SOURCES_PER_RUN)
    batches = [r.run_config["ops"][BATCH_OP_NAME]["config"]["sources"] for r in requests]
    assert [k for b in batches for k in b] == keys
    assert len({r.run_key for r in requests}) == len(requests)
    assert json.dumps(requests[0].run_config)  # plain data: storable as run config
