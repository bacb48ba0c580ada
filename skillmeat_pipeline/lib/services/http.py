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
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
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
        super().__init__(address, handler)

    def process_request(self, request: _RequestType, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"{self.owner.name}-request",
            daemon=True,
        )
        with self._tracked_lock:
            if isinstance(request, socket.socket):
                self._connections.add(request)
            self._handler_threads.add(thread)
        thread.start()

    def process_request_thread(self, request: _RequestType, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._tracked_lock:
                self._handler_threads.discard(threading.current_thread())

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
    ) -> None:
        if grace_s < 0 or stop_timeout_s <= 0:
            raise ValueError("grace_s must be >= 0 and stop_timeout_s > 0")
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
