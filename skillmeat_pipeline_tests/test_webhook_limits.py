"""The webhook receiver stays available to signed deliveries while clients misbehave: slow
headers, many connections from one address, bodies nested too deeply to parse. Real sockets on
loopback; 127.0.0.2 plays the attacker, 127.0.0.1 GitHub."""

from __future__ import annotations

import contextlib
import select
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.services.http import client_of
from skillmeat_pipeline.lib.services.webhooks import WebhookReceiver, WebhookServer
from skillmeat_pipeline_tests.test_webhooks import SECRET, WAIT, post, push_payload, sources

ATTACKER = "127.0.0.2"


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[WebhookReceiver]:
    catalog = Catalog.from_url(f"sqlite:///{tmp_path / 'index.sqlite'}")
    catalog.migrate()
    catalog.upsert_sources(sources())
    yield WebhookReceiver(catalog, SECRET)
    catalog.dispose()


def attacker_connection(server: WebhookServer) -> socket.socket:
    sock = socket.create_connection(
        ("127.0.0.1", server.port), timeout=WAIT, source_address=(ATTACKER, 0)
    )
    sock.sendall(b"P")  # the first byte of "POST /webhook HTTP/1.1", the rest never comes
    return sock


def answer_of(sock: socket.socket) -> bytes:
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks)


def test_sixteen_slow_connections_from_one_client_leave_room_for_deliveries(
    receiver: WebhookReceiver,
):
    # a header deadline far away: the slow connections are all still open during the delivery
    with WebhookServer(receiver, header_deadline_s=WAIT * 3) as server:
        attackers = [attacker_connection(server) for _ in range(16)]
        try:
            status, body = post(server.url, push_payload("acme/skills"))
            assert (status, body["status"]) == (202, "accepted")
            # over the per-client limit: answered 503 at once, no thread held for them
            refused: list[bytes] = []
            pending = list(attackers)
            while len(refused) < 12:
                readable, _, _ = select.select(pending, [], [], WAIT)
                assert readable, f"only {len(refused)} of 12 connections were refused"
                for sock in readable:
                    refused.append(answer_of(sock))
                    pending.remove(sock)
            assert all(a.startswith(b"HTTP/1.1 503") for a in refused)
            assert select.select(pending, [], [], 0)[0] == []  # the other 4 are still waited on
        finally:
            for sock in attackers:
                sock.close()
    assert len(receiver.catalog.pending_push_events()) == 1


def test_headers_sent_a_byte_at_a_time_are_cut_off_at_the_header_deadline(
    receiver: WebhookReceiver,
):
    head = b"POST /webhook HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: %s\r\n" % (b"p" * 200) + b"\r\n"
    with (
        WebhookServer(receiver, header_deadline_s=1.0, read_timeout_s=WAIT) as server,
        socket.create_connection(
            ("127.0.0.1", server.port), timeout=WAIT, source_address=(ATTACKER, 0)
        ) as sock,
    ):
        sent = 0
        # one byte every 0.05 s: each read returns well within the read timeout, so only the
        # deadline on the whole head can end it (sending it all would take 12 s)
        while sent < len(head) and not select.select([sock], [], [], 0.05)[0]:
            sock.sendall(head[sent : sent + 1])
            sent += 1
        assert sent < len(head), "the server waited for the whole slow head"
        assert answer_of(sock).startswith(b"HTTP/1.1 408")
        # and the receiver is free for the next delivery
        assert post(server.url, push_payload("acme/skills"))[0] == 202


@pytest.mark.parametrize("nested", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1"])
def test_a_signed_body_nested_too_deeply_is_400(receiver: WebhookReceiver, nested: bytes):
    with WebhookServer(receiver) as server:  # `post` signs the body as GitHub would
        status, body = post(server.url, nested, delivery=str(uuid.uuid4()))
        assert (status, body) == (
            400,
            {"error": "not a GitHub push payload: JSON nested too deeply"},
        )
        # the connection was answered, not dropped, and the server goes on
        assert post(server.url, push_payload("acme/agents"))[0] == 202


def test_clients_are_counted_by_address_and_ipv6_by_64():
    assert client_of(("127.0.0.2", 5000)) == "127.0.0.2"
    assert client_of(("2001:db8:1:2:aaaa::1", 1, 0, 0)) == "2001:db8:1:2::/64"
    assert client_of(("2001:db8:1:2:bbbb::9", 1, 0, 0)) == "2001:db8:1:2::/64"
    assert client_of(("::ffff:10.0.0.7", 1, 0, 0)) == "10.0.0.7"
