"""The GitHub emulator's repository archives: the gzipped tar `git archive` makes of a commit,
produced while it is sent and cached by commit (`ArchiveCache`), and the broken ones a test asks
for (cut in the middle, never ending).
"""

from __future__ import annotations

import io
import tarfile
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pygit2

from skillmeat_pipeline.lib.core.models import MODE_GITLINK, MODE_SYMLINK, MODE_TREE
from skillmeat_pipeline.testing.github_replies import Cut, Repo, open_repo

ARCHIVE_CHUNK = 64 * 1024
# an endless archive sends a little every this many seconds until the client or close() ends it
_TRICKLE_S = 0.05
_TRICKLE_MAX_S = 600.0
_ARCHIVE_CACHE_BYTES = 256 * 1024 * 1024


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


def cut_after(data: bytes) -> Iterator[bytes]:
    """`data`, then the connection is cut as if the server went away."""
    for start in range(0, len(data), ARCHIVE_CHUNK):
        yield data[start : start + ARCHIVE_CHUNK]
    raise Cut


class ArchiveCache:
    """Archives already built, by (repository folder, commit), the least recently sent dropped
    beyond a total size: GitHub caches them too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._archives: OrderedDict[tuple[Path, str], bytes] = OrderedDict()

    def chunks(self, repo: Repo, sha: str, root: str) -> Iterator[bytes]:
        """The archive from the cache, or built while it is sent and then cached."""
        key = (repo.path, sha)
        with self._lock:
            cached = self._archives.get(key)
            if cached is not None:
                self._archives.move_to_end(key)
        if cached is not None:
            for start in range(0, len(cached), ARCHIVE_CHUNK):
                yield cached[start : start + ARCHIVE_CHUNK]
            return
        built: list[bytes] = []
        for chunk in tarball(repo, sha, root):
            built.append(chunk)
            yield chunk
        whole = b"".join(built)
        with self._lock:
            self._archives[key] = whole
            while sum(len(v) for v in self._archives.values()) > _ARCHIVE_CACHE_BYTES:
                self._archives.popitem(last=False)


def tarball(repo: Repo, sha: str, root: str) -> Iterator[bytes]:
    """The gzipped tar `git archive` makes of commit `sha`, produced while it is sent.

    A pax global header holds the commit id; every tree entry is a member below `root/`, in
    the tree's own depth-first order: folders (and submodules, as empty folders), files with
    their executable bit, symlinks as symlink members.
    """
    sink = _Sink()
    with open_repo(repo) as git:
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
                if sink.size >= ARCHIVE_CHUNK:
                    yield sink.take()
    yield sink.take(last=True)


def endless_tarball(root: str, sha: str, closing: threading.Event) -> Iterator[bytes]:
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
        if closing.wait(_TRICKLE_S):
            return
        yield deflate.compress(bytes(tarfile.BLOCKSIZE)) + deflate.flush(zlib.Z_SYNC_FLUSH)
