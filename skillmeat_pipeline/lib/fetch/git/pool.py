"""The parent side of the git workers: the jobs sent to them and the pool that keeps them warm.

libgit2's own timeouts are idle timeouts, and no callback runs while a server dribbles its ref
advertisement, so the only hard limit is a process killed at the deadline. Every libgit2 network
call therefore runs in a worker subprocess (`worker.py`). Workers are reused between jobs (a fresh
one costs ~90 ms, most of it importing pygit2); a worker that misses its deadline is killed, never
reused. Workers are started with `subprocess`, not `multiprocessing`: forking a threaded process is
unsafe, and a forkserver child re-runs the caller's `__main__` script (~55 ms under the `pytest`
script, ~0.8 s under the `dagster` CLI). The token reaches a worker through its stdin, never argv or
the environment.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from skillmeat_pipeline.lib.core.addresses import AddressPolicy
from skillmeat_pipeline.lib.core.secrets import Secret

# idle workers kept for the next job: at least this many, and as many as ever ran at once (up to
# the cap), so a caller's thread count sizes the pool and no job waits for a new interpreter
_MIN_IDLE_WORKERS = 4
_MAX_IDLE_WORKERS = 32


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


class WorkerLost(Exception):
    """A worker process that could not start or ended in the middle of a job."""


_WORKER_CODE = "from skillmeat_pipeline.lib.fetch.git.worker import _worker_main; _worker_main()"


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
            raise WorkerLost(f"the git worker process cannot start ({exc})") from None

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

    def _lost(self) -> WorkerLost:
        self.close()
        code = self.process.returncode
        return WorkerLost(f"the git worker process ended unexpectedly (exit code {code})")

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


WORKER_POOL = _WorkerPool(_MIN_IDLE_WORKERS, _MAX_IDLE_WORKERS)
atexit.register(WORKER_POOL.close_idle)
