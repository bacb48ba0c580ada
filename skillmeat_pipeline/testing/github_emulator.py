"""A GitHub REST API and raw-content emulator over a folder of bare repositories.

The folder is laid out `root/<owner>/<repo>.git`, the same folder a git smart-HTTP test server
serves, so a source can be cloned and read over the API from one set of repositories. Trees, SHAs,
modes and bytes come straight from the object databases with pygit2, so the API answers agree with
`snapshot_commit`.

Three loopback servers on ephemeral ports: `api_url` (api.github.com), `raw_url`
(raw.githubusercontent.com, a separate host on GitHub too) and `archive_url` (codeload.github.com,
where `GET /repos/{owner}/{repo}/tarball/{ref}` redirects to: a gzipped tar of the commit below one
folder `{owner}-{repo}-{short sha}`, built the way `git archive` builds it). Rate limits, ETags,
304s, redirects, bad credentials, truncated trees and injected faults (statuses, and for archives a
stream cut in the middle, a stream that never ends, or bytes of the test's own) behave the way
GitHub documents them; every request lands in a thread-safe call log (never with the token).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import io
import json
import logging
import re
import secrets
import socket
import sys
import tarfile
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pygit2

from skillmeat_pipeline.lib.core.models import MODE_GITLINK, MODE_SYMLINK, MODE_TREE
from skillmeat_pipeline.lib.services.http import BackgroundHTTPServer, ThreadedHTTPServer
from skillmeat_pipeline.testing.git_server import add_repository

logger = logging.getLogger(__name__)

HostKind = Literal["rest", "raw", "archive"]
# how an archive answer goes wrong: cut half way through, or trickling for ever
StreamFault = Literal["cut", "endless"]
# request headers: `http.client.HTTPMessage` from a handler, a plain mapping in a test
_Headers = Mapping[str, str] | Message

# GitHub's documented limits for one recursive tree response
GITHUB_TREE_ENTRY_LIMIT = 100_000
GITHUB_TREE_BYTE_LIMIT = 7 * 1024 * 1024
# the contents API inlines files up to 1 MB; larger ones come back with encoding "none"
CONTENTS_INLINE_LIMIT = 1024 * 1024

_DOCS = "https://docs.github.com/rest"
_RATE_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
_JSON = "application/json; charset=utf-8"
_HEX_SHA = re.compile(r"[0-9a-fA-F]{7,40}")
_ARCHIVE_CHUNK = 64 * 1024
# an endless archive sends a little every this many seconds until the client or close() ends it
_TRICKLE_S = 0.05
_TRICKLE_MAX_S = 600.0
_ARCHIVE_CACHE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One request as the emulator saw it. `authenticated` says a token was sent, never which."""

    host: HostKind
    method: str
    path: str
    query: str
    status: int
    counted: bool
    authenticated: bool
    repo: str | None


@dataclass(frozen=True, slots=True)
class _Repo:
    owner: str
    name: str
    path: Path

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def id(self) -> int:
        # stable across runs, so tests and demos can hard-code /repositories/{id} URLs
        return zlib.crc32(self.full_name.lower().encode()) & 0x7FFFFFFF


@dataclass(slots=True)
class _Bucket:
    limit: int
    used: int
    reset_at: float

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


@dataclass(slots=True)
class _Reply:
    status: int
    body: bytes = b""
    content_type: str = _JSON
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    # a body sent as it is produced (chunked), instead of `body`; raising `_Cut` cuts it there
    chunks: Iterator[bytes] | None = None


@dataclass(slots=True)
class _Fault:
    status: int
    remaining: int | None  # None: until cleared
    host: HostKind
    stream: StreamFault | None = None
    body: bytes | None = None  # archive host: these bytes instead of the archive


class _Cut(Exception):
    """Raised by a reply's `chunks` to end the connection without finishing the body."""


class _HttpError(Exception):
    def __init__(self, reply: _Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def _json_reply(status: int, payload: Any, *, etag: bool = True) -> _Reply:
    body = json.dumps(payload, separators=(",", ":")).encode()
    tag = f'W/"{hashlib.sha256(body).hexdigest()}"' if etag and status == 200 else None
    return _Reply(status, body, etag=tag)


def _error(status: int, message: str, docs: str = _DOCS) -> _HttpError:
    payload = {"message": message, "documentation_url": docs, "status": str(status)}
    return _HttpError(_json_reply(status, payload))


def _not_found() -> _HttpError:
    return _error(404, "Not Found", f"{_DOCS}/repos/repos#get-a-repository")


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    # If-None-Match uses weak comparison: W/"x" matches "x"
    wanted = etag.removeprefix("W/")
    return any(part.strip().removeprefix("W/") in (wanted, "*") for part in header.split(","))


def _json_name(obj: pygit2.Object) -> str:
    """A tree entry's name as GitHub's JSON carries it: a byte that is not UTF-8 becomes U+FFFD
    (JSON text is Unicode; the original bytes are lost, so no later request can name the path)."""
    return (obj.raw_name or b"").decode("utf-8", "replace")


def _b64_wrapped(data: bytes) -> str:
    # GitHub wraps base64 content at 60 characters per line
    encoded = base64.b64encode(data).decode()
    return "".join(encoded[i : i + 60] + "\n" for i in range(0, len(encoded), 60))


def _token_of(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        return value.strip()
    return None


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@contextlib.contextmanager
def _open(repo: _Repo) -> Iterator[pygit2.Repository]:
    # one handle per request: pygit2 repositories are not meant to be shared across threads
    git = pygit2.Repository(str(repo.path))
    try:
        yield git
    finally:
        git.free()


def layout_bundle(bundle: str | Path, root: str | Path) -> Path:
    """Clone `owner+repo.bundle` into `root/owner/repo.git` (bare) once and return that path."""
    bundle = Path(bundle)
    owner, sep, name = bundle.stem.partition("+")
    if not sep or not owner or not name:
        raise ValueError(f"{bundle.name}: bundle names must be owner+repo.bundle")
    target = Path(root) / owner / f"{name}.git"
    return target if target.exists() else add_repository(root, f"{owner}/{name}", bundle)


class _Sink:
    """What `tarfile` writes, gzipped at `gzip -n`'s level (what `git archive` pipes it through)
    and collected until the next chunk is sent."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        self._parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        compressed = self._deflate.compress(data)
        self._parts.append(compressed)
        self.size += len(compressed)
        return len(data)

    def take(self, *, last: bool = False) -> bytes:
        if last:
            self._parts.append(self._deflate.flush())
        data = b"".join(self._parts)
        self._parts.clear()
        self.size = 0
        return data


def _member(name: str, kind: bytes, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = mtime
    info.uname = info.gname = "root"
    return info


def _cut_after(data: bytes) -> Iterator[bytes]:
    """`data`, then the connection is cut as if the server went away."""
    for start in range(0, len(data), _ARCHIVE_CHUNK):
        yield data[start : start + _ARCHIVE_CHUNK]
    raise _Cut


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # an idle keep-alive connection must not pin a server thread forever
    timeout = 30
    server: ThreadedHTTPServer[_Host]

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes; Nagle + delayed ACK would add 40 ms to each
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        host = self.server.owner
        host.emulator._handle(self, host.kind)

    def log_message(self, format: str, *args: Any) -> None:
        # the call log is the record; stderr noise would drown test output
        pass


class _Server(ThreadedHTTPServer["_Host"]):
    def handle_error(self, request: Any, client_address: Any) -> None:  # noqa: ARG002
        # a client that stopped reading (an archive it refused, a deadline) is routine here
        if isinstance(sys.exc_info()[1], OSError):
            logger.debug("GitHub emulator: client %s went away", client_address)
        else:
            logger.error("GitHub emulator: request from %s failed", client_address, exc_info=True)


class _Host(BackgroundHTTPServer):
    """One of the emulator's hosts: the REST API, the raw-content host or the archive host."""

    server_class = _Server

    def __init__(self, emulator: GitHubEmulator, kind: HostKind, host: str) -> None:
        # poll_interval_s: how long close() waits for the accept loop to notice
        super().__init__(
            _Handler, host=host, port=0, name=f"github-emulator-{kind}", poll_interval_s=0.01
        )
        self.emulator = emulator
        self.kind: HostKind = kind


class GitHubEmulator:
    """GitHub REST + raw hosts over `root/<owner>/<repo>.git`; use as a context manager.

    `tokens`: when given, any other token gets 401 "Bad credentials"; when None every token is
    accepted (each with its own rate-limit bucket). Requests without a token share the anonymous
    bucket. `private`: `owner/repo` names visible only to authenticated requests (404 otherwise).
    `renames`: old `owner/repo` -> current one; old names answer 301 to `/repositories/{id}/...`.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        git_base_url: str = "https://github.com",
        html_base_url: str = "https://github.com",
        tokens: Collection[str] | None = None,
        rate_limit: int = 5000,
        anonymous_rate_limit: int = 60,
        rate_limit_window_s: float = 3600.0,
        rate_limit_status: int = 403,
        tree_entry_limit: int = GITHUB_TREE_ENTRY_LIMIT,
        tree_byte_limit: int = GITHUB_TREE_BYTE_LIMIT,
        private: Collection[str] = (),
        renames: Mapping[str, str] | None = None,
        delay_s: float = 0.0,
        host: str = "127.0.0.1",
    ) -> None:
        if rate_limit_status not in (403, 429):
            raise ValueError("GitHub answers an exhausted rate limit with 403 or 429")
        self.root = Path(root)
        self.git_base_url = git_base_url.rstrip("/")
        self.html_base_url = html_base_url.rstrip("/")
        self.tree_entry_limit = tree_entry_limit
        self.tree_byte_limit = tree_byte_limit
        self.delay_s = delay_s
        self._tokens = frozenset(tokens) if tokens is not None else None
        self._rate_limit = rate_limit
        self._anonymous_rate_limit = anonymous_rate_limit
        self._window_s = rate_limit_window_s
        self._rate_limit_status = rate_limit_status
        self._private = {name.lower() for name in private}
        self._renames = {old.lower(): new for old, new in (renames or {}).items()}
        self._host = host
        self._lock = threading.Lock()
        self._calls: list[CallRecord] = []
        self._buckets: dict[str | None, _Bucket] = {}
        self._faults: dict[str, _Fault] = {}
        self._redirects: dict[str, str] = {}
        self._secondary: list[tuple[int, int]] = []
        self._closing = threading.Event()
        self._hosts: dict[HostKind, _Host] = {}
        self._in_flight: dict[HostKind, int] = {}
        self._max_in_flight: dict[HostKind, int] = {}
        self._connections: dict[HostKind, set[tuple[str, int]]] = {}
        # signs the archive links of private repositories, like GitHub's short-lived `token=`
        self._archive_key = secrets.token_bytes(16)
        # archives already built, by (repository folder, commit): GitHub caches them too
        self._archives: OrderedDict[tuple[Path, str], bytes] = OrderedDict()

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> GitHubEmulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        if self._hosts:
            return
        self._closing.clear()
        try:
            for kind in ("rest", "raw", "archive"):
                self._hosts[kind] = _Host(self, kind, self._host).start()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        # delayed answers stop waiting; each host ends its keep-alive connections and threads
        self._closing.set()
        for host in self._hosts.values():
            host.stop()
        self._hosts.clear()

    def _url(self, kind: HostKind) -> str:
        host = self._hosts.get(kind)
        if host is None:
            raise RuntimeError("the GitHub emulator is not running; use it as a context manager")
        return host.base_url

    @property
    def api_url(self) -> str:
        return self._url("rest")

    @property
    def raw_url(self) -> str:
        return self._url("raw")

    @property
    def archive_url(self) -> str:
        return self._url("archive")

    # -- what tests look at and control ------------------------------------------------------------

    @property
    def calls(self) -> list[CallRecord]:
        with self._lock:
            return list(self._calls)

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()
            self._max_in_flight.clear()
            self._connections.clear()

    def api_calls(self, *, counted_only: bool = False) -> list[CallRecord]:
        return [c for c in self.calls if c.host == "rest" and (c.counted or not counted_only)]

    def raw_calls(self) -> list[CallRecord]:
        return [c for c in self.calls if c.host == "raw"]

    def archive_calls(self) -> list[CallRecord]:
        """Requests to the archive host (what a tarball request redirects to)."""
        return [c for c in self.calls if c.host == "archive"]

    def max_in_flight(self, host: HostKind) -> int:
        """The most requests `host` was answering at one moment since the last `clear_calls`."""
        with self._lock:
            return self._max_in_flight.get(host, 0)

    def connection_count(self, host: HostKind) -> int:
        """How many client connections (address, port) sent requests to `host`."""
        with self._lock:
            return len(self._connections.get(host, ()))

    def rate_limit_remaining(self, token: str | None = None) -> int:
        with self._lock:
            return self._bucket(token).remaining

    def set_rate_limit(
        self, remaining: int, *, token: str | None = None, reset_in_s: float | None = None
    ) -> None:
        """Put a token's (or the anonymous) bucket at `remaining`, optionally moving its reset."""
        with self._lock:
            bucket = self._bucket(token)
            bucket.used = max(0, bucket.limit - remaining)
            if reset_in_s is not None:
                bucket.reset_at = time.time() + reset_in_s

    def inject_fault(
        self,
        repo: str,
        status: int = 500,
        *,
        times: int | None = None,
        host: HostKind = "rest",
        stream: StreamFault | None = None,
        body: bytes | None = None,
    ) -> None:
        """Answer requests for `repo` on `host` with `status` (`times` times, or until cleared).

        On the archive host, `stream="cut"` sends half of the archive and closes the connection,
        `stream="endless"` sends the start of an archive and then a few bytes at a time for ever
        (until the client goes away or the emulator closes), and `body` is sent instead of the
        archive (a test's own tarball); `status` is ignored then.
        """
        if (stream is not None or body is not None) and host != "archive":
            raise ValueError("stream faults and bodies are for the archive host")
        with self._lock:
            self._faults[repo.lower()] = _Fault(status, times, host, stream, body)

    def inject_secondary_rate_limit(
        self, retry_after_s: int, *, times: int = 1, status: int = 429
    ) -> None:
        """The next `times` REST requests hit GitHub's secondary rate limit (with retry-after)."""
        with self._lock:
            self._secondary.extend([(status, retry_after_s)] * times)

    def redirect_repo(self, repo: str, location_base: str) -> None:
        """REST requests for `repo` answer 302 to `location_base` + the same path (any host)."""
        with self._lock:
            self._redirects[repo.lower()] = location_base.rstrip("/")

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._redirects.clear()
            self._secondary.clear()

    # -- request handling --------------------------------------------------------------------------

    def _handle(self, handler: _Handler, kind: HostKind) -> None:
        with self._lock:
            self._in_flight[kind] = self._in_flight.get(kind, 0) + 1
            self._max_in_flight[kind] = max(self._max_in_flight.get(kind, 0), self._in_flight[kind])
            self._connections.setdefault(kind, set()).add(handler.client_address[:2])
        try:
            self._answer(handler, kind)
        finally:
            with self._lock:
                self._in_flight[kind] -= 1

    def _answer(self, handler: _Handler, kind: HostKind) -> None:
        if self.delay_s:
            # a slow server, not synchronisation: close() cuts the wait short
            self._closing.wait(self.delay_s)
        split = urlsplit(handler.path)
        token = _token_of(handler.headers.get("Authorization"))
        if kind == "rest":
            reply, counted, repo = self._rest(split.path, split.query, token, handler.headers)
        elif kind == "raw":
            reply, counted, repo = self._raw(split.path, token, handler.headers)
        else:
            reply, counted, repo = self._archive(split.path, split.query, token)
        record = CallRecord(
            kind,
            handler.command,
            split.path,
            split.query,
            reply.status,
            counted,
            token is not None,
            repo,
        )
        with self._lock:
            self._calls.append(record)
        handler.send_response(reply.status)
        headers = dict(reply.headers)
        if reply.etag:
            headers["ETag"] = reply.etag
        if reply.status != 304:
            headers["Content-Type"] = reply.content_type
        if reply.chunks is not None:
            headers["Transfer-Encoding"] = "chunked"
        else:
            headers["Content-Length"] = str(len(reply.body))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        if reply.chunks is not None:
            self._send_chunks(handler, reply.chunks)
        elif reply.body:
            handler.wfile.write(reply.body)

    @staticmethod
    def _send_chunks(handler: _Handler, chunks: Iterator[bytes]) -> None:
        try:
            for chunk in chunks:
                if chunk:
                    handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    handler.wfile.flush()
            handler.wfile.write(b"0\r\n\r\n")
        except (_Cut, OSError):
            # cut on purpose, or the client went away: the connection cannot carry another answer
            handler.close_connection = True
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def _bucket(self, identity: str | None) -> _Bucket:
        # caller holds the lock
        now = time.time()
        bucket = self._buckets.get(identity)
        limit = self._anonymous_rate_limit if identity is None else self._rate_limit
        if bucket is None:
            bucket = self._buckets[identity] = _Bucket(limit, 0, now + self._window_s)
        elif now >= bucket.reset_at:
            bucket.used, bucket.reset_at = 0, now + self._window_s
        return bucket

    @staticmethod
    def _rate_headers(bucket: _Bucket) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(bucket.limit),
            "x-ratelimit-remaining": str(bucket.remaining),
            "x-ratelimit-used": str(bucket.used),
            "x-ratelimit-reset": str(int(bucket.reset_at)),
            "x-ratelimit-resource": "core",
        }

    def _rest(
        self, path: str, query: str, token: str | None, headers: _Headers
    ) -> tuple[_Reply, bool, str | None]:
        request_id = hashlib.sha1(f"{time.time_ns()}{path}".encode()).hexdigest()[:16].upper()
        if token is not None and self._tokens is not None and token not in self._tokens:
            with self._lock:
                rate = self._rate_headers(self._bucket(None))
            reply = _error(401, "Bad credentials").reply
            reply.headers.update(rate)
            return reply, False, None
        identity = token
        with self._lock:
            secondary = self._secondary.pop(0) if self._secondary else None
        if secondary is not None:
            status, retry_after = secondary
            reply = _error(
                status,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you "
                "try again. If you reach out to GitHub Support for help, please include the "
                f"request ID {request_id}.",
                f"{_RATE_DOCS}#about-secondary-rate-limits",
            ).reply
            reply.headers["retry-after"] = str(retry_after)
            return reply, False, None

        repo: _Repo | None = None
        try:
            repo, reply = self._route_rest(path, query, token is not None)
        except _HttpError as error:
            reply = error.reply
        repo_name = repo.full_name if repo else None

        counted = True
        if reply.etag and _etag_matches(headers.get("If-None-Match"), reply.etag):
            # GitHub: a 304 is free only when the request was correctly authorised
            reply = _Reply(304, etag=reply.etag)
            counted = token is None
        with self._lock:
            bucket = self._bucket(identity)
            if counted and bucket.remaining <= 0:
                who = "user ID 1" if token else "127.0.0.1"
                hint = (
                    ""
                    if token
                    else " (But here's the good news: Authenticated requests get a higher rate "
                    "limit. Check out the documentation for more details.)"
                )
                reply = _error(
                    self._rate_limit_status, f"API rate limit exceeded for {who}.{hint}", _RATE_DOCS
                ).reply
                counted = False
            elif counted:
                bucket.used += 1
            reply.headers.update(self._rate_headers(bucket))
        reply.headers["x-github-request-id"] = request_id
        return reply, counted, repo_name

    def _lookup(self, owner: str, name: str, authenticated: bool) -> _Repo:
        """The repository `owner/name` (case-insensitive, like GitHub) or a 404."""
        # matching against directory listings (never joining paths) keeps `..` out of the root
        owners = self.root.iterdir() if self.root.is_dir() else iter(())
        owner_dir = next((p for p in owners if p.name.lower() == owner.lower()), None)
        if owner_dir is None or not owner_dir.is_dir():
            raise _not_found()
        wanted_dir = f"{name.lower()}.git"
        repo_dir = next((p for p in owner_dir.iterdir() if p.name.lower() == wanted_dir), None)
        if repo_dir is None:
            raise _not_found()
        repo = _Repo(owner_dir.name, repo_dir.name.removesuffix(".git"), repo_dir)
        if repo.full_name.lower() in self._private and not authenticated:
            raise _not_found()
        return repo

    def _by_id(self, repo_id: str, authenticated: bool) -> _Repo:
        if self.root.is_dir():
            for owner_dir in self.root.iterdir():
                for repo_dir in owner_dir.glob("*.git") if owner_dir.is_dir() else ():
                    repo = _Repo(owner_dir.name, repo_dir.name.removesuffix(".git"), repo_dir)
                    if str(repo.id) == repo_id:
                        return self._lookup(repo.owner, repo.name, authenticated)
        raise _not_found()

    def _route_rest(
        self, path: str, query: str, authenticated: bool
    ) -> tuple[_Repo | None, _Reply]:
        quoted_parts = path.strip("/").split("/") if path.strip("/") else []
        parts = [unquote(p) for p in quoted_parts]
        if len(parts) >= 3 and parts[0] == "repos":
            owner, name, rest = parts[1], parts[2], parts[3:]
            renamed = self._renames.get(f"{owner}/{name}".lower())
            if renamed:
                new_owner, _, new_name = renamed.partition("/")
                target = self._lookup(new_owner, new_name, authenticated)
                location = "/".join([f"{self.api_url}/repositories/{target.id}", *quoted_parts[3:]])
                location += f"?{query}" if query else ""
                reply = _json_reply(
                    301,
                    {"message": "Moved Permanently", "url": location, "documentation_url": _DOCS},
                )
                reply.headers["Location"] = location
                return target, reply
            repo = self._lookup(owner, name, authenticated)
        elif len(parts) >= 2 and parts[0] == "repositories":
            repo, rest = self._by_id(parts[1], authenticated), parts[2:]
        else:
            raise _not_found()

        try:
            return repo, self._repo_resource(repo, rest, parse_qs(query), path)
        except _HttpError as error:
            # the call log still names the repository of a 404/422/5xx answer
            return repo, error.reply

    def _repo_resource(
        self, repo: _Repo, rest: list[str], query: dict[str, list[str]], path: str
    ) -> _Reply:
        self._apply_faults(repo, "rest", path)
        with _open(repo) as git:
            if not rest:
                return _json_reply(200, self._repository_json(repo, git))
            if rest[0] == "commits" and len(rest) >= 2:
                return self._commit(repo, git, "/".join(rest[1:]))
            if rest[:2] == ["git", "trees"] and len(rest) >= 3:
                recursive = query.get("recursive", ["0"])[0] not in ("", "0", "false")
                return self._tree(repo, git, "/".join(rest[2:]), recursive)
            if rest[:2] == ["git", "blobs"] and len(rest) == 3:
                return self._blob(repo, git, rest[2])
            if rest[0] == "contents":
                ref = query.get("ref", [None])[0]
                return self._contents(repo, git, "/".join(rest[1:]).strip("/"), ref)
            if rest[0] == "tarball":
                return self._tarball_redirect(repo, git, "/".join(rest[1:]))
        raise _not_found()

    def _apply_faults(self, repo: _Repo, host: HostKind, path: str) -> _Fault | None:
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
            reply = _json_reply(302, {"message": "Found", "documentation_url": _DOCS})
            reply.headers["Location"] = location + path
            raise _HttpError(reply)
        if fault is None or fault.stream is not None or fault.body is not None:
            return fault
        if host != "rest":
            raise _HttpError(_Reply(fault.status, b"Server Error", "text/plain"))
        message = {502: "Server Error", 503: "Service Unavailable"}.get(
            fault.status, "Internal Server Error"
        )
        raise _error(fault.status, message)

    # -- REST resources ----------------------------------------------------------------------------

    @staticmethod
    def _disk_kb(repo: _Repo) -> int:
        objects = repo.path / "objects"
        total = sum(p.stat().st_size for p in objects.rglob("*") if p.is_file())
        return total // 1024

    def _repository_json(self, repo: _Repo, git: pygit2.Repository) -> dict[str, Any]:
        try:
            target = git.references["HEAD"].target
        except KeyError:
            target = None
        # a detached HEAD (an object id, not a ref name) names no branch
        default_branch = target.removeprefix("refs/heads/") if isinstance(target, str) else "main"
        api = f"{self.api_url}/repos/{repo.full_name}"
        private = repo.full_name.lower() in self._private
        owner_id = zlib.crc32(repo.owner.lower().encode()) & 0x7FFFFFFF
        return {
            "id": repo.id,
            "node_id": base64.b64encode(f"010:Repository{repo.id}".encode()).decode(),
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": {"login": repo.owner, "id": owner_id, "type": "User"},
            "private": private,
            "visibility": "private" if private else "public",
            "html_url": f"{self.html_base_url}/{repo.full_name}",
            "description": None,
            "fork": False,
            "url": api,
            "git_url": f"git://{urlsplit(self.html_base_url).netloc}/{repo.full_name}.git",
            "ssh_url": f"git@{urlsplit(self.html_base_url).netloc}:{repo.full_name}.git",
            "clone_url": f"{self.git_base_url}/{repo.full_name}.git",
            "size": self._disk_kb(repo),
            "default_branch": default_branch,
            "archived": False,
            "disabled": False,
        }

    @staticmethod
    def _resolve(git: pygit2.Repository, spec: str) -> pygit2.Object | None:
        if spec == "HEAD" or spec.startswith("refs/"):
            candidates = [spec]
        else:
            candidates = [f"refs/heads/{spec}", f"refs/tags/{spec}"]
            if _HEX_SHA.fullmatch(spec):
                candidates.append(spec)
        for candidate in candidates:
            try:
                return git.revparse_single(candidate)
            except (KeyError, ValueError, pygit2.GitError):
                continue
        return None

    def _commit_of(self, git: pygit2.Repository, ref: str) -> pygit2.Commit | None:
        obj = self._resolve(git, ref)
        if obj is None:
            return None
        try:
            return obj.peel(pygit2.Commit)
        except (ValueError, pygit2.GitError):
            return None

    def _commit(self, repo: _Repo, git: pygit2.Repository, ref: str) -> _Reply:
        commit = self._commit_of(git, ref)
        if commit is None:
            raise _error(
                422, f"No commit found for SHA: {ref}", f"{_DOCS}/commits/commits#get-a-commit"
            )
        api = f"{self.api_url}/repos/{repo.full_name}"
        sha, tree_sha = str(commit.id), str(commit.tree_id)

        def person(signature: pygit2.Signature) -> dict[str, str]:
            return {"name": signature.name, "email": signature.email, "date": _iso(signature.time)}

        return _json_reply(
            200,
            {
                "sha": sha,
                "node_id": base64.b64encode(f"04:Commit{sha}".encode()).decode(),
                "commit": {
                    "author": person(commit.author),
                    "committer": person(commit.committer),
                    "message": commit.message,
                    "tree": {"sha": tree_sha, "url": f"{api}/git/trees/{tree_sha}"},
                    "url": f"{api}/git/commits/{sha}",
                    "comment_count": 0,
                },
                "url": f"{api}/commits/{sha}",
                "html_url": f"{self.html_base_url}/{repo.full_name}/commit/{sha}",
                "author": None,
                "committer": None,
                "parents": [
                    {"sha": str(p), "url": f"{api}/commits/{p}"} for p in commit.parent_ids
                ],
            },
        )

    def _tree(self, repo: _Repo, git: pygit2.Repository, treeish: str, recursive: bool) -> _Reply:
        obj = self._resolve(git, treeish)
        try:
            tree = obj.peel(pygit2.Tree) if obj is not None else None
        except (ValueError, pygit2.GitError):
            tree = None
        if tree is None:
            raise _error(404, "Not Found", f"{_DOCS}/git/trees#get-a-tree")
        api = f"{self.api_url}/repos/{repo.full_name}"
        items: list[dict[str, Any]] = []
        size = 0
        truncated = False
        # depth-first in git's own entry order, each tree right before its contents: the order
        # GitHub lists a recursive tree in, so a truncated answer is a prefix of the full one
        stack: list[tuple[str, Any]] = [("", iter(tree))]
        while stack:
            prefix, children = stack[-1]
            obj = next(children, None)
            if obj is None:
                stack.pop()
                continue
            mode = int(obj.filemode)
            path, sha = prefix + _json_name(obj), str(obj.id)
            item: dict[str, Any] = {"path": path, "mode": f"{mode:06o}"}
            if mode == MODE_TREE:
                item |= {"type": "tree", "sha": sha, "url": f"{api}/git/trees/{sha}"}
            elif mode == MODE_GITLINK:
                item |= {"type": "commit", "sha": sha}
            else:
                # the object header holds the size: no need to inflate every blob
                blob_size = git.odb.read_header(obj.id)[1]
                item |= {"type": "blob", "sha": sha, "size": blob_size}
                item["url"] = f"{api}/git/blobs/{sha}"
            item_bytes = len(json.dumps(item)) + 1
            if len(items) >= self.tree_entry_limit or size + item_bytes > self.tree_byte_limit:
                truncated = True
                break
            items.append(item)
            size += item_bytes
            if recursive and mode == MODE_TREE:
                stack.append((path + "/", iter(obj)))
        tree_sha = str(tree.id)
        return _json_reply(
            200,
            {
                "sha": tree_sha,
                "url": f"{api}/git/trees/{tree_sha}",
                "tree": items,
                "truncated": truncated,
            },
        )

    def _blob(self, repo: _Repo, git: pygit2.Repository, sha: str) -> _Reply:
        try:
            blob = git[sha] if _HEX_SHA.fullmatch(sha) else None
        except (KeyError, ValueError):
            blob = None
        if not isinstance(blob, pygit2.Blob):
            raise _error(404, "Not Found", f"{_DOCS}/git/blobs#get-a-blob")
        api = f"{self.api_url}/repos/{repo.full_name}"
        return _json_reply(
            200,
            {
                "sha": str(blob.id),
                "node_id": base64.b64encode(f"04:Blob{blob.id}".encode()).decode(),
                "size": blob.size,
                "url": f"{api}/git/blobs/{blob.id}",
                "content": _b64_wrapped(blob.data),
                "encoding": "base64",
            },
        )

    def _contents(self, repo: _Repo, git: pygit2.Repository, path: str, ref: str | None) -> _Reply:
        ref_name = ref or self._repository_json(repo, git)["default_branch"]
        commit = self._commit_of(git, ref_name)
        if commit is None:
            raise _error(404, f"No commit found for the ref {ref_name}", f"{_DOCS}/repos/contents")
        if not path:
            return _json_reply(200, self._listing(repo, commit.tree, "", ref_name))
        try:
            obj: pygit2.Object = commit.tree[path]
        except KeyError:
            raise _error(
                404, "Not Found", f"{_DOCS}/repos/contents#get-repository-content"
            ) from None
        mode = int(obj.filemode)
        if mode == MODE_TREE:
            return _json_reply(200, self._listing(repo, obj, path + "/", ref_name))
        if mode == MODE_SYMLINK:
            target = obj.read_raw().decode(errors="replace")
            pointee = self._symlink_target(commit.tree, path, target)
            # GitHub serves the target file for a symlink to a file, else describes the link
            if pointee is not None:
                return _json_reply(200, self._file_json(repo, pointee[1], pointee[0], ref_name))
            item = self._item_json(repo, obj, path, ref_name)
            item["target"] = target
            return _json_reply(200, item)
        return _json_reply(200, self._file_json(repo, obj, path, ref_name))

    @staticmethod
    def _symlink_target(tree: pygit2.Tree, path: str, target: str) -> tuple[str, Any] | None:
        """(path, blob) of the regular file a symlink points at inside the repository, if any."""
        resolved: list[str] = []
        for part in [*path.split("/")[:-1], *target.split("/")]:
            if part == "..":
                if not resolved:
                    return None
                resolved.pop()
            elif part and part != ".":
                resolved.append(part)
        try:
            obj = tree["/".join(resolved)]
        except KeyError:
            return None
        if int(obj.filemode) in (MODE_TREE, MODE_GITLINK, MODE_SYMLINK) or target.startswith("/"):
            return None
        return "/".join(resolved), obj

    def _item_json(self, repo: _Repo, obj: Any, path: str, ref: str) -> dict[str, Any]:
        mode = int(obj.filemode)
        kind = {MODE_TREE: "dir", MODE_SYMLINK: "symlink", MODE_GITLINK: "submodule"}.get(
            mode, "file"
        )
        api = f"{self.api_url}/repos/{repo.full_name}"
        sha = str(obj.id)
        quoted = quote(path)
        git_kind = "trees" if kind == "dir" else "blobs"
        return {
            "type": kind,
            "size": obj.size if kind in ("file", "symlink") else 0,
            "name": _json_name(obj),
            "path": path,
            "sha": sha,
            "url": f"{api}/contents/{quoted}?ref={quote(ref, safe='')}",
            "git_url": None if kind == "submodule" else f"{api}/git/{git_kind}/{sha}",
            "html_url": f"{self.html_base_url}/{repo.full_name}/blob/{ref}/{quoted}",
            "download_url": (
                f"{self.raw_url}/{repo.full_name}/{quote(ref)}/{quoted}" if kind == "file" else None
            ),
        }

    def _file_json(self, repo: _Repo, blob: Any, path: str, ref: str) -> dict[str, Any]:
        item = self._item_json(repo, blob, path, ref)
        item["type"] = "file"
        if blob.size <= CONTENTS_INLINE_LIMIT:
            item |= {"content": _b64_wrapped(blob.data), "encoding": "base64"}
        else:
            item |= {"content": "", "encoding": "none"}
        return item

    def _listing(self, repo: _Repo, tree: Any, prefix: str, ref: str) -> list[dict[str, Any]]:
        return [self._item_json(repo, obj, prefix + _json_name(obj), ref) for obj in tree]

    # -- archives ----------------------------------------------------------------------------------

    def _archive_token(self, repo: _Repo, sha: str) -> str:
        message = f"{repo.full_name.lower()}@{sha}".encode()
        return hmac.new(self._archive_key, message, hashlib.sha256).hexdigest()[:40]

    def _tarball_redirect(self, repo: _Repo, git: pygit2.Repository, ref: str) -> _Reply:
        """`GET /repos/{o}/{r}/tarball/{ref}`: 302 to the archive host, as GitHub answers."""
        spec = ref or self._repository_json(repo, git)["default_branch"]
        commit = self._commit_of(git, spec)
        if commit is None:
            docs = f"{_DOCS}/repos/contents#download-a-repository-archive-tar"
            raise _error(404, "Not Found", docs)
        sha = str(commit.id)
        location = f"{self.archive_url}/{quote(repo.owner)}/{quote(repo.name)}/legacy.tar.gz/{sha}"
        if repo.full_name.lower() in self._private:
            # GitHub signs the archive link of a private repository with a short-lived token
            location += f"?token={self._archive_token(repo, sha)}"
        reply = _Reply(302, b"", "text/html; charset=utf-8")
        reply.headers["Location"] = location
        return reply

    def _archive(self, path: str, query: str, token: str | None) -> tuple[_Reply, bool, str | None]:
        """`/{owner}/{repo}/legacy.tar.gz/{ref}` on the archive host; never a REST call."""
        parts = [unquote(p) for p in path.strip("/").split("/")]
        not_found = _Reply(404, b"404: Not Found", "text/plain; charset=utf-8")
        if len(parts) < 4 or parts[2] != "legacy.tar.gz":
            return not_found, False, None
        owner, name, ref = parts[0], parts[1], "/".join(parts[3:])
        valid_token = token is not None and (self._tokens is None or token in self._tokens)
        try:
            repo = self._lookup(owner, name, True)
        except _HttpError:
            return not_found, False, None
        with _open(repo) as git:
            commit = self._commit_of(git, ref)
            sha = str(commit.id) if commit is not None else ""
        signed = parse_qs(query).get("token", [""])[0]
        if commit is None or (
            repo.full_name.lower() in self._private
            and not valid_token
            and not hmac.compare_digest(signed, self._archive_token(repo, sha))
        ):
            return not_found, False, None
        try:
            fault = self._apply_faults(repo, "archive", path)
        except _HttpError as error:
            return error.reply, False, repo.full_name
        root = f"{repo.owner}-{repo.name}-{sha[:7]}"
        reply = _Reply(200, content_type="application/x-gzip")
        reply.headers["Content-Disposition"] = f"attachment; filename={root}.tar.gz"
        if fault is not None and fault.body is not None:
            reply.body = fault.body
        elif fault is not None and fault.stream == "cut":
            whole = b"".join(self._archive_chunks(repo, sha, root))
            reply.chunks = _cut_after(whole[: len(whole) // 2])
        elif fault is not None and fault.stream == "endless":
            reply.chunks = self._endless_tarball(root, sha)
        else:
            reply.chunks = self._archive_chunks(repo, sha, root)
        return reply, False, repo.full_name

    def _archive_chunks(self, repo: _Repo, sha: str, root: str) -> Iterator[bytes]:
        """The archive from the cache, or built while it is sent and then cached."""
        key = (repo.path, sha)
        with self._lock:
            cached = self._archives.get(key)
            if cached is not None:
                self._archives.move_to_end(key)
        if cached is not None:
            for start in range(0, len(cached), _ARCHIVE_CHUNK):
                yield cached[start : start + _ARCHIVE_CHUNK]
            return
        built: list[bytes] = []
        for chunk in self._tarball(repo, sha, root):
            built.append(chunk)
            yield chunk
        whole = b"".join(built)
        with self._lock:
            self._archives[key] = whole
            while sum(len(v) for v in self._archives.values()) > _ARCHIVE_CACHE_BYTES:
                self._archives.popitem(last=False)

    def _tarball(self, repo: _Repo, sha: str, root: str) -> Iterator[bytes]:
        """The gzipped tar `git archive` makes of commit `sha`, produced while it is sent.

        A pax global header holds the commit id; every tree entry is a member below `root/`, in
        the tree's own depth-first order: folders (and submodules, as empty folders), files with
        their executable bit, symlinks as symlink members.
        """
        sink = _Sink()
        with _open(repo) as git:
            commit = git[sha].peel(pygit2.Commit)
            mtime = commit.commit_time
            with tarfile.open(
                fileobj=sink,  # type: ignore[arg-type]  # stream mode only calls write()
                mode="w|",
                format=tarfile.PAX_FORMAT,
                pax_headers={"comment": sha},
                encoding="utf-8",
                errors="surrogateescape",
            ) as tar:
                tar.addfile(_member(root, tarfile.DIRTYPE, 0o755, mtime))
                stack: list[tuple[str, Any]] = [(root + "/", iter(commit.tree))]
                while stack:
                    prefix, children = stack[-1]
                    obj = next(children, None)
                    if obj is None:
                        stack.pop()
                        continue
                    mode = int(obj.filemode)
                    name = prefix + obj.name
                    if mode in (MODE_TREE, MODE_GITLINK):
                        tar.addfile(_member(name, tarfile.DIRTYPE, 0o755, mtime))
                        if mode == MODE_TREE:
                            stack.append((name + "/", iter(obj)))
                    elif mode == MODE_SYMLINK:
                        info = _member(name, tarfile.SYMTYPE, 0o777, mtime)
                        info.linkname = obj.data.decode("utf-8", "surrogateescape")
                        tar.addfile(info)
                    else:
                        data = obj.data
                        info = _member(name, tarfile.REGTYPE, mode & 0o777, mtime)
                        info.size = len(data)
                        tar.addfile(info, io.BytesIO(data))
                    if sink.size >= _ARCHIVE_CHUNK:
                        yield sink.take()
        yield sink.take(last=True)

    def _endless_tarball(self, root: str, sha: str) -> Iterator[bytes]:
        """The start of an archive whose one file is larger than anything, sent a little at a
        time until the client goes away or the emulator closes."""
        header = io.BytesIO()
        with tarfile.open(
            fileobj=header, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"comment": sha}
        ) as tar:
            tar.addfile(_member(root, tarfile.DIRTYPE, 0o755, 0))
            info = _member(f"{root}/endless", tarfile.REGTYPE, 0o644, 0)
            info.size = 1 << 40
            tar.addfile(info)
        # the zero blocks that close this tar are only the first bytes of the file's data
        deflate = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
        yield deflate.compress(header.getvalue()) + deflate.flush(zlib.Z_SYNC_FLUSH)
        for _ in range(int(_TRICKLE_MAX_S / _TRICKLE_S)):
            if self._closing.wait(_TRICKLE_S):
                return
            yield deflate.compress(bytes(tarfile.BLOCKSIZE)) + deflate.flush(zlib.Z_SYNC_FLUSH)

    # -- raw host ----------------------------------------------------------------------------------

    def _raw(
        self, path: str, token: str | None, headers: _Headers
    ) -> tuple[_Reply, bool, str | None]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        valid_token = token is not None and (self._tokens is None or token in self._tokens)
        not_found = _Reply(404, b"404: Not Found", "text/plain; charset=utf-8")
        if len(parts) < 4:
            return not_found, False, None
        owner, name, rest = parts[0], parts[1], parts[2:]
        renamed = self._renames.get(f"{owner}/{name}".lower())
        try:
            if renamed:
                location = "/".join([self.raw_url, renamed, *path.strip("/").split("/")[2:]])
                return _Reply(301, headers={"Location": location}), False, renamed
            repo = self._lookup(owner, name, valid_token)
            self._apply_faults(repo, "raw", path)
        except _HttpError as error:
            if error.reply.status == 404:
                return not_found, False, None
            return error.reply, False, f"{owner}/{name}"
        with _open(repo) as git:
            # a branch name can hold slashes: try the shortest ref prefix first, like GitHub
            for split_at in range(1, len(rest)):
                commit = self._commit_of(git, "/".join(rest[:split_at]))
                if commit is None:
                    continue
                try:
                    obj = commit.tree["/".join(rest[split_at:])]
                except KeyError:
                    break
                if int(obj.filemode) in (MODE_TREE, MODE_GITLINK):
                    break
                etag = f'"{obj.id}"'
                if _etag_matches(headers.get("If-None-Match"), etag):
                    return _Reply(304, etag=etag), False, repo.full_name
                reply = _Reply(200, obj.read_raw(), "text/plain; charset=utf-8", etag=etag)
                return reply, False, repo.full_name
        return not_found, False, repo.full_name
