"""The GitHub client's HTTP side: sending, redirects, retries, call budgets, rate limits, ETags.

Each scan has a hard call budget (default 10). Rate-limit headers are remembered so a scan that the
remaining limit cannot finish is refused before its first request. Re-read URLs are sent with
`If-None-Match`; SHA-addressed answers never change, so a cached one is reused without a request.
A 500/502/503/504 answer is tried again with backoff (`REST_RETRIES`) while the scan's budget
allows.

The token goes only to the configured API and raw hosts (each request only to its own host, so a
redirect elsewhere drops it) and never into a URL, a log line or an exception message.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeVar
from urllib.parse import urljoin, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from skillmeat_pipeline.lib.core.retry import BackoffPolicy, FailureKind, call_with_retries
from skillmeat_pipeline.lib.core.secrets import Secret, redact
from skillmeat_pipeline.lib.fetch.github.errors import ApiBudgetExceeded, ApiError, RateLimited
from skillmeat_pipeline.lib.fetch.github.etags import CachedResponse, EtagCache, MemoryEtagCache

logger = logging.getLogger(__name__)

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

# "archive": where GitHub redirects a tarball request (codeload.github.com); not REST-rate-limited
HostKind = Literal["rest", "raw", "archive"]
_M = TypeVar("_M", bound=BaseModel)


class ApiModel(BaseModel):
    """A GitHub answer's shape: only the fields the pipeline uses, the others ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class _ErrorBody(ApiModel):
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


class ApiSession:
    """The connections, accounting and rate-limit state one `GitHubClient` shares among its scans.

    Thread-safe: concurrent scans of different sources go through one session.
    """

    def __init__(
        self,
        *,
        api_url: str,
        raw_url: str,
        token: Secret | None,
        timeout: httpx.Timeout | float,
        etag_cache: EtagCache | None,
        transport: httpx.BaseTransport | None,
        retries: BackoffPolicy,
        sleep: Callable[[float], None],
    ) -> None:
        self.api_url = api_url
        self.raw_url = raw_url
        self.token = token
        self._retries = retries
        self._sleep = sleep
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

    def close(self) -> None:
        self._http.close()

    @property
    def totals(self) -> ApiTotals:
        with self._lock:
            return replace(self._totals)

    @property
    def rate_limit(self) -> RateLimitState | None:
        with self._lock:
            return self._rate

    def open_scan(self, repo: str, budget: int) -> ScanStats:
        """`GitHubClient.start_scan` for a valid repository name and its budget."""
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

    def count_archive_bytes(self, scan: ScanStats, received: int) -> None:
        """Add `received` archive bytes (as sent, compressed) to the scan and the totals."""
        with self._lock:
            scan.archive_bytes += received
            scan.bytes_fetched += received
            self._totals.archive_bytes += received
            self._totals.bytes_fetched += received

    def rest(
        self,
        scan: ScanStats,
        path: str,
        what: str,
        *,
        conditional: bool = False,
        immutable: bool = False,
    ) -> bytes:
        url = self.moved_url(self.api_url + path)
        cached = self._etags.get(url) if conditional or immutable else None
        if immutable and cached is not None:
            with self._lock:
                scan.cache_hits += 1
                self._totals.cache_hits += 1
            return cached.body
        headers = {"If-None-Match": cached.etag} if cached is not None else {}
        response = self.get(scan, url, "rest", what, headers)
        if response.status_code == 304 and cached is not None:
            return cached.body
        if response.status_code != 200:
            raise self.error(response, scan.repo, what)
        etag = response.headers.get("etag")
        if etag and (conditional or immutable):
            self._etags.put(url, CachedResponse(etag, response.content))
        return response.content

    def get(
        self, scan: ScanStats, url: str, host: HostKind, what: str, headers: dict[str, str]
    ) -> httpx.Response:
        """`send`, tried again with backoff (SPEC §8) on a 500/502/503/504 answer.

        A REST retry is a call like any other: none starts once the scan's budget is spent, so the
        last error is what the caller sees. A timeout or a refused connection is not tried again
        here: the first already waited the whole timeout, and a host that refuses connections
        rarely accepts them a second later; the scan's fallback or failure decides what is next.
        """

        def attempt() -> httpx.Response:
            response = self.send(scan, url, host, what, headers)
            if response.status_code in RETRIED_STATUSES:
                raise self.error(response, scan.repo, what)
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

    def send(
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
            if self.token is not None and _origin(url) == home:
                # the one place the token is revealed: a request to its own host
                request_headers["Authorization"] = f"Bearer {self.token.reveal()}"
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
                    f"({type(exc).__name__}: {redact(str(exc), [self.token])}); retry later",
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

    def moved_url(self, url: str) -> str:
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

    def error(self, response: httpx.Response, repo: str, what: str) -> ApiError:
        status = response.status_code
        # GitHub never echoes a token, but a proxy or a foreign host might
        message = redact(_github_message(response), [self.token])
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


def parse_body(model: type[_M], body: bytes, repo: str, what: str) -> _M:
    """`body` read as `model`; an answer of another shape is a transient `ApiError`."""
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


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()
