"""The GitHub REST / raw-content path (SPEC §6.2): a source's tree and manifests without a clone.

A scan costs ~2 REST calls (commit, recursive tree) plus one for the repository when its size or
default branch is needed; manifests are read from the raw host at the commit SHA, counted apart from
REST calls because they do not touch the REST rate limit, several at a time
(`ApiTreeSnapshot.prefetch`), or, when there are many, from the repository archive (`archive.py`:
one REST call redirected to the archive host, whose bytes are counted as `archive_bytes`).
Call budgets, rate limits, retries and ETags: `http.py`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from types import TracebackType
from urllib.parse import quote

import httpx

from skillmeat_pipeline.lib.core.addresses import GITHUB_URLS, github_url
from skillmeat_pipeline.lib.core.models import TreeEntry
from skillmeat_pipeline.lib.core.retry import BackoffPolicy
from skillmeat_pipeline.lib.core.secrets import Secret
from skillmeat_pipeline.lib.core.untrusted import max_tree_entries
from skillmeat_pipeline.lib.fetch.github.etags import EtagCache
from skillmeat_pipeline.lib.fetch.github.http import (
    DEFAULT_TIMEOUT,
    REST_RETRIES,
    ApiModel,
    ApiSession,
    ApiTotals,
    RateLimitState,
    ScanStats,
    parse_body,
)
from skillmeat_pipeline.lib.fetch.github.snapshot import ApiTreeSnapshot
from skillmeat_pipeline.lib.fetch.github.trees import list_tree

logger = logging.getLogger(__name__)

DEFAULT_CALL_BUDGET = 10
_REPO_NAME = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_FULL_SHA = re.compile(r"[0-9a-f]{40}")


class RepositoryInfo(ApiModel):
    id: int
    full_name: str
    default_branch: str
    size: int  # KB, as GitHub reports it
    private: bool
    html_url: str
    clone_url: str


class _TreeRef(ApiModel):
    sha: str


class _CommitBody(ApiModel):
    tree: _TreeRef


class _Commit(ApiModel):
    sha: str
    commit: _CommitBody


class GitHubClient:
    """REST and raw reads for GitHub sources, with per-scan budgets and rate-limit awareness.

    Thread-safe: one client can serve concurrent scans of different sources.
    """

    def __init__(
        self,
        *,
        api_url: str = GITHUB_URLS["SKILLMEAT_GITHUB_API_URL"],
        raw_url: str = GITHUB_URLS["SKILLMEAT_GITHUB_RAW_URL"],
        token: Secret | None = None,
        call_budget: int = DEFAULT_CALL_BUDGET,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        etag_cache: EtagCache | None = None,
        transport: httpx.BaseTransport | None = None,
        retries: BackoffPolicy = REST_RETRIES,
        max_tree_entries: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if call_budget < 1:
            raise ValueError("call_budget must be at least 1")
        self.call_budget = call_budget
        # None: `SKILLMEAT_MAX_TREE_ENTRIES` when a tree is listed
        self.max_tree_entries = max_tree_entries
        self._session = ApiSession(
            api_url=api_url.rstrip("/"),
            raw_url=raw_url.rstrip("/"),
            token=token or None,  # an empty secret is no token
            timeout=timeout,
            etag_cache=etag_cache,
            transport=transport,
            retries=retries,
            sleep=sleep,
        )

    @classmethod
    def from_env(
        cls,
        *,
        call_budget: int = DEFAULT_CALL_BUDGET,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        etag_cache: EtagCache | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> GitHubClient:
        """Hosts from `SKILLMEAT_GITHUB_API_URL` and `SKILLMEAT_GITHUB_RAW_URL`, `GITHUB_TOKEN`."""
        return cls(
            api_url=github_url("SKILLMEAT_GITHUB_API_URL"),
            raw_url=github_url("SKILLMEAT_GITHUB_RAW_URL"),
            token=Secret.from_env("GITHUB_TOKEN"),
            call_budget=call_budget,
            timeout=timeout,
            etag_cache=etag_cache,
            transport=transport,
        )

    @property
    def api_url(self) -> str:
        return self._session.api_url

    @property
    def raw_url(self) -> str:
        return self._session.raw_url

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        authenticated = self._session.token is not None
        return f"GitHubClient(api_url={self.api_url!r}, authenticated={authenticated})"

    @property
    def totals(self) -> ApiTotals:
        return self._session.totals

    @property
    def rate_limit(self) -> RateLimitState | None:
        return self._session.rate_limit

    # -- scans -------------------------------------------------------------------------------------

    def start_scan(self, repo: str, *, budget: int | None = None) -> ScanStats:
        """Open the accounting of one scan, refusing it if the known rate limit cannot finish it.

        The known limit comes from the last response's headers; a scan may spend its whole budget,
        so fewer remaining calls than the budget (before the reset) means it does not start.
        """
        _check_repo_name(repo)
        budget = self.call_budget if budget is None else budget
        return self._session.open_scan(repo, budget)

    def repository(self, repo: str, *, scan: ScanStats | None = None) -> RepositoryInfo:
        """`GET /repos/{owner}/{repo}`: size (KB), default branch, clone URL. One REST call."""
        scan = scan or self.start_scan(repo)
        body = self._session.rest(
            scan, f"/repos/{repo}", "reading the repository", conditional=True
        )
        return parse_body(RepositoryInfo, body, repo, "reading the repository")

    def resolve_commit(
        self, repo: str, ref: str | None = None, *, scan: ScanStats | None = None
    ) -> tuple[str, str]:
        """(commit SHA, root tree SHA) of `ref` (branch, tag, SHA; default HEAD). One REST call."""
        scan = scan or self.start_scan(repo)
        spec = ref or "HEAD"
        what = f"resolving ref {spec!r}"
        body = self._session.rest(
            scan,
            f"/repos/{repo}/commits/{quote(spec, safe='/')}",
            what,
            # a branch moves, a full SHA never does
            conditional=True,
            immutable=bool(_FULL_SHA.fullmatch(spec)),
        )
        commit = parse_body(_Commit, body, repo, what)
        return commit.sha, commit.commit.tree.sha

    def fetch_snapshot(
        self, repo: str, ref: str | None = None, *, scan: ScanStats | None = None
    ) -> ApiTreeSnapshot:
        """The tree of `ref` (default HEAD): commit + recursive tree, ~2 REST calls.

        A truncated listing is completed within the scan's budget (see `trees.py`);
        one that passes `max_tree_entries` raises `TreeTooLargeError`.
        """
        scan = scan or self.start_scan(repo)
        commit_sha, tree_sha = self.resolve_commit(repo, ref, scan=scan)
        limit = max_tree_entries() if self.max_tree_entries is None else self.max_tree_entries
        items = list_tree(self._session, scan, repo, tree_sha, limit)
        entries = sorted(
            (TreeEntry(item.path, int(item.mode, 8), item.sha) for item in items),
            key=lambda e: e.path,
        )
        sizes = {item.path: item.size for item in items if item.size is not None}
        logger.debug(
            "GitHub tree of %s at %s: %d entries, %d REST calls",
            repo,
            commit_sha[:12],
            len(entries),
            scan.api_calls,
        )
        return ApiTreeSnapshot(repo, commit_sha, tree_sha, entries, sizes, scan, self)

    def read_raw(self, repo: str, ref: str, path: str, *, scan: ScanStats) -> bytes:
        """A file's bytes from the raw host; counted as a raw read, not a REST call."""
        url = self._session.moved_url(f"{self.raw_url}/{repo}/{quote(ref)}/{quote(path)}")
        what = f"reading {path} from the raw host"
        response = self._session.get(scan, url, "raw", what, {})
        if response.status_code != 200:
            raise self._session.error(response, scan.repo, what)
        return response.content

    def open_archive(
        self, repo: str, commit_sha: str, *, scan: ScanStats, timeout: httpx.Timeout
    ) -> httpx.Response:
        """`GET /repos/{repo}/tarball/{commit_sha}` (one REST call), followed to the archive host.

        Returns the archive's 200 answer unread: the caller streams it, reports what it received
        with `count_archive_bytes` and closes it. `timeout` applies to each request to the archive
        host and each read of its answer.
        """
        what = f"reading the archive of {commit_sha[:12]}"
        url = self._session.moved_url(f"{self.api_url}/repos/{repo}/tarball/{quote(commit_sha)}")
        response = self._session.send(scan, url, "rest", what, {}, stream=True, timeout=timeout)
        if response.status_code != 200:
            raise self._session.error(response, scan.repo, what)
        return response

    def count_archive_bytes(self, scan: ScanStats, received: int) -> None:
        """Add `received` archive bytes (as sent, compressed) to the scan and the totals."""
        self._session.count_archive_bytes(scan, received)


def _check_repo_name(repo: str) -> None:
    if not _REPO_NAME.fullmatch(repo) or any(part in (".", "..") for part in repo.split("/")):
        raise ValueError(f"{repo!r} is not a GitHub repository name (owner/repo)")
