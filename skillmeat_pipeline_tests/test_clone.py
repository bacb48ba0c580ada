"""libgit2 clones and head lookups against the local smart-HTTP server, faults included."""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pygit2
import pytest

from skillmeat_pipeline.lib.core.addresses import AddressPolicy, display_url
from skillmeat_pipeline.lib.core.retry import FailureKind
from skillmeat_pipeline.lib.core.secrets import Secret
from skillmeat_pipeline.lib.fetch.git import clone as clone_module
from skillmeat_pipeline.lib.fetch.git.clone import (
    CloneSettings,
    RemoteHead,
    clone_source,
    libgit2_status,
    resolve_head,
)
from skillmeat_pipeline.lib.fetch.git.errors import CloneError, CloneReason
from skillmeat_pipeline.lib.fetch.git.pool import WORKER_POOL
from skillmeat_pipeline.lib.fetch.git.tree import snapshot_commit
from skillmeat_pipeline.testing.git_server import (
    Fault,
    GitHttpServer,
    closed_port,
    peak_concurrency,
    silent_port,
)

# served by the `git_server` fixture; see fixtures_git for what REFS and DEV_DEFAULT hold
OFFICIAL = "anthropics/claude-plugins-official"
SMALL = "microsoft/playwright-mcp"
REFS = "test/refs"
DEV_DEFAULT = "test/dev-default"
TOKEN = "s3cr3t-TOKEN-abc123"


@pytest.fixture
def clone_dir(tmp_path: Path) -> Path:
    path = tmp_path / "clones"
    path.mkdir()
    return path


def _settings(clone_dir: Path, **overrides: float) -> CloneSettings:
    values: dict[str, object] = {"timeout_s": 30.0, "min_disk_space_mb": 0, "clone_dir": clone_dir}
    return CloneSettings(**(values | overrides))


def _rev(root: Path, slug: str, rev: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(root / f"{slug}.git"), "rev-parse", rev],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def _clone_fails(url: str, clone_dir: Path, **kwargs: object) -> tuple[CloneError, float]:
    started = time.monotonic()
    with pytest.raises(CloneError) as caught, clone_source(url, **kwargs):  # type: ignore[arg-type]
        pytest.fail("the clone should have failed")
    elapsed = time.monotonic() - started
    assert list(clone_dir.iterdir()) == [], "the private clone directory was left behind"
    return caught.value, elapsed


def _child_processes() -> list[Path]:
    children = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                # the parent pid is the 2nd field after the parenthesised command name
                if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == os.getpid():
                    children.append(proc)
    return children


def test_libgit2_is_usable_here() -> None:
    status = libgit2_status()
    assert status.usable, status.problem
    assert status.version == pygit2.LIBGIT2_VERSION


def test_without_libgit2_a_warning_is_logged_and_nothing_is_fetched(
    git_server: GitHttpServer,
    clone_dir: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pygit2", None)  # makes `import pygit2` fail
    status = libgit2_status.__wrapped__()  # uncached: the process-wide answer stays as it is
    assert not status.usable
    assert "pygit2 cannot be imported" in str(status.problem)
    assert "GitHub API" in caplog.text
    monkeypatch.setattr(clone_module, "libgit2_status", lambda: status)
    error, _ = _clone_fails(git_server.url_for(SMALL), clone_dir, settings=_settings(clone_dir))
    git_server.stop()
    assert git_server.requests() == []
    assert (error.reason, error.kind) == (CloneReason.UNAVAILABLE, FailureKind.PERMANENT)


def test_clone_snapshot_equals_the_bundle_snapshot(
    git_server: GitHttpServer, corpus_bare_repo: Callable[[str], Path], clone_dir: Path
) -> None:
    expected = snapshot_commit(pygit2.Repository(str(corpus_bare_repo(OFFICIAL.replace("/", "+")))))
    with clone_source(git_server.url_for(OFFICIAL), settings=_settings(clone_dir)) as cloned:
        [workdir] = clone_dir.iterdir()
        assert stat.S_IMODE(workdir.stat().st_mode) == 0o700
        assert cloned.snapshot.repo.is_bare and cloned.snapshot.repo.is_shallow
        assert cloned.ref_name == "refs/heads/main"
        assert cloned.commit_sha == cloned.snapshot.commit_sha == expected.commit_sha
        assert cloned.snapshot.tree_sha == expected.tree_sha
        assert cloned.snapshot.entries == expected.entries
        manifest = next(e for e in expected.entries if e.path == ".claude-plugin/marketplace.json")
        assert cloned.snapshot.read_blob(manifest) == expected.read_blob(manifest)
        assert cloned.bytes_fetched > 1_000_000
        assert cloned.clone_ms > 0
    assert list(clone_dir.iterdir()) == []
    # a deleted pack that a process still holds open keeps its disk space
    for process in [Path("/proc/self"), *_child_processes()]:
        for fd in (process / "fd").iterdir():
            with contextlib.suppress(OSError):
                assert not os.readlink(fd).startswith(str(clone_dir))


@pytest.mark.parametrize(
    ("slug", "ref", "ref_name", "rev"),
    [
        (REFS, None, "refs/heads/main", "main"),
        (DEV_DEFAULT, None, "refs/heads/dev", "dev"),
        (REFS, "dev", "refs/heads/dev", "dev"),
        (REFS, "refs/heads/dev", "refs/heads/dev", "dev"),
        (REFS, "v0", "refs/tags/v0", "main"),
        # annotated: the commit it tags, not the tag object
        (REFS, "v1", "refs/tags/v1", "v1^{commit}"),
    ],
)
def test_resolve_head_finds_default_branch_branches_and_tags(
    git_server: GitHttpServer,
    git_server_root: Path,
    clone_dir: Path,
    slug: str,
    ref: str | None,
    ref_name: str,
    rev: str,
) -> None:
    head = resolve_head(git_server.url_for(slug), ref, settings=_settings(clone_dir))
    assert head == RemoteHead(ref_name, _rev(git_server_root, slug, rev))


def test_clone_of_an_annotated_tag_snapshots_the_tagged_commit(
    git_server: GitHttpServer, git_server_root: Path, clone_dir: Path
) -> None:
    with clone_source(git_server.url_for(REFS), ref="v1", settings=_settings(clone_dir)) as cloned:
        assert cloned.ref_name == "refs/tags/v1"
        assert cloned.commit_sha == _rev(git_server_root, REFS, "dev")
        assert cloned.snapshot.commit_sha == cloned.commit_sha


def test_a_missing_ref_is_a_permanent_error(git_server: GitHttpServer, clone_dir: Path) -> None:
    url, settings = git_server.url_for(REFS), _settings(clone_dir)
    with pytest.raises(CloneError) as looked_up:
        resolve_head(url, "no-such-branch", settings=settings)
    cloned, _ = _clone_fails(url, clone_dir, ref="no-such-branch", settings=settings)
    for error in (looked_up.value, cloned):
        assert (error.reason, error.kind) == (CloneReason.REF_NOT_FOUND, FailureKind.PERMANENT)
        assert "'no-such-branch'" in str(error)


def test_a_trickling_server_is_stopped_at_the_hard_deadline(
    git_server: GitHttpServer, clone_dir: Path
) -> None:
    # the ref advertisement never ends: no libgit2 callback or timeout fires, only the kill
    git_server.set_fault(SMALL, Fault.TRICKLE_FOREVER, bytes_per_second=2_000)
    error, elapsed = _clone_fails(
        git_server.url_for(SMALL), clone_dir, settings=_settings(clone_dir, timeout_s=3)
    )
    assert 3 <= elapsed < 4
    assert (error.reason, error.kind) == (CloneReason.TIMEOUT, FailureKind.TRANSIENT)
    assert "3 s" in str(error)


def test_resolve_head_is_bounded_on_a_trickling_server(
    git_server: GitHttpServer, clone_dir: Path
) -> None:
    git_server.set_fault(SMALL, Fault.TRICKLE_FOREVER, bytes_per_second=2_000)
    started = time.monotonic()
    with pytest.raises(CloneError) as caught:
        resolve_head(git_server.url_for(SMALL), settings=_settings(clone_dir, resolve_timeout_s=1))
    assert 1 <= time.monotonic() - started < 2
    assert caught.value.reason is CloneReason.TIMEOUT


def test_a_slow_pack_is_stopped_at_the_deadline(git_server: GitHttpServer, clone_dir: Path) -> None:
    git_server.set_fault(OFFICIAL, Fault.SLOW, bytes_per_second=100_000)
    error, elapsed = _clone_fails(
        git_server.url_for(OFFICIAL), clone_dir, settings=_settings(clone_dir, timeout_s=2)
    )
    assert elapsed < 3
    assert (error.reason, error.kind) == (CloneReason.TIMEOUT, FailureKind.TRANSIENT)


def test_a_server_that_never_answers_is_stopped_at_the_deadline(
    git_server: GitHttpServer, clone_dir: Path
) -> None:
    git_server.set_fault(SMALL, Fault.SILENT)
    error, elapsed = _clone_fails(
        git_server.url_for(SMALL), clone_dir, settings=_settings(clone_dir, timeout_s=3)
    )
    assert 3 <= elapsed < 4
    assert (error.reason, error.kind) == (CloneReason.TIMEOUT, FailureKind.TRANSIENT)
    git_server.stop()
    [held] = git_server.requests(SMALL)
    assert held.status is None


def test_a_socket_that_accepts_and_never_answers_is_stopped_at_the_deadline(
    clone_dir: Path,
) -> None:
    with silent_port() as port:
        error, elapsed = _clone_fails(
            f"http://127.0.0.1:{port}/o/r.git",
            clone_dir,
            settings=_settings(clone_dir, timeout_s=3),
        )
    assert 3 <= elapsed < 4
    assert (error.reason, error.kind) == (CloneReason.TIMEOUT, FailureKind.TRANSIENT)


def test_a_closed_port_is_a_transient_network_error(clone_dir: Path) -> None:
    with closed_port() as port:
        error, elapsed = _clone_fails(
            f"http://127.0.0.1:{port}/o/r.git",
            clone_dir,
            settings=_settings(clone_dir, timeout_s=3),
        )
    assert elapsed < 2
    assert (error.reason, error.kind) == (CloneReason.NETWORK, FailureKind.TRANSIENT)
    assert "Connection refused" in str(error)


@pytest.mark.parametrize(
    ("fault", "reason", "kind"),
    [
        (Fault.NOT_FOUND, CloneReason.NOT_FOUND, FailureKind.PERMANENT),
        (Fault.SERVER_ERROR, CloneReason.SERVER_ERROR, FailureKind.TRANSIENT),
        (Fault.DROP_MID_PACK, CloneReason.NETWORK, FailureKind.TRANSIENT),
    ],
)
def test_server_faults_are_classified(
    git_server: GitHttpServer,
    clone_dir: Path,
    fault: Fault,
    reason: CloneReason,
    kind: FailureKind,
) -> None:
    git_server.set_fault(OFFICIAL, fault)
    error, _ = _clone_fails(git_server.url_for(OFFICIAL), clone_dir, settings=_settings(clone_dir))
    assert (error.reason, error.kind) == (reason, kind)


def test_the_right_token_clones(
    git_server_root: Path, clone_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with GitHttpServer(git_server_root, token=TOKEN) as server:
        # the token goes to GitHub's hosts only: this server plays GitHub
        monkeypatch.setenv("SKILLMEAT_GITHUB_GIT_URL", server.base_url)
        url, settings = server.url_for(SMALL), _settings(clone_dir)
        head = resolve_head(url, token=Secret(TOKEN), settings=settings)
        with clone_source(url, token=Secret(TOKEN), settings=settings) as cloned:
            assert cloned.commit_sha == head.commit_sha
    statuses = [(r.status, r.had_authorization) for r in server.requests()]
    # one challenge per connection, then authorized requests only
    assert statuses.count((401, False)) == 2
    assert all(authorized for status, authorized in statuses if status == 200)


def test_a_wrong_token_is_tried_once_and_never_shown(
    git_server_root: Path,
    clone_dir: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + TOKEN
    with GitHttpServer(git_server_root, token=TOKEN) as server:
        monkeypatch.setenv("SKILLMEAT_GITHUB_GIT_URL", server.base_url)
        error, _ = _clone_fails(
            server.url_for(SMALL), clone_dir, token=Secret(wrong), settings=_settings(clone_dir)
        )
    assert (error.reason, error.kind) == (CloneReason.AUTH, FailureKind.PERMANENT)
    assert [r.had_authorization for r in server.requests()] == [False, True]
    assert [r.status for r in server.requests()] == [401, 401]
    shown = " ".join([str(error), repr(error), *map(str, error.args), caplog.text])
    assert wrong not in shown and TOKEN not in shown
    assert "@" not in str(error)


def test_no_token_for_a_protected_server_is_an_auth_error(
    git_server_root: Path, clone_dir: Path
) -> None:
    with (
        GitHttpServer(git_server_root, token=TOKEN) as server,
        pytest.raises(CloneError) as caught,
    ):
        resolve_head(server.url_for(SMALL), settings=_settings(clone_dir))
    assert (caught.value.reason, caught.value.kind) == (CloneReason.AUTH, FailureKind.PERMANENT)
    assert "no token" in str(caught.value)
    assert [r.had_authorization for r in server.requests()] == [False]


def test_credentials_in_the_url_never_reach_the_message(
    git_server: GitHttpServer, clone_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    git_server.set_fault(SMALL, Fault.NOT_FOUND)
    url = git_server.url_for(SMALL).replace("http://", f"http://user:{TOKEN}@")
    error, _ = _clone_fails(url, clone_dir, token=Secret(TOKEN), settings=_settings(clone_dir))
    assert error.reason is CloneReason.NOT_FOUND
    assert TOKEN not in str(error) + caplog.text
    assert git_server.url_for(SMALL) in str(error)
    assert display_url(url + "?access_token=x#f") == git_server.url_for(SMALL)


def test_too_little_disk_space_stops_before_any_request(
    git_server: GitHttpServer, clone_dir: Path
) -> None:
    needed_mb = 10**9  # a petabyte
    settings = _settings(clone_dir, min_disk_space_mb=needed_mb)
    error, _ = _clone_fails(git_server.url_for(SMALL), clone_dir, settings=settings)
    git_server.stop()
    assert git_server.requests() == []
    assert (error.reason, error.kind) == (CloneReason.DISK_SPACE, FailureKind.PERMANENT)
    assert f"{needed_mb} MB needed" in str(error)
    assert " MB free at " in str(error)


def test_settings_from_the_environment() -> None:
    assert CloneSettings.from_env({}) == CloneSettings()
    assert CloneSettings.from_env({}).timeout_s == 300
    assert CloneSettings.from_env({}).min_disk_space_mb == 500
    configured = CloneSettings.from_env(
        {"CLONE_TIMEOUT_SECONDS": "12.5", "MIN_CLONE_DISK_SPACE_MB": "64"}
    )
    assert (configured.timeout_s, configured.min_disk_space_mb) == (12.5, 64)
    with pytest.raises(ValueError, match="CLONE_TIMEOUT_SECONDS"):
        CloneSettings.from_env({"CLONE_TIMEOUT_SECONDS": "soon"})
    with pytest.raises(ValueError, match="MIN_CLONE_DISK_SPACE_MB"):
        CloneSettings.from_env({"MIN_CLONE_DISK_SPACE_MB": "-1"})
    with pytest.raises(ValueError, match="CLONE_TIMEOUT_SECONDS"):
        CloneSettings.from_env({"CLONE_TIMEOUT_SECONDS": "0"})
    assert CloneSettings.from_env({"MIN_CLONE_DISK_SPACE_MB": "0"}).min_disk_space_mb == 0


def test_clone_errors_survive_pickling() -> None:
    error = CloneError("cloning x failed", FailureKind.TRANSIENT, CloneReason.TIMEOUT)
    restored = pickle.loads(pickle.dumps(error))
    assert (str(restored), restored.kind, restored.reason) == (
        "cloning x failed",
        FailureKind.TRANSIENT,
        CloneReason.TIMEOUT,
    )
    assert restored.transient


def test_the_token_is_in_no_argv_or_environment_of_a_worker(
    git_server_root: Path, clone_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with GitHttpServer(git_server_root, token=TOKEN) as server:
        monkeypatch.setenv("SKILLMEAT_GITHUB_GIT_URL", server.base_url)
        resolve_head(server.url_for(SMALL), token=Secret(TOKEN), settings=_settings(clone_dir))
    # the worker that ran the lookup waits for its next job
    children = _child_processes()
    assert children
    for child in children:
        assert TOKEN.encode() not in (child / "cmdline").read_bytes()
        assert TOKEN.encode() not in (child / "environ").read_bytes()


def test_the_token_is_a_secret_until_it_is_written_to_the_worker() -> None:
    from skillmeat_pipeline.lib.fetch.git.errors import classify
    from skillmeat_pipeline.lib.fetch.git.heads import HeadQuery
    from skillmeat_pipeline.lib.fetch.git.pool import job_line
    from skillmeat_pipeline.lib.fetch.git.worker import _Guard

    job = {"op": "resolve", "url": "http://127.0.0.1:1/o/r.git", "token": Secret(TOKEN)}
    assert TOKEN not in repr(job) and TOKEN not in str(job)
    assert TOKEN not in repr(HeadQuery("o/r", "http://127.0.0.1:1/o/r.git", token=Secret(TOKEN)))
    # revealed only in the line the worker reads on its stdin
    assert f'"token": "{TOKEN}"' in job_line(job).decode()
    # whatever libgit2 says, a token or a URL's credentials never reach the error detail
    guard = _Guard(
        Secret(TOKEN), "http://127.0.0.1:1/o/r.git", soft_deadline=0, policy=AddressPolicy()
    )
    quoting = Exception(f"failed with {TOKEN} at http://x-access-token:{TOKEN}@127.0.0.1:1/o/r")
    *_, detail = classify(quoting, guard.token, guard.received_bytes)
    assert TOKEN not in detail and "x-access-token" not in detail
    assert "failed with ***" in detail


def test_the_token_is_only_offered_once_and_only_to_the_urls_host() -> None:
    from pygit2.enums import CredentialType

    from skillmeat_pipeline.lib.fetch.git.errors import RefusedCredentials
    from skillmeat_pipeline.lib.fetch.git.worker import _Guard

    userpass = CredentialType.USERPASS_PLAINTEXT
    # 127.0.0.1:8000 plays GitHub's git host
    github = AddressPolicy(github=frozenset({("127.0.0.1", 8000)}))
    url = "http://127.0.0.1:8000/o/r.git"
    redirected = _Guard(Secret(TOKEN), url, soft_deadline=0, policy=github)
    with pytest.raises(RefusedCredentials, match="another host"):
        redirected.credentials("http://localhost:8000/o/r.git", None, userpass)
    other_port = _Guard(Secret(TOKEN), url, soft_deadline=0, policy=github)
    with pytest.raises(RefusedCredentials, match="another host"):
        other_port.credentials("http://127.0.0.1:8001/o/r.git", None, userpass)
    withheld = _Guard(None, url, soft_deadline=0, policy=github, token_withheld=True)
    with pytest.raises(RefusedCredentials, match="GitHub's hosts only"):
        withheld.credentials(url, None, userpass)
    guard = _Guard(Secret(TOKEN), url, soft_deadline=0, policy=github)
    assert guard.credentials("http://127.0.0.1:8000/o/r.git", None, userpass).credential_tuple == (
        "x-access-token",
        TOKEN,
    )
    with pytest.raises(RefusedCredentials, match="rejected"):
        guard.credentials("http://127.0.0.1:8000/o/r.git", None, userpass)


def _worker_pids() -> set[int]:
    return {
        int(child.name)
        for child in _child_processes()
        if b"_worker_main" in (child / "cmdline").read_bytes()
    }


def test_the_worker_pool_keeps_as_many_workers_as_ran_at_once(
    git_server: GitHttpServer, clone_dir: Path
) -> None:
    """Six lookups at once leave six warm workers, and the next six start no new process."""
    from concurrent.futures import ThreadPoolExecutor

    WORKER_POOL.close_idle()  # workers other tests left waiting
    # the ref advertisement at 2,000 bytes/s takes about a second: the six lookups overlap
    git_server.set_fault(SMALL, Fault.SLOW, bytes_per_second=2_000)
    url, settings = git_server.url_for(SMALL), _settings(clone_dir)

    def six_lookups() -> list[RemoteHead]:
        with ThreadPoolExecutor(max_workers=6) as pool:
            return list(pool.map(lambda _: resolve_head(url, settings=settings), range(6)))

    assert len(set(six_lookups())) == 1
    assert peak_concurrency(git_server.requests()) == 6
    kept = _worker_pids()
    assert len(kept) == 6  # more than the four kept whatever the load
    six_lookups()
    assert _worker_pids() == kept
