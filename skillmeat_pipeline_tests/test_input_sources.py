"""Untrusted sources never cost data, credentials or the neighbours (issue 13, SPEC §2, §6.1).

One test per way a careless user or an attacker fed the pipeline a bad sources file or partition,
each asserting what must happen. Runs are real: `marketplace_index` in a Dagster instance against
the local git server and GitHub emulator. Each batch holds two good neighbours, one indexed by a
clone (`obra/superpowers`) and one over the API (`synthetic/repo-01`, 2 artifacts), and each test
checks that no row of anyone is lost and no clone directory or worker process is left behind.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner

from skillmeat_pipeline.cli import main
from skillmeat_pipeline.defs.automation.sensors import sources_sync_sensor
from skillmeat_pipeline.defs.index.assets import marketplace_index
from skillmeat_pipeline.defs.resources import (
    CatalogResource,
    SourcesFileResource,
    resource_defs,
)
from skillmeat_pipeline.lib.core.addresses import ALLOWED_PRIVATE_HOSTS
from skillmeat_pipeline.lib.core.secrets import Secret
from skillmeat_pipeline.lib.core.sources import SourcesFileError, parse_sources
from skillmeat_pipeline.lib.fetch.git.clone import resolve_head
from skillmeat_pipeline.lib.fetch.git.errors import CloneError, CloneReason
from skillmeat_pipeline.lib.fetch.git.heads import BatchHeadLister, HeadQuery
from skillmeat_pipeline.lib.fetch.git.pool import WORKER_POOL
from skillmeat_pipeline.lib.fetch.github.client import GitHubClient
from skillmeat_pipeline.lib.fetch.github.errors import ApiError
from skillmeat_pipeline_tests.fixtures_pipeline import Pipeline
from skillmeat_pipeline_tests.recording_server import RecordingServer

TOKEN = "ghp_ISSUE13tokenABCDEFGHIJKLMNOPQRSTUVWXYZ"
CLONED = {"github": "obra/superpowers"}  # 16 artifacts: the clone path
VIA_API = {"github": "synthetic/repo-01"}  # 2 artifacts: the API path
NEIGHBOURS = {"obra/superpowers": 16, "synthetic/repo-01": 2}


@pytest.fixture(scope="module")
def backend() -> str:
    return "sqlite"


@pytest.fixture
def clone_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temp dir clones go to, private to the test, so leftovers can be counted."""
    path = tmp_path / "clones"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    return path


@dataclass
class Batch:
    pipeline: Pipeline
    result: dg.ExecuteInProcessResult

    def materialized(self) -> dict[str, dict[str, object]]:
        return self.pipeline.materializations(self.result)

    def failed_partitions(self) -> dict[str, str]:
        """Partition -> the reason the run gave for it."""
        failures = [
            e.step_failure_data
            for e in self.result.all_events
            if e.is_step_failure and e.step_key.endswith("write_index_rows")
        ]
        (failure,) = failures
        text = failure.user_failure_data.description
        metadata = failure.user_failure_data.metadata
        keys = metadata["failed_sources"].value
        return {key: text for key in keys}


def run(pipeline: Pipeline, keys: list[str]) -> Batch:
    """A forced run of `keys`, which must be one range of the instance's partitions."""
    order = pipeline.instance.get_dynamic_partitions("marketplace_sources")
    positions = sorted(order.index(key) for key in keys)
    assert positions == list(range(positions[0], positions[-1] + 1)), (order, keys)
    config = {"force": True}
    result = dg.materialize(
        [marketplace_index],
        instance=pipeline.instance,
        # built now: the token of GITHUB_TOKEN as the test set it
        resources=resource_defs(),
        run_config={"ops": {"marketplace_index": {"ops": {"resolve_heads": {"config": config}}}}},
        tags={
            "dagster/asset_partition_range_start": order[positions[0]],
            "dagster/asset_partition_range_end": order[positions[-1]],
        },
        raise_on_error=False,
    )
    return Batch(pipeline, result)


def rows(pipeline: Pipeline) -> dict[str, int]:
    catalog = pipeline.catalog()
    try:
        return {s.key: len(catalog.entries(s.key)) for s in catalog.list_sources()}
    finally:
        catalog.dispose()


def assert_nothing_leaked(clone_tmp: Path) -> None:
    """No clone directory left, and no worker process once the idle ones are closed."""
    assert [p for p in clone_tmp.iterdir() if p.name.startswith("skillmeat-clone-")] == []
    WORKER_POOL.close_idle()
    children = [
        p
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and _parent_of(p) == os.getpid() and b"_worker_main" in _cmdline(p)
    ]
    assert children == []


def _parent_of(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


def indexed_neighbours(pipeline: Pipeline, *extra: dict) -> list[str]:
    """The neighbours (and `extra` sources) written to the file and indexed once."""
    keys = pipeline.write_sources([CLONED, VIA_API, *extra])
    first = run(pipeline, keys)
    assert first.result.success
    assert {k: v for k, v in rows(pipeline).items() if k in NEIGHBOURS} == NEIGHBOURS
    return keys


def assert_neighbours_written(batch: Batch) -> None:
    materialized = batch.materialized()
    for key, count in NEIGHBOURS.items():
        assert materialized[key]["artifact_count"] == count
    assert materialized["obra/superpowers"]["strategy"] != "api"  # the clone path
    assert materialized["synthetic/repo-01"]["strategy"] == "api"  # the API path


# -- 1. the token goes to GitHub's hosts only ------------------------------------------------------


def test_1_the_token_never_goes_to_a_sources_own_url_on_another_host(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, clone_tmp: Path
):
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    with RecordingServer(status=401) as other:
        # `github` names a repository, `url` points elsewhere; that host asks for credentials
        stranger = {"github": "anthropics/skills", "url": f"{other.base_url}/x.git"}
        keys = pipeline.write_sources([CLONED, VIA_API, stranger])
        batch = run(pipeline, keys)
        asked = other.requests()
        authorizations = other.authorizations()
        # head polling with the same source and token
        answers = BatchHeadLister()([HeadQuery("s", stranger["url"], token=Secret(TOKEN))], 20.0)
        # a REST redirect to the other host
        pipeline.github.redirect_repo("obra/superpowers", other.base_url)
        with (
            GitHubClient(api_url=pipeline.github.api_url, token=Secret(TOKEN)) as client,
            pytest.raises(ApiError),
        ):
            client.repository("obra/superpowers")
        redirected = other.requests()[len(asked) + 0 :]
        all_authorizations = other.authorizations()
    assert asked, "libgit2 talked to the other host (and was asked for credentials)"
    assert authorizations == [] and all_authorizations == []
    assert any(r.path == "/repos/obra/superpowers" for r in redirected)
    assert "GitHub's hosts only" in (answers["s"].error or "")
    # the source itself still gets indexed: over the API, whose host is GitHub's
    assert batch.result.success
    meta = batch.materialized()["anthropics/skills"]
    assert (meta["strategy"], meta["artifact_count"]) == ("api", 21)
    assert "GitHub's hosts only" in str(meta["fallback_reason"])
    assert all(c.authenticated for c in pipeline.github.api_calls() if c.path.startswith("/repos"))
    assert_neighbours_written(batch)
    assert_nothing_leaked(clone_tmp)


# -- 2. internal addresses -------------------------------------------------------------------------


FORBIDDEN_URLS = [
    "http://169.254.169.254/latest/meta-data/iam.git",
    "http://0x7f000001:{port}/x.git",
    "http://2130706433:{port}/x.git",
    "http://0177.0.0.1:{port}/x.git",
    "http://[::ffff:127.0.0.1]:{port}/x.git",
    "http://[::1]:{port}/x.git",
    "http://localhost:{port}/x.git",
    "http://10.0.0.1/x.git",
    "http://[fd00::1]/x.git",
    "http://[fe80::1]/x.git",
    "http://0.0.0.0:{port}/x.git",
]


@pytest.mark.usefixtures("dagster_home")
def test_2_internal_addresses_are_refused_unless_allowed(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, clone_tmp: Path
):
    runner = CliRunner()
    keys = indexed_neighbours(
        pipeline, {"key": "victim", "url": pipeline.git.url_for("synthetic/repo-04")}
    )
    before = rows(pipeline)
    monkeypatch.delenv(ALLOWED_PRIVATE_HOSTS)  # the default: nothing non-public is allowed
    with RecordingServer(status=200) as internal:
        for template in FORBIDDEN_URLS:
            url = template.format(port=internal.port)
            entries = [CLONED, VIA_API, {"key": "victim", "url": url}]
            pipeline.sources_path.write_text(yaml.safe_dump({"sources": entries}))
            synced = runner.invoke(main, ["sources", "sync"])
            assert synced.exit_code == 2, url
            assert "source #3 (victim), field 'url'" in synced.stderr
            assert ALLOWED_PRIVATE_HOSTS in synced.stderr
            detected = runner.invoke(main, ["detect", url])
            assert detected.exit_code == 2, url
            assert ALLOWED_PRIVATE_HOSTS in detected.stderr
        # materialize: the bad entry fails its own partition; its rows and the neighbours' stay
        batch = run(pipeline, keys)
        assert internal.requests() == []  # nothing connected to the internal host
    assert set(batch.failed_partitions()) == {"victim"}
    assert ALLOWED_PRIVATE_HOSTS in batch.failed_partitions()["victim"]
    assert_neighbours_written(batch)
    assert rows(pipeline) == before
    assert_nothing_leaked(clone_tmp)


def test_2_a_name_that_resolves_to_loopback_is_refused_at_connect_time(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.delenv(ALLOWED_PRIVATE_HOSTS)
    with RecordingServer(status=401) as server:
        url = f"http://localhost:{server.port}/x.git"
        with pytest.raises(CloneError) as refused:
            resolve_head(url)
        answers = BatchHeadLister()([HeadQuery("s", url)], 20.0)
        assert server.requests() == []
        # allowed by name, the same lookup reaches the server (which asks for credentials)
        monkeypatch.setenv(ALLOWED_PRIVATE_HOSTS, "localhost")
        with pytest.raises(CloneError) as reached:
            resolve_head(url)
        assert server.requests()
    assert refused.value.reason is CloneReason.FORBIDDEN_ADDRESS
    assert "localhost resolves to" in str(refused.value)
    assert ALLOWED_PRIVATE_HOSTS in str(refused.value)
    assert ALLOWED_PRIVATE_HOSTS in (answers["s"].error or "")
    assert reached.value.reason is CloneReason.AUTH


def sync(pipeline: Pipeline, entries: list[dict]) -> list[str]:
    """`sources sync` of `entries` (the instance of DAGSTER_HOME); the partition keys."""
    pipeline.sources_path.write_text(yaml.safe_dump({"sources": entries}))
    synced = CliRunner().invoke(main, ["sources", "sync"])
    assert synced.exit_code == 0, synced.output
    with dg.DagsterInstance.get() as instance:
        return instance.get_dynamic_partitions("marketplace_sources")


def assert_unchanged(pipeline: Pipeline, keys: list[str]) -> None:
    """The partitions are `keys` and no source row was marked removed."""
    with dg.DagsterInstance.get() as instance:
        assert instance.get_dynamic_partitions("marketplace_sources") == keys
    catalog = pipeline.catalog()
    try:
        assert {s.key: s.last_status for s in catalog.list_sources()} == {k: None for k in keys}
    finally:
        catalog.dispose()


# -- 3. an empty or comment-only file --------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "# every source was here\n# and is gone\n", "sources:\n"])
@pytest.mark.usefixtures("dagster_home")
def test_3_an_empty_or_comment_only_file_changes_nothing(pipeline: Pipeline, text: str):
    runner = CliRunner()
    keys = sync(pipeline, [CLONED, VIA_API])
    pipeline.sources_path.write_text(text)  # truncated while being rewritten
    synced = runner.invoke(main, ["sources", "sync"])
    assert synced.exit_code == 2
    assert "nothing was changed" in synced.stderr
    # the sensor reads the same file within 60 s: its tick fails, nothing changes either
    resources = {"sources_file": SourcesFileResource(), "catalog": CatalogResource()}
    with (
        dg.DagsterInstance.get() as instance,
        dg.build_sensor_context(instance=instance, resources=resources) as context,
        pytest.raises(SourcesFileError, match="nothing was changed"),
    ):
        sources_sync_sensor(context)
    assert_unchanged(pipeline, keys)


# -- 4. a repeated key -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("sources:\n  - github: obra/superpowers\n    ref: main\n    ref: dev\n", 4),
        ("sources:\n  - github: obra/superpowers\nsources:\n  - github: synthetic/repo-01\n", 3),
    ],
)
@pytest.mark.usefixtures("dagster_home")
def test_4_a_repeated_key_is_an_error_naming_the_line(pipeline: Pipeline, text: str, line: int):
    runner = CliRunner()
    keys = sync(pipeline, [CLONED, VIA_API])
    pipeline.sources_path.write_text(text)
    synced = runner.invoke(main, ["sources", "sync"])
    assert synced.exit_code == 2
    assert f"line {line}: key" in synced.stderr and "is repeated" in synced.stderr
    checked = runner.invoke(main, ["sources", "check"])
    assert checked.exit_code == 1 and f"line {line}" in checked.stderr
    assert_unchanged(pipeline, keys)


# -- 5. one repository, two sources ----------------------------------------------------------------


@pytest.mark.parametrize(
    "entries",
    [
        [{"github": "obra/superpowers"}, {"github": "Obra/SuperPowers"}],
        [{"github": "obra/superpowers"}, {"key": "mirror", "url": "{git}/OBRA/superpowers"}],
        [
            {"key": "a", "url": "https://git.example.com/x.git"},
            {"key": "b", "url": "https://GIT.example.com:443/x/"},
        ],
    ],
)
def test_5_one_repository_named_twice_is_an_error(pipeline: Pipeline, entries: list[dict]):
    for entry in entries:
        if "url" in entry:
            entry["url"] = entry["url"].format(git=pipeline.git.base_url)
    pipeline.sources_path.write_text(yaml.safe_dump({"sources": entries}))
    with pytest.raises(
        SourcesFileError, match=r"line \d+: source #2 .* same repository as source #1"
    ):
        parse_sources(pipeline.sources_path.read_text())


# -- 6. credentials inside a URL -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://{token}@git.example.com/x.git",
        "https://x-access-token:{token}@git.example.com/x.git",
        "ssh://user:{token}@git.example.com/x.git",
        "https://git.example.com/x.git?access_token={token}",
    ],
)
@pytest.mark.usefixtures("dagster_home")
def test_6_credentials_in_a_url_are_refused_and_never_stored(
    pipeline: Pipeline, url: str, clone_tmp: Path
):
    runner = CliRunner()
    url = url.format(token=TOKEN)
    keys = indexed_neighbours(pipeline)
    entries = [CLONED, VIA_API, {"key": "leaky", "url": url}]
    pipeline.sources_path.write_text(yaml.safe_dump({"sources": entries}))
    pipeline.instance.add_dynamic_partitions("marketplace_sources", ["leaky"])
    synced = runner.invoke(main, ["sources", "sync"])
    checked = runner.invoke(main, ["sources", "check"])
    batch = run(pipeline, [*keys, "leaky"])
    assert synced.exit_code == 2 and "credentials" in synced.stderr
    assert checked.exit_code == 1 and "credentials" in checked.stderr
    assert set(batch.failed_partitions()) == {"leaky"}
    assert_neighbours_written(batch)
    for shown in (synced.output, checked.output, batch.failed_partitions()["leaky"]):
        assert TOKEN not in shown
    engine = sa.create_engine(pipeline.index_url)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT key, url, last_error FROM sources")).all()
    engine.dispose()
    assert "leaky" not in {row.key for row in stored}
    assert not any(TOKEN in str(row) for row in stored)
    assert_nothing_leaked(clone_tmp)


# -- 7. an invalid owner/repo in a batch -----------------------------------------------------------


def test_7_an_invalid_owner_repo_fails_its_partition_alone(pipeline: Pipeline, clone_tmp: Path):
    keys = indexed_neighbours(pipeline)
    keys = pipeline.write_sources([CLONED, {"github": "../.."}, VIA_API])
    before = rows(pipeline)
    batch = run(pipeline, keys)
    assert not batch.result.success
    failed = batch.failed_partitions()
    assert set(failed) == {"../.."}
    assert "field 'github': must be 'owner/repo'" in failed["../.."]
    assert_neighbours_written(batch)
    assert rows(pipeline) == before
    assert_nothing_leaked(clone_tmp)


# -- 8. a partition the sources file does not know -------------------------------------------------


def test_8_a_partition_that_is_not_a_configured_source_fails_alone(
    pipeline: Pipeline, clone_tmp: Path
):
    keys = indexed_neighbours(pipeline)
    # added in the UI: a partition key, no entry in the sources file; first in the batch
    pipeline.instance.add_dynamic_partitions("marketplace_sources", ["added/in-the-ui"])
    before = rows(pipeline)
    batch = run(pipeline, ["added/in-the-ui", *keys])
    failed = batch.failed_partitions()
    assert set(failed) == {"added/in-the-ui"}
    assert "not a configured source" in failed["added/in-the-ui"]
    assert "UnknownSourceError" not in failed["added/in-the-ui"]
    assert not any("UnknownSourceError" in m for _, m in batch.pipeline.run_log(batch.result))
    assert_neighbours_written(batch)
    assert rows(pipeline) == before
    assert_nothing_leaked(clone_tmp)


# -- `sources check` -------------------------------------------------------------------------------


def test_sources_check_validates_and_resolves_without_changing_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    runner = CliRunner()
    index = tmp_path / "index.sqlite"
    monkeypatch.setenv("SKILLMEAT_INDEX_URL", f"sqlite:///{index}")
    monkeypatch.delenv(ALLOWED_PRIVATE_HOSTS)
    path = tmp_path / "sources.yaml"
    path.write_text(
        "sources:\n  - github: anthropics/skills\n  - key: ip\n    url: https://8.8.8.8/x.git\n"
    )
    ok = runner.invoke(main, ["sources", "check", str(path)])
    assert (ok.exit_code, ok.stdout.strip()) == (0, f"{path}: 2 sources, valid")
    resolved = runner.invoke(main, ["sources", "check", str(path), "--resolve"])
    assert resolved.exit_code == 0, resolved.output
    assert "trusted" in resolved.stdout and "hosts resolved and allowed" in resolved.stdout
    # a name that resolves to loopback passes the file check only when allowed by address...
    path.write_text(
        "sources:\n  - key: lo\n    url: http://127.0.0.1:9/x.git\n  - key: me\n    url: http://localhost:9/y.git\n"
    )
    refused = runner.invoke(main, ["sources", "check", str(path)])
    assert refused.exit_code == 1
    assert "line 2: source #1 (lo), field 'url'" in refused.stderr
    assert "line 4: source #2 (me), field 'url'" in refused.stderr
    monkeypatch.setenv(ALLOWED_PRIVATE_HOSTS, "localhost, 127.0.0.1")
    allowed = runner.invoke(main, ["sources", "check", str(path), "--resolve"])
    assert allowed.exit_code == 0, allowed.output
    monkeypatch.setenv(ALLOWED_PRIVATE_HOSTS, "not a host")
    assert runner.invoke(main, ["sources", "check", str(path)]).exit_code == 2
    monkeypatch.delenv(ALLOWED_PRIVATE_HOSTS)
    assert runner.invoke(main, ["sources", "check", str(tmp_path / "nope.yaml")]).exit_code == 2
    assert not index.exists()  # no catalog was opened
