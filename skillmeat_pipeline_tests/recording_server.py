"""A listener on 127.0.0.1 that answers every request alike and records what was sent to it.

It stands in for "another host": a git URL of a stranger's choosing, or the target of a redirect.
By default it answers 401 with a Basic challenge, the answer that makes a git client offer
credentials.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from skillmeat_pipeline.lib.services.http import BackgroundHTTPServer


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # lowercase names


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: object

    def _answer(self) -> None:
        owner: RecordingServer = self.server.owner  # type: ignore[attr-defined]
        owner.record(
            Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
        )
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 1 << 20))
        body = b"authentication required\n"
        self.send_response(owner.status)
        self.send_header("WWW-Authenticate", 'Basic realm="other-host"')
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


class RecordingServer(BackgroundHTTPServer):
    """Every request answered with `status`; `requests()` lists them with their headers."""

    def __init__(self, status: int = 401) -> None:
        super().__init__(_Handler, name="recording-server")
        self.status = status
        self._lock = threading.Lock()
        self._requests: list[Recorded] = []

    def record(self, request: Recorded) -> None:
        with self._lock:
            self._requests.append(request)

    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def authorizations(self) -> list[str]:
        """Every `Authorization` header it was sent (what must stay empty)."""
        return [r.headers["authorization"] for r in self.requests() if "authorization" in r.headers]
