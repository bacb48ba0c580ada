"""Faults a test injects into the GitHub emulator, per repository: a status on one host (`times`
times, or until cleared), an archive cut in the middle, never ending or replaced by the test's own
bytes, and REST requests redirected elsewhere.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from skillmeat_pipeline.testing.github_replies import (
    DOCS,
    HostKind,
    HttpError,
    Reply,
    Repo,
    StreamFault,
    github_error,
    json_reply,
)


@dataclass(slots=True)
class Fault:
    status: int
    remaining: int | None  # None: until cleared
    host: HostKind
    stream: StreamFault | None = None
    body: bytes | None = None  # archive host: these bytes instead of the archive


class Faults:
    """The faults and redirects injected so far, by lower-case `owner/repo`; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, Fault] = {}
        self._redirects: dict[str, str] = {}

    def inject(self, repo: str, fault: Fault) -> None:
        if (fault.stream is not None or fault.body is not None) and fault.host != "archive":
            raise ValueError("stream faults and bodies are for the archive host")
        with self._lock:
            self._faults[repo.lower()] = fault

    def redirect(self, repo: str, location_base: str) -> None:
        with self._lock:
            self._redirects[repo.lower()] = location_base.rstrip("/")

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._redirects.clear()

    def apply(self, repo: Repo, host: HostKind, path: str) -> Fault | None:
        """Raise the status fault injected for `repo` on `host`; return a stream or body fault."""
        with self._lock:
            location = self._redirects.get(repo.full_name.lower()) if host == "rest" else None
            fault = self._faults.get(repo.full_name.lower())
            if fault is not None and fault.host == host:
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        del self._faults[repo.full_name.lower()]
            else:
                fault = None
        if location is not None:
            reply = json_reply(302, {"message": "Found", "documentation_url": DOCS})
            reply.headers["Location"] = location + path
            raise HttpError(reply)
        if fault is None or fault.stream is not None or fault.body is not None:
            return fault
        if host != "rest":
            raise HttpError(Reply(fault.status, b"Server Error", "text/plain"))
        message = {502: "Server Error", 503: "Service Unavailable"}.get(
            fault.status, "Internal Server Error"
        )
        raise github_error(fault.status, message)
