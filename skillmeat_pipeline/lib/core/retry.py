"""Exponential backoff with full jitter for transient failures of one source."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

T = TypeVar("T")


class FailureKind(StrEnum):
    """Whether trying again can help: one transience vocabulary for clones and GitHub reads."""

    TRANSIENT = "transient"  # network, timeout, 5xx, a rate limit with a reset: retry later
    PERMANENT = "permanent"  # 404, auth, disk space, over budget: retrying cannot help


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """`max_attempts` tries in all; waits grow as base * 2**n, capped, with full jitter."""

    max_attempts: int = 3
    base_delay_s: float = 1.0
    max_delay_s: float = 30.0

    def delay(self, retry_number: int, rng: random.Random | None = None) -> float:
        ceiling = min(self.max_delay_s, self.base_delay_s * (2**retry_number))
        # Full jitter spreads retries of many sources hitting the same host at once.
        return (rng or random).uniform(0, ceiling)


def call_with_retries(
    attempt: Callable[[], T],
    *,
    policy: BackoffPolicy,
    is_transient: Callable[[BaseException], bool],
    on_retry: Callable[[int, BaseException, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `attempt`, retrying transient failures; a permanent one or the last one is raised."""
    for retry_number in range(policy.max_attempts):
        try:
            return attempt()
        except Exception as exc:
            if not is_transient(exc) or retry_number + 1 >= policy.max_attempts:
                raise
            wait = policy.delay(retry_number)
            if on_retry is not None:
                on_retry(retry_number + 1, exc, wait)
            sleep(wait)
    raise AssertionError("unreachable: the loop returns or raises")
