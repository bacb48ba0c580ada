"""The GitHub emulator's REST rate limits: one bucket per token (and one for requests without),
a 304 free for authorised requests, secondary rate limits a test injects, bad credentials.

Answers carry the `x-ratelimit-*` headers GitHub sends; an exhausted bucket answers 403 or 429
with GitHub's message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection
from dataclasses import dataclass

from skillmeat_pipeline.testing.github_replies import RATE_DOCS, Reply, etag_matches, github_error


def token_of(header: str | None) -> str | None:
    """The token an `Authorization` header sends (`token x` or `Bearer x`), if any."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        return value.strip()
    return None


@dataclass(slots=True)
class _Bucket:
    limit: int
    used: int
    reset_at: float

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


class RateLimits:
    """`tokens`: when given, any other token is refused "Bad credentials"; when None every token
    is accepted, each with its own bucket of `limit` calls a `window_s`."""

    def __init__(
        self,
        *,
        tokens: Collection[str] | None,
        limit: int,
        anonymous_limit: int,
        window_s: float,
        exhausted_status: int,
    ) -> None:
        if exhausted_status not in (403, 429):
            raise ValueError("GitHub answers an exhausted rate limit with 403 or 429")
        self._tokens = frozenset(tokens) if tokens is not None else None
        self._limit = limit
        self._anonymous_limit = anonymous_limit
        self._window_s = window_s
        self._exhausted_status = exhausted_status
        self._lock = threading.Lock()
        self._buckets: dict[str | None, _Bucket] = {}
        self._secondary: list[tuple[int, int]] = []

    def accepts(self, token: str | None) -> bool:
        """Whether `token` is a valid token (False without one)."""
        return token is not None and (self._tokens is None or token in self._tokens)

    def remaining(self, token: str | None) -> int:
        with self._lock:
            return self._bucket(token).remaining

    def set_remaining(self, remaining: int, token: str | None, reset_in_s: float | None) -> None:
        with self._lock:
            bucket = self._bucket(token)
            bucket.used = max(0, bucket.limit - remaining)
            if reset_in_s is not None:
                bucket.reset_at = time.time() + reset_in_s

    def add_secondary(self, status: int, retry_after_s: int, times: int) -> None:
        with self._lock:
            self._secondary.extend([(status, retry_after_s)] * times)

    def clear_secondary(self) -> None:
        with self._lock:
            self._secondary.clear()

    def refusal(self, token: str | None, request_id: str) -> Reply | None:
        """The answer to a request refused before it is looked at: bad credentials, or the next
        injected secondary rate limit. Neither is counted."""
        if token is not None and self._tokens is not None and token not in self._tokens:
            with self._lock:
                rate = self._headers(self._bucket(None))
            reply = github_error(401, "Bad credentials").reply
            reply.headers.update(rate)
            return reply
        with self._lock:
            secondary = self._secondary.pop(0) if self._secondary else None
        if secondary is None:
            return None
        status, retry_after = secondary
        reply = github_error(
            status,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you "
            "try again. If you reach out to GitHub Support for help, please include the "
            f"request ID {request_id}.",
            f"{RATE_DOCS}#about-secondary-rate-limits",
        ).reply
        reply.headers["retry-after"] = str(retry_after)
        return reply

    def charge(
        self, reply: Reply, token: str | None, if_none_match: str | None
    ) -> tuple[Reply, bool]:
        """`reply` as sent (a 304 when the ETag matches, a rate-limit error when the bucket is
        empty) with the rate headers, and whether it counted against the bucket."""
        counted = True
        if reply.etag and etag_matches(if_none_match, reply.etag):
            # GitHub: a 304 is free only when the request was correctly authorised
            reply = Reply(304, etag=reply.etag)
            counted = token is None
        with self._lock:
            bucket = self._bucket(token)
            if counted and bucket.remaining <= 0:
                who = "user ID 1" if token else "127.0.0.1"
                hint = (
                    ""
                    if token
                    else " (But here's the good news: Authenticated requests get a higher rate "
                    "limit. Check out the documentation for more details.)"
                )
                reply = github_error(
                    self._exhausted_status, f"API rate limit exceeded for {who}.{hint}", RATE_DOCS
                ).reply
                counted = False
            elif counted:
                bucket.used += 1
            reply.headers.update(self._headers(bucket))
        return reply, counted

    def _bucket(self, identity: str | None) -> _Bucket:
        # caller holds the lock
        now = time.time()
        bucket = self._buckets.get(identity)
        limit = self._anonymous_limit if identity is None else self._limit
        if bucket is None:
            bucket = self._buckets[identity] = _Bucket(limit, 0, now + self._window_s)
        elif now >= bucket.reset_at:
            bucket.used, bucket.reset_at = 0, now + self._window_s
        return bucket

    @staticmethod
    def _headers(bucket: _Bucket) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(bucket.limit),
            "x-ratelimit-remaining": str(bucket.remaining),
            "x-ratelimit-used": str(bucket.used),
            "x-ratelimit-reset": str(int(bucket.reset_at)),
            "x-ratelimit-resource": "core",
        }
