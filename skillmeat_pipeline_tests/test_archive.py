"""The API path reads many files from one repository archive, few with concurrent raw reads.

Against the GitHub emulator (REST, raw and archive hosts) and the local git server on loopback:
the archive path gives the clone path's artifacts and findings; every archive fault is a clear
error that keeps the last good rows, costs at most 10 REST calls and writes no file anywhere.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.core.detection import detect_artifacts
from skillmeat_pipeline.lib.core.models import SourceStatus
from skillmeat_pipeline.lib.core.retry import BackoffPolicy, FailureKind
from skillmeat_pipeline.lib.core.sources import SourceConfig
from skillmeat_pipeline.lib.fetch.git.clone import CloneSettings
from skillmeat_pipeline.lib.fetch.git.tree import snapshot_commit
from skillmeat_pipeline.lib.fetch.github.archive import (
    ArchiveError,
    ArchiveSettings,
    read_archive,
)
from skillmeat_pipeline.lib.fetch.github.client import GitHubClient
from skillmeat_pipeline.lib.scan.api_read import read_over_api
from skillmeat_pipeline.lib.scan.outcomes import Failed, Scanned, SourceOutcome
from skillmeat_pipeline.lib.scan.pipeline import scan_source, start_plan
from skillmeat_pipeline.lib.scan.settings import Fetchers, ScanSettings
from skillmeat_pipeline.lib.scan.write import write
from skillmeat_pipeline.lib.trust import findings_for_files
from skillmeat_pipeline.lib.trust.files import read_artifact_files
from skillmeat_pipeline.testing.git_server import GitHttpServer, add_repository
from skillmeat_pipeline.testing.github_emulator import GitHubEmulator
from skillmeat_pipeline_tests.fixtures_github import make_repo, open_bare

MAX_REST_CALLS = 10
CORPUS = (
    "wshobson+agents",
    "ComposioHQ+awesome-claude-skills",
    "miethe+skillmeat",
    "anthropics+claude-plugins-official",
    "VoltAgent+awesome-claude-code-subagents",
)
SMALL = "octo/small"
SKILL = "---\nname: {name}\ndescription: the {name} skill\n---\n# {name}\n"
SMALL_FILES = {
    **{f"skills/{n}/SKILL.md": SKILL.format(name=n).encode() for n in ("alpha", "beta", "gamma")},
    "skills/alpha/notes.txt": b"alpha's notes\n",
    "agents/reviewer.md": b"---\nname: reviewer\ndescription: reviews\n---\nReview.\n",
    "commands/deploy.md": b"---\ndescription: deploys\n---\nDeploy.\n",
    "extra/helper.md": b"---\nname: helper\ndescription: listed by plugin.json\n---\n",
    ".claude-plugin/plugin.json": b'{"name": "small", "agents": ["./extra/helper.md"]}',
    "hooks/hooks.json": b'{"hooks": {"PreToolUse": []}}',
    ".mcp.json": b'{"mcpServers": {"files": {"command": "npx"}}}',
}
SMALL_LINKS = {
    "docs/reviewer.md": "../agents/reviewer.md",
    "outside": "../../../etc",  # a link out of the repository is content, not a fault
    "dangling": "nowhere",
}
NO_WAIT = BackoffPolicy(max_attempts=3, base_delay_s=0.0, max_delay_s=0.0)
Members = tuple[tuple[tarfile.TarInfo, bytes | None], ...]


def slug(name: str) -> str:
    return name.replace("+", "/", 1)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, corpus_bare_repo: Callable[[str], Path]) -> Path:
    root = tmp_path_factory.mktemp("archive-served")
    for name in CORPUS:
        add_repository(root, slug(name), corpus_bare_repo(name))
    make_repo(root / "octo" / "small.git", SMALL_FILES, symlinks=SMALL_LINKS)
    return root


@pytest.fixture
def emulator(root: Path) -> Iterator[GitHubEmulator]:
    with GitHubEmulator(root) as emulator:
        yield emulator


@pytest.fixture
def client(emulator: GitHubEmulator) -> Iterator[GitHubClient]:
    with GitHubClient(api_url=emulator.api_url, raw_url=emulator.raw_url) as client:
        yield client


@pytest.fixture
def no_files_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh working directory and temporary directory; both must stay empty."""
    work, temp = tmp_path / "work", tmp_path / "temp"
    work.mkdir()
    temp.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    yield tmp_path
    assert list(work.iterdir()) == []
    assert list(temp.iterdir()) == []


def settings(**archive: Any) -> ScanSettings:
    clone = CloneSettings(timeout_s=60, min_disk_space_mb=0)
    return ScanSettings(clone=clone, archive=ArchiveSettings(**archive), archive_retries=NO_WAIT)


def over_api(
    client: GitHubClient, repo: str, scan_settings: ScanSettings, **kwargs: Any
) -> tuple[SourceOutcome, list[float]]:
    """`read_over_api` for `repo`, with the backoff waits it asked for."""
    waits: list[float] = []
    source = SourceConfig.model_validate({"github": repo})
    plan = start_plan(source, kwargs.pop("record", None))
    fetchers = Fetchers(github=client, settings=scan_settings)
    return read_over_api(plan, fetchers, kwargs.pop("previous", {}), sleep=waits.append), waits


def dumps(outcome: SourceOutcome) -> list[dict[str, Any]]:
    assert isinstance(outcome, Scanned), outcome
    # upstream_url exists for GitHub sources only; indexed_at is the moment of extraction
    return [
        e.model_dump(mode="json", exclude={"indexed_at", "upstream_url"}) for e in outcome.entries
    ]


def archive_of(emulator: GitHubEmulator, repo: str) -> tuple[bytes, str]:
    """The archive the emulator serves for `repo`'s HEAD, and its top-level folder."""
    with httpx.Client() as http:
        answer = http.get(f"{emulator.api_url}/repos/{repo}/tarball/HEAD", follow_redirects=True)
    answer.raise_for_status()
    root = answer.headers["content-disposition"].rsplit("=", 1)[1].removesuffix(".tar.gz")
    emulator.clear_calls()
    return answer.content, root


def rebuilt(
    original: bytes,
    *,
    add: Members = (),
    change: dict[str, bytes] | None = None,
    pax_headers: dict[str, str] | None = None,
) -> bytes:
    """`original` with its files' data changed (by path below the top folder) and members added."""
    out = io.BytesIO()
    options: dict[str, Any] = {"encoding": "utf-8", "errors": "surrogateescape"}
    with (
        tarfile.open(fileobj=io.BytesIO(original), mode="r:gz", **options) as source,
        tarfile.open(
            fileobj=out,
            mode="w:gz",
            format=tarfile.PAX_FORMAT,
            pax_headers=pax_headers if pax_headers is not None else source.pax_headers,
            **options,
        ) as target,
    ):
        for member in source.getmembers():
            data = source.extractfile(member).read() if member.isreg() else None  # type: ignore[union-attr]
            relative = member.name.partition("/")[2]
            if change and relative in change:
                data = change[relative]
                member.size = len(data)
            target.addfile(member, io.BytesIO(data) if data is not None else None)
        for member, data in add:
            if data is not None:
                member.size = len(data)
            target.addfile(member, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, 0o644
    return info


# -- the archive path equals the clone path -------------------------------------------------------


@pytest.mark.parametrize("name", CORPUS)
def test_archive_path_gives_the_clone_path_artifacts(
    root: Path, emulator: GitHubEmulator, client: GitHubClient, name: str
) -> None:
    repo = slug(name)
    with GitHttpServer(root) as git:
        clone_source = SourceConfig.model_validate({"key": repo, "url": git.url_for(repo)})
        cloned = scan_source(clone_source, Fetchers(github=client, settings=settings()))
    assert emulator.calls == []

    api, _ = over_api(client, repo, settings(threshold=0))

    assert isinstance(api, Scanned) and isinstance(cloned, Scanned)
    assert dumps(api) == dumps(cloned)
    assert len(api.entries) > 100
    # commit, tree and one tarball; every file detection and extraction read came from it
    assert [c.path.split("/")[4] for c in emulator.api_calls()] == ["commits", "git", "tarball"]
    assert api.cost.api_calls == 3
    assert len(emulator.archive_calls()) == 1
    assert api.cost.raw_reads == len(emulator.raw_calls()) == 0
    assert 0 < api.cost.archive_bytes < api.cost.bytes_fetched
    api_phase = next(p for p in api.cost.phases if p.name == "api")
    assert api_phase.attributes["fetch"] == "archive"
    assert api_phase.attributes["archive_bytes"] == api.cost.archive_bytes


@pytest.mark.parametrize(
    "name", ["anthropics+claude-plugins-official", "VoltAgent+awesome-claude-code-subagents"]
)
def test_archive_snapshot_gives_the_clone_snapshot_findings(
    root: Path, client: GitHubClient, name: str
) -> None:
    repo = slug(name)
    bare = open_bare(root, repo)
    try:
        local = snapshot_commit(bare)
        expected = findings_for_files(
            read_artifact_files(local, detect_artifacts(local, repo_name=repo).artifacts)
        )
    finally:
        bare.free()
    snapshot = client.fetch_snapshot(repo)
    read_archive(snapshot, snapshot.entries, ArchiveSettings())

    artifacts = detect_artifacts(snapshot, repo_name=repo).artifacts
    found = findings_for_files(read_artifact_files(snapshot, artifacts))

    assert snapshot.entries == local.entries
    assert found == expected
    assert any(f.severity == "high" for f in found)
    assert snapshot.stats.raw_reads == 0


# -- raw reads below the threshold ----------------------------------------------------------------


def test_a_small_source_reads_its_files_concurrently_over_shared_connections(
    root: Path, client: GitHubClient
) -> None:
    # each answer waits a little, so reads one after another would never overlap
    with GitHubEmulator(root, delay_s=0.05) as slow:
        with GitHubClient(api_url=slow.api_url, raw_url=slow.raw_url) as slow_client:
            outcome, _ = over_api(slow_client, SMALL, settings())
        raw = slow.raw_calls()
        assert slow.archive_calls() == []
        assert [c.path.split("/")[4] for c in slow.api_calls()] == ["commits", "git"]
        assert 1 < slow.max_in_flight("raw") <= ScanSettings().raw_read_workers
        # connections are reused: fewer connections than reads
        assert slow.connection_count("raw") <= ScanSettings().raw_read_workers < len(raw)
    assert isinstance(outcome, Scanned)
    assert outcome.cost.raw_reads == len(raw) == len({c.path for c in raw})
    assert outcome.cost.archive_bytes == 0
    assert next(p for p in outcome.cost.phases if p.name == "api").attributes["fetch"] == "raw"

    archived, _ = over_api(client, SMALL, settings(threshold=0))
    assert dumps(archived) == dumps(outcome)


def test_a_failed_concurrent_raw_read_fails_the_source_clearly(
    emulator: GitHubEmulator, client: GitHubClient
) -> None:
    emulator.inject_fault(SMALL, 500, host="raw")

    outcome, _ = over_api(client, SMALL, settings())

    assert isinstance(outcome, Failed)
    assert "from the raw host failed: GitHub answered 500" in outcome.reason
    assert emulator.archive_calls() == []
    assert len(emulator.api_calls()) == 2


def test_the_threshold_bounds_the_raw_reads_of_a_scan(
    emulator: GitHubEmulator, client: GitHubClient
) -> None:
    below, _ = over_api(client, SMALL, settings(threshold=100))
    planned = below.cost.raw_reads
    emulator.clear_calls()

    at, _ = over_api(client, SMALL, settings(threshold=planned))
    assert (at.cost.raw_reads, at.cost.archive_bytes) == (planned, 0)
    assert emulator.archive_calls() == []

    # one more file than allowed: the scan's whole plan (detection, extraction and the trust
    # rules, known from the listing) comes from one archive, with no raw read
    above, _ = over_api(client, SMALL, settings(threshold=planned - 1))
    assert above.cost.raw_reads == 0
    assert len(emulator.archive_calls()) == 1
    assert above.cost.archive_bytes > 0

    emulator.clear_calls()
    first, _ = over_api(client, SMALL, settings(threshold=0))
    assert (first.cost.raw_reads, len(emulator.archive_calls())) == (0, 1)
    assert dumps(first) == dumps(above) == dumps(at) == dumps(below)


def test_files_the_archive_does_not_hold_as_listed_are_raw_reads(
    emulator: GitHubEmulator, client: GitHubClient
) -> None:
    # `export-subst` or an eol attribute changes a file in the archive: its blob SHA tells
    original, _ = archive_of(emulator, SMALL)
    changed = rebuilt(original, change={"agents/reviewer.md": b"---\nname: impostor\n---\n"})
    expected, _ = over_api(client, SMALL, settings(threshold=100))
    emulator.clear_calls()
    emulator.inject_fault(SMALL, host="archive", body=changed)

    outcome, _ = over_api(client, SMALL, settings(threshold=0))

    assert dumps(outcome) == dumps(expected)
    assert [c.path.rsplit("/", 2)[-2:] for c in emulator.raw_calls()] == [["agents", "reviewer.md"]]
    assert (
        next(p for p in outcome.cost.phases if p.name == "api").attributes["archive_unusable"] == 1
    )


# -- faults ---------------------------------------------------------------------------------------


def test_a_failed_archive_read_fails_the_source_and_keeps_its_last_good_rows(
    emulator: GitHubEmulator, client: GitHubClient, tmp_path: Path
) -> None:
    catalog = Catalog.from_url(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    catalog.migrate()
    source = SourceConfig.model_validate({"github": SMALL})
    catalog.upsert_sources([source])
    good, _ = over_api(client, SMALL, settings(threshold=0))
    write(catalog, good)
    before = catalog.entries(SMALL)
    emulator.inject_fault(SMALL, host="archive", stream="cut")

    outcome, _ = over_api(client, SMALL, settings(threshold=0), record=catalog.get_source(SMALL))
    written = write(catalog, outcome)

    assert isinstance(written.outcome, Failed)
    assert catalog.entries(SMALL) == before
    stored = catalog.get_source(SMALL)
    assert stored is not None and stored.last_status == SourceStatus.FAILED
    assert stored.last_error is not None and "the archive of" in stored.last_error
    assert "cut" in stored.last_error
    catalog.dispose()


@pytest.mark.usefixtures("no_files_written")
@pytest.mark.parametrize(
    ("fault", "attempts", "message"),
    [
        ({"status": 404}, 1, "GitHub answered 404"),
        ({"status": 503}, 3, "GitHub answered 503"),
        ({"stream": "cut"}, 3, "was cut"),
    ],
    ids=["404", "503", "cut"],
)
def test_archive_faults_are_retried_when_transient_then_fail_clearly(
    emulator: GitHubEmulator,
    client: GitHubClient,
    fault: dict[str, Any],
    attempts: int,
    message: str,
) -> None:
    emulator.inject_fault(SMALL, host="archive", **fault)

    outcome, waits = over_api(client, SMALL, settings(threshold=0))

    assert isinstance(outcome, Failed)
    assert message in outcome.reason and f"{SMALL}: " in outcome.reason
    assert len(emulator.archive_calls()) == attempts
    assert len(waits) == attempts - 1
    # one REST call per attempt after the commit and the tree
    assert outcome.cost.api_calls == len(emulator.api_calls()) == 2 + attempts <= MAX_REST_CALLS


@pytest.mark.parametrize("fault", [{"status": 502}, {"stream": "cut"}], ids=["502", "cut"])
def test_a_transient_archive_fault_is_retried_and_the_scan_succeeds(
    emulator: GitHubEmulator, client: GitHubClient, fault: dict[str, Any]
) -> None:
    expected, _ = over_api(client, SMALL, settings(threshold=100))
    emulator.clear_calls()
    emulator.inject_fault(SMALL, host="archive", times=1, **fault)

    outcome, waits = over_api(client, SMALL, settings(threshold=0))

    assert dumps(outcome) == dumps(expected)
    assert (len(emulator.archive_calls()), len(waits)) == (2, 1)
    rest = emulator.api_calls()
    assert [c.path.split("/")[4] for c in rest].count("tarball") == 2
    assert len(rest) <= MAX_REST_CALLS
    assert outcome.cost.raw_reads == 0


def test_retries_stop_at_the_scan_budget(emulator: GitHubEmulator, client: GitHubClient) -> None:
    emulator.inject_fault(SMALL, 503, host="archive")
    many = replace(settings(threshold=0), archive_retries=BackoffPolicy(20, 0.0, 0.0))

    outcome, _ = over_api(client, SMALL, many)

    assert isinstance(outcome, Failed)
    assert "budget of 10" in outcome.reason
    assert len(emulator.api_calls()) == MAX_REST_CALLS
    assert len(emulator.archive_calls()) == MAX_REST_CALLS - 2


@pytest.mark.usefixtures("no_files_written")
def test_an_archive_that_never_ends_is_cut_at_the_deadline(
    emulator: GitHubEmulator, client: GitHubClient
) -> None:
    emulator.inject_fault(SMALL, host="archive", stream="endless")
    once = replace(settings(threshold=0, timeout_s=1), archive_retries=BackoffPolicy(1))

    outcome, _ = over_api(client, SMALL, once)

    assert isinstance(outcome, Failed)
    assert "was not read within 1 s (SKILLMEAT_ARCHIVE_TIMEOUT_SECONDS)" in outcome.reason
    assert len(emulator.archive_calls()) == 1
    assert len(emulator.api_calls()) == 3


@pytest.mark.usefixtures("no_files_written")
@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"max_bytes": 200}, "is larger than"),
        ({"max_kept_bytes": 100}, "files to keep"),
    ],
    ids=["received", "kept"],
)
def test_an_archive_too_large_is_a_permanent_error(
    emulator: GitHubEmulator,
    client: GitHubClient,
    limits: dict[str, int],
    message: str,
) -> None:
    outcome, waits = over_api(client, SMALL, settings(threshold=0, **limits))

    assert isinstance(outcome, Failed)
    assert message in outcome.reason
    assert (len(emulator.archive_calls()), waits) == (1, [])
    assert len(emulator.api_calls()) == 3


def _malicious(
    root: str, outside: Path
) -> dict[str, tuple[tuple[tarfile.TarInfo, bytes | None], ...]]:
    escaped = str(outside / "escaped")
    return {
        "absolute": ((member(escaped), b"x"),),
        "dot-dot": ((member(f"{root}/../../escaped"), b"x"),),
        # through the repository's own link `outside` -> ../../../etc
        "symlink-escape": ((member(f"{root}/outside/escaped"), b"x"),),
        "hard-link": ((member(f"{root}/hard", tarfile.LNKTYPE, escaped), None),),
        "duplicate": ((member(f"{root}/skills/alpha/SKILL.md"), b"---\nname: twin\n---\n"),),
        "not-utf-8": ((member(f"{root}/caf\udce9.md"), b"x"),),
        "outside-root": ((member("elsewhere/escaped"), b"x"),),
        "device": ((member(f"{root}/fifo", tarfile.FIFOTYPE), None),),
    }


MALICIOUS_MESSAGES = {
    "absolute": "has an absolute path",
    "dot-dot": "has an empty, '.' or '..' segment",
    "symlink-escape": "lies below the symlink",
    "hard-link": "is a hard link",
    "duplicate": "appears twice",
    "not-utf-8": "has a name that is not UTF-8",
    "outside-root": "is outside its top-level folder",
    "device": "is a device, FIFO or sparse file",
}


@pytest.mark.parametrize("kind", sorted(MALICIOUS_MESSAGES))
def test_malicious_member_paths_refuse_the_archive_and_write_nothing(
    emulator: GitHubEmulator, client: GitHubClient, no_files_written: Path, kind: str
) -> None:
    outside = no_files_written / "outside"
    outside.mkdir()
    original, root = archive_of(emulator, SMALL)
    emulator.inject_fault(
        SMALL, host="archive", body=rebuilt(original, add=_malicious(root, outside)[kind])
    )

    outcome, waits = over_api(client, SMALL, settings(threshold=0))

    assert isinstance(outcome, Failed)
    assert "is refused: " in outcome.reason
    assert MALICIOUS_MESSAGES[kind] in outcome.reason
    # permanent: not retried
    assert (len(emulator.archive_calls()), waits) == (1, [])
    assert len(emulator.api_calls()) == 3
    assert list(outside.iterdir()) == []
    assert not (no_files_written / "escaped").exists()
    # control characters and stray bytes are escaped in the message
    assert "\udce9" not in outcome.reason


def test_an_archive_with_more_members_than_its_tree_is_refused(
    emulator: GitHubEmulator, client: GitHubClient
) -> None:
    original, root = archive_of(emulator, SMALL)
    emulator.inject_fault(
        SMALL, host="archive", body=rebuilt(original, add=((member(f"{root}/extra.md"), b"x"),))
    )

    outcome, _ = over_api(client, SMALL, settings(threshold=0))

    assert isinstance(outcome, Failed)
    assert "holds more than 24 members, the entries of its tree" in outcome.reason


def test_an_archive_of_another_commit_is_refused(
    emulator: GitHubEmulator, client: GitHubClient
) -> None:
    original, _ = archive_of(emulator, SMALL)
    emulator.inject_fault(
        SMALL, host="archive", body=rebuilt(original, pax_headers={"comment": "0" * 40})
    )

    outcome, _ = over_api(client, SMALL, settings(threshold=0))

    assert isinstance(outcome, Failed)
    assert "it is the archive of commit '0000000000" in outcome.reason


def test_an_archive_that_unpacks_beyond_its_tree_is_refused(
    emulator: GitHubEmulator, client: GitHubClient
) -> None:
    original, _ = archive_of(emulator, SMALL)
    # 64 MB of zeros: a few kilobytes once compressed, far more than the tree's files
    bomb = rebuilt(original, change={"skills/alpha/notes.txt": bytes(64 * 1024 * 1024)})
    emulator.inject_fault(SMALL, host="archive", body=bomb)

    outcome, _ = over_api(client, SMALL, settings(threshold=0))

    assert isinstance(outcome, Failed)
    assert "unpacks to more than" in outcome.reason
    assert len(bomb) < 1024 * 1024


def test_an_archive_that_is_not_gzip_is_a_transient_error(
    emulator: GitHubEmulator, client: GitHubClient
) -> None:
    emulator.inject_fault(SMALL, host="archive", body=b"<html>captive portal</html>")
    snapshot = client.fetch_snapshot(SMALL)

    with pytest.raises(ArchiveError, match="is not a valid gzip stream") as raised:
        read_archive(snapshot, snapshot.entries, ArchiveSettings())

    assert raised.value.kind is FailureKind.TRANSIENT
    assert snapshot.read_ahead == {}


def test_the_archive_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKILLMEAT_ARCHIVE_THRESHOLD", "7")
    monkeypatch.setenv("CLONE_TIMEOUT_SECONDS", "42")
    monkeypatch.setenv("SKILLMEAT_MAX_ARCHIVE_MB", "3")
    monkeypatch.delenv("SKILLMEAT_ARCHIVE_TIMEOUT_SECONDS", raising=False)

    archive = ScanSettings.from_env().archive
    assert (archive.threshold, archive.timeout_s, archive.max_bytes) == (7, 42.0, 3 * 1024 * 1024)

    monkeypatch.setenv("SKILLMEAT_ARCHIVE_TIMEOUT_SECONDS", "9")
    assert ScanSettings.from_env().archive.timeout_s == 9.0
    monkeypatch.setenv("SKILLMEAT_ARCHIVE_THRESHOLD", "-1")
    with pytest.raises(ValueError, match="SKILLMEAT_ARCHIVE_THRESHOLD"):
        ScanSettings.from_env()
    monkeypatch.delenv("SKILLMEAT_ARCHIVE_THRESHOLD")

    monkeypatch.setenv("SKILLMEAT_MAX_CLONE_MB", "250")
    assert ScanSettings.from_env().max_clone_mb == 250.0
    monkeypatch.setenv("SKILLMEAT_MAX_CLONE_MB", "-5")
    with pytest.raises(ValueError, match="SKILLMEAT_MAX_CLONE_MB must be zero or more"):
        ScanSettings.from_env()
