"""A local git smart-HTTP server for tests, benchmarks and the demo.

`git http-backend` runs as a CGI program behind a `ThreadingHTTPServer` that speaks HTTP/1.1 with
chunked or Content-Length bodies: libgit2 cannot read a body that ends when the connection closes
(the stock `python -m dulwich.web` fails for that reason). Repositories live at
`root/<owner>/<repo>.git` and are served at `/<owner>/<repo>.git`.

    with GitHttpServer(root) as server:
        url = server.url_for("owner/repo")

Faults can be switched on per repository while the server runs (see `Fault`), and every request is
logged with its timing so tests can assert on what a client really did.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skillmeat_pipeline.lib.services.http import BackgroundHTTPServer, ThreadedHTTPServer

if TYPE_CHECKING:
    from socketserver import _RequestType


logger = logging.getLogger(__name__)

TOKEN_USERNAME = "x-access-token"
_CHUNK = 64 * 1024
# pacing granularity of slow and trickling responses
_TICK_S = 0.05
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only


class Fault(StrEnum):
    """How the server misbehaves for one repository."""

    SLOW = "slow"  # every response body at `bytes_per_second`
    # paced like SLOW, and the ref advertisement never ends: the real refs, then made-up ones,
    # until the server stops; libgit2 runs no callback during ref discovery, so only a kill helps
    TRICKLE_FOREVER = "trickle_forever"
    SILENT = "silent"  # read the request, never answer
    DROP_MID_PACK = "drop_mid_pack"  # send half of the pack, then close the connection
    NOT_FOUND = "404"
    SERVER_ERROR = "500"
    # read the request, then wait for `release()` (or the hold limit, or stop) before serving it
    # normally: a test knows its client is mid-request (`wait_held`) and decides when it goes on
    HOLD = "hold"


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One HTTP request as the server saw it. Times are `time.monotonic()` of this process."""

    method: str
    path: str
    repo: str | None
    status: int | None  # None: no status line was sent (a silent fault)
    bytes_sent: int  # response body bytes, without chunk framing
    started: float
    ended: float
    had_authorization: bool


def peak_concurrency(records: Iterable[RequestRecord]) -> int:
    """The largest number of requests that were in progress at the same moment."""
    # at equal times an end (-1) sorts before a start (+1): touching requests do not overlap
    events = sorted([(r.started, 1) for r in records] + [(r.ended, -1) for r in records])
    peak = current = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


@dataclass(slots=True)
class _FaultSetting:
    fault: Fault
    bytes_per_second: int
    method: str | None  # only requests with this method misbehave ("POST": the pack, not refs)
    times: int | None  # how many more requests misbehave; None: until cleared


class _Server(ThreadedHTTPServer["GitHttpServer"]):
    def handle_error(self, request: _RequestType, client_address: Any) -> None:  # noqa: ARG002
        # a client that went away (killed, timed out) is routine here; anything else is a bug
        if isinstance(sys.exc_info()[1], OSError):
            logger.debug("git test server: client %s went away", client_address)
        else:
            logger.error("git test server: request from %s failed", client_address, exc_info=True)


class GitHttpServer(BackgroundHTTPServer):
    """Smart-HTTP server over `root`, bound to 127.0.0.1 on an ephemeral port.

    `token`: when set, every request needs Basic `x-access-token:<token>`; others get a 401 with
    `WWW-Authenticate: Basic`. `hold_limit_s` bounds how long a silent or trickling request is held,
    `idle_timeout_s` how long a connection may sit idle between requests. `stop()` ends held
    requests and idle connections at once and joins every handler: the request log is complete.
    """

    server_class = _Server

    def __init__(
        self,
        root: str | Path,
        *,
        token: str | None = None,
        hold_limit_s: float = 120.0,
        idle_timeout_s: float = 30.0,
    ) -> None:
        super().__init__(_Handler, host="127.0.0.1", port=0, name="git-http-server")
        self.root = Path(root)
        self.token = token
        self.hold_limit_s = hold_limit_s
        self.idle_timeout_s = idle_timeout_s
        self._faults: dict[str, _FaultSetting] = {}
        self._log: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._held = threading.Condition(self._lock)
        self._holding: dict[str, int] = {}  # requests held now, by repository
        self._released: dict[str, threading.Event] = {}

    # -- addresses -------------------------------------------------------------------------------

    def url_for(self, slug: str) -> str:
        """Clone URL of `owner/repo` (with or without `.git`)."""
        return f"{self.base_url}/{_normalise_slug(slug)}.git"

    # -- faults and log --------------------------------------------------------------------------

    def set_fault(
        self,
        slug: str,
        fault: Fault | str | None,
        *,
        bytes_per_second: int = 20_000,
        method: str | None = None,
        times: int | None = None,
    ) -> None:
        """Make `owner/repo` misbehave from the next request on; `None` restores normal service.

        `method` limits the fault to requests with that method; `times` to that many requests.
        """
        key = _normalise_slug(slug)
        with self._lock:
            if fault is None:
                self._faults.pop(key, None)
            else:
                if bytes_per_second < 1:
                    raise ValueError("bytes_per_second must be at least 1")
                if times is not None and times < 1:
                    raise ValueError("times must be at least 1")
                self._faults[key] = _FaultSetting(Fault(fault), bytes_per_second, method, times)
                if Fault(fault) is Fault.HOLD:
                    self._released.pop(key, None)  # a new hold waits for a new release

    def _fault_for(self, slug: str | None, method: str) -> _FaultSetting | None:
        if slug is None:
            return None
        with self._lock:
            setting = self._faults.get(slug)
            if setting is None or setting.method not in (None, method):
                return None
            if setting.times is not None:
                setting.times -= 1
                if setting.times == 0:
                    del self._faults[slug]
            return setting

    def wait_held(self, slug: str, timeout_s: float) -> bool:
        """Wait until a request for `owner/repo` is held by a `HOLD` fault; False on timeout."""
        key = _normalise_slug(slug)
        with self._held:
            return self._held.wait_for(lambda: self._holding.get(key, 0) > 0, timeout_s)

    def release(self, slug: str) -> None:
        """Let the held requests of `owner/repo` go on (and any held later, until the next
        `set_fault(..., Fault.HOLD)`)."""
        key = _normalise_slug(slug)
        with self._lock:
            self._released.setdefault(key, threading.Event()).set()

    def _hold(self, slug: str) -> None:
        with self._held:
            released = self._released.setdefault(slug, threading.Event())
            self._holding[slug] = self._holding.get(slug, 0) + 1
            self._held.notify_all()
        try:
            give_up_at = time.monotonic() + self.hold_limit_s
            while not released.wait(_TICK_S):
                if self.stopping.is_set() or time.monotonic() > give_up_at:
                    break
        finally:
            with self._lock:
                self._holding[slug] -= 1

    def requests(self, slug: str | None = None) -> list[RequestRecord]:
        """Finished requests, oldest first; only those for `owner/repo` when given.

        A request is logged when its handler ends, which can be just after the client read the
        response: for exact counts, read the log after `stop()`, which waits for every handler.
        """
        with self._lock:
            records = list(self._log)
        if slug is None:
            return records
        key = _normalise_slug(slug)
        return [r for r in records if r.repo == key]

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self._log.append(record)

    def _authorized(self, header: str | None) -> bool:
        if self.token is None:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        username, _, password = decoded.partition(":")
        return username == TOKEN_USERNAME and hmac.compare_digest(
            password.encode(), self.token.encode()
        )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # Nagle + delayed ACK cost ~40 ms per clone
    server: _Server

    def setup(self) -> None:
        super().setup()
        # bounds every read and write, so a vanished client never pins a handler thread
        self.connection.settimeout(self.server.owner.idle_timeout_s)

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("git test server: " + format, *args)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    # -- one request -----------------------------------------------------------------------------

    def _serve(self) -> None:
        owner = self.server.owner
        started = time.monotonic()
        path, _, query = self.path.partition("?")
        repo = _repo_of(path)
        had_authorization = self.headers.get("Authorization") is not None
        self._status: int | None = None
        self._bytes_sent = 0
        try:
            if _QUICKACK is not None:
                # libgit2 writes a POST's headers and body separately without TCP_NODELAY, so its
                # body waits for our ACK of the headers: a delayed ACK costs 40 ms per POST
                self.connection.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            # read the whole request first: answering early would desynchronise a keep-alive stream
            body = self._read_body()
            setting = owner._fault_for(repo, self.command)
            fault = setting.fault if setting else None
            if fault is Fault.HOLD and repo is not None:
                owner._hold(repo)
                setting = fault = None
            if fault is Fault.SILENT:
                owner.stopping.wait(owner.hold_limit_s)
                self.close_connection = True
            elif not owner._authorized(self.headers.get("Authorization")):
                self._send_simple(401, {"WWW-Authenticate": 'Basic realm="git"'})
            elif repo is None or fault is Fault.NOT_FOUND:
                self._send_simple(404)
            elif fault is Fault.SERVER_ERROR:
                self._send_simple(500)
            else:
                self._run_backend(path, query, body, setting)
        except OSError:
            # the client went away (killed, timed out); nothing left to answer
            self.close_connection = True
        finally:
            owner._record(
                RequestRecord(
                    method=self.command,
                    path=self.path,
                    repo=repo,
                    status=self._status,
                    bytes_sent=self._bytes_sent,
                    started=started,
                    ended=time.monotonic(),
                    had_authorization=had_authorization,
                )
            )

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # trailer section ends with an empty line
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_simple(self, status: int, headers: dict[str, str] | None = None) -> None:
        body = f"{status} {self.responses.get(status, ('',))[0]}\n".encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self._status = status
        self.wfile.write(body)
        self._bytes_sent = len(body)

    def _run_backend(
        self, path: str, query: str, body: bytes, setting: _FaultSetting | None
    ) -> None:
        owner = self.server.owner
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(owner.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
        }
        if "HOME" in os.environ:
            env["HOME"] = os.environ["HOME"]
        for header, variable in (
            ("Git-Protocol", "HTTP_GIT_PROTOCOL"),
            ("Content-Encoding", "HTTP_CONTENT_ENCODING"),
        ):
            if self.headers.get(header):
                env[variable] = self.headers[header]
        process = subprocess.Popen(
            ["git", "http-backend"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            assert process.stdin is not None and process.stdout is not None
            # upload-pack reads its whole request before it answers, so this cannot deadlock
            process.stdin.write(body)
            process.stdin.close()
            status, headers = _read_cgi_headers(process.stdout)
            fault = setting.fault if setting else None
            if fault is Fault.DROP_MID_PACK and path.endswith("/git-upload-pack"):
                self._send_then_drop(status, headers, process.stdout.read())
                return
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._status = status
            blocks: Iterable[bytes]
            if fault is Fault.TRICKLE_FOREVER and path.endswith("/info/refs"):
                blocks = _endless_advertisement(process.stdout.read())
            else:
                blocks = _blocks(process.stdout)
            if setting is not None and fault in (Fault.SLOW, Fault.TRICKLE_FOREVER):
                self._send_paced(blocks, setting.bytes_per_second)
            else:
                for block in blocks:
                    self._send_chunk(block)
            self.wfile.write(b"0\r\n\r\n")
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    stream.close()

    def _send_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self._bytes_sent += len(data)

    def _send_paced(self, blocks: Iterable[bytes], bytes_per_second: int) -> None:
        owner = self.server.owner
        per_tick = max(1, int(bytes_per_second * _TICK_S))
        interval = per_tick / bytes_per_second
        give_up_at = time.monotonic() + owner.hold_limit_s
        for block in blocks:
            for offset in range(0, len(block), per_tick):
                if owner.stopping.wait(interval) or time.monotonic() > give_up_at:
                    self.close_connection = True
                    raise ConnectionAbortedError("server stopping or hold limit reached")
                self._send_chunk(block[offset : offset + per_tick])

    def _send_then_drop(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._status = status
        # announce the whole body as one chunk, deliver half: the client sees a torn transfer
        half = body[: len(body) // 2]
        self.wfile.write(b"%x\r\n%s" % (len(body), half))
        self._bytes_sent = len(half)
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)


def _read_cgi_headers(stream) -> tuple[int, list[tuple[str, str]]]:  # type: ignore[no-untyped-def]
    status = 200
    headers: list[tuple[str, str]] = []
    while True:
        line = stream.readline().decode("latin-1").rstrip("\r\n")
        if not line:
            return status, headers
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.split()[0])
        else:
            headers.append((name.strip(), value.strip()))


def _blocks(stream) -> Iterator[bytes]:  # type: ignore[no-untyped-def]
    while block := stream.read1(_CHUNK):
        yield block


def _endless_advertisement(advertisement: bytes) -> Iterator[bytes]:
    # drop the closing flush-pkt and keep announcing refs; a pkt-line stream has no length limit
    body = advertisement.removesuffix(b"0000")
    yield body
    sha = b"1" * 40
    number = 0
    while True:
        number += 1
        line = b"%s refs/trickle/%d\n" % (sha, number)
        yield b"%04x%s" % (len(line) + 4, line)


def _normalise_slug(slug: str) -> str:
    key = slug.strip("/").removesuffix(".git")
    owner, _, name = key.partition("/")
    if not owner or not name or "/" in name or ".." in key:
        raise ValueError(f"repository slug must look like owner/repo, got {slug!r}")
    return key


def _repo_of(path: str) -> str | None:
    parts = path.lstrip("/").split("/")
    if len(parts) < 2 or not parts[1].endswith(".git") or ".." in parts[:2]:
        return None
    return f"{parts[0]}/{parts[1].removesuffix('.git')}"


# -- populating the root --------------------------------------------------------------------------


def add_repository(root: str | Path, slug: str, source: str | Path) -> Path:
    """Serve `source` (a git bundle or a repository) as `owner/repo`: a bare clone in `root`."""
    if shutil.which("git") is None:
        raise RuntimeError("the git command is needed to populate the test server root")
    target = Path(root) / f"{_normalise_slug(slug)}.git"
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["git", "clone", "--quiet", "--bare", str(source), str(target)],
        check=True,
        capture_output=True,
    )
    return target


# -- sockets that misbehave below HTTP -------------------------------------------------------------


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port where every connection is refused.

    The socket stays bound but never listens, so no other process can take the port meanwhile.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never sends a byte.

    The kernel completes the TCP handshake for up to `backlog` clients without `accept()`, so no
    thread is needed; closing the socket resets every queued connection.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]
