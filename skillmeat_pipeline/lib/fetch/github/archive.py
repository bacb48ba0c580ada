"""A repository's files from its archive at one commit: one REST call instead of a raw read each.

`GET /repos/{owner}/{repo}/tarball/{sha}` costs one REST call; GitHub answers with a redirect to its
archive host (codeload), which is not rate-limited like REST and whose bytes are counted as
`archive_bytes`. The archive is streamed and never written anywhere: only the members the scan
reads are kept in memory, each checked against the blob SHA the tree lists for its path (a member
that differs, for example through `export-subst`, or that is missing, through `export-ignore`, is
left to a raw read). Bounded in time (`timeout_s`, checked on every read besides httpx's per-read
timeout), in bytes received, in bytes unpacked (what the tree's blob sizes allow), in members (the
tree's entry count) and in bytes kept.

Member paths are untrusted: an archive whose members are not all below one top-level folder named
`{owner}-{repo}-{short sha}` of this commit, or that holds an absolute path, an empty, `.` or `..`
segment, a name that is not UTF-8, a duplicate, a hard link, a device or FIFO, or a member below a
symlink or a file, is refused as a whole: GitHub never builds one, so it is not GitHub's archive of
the tree the scan listed.
"""

from __future__ import annotations

import math
import re
import tarfile
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import httpx

from skillmeat_pipeline.lib.core.models import TreeEntry
from skillmeat_pipeline.lib.core.retry import FailureKind
from skillmeat_pipeline.lib.fetch.github.errors import ApiError
from skillmeat_pipeline.lib.fetch.github.snapshot import ApiTreeSnapshot, git_blob_sha

MB = 1024 * 1024
# Planned raw reads above which the archive is read instead; benchmarks/bench_archive.py measures
# where one archive starts to beat concurrent raw reads (README "Reading over the GitHub API").
DEFAULT_ARCHIVE_THRESHOLD = 100
DEFAULT_ARCHIVE_TIMEOUT_S = 300.0
DEFAULT_MAX_ARCHIVE_MB = 1024
DEFAULT_MAX_KEPT_MB = 256
# each read of the stream waits at most this long (or the whole limit, when that is shorter)
_READ_TIMEOUT_S = 20.0
_CONNECT_TIMEOUT_S = 5.0
_INFLATE_STEP = 64 * 1024
_GZIP = 16 + zlib.MAX_WBITS
# what a tar spends per member beyond its data: header, padding, a pax record for a long name
_TAR_OVERHEAD_PER_MEMBER = 4096
_TAR_OVERHEAD = MB
_ROOT = re.compile(r".+-(?P<sha>[0-9a-f]{7,40})")
_SHOWN_NAME = 200


@dataclass(frozen=True, slots=True)
class ArchiveSettings:
    """When the API path reads the archive, and the limits of one archive read."""

    threshold: int = DEFAULT_ARCHIVE_THRESHOLD  # planned raw reads above which the archive is read
    timeout_s: float = DEFAULT_ARCHIVE_TIMEOUT_S  # hard wall-clock limit on one archive read
    max_bytes: int = DEFAULT_MAX_ARCHIVE_MB * MB  # archive bytes received (compressed)
    max_kept_bytes: int = DEFAULT_MAX_KEPT_MB * MB  # bytes of the members kept in memory

    def __post_init__(self) -> None:
        if self.threshold < 0:
            raise ValueError(f"ArchiveSettings.threshold must be >= 0, got {self.threshold!r}")
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ValueError(f"ArchiveSettings.timeout_s must be positive, got {self.timeout_s!r}")
        for name in ("max_bytes", "max_kept_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ArchiveSettings.{name} must be positive")


class ArchiveError(ApiError):
    """The archive could not be read, or was refused; the message says which member and why."""


@dataclass(frozen=True, slots=True)
class ArchiveRead:
    """What one archive read kept. `unusable`: wanted paths left to raw reads (missing from the
    archive or not the listed blob)."""

    kept: int
    kept_bytes: int
    members: int
    archive_bytes: int
    unusable: tuple[str, ...]


def read_archive(
    snapshot: ApiTreeSnapshot, wanted: Iterable[TreeEntry], settings: ArchiveSettings
) -> ArchiveRead:
    """Stream the archive of `snapshot`'s commit; keep the files of `wanted` in its `read_ahead`.

    One REST call. Raises `ArchiveError` (transient: cut, stalled, over time, unreadable; permanent:
    too large, refused) or the client's `ApiError` for the request itself.
    """
    deadline = time.monotonic() + settings.timeout_s
    client, stats = snapshot.client, snapshot.stats
    timeout = httpx.Timeout(
        min(_READ_TIMEOUT_S, settings.timeout_s),
        connect=min(_CONNECT_TIMEOUT_S, settings.timeout_s),
    )
    response = client.open_archive(snapshot.repo, snapshot.commit_sha, scan=stats, timeout=timeout)
    try:
        unpacker = _Unpacker(snapshot, wanted, settings)
        stream = _GzipStream(response, unpacker.fail, deadline, settings, _unpacked_limit(snapshot))
        unpacker.run(stream)
        stream.finish()
    finally:
        response.close()
        client.count_archive_bytes(stats, response.num_bytes_downloaded)
    snapshot.read_ahead.update(unpacker.kept)
    return ArchiveRead(
        kept=len(unpacker.kept),
        kept_bytes=unpacker.kept_bytes,
        members=unpacker.members,
        archive_bytes=response.num_bytes_downloaded,
        unusable=tuple(sorted(unpacker.wanted.keys() - unpacker.kept.keys())),
    )


def _unpacked_limit(snapshot: ApiTreeSnapshot) -> int:
    # Twice the tree's blob bytes leaves room for `export-subst`; anything beyond is not this tree.
    blob_bytes = sum(snapshot.sizes.values())
    return 2 * blob_bytes + _TAR_OVERHEAD_PER_MEMBER * (len(snapshot.entries) + 1) + _TAR_OVERHEAD


def _shown(name: str) -> str:
    """A member name fit for a message: control characters and stray bytes escaped, shortened."""
    return repr(name if len(name) <= _SHOWN_NAME else name[:_SHOWN_NAME] + "...")


class _Failure:
    """Builds the errors of one archive read, all naming the repository and the commit."""

    def __init__(self, repo: str, commit_sha: str) -> None:
        self.repo = repo
        self.prefix = f"{repo}: the archive of {commit_sha[:12]}"

    def __call__(self, detail: str, *, kind: FailureKind) -> ArchiveError:
        return ArchiveError(f"{self.prefix} {detail}", kind=kind, repo=self.repo)

    def refused(self, detail: str) -> ArchiveError:
        return self(
            f"is refused: {detail}; GitHub never builds such an archive",
            kind=FailureKind.PERMANENT,
        )


class _GzipStream:
    """The unpacked bytes of a gzip response body, as a file `tarfile` reads in stream mode.

    Every read checks the deadline and the limits, so a server that trickles bytes or never stops
    sending is cut at the deadline (each wait on the socket is bounded by httpx's read timeout).
    """

    def __init__(
        self,
        response: httpx.Response,
        fail: _Failure,
        deadline: float,
        settings: ArchiveSettings,
        unpacked_limit: int,
    ) -> None:
        self._response = response
        self._chunks: Iterator[bytes] = response.iter_bytes()
        self._fail = fail
        self._deadline = deadline
        self._settings = settings
        self._unpacked_limit = unpacked_limit
        self._inflate = zlib.decompressobj(_GZIP)
        self._pending = b""
        self.unpacked = 0

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (at least one unless the archive ended)."""
        step = size if 0 < size < _INFLATE_STEP else _INFLATE_STEP
        while True:
            self._check_time()
            if self._pending:
                try:
                    data = self._inflate.decompress(self._pending, step)
                except zlib.error as exc:
                    raise self._fail(
                        f"is not a valid gzip stream ({exc}); retry later",
                        kind=FailureKind.TRANSIENT,
                    ) from None
                self._pending = self._inflate.unconsumed_tail
                if data:
                    self.unpacked += len(data)
                    if self.unpacked > self._unpacked_limit:
                        raise self._fail.refused(
                            f"unpacks to more than the {self._unpacked_limit:,} bytes its tree "
                            "can hold"
                        )
                    return data
                continue
            if self._inflate.eof:
                return b""
            chunk = self._next_chunk()
            if chunk is None:
                raise self._fail(
                    "ended before its end (the stream was cut); retry later",
                    kind=FailureKind.TRANSIENT,
                )
            self._pending = chunk

    def finish(self) -> None:
        """Read past the tar's end marker to the gzip trailer (a stream cut there fails here),
        then the rest of the body, so the connection can serve the next request."""
        while self.read(_INFLATE_STEP):
            pass
        while self._next_chunk() is not None:
            self._check_time()

    def _next_chunk(self) -> bytes | None:
        try:
            chunk = next(self._chunks, None)
        except httpx.TimeoutException:
            raise self._fail(
                f"stalled: no data for {min(_READ_TIMEOUT_S, self._settings.timeout_s):.0f} s; "
                "retry later",
                kind=FailureKind.TRANSIENT,
            ) from None
        except httpx.HTTPError as exc:
            raise self._fail(
                f"was cut: the archive host closed the connection before the end "
                f"({type(exc).__name__}); retry later",
                kind=FailureKind.TRANSIENT,
            ) from None
        received = self._response.num_bytes_downloaded
        if received > self._settings.max_bytes:
            raise self._fail(
                f"is larger than {self._settings.max_bytes / MB:g} MB (SKILLMEAT_MAX_ARCHIVE_MB)",
                kind=FailureKind.PERMANENT,
            )
        return chunk

    def _check_time(self) -> None:
        if time.monotonic() > self._deadline:
            raise self._fail(
                f"was not read within {self._settings.timeout_s:g} s "
                "(SKILLMEAT_ARCHIVE_TIMEOUT_SECONDS); retry later",
                kind=FailureKind.TRANSIENT,
            )


class _Unpacker:
    """Walks the members of one archive, checks each path, keeps the wanted files."""

    def __init__(
        self, snapshot: ApiTreeSnapshot, wanted: Iterable[TreeEntry], settings: ArchiveSettings
    ) -> None:
        self.commit_sha = snapshot.commit_sha
        self.fail = _Failure(snapshot.repo, snapshot.commit_sha)
        self.wanted = {e.path: e for e in wanted if e.is_blob or e.is_symlink}
        # the archive of a tree holds its top-level folder and one member per tree entry
        self.max_members = len(snapshot.entries) + 1
        self.max_kept_bytes = settings.max_kept_bytes
        self.kept: dict[str, bytes] = {}
        self.kept_bytes = 0
        self.members = 0
        self._root: str | None = None
        self._kinds: dict[str, str] = {}  # relative path -> "folder" | "file" | "symlink"

    def run(self, stream: _GzipStream) -> None:
        try:
            # surrogateescape keeps a name's stray bytes, so `_relative` can name and refuse it
            with tarfile.open(  # type: ignore[call-overload]  # stream mode only calls read()
                fileobj=stream,
                mode="r|",
                encoding="utf-8",
                errors="surrogateescape",
            ) as tar:
                while (member := tar.next()) is not None:
                    self._member(tar, member)
        except (tarfile.TarError, EOFError) as exc:
            raise self.fail(
                f"is not a readable tar archive ({exc}); retry later", kind=FailureKind.TRANSIENT
            ) from None

    def _member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        relative = self._relative(member.name, tar)
        kind = _kind(member)
        if kind is None:
            what = "a hard link" if member.islnk() else "a device, FIFO or sparse file"
            raise self.fail.refused(f"member {_shown(member.name)} is {what}")
        if relative in self._kinds:
            raise self.fail.refused(f"member {_shown(member.name)} appears twice")
        if not relative and kind != "folder":
            raise self.fail.refused(f"its top-level member {_shown(member.name)} is not a folder")
        for ancestor in _ancestors(relative):
            if self._kinds.get(ancestor, "folder") != "folder":
                raise self.fail.refused(
                    f"member {_shown(member.name)} lies below the {self._kinds[ancestor]} "
                    f"{_shown(ancestor)}"
                )
        self.members += 1
        if self.members > self.max_members:
            raise self.fail.refused(
                f"holds more than {self.max_members} members, the entries of its tree"
            )
        self._kinds[relative] = kind
        entry = self.wanted.get(relative)
        if entry is not None:
            self._keep(tar, member, kind, entry)

    def _relative(self, name: str, tar: tarfile.TarFile) -> str:
        """`name` below the top-level folder, or the archive is refused."""
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise self.fail.refused(f"member {_shown(name)} has a name that is not UTF-8") from None
        if name.startswith("/"):
            raise self.fail.refused(f"member {_shown(name)} has an absolute path")
        top, _, relative = name.partition("/")
        if self._root is None:
            self._check_root(top, tar)
        if top != self._root:
            raise self.fail.refused(
                f"member {_shown(name)} is outside its top-level folder {_shown(self._root or '')}"
            )
        if relative and any(part in ("", ".", "..") for part in relative.split("/")):
            raise self.fail.refused(f"member {_shown(name)} has an empty, '.' or '..' segment")
        return relative

    def _check_root(self, top: str, tar: tarfile.TarFile) -> None:
        found = _ROOT.fullmatch(top)
        if found is None or not self.commit_sha.startswith(found["sha"]):
            raise self.fail.refused(
                f"its top-level folder {_shown(top)} is not named "
                f"{{owner}}-{{repo}}-{self.commit_sha[:7]}"
            )
        # `git archive` (and GitHub) record the commit in a pax global header
        comment = tar.pax_headers.get("comment")
        if comment is not None and comment != self.commit_sha:
            raise self.fail.refused(f"it is the archive of commit {_shown(comment[:40])}")
        self._root = top

    def _keep(
        self, tar: tarfile.TarFile, member: tarfile.TarInfo, kind: str, entry: TreeEntry
    ) -> None:
        if entry.is_symlink and kind == "symlink":
            data = member.linkname.encode("utf-8", "surrogateescape")
        elif entry.is_blob and kind == "file":
            if self.kept_bytes + member.size > self.max_kept_bytes:
                raise self.fail(
                    f"has more than {self.max_kept_bytes / MB:g} MB of files to keep; "
                    "the source's files are too large to read from an archive",
                    kind=FailureKind.PERMANENT,
                )
            extracted = tar.extractfile(member)
            data = extracted.read() if extracted is not None else b""
        else:
            return  # not the kind of entry the tree lists: the raw host serves the blob
        if git_blob_sha(data) != entry.sha:
            return  # export-subst, eol conversion: the raw host serves the blob itself
        self.kept[entry.path] = data
        self.kept_bytes += len(data)


def _kind(member: tarfile.TarInfo) -> str | None:
    if member.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
        return "file"
    if member.type == tarfile.DIRTYPE:
        return "folder"
    if member.type == tarfile.SYMTYPE:
        return "symlink"
    return None


def _ancestors(path: str) -> Iterator[str]:
    """The folders above `path` below the top-level folder, outermost first."""
    parts = path.split("/")
    for end in range(1, len(parts)):
        yield "/".join(parts[:end])
