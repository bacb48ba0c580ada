"""What the GitHub emulator's hosts answer with (`Reply`, errors worded as GitHub words them) and
what they serve (`Repo`, a bare repository opened per request, refs resolved the way GitHub does).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any, Literal

import pygit2

HostKind = Literal["rest", "raw", "archive"]
# how an archive answer goes wrong: cut half way through, or trickling for ever
StreamFault = Literal["cut", "endless"]
# request headers: `http.client.HTTPMessage` from a handler, a plain mapping in a test
Headers = Mapping[str, str] | Message

DOCS = "https://docs.github.com/rest"
RATE_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
JSON = "application/json; charset=utf-8"
HEX_SHA = re.compile(r"[0-9a-fA-F]{7,40}")


@dataclass(frozen=True, slots=True)
class Repo:
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
class Reply:
    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    # a body sent as it is produced (chunked), instead of `body`; raising `Cut` cuts it there
    chunks: Iterator[bytes] | None = None


class Cut(Exception):
    """Raised by a reply's `chunks` to end the connection without finishing the body."""


class HttpError(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def json_reply(status: int, payload: Any, *, etag: bool = True) -> Reply:
    body = json.dumps(payload, separators=(",", ":")).encode()
    tag = f'W/"{hashlib.sha256(body).hexdigest()}"' if etag and status == 200 else None
    return Reply(status, body, etag=tag)


def github_error(status: int, message: str, docs: str = DOCS) -> HttpError:
    payload = {"message": message, "documentation_url": docs, "status": str(status)}
    return HttpError(json_reply(status, payload))


def not_found() -> HttpError:
    return github_error(404, "Not Found", f"{DOCS}/repos/repos#get-a-repository")


def etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    # If-None-Match uses weak comparison: W/"x" matches "x"
    wanted = etag.removeprefix("W/")
    return any(part.strip().removeprefix("W/") in (wanted, "*") for part in header.split(","))


def json_name(obj: pygit2.Object) -> str:
    """A tree entry's name as GitHub's JSON carries it: a byte that is not UTF-8 becomes U+FFFD
    (JSON text is Unicode; the original bytes are lost, so no later request can name the path)."""
    return (obj.raw_name or b"").decode("utf-8", "replace")


@contextlib.contextmanager
def open_repo(repo: Repo) -> Iterator[pygit2.Repository]:
    # one handle per request: pygit2 repositories are not meant to be shared across threads
    git = pygit2.Repository(str(repo.path))
    try:
        yield git
    finally:
        git.free()


def resolve_spec(git: pygit2.Repository, spec: str) -> pygit2.Object | None:
    if spec == "HEAD" or spec.startswith("refs/"):
        candidates = [spec]
    else:
        candidates = [f"refs/heads/{spec}", f"refs/tags/{spec}"]
        if HEX_SHA.fullmatch(spec):
            candidates.append(spec)
    for candidate in candidates:
        try:
            return git.revparse_single(candidate)
        except (KeyError, ValueError, pygit2.GitError):
            continue
    return None


def commit_of(git: pygit2.Repository, ref: str) -> pygit2.Commit | None:
    obj = resolve_spec(git, ref)
    if obj is None:
        return None
    try:
        return obj.peel(pygit2.Commit)
    except (ValueError, pygit2.GitError):
        return None
