"""The GitHub REST / raw-content path (SPEC §6.2): a source's tree and manifests without a clone.

A scan costs ~2 REST calls (commit, recursive tree) plus one for the repository when its size or
default branch is needed; manifests are read from the raw host at the commit SHA, counted apart from
REST calls because they do not touch the REST rate limit, several at a time
(`ApiTreeSnapshot.prefetch`), or, when there are many, from the repository archive (`archive.py`:
one REST call redirected to the archive host, whose bytes are counted as `archive_bytes`).
Each scan has a hard call budget (default 10). Rate-limit headers are remembered so a scan that the
remaining limit cannot finish is refused before its first request. Re-read URLs are sent with
`If-None-Match`; SHA-addressed answers never change, so a cached one is reused without a request.
A 500/502/503/504 answer is tried again with backoff (`REST_RETRIES`) while the scan's budget
allows.

The token goes only to the configured API and raw hosts (each request only to its own host, so a
redirect elsewhere drops it) and never into a URL, a log line or an exception message.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Literal, Protocol, TypeVar
from urllib.parse import quote, urljoin, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from skillmeat_pipeline.lib.core.models import TreeEntry
from skillmeat_pipeline.lib.core.retry import BackoffPolicy, FailureKind, call_with_retries
from skillmeat_pipeline.lib.core.secrets import Secret, redact
from skillmeat_pipeline.lib.core.untrusted import check_tree_size, max_tree_entries

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_RAW_URL = "https://raw.githubusercontent.com"
DEFAULT_CALL_BUDGET = 10
DEFAULT_TIMEOUT = httpx.Timeout(20.0, connect=5.0)
# GitHub asks clients to wait at least a minute after a 429 that names no time
_DEFAULT_RETRY_AFTER_S = 60.0
_MAX_REDIRECTS = 3
# answers of a server that is failing or overloaded for a moment: tried again (`REST_RETRIES`)
RETRIED_STATUSES = frozenset({500, 502, 503, 504})
# three tries in all, the waits ~0-0.5 s and ~0-1 s: a blip passes, a real outage fails fast
REST_RETRIES = BackoffPolicy(max_attempts=3, base_delay_s=0.5, max_delay_s=4.0)
_REDIRECTS = (301, 302, 303, 307, 308)
# an error answer is read for its message only: a body that never ends must not hang or fill memory
_MAX_ERROR_BODY = 64 * 1024
_REPO_NAME = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_FULL_SHA = re.compile(r"[0-9a-f]{40}")

# "archive": where GitHub redirects a tarball request (codeload.github.com); not REST-rate-limited
HostKind = Literal["rest", "raw", "archive"]
_M = TypeVar("_M", bound=BaseModel)


class ApiError(Exception):
    """A failed GitHub read; the message names the repository and the step, never the token."""

    def __init__(
        self, message: str, *, kind: FailureKind, repo: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.repo = repo
        self.status = status

    @property
    def transient(self) -> bool:
        return self.kind is FailureKind.TRANSIENT


class RateLimited(ApiError):
    """GitHub's rate limit is (or would be) exhausted; retry at `reset_at`."""

    def __init__(
        self,
        message: str,
        *,
        reset_at: datetime,
        retry_after_s: float,
        repo: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, kind=FailureKind.TRANSIENT, repo=repo, status=status)
        self.reset_at = reset_at
        self.retry_after_s = retry_after_s


class ApiBudgetExceeded(ApiError):
    """The scan would need more REST calls than its budget allows."""

    def __init__(self, message: str, *, budget: int, repo: str | None = None) -> None:
        super().__init__(message, kind=FailureKind.PERMANENT, repo=repo)
        self.budget = budget


# -- response shapes (only the fields the pipeline uses) -------------------------------------------


class _ApiModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class RepositoryInfo(_ApiModel):
    id: int
    full_name: str
    default_branch: str
    size: int  # KB, as GitHub reports it
    private: bool
    html_url: str
    clone_url: str


class _TreeRef(_ApiModel):
    sha: str


class _CommitBody(_ApiModel):
    tree: _TreeRef


class _Commit(_ApiModel):
    sha: str
    commit: _CommitBody


class _TreeItem(_ApiModel):
    path: str
    mode: str
    type: Literal["blob", "tree", "commit"]
    sha: str
    size: int | None = None


class _Tree(_ApiModel):
    sha: str
    tree: list[_TreeItem]
    truncated: bool = False


class _ErrorBody(_ApiModel):
    message: str = ""


# -- accounting ------------------------------------------------------------------------------------


@dataclass(slots=True)
class ScanStats:
    """What one scan of one source cost. `api_calls` is what counts toward `budget`."""

    repo: str
    budget: int
    api_calls: int = 0
    not_modified: int = 0  # 304 answers: free for the budget and for GitHub's rate limit
    cache_hits: int = 0  # SHA-addressed answers reused without any request
    raw_reads: int = 0
    archive_bytes: int = 0  # archive bytes received (compressed), part of `bytes_fetched`
    bytes_fetched: int = 0
    # requests sent, by (host kind, status class): ("rest", "2xx"), ("raw", "error"), ...
    responses: dict[tuple[HostKind, str], int] = field(default_factory=dict)


def status_class(status: int | None) -> str:
    """`2xx`..`5xx` for an HTTP status; `error` when no answer came (timeout, connection)."""
    return f"{status // 100}xx" if status is not None and 100 <= status < 600 else "error"


@dataclass(slots=True)
class ApiTotals:
    """Everything a client has spent since it was created, over all scans."""

    scans: int = 0
    api_calls: int = 0
    not_modified: int = 0
    cache_hits: int = 0
    raw_reads: int = 0
    archive_bytes: int = 0
    bytes_fetched: int = 0


@dataclass(frozen=True, slots=True)
class RateLimitState:
    """The REST rate limit as the last response's `x-ratelimit-*` headers described it."""

    limit: int
    remaining: int
    used: int
    reset_at: datetime
    resource: str


# -- conditional-request cache ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CachedResponse:
    etag: str
    body: bytes


class EtagCache(Protocol):
    """Where ETags and the bodies they validate are kept, keyed by URL (memory now, a DB later)."""

    def get(self, url: str) -> CachedResponse | None: ...

    def put(self, url: str, response: CachedResponse) -> None: ...


class MemoryEtagCache:
    """A thread-safe LRU `EtagCache` bounded in entries and bytes."""

    def __init__(self, max_entries: int = 2048, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._items: OrderedDict[str, CachedResponse] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, url: str) -> CachedResponse | None:
        with self._lock:
            found = self._items.get(url)
            if found is not None:
                self._items.move_to_end(url)
            return found

    def put(self, url: str, response: CachedResponse) -> None:
        if len(response.body) > self._max_bytes:
            return
        with self._lock:
            previous = self._items.pop(url, None)
            if previous is not None:
                self._bytes -= len(previous.body)
            self._items[url] = response
            self._bytes += len(response.body)
            while len(self._items) > self._max_entries or self._bytes > self._max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= len(evicted.body)


# -- the snapshot ----------------------------------------------------------------------------------


def git_blob_sha(data: bytes) -> str:
    """The SHA git gives a blob with these bytes."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(slots=True)
class ApiTreeSnapshot:
    """A commit's tree read over the GitHub API; satisfies `TreeSnapshot`.

    Blobs are read from the raw host at the commit SHA (so a push mid-scan cannot mix commits) and
    checked against their blob SHA. Blobs read ahead (`prefetch`, or from the repository archive)
    wait in `read_ahead`, already checked, so detection and extraction read them from memory.
    """

    repo: str
    commit_sha: str
    tree_sha: str
    entries: list[TreeEntry]
    sizes: dict[str, int]
    stats: ScanStats
    client: GitHubClient = field(repr=False)
    read_ahead: dict[str, bytes] = field(default_factory=dict, repr=False)

    def size_of(self, entry: TreeEntry) -> int | None:
        """The blob's size from the tree listing, known before reading it."""
        return self.sizes.get(entry.path)

    def read_blob(self, entry: TreeEntry) -> bytes:
        if not (entry.is_blob or entry.is_symlink):
            raise ValueError(f"{self.repo}: {entry.path} is not a file or symlink")
        found = self.read_ahead.get(entry.path)
        return found if found is not None else self._read_raw(entry)

    def prefetch(self, entries: Iterable[TreeEntry], *, workers: int) -> int:
        """Read the files of `entries` not read ahead yet from the raw host, `workers` at a time.

        The reads share the client's connections. The first failure stops the reads not started
        yet and is raised. Returns how many files were read.
        """
        missing = [
            e
            for e in dict.fromkeys(entries)
            if (e.is_blob or e.is_symlink) and e.path not in self.read_ahead
        ]
        if not missing:
            return 0
        with ThreadPoolExecutor(
            max_workers=max(1, min(workers, len(missing))), thread_name_prefix="raw-read"
        ) as pool:
            futures = {pool.submit(self._read_raw, entry): entry for entry in missing}
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in done if f.exception() is not None), None)
            error = failed.exception() if failed is not None else None
            if error is not None:
                for future in futures:
                    future.cancel()
                raise error
            for future, entry in futures.items():
                self.read_ahead[entry.path] = future.result()
        return len(missing)

    def _read_raw(self, entry: TreeEntry) -> bytes:
        data = self.client.read_raw(self.repo, self.commit_sha, entry.path, scan=self.stats)
        if git_blob_sha(data) != entry.sha:
            raise ApiError(
                f"{self.repo}: the raw host returned content for {entry.path} at "
                f"{self.commit_sha[:12]} that does not match blob {entry.sha[:12]}; "
                "retry later",
                kind=FailureKind.TRANSIENT,
                repo=self.repo,
            )
        return data


# -- the client ------------------------------------------------------------------------------------


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


class GitHubClient:
    """REST and raw reads for GitHub sources, with per-scan budgets and rate-limit awareness.

    Thread-safe: one client can serve concurrent scans of different sources.
    """

    def __init__(
        self,
        *,
        api_url: str = DEFAULT_API_URL,
        raw_url: str = DEFAULT_RAW_URL,
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
        self.api_url = api_url.rstrip("/")
        self.raw_url = raw_url.rstrip("/")
        self.call_budget = call_budget
        # None: `SKILLMEAT_MAX_TREE_ENTRIES` when a tree is listed
        self.max_tree_entries = max_tree_entries
        self._retries = retries
        self._sleep = sleep
        self._token = token or None  # an empty secret is no token
        self._etags: EtagCache = etag_cache if etag_cache is not None else MemoryEtagCache()
        self._lock = threading.Lock()
        self._totals = ApiTotals()
        self._rate: RateLimitState | None = None
        self._blocked_until: datetime | None = None
        self._moves: dict[str, str] = {}  # renamed repository URL prefix -> where it moved
        self._http = httpx.Client(
            timeout=timeout,
            transport=transport,
            # redirects are followed by hand: each hop is budgeted and the token stays home
            follow_redirects=False,
            headers={
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": "skillmeat-pipeline",
            },
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
            api_url=os.environ.get("SKILLMEAT_GITHUB_API_URL") or DEFAULT_API_URL,
            raw_url=os.environ.get("SKILLMEAT_GITHUB_RAW_URL") or DEFAULT_RAW_URL,
            token=Secret.from_env("GITHUB_TOKEN"),
            call_budget=call_budget,
            timeout=timeout,
            etag_cache=etag_cache,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

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
        return f"GitHubClient(api_url={self.api_url!r}, authenticated={self._token is not None})"

    @property
    def totals(self) -> ApiTotals:
        with self._lock:
            return replace(self._totals)

    @property
    def rate_limit(self) -> RateLimitState | None:
        with self._lock:
            return self._rate

    # -- scans -------------------------------------------------------------------------------------

    def start_scan(self, repo: str, *, budget: int | None = None) -> ScanStats:
        """Open the accounting of one scan, refusing it if the known rate limit cannot finish it.

        The known limit comes from the last response's headers; a scan may spend its whole budget,
        so fewer remaining calls than the budget (before the reset) means it does not start.
        """
        _check_repo_name(repo)
        budget = self.call_budget if budget is None else budget
        now = datetime.now(UTC)
        with self._lock:
            blocked_until, rate = self._blocked_until, self._rate
        if blocked_until is not None and blocked_until > now:
            wait = (blocked_until - now).total_seconds()
            raise RateLimited(
                f"{repo}: scan not started: GitHub asked to wait until "
                f"{blocked_until.isoformat()} ({wait:.0f} s)",
                reset_at=blocked_until,
                retry_after_s=wait,
                repo=repo,
            )
        if rate is not None and rate.remaining < budget and rate.reset_at > now:
            wait = (rate.reset_at - now).total_seconds()
            raise RateLimited(
                f"{repo}: scan not started: the GitHub rate limit has {rate.remaining} of "
                f"{rate.limit} calls left until {rate.reset_at.isoformat()} and a scan may need "
                f"{budget}; retry in {wait:.0f} s",
                reset_at=rate.reset_at,
                retry_after_s=wait,
                repo=repo,
            )
        with self._lock:
            self._totals.scans += 1
        return ScanStats(repo=repo, budget=budget)

    def repository(self, repo: str, *, scan: ScanStats | None = None) -> RepositoryInfo:
        """`GET /repos/{owner}/{repo}`: size (KB), default branch, clone URL. One REST call."""
        scan = scan or self.start_scan(repo)
        body = self._rest(scan, f"/repos/{repo}", "reading the repository", conditional=True)
        return _parse(RepositoryInfo, body, repo, "reading the repository")

    def resolve_commit(
        self, repo: str, ref: str | None = None, *, scan: ScanStats | None = None
    ) -> tuple[str, str]:
        """(commit SHA, root tree SHA) of `ref` (branch, tag, SHA; default HEAD). One REST call."""
        scan = scan or self.start_scan(repo)
        spec = ref or "HEAD"
        what = f"resolving ref {spec!r}"
        body = self._rest(
            scan,
            f"/repos/{repo}/commits/{quote(spec, safe='/')}",
            what,
            # a branch moves, a full SHA never does
            conditional=True,
            immutable=bool(_FULL_SHA.fullmatch(spec)),
        )
        commit = _parse(_Commit, body, repo, what)
        return commit.sha, commit.commit.tree.sha

    def fetch_snapshot(
        self, repo: str, ref: str | None = None, *, scan: ScanStats | None = None
    ) -> ApiTreeSnapshot:
        """The tree of `ref` (default HEAD): commit + recursive tree, ~2 REST calls.

        A truncated listing is completed within the scan's budget (see `_complete_truncated`);
        one that passes `max_tree_entries` raises `TreeTooLargeError`.
        """
        scan = scan or self.start_scan(repo)
        commit_sha, tree_sha = self.resolve_commit(repo, ref, scan=scan)
        limit = max_tree_entries() if self.max_tree_entries is None else self.max_tree_entries
        items = self._list_recursive(scan, repo, tree_sha, "", limit)
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
        url = self._moved_url(f"{self.raw_url}/{repo}/{quote(ref)}/{quote(path)}")
        what = f"reading {path} from the raw host"
        response = self._get(scan, url, "raw", what, {})
        if response.status_code != 200:
            raise self._error(response, scan.repo, what)
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
        url = self._moved_url(f"{self.api_url}/repos/{repo}/tarball/{quote(commit_sha)}")
        response = self._send(scan, url, "rest", what, {}, stream=True, timeout=timeout)
        if response.status_code != 200:
            raise self._error(response, scan.repo, what)
        return response

    def count_archive_bytes(self, scan: ScanStats, received: int) -> None:
        """Add `received` archive bytes (as sent, compressed) to the scan and the totals."""
        with self._lock:
            scan.archive_bytes += received
            scan.bytes_fetched += received
            self._totals.archive_bytes += received
            self._totals.bytes_fetched += received

    # -- trees -------------------------------------------------------------------------------------

    def _tree(self, scan: ScanStats, repo: str, sha: str, *, recursive: bool) -> _Tree:
        what = f"listing tree {sha[:12]}"
        query = "?recursive=1" if recursive else ""
        body = self._rest(scan, f"/repos/{repo}/git/trees/{sha}{query}", what, immutable=True)
        return _parse(_Tree, body, repo, what)

    def _list_recursive(
        self, scan: ScanStats, repo: str, sha: str, prefix: str, limit: int, listed: int = 0
    ) -> list[_TreeItem]:
        """The items below tree `sha`; `listed` entries of the whole listing came before them."""
        tree = self._tree(scan, repo, sha, recursive=True)
        # GitHub bounds one answer (100,000 entries, 7 MB); `limit` bounds the whole listing
        check_tree_size(listed + len(tree.tree), limit, f"tree {sha[:12]}")
        items = (
            [item.model_copy(update={"path": prefix + item.path}) for item in tree.tree]
            if prefix
            else tree.tree
        )
        if not tree.truncated:
            return items
        logger.info(
            "GitHub truncated the tree listing of %s%s after %d entries; completing it by subtree",
            repo,
            f" under {prefix.rstrip('/')}" if prefix else "",
            len(items),
        )
        return self._complete_truncated(scan, repo, sha, prefix, items, limit, listed)

    def _complete_truncated(
        self,
        scan: ScanStats,
        repo: str,
        sha: str,
        prefix: str,
        partial: list[_TreeItem],
        limit: int,
        listed: int,
    ) -> list[_TreeItem]:
        """Fill in what a truncated recursive listing of tree `sha` (at `prefix`) left out.

        GitHub lists a recursive tree depth first, each tree right before its contents, and cuts
        the list at its limit, so the answer is a prefix of the full listing: every subtree in it is
        complete except the one still open at the cut (the child on the way to the last entry).
        One non-recursive listing of this tree (1 call) shows the children the cut dropped; each of
        those, and the open child, is then listed recursively (1 call each, more only when it is
        itself truncated; each retry starts deeper, so the listing always progresses). The budget
        check on every call stops a tree that cannot be completed within the scan's budget.
        """
        known = {item.path: item for item in partial}
        cut = (
            known.get(prefix + partial[-1].path[len(prefix) :].split("/", 1)[0])
            if partial
            else None
        )
        open_child = cut.path if cut is not None and cut.type == "tree" else None
        result = [
            item
            for item in partial
            if open_child is None or not item.path.startswith(open_child + "/")
        ]
        children = self._tree(scan, repo, sha, recursive=False)
        if children.truncated:
            raise ApiError(
                f"{repo}: directory {prefix.rstrip('/') or '/'} has more entries than GitHub lists "
                "in one response; the source needs a clone",
                kind=FailureKind.PERMANENT,
                repo=repo,
            )
        for child in children.tree:
            path = prefix + child.path
            if path in known and path != open_child:
                continue
            if path not in known:
                result.append(child.model_copy(update={"path": path}))
            if child.type == "tree":
                result.extend(
                    self._list_recursive(
                        scan, repo, child.sha, path + "/", limit, listed + len(result)
                    )
                )
        check_tree_size(listed + len(result), limit, f"tree {sha[:12]}")
        return result

    # -- HTTP --------------------------------------------------------------------------------------

    def _rest(
        self,
        scan: ScanStats,
        path: str,
        what: str,
        *,
        conditional: bool = False,
        immutable: bool = False,
    ) -> bytes:
        url = self._moved_url(self.api_url + path)
        cached = self._etags.get(url) if conditional or immutable else None
        if immutable and cached is not None:
            with self._lock:
                scan.cache_hits += 1
                self._totals.cache_hits += 1
            return cached.body
        headers = {"If-None-Match": cached.etag} if cached is not None else {}
        response = self._get(scan, url, "rest", what, headers)
        if response.status_code == 304 and cached is not None:
            return cached.body
        if response.status_code != 200:
            raise self._error(response, scan.repo, what)
        etag = response.headers.get("etag")
        if etag and (conditional or immutable):
            self._etags.put(url, CachedResponse(etag, response.content))
        return response.content

    def _get(
        self, scan: ScanStats, url: str, host: HostKind, what: str, headers: dict[str, str]
    ) -> httpx.Response:
        """`_send`, tried again with backoff (SPEC §8) on a 500/502/503/504 answer.

        A REST retry is a call like any other: none starts once the scan's budget is spent, so the
        last error is what the caller sees. A timeout or a refused connection is not tried again
        here: the first already waited the whole timeout, and a host that refuses connections
        rarely accepts them a second later; the scan's fallback or failure decides what is next.
        """

        def attempt() -> httpx.Response:
            response = self._send(scan, url, host, what, headers)
            if response.status_code in RETRIED_STATUSES:
                raise self._error(response, scan.repo, what)
            return response

        def retryable(exc: BaseException) -> bool:
            if not isinstance(exc, ApiError) or exc.status not in RETRIED_STATUSES:
                return False
            with self._lock:
                return host == "raw" or scan.api_calls < scan.budget

        def on_retry(number: int, exc: BaseException, wait: float) -> None:
            logger.warning(
                "%s; trying again in %.1f s (retry %d of %d)",
                exc,
                wait,
                number,
                self._retries.max_attempts - 1,
                extra={
                    "record": {
                        "repo": scan.repo,
                        "event": "github_retry",
                        "retry": number,
                        "wait_s": round(wait, 2),
                    }
                },
            )

        return call_with_retries(
            attempt,
            policy=self._retries,
            is_transient=retryable,
            on_retry=on_retry,
            sleep=self._sleep,
        )

    def _send(
        self,
        scan: ScanStats,
        url: str,
        host: HostKind,
        what: str,
        headers: dict[str, str],
        *,
        stream: bool = False,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        """GET `url`, following redirects by hand; every hop is budgeted (REST) and counted.

        With `stream`, a 200 answer comes back unread (the caller reads and closes it), and the
        hop a REST call is redirected to with 302/303/307 is the archive host: counted apart, not
        budgeted, with `timeout` instead of the client's. A 301/308 is a repository that moved and
        stays on its host.
        """
        home = _origin(self.api_url if host == "rest" else self.raw_url)
        for _ in range(_MAX_REDIRECTS + 1):
            self._reserve(scan, host, what)
            request_headers = dict(headers)
            if self._token is not None and _origin(url) == home:
                # the one place the token is revealed: a request to its own host
                request_headers["Authorization"] = f"Bearer {self._token.reveal()}"
            request = self._http.build_request(
                "GET",
                url,
                headers=request_headers,
                timeout=(
                    timeout
                    if timeout is not None and host == "archive"
                    else httpx.USE_CLIENT_DEFAULT
                ),
            )
            try:
                response = self._http.send(request, stream=stream)
                if stream and response.status_code != 200:
                    response = _read_capped(response)
            except httpx.TimeoutException as exc:
                self._count_response(scan, host, None)
                raise ApiError(
                    f"{scan.repo}: {what} timed out ({type(exc).__name__}); retry later",
                    kind=FailureKind.TRANSIENT,
                    repo=scan.repo,
                ) from None
            except httpx.TransportError as exc:
                self._count_response(scan, host, None)
                raise ApiError(
                    f"{scan.repo}: {what} failed: cannot reach {urlsplit(url).netloc} "
                    f"({type(exc).__name__}: {redact(str(exc), [self._token])}); retry later",
                    kind=FailureKind.TRANSIENT,
                    repo=scan.repo,
                ) from None
            streaming = stream and response.status_code == 200
            self._account(scan, host, response, 0 if streaming else len(response.content))
            logger.debug("GitHub %s GET %s -> %d", host, urlsplit(url).path, response.status_code)
            location = response.headers.get("location")
            if response.status_code in _REDIRECTS and location:
                target = urljoin(url, location)
                if response.status_code in (301, 308):
                    self._remember_move(url, target, host)
                elif stream and host == "rest":
                    host = "archive"
                url = target
                # a redirect answer is not a re-read: its target gets no If-None-Match
                headers = {}
                continue
            return response
        raise ApiError(
            f"{scan.repo}: {what} failed: more than {_MAX_REDIRECTS} redirects",
            kind=FailureKind.PERMANENT,
            repo=scan.repo,
        )

    def _remember_move(self, old: str, new: str, host: HostKind) -> None:
        """Note a renamed repository's new URL prefix, so later calls skip the redirect hop."""
        # GitHub moves the repository's whole URL space: the part after the repository stays
        same = 0
        while same < min(len(old), len(new)) and old[-1 - same] == new[-1 - same]:
            same += 1
        while same and old[len(old) - same] not in "/?":
            same -= 1
        old_prefix, new_prefix = old[: len(old) - same], new[: len(new) - same]
        base = self.api_url + "/repos" if host == "rest" else self.raw_url
        if re.fullmatch(re.escape(base) + r"/[^/?]+/[^/?]+", old_prefix):
            with self._lock:
                self._moves[old_prefix] = new_prefix

    def _moved_url(self, url: str) -> str:
        with self._lock:
            for old_prefix, new_prefix in self._moves.items():
                if url.startswith(old_prefix + "/"):
                    return new_prefix + url[len(old_prefix) :]
        return url

    def _reserve(self, scan: ScanStats, host: HostKind, what: str) -> None:
        # reserved before sending so concurrent reads of one scan cannot overshoot the budget;
        # a 304 gives its reservation back in `_account`
        with self._lock:
            if host == "archive":
                return
            if host == "raw":
                scan.raw_reads += 1
                self._totals.raw_reads += 1
                return
            if scan.api_calls >= scan.budget:
                raise ApiBudgetExceeded(
                    f"{scan.repo}: {what} would exceed the scan's budget of {scan.budget} GitHub "
                    f"REST calls ({scan.api_calls} spent); the source needs a clone instead",
                    budget=scan.budget,
                    repo=scan.repo,
                )
            scan.api_calls += 1
            self._totals.api_calls += 1

    def _count_response(self, scan: ScanStats, host: HostKind, status: int | None) -> None:
        key = (host, status_class(status))
        with self._lock:
            scan.responses[key] = scan.responses.get(key, 0) + 1

    def _account(
        self, scan: ScanStats, host: HostKind, response: httpx.Response, body_bytes: int
    ) -> None:
        self._count_response(scan, host, response.status_code)
        with self._lock:
            scan.bytes_fetched += body_bytes
            self._totals.bytes_fetched += body_bytes
            if host != "rest":
                return
            if response.status_code == 304:
                scan.api_calls -= 1
                self._totals.api_calls -= 1
                scan.not_modified += 1
                self._totals.not_modified += 1
            rate = _rate_state(response.headers)
            if rate is not None and rate.resource == "core":
                self._rate = rate

    def _error(self, response: httpx.Response, repo: str, what: str) -> ApiError:
        status = response.status_code
        # GitHub never echoes a token, but a proxy or a foreign host might
        message = redact(_github_message(response), [self._token])
        detail = f"GitHub answered {status}" + (f" ({message})" if message else "")
        rate_limited = self._rate_limit_error(response, repo, what, detail)
        if rate_limited is not None:
            return rate_limited
        if status == 401:
            text = (
                f"{repo}: {what} failed: {detail}; the token (GITHUB_TOKEN) is invalid or expired"
            )
            return ApiError(text, kind=FailureKind.PERMANENT, repo=repo, status=status)
        if status == 404:
            text = (
                f"{repo}: {what} failed: {detail}; the repository or path does not exist or the "
                "token cannot see it"
            )
            return ApiError(text, kind=FailureKind.PERMANENT, repo=repo, status=status)
        if status == 422:
            text = f"{repo}: {what} failed: {detail}; check the source's ref"
            return ApiError(text, kind=FailureKind.PERMANENT, repo=repo, status=status)
        if status >= 500 or status == 408:
            text = f"{repo}: {what} failed: {detail}; GitHub-side failure, retry later"
            return ApiError(text, kind=FailureKind.TRANSIENT, repo=repo, status=status)
        text = f"{repo}: {what} failed: {detail}"
        return ApiError(text, kind=FailureKind.PERMANENT, repo=repo, status=status)

    def _rate_limit_error(
        self, response: httpx.Response, repo: str, what: str, detail: str
    ) -> RateLimited | None:
        status = response.status_code
        if status not in (403, 429):
            return None
        retry_after = _number(response.headers.get("retry-after"))
        rate = _rate_state(response.headers)
        exhausted = rate is not None and rate.remaining == 0
        if status == 403 and retry_after is None and not exhausted:
            # a 403 that is not about rate limits: no access, blocked repository, ...
            return None
        now = datetime.now(UTC)
        if retry_after is not None:
            reset_at = now + timedelta(seconds=retry_after)
        elif exhausted and rate is not None:
            reset_at = rate.reset_at
        else:
            reset_at = now + timedelta(seconds=_DEFAULT_RETRY_AFTER_S)
        wait = max(0.0, (reset_at - now).total_seconds())
        with self._lock:
            if self._blocked_until is None or self._blocked_until < reset_at:
                self._blocked_until = reset_at
        logger.warning(
            "GitHub rate limit hit while %s for %s (status %d); retry after %s",
            what,
            repo,
            status,
            reset_at.isoformat(),
        )
        return RateLimited(
            f"{repo}: {what} failed: {detail}; rate limited until {reset_at.isoformat()} "
            f"(retry in {wait:.0f} s)",
            reset_at=reset_at,
            retry_after_s=wait,
            repo=repo,
            status=status,
        )


def _read_capped(response: httpx.Response) -> httpx.Response:
    """`response` read up to `_MAX_ERROR_BODY` bytes and closed: an answer to report, not to use."""
    body = bytearray()
    try:
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) >= _MAX_ERROR_BODY:
                break
    finally:
        response.close()
    # the body is decoded already: the headers that describe its encoding would decode it again
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=bytes(body[:_MAX_ERROR_BODY]),
        request=response.request,
    )


def _check_repo_name(repo: str) -> None:
    if not _REPO_NAME.fullmatch(repo) or any(part in (".", "..") for part in repo.split("/")):
        raise ValueError(f"{repo!r} is not a GitHub repository name (owner/repo)")


def _parse(model: type[_M], body: bytes, repo: str, what: str) -> _M:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        # a proxy or captive portal answering 200 with something else is usually passing
        raise ApiError(
            f"{repo}: {what} failed: unexpected response from GitHub "
            f"({exc.error_count()} validation errors); retry later",
            kind=FailureKind.TRANSIENT,
            repo=repo,
        ) from None


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _rate_state(headers: httpx.Headers) -> RateLimitState | None:
    limit = _number(headers.get("x-ratelimit-limit"))
    remaining = _number(headers.get("x-ratelimit-remaining"))
    reset = _number(headers.get("x-ratelimit-reset"))
    if limit is None or remaining is None or reset is None:
        return None
    used = _number(headers.get("x-ratelimit-used"))
    return RateLimitState(
        limit=int(limit),
        remaining=int(remaining),
        used=int(used) if used is not None else int(limit - remaining),
        reset_at=datetime.fromtimestamp(reset, UTC),
        resource=headers.get("x-ratelimit-resource", "core"),
    )


def _github_message(response: httpx.Response) -> str:
    if "json" not in response.headers.get("content-type", ""):
        return ""
    try:
        return _ErrorBody.model_validate_json(response.content).message[:200]
    except ValidationError:
        return ""
