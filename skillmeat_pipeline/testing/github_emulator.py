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

Here: the hosts, what tests control and look at, the routes. The REST resources are
`github_resources.py`, rate limits `github_rate_limits.py`, injected faults `github_faults.py`,
archives `github_archive.py` and the replies they share `github_replies.py`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import socket
import sys
import threading
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pygit2

from skillmeat_pipeline.lib.core.models import MODE_GITLINK, MODE_TREE
from skillmeat_pipeline.lib.services.http import BackgroundHTTPServer, ThreadedHTTPServer
from skillmeat_pipeline.testing.git_server import add_repository
from skillmeat_pipeline.testing.github_archive import (
    ArchiveCache,
    cut_after,
    endless_tarball,
)
from skillmeat_pipeline.testing.github_faults import Fault, Faults
from skillmeat_pipeline.testing.github_rate_limits import RateLimits, token_of
from skillmeat_pipeline.testing.github_replies import (
    DOCS,
    Cut,
    Headers,
    HostKind,
    HttpError,
    Reply,
    Repo,
    StreamFault,
    commit_of,
    etag_matches,
    github_error,
    json_reply,
    not_found,
    open_repo,
)
from skillmeat_pipeline.testing.github_resources import (
    GITHUB_TREE_BYTE_LIMIT,
    GITHUB_TREE_ENTRY_LIMIT,
    RestResources,
)

logger = logging.getLogger(__name__)


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


def layout_bundle(bundle: str | Path, root: str | Path) -> Path:
    """Clone `owner+repo.bundle` into `root/owner/repo.git` (bare) once and return that path."""
    bundle = Path(bundle)
    owner, sep, name = bundle.stem.partition("+")
    if not sep or not owner or not name:
        raise ValueError(f"{bundle.name}: bundle names must be owner+repo.bundle")
    target = Path(root) / owner / f"{name}.git"
    return target if target.exists() else add_repository(root, f"{owner}/{name}", bundle)


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
        self.root = Path(root)
        self.git_base_url = git_base_url.rstrip("/")
        self.html_base_url = html_base_url.rstrip("/")
        self.tree_entry_limit = tree_entry_limit
        self.tree_byte_limit = tree_byte_limit
        self.delay_s = delay_s
        self._rate_limits = RateLimits(
            tokens=tokens,
            limit=rate_limit,
            anonymous_limit=anonymous_rate_limit,
            window_s=rate_limit_window_s,
            exhausted_status=rate_limit_status,
        )
        self._private = {name.lower() for name in private}
        self._renames = {old.lower(): new for old, new in (renames or {}).items()}
        self._host = host
        self._lock = threading.Lock()
        self._calls: list[CallRecord] = []
        self._faults = Faults()
        self._closing = threading.Event()
        self._hosts: dict[HostKind, _Host] = {}
        self._in_flight: dict[HostKind, int] = {}
        self._max_in_flight: dict[HostKind, int] = {}
        self._connections: dict[HostKind, set[tuple[str, int]]] = {}
        # signs the archive links of private repositories, like GitHub's short-lived `token=`
        self._archive_key = secrets.token_bytes(16)
        self._archives = ArchiveCache()

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
        return self._rate_limits.remaining(token)

    def set_rate_limit(
        self, remaining: int, *, token: str | None = None, reset_in_s: float | None = None
    ) -> None:
        """Put a token's (or the anonymous) bucket at `remaining`, optionally moving its reset."""
        self._rate_limits.set_remaining(remaining, token, reset_in_s)

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
        self._faults.inject(repo, Fault(status, times, host, stream, body))

    def inject_secondary_rate_limit(
        self, retry_after_s: int, *, times: int = 1, status: int = 429
    ) -> None:
        """The next `times` REST requests hit GitHub's secondary rate limit (with retry-after)."""
        self._rate_limits.add_secondary(status, retry_after_s, times)

    def redirect_repo(self, repo: str, location_base: str) -> None:
        """REST requests for `repo` answer 302 to `location_base` + the same path (any host)."""
        self._faults.redirect(repo, location_base)

    def clear_faults(self) -> None:
        self._faults.clear()
        self._rate_limits.clear_secondary()

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
        token = token_of(handler.headers.get("Authorization"))
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
        except (Cut, OSError):
            # cut on purpose, or the client went away: the connection cannot carry another answer
            handler.close_connection = True
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def _rest(
        self, path: str, query: str, token: str | None, headers: Headers
    ) -> tuple[Reply, bool, str | None]:
        request_id = hashlib.sha1(f"{time.time_ns()}{path}".encode()).hexdigest()[:16].upper()
        refused = self._rate_limits.refusal(token, request_id)
        if refused is not None:
            return refused, False, None
        repo: Repo | None = None
        try:
            repo, reply = self._route_rest(path, query, token is not None)
        except HttpError as error:
            reply = error.reply
        reply, counted = self._rate_limits.charge(reply, token, headers.get("If-None-Match"))
        reply.headers["x-github-request-id"] = request_id
        return reply, counted, repo.full_name if repo else None

    def _lookup(self, owner: str, name: str, authenticated: bool) -> Repo:
        """The repository `owner/name` (case-insensitive, like GitHub) or a 404."""
        # matching against directory listings (never joining paths) keeps `..` out of the root
        owners = self.root.iterdir() if self.root.is_dir() else iter(())
        owner_dir = next((p for p in owners if p.name.lower() == owner.lower()), None)
        if owner_dir is None or not owner_dir.is_dir():
            raise not_found()
        wanted_dir = f"{name.lower()}.git"
        repo_dir = next((p for p in owner_dir.iterdir() if p.name.lower() == wanted_dir), None)
        if repo_dir is None:
            raise not_found()
        repo = Repo(owner_dir.name, repo_dir.name.removesuffix(".git"), repo_dir)
        if repo.full_name.lower() in self._private and not authenticated:
            raise not_found()
        return repo

    def _by_id(self, repo_id: str, authenticated: bool) -> Repo:
        if self.root.is_dir():
            for owner_dir in self.root.iterdir():
                for repo_dir in owner_dir.glob("*.git") if owner_dir.is_dir() else ():
                    repo = Repo(owner_dir.name, repo_dir.name.removesuffix(".git"), repo_dir)
                    if str(repo.id) == repo_id:
                        return self._lookup(repo.owner, repo.name, authenticated)
        raise not_found()

    def _route_rest(self, path: str, query: str, authenticated: bool) -> tuple[Repo | None, Reply]:
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
                reply = json_reply(
                    301,
                    {"message": "Moved Permanently", "url": location, "documentation_url": DOCS},
                )
                reply.headers["Location"] = location
                return target, reply
            repo = self._lookup(owner, name, authenticated)
        elif len(parts) >= 2 and parts[0] == "repositories":
            repo, rest = self._by_id(parts[1], authenticated), parts[2:]
        else:
            raise not_found()

        try:
            return repo, self._repo_resource(repo, rest, parse_qs(query), path)
        except HttpError as error:
            # the call log still names the repository of a 404/422/5xx answer
            return repo, error.reply

    def _resources(self) -> RestResources:
        return RestResources(
            api_url=self.api_url,
            raw_url=self.raw_url,
            html_base_url=self.html_base_url,
            git_base_url=self.git_base_url,
            private=self._private,
            tree_entry_limit=self.tree_entry_limit,
            tree_byte_limit=self.tree_byte_limit,
        )

    def _repo_resource(
        self, repo: Repo, rest: list[str], query: dict[str, list[str]], path: str
    ) -> Reply:
        self._faults.apply(repo, "rest", path)
        resources = self._resources()
        with open_repo(repo) as git:
            if not rest:
                return json_reply(200, resources.repository_json(repo, git))
            if rest[0] == "commits" and len(rest) >= 2:
                return resources.commit(repo, git, "/".join(rest[1:]))
            if rest[:2] == ["git", "trees"] and len(rest) >= 3:
                recursive = query.get("recursive", ["0"])[0] not in ("", "0", "false")
                return resources.tree(repo, git, "/".join(rest[2:]), recursive)
            if rest[:2] == ["git", "blobs"] and len(rest) == 3:
                return resources.blob(repo, git, rest[2])
            if rest[0] == "contents":
                ref = query.get("ref", [None])[0]
                return resources.contents(repo, git, "/".join(rest[1:]).strip("/"), ref)
            if rest[0] == "tarball":
                return self._tarball_redirect(repo, git, "/".join(rest[1:]))
        raise not_found()

    # -- archives ----------------------------------------------------------------------------------

    def _archive_token(self, repo: Repo, sha: str) -> str:
        message = f"{repo.full_name.lower()}@{sha}".encode()
        return hmac.new(self._archive_key, message, hashlib.sha256).hexdigest()[:40]

    def _tarball_redirect(self, repo: Repo, git: pygit2.Repository, ref: str) -> Reply:
        """`GET /repos/{o}/{r}/tarball/{ref}`: 302 to the archive host, as GitHub answers."""
        spec = ref or self._resources().repository_json(repo, git)["default_branch"]
        commit = commit_of(git, spec)
        if commit is None:
            docs = f"{DOCS}/repos/contents#download-a-repository-archive-tar"
            raise github_error(404, "Not Found", docs)
        sha = str(commit.id)
        location = f"{self.archive_url}/{quote(repo.owner)}/{quote(repo.name)}/legacy.tar.gz/{sha}"
        if repo.full_name.lower() in self._private:
            # GitHub signs the archive link of a private repository with a short-lived token
            location += f"?token={self._archive_token(repo, sha)}"
        reply = Reply(302, b"", "text/html; charset=utf-8")
        reply.headers["Location"] = location
        return reply

    def _archive(self, path: str, query: str, token: str | None) -> tuple[Reply, bool, str | None]:
        """`/{owner}/{repo}/legacy.tar.gz/{ref}` on the archive host; never a REST call."""
        parts = [unquote(p) for p in path.strip("/").split("/")]
        not_found = Reply(404, b"404: Not Found", "text/plain; charset=utf-8")
        if len(parts) < 4 or parts[2] != "legacy.tar.gz":
            return not_found, False, None
        owner, name, ref = parts[0], parts[1], "/".join(parts[3:])
        valid_token = self._rate_limits.accepts(token)
        try:
            repo = self._lookup(owner, name, True)
        except HttpError:
            return not_found, False, None
        with open_repo(repo) as git:
            commit = commit_of(git, ref)
            sha = str(commit.id) if commit is not None else ""
        signed = parse_qs(query).get("token", [""])[0]
        if commit is None or (
            repo.full_name.lower() in self._private
            and not valid_token
            and not hmac.compare_digest(signed, self._archive_token(repo, sha))
        ):
            return not_found, False, None
        try:
            fault = self._faults.apply(repo, "archive", path)
        except HttpError as error:
            return error.reply, False, repo.full_name
        root = f"{repo.owner}-{repo.name}-{sha[:7]}"
        reply = Reply(200, content_type="application/x-gzip")
        reply.headers["Content-Disposition"] = f"attachment; filename={root}.tar.gz"
        if fault is not None and fault.body is not None:
            reply.body = fault.body
        elif fault is not None and fault.stream == "cut":
            whole = b"".join(self._archives.chunks(repo, sha, root))
            reply.chunks = cut_after(whole[: len(whole) // 2])
        elif fault is not None and fault.stream == "endless":
            reply.chunks = endless_tarball(root, sha, self._closing)
        else:
            reply.chunks = self._archives.chunks(repo, sha, root)
        return reply, False, repo.full_name

    # -- raw host ----------------------------------------------------------------------------------

    def _raw(
        self, path: str, token: str | None, headers: Headers
    ) -> tuple[Reply, bool, str | None]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        valid_token = self._rate_limits.accepts(token)
        not_found = Reply(404, b"404: Not Found", "text/plain; charset=utf-8")
        if len(parts) < 4:
            return not_found, False, None
        owner, name, rest = parts[0], parts[1], parts[2:]
        renamed = self._renames.get(f"{owner}/{name}".lower())
        try:
            if renamed:
                location = "/".join([self.raw_url, renamed, *path.strip("/").split("/")[2:]])
                return Reply(301, headers={"Location": location}), False, renamed
            repo = self._lookup(owner, name, valid_token)
            self._faults.apply(repo, "raw", path)
        except HttpError as error:
            if error.reply.status == 404:
                return not_found, False, None
            return error.reply, False, f"{owner}/{name}"
        with open_repo(repo) as git:
            # a branch name can hold slashes: try the shortest ref prefix first, like GitHub
            for split_at in range(1, len(rest)):
                commit = commit_of(git, "/".join(rest[:split_at]))
                if commit is None:
                    continue
                try:
                    obj = commit.tree["/".join(rest[split_at:])]
                except KeyError:
                    break
                if int(obj.filemode) in (MODE_TREE, MODE_GITLINK):
                    break
                etag = f'"{obj.id}"'
                if etag_matches(headers.get("If-None-Match"), etag):
                    return Reply(304, etag=etag), False, repo.full_name
                reply = Reply(200, obj.read_raw(), "text/plain; charset=utf-8", etag=etag)
                return reply, False, repo.full_name
        return not_found, False, repo.full_name
