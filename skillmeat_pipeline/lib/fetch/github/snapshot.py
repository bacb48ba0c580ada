"""`ApiTreeSnapshot`: a commit's tree read over the GitHub API, its files from the raw host."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from skillmeat_pipeline.lib.core.models import TreeEntry
from skillmeat_pipeline.lib.core.retry import FailureKind
from skillmeat_pipeline.lib.fetch.github.errors import ApiError
from skillmeat_pipeline.lib.fetch.github.http import ScanStats

if TYPE_CHECKING:
    from skillmeat_pipeline.lib.fetch.github.client import GitHubClient


def git_blob_sha(data: bytes) -> str:
    """The SHA git gives a blob with these bytes."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(slots=True)
class ApiTreeSnapshot:
    """A commit's tree read over the GitHub API; satisfies `TreeSnapshot`.

    Blobs are read from the raw host at the commit SHA (so a push mid-scan cannot mix commits) and
    checked against their blob SHA. Blobs read ahead (`prefetch`, or from the repository archive)
    wait in `read_ahead`, already checked, so detection and extraction read them from memory.
    """

    repo: str
    commit_sha: str
    tree_sha: str
    entries: list[TreeEntry]
    sizes: dict[str, int]
    stats: ScanStats
    client: GitHubClient = field(repr=False)
    read_ahead: dict[str, bytes] = field(default_factory=dict, repr=False)

    def size_of(self, entry: TreeEntry) -> int | None:
        """The blob's size from the tree listing, known before reading it."""
        return self.sizes.get(entry.path)

    def read_blob(self, entry: TreeEntry) -> bytes:
        if not (entry.is_blob or entry.is_symlink):
            raise ValueError(f"{self.repo}: {entry.path} is not a file or symlink")
        found = self.read_ahead.get(entry.path)
        return found if found is not None else self._read_raw(entry)

    def prefetch(self, entries: Iterable[TreeEntry], *, workers: int) -> int:
        """Read the files of `entries` not read ahead yet from the raw host, `workers` at a time.

        The reads share the client's connections. The first failure stops the reads not started
        yet and is raised. Returns how many files were read.
        """
        missing = [
            e
            for e in dict.fromkeys(entries)
            if (e.is_blob or e.is_symlink) and e.path not in self.read_ahead
        ]
        if not missing:
            return 0
        with ThreadPoolExecutor(
            max_workers=max(1, min(workers, len(missing))), thread_name_prefix="raw-read"
        ) as pool:
            futures = {pool.submit(self._read_raw, entry): entry for entry in missing}
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in done if f.exception() is not None), None)
            error = failed.exception() if failed is not None else None
            if error is not None:
                for future in futures:
                    future.cancel()
                raise error
            for future, entry in futures.items():
                self.read_ahead[entry.path] = future.result()
        return len(missing)

    def _read_raw(self, entry: TreeEntry) -> bytes:
        data = self.client.read_raw(self.repo, self.commit_sha, entry.path, scan=self.stats)
        if git_blob_sha(data) != entry.sha:
            raise ApiError(
                f"{self.repo}: the raw host returned content for {entry.path} at "
                f"{self.commit_sha[:12]} that does not match blob {entry.sha[:12]}; "
                "retry later",
                kind=FailureKind.TRANSIENT,
                repo=self.repo,
            )
        return data
