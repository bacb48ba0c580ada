"""The one background HTTP server lifecycle (lib/services/http.py) every threaded server uses."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from skillmeat_pipeline.lib.services.http import BackgroundHTTPServer, ThreadedHTTPServer

WAIT_S = 10.0


class _Handler(BaseHTTPRequestHandler):
    """GET `/` answers at once, `/slow` 0.3 s after it began, `/until-stop` once stop() sets
    `stopping`, `/stuck` when the test releases it (never by itself)."""

    protocol_version = "HTTP/1.1"
    server: ThreadedHTTPServer[_Server]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        owner = self.server.owner
        if self.path == "/slow":
            owner.entered.set()
            time.sleep(0.3)
        elif self.path == "/until-stop":
            if owner.stopping.wait(WAIT_S):
                owner.woke.set()
        elif self.path == "/stuck":
            owner.entered.set()
            owner.release.wait(WAIT_S)
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(BackgroundHTTPServer):
    def __init__(self, **options: float | str) -> None:
        super().__init__(_Handler, name="test-http", **options)  # type: ignore[arg-type]
        self.entered = threading.Event()
        self.woke = threading.Event()
        self.release = threading.Event()


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=WAIT_S).close()
    except ConnectionRefusedError:
        return True
    return False


def test_starts_on_a_free_port_and_stops() -> None:
    server = _Server()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.port
    assert server.start() is server
    try:
        assert server.running and server.port > 0
        assert server.url == server.base_url == f"http://127.0.0.1:{server.port}"
        assert httpx.get(server.url).text == "ok\n"
        with pytest.raises(RuntimeError, match="already started"):
            server.start()
    finally:
        port = server.port
        assert server.stop()
    assert not server.running
    assert _refused(port)
    assert server.stop()  # a second stop does nothing


def test_context_manager_serves_inside_the_block_and_leaves_no_thread() -> None:
    threads = threading.active_count()
    with _Server() as server, httpx.Client() as client:
        # a kept-alive connection: stop() must not wait for the client to close it
        assert client.get(server.url).status_code == 200
        port = server.port
        started = time.monotonic()
    assert time.monotonic() - started < 2
    assert not server.running and _refused(port)
    assert threading.active_count() == threads


def test_an_idle_connection_does_not_hold_stop() -> None:
    server = _Server().start()
    idle = socket.create_connection(("127.0.0.1", server.port))  # never sends a request
    try:
        time.sleep(0.1)  # the handler thread is reading the request line
        started = time.monotonic()
        assert server.stop()
        assert time.monotonic() - started < 2
    finally:
        idle.close()


def test_stopping_wakes_handlers_that_wait_for_it() -> None:
    server = _Server().start()

    def request_until_stop() -> None:
        with contextlib.suppress(httpx.HTTPError):  # the answer may race the connection's end
            httpx.get(f"{server.url}/until-stop", timeout=WAIT_S)

    waiting = threading.Thread(target=request_until_stop)
    waiting.start()
    time.sleep(0.2)
    started = time.monotonic()
    assert server.stop()  # the handler woke up and ended: joined
    assert time.monotonic() - started < 2
    assert server.woke.is_set()
    waiting.join(WAIT_S)


def test_requests_in_progress_get_the_grace_period() -> None:
    with _Server(grace_s=5.0) as server:
        answers: list[int] = []
        request = threading.Thread(
            target=lambda: answers.append(httpx.get(f"{server.url}/slow").status_code)
        )
        request.start()
        assert server.entered.wait(WAIT_S)
    request.join(WAIT_S)
    assert answers == [200]


def test_stop_is_bounded_by_its_timeout_even_when_a_handler_never_ends() -> None:
    server = _Server(stop_timeout_s=0.5).start()

    def request_stuck() -> None:
        with contextlib.suppress(httpx.HTTPError):  # stop() shuts the connection down
            httpx.get(f"{server.url}/stuck", timeout=WAIT_S)

    client = threading.Thread(target=request_stuck)
    client.start()
    try:
        assert server.entered.wait(WAIT_S)
        started = time.monotonic()
        assert server.stop() is False  # the stuck handler is left behind, as a daemon thread
        assert time.monotonic() - started < 1.5
        assert not server.running
    finally:
        server.release.set()
        client.join(WAIT_S)


def test_a_server_on_every_interface_is_reached_over_the_loopback() -> None:
    with _Server(host="0.0.0.0") as server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert httpx.get(server.url).status_code == 200
