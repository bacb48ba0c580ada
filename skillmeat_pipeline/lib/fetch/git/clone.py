"""Shallow bare clones and remote-head lookups with libgit2 under a hard time limit (SPEC §6.1).

libgit2's own timeouts are idle timeouts, and no callback runs while a server dribbles its ref
advertisement, so the only hard limit is a process killed at the deadline. Every libgit2 network
call therefore runs in a worker subprocess. Workers are reused between jobs (a fresh one costs
~90 ms, most of it importing pygit2); a worker that misses its deadline is killed, never reused.
Workers are started with `subprocess`, not `multiprocessing`: forking a threaded process is unsafe,
and a forkserver child re-runs the caller's `__main__` script (~55 ms under the `pytest` script,
~0.8 s under the `dagster` CLI). The token reaches a worker through its stdin, never argv or the
environment, and leaves it only as the answer of a credentials callback for the URL's own host.

A worker dies with its parent: a thread of the worker waits for its stdin pipe to hang up, which
happens the moment the parent ends (SIGKILL and OOM kills included), and kills the worker then.
A parent that was killed cannot remove its clone directory; the directory's name holds the host
and pid of its owner, and the first clone of a later process removes those whose owner is gone.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import functools
import json
import logging
import math
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from skillmeat_pipeline.lib.core.addresses import (
    ALLOWED_PRIVATE_HOSTS,
    AddressPolicy,
    ForbiddenAddressError,
    UnresolvedHostError,
    UrlError,
    display_url,
    url_origin,
)
from skillmeat_pipeline.lib.core.retry import FailureKind
from skillmeat_pipeline.lib.core.secrets import Secret, redact

if TYPE_CHECKING:
    import pygit2

    from skillmeat_pipeline.lib.fetch.git.tree import GitTreeSnapshot

logger = logging.getLogger(__name__)

TOKEN_USERNAME = "x-access-token"
_MB = 1024 * 1024
# the last resort of a worker whose parent died and whose stdin watch did not fire: it ends
# itself this long after its job's deadline
_ORPHAN_GRACE_S = 5.0
CLONE_DIR_PREFIX = "skillmeat-clone-"
# skillmeat-clone-<host>-<pid>-<mkdtemp's random part, which never holds "-">
_CLONE_DIR_NAME = re.compile(re.escape(CLONE_DIR_PREFIX) + r"(?P<host>.+)-(?P<pid>\d+)-[a-z0-9_]+")
# idle workers kept for the next job: at least this many, and as many as ever ran at once (up to
# the cap), so a caller's thread count sizes the pool and no job waits for a new interpreter
_MIN_IDLE_WORKERS = 4
_MAX_IDLE_WORKERS = 32
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
            timeout_s=_env_number(env, "CLONE_TIMEOUT_SECONDS", float, 300.0, allow_zero=False),
            min_disk_space_mb=_env_number(
                env, "MIN_CLONE_DISK_SPACE_MB", int, 500, allow_zero=True
            ),
        )


_Number = TypeVar("_Number", int, float)


def _env_number(
    env: Mapping[str, str],
    name: str,
    parse: Callable[[str], _Number],
    default: _Number,
    *,
    allow_zero: bool,
) -> _Number:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "more than zero"
        raise ValueError(f"{name} must be {bound}, got {raw!r}")
    return value


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
    _sweep_once(clone_dir)
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


# -- clone directories left behind ------------------------------------------------------------


def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:40] or "host"


def clone_dir_prefix(pid: int | None = None) -> str:
    """How the clone directories of process `pid` (default: this one) on this host begin."""
    return f"{CLONE_DIR_PREFIX}{_host_tag()}-{os.getpid() if pid is None else pid}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep_stale_clones(clone_dir: Path) -> list[Path]:
    """Remove the clone directories under `clone_dir` whose owner process is gone; return them.

    Only this program's: the name has the clone prefix, this host and the pid of a process that no
    longer runs, and the directory belongs to this user. A process killed mid-clone (SIGKILL, the
    OOM killer) leaves one behind; nothing else removes it.
    """
    removed: list[Path] = []
    host, uid = _host_tag(), os.getuid()
    try:
        candidates = list(os.scandir(clone_dir))
    except OSError:
        return removed
    for entry in candidates:
        match = _CLONE_DIR_NAME.fullmatch(entry.name)
        if match is None or match["host"] != host:
            continue
        pid = int(match["pid"])
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat().st_uid != uid:
                continue
        except OSError:
            continue
        if pid == os.getpid() or _pid_alive(pid):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    if removed:
        logger.info(
            "removed %d clone directories of processes that ended mid-clone, under %s",
            len(removed),
            clone_dir,
            extra={"record": {"event": "stale_clones_removed", "count": len(removed)}},
        )
    return removed


_swept: set[Path] = set()
_swept_lock = threading.Lock()


def _sweep_once(clone_dir: Path) -> None:
    """`sweep_stale_clones` at this process's first clone into `clone_dir`."""
    with _swept_lock:
        if clone_dir in _swept:
            return
        _swept.add(clone_dir)
    sweep_stale_clones(clone_dir)


# -- parent side -----------------------------------------------------------------------------


def token_fields(url: str, token: Secret | None, policy: AddressPolicy) -> dict[str, Any]:
    """The job fields that say whether the token goes along to `url`.

    The token goes to GitHub's hosts only (SPEC §6.1): a source's own `url` on another host never
    gets it, even when the source also names `github`.
    """
    github = policy.is_github(url)
    return {
        "token": token if github else None,
        "token_withheld": token is not None and not github,
    }


def job_line(job: Mapping[str, Any]) -> bytes:
    """One job as the JSON line a worker reads: the one place a token is revealed to a worker
    (through its stdin, never argv or the environment)."""

    def reveal(value: object) -> str:
        if isinstance(value, Secret):
            return value.reveal()
        raise TypeError(f"{type(value).__name__} is not JSON serializable")

    return json.dumps(job, default=reveal).encode() + b"\n"


def _require_libgit2(op: str, url: str) -> None:
    status = libgit2_status()
    if not status.usable:
        raise clone_error(op, url, _PERMANENT, CloneReason.UNAVAILABLE, str(status.problem))


def _check_disk_space(url: str, clone_dir: Path, min_mb: int) -> None:
    try:
        free = shutil.disk_usage(clone_dir).free
    except OSError as exc:
        raise clone_error(
            "clone", url, _PERMANENT, CloneReason.UNAVAILABLE, f"{clone_dir}: {exc}"
        ) from None
    if free < min_mb * _MB:
        # free space does not come back within a retry's backoff: permanent, the caller falls back
        raise clone_error(
            "clone",
            url,
            _PERMANENT,
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
        reply = _POOL.run(job, deadline)
    except _WorkerLost as exc:
        raise clone_error(op, url, _TRANSIENT, CloneReason.UNAVAILABLE, str(exc)) from None
    if reply is None:
        raise clone_error(
            op,
            url,
            _TRANSIENT,
            CloneReason.TIMEOUT,
            f"no result within {budget_s:g} s, so the git process was killed",
        )
    if not reply["ok"]:
        kind, reason = FailureKind(reply["kind"]), CloneReason(reply["reason"])
        raise clone_error(op, url, kind, reason, reply["detail"])
    return reply


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


class _WorkerLost(Exception):
    pass


_WORKER_CODE = f"from {__name__} import _worker_main; _worker_main()"


class _Worker:
    """A worker subprocess; runs one job at a time."""

    def __init__(self) -> None:
        # the worker imports exactly what this process would, whatever put this package on the path
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:
            self.process = subprocess.Popen(
                # -P: a module in the current directory must not shadow pygit2 or this package
                [sys.executable, "-P", "-c", _WORKER_CODE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                bufsize=0,
                env=env,
                # a Ctrl-C in a terminal goes to the caller, which then kills the worker
                start_new_session=True,
            )
        except OSError as exc:
            raise _WorkerLost(f"the git worker process cannot start ({exc})") from None

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def run(self, job: dict[str, Any], deadline: float) -> dict[str, Any] | None:
        """The worker's reply, or None when `deadline` passed first."""
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(job_line(job))
        except OSError:
            raise self._lost() from None
        fd = self.process.stdout.fileno()
        # poll, not select: select() fails on descriptors above 1024, common in a busy process
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        received = b""
        while not received.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not poller.poll(math.ceil(remaining * 1000)):
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise self._lost()
            received += chunk
        reply: dict[str, Any] = json.loads(received)
        return reply

    def _lost(self) -> _WorkerLost:
        self.close()
        code = self.process.returncode
        return _WorkerLost(f"the git worker process ended unexpectedly (exit code {code})")

    def close(self) -> None:
        if self.alive:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


class _WorkerPool:
    def __init__(self, min_idle: int, max_idle: int) -> None:
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._busy = 0
        self._keep = min_idle
        self._max_idle = max_idle

    def run(self, job: dict[str, Any], deadline: float) -> dict[str, Any] | None:
        worker = self._acquire()
        try:
            reply = worker.run(job, deadline)
        except BaseException:
            worker.close()
            raise
        finally:
            with self._lock:
                self._busy -= 1
        if reply is None:
            worker.close()
        else:
            self._release(worker)
        return reply

    def _acquire(self) -> _Worker:
        with self._lock:
            self._busy += 1
            self._keep = min(max(self._keep, self._busy), self._max_idle)
            while self._idle:
                worker = self._idle.pop()
                if worker.alive:
                    return worker
                worker.close()
        try:
            return _Worker()
        except BaseException:
            with self._lock:
                self._busy -= 1
            raise

    def _release(self, worker: _Worker) -> None:
        with self._lock:
            if len(self._idle) < self._keep:
                self._idle.append(worker)
                return
        worker.close()

    def close_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.close()


_POOL = _WorkerPool(_MIN_IDLE_WORKERS, _MAX_IDLE_WORKERS)
atexit.register(_POOL.close_idle)


# -- worker side -----------------------------------------------------------------------------


class _Deadline(TimeoutError):
    pass


class _RefusedCredentials(Exception):
    pass


class _CommitNotFound(LookupError):
    """A pinned commit the server did not send: missing, or fetching by id is not allowed."""


class _RefNotFound(LookupError):
    pass


def _worker_main() -> None:
    """A worker subprocess: one JSON job per line on stdin, one JSON reply per line on stdout."""
    import pygit2  # noqa: F401  (imported before the first job arrives: the worker waits warm)

    threading.Thread(target=_die_with_parent, name="parent-watch", daemon=True).start()
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    # output that any library prints must not corrupt the reply stream
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    for line in sys.stdin.buffer:
        job = json.loads(line)
        # default SIGALRM action: the process ends, with no handler that could interrupt libgit2
        signal.setitimer(
            signal.ITIMER_REAL, max(job["deadline"] - time.monotonic(), 0) + _ORPHAN_GRACE_S
        )
        reply = run_job(job)
        signal.setitimer(signal.ITIMER_REAL, 0)
        replies.write(json.dumps(reply).encode() + b"\n")


def _die_with_parent() -> None:
    """Kill this worker once its parent is gone, also in the middle of a job.

    Only the parent holds the other end of this worker's stdin (pipes are close-on-exec and every
    worker is started with close_fds), so the pipe hangs up exactly when the parent ends, however it
    ends. Between jobs the read loop sees the end of input too; during a job it is inside libgit2,
    and this thread is what stops the download. (`PR_SET_PDEATHSIG` would fire when the parent
    *thread* that started the worker ends, and pooled workers outlive those threads.)
    """
    poller = select.poll()
    poller.register(sys.stdin.fileno(), 0)  # no events asked for: hang-ups are always reported
    while True:
        for _fd, events in poller.poll():
            if events & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                os.kill(os.getpid(), signal.SIGKILL)


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one resolve or clone job in this process (what a worker does with each job)."""
    import pygit2
    from pygit2.enums import Option

    token = job["token"]
    policy = AddressPolicy.from_json(job["addresses"])
    guard = _Guard(
        Secret(token) if token is not None else None,
        job["url"],
        job["soft_deadline"],
        policy=policy,
        token_withheld=job["token_withheld"],
    )
    try:
        # the address rules on what the host resolves to now, right before libgit2 connects
        # (libgit2 resolves it again: see lib/core/addresses.py on that window)
        policy.check_connect(job["url"])
        # process-global options: a worker runs one job at a time, so setting them here is safe
        pygit2.option(Option.SET_SERVER_CONNECT_TIMEOUT, job["connect_timeout_ms"])
        pygit2.option(Option.SET_SERVER_TIMEOUT, job["idle_timeout_ms"])
        callbacks = guard.callbacks()
        if job["op"] == "resolve":
            remote = pygit2.Repository().remotes.create_anonymous(job["url"])
            name, sha = _pick_ref(remote.list_heads(callbacks=callbacks), job["ref"])
            return {"ok": True, "ref_name": name, "commit_sha": sha}
        return _fetch(job, callbacks)
    except Exception as exc:
        kind, reason, detail = _classify(exc, guard)
        return {"ok": False, "kind": kind, "reason": reason, "detail": detail}


def _fetch(job: dict[str, Any], callbacks: pygit2.RemoteCallbacks) -> dict[str, Any]:
    import pygit2

    repo = pygit2.init_repository(job["dest"], bare=True)
    try:
        remote = repo.remotes.create_anonymous(job["url"])
        if job.get("commit"):
            return _fetch_commit(remote, job["commit"], callbacks)
        # one ref advertisement serves both the lookup and the fetch: with every pull-request ref
        # in it, it can weigh megabytes
        remote.connect(callbacks=callbacks)
        name, sha = _pick_ref(remote.list_heads(connect=False), job["ref"])
        stats = remote.fetch([f"+{name}:{name}"], callbacks=callbacks, depth=1)
        return {
            "ok": True,
            "ref_name": name,
            "commit_sha": sha,
            "received_bytes": stats.received_bytes,
        }
    finally:
        # the caller deletes the clone; a pack file this worker keeps open would keep its space
        repo.free()


def _fetch_commit(
    remote: pygit2.Remote, commit: str, callbacks: pygit2.RemoteCallbacks
) -> dict[str, Any]:
    import pygit2

    try:
        stats = remote.fetch([f"+{commit}:refs/pinned/{commit}"], callbacks=callbacks, depth=1)
    except pygit2.GitError as exc:
        # libgit2 refuses before asking when the server does not advertise fetching by id; a
        # server that does but lacks the commit answers "not our ref" (an ERR packet)
        message = str(exc)
        if "cannot fetch a specific object" in message:
            raise _CommitNotFound(
                f"pinned commit {commit} cannot be fetched: the server does not allow fetching "
                "a commit by id"
            ) from None
        if "unexpected packet" in message or "not our ref" in message:
            raise _CommitNotFound(
                f"pinned commit {commit} is missing from the repository"
            ) from None
        raise
    return {
        "ok": True,
        "ref_name": commit,
        "commit_sha": commit,
        "received_bytes": stats.received_bytes,
    }


class _Guard:
    """The credentials and progress callbacks of one job."""

    def __init__(
        self,
        token: Secret | None,
        url: str,
        soft_deadline: float,
        *,
        policy: AddressPolicy,
        token_withheld: bool = False,
    ) -> None:
        self.token = token
        self.url = url
        self.policy = policy
        self.token_withheld = token_withheld
        self.soft_deadline = soft_deadline
        self.credential_requests = 0
        self.received_bytes = 0

    def callbacks(self) -> pygit2.RemoteCallbacks:
        import pygit2

        # pygit2 calls `credentials` (a credential object is callable too); its stubs want one
        callbacks = pygit2.RemoteCallbacks(credentials=self.credentials)  # type: ignore[arg-type]
        callbacks.transfer_progress = self.transfer_progress  # type: ignore[method-assign]
        # pygit2 decodes server progress text as UTF-8 before any callback sees it, and aborts the
        # clone on bytes it cannot decode; nothing here reads that text
        callbacks.sideband_progress = None  # type: ignore[assignment,method-assign]
        return callbacks

    def credentials(
        self,
        url: str,
        username_from_url: str | None,  # noqa: ARG002 (pygit2's callback signature)
        allowed_types: int,
    ) -> pygit2.UserPass:
        import pygit2
        from pygit2.enums import CredentialType

        self.credential_requests += 1
        if self.token_withheld:
            raise _RefusedCredentials(
                "the server asks for credentials, and GITHUB_TOKEN goes to GitHub's hosts only "
                "(github.com or the SKILLMEAT_GITHUB_*_URL hosts), so none was sent"
            )
        if self.token is None:
            raise _RefusedCredentials("the server asks for credentials and no token is configured")
        if self.credential_requests > 1:
            # a second request means the token was refused; libgit2 would ask 15 times
            raise _RefusedCredentials("the server rejected the token")
        if not self.policy.is_github(url) or _endpoint(url) != _endpoint(self.url):
            raise _RefusedCredentials(
                f"redirected to another host ({urlsplit(url).hostname}), the token was not sent"
            )
        if not allowed_types & CredentialType.USERPASS_PLAINTEXT:
            raise _RefusedCredentials("the server does not accept a token for this URL")
        # the one place the token is revealed: the answer to the URL's own GitHub host
        return pygit2.UserPass(TOKEN_USERNAME, self.token.reveal())

    def transfer_progress(self, stats: pygit2.remotes.TransferProgress) -> None:
        self.received_bytes = stats.received_bytes
        if time.monotonic() > self.soft_deadline:
            # raising is the only way to stop libgit2 from a callback: a return value is ignored
            raise _Deadline()


def _endpoint(url: str) -> tuple[str, int] | None:
    try:
        return url_origin(url).endpoint
    except UrlError:
        return None


def _pick_ref(heads: list[Any], ref: str | None) -> tuple[str, str]:
    oids = {head.name: str(head.oid) for head in heads}
    if ref is None:
        head = next((h for h in heads if h.name == "HEAD"), None)
        if head is None:
            raise _RefNotFound("the remote has no HEAD (is the repository empty?)")
        name = head.symref_target
        if not name or name not in oids:
            raise _RefNotFound("the remote does not say which branch HEAD is; set the source's ref")
    else:
        candidates = (ref, f"refs/heads/{ref}", f"refs/tags/{ref}")
        name = next((c for c in candidates if c in oids and c != "HEAD"), None)
        if name is None:
            raise _RefNotFound(f"the remote has no branch or tag named {ref!r}")
    # an annotated tag is advertised twice: the tag object, then `^{}` with the commit it tags
    return name, oids.get(name + "^{}", oids[name])


def _classify(exc: Exception, guard: _Guard) -> tuple[FailureKind, CloneReason, str]:
    import pygit2

    # none of libgit2's messages was seen quoting a credential; this one never will
    message = redact(str(exc), [guard.token])
    received_bytes = guard.received_bytes
    if isinstance(exc, _Deadline):
        detail = f"time limit reached after {received_bytes} bytes of the pack"
        return _TRANSIENT, CloneReason.TIMEOUT, detail
    if isinstance(exc, _RefusedCredentials):
        return _PERMANENT, CloneReason.AUTH, message
    if isinstance(exc, ForbiddenAddressError):
        return _PERMANENT, CloneReason.FORBIDDEN_ADDRESS, message
    if isinstance(exc, UnresolvedHostError):
        return _TRANSIENT, CloneReason.NETWORK, message
    if isinstance(exc, UrlError):
        return _PERMANENT, CloneReason.NETWORK, f"the URL cannot be used ({message})"
    if isinstance(exc, _RefNotFound):
        return _PERMANENT, CloneReason.REF_NOT_FOUND, message
    if isinstance(exc, _CommitNotFound):
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
