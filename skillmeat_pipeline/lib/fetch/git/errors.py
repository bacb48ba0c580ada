"""Why a clone or head lookup failed: `CloneReason`, `CloneError`, and how a failure is classified.

The job-failure exceptions are raised inside a git worker (`worker.py`); `classify` turns them, and
whatever libgit2 raised, into the kind, reason and detail the worker sends back to its parent.
"""

from __future__ import annotations

import errno
import re
from enum import StrEnum

from skillmeat_pipeline.lib.core.addresses import (
    ALLOWED_PRIVATE_HOSTS,
    ForbiddenAddressError,
    UnresolvedHostError,
    UrlError,
    display_url,
)
from skillmeat_pipeline.lib.core.retry import FailureKind
from skillmeat_pipeline.lib.core.secrets import Secret, redact

_HTTP_STATUS = re.compile(r"unexpected http status code: (\d{3})")
_GIT_ERROR_INVALID = 3  # libgit2 GIT_ERROR_INVALID

_TRANSIENT = FailureKind.TRANSIENT
_PERMANENT = FailureKind.PERMANENT


class CloneReason(StrEnum):
    TIMEOUT = "timeout"
    NETWORK = "network"
    SERVER_ERROR = "server_error"
    NOT_FOUND = "not_found"
    AUTH = "auth"
    DISK_SPACE = "disk_space"
    UNAVAILABLE = "unavailable"
    REF_NOT_FOUND = "ref_not_found"
    FORBIDDEN_ADDRESS = "forbidden_address"
    COMMIT_NOT_FOUND = "commit_not_found"


_NEXT_STEP = {
    CloneReason.TIMEOUT: "The server is slow or not answering; retry later or raise "
    "CLONE_TIMEOUT_SECONDS.",
    CloneReason.NETWORK: "Check the URL and that its host is reachable from this machine.",
    CloneReason.SERVER_ERROR: "The git server is failing; retry later.",
    CloneReason.NOT_FOUND: "Check the source URL; on GitHub a private repository that the token "
    "cannot read looks the same.",
    CloneReason.AUTH: "Check that GITHUB_TOKEN is set and can read this repository.",
    CloneReason.DISK_SPACE: "Free disk space or lower MIN_CLONE_DISK_SPACE_MB.",
    CloneReason.UNAVAILABLE: "Cloning does not work in this process; the GitHub API path does.",
    CloneReason.REF_NOT_FOUND: "Check the source's `ref`: it must name a branch or a tag.",
    CloneReason.FORBIDDEN_ADDRESS: "Nothing was sent to it; if it is an internal git server "
    f"you trust, list its host in {ALLOWED_PRIVATE_HOSTS}.",
    CloneReason.COMMIT_NOT_FOUND: "Check the pinned commit (`sha` of the marketplace entry).",
}


class CloneError(Exception):
    """A clone or head lookup that failed; `str()` is an actionable message without credentials."""

    def __init__(self, message: str, kind: FailureKind, reason: CloneReason) -> None:
        # all three in args, so the exception survives pickling (Dagster, multiprocessing)
        super().__init__(message, kind, reason)
        self.message = message
        self.kind = FailureKind(kind)
        self.reason = CloneReason(reason)

    def __str__(self) -> str:
        return self.message

    @property
    def transient(self) -> bool:
        return self.kind is FailureKind.TRANSIENT


def clone_error(
    op: str, url: str, kind: FailureKind, reason: CloneReason, detail: str
) -> CloneError:
    """A `CloneError` naming the operation, the URL (no credentials) and the next step."""
    action = "cloning" if op == "clone" else "listing the heads of"
    # `detail` may quote libgit2, which may quote a URL
    detail = redact(detail)
    return CloneError(
        f"{action} {display_url(url)} failed: {detail}. {_NEXT_STEP[reason]}", kind, reason
    )


class Deadline(TimeoutError):
    """The job's time ran out while libgit2 was still receiving (raised from its callback)."""


class RefusedCredentials(Exception):
    """The server asked for credentials that are not given to it."""


class CommitNotFound(LookupError):
    """A pinned commit the server did not send: missing, or fetching by id is not allowed."""


class RefNotFound(LookupError):
    """The remote has no such branch or tag, or does not say which branch HEAD is."""


def classify(
    exc: Exception, token: Secret | None, received_bytes: int
) -> tuple[FailureKind, CloneReason, str]:
    """The kind, reason and detail of a failed job; `received_bytes`: of the pack, so far."""
    import pygit2

    # none of libgit2's messages was seen quoting a credential; this one never will
    message = redact(str(exc), [token])
    if isinstance(exc, Deadline):
        detail = f"time limit reached after {received_bytes} bytes of the pack"
        return _TRANSIENT, CloneReason.TIMEOUT, detail
    if isinstance(exc, RefusedCredentials):
        return _PERMANENT, CloneReason.AUTH, message
    if isinstance(exc, ForbiddenAddressError):
        return _PERMANENT, CloneReason.FORBIDDEN_ADDRESS, message
    if isinstance(exc, UnresolvedHostError):
        return _TRANSIENT, CloneReason.NETWORK, message
    if isinstance(exc, UrlError):
        return _PERMANENT, CloneReason.NETWORK, f"the URL cannot be used ({message})"
    if isinstance(exc, RefNotFound):
        return _PERMANENT, CloneReason.REF_NOT_FOUND, message
    if isinstance(exc, CommitNotFound):
        return _PERMANENT, CloneReason.COMMIT_NOT_FOUND, message
    if isinstance(exc, pygit2.AuthError) or "authentication replays" in message:
        return _PERMANENT, CloneReason.AUTH, f"authentication failed ({message})"
    if isinstance(exc, pygit2.CertificateError):
        detail = f"the server's TLS certificate was rejected ({message})"
        return _PERMANENT, CloneReason.NETWORK, detail
    if status := _HTTP_STATUS.search(message):
        code = int(status.group(1))
        if code == 404:
            return _PERMANENT, CloneReason.NOT_FOUND, "the server answered 404: no such repository"
        if code in (401, 403):
            return _PERMANENT, CloneReason.AUTH, f"the server answered {code}"
        kind = _TRANSIENT if code >= 500 or code in (408, 429) else _PERMANENT
        return kind, CloneReason.SERVER_ERROR, f"the server answered {code}"
    if "not exported" in message:  # git:// for a missing repository
        return _PERMANENT, CloneReason.NOT_FOUND, message
    # "timed out": libgit2's connect or idle timeout; "temporarily unavailable": the same over TLS
    if "timed out" in message or "temporarily unavailable" in message:
        return _TRANSIENT, CloneReason.TIMEOUT, f"{message} (after {received_bytes} pack bytes)"
    if "No space left" in message or getattr(exc, "errno", None) == errno.ENOSPC:
        return _PERMANENT, CloneReason.DISK_SPACE, message
    if "invalid content-type" in message:
        detail = f"not a git smart-HTTP endpoint ({message})"
        return _PERMANENT, CloneReason.SERVER_ERROR, detail
    if getattr(exc, "error_class", None) == _GIT_ERROR_INVALID:  # e.g. an ftp:// URL
        return _PERMANENT, CloneReason.NETWORK, f"the URL cannot be used ({message})"
    if isinstance(exc, pygit2.GitError):
        return _TRANSIENT, CloneReason.NETWORK, message
    return _TRANSIENT, CloneReason.UNAVAILABLE, f"{type(exc).__name__}: {message}"
