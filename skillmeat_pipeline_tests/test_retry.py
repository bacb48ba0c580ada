import random

import pytest

from skillmeat_pipeline.lib.core.retry import BackoffPolicy, call_with_retries


class Transient(Exception):
    pass


def test_transient_failures_are_retried_with_growing_capped_jittered_waits():
    failures = iter([Transient("a"), Transient("b")])
    waits: list[float] = []
    retries: list[int] = []

    def attempt() -> str:
        exc = next(failures, None)
        if exc:
            raise exc
        return "ok"

    result = call_with_retries(
        attempt,
        policy=BackoffPolicy(max_attempts=3, base_delay_s=2, max_delay_s=3),
        is_transient=lambda e: isinstance(e, Transient),
        on_retry=lambda n, _e, _w: retries.append(n),
        sleep=waits.append,
    )
    assert result == "ok"
    assert retries == [1, 2]
    assert 0 <= waits[0] <= 2 and 0 <= waits[1] <= 3


def test_permanent_failure_is_not_retried():
    calls = []

    def attempt():
        calls.append(1)
        raise ValueError("404")

    with pytest.raises(ValueError):
        call_with_retries(
            attempt,
            policy=BackoffPolicy(),
            is_transient=lambda e: isinstance(e, Transient),
            sleep=lambda _s: None,
        )
    assert len(calls) == 1


def test_last_transient_failure_is_raised_after_max_attempts():
    calls = []

    def attempt():
        calls.append(1)
        raise Transient(str(len(calls)))

    with pytest.raises(Transient, match="3"):
        call_with_retries(
            attempt, policy=BackoffPolicy(max_attempts=3), is_transient=bool, sleep=lambda _s: None
        )
    assert len(calls) == 3


def test_delay_is_full_jitter_below_the_exponential_ceiling():
    policy = BackoffPolicy(base_delay_s=1, max_delay_s=10)
    rng = random.Random(7)
    samples = [policy.delay(n, rng) for n in range(6) for _ in range(50)]
    assert max(samples) <= 10
    assert all(policy.delay(0, rng) <= 1 for _ in range(50))
    assert len({round(s, 6) for s in samples}) > 100
