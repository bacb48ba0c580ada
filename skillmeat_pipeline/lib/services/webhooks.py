"""A receiver for GitHub `push` webhooks: the event-driven way to learn that a source moved.

The receiver only records: an accepted delivery is one row in the catalog's `push_events` table,
and the `push_events_sensor` turns pending rows into index runs. So the receiver needs no Dagster
and no code location, only the catalog database, and a Dagster restart loses no event.

Answers (GitHub shows them under the hook's "Recent deliveries"):

| status | when |
|---|---|
| 202 accepted | a signed push to the indexed ref of one or more sources: stored |
| 200 duplicate | the same `X-GitHub-Delivery` was stored before (a redelivery or a replay) |
| 200 pong | the `ping` GitHub sends when the hook is created |
| 202 ignored | another event type, or a push to a ref no source indexes: nothing stored |
| 400 | no delivery id, or a body that is not a JSON push payload (nested too deeply included) |
| 401 | `X-Hub-Signature-256` missing or wrong: nothing is read from the body |
| 404 | the repository is not a registered source (or a path other than the hook's) |
| 408, 411, 413 | the headers or body came too slowly, had no length, or over `max_body_bytes` |
| 503 | too many connections at once, in all or from one client, or the catalog database is |
|     | unreachable: GitHub can redeliver |

The signature is HMAC-SHA256 of the raw body with the shared secret (`SKILLMEAT_WEBHOOK_SECRET`),
compared in constant time before anything else in the body is looked at.

A client that opens connections and sends its headers a byte at a time holds at most
`max_connections_per_client` of the `max_connections` handler threads, each for at most
`header_deadline_s`: signed deliveries from elsewhere keep being served.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from skillmeat_pipeline.lib.catalog.records import SourceLocation
from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.services.http import (
    BackgroundHTTPServer,
    BoundedRequestHandler,
    ConnectionLimits,
    ThreadedHTTPServer,
)

if TYPE_CHECKING:
    from socketserver import _RequestType

logger = logging.getLogger(__name__)

SECRET_ENV = "SKILLMEAT_WEBHOOK_SECRET"
DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024  # GitHub caps payloads at 25 MB; pushes are far smaller
DEFAULT_PATH = "/webhook"
DEFAULT_MAX_CONNECTIONS = 16
# GitHub sends a delivery at once from one of many addresses: a quarter of the threads is plenty
# for one client, and leaves the rest to everyone else
DEFAULT_MAX_CONNECTIONS_PER_CLIENT = 4
# GitHub sends its headers in one packet; a request head still arriving after this is an attack
DEFAULT_HEADER_DEADLINE_S = 10.0
MAX_DELIVERY_ID_CHARS = 200
_SIGNATURE_PREFIX = "sha256="


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: dict[str, Any] = field(default_factory=dict)


def signature(secret: bytes, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub sends for `body`."""
    return _SIGNATURE_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _normalise_location(url: str) -> str:
    """`https://github.com/Owner/Repo.git` -> `github.com/owner/repo`: no scheme, user, `.git`."""
    text = url.strip().lower()
    if "://" in text:
        text = text.split("://", 1)[1]
    elif "@" in text and ":" in text:  # git@github.com:owner/repo.git
        text = text.replace(":", "/", 1)
    text = text.rsplit("@", 1)[-1] if "@" in text.split("/", 1)[0] else text
    return text.rstrip("/").removesuffix(".git")


def _ref_is_indexed(source: SourceLocation, pushed_ref: str, default_branch: str | None) -> bool:
    if source.ref is None:
        # the default branch; a payload without one cannot be ruled out
        return default_branch is None or pushed_ref == f"refs/heads/{default_branch}"
    return pushed_ref in (source.ref, f"refs/heads/{source.ref}", f"refs/tags/{source.ref}")


class WebhookReceiver:
    """What the HTTP server does with one request, without the HTTP: testable on its own."""

    def __init__(
        self,
        catalog: Catalog,
        secret: str | bytes,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        secret_bytes = secret.encode() if isinstance(secret, str) else secret
        if not secret_bytes:
            raise ValueError(f"the webhook secret is empty: set {SECRET_ENV}")
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be at least 1, got {max_body_bytes}")
        self.catalog = catalog
        self._secret = secret_bytes
        self.max_body_bytes = max_body_bytes

    def handle(self, headers: Mapping[str, str], body: bytes) -> Reply:
        """The answer to a POST of `body` with `headers` (names case-insensitive)."""
        lowered = {name.lower(): value for name, value in headers.items()}
        given = lowered.get("x-hub-signature-256", "")
        expected = signature(self._secret, body)
        # compare bytes: compare_digest refuses str with non-ASCII characters
        if not hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode()):
            return Reply(401, {"error": "missing or invalid X-Hub-Signature-256"})
        event = lowered.get("x-github-event", "")
        delivery = lowered.get("x-github-delivery", "").strip()
        if event == "ping":
            return Reply(200, {"status": "pong"})
        if event != "push":
            return Reply(202, {"status": "ignored", "reason": f"event {event!r} is not handled"})
        if not delivery or len(delivery) > MAX_DELIVERY_ID_CHARS:
            return Reply(400, {"error": "missing or oversized X-GitHub-Delivery"})
        try:
            payload = json.loads(body)
            repository = payload["repository"]
            full_name = repository["full_name"]
            pushed_ref = payload["ref"]
            after = payload.get("after")
            if not isinstance(full_name, str) or not isinstance(pushed_ref, str):
                raise TypeError("repository.full_name and ref must be strings")
        except RecursionError:
            # `[[[[...` deeper than the parser's recursion limit: signed, but not a push payload
            return Reply(400, {"error": "not a GitHub push payload: JSON nested too deeply"})
        except (ValueError, KeyError, TypeError) as exc:
            return Reply(400, {"error": f"not a GitHub push payload: {exc}"})
        default_branch = repository.get("default_branch")
        try:
            matching = self._sources_of(full_name, repository)
            if not matching:
                return Reply(404, {"error": f"repository {full_name} is not a registered source"})
            indexed = [
                s.key
                for s in matching
                if _ref_is_indexed(
                    s, pushed_ref, default_branch if isinstance(default_branch, str) else None
                )
            ]
            if not indexed:
                return Reply(
                    202,
                    {
                        "status": "ignored",
                        "reason": f"no source indexes {pushed_ref} of {full_name}",
                    },
                )
            stored = self.catalog.record_push_event(
                delivery,
                repository=full_name,
                ref=pushed_ref,
                after_sha=after if isinstance(after, str) else None,
                source_keys=indexed,
            )
        except sa.exc.SQLAlchemyError as exc:
            logger.error(
                "webhook delivery %s: the catalog database failed (%s); answering 503 so GitHub "
                "can redeliver it",
                delivery,
                type(exc).__name__,
            )
            return Reply(503, {"error": "the catalog database is unavailable; redeliver later"})
        if not stored:
            return Reply(200, {"status": "duplicate", "delivery": delivery})
        return Reply(202, {"status": "accepted", "delivery": delivery, "sources": sorted(indexed)})

    def _sources_of(self, full_name: str, repository: Mapping[str, Any]) -> list[SourceLocation]:
        name = full_name.lower()
        urls = {
            _normalise_location(value)
            for value in (
                repository.get(k) for k in ("clone_url", "git_url", "ssh_url", "html_url")
            )
            if isinstance(value, str) and value
        }
        return [
            source
            for source in self.catalog.source_locations()
            if (source.github or "").lower() == name or _normalise_location(source.url) in urls
        ]


class _Server(ThreadedHTTPServer["WebhookServer"]):
    def handle_error(self, request: _RequestType, client_address: Any) -> None:  # noqa: ARG002
        logger.warning("webhook server: request from %s failed", client_address, exc_info=True)


class _Handler(BoundedRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("webhook server: " + format, *args)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._reply(Reply(200, {"status": "ok"}))
        else:
            self._reply(Reply(404, {"error": "not found"}))

    def do_POST(self) -> None:
        owner = self.server.owner
        if self.path.split("?", 1)[0] != owner.path:
            self._reply(Reply(404, {"error": "not found"}))
            return
        raw_length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or raw_length is None:
            self._reply(Reply(411, {"error": "a Content-Length is required"}))
            return
        try:
            length = int(raw_length)
            if length < 0:
                raise ValueError(raw_length)
        except ValueError:
            self._reply(Reply(400, {"error": "invalid Content-Length"}))
            return
        if length > owner.receiver.max_body_bytes:
            limit = owner.receiver.max_body_bytes
            self._reply(Reply(413, {"error": f"body over {limit} bytes"}))
            return
        body = self._read_body(length)
        if body is None:
            self._reply(Reply(408, {"error": "the body did not arrive in time"}))
            return
        reply = owner.receiver.handle(dict(self.headers.items()), body)
        logger.info(
            "webhook delivery %s (%s): %d %s",
            self.headers.get("X-GitHub-Delivery", "-"),
            self.headers.get("X-GitHub-Event", "-"),
            reply.status,
            reply.body.get("status") or reply.body.get("error"),
        )
        self._reply(reply)

    def _read_body(self, length: int) -> bytes | None:
        # a client that sends a byte now and then must not hold a thread for long
        self.read_deadline(self.server.owner.body_deadline_s)
        parts: list[bytes] = []
        remaining = length
        while remaining:
            try:
                chunk = self.rfile.read1(min(remaining, 65536))
            except TimeoutError:
                return None
            if not chunk:
                return None
            parts.append(chunk)
            remaining -= len(chunk)
        return b"".join(parts)

    def _reply(self, reply: Reply) -> None:
        data = json.dumps(reply.body).encode() + b"\n"
        # one request a connection: no idle keep-alive connection holds a thread at shutdown
        self.close_connection = True
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)


class WebhookServer(BackgroundHTTPServer):
    """The receiver behind an HTTP/1.1 server (stdlib), for `skillmeat-pipeline webhook-server`.

    `port=0` binds a free port (see `.port`). At most `max_connections` requests are served at
    once, and `max_connections_per_client` from one address; more get a 503. Headers must arrive
    within `header_deadline_s`, a body within `body_deadline_s`, and no read waits longer than
    `read_timeout_s`. Every answer closes its connection. `stop()` stops accepting and lets the
    requests in progress finish (each bounded by those deadlines), then joins every handler thread.
    Behind a reverse proxy every delivery comes from the proxy's address: raise
    `max_connections_per_client` to `max_connections` there.
    """

    server_class = _Server

    def __init__(
        self,
        receiver: WebhookReceiver,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = DEFAULT_PATH,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_connections_per_client: int = DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
        read_timeout_s: float = 10.0,
        header_deadline_s: float = DEFAULT_HEADER_DEADLINE_S,
        body_deadline_s: float = 30.0,
    ) -> None:
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        if body_deadline_s <= 0:
            raise ValueError(f"body_deadline_s must be more than zero, got {body_deadline_s!r}")
        grace_s = header_deadline_s + body_deadline_s
        super().__init__(
            _Handler,
            host=host,
            port=port,
            name="webhook-server",
            grace_s=grace_s,
            stop_timeout_s=grace_s + 5.0,
            limits=ConnectionLimits(
                max_connections=max_connections,
                max_per_client=min(max_connections_per_client, max_connections),
                read_timeout_s=read_timeout_s,
                header_deadline_s=header_deadline_s,
            ),
        )
        self.receiver = receiver
        self.path = path
        self.body_deadline_s = body_deadline_s

    @property
    def url(self) -> str:
        """Where GitHub delivers: the hook's path on this server."""
        return f"{self.base_url}{self.path}"


def secret_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The shared secret from `SKILLMEAT_WEBHOOK_SECRET`; an error that names it when unset."""
    value = (os.environ if environ is None else environ).get(SECRET_ENV, "")
    if not value:
        raise ValueError(
            f"{SECRET_ENV} is not set: give it the secret configured on the GitHub webhook"
        )
    return value
