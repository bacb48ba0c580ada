"""The git worker subprocess: runs resolve and clone jobs with libgit2, one at a time.

A worker reads one JSON job per line on stdin and answers one JSON line on stdout (`pool.py` starts
workers and sends the jobs). The token reaches it through its stdin and leaves it only as the answer
of a credentials callback for the URL's own host. A worker dies with its parent: a thread waits for
its stdin pipe to hang up, which happens the moment the parent ends (SIGKILL and OOM kills
included), and kills the worker then.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from skillmeat_pipeline.lib.core.addresses import AddressPolicy, UrlError, url_origin
from skillmeat_pipeline.lib.core.secrets import Secret
from skillmeat_pipeline.lib.fetch.git.errors import (
    CommitNotFound,
    Deadline,
    RefNotFound,
    RefusedCredentials,
    classify,
)

if TYPE_CHECKING:
    import pygit2

TOKEN_USERNAME = "x-access-token"
# the last resort of a worker whose parent died and whose stdin watch did not fire: it ends
# itself this long after its job's deadline
_ORPHAN_GRACE_S = 5.0


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
        kind, reason, detail = classify(exc, guard.token, guard.received_bytes)
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
            raise CommitNotFound(
                f"pinned commit {commit} cannot be fetched: the server does not allow fetching "
                "a commit by id"
            ) from None
        if "unexpected packet" in message or "not our ref" in message:
            raise CommitNotFound(f"pinned commit {commit} is missing from the repository") from None
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
            raise RefusedCredentials(
                "the server asks for credentials, and GITHUB_TOKEN goes to GitHub's hosts only "
                "(github.com or the SKILLMEAT_GITHUB_*_URL hosts), so none was sent"
            )
        if self.token is None:
            raise RefusedCredentials("the server asks for credentials and no token is configured")
        if self.credential_requests > 1:
            # a second request means the token was refused; libgit2 would ask 15 times
            raise RefusedCredentials("the server rejected the token")
        if not self.policy.is_github(url) or _endpoint(url) != _endpoint(self.url):
            raise RefusedCredentials(
                f"redirected to another host ({urlsplit(url).hostname}), the token was not sent"
            )
        if not allowed_types & CredentialType.USERPASS_PLAINTEXT:
            raise RefusedCredentials("the server does not accept a token for this URL")
        # the one place the token is revealed: the answer to the URL's own GitHub host
        return pygit2.UserPass(TOKEN_USERNAME, self.token.reveal())

    def transfer_progress(self, stats: pygit2.remotes.TransferProgress) -> None:
        self.received_bytes = stats.received_bytes
        if time.monotonic() > self.soft_deadline:
            # raising is the only way to stop libgit2 from a callback: a return value is ignored
            raise Deadline()


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
            raise RefNotFound("the remote has no HEAD (is the repository empty?)")
        name = head.symref_target
        if not name or name not in oids:
            raise RefNotFound("the remote does not say which branch HEAD is; set the source's ref")
    else:
        candidates = (ref, f"refs/heads/{ref}", f"refs/tags/{ref}")
        name = next((c for c in candidates if c in oids and c != "HEAD"), None)
        if name is None:
            raise RefNotFound(f"the remote has no branch or tag named {ref!r}")
    # an annotated tag is advertised twice: the tag object, then `^{}` with the commit it tags
    return name, oids.get(name + "^{}", oids[name])
