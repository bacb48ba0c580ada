"""Shallow bare clones and remote-head lookups with libgit2 under a hard time limit (SPEC §6.1).

Every libgit2 network call runs in a worker subprocess that is killed at the deadline (`pool.py`,
`worker.py`); a clone goes into a temp directory that is removed when its block ends, or by a later
process when this one was killed (`sweep.py`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skillmeat_pipeline.lib.core.addresses import AddressPolicy, display_url
from skillmeat_pipeline.lib.core.environment import number_from_env
from skillmeat_pipeline.lib.core.retry import FailureKind
from skillmeat_pipeline.lib.core.secrets import Secret
from skillmeat_pipeline.lib.fetch.git.errors import CloneReason, clone_error
from skillmeat_pipeline.lib.fetch.git.pool import WORKER_POOL, WorkerLost, token_fields
from skillmeat_pipeline.lib.fetch.git.sweep import clone_dir_prefix, sweep_once

if TYPE_CHECKING:
    import pygit2

    from skillmeat_pipeline.lib.fetch.git.tree import GitTreeSnapshot

logger = logging.getLogger(__name__)

_MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class CloneSettings:
    """Limits of clones and head lookups. `clone_dir`: where clones go (default: the temp dir)."""

    timeout_s: float = 300.0
    min_disk_space_mb: int = 500
    connect_timeout_s: float = 10.0
    idle_timeout_s: float = 30.0
    resolve_timeout_s: float = 30.0
    clone_dir: Path | None = None

    def __post_init__(self) -> None:
        for name in ("timeout_s", "connect_timeout_s", "idle_timeout_s", "resolve_timeout_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"CloneSettings.{name} must be a positive number, got {value!r}")
        if self.min_disk_space_mb < 0:
            raise ValueError(
                f"CloneSettings.min_disk_space_mb must be >= 0, got {self.min_disk_space_mb!r}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CloneSettings:
        """`CLONE_TIMEOUT_SECONDS` (default 300) and `MIN_CLONE_DISK_SPACE_MB` (default 500)."""
        env = os.environ if environ is None else environ
        return cls(
            timeout_s=number_from_env(env, "CLONE_TIMEOUT_SECONDS", float, 300.0, allow_zero=False),
            min_disk_space_mb=number_from_env(
                env, "MIN_CLONE_DISK_SPACE_MB", int, 500, allow_zero=True
            ),
        )


@dataclass(frozen=True, slots=True)
class RemoteHead:
    """The ref a source is indexed at (`refs/heads/main`, `refs/tags/v1`) and its commit."""

    ref_name: str
    commit_sha: str


@dataclass(frozen=True, slots=True)
class ClonedSource:
    """A bare depth-1 clone, readable until its `clone_source` block ends."""

    url: str  # without credentials
    ref_name: str
    commit_sha: str
    snapshot: GitTreeSnapshot
    bytes_fetched: int  # pack bytes received, as libgit2 counts them
    clone_ms: int  # from the disk check to the fetched pack, worker start included


@dataclass(frozen=True, slots=True)
class Libgit2Status:
    usable: bool
    version: str | None
    problem: str | None


@functools.cache
def libgit2_status() -> Libgit2Status:
    """Whether libgit2 can clone over HTTPS here; checked once, a warning logged once if not."""
    version: str | None = None
    problem: str | None = None
    try:
        import pygit2
        from pygit2.enums import Feature
    except ImportError as exc:
        problem = f"pygit2 cannot be imported ({exc})"
    else:
        version = pygit2.LIBGIT2_VERSION
        if not pygit2.features & Feature.HTTPS:
            problem = f"libgit2 {version} was built without HTTPS support"
    if problem is not None:
        logger.warning(
            "libgit2 is unusable: %s. Every source will be indexed through the GitHub API.", problem
        )
    return Libgit2Status(usable=problem is None, version=version, problem=problem)


def resolve_head(
    url: str,
    ref: str | None = None,
    *,
    token: Secret | None = None,
    settings: CloneSettings | None = None,
) -> RemoteHead:
    """The commit `ref` (branch or tag; default: the remote's HEAD branch) points at on `url`.

    One ref advertisement, no clone. Bounded by `resolve_timeout_s` (and `timeout_s`).
    """
    settings = settings or CloneSettings.from_env()
    _require_libgit2("resolve", url)
    budget = min(settings.resolve_timeout_s, settings.timeout_s)
    reply = _execute("resolve", url, ref, token, settings, budget, dest=None)
    return RemoteHead(reply["ref_name"], reply["commit_sha"])


@contextlib.contextmanager
def clone_source(
    url: str,
    *,
    ref: str | None = None,
    token: Secret | None = None,
    settings: CloneSettings | None = None,
    commit: str | None = None,
) -> Iterator[ClonedSource]:
    """Clone `ref` of `url` bare at depth 1 into a private temp dir, removed when the block ends.

    `commit` (a full commit id) fetches exactly that commit at depth 1 instead of a ref: the
    server must allow it (`uploadpack.allowReachableSHA1InWant` or `allowAnySHA1InWant`; GitHub
    does); a refusal or a commit the repository does not have is `COMMIT_NOT_FOUND`.

    Raises `CloneError` without touching the network when libgit2 is unusable or the clone
    location has less than `min_disk_space_mb` free.
    """
    settings = settings or CloneSettings.from_env()
    _require_libgit2("clone", url)
    started = time.monotonic()
    clone_dir = settings.clone_dir or Path(tempfile.gettempdir())
    sweep_once(clone_dir)
    _check_disk_space(url, clone_dir, settings.min_disk_space_mb)
    workdir = Path(tempfile.mkdtemp(prefix=clone_dir_prefix(), dir=clone_dir))
    repo: pygit2.Repository | None = None
    try:
        reply = _execute(
            "clone", url, ref, token, settings, settings.timeout_s, dest=workdir, commit=commit
        )
        clone_ms = round((time.monotonic() - started) * 1000)
        import pygit2

        from skillmeat_pipeline.lib.fetch.git.tree import snapshot_commit

        repo = pygit2.Repository(str(workdir))
        snapshot = snapshot_commit(repo, reply["commit_sha"])
        # DEBUG: the same numbers are in the partition's metadata and span; an INFO record per
        # clone would be one more event per source where Dagster captures this logger
        logger.debug(
            "cloned %s (%s at %s): %d bytes in %d ms",
            display_url(url),
            reply["ref_name"],
            reply["commit_sha"][:12],
            reply["received_bytes"],
            clone_ms,
        )
        yield ClonedSource(
            url=display_url(url),
            ref_name=reply["ref_name"],
            commit_sha=reply["commit_sha"],
            snapshot=snapshot,
            bytes_fetched=reply["received_bytes"],
            clone_ms=clone_ms,
        )
    finally:
        if repo is not None:
            repo.free()
        shutil.rmtree(workdir, ignore_errors=True)


def _require_libgit2(op: str, url: str) -> None:
    status = libgit2_status()
    if not status.usable:
        raise clone_error(
            op, url, FailureKind.PERMANENT, CloneReason.UNAVAILABLE, str(status.problem)
        )


def _check_disk_space(url: str, clone_dir: Path, min_mb: int) -> None:
    try:
        free = shutil.disk_usage(clone_dir).free
    except OSError as exc:
        raise clone_error(
            "clone", url, FailureKind.PERMANENT, CloneReason.UNAVAILABLE, f"{clone_dir}: {exc}"
        ) from None
    if free < min_mb * _MB:
        # free space does not come back within a retry's backoff: permanent, the caller falls back
        raise clone_error(
            "clone",
            url,
            FailureKind.PERMANENT,
            CloneReason.DISK_SPACE,
            f"only {free / _MB:.0f} MB free at {clone_dir}, {min_mb} MB needed "
            "(MIN_CLONE_DISK_SPACE_MB); the clone was not attempted",
        )


def _execute(
    op: str,
    url: str,
    ref: str | None,
    token: Secret | None,
    settings: CloneSettings,
    budget_s: float,
    dest: Path | None,
    commit: str | None = None,
) -> dict[str, Any]:
    deadline = time.monotonic() + budget_s
    policy = AddressPolicy.from_env()
    job = {
        "op": op,
        "url": url,
        "ref": ref,
        **token_fields(url, token, policy),
        "addresses": policy.to_json(),
        "commit": commit,
        "dest": str(dest) if dest else None,
        "deadline": deadline,
        # the worker stops itself a little early when data is flowing, so it can still report how
        # far it got; the kill at `deadline` is for when no callback runs at all
        "soft_deadline": deadline - min(0.5, budget_s / 10),
        "connect_timeout_ms": round(min(settings.connect_timeout_s, budget_s) * 1000),
        "idle_timeout_ms": round(min(settings.idle_timeout_s, budget_s) * 1000),
    }
    try:
        reply = WORKER_POOL.run(job, deadline)
    except WorkerLost as exc:
        raise clone_error(
            op, url, FailureKind.TRANSIENT, CloneReason.UNAVAILABLE, str(exc)
        ) from None
    if reply is None:
        raise clone_error(
            op,
            url,
            FailureKind.TRANSIENT,
            CloneReason.TIMEOUT,
            f"no result within {budget_s:g} s, so the git process was killed",
        )
    if not reply["ok"]:
        kind, reason = FailureKind(reply["kind"]), CloneReason(reply["reason"])
        raise clone_error(op, url, kind, reason, reply["detail"])
    return reply
