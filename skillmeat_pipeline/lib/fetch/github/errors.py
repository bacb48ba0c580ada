"""How a GitHub read fails: `ApiError`, and its rate-limit and call-budget kinds."""

from __future__ import annotations

from datetime import datetime

from skillmeat_pipeline.lib.core.retry import FailureKind


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
