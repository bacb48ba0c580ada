"""The GitHub push webhook receiver over real HTTP on loopback, its catalog table on SQLite and
PostgreSQL, the sensor that turns stored events into runs, and the `webhook-server` command."""

from __future__ import annotations

import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from skillmeat_pipeline.defs.automation.sensors import push_events_sensor
from skillmeat_pipeline.defs.index.jobs import BATCH_OP_NAME
from skillmeat_pipeline.defs.resources import CatalogResource
from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.catalog.tables import push_events
from skillmeat_pipeline.lib.core.sources import SourceConfig
from skillmeat_pipeline.lib.services.webhooks import WebhookReceiver, WebhookServer, signature

pytest_plugins = ["skillmeat_pipeline_tests.fixtures_db"]

SECRET = "s3cret-for-tests"
WAIT = 20.0


def push_payload(full_name: str, ref: str = "refs/heads/main", **repository: str) -> bytes:
    return json.dumps(
        {
            "ref": ref,
            "before": "0" * 40,
            "after": "a" * 40,
            "repository": {
                "full_name": full_name,
                "default_branch": "main",
                "clone_url": f"https://github.com/{full_name}.git",
                **repository,
            },
            "commits": [],
        }
    ).encode()


def post(
    url: str,
    body: bytes,
    *,
    event: str = "push",
    delivery: str | None = None,
    secret: str | None = SECRET,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict]:
    parts = http.client.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=WAIT)
    sent = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
    }
    if secret is not None:
        sent["X-Hub-Signature-256"] = signature(secret.encode(), body)
    sent.update(headers or {})
    try:
        connection.request("POST", parts.path, body=body, headers=sent)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def sources() -> list[SourceConfig]:
    return [
        SourceConfig(
            key="acme/skills", url="https://github.com/acme/skills.git", github="acme/skills"
        ),
        SourceConfig(key="acme/skills-beta", url="https://github.com/acme/skills.git", ref="beta"),
        SourceConfig(key="self/hosted", url="https://git.example.com/team/tools.git"),
        SourceConfig(
            key="acme/agents", url="https://github.com/acme/agents.git", github="acme/agents"
        ),
    ]


# -- the catalog table, on both backends ----------------------------------------------------------


@pytest.fixture
def clean_catalog(catalog: Catalog) -> Catalog:
    """The `catalog` fixture (each backend) with no push events left by another test."""
    with catalog.engine.begin() as conn:
        conn.execute(push_events.delete())
    return catalog


def test_push_events_are_stored_once_listed_until_handled(clean_catalog: Catalog):
    catalog = clean_catalog
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert catalog.record_push_event(
        "d-1",
        repository="acme/skills",
        ref="refs/heads/main",
        after_sha="a" * 40,
        source_keys=["b", "a", "a"],
        received_at=at,
    )
    assert not catalog.record_push_event(
        "d-1", repository="acme/other", ref=None, after_sha=None, source_keys=["x"]
    )
    assert catalog.record_push_event(
        "d-2",
        repository="acme/skills",
        ref="refs/heads/main\x00",
        after_sha=None,
        source_keys=["a"],
    )
    first, second = catalog.pending_push_events()
    assert (first.delivery_id, first.source_keys, first.received_at) == ("d-1", ["a", "b"], at)
    assert first.repository == "acme/skills" and first.handled_at is None
    assert second.ref == "refs/heads/main"  # NUL dropped
    assert [e.id for e in catalog.pending_push_events(exclude_ids=[first.id])] == [second.id]
    assert [e.id for e in catalog.pending_push_events(limit=1)] == [first.id]
    assert catalog.mark_push_events_handled([first.id]) == 1
    assert catalog.mark_push_events_handled([first.id]) == 0
    assert [e.id for e in catalog.pending_push_events()] == [second.id]


def test_the_same_delivery_stored_at_once_by_two_receivers_is_stored_once(
    clean_catalog: Catalog,
):
    barrier = threading.Barrier(4)
    results: list[bool] = []

    def store() -> None:
        barrier.wait(WAIT)
        stored = clean_catalog.record_push_event(
            "same", repository="acme/skills", ref=None, after_sha=None, source_keys=["k"]
        )
        results.append(stored)

    threads = [threading.Thread(target=store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert sorted(results) == [False, False, False, True]
    assert len(clean_catalog.pending_push_events()) == 1


def test_indexed_commits_and_locations_skip_removed_sources(clean_catalog: Catalog):
    catalog = clean_catalog
    catalog.upsert_sources(sources())
    catalog.mark_sources_removed(["acme/agents"])
    assert catalog.indexed_commits(["acme/skills", "acme/agents", "nope"]) == {
        "acme/skills": None,
        "acme/agents": None,
        "nope": None,
    }
    assert [s.key for s in catalog.source_locations()] == [
        "acme/skills",
        "acme/skills-beta",
        "self/hosted",
    ]


# -- over HTTP ------------------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[WebhookServer, Catalog]]:
    catalog = Catalog.from_url(f"sqlite:///{tmp_path / 'index.sqlite'}")
    catalog.migrate()
    catalog.upsert_sources(sources())
    receiver = WebhookReceiver(catalog, SECRET, max_body_bytes=64 * 1024)
    try:
        with WebhookServer(receiver) as server:
            yield server, catalog
    finally:
        catalog.dispose()


def sensor_tick(instance: dg.DagsterInstance, catalog: Catalog, cursor: str | None):
    with dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"catalog": CatalogResource(url=str(catalog.engine.url))},
    ) as context:
        return push_events_sensor(context)


def test_signed_push_is_stored_and_the_sensor_requests_exactly_its_source(served):
    server, catalog = served
    delivery = str(uuid.uuid4())
    status, body = post(server.url, push_payload("acme/skills"), delivery=delivery)
    assert (status, body["status"], body["sources"]) == (202, "accepted", ["acme/skills"])
    (event,) = catalog.pending_push_events()
    assert (event.delivery_id, event.source_keys) == (delivery, ["acme/skills"])

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(
            "marketplace_sources", ["self/hosted", "acme/skills", "acme/agents"]
        )
        first = sensor_tick(instance, catalog, None)
        (request,) = first.run_requests
        assert request.run_config["ops"][BATCH_OP_NAME]["config"]["sources"] == ["acme/skills"]
        assert request.tags["skillmeat/trigger"] == "webhook"
        # the event stays pending until the next tick has seen the cursor that requested it
        assert [e.id for e in catalog.pending_push_events()] == [event.id]
        second = sensor_tick(instance, catalog, first.cursor)
        assert second.run_requests == []
        assert catalog.pending_push_events() == []


def test_a_push_to_two_sources_of_one_repository_and_a_self_hosted_url(served):
    server, catalog = served
    status, body = post(server.url, push_payload("acme/skills", ref="refs/heads/beta"))
    assert (status, body["sources"]) == (202, ["acme/skills-beta"])  # only the one on `beta`
    status, body = post(
        server.url,
        push_payload("team/tools", clone_url="https://git.example.com/team/tools.git"),
    )
    assert (status, body["sources"]) == (202, ["self/hosted"])
    status, body = post(server.url, push_payload("acme/skills", ref="refs/heads/feature"))
    assert (status, body["status"]) == (202, "ignored")
    assert len(catalog.pending_push_events()) == 2


def test_bad_or_missing_signature_is_401_and_stores_nothing(served):
    server, catalog = served
    payload = push_payload("acme/skills")
    assert post(server.url, payload, secret="wrong")[0] == 401
    assert post(server.url, payload, secret=None)[0] == 401
    tampered = payload.replace(b"acme/skills", b"acme/agents")
    status, _ = post(
        server.url, tampered, headers={"X-Hub-Signature-256": signature(SECRET.encode(), payload)}
    )
    assert status == 401
    status, _ = post(server.url, payload, headers={"X-Hub-Signature-256": "sha256=\u00e9"})
    assert status == 401
    assert catalog.pending_push_events() == []


def test_unknown_repository_is_404_and_stores_nothing(served):
    server, catalog = served
    status, body = post(server.url, push_payload("someone/else"))
    assert status == 404 and "not a registered source" in body["error"]
    assert catalog.pending_push_events() == []


def test_a_replayed_delivery_is_ignored(served):
    server, catalog = served
    delivery = str(uuid.uuid4())
    assert post(server.url, push_payload("acme/agents"), delivery=delivery)[0] == 202
    status, body = post(server.url, push_payload("acme/agents"), delivery=delivery)
    assert (status, body["status"]) == (200, "duplicate")
    assert len(catalog.pending_push_events()) == 1


def test_other_events_ping_and_malformed_requests(served):
    server, catalog = served
    assert post(server.url, b"{}", event="ping") == (200, {"status": "pong"})
    assert post(server.url, b"{}", event="issues")[1]["status"] == "ignored"
    assert post(server.url, b"not json")[0] == 400
    assert (
        post(server.url, push_payload("acme/skills"), headers={"X-GitHub-Delivery": ""})[0] == 400
    )
    assert post(server.url.replace("/webhook", "/other"), b"{}")[0] == 404
    assert catalog.pending_push_events() == []


def raw_request(server: WebhookServer, head: bytes) -> bytes:
    """Send raw bytes, return what the server answers before it closes the connection."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as sock:
        sock.sendall(head)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_body_size_is_bounded_before_it_is_read(served):
    server, catalog = served
    # announces 100 MB and sends none of it: refused at once, from the headers alone
    answer = raw_request(
        server,
        b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n"
        b"X-GitHub-Event: push\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 413")
    answer = raw_request(server, b"POST /webhook HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 411")
    assert catalog.pending_push_events() == []


# -- the command ----------------------------------------------------------------------------------


def test_webhook_server_command_serves_until_sigterm(tmp_path: Path):
    index_url = f"sqlite:///{tmp_path / 'index.sqlite'}"
    catalog = Catalog.from_url(index_url)
    catalog.migrate()
    catalog.upsert_sources(sources())
    env = {**os.environ, "SKILLMEAT_INDEX_URL": index_url, "SKILLMEAT_WEBHOOK_SECRET": SECRET}
    # the console script pip installed beside this interpreter, as a user runs it
    script = Path(sys.executable).with_name("skillmeat-pipeline")
    command = [str(script), "webhook-server", "--port", "0"]
    missing = {k: v for k, v in env.items() if k != "SKILLMEAT_WEBHOOK_SECRET"}
    refused = subprocess.run(command, env=missing, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "SKILLMEAT_WEBHOOK_SECRET" in refused.stderr

    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60)
        assert ready, "the server did not report its address in time"
        line = process.stdout.readline().decode()
        assert line.startswith("listening on http://127.0.0.1:"), line
        url = line.split()[-1]
        status, _ = post(url, push_payload("acme/skills"))
        assert status == 202
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=WAIT) == 0
        assert process.stdout.read().decode().strip() == "webhook server stopped"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert [e.source_keys for e in catalog.pending_push_events()] == [["acme/skills"]]
    catalog.dispose()
