"""The local git smart-HTTP server: real `git http-backend`, real libgit2 clients, real sockets."""

from __future__ import annotations

import base64
import http.client
import os
import socket
import threading
import time
from pathlib import Path

import pygit2
import pytest

from skillmeat_pipeline.testing.git_server import (
    Fault,
    GitHttpServer,
    RequestRecord,
    add_repository,
    closed_port,
    peak_concurrency,
    silent_port,
)
from skillmeat_pipeline_tests.conftest import corpus_dir

# served by the `git_server` fixture
OFFICIAL = "anthropics/claude-plugins-official"
SMALL = "microsoft/playwright-mcp"

REFS_PATH = "/{}.git/info/refs?service=git-upload-pack"


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _get(
    server: GitHttpServer, path: str, headers: dict[str, str] | None = None
) -> tuple[http.client.HTTPResponse, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", path, headers=headers or {})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response, body


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_serves_a_shallow_bare_clone_and_logs_each_request(
    git_server: GitHttpServer, git_server_root: Path, tmp_path: Path
) -> None:
    repo = pygit2.clone_repository(
        git_server.url_for(SMALL), str(tmp_path / "clone"), bare=True, depth=1
    )
    source = pygit2.Repository(str(git_server_root / f"{SMALL}.git"))
    assert repo.is_shallow
    assert repo.head.target == source.head.target
    repo.free()
    git_server.stop()  # joins every handler: the log is complete

    records = git_server.requests(SMALL)
    assert [r.method for r in records] == ["GET", "POST", "POST"]
    assert records[0].path == REFS_PATH.format(SMALL)
    assert all(r.status == 200 and r.bytes_sent > 0 for r in records)
    assert all(r.started <= r.ended and not r.had_authorization for r in records)
    # the last POST carries the pack: the whole repository at depth 1
    assert records[-1].bytes_sent > 50_000
    assert git_server.requests("someone/else") == []


def test_bodies_are_chunked_or_sized_on_a_kept_alive_connection(
    git_server: GitHttpServer,
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", git_server.port, timeout=10)
    connection.request("GET", REFS_PATH.format(SMALL))
    refs = connection.getresponse()
    advertisement = refs.read()
    first_socket = connection.sock
    connection.request("GET", "/not-a-repository")
    missing = connection.getresponse()
    missing.read()
    second_socket = connection.sock
    connection.close()

    assert refs.status == 200
    assert refs.getheader("Transfer-Encoding") == "chunked"
    assert advertisement.startswith(b"001e# service=git-upload-pack\n0000")
    assert missing.status == 404
    assert missing.getheader("Content-Length") is not None
    assert first_socket is second_socket


def test_token_auth_challenges_then_accepts_only_the_right_basic_token(
    git_server_root: Path,
) -> None:
    with GitHttpServer(git_server_root, token="right-token") as server:
        path = REFS_PATH.format(SMALL)
        challenged, _ = _get(server, path)
        wrong, _ = _get(server, path, {"Authorization": _basic("x-access-token", "wrong")})
        wrong_user, _ = _get(server, path, {"Authorization": _basic("someone", "right-token")})
        accepted, body = _get(
            server, path, {"Authorization": _basic("x-access-token", "right-token")}
        )
    assert challenged.status == 401
    assert challenged.getheader("WWW-Authenticate").startswith("Basic ")
    assert (wrong.status, wrong_user.status, accepted.status) == (401, 401, 200)
    assert b"refs/heads/main" in body
    assert [r.had_authorization for r in server.requests()] == [False, True, True, True]


@pytest.mark.parametrize(("fault", "status"), [(Fault.NOT_FOUND, 404), (Fault.SERVER_ERROR, 500)])
def test_status_faults_apply_to_one_repository_until_cleared(
    git_server: GitHttpServer, fault: Fault, status: int
) -> None:
    git_server.set_fault(SMALL, fault)
    faulted, _ = _get(git_server, REFS_PATH.format(SMALL))
    other, _ = _get(git_server, REFS_PATH.format(OFFICIAL))
    git_server.set_fault(SMALL, None)
    restored, _ = _get(git_server, REFS_PATH.format(SMALL))
    assert (faulted.status, other.status, restored.status) == (status, 200, 200)


def test_slow_fault_paces_the_body(git_server: GitHttpServer) -> None:
    rate = 4_000
    git_server.set_fault(SMALL, Fault.SLOW, bytes_per_second=rate)
    started = time.monotonic()
    response, body = _get(git_server, REFS_PATH.format(SMALL))
    elapsed = time.monotonic() - started
    assert response.status == 200
    assert b"refs/heads/main" in body
    assert elapsed >= 0.9 * len(body) / rate


def test_trickle_never_ends_the_advertisement_and_overlaps_other_requests(
    git_server: GitHttpServer,
) -> None:
    git_server.set_fault(SMALL, Fault.TRICKLE_FOREVER, bytes_per_second=50_000)
    trickling = http.client.HTTPConnection("127.0.0.1", git_server.port, timeout=10)
    trickling.request("GET", REFS_PATH.format(SMALL))
    response = trickling.getresponse()
    received = b""
    while received.count(b"refs/trickle/") < 20:
        received += response.read1(4096)
    # a second request is answered while the first is still trickling
    other, _ = _get(git_server, REFS_PATH.format(OFFICIAL))
    stop_started = time.monotonic()
    git_server.stop()
    stop_took = time.monotonic() - stop_started
    trickling.close()

    assert other.status == 200
    assert b"refs/heads/main" in received
    assert stop_took < 2
    endless, answered = git_server.requests(SMALL)[0], git_server.requests(OFFICIAL)[0]
    assert endless.started < answered.started < answered.ended < endless.ended
    assert endless.bytes_sent >= len(received)
    assert peak_concurrency([endless, answered]) == 2


def test_silent_fault_never_answers_and_the_server_still_stops(git_server: GitHttpServer) -> None:
    git_server.set_fault(SMALL, Fault.SILENT)
    with socket.create_connection(("127.0.0.1", git_server.port), timeout=10) as client:
        client.sendall(f"GET {REFS_PATH.format(SMALL)} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        client.settimeout(1.0)
        with pytest.raises(TimeoutError):
            client.recv(1)
        stop_started = time.monotonic()
        git_server.stop()
        assert time.monotonic() - stop_started < 2
        client.settimeout(10)
        assert client.recv(1) == b""
    [record] = git_server.requests(SMALL)
    assert record.status is None
    assert record.bytes_sent == 0


def test_stop_closes_idle_connections_and_leaves_no_thread_or_socket(
    git_server_root: Path,
) -> None:
    threads, fds = threading.active_count(), _open_fds()
    server = GitHttpServer(git_server_root).start()
    port = server.port
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    client.request("GET", REFS_PATH.format(SMALL))
    client.getresponse().read()
    # the client keeps its connection open: stop() must not wait for the 30 s idle timeout
    stop_started = time.monotonic()
    server.stop()
    assert time.monotonic() - stop_started < 2
    client.close()

    assert threading.active_count() == threads
    assert _open_fds() == fds
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_closed_port_refuses_and_silent_port_accepts_without_answering() -> None:
    with closed_port() as port, pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    with silent_port() as port, socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        c.settimeout(0.5)
        with pytest.raises(TimeoutError):
            c.recv(1)


def test_add_repository_serves_a_bundle(tmp_path: Path) -> None:
    bundle = corpus_dir() / "microsoft+playwright-mcp.bundle"
    target = add_repository(tmp_path, "owner/name", bundle)
    assert target == tmp_path / "owner" / "name.git"
    with GitHttpServer(tmp_path) as server:
        assert server.url_for("owner/name.git") == server.url_for("/owner/name")
        response, body = _get(server, REFS_PATH.format("owner/name"))
    assert response.status == 200
    assert b"refs/heads/main" in body
    with pytest.raises(ValueError, match="owner/repo"):
        add_repository(tmp_path, "../escape", bundle)


def _record(started: float, ended: float) -> RequestRecord:
    return RequestRecord("GET", "/", None, 200, 0, started, ended, False)


def test_peak_concurrency_counts_overlapping_requests_only() -> None:
    assert peak_concurrency([]) == 0
    assert peak_concurrency([_record(0, 1), _record(1, 2)]) == 1  # touching, not overlapping
    assert peak_concurrency([_record(0, 3), _record(1, 2), _record(1.5, 4), _record(5, 6)]) == 3
