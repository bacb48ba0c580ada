"""Paged head polling for the push sensor: which sources' heads moved away from their index.

No REST call: a source's head comes from one git ref advertisement (libgit2 `list_heads()`), the
same lookup `clone.resolve_head` makes. A sensor tick has 60 s, so a tick polls one *page* of the
sources under a time budget and the cursor remembers where the next page starts; at 5,000 sources
and 500 a page, every source is looked at once every ten ticks.

`BatchHeadLister` runs one page of lookups in ONE worker subprocess with a bounded thread pool
inside (libgit2 releases the GIL while it waits on the network). `resolve_head` keeps at most four
warm workers, so sixteen parallel lookups through it start and kill a process per lookup (about
90 ms of CPU each); the batch worker starts once per page. The parent kills the worker at the
page deadline: lookups that answered by then count, the others wait for the next cycle. That is
the hard limit a ref advertisement that never ends needs (see pool.py).

"Moved" means: the head differs from the commit the catalog indexed, or the catalog has indexed
none (a source added while no sensor ran gets its first index from whichever sensor sees it
first). The cursor keeps, per source, the head it already requested a run for, so a source whose
run is queued (or failed) is not requested again on every cycle; the entry goes when the index
catches up, and a request is repeated after `retry_after_s`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from skillmeat_pipeline.lib.core.addresses import AddressPolicy
from skillmeat_pipeline.lib.core.retry import FailureKind
from skillmeat_pipeline.lib.core.secrets import Secret
from skillmeat_pipeline.lib.fetch.git.clone import libgit2_status
from skillmeat_pipeline.lib.fetch.git.errors import CloneReason, clone_error
from skillmeat_pipeline.lib.fetch.git.pool import job_line, token_fields
from skillmeat_pipeline.lib.fetch.git.worker import run_job

logger = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 500
DEFAULT_TICK_BUDGET_S = 30.0
DEFAULT_MAX_PARALLEL = 16
DEFAULT_RETRY_AFTER_S = 6 * 3600.0
# a worker whose parent died ends itself this long after the page deadline
_ORPHAN_GRACE_S = 5.0
_CURSOR_VERSION = 1


@dataclass(frozen=True, slots=True)
class HeadQuery:
    """One source to look up: its clone URL, the ref it is indexed at, and the token, which
    goes along only when the URL is on one of GitHub's hosts (SPEC §6.1)."""

    key: str
    url: str
    ref: str | None = None
    token: Secret | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class HeadAnswer:
    """The head commit of one source, or why it could not be listed."""

    key: str
    commit_sha: str | None = None
    error: str | None = None


# (queries, seconds) -> the answers that came within the time; the others are missing
HeadLister = Callable[[Sequence[HeadQuery], float], Mapping[str, HeadAnswer]]
# keys -> the commit the catalog indexed for each (None: never indexed)
IndexedCommits = Callable[[Sequence[str]], Mapping[str, str | None]]


# -- the cursor -----------------------------------------------------------------------------------


@dataclass(slots=True)
class HeadCursor:
    """Where the next page starts, and the heads already requested per source (in flight)."""

    position: int = 0  # index in partition order of the next page's first source
    after: str | None = None  # last source of the previous page: the next page resumes after it
    requested: dict[str, tuple[str, float]] = field(default_factory=dict)  # key -> (sha, when)
    cycles: int = 0  # how many times polling went through every source

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": _CURSOR_VERSION,
                "position": self.position,
                "after": self.after,
                "cycles": self.cycles,
                "requested": {k: [sha, round(at)] for k, (sha, at) in self.requested.items()},
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | None) -> HeadCursor:
        """The cursor `to_json` wrote; a missing or unreadable one starts from the beginning."""
        if not text:
            return cls()
        try:
            data = json.loads(text)
            if data.get("v") != _CURSOR_VERSION:
                raise ValueError(f"cursor version {data.get('v')!r}")
            return cls(
                position=max(0, int(data["position"])),
                after=data.get("after"),
                cycles=int(data.get("cycles", 0)),
                requested={
                    str(k): (str(sha), float(at)) for k, (sha, at) in data["requested"].items()
                },
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.warning("head polling cursor is unreadable (%s); starting from the first", exc)
            return cls()


@dataclass(frozen=True, slots=True)
class PollOutcome:
    """One tick of polling."""

    moved: dict[str, str]  # key -> new head, in partition order: request runs for these
    cursor: HeadCursor
    page: list[str]  # the sources this tick looked at
    failed: dict[str, str]  # key -> why its head could not be listed
    unanswered: list[str]  # sources of the page whose lookup did not finish in the budget
    in_flight: int  # moved sources already requested earlier (not requested again)
    elapsed_s: float
    never_indexed: list[str] = field(default_factory=list)  # of `moved`: their first index


def poll_heads(
    order: Sequence[str],
    queries: Mapping[str, HeadQuery],
    cursor: HeadCursor,
    *,
    lister: HeadLister,
    indexed_commits: IndexedCommits,
    page_size: int = DEFAULT_PAGE_SIZE,
    budget_s: float = DEFAULT_TICK_BUDGET_S,
    retry_after_s: float = DEFAULT_RETRY_AFTER_S,
    now: float | None = None,
) -> PollOutcome:
    """Look up the heads of the next page of `order` (sources in partition order).

    Sources of `order` without a query (not in the sources file) are skipped. The page advances
    also past sources that did not answer in time: a source that hangs must not stop the others.
    """
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, got {page_size}")
    started = time.monotonic()
    now = time.time() if now is None else now
    polled = [key for key in order if key in queries]
    start = cursor.position
    if cursor.after is not None:
        with contextlib.suppress(ValueError):
            start = polled.index(cursor.after) + 1
    if start >= len(polled):
        start = 0
    page = polled[start : start + page_size]
    end = start + len(page)
    wrapped = end >= len(polled)

    answers = lister([queries[key] for key in page], budget_s) if page else {}
    indexed = indexed_commits(page) if page else {}
    # entries of sources no longer polled go; so do stale ones (requested again if still behind)
    live = set(polled)
    requested = {
        key: entry
        for key, entry in cursor.requested.items()
        if key in live and now - entry[1] < retry_after_s
    }
    moved: dict[str, str] = {}
    failed: dict[str, str] = {}
    unanswered: list[str] = []
    never_indexed: list[str] = []
    in_flight = 0
    for key in page:
        answer = answers.get(key)
        if answer is None:
            unanswered.append(key)
            continue
        if answer.commit_sha is None:
            failed[key] = answer.error or "no head"
            continue
        head, indexed_sha = answer.commit_sha, indexed.get(key)
        if head == indexed_sha:
            requested.pop(key, None)
            continue
        previous = requested.get(key)
        if previous is not None and previous[0] == head:
            in_flight += 1
            continue
        moved[key] = head
        requested[key] = (head, now)
        if indexed_sha is None:
            never_indexed.append(key)
    next_cursor = HeadCursor(
        position=0 if wrapped else end,
        after=None if wrapped else (page[-1] if page else None),
        requested=requested,
        cycles=cursor.cycles + (1 if wrapped and page else 0),
    )
    return PollOutcome(
        moved=moved,
        cursor=next_cursor,
        page=page,
        failed=failed,
        unanswered=unanswered,
        in_flight=in_flight,
        elapsed_s=time.monotonic() - started,
        never_indexed=never_indexed,
    )


def request_digest(heads: Mapping[str, str], salt: str = "") -> str:
    """A short stable name of a set of `key@sha` (for run keys)."""
    text = "\n".join(f"{k}@{v}" for k, v in sorted(heads.items())) + "\n" + salt
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- the batched lister ---------------------------------------------------------------------------


_WORKER_CODE = f"from {__name__} import _worker_main; _worker_main()"


class BatchHeadLister:
    """Lists the heads of many sources in one worker subprocess, `max_parallel` at a time.

    Every lookup is bounded by libgit2's connect and idle timeouts; the page as a whole by the
    budget, after which the worker is killed (the hard limit).
    """

    def __init__(
        self,
        *,
        max_parallel: int = DEFAULT_MAX_PARALLEL,
        connect_timeout_s: float = 10.0,
        idle_timeout_s: float = 10.0,
    ) -> None:
        if max_parallel < 1:
            raise ValueError(f"max_parallel must be at least 1, got {max_parallel}")
        self.max_parallel = max_parallel
        self.connect_timeout_s = connect_timeout_s
        self.idle_timeout_s = idle_timeout_s

    def __call__(self, queries: Sequence[HeadQuery], budget_s: float) -> dict[str, HeadAnswer]:
        if not queries:
            return {}
        status = libgit2_status()
        if not status.usable:
            error = f"libgit2 is unusable: {status.problem}"
            return {q.key: HeadAnswer(q.key, error=error) for q in queries}
        deadline = time.monotonic() + budget_s
        policy = AddressPolicy.from_env()
        request = {
            "deadline": deadline,
            "parallel": min(self.max_parallel, len(queries)),
            "connect_timeout_ms": round(min(self.connect_timeout_s, budget_s) * 1000),
            "idle_timeout_ms": round(min(self.idle_timeout_s, budget_s) * 1000),
            # the same rules for every query; each query's token only if its host is GitHub's
            "addresses": policy.to_json(),
            "queries": [
                {"i": i, "url": q.url, "ref": q.ref, **token_fields(q.url, q.token, policy)}
                for i, q in enumerate(queries)
            ],
        }
        answers: dict[str, HeadAnswer] = {}
        # the worker imports what this process would, whatever put this package on the path
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:
            process = subprocess.Popen(
                # -P: a module in the working directory must not shadow pygit2 or this package
                [sys.executable, "-P", "-c", _WORKER_CODE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            error = f"the head lookup worker cannot start ({exc})"
            return {q.key: HeadAnswer(q.key, error=error) for q in queries}
        try:
            assert process.stdin is not None and process.stdout is not None
            # tokens go through the pipe, never argv or the environment
            if _write_all(process.stdin, job_line(request), deadline):
                for reply in _read_lines(process.stdout, deadline, len(queries)):
                    query = queries[reply["i"]]
                    answers[query.key] = _answer(query, reply)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        return answers


def _answer(query: HeadQuery, reply: dict[str, Any]) -> HeadAnswer:
    if reply["ok"]:
        return HeadAnswer(query.key, commit_sha=reply["commit_sha"])
    error = clone_error(
        "resolve",
        query.url,
        FailureKind(reply["kind"]),
        CloneReason(reply["reason"]),
        reply["detail"],
    )
    return HeadAnswer(query.key, error=str(error))


def _write_all(stream: Any, data: bytes, deadline: float) -> bool:
    """Write `data` before `deadline`; False when the time ran out or the worker went away."""
    fd = stream.fileno()
    os.set_blocking(fd, False)
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    view = memoryview(data)
    while view:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(math.ceil(remaining * 1000)):
            return False
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            continue
        except OSError:  # the worker died before it read its request
            return False
        view = view[written:]
    stream.close()  # end of input: the worker reads one request
    return True


def _read_lines(stream: Any, deadline: float, expected: int):  # type: ignore[no-untyped-def]
    """JSON replies, one a line, until `expected` came, the worker ended, or `deadline`."""
    fd = stream.fileno()
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    pending = b""
    count = 0
    while count < expected:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(math.ceil(remaining * 1000)):
            return
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            count += 1
            yield json.loads(line)


def _worker_main() -> None:
    """The worker: one JSON request on stdin, one JSON reply a line on stdout as lookups end."""
    request = json.loads(sys.stdin.buffer.readline())
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    # output that any library prints must not corrupt the reply stream
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    deadline = request["deadline"]
    # default SIGALRM action ends the process: an orphaned worker cannot outlive its page long
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.setitimer(signal.ITIMER_REAL, max(deadline - time.monotonic(), 0) + _ORPHAN_GRACE_S)
    lock = threading.Lock()

    def look_up(query: dict[str, Any]) -> None:
        if time.monotonic() >= deadline:
            return
        job = {
            "op": "resolve",
            "url": query["url"],
            "ref": query["ref"],
            "token": query["token"],
            "token_withheld": query["token_withheld"],
            "addresses": request["addresses"],
            "dest": None,
            "deadline": deadline,
            "soft_deadline": deadline,
            "connect_timeout_ms": request["connect_timeout_ms"],
            "idle_timeout_ms": request["idle_timeout_ms"],
        }
        reply = run_job(job)  # the lookup resolve_head's workers run, ref choice included
        reply["i"] = query["i"]
        line = json.dumps(reply).encode() + b"\n"
        with lock:
            replies.write(line)

    with ThreadPoolExecutor(max_workers=request["parallel"]) as pool:
        list(pool.map(look_up, request["queries"]))
