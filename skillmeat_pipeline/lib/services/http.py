"""One lifecycle for every threaded HTTP server: a `ThreadingHTTPServer` on a daemon thread.

The metrics server, the webhook receiver, the git test server and the GitHub emulator all start
and stop the same way:

    with MetricsServer(port=0) as server:  # start(): bind host:port (0: any free port), serve
        httpx.get(server.url)
    # stop(): stop accepting; requests in progress get `grace_s` to finish, then their connections
    # are shut down and every thread is joined, all within `stop_timeout_s`

Each request runs on its own daemon thread. The server knows its open connections and handler
threads, so `stop()` can wake a handler blocked on a keep-alive connection (or on a client that
went away) instead of waiting for its socket timeout, and never blocks past its deadline.

A server facing the internet also bounds what one client can hold (`ConnectionLimits`): at most
`max_connections` at once and `max_per_client` from one address (an IPv6 /64 counts as one), the
others answered 503 at once; and with `BoundedRequestHandler`, a request line and headers that do
not arrive within `header_deadline_s` in all (one byte every few seconds never ends otherwise)
end the connection with a 408.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import logging
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

if TYPE_CHECKING:
    from socketserver import _RequestType

logger = logging.getLogger(__name__)

DEFAULT_STOP_TIMEOUT_S = 10.0
# addresses that mean "every interface": a client connects to the loopback address instead
_WILDCARD_HOSTS = ("", "0.0.0.0", "::")

_Owner = TypeVar("_Owner", bound="BackgroundHTTPServer")

_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_TOO_SLOW = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What clients may hold of a server: connections in all and from one address, and time.

    `read_timeout_s` bounds every wait for the client; `header_deadline_s` the whole request line
    and headers (`BoundedRequestHandler`). None: no limit.
    """

    max_connections: int | None = None
    max_per_client: int | None = None
    read_timeout_s: float | None = None
    header_deadline_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_per_client", "read_timeout_s", "header_deadline_s"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be more than zero, got {value!r}")


def client_of(address: Any) -> str:
    """Who a connection counts against: its IP address, or the /64 of an IPv6 address (one
    machine commonly holds a whole /64)."""
    host = str(address[0]) if isinstance(address, tuple) and address else str(address)
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped or ip) if ip.version == 6 else str(ip)


class ThreadedHTTPServer(ThreadingHTTPServer, Generic[_Owner]):
    """A `ThreadingHTTPServer` that keeps track of its open connections and handler threads.

    `owner` is the `BackgroundHTTPServer` it serves for; a handler reaches it as
    `self.server.owner`.
    """

    daemon_threads = True  # a handler still stuck after stop() cannot keep the process alive
    block_on_close = False  # stop() joins the handler threads itself, within its deadline

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        owner: _Owner,
    ) -> None:
        self.owner = owner
        self._tracked_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._handler_threads: set[threading.Thread] = set()
        self._per_client: Counter[str] = Counter()
        super().__init__(address, handler)

    def process_request(self, request: _RequestType, client_address: Any) -> None:
        limits = self.owner.limits
        client = client_of(client_address)
        with self._tracked_lock:
            busy = (
                limits.max_connections is not None
                and len(self._handler_threads) >= limits.max_connections
            ) or (
                limits.max_per_client is not None
                and self._per_client[client] >= limits.max_per_client
            )
            if not busy:
                thread = threading.Thread(
                    target=self.process_request_thread,
                    args=(request, client_address),
                    name=f"{self.owner.name}-request",
                    daemon=True,
                )
                if isinstance(request, socket.socket):
                    self._connections.add(request)
                self._handler_threads.add(thread)
                self._per_client[client] += 1
        if busy:
            # no thread for it: answered at once, so a flood costs no more than its accept()
            logger.debug("%s: refusing a connection from %s (busy)", self.owner.name, client)
            self.refuse(request, _BUSY)
            return
        thread.start()

    def refuse(self, request: _RequestType, answer: bytes) -> None:
        """Answer `answer` (a whole HTTP response) without reading anything, and close."""
        if isinstance(request, socket.socket):
            with contextlib.suppress(OSError):
                request.settimeout(1.0)
                request.sendall(answer)
        self.shutdown_request(request)

    def process_request_thread(self, request: _RequestType, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._tracked_lock:
                self._handler_threads.discard(threading.current_thread())
                client = client_of(client_address)
                self._per_client[client] -= 1
                if self._per_client[client] <= 0:
                    del self._per_client[client]

    def shutdown_request(self, request: _RequestType) -> None:
        with self._tracked_lock:
            if isinstance(request, socket.socket):
                self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut every open connection down: a handler blocked reading or writing wakes up."""
        with self._tracked_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def join_handlers(self, deadline: float) -> bool:
        """Wait until every handler thread ended or `deadline` (monotonic) passed; True if all."""
        with self._tracked_lock:
            threads = [t for t in self._handler_threads if t.ident is not None]
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads)


class _DeadlineReader(io.RawIOBase):
    """The socket's input for a `BufferedReader`: each wait at most `timeout_s`, and none past
    `deadline` (monotonic; None: no deadline)."""

    def __init__(self, sock: socket.socket, timeout_s: float | None) -> None:
        super().__init__()
        self._sock = sock
        self._timeout_s = timeout_s
        self.deadline: float | None = None
        self.expired = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        timeout = self._timeout_s
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                self.expired = True
                raise TimeoutError("the client's deadline passed")
            timeout = left if timeout is None else min(timeout, left)
        self._sock.settimeout(timeout)
        try:
            return self._sock.recv_into(buffer)
        except TimeoutError:
            self.expired = self.deadline is not None and time.monotonic() >= self.deadline
            raise
        finally:
            # writes wait as long as any read may
            self._sock.settimeout(self._timeout_s)


class BoundedRequestHandler(BaseHTTPRequestHandler):
    """A handler that enforces its server's `ConnectionLimits` on reading.

    The request line and headers must arrive within `header_deadline_s`, else the connection ends
    with a 408; `read_deadline(seconds)` puts the same kind of bound on reading a body.
    """

    server: ThreadedHTTPServer[Any]

    def setup(self) -> None:
        super().setup()
        limits = self.server.owner.limits
        # StreamRequestHandler's reader waits forever or `timeout` per read; this one also stops
        # at a deadline for the whole request head
        self.rfile.close()
        self._input = _DeadlineReader(self.connection, limits.read_timeout_s)
        self.rfile = io.BufferedReader(self._input)
        self.connection.settimeout(limits.read_timeout_s)

    def handle_one_request(self) -> None:
        deadline_s = self.server.owner.limits.header_deadline_s
        self._input.expired = False
        self._input.deadline = None if deadline_s is None else time.monotonic() + deadline_s
        super().handle_one_request()
        if self._input.expired and self.close_connection:
            # `handle_one_request` gave up on the request; tell the client why
            logger.debug(
                "%s: request head too slow from %s", self.server.owner.name, self.client_address
            )
            with contextlib.suppress(OSError):
                self.connection.sendall(_TOO_SLOW)

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        self._input.deadline = None  # the head is read; a body gets its own bound
        return parsed

    def read_deadline(self, seconds: float | None) -> None:
        """Reads from now on stop (TimeoutError) `seconds` from now; None: no deadline."""
        self._input.expired = False
        self._input.deadline = None if seconds is None else time.monotonic() + seconds


class BackgroundHTTPServer:
    """`handler` served on `host:port` by a daemon thread; a context manager.

    `port=0` binds a free port (see `.port`). `stop()` (or `close()`) is bounded by
    `stop_timeout_s`: accepting stops at once, requests in progress get `grace_s` to finish, then
    their connections are shut down and every thread is joined. `stopping` is set once no new
    request can arrive, for handlers that wait on something. Subclasses choose the handler, may set
    `server_class` (a `ThreadedHTTPServer` subclass) and override `url`.
    """

    server_class: type[ThreadedHTTPServer[Any]] = ThreadedHTTPServer

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "http-server",
        poll_interval_s: float = 0.05,
        grace_s: float = 0.0,
        stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S,
        limits: ConnectionLimits | None = None,
    ) -> None:
        if grace_s < 0 or stop_timeout_s <= 0:
            raise ValueError("grace_s must be >= 0 and stop_timeout_s > 0")
        self.limits = limits or ConnectionLimits()
        self.handler = handler
        self.host = host
        self.requested_port = port
        self.name = name
        self.poll_interval_s = poll_interval_s
        self.grace_s = grace_s
        self.stop_timeout_s = max(stop_timeout_s, grace_s)
        self.stopping = threading.Event()
        self._httpd: ThreadedHTTPServer[Any] | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._httpd is not None:
            raise RuntimeError(f"{self.name} already started")
        self.stopping.clear()
        httpd = self.server_class((self.host, self.requested_port), self.handler, self)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": self.poll_interval_s},
            name=f"{self.name}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout_s: float | None = None) -> bool:
        """Stop serving within `timeout_s` (default `stop_timeout_s`); True if every thread ended.

        A second call, or a call before `start()`, does nothing.
        """
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return True
        deadline = time.monotonic() + (self.stop_timeout_s if timeout_s is None else timeout_s)
        # shutdown() waits for the accept loop, which notices within poll_interval_s; bounded
        # anyway, by a helper thread
        stopper = threading.Thread(target=httpd.shutdown, name=f"{self.name}-stop", daemon=True)
        stopper.start()
        stopper.join(max(0.0, deadline - time.monotonic()))
        thread.join(max(0.0, deadline - time.monotonic()))
        self.stopping.set()
        if self.grace_s:
            httpd.join_handlers(min(deadline, time.monotonic() + self.grace_s))
        httpd.close_connections()
        finished = httpd.join_handlers(deadline) and not thread.is_alive()
        httpd.server_close()
        self._httpd = self._thread = None
        if not finished:
            logger.warning(
                "%s: threads still running %.1f s after stop() began; left behind (daemon)",
                self.name,
                self.stop_timeout_s if timeout_s is None else timeout_s,
            )
        return finished

    def close(self) -> None:
        """`stop()`, under the name `contextlib.closing` and file-like objects use."""
        self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def port(self) -> int:
        """The bound port (the free one chosen for `port=0`)."""
        if self._httpd is None:
            raise RuntimeError(f"{self.name} is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """`http://host:port`; a server on every interface is reached over the loopback."""
        host = "127.0.0.1" if self.host in _WILDCARD_HOSTS else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """Where clients send requests; subclasses add their path."""
        return self.base_url
