"""What a scan may spend and where its trees come from: `ScanSettings` (limits, read from the
environment by `from_env`) and `Fetchers` (libgit2 and the GitHub API client).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

from skillmeat_pipeline.lib.core.environment import number_from_env
from skillmeat_pipeline.lib.core.retry import BackoffPolicy
from skillmeat_pipeline.lib.core.secrets import Secret
from skillmeat_pipeline.lib.core.sources import SourceConfig
from skillmeat_pipeline.lib.core.strategy import DEFAULT_MAX_CLONE_MB
from skillmeat_pipeline.lib.fetch.git.clone import CloneSettings
from skillmeat_pipeline.lib.fetch.github.archive import MB, ArchiveSettings
from skillmeat_pipeline.lib.fetch.github.client import GitHubClient


@dataclass(frozen=True, slots=True)
class ScanSettings:
    """Limits of one scan; `from_env` reads the variables SPEC §4 and §6 name."""

    clone: CloneSettings = field(default_factory=CloneSettings)
    max_clone_mb: float = DEFAULT_MAX_CLONE_MB
    clone_retries: BackoffPolicy = field(
        default_factory=lambda: BackoffPolicy(max_attempts=2, base_delay_s=1.0, max_delay_s=10.0)
    )
    # a rate limit that resets sooner than this is waited out; a later one fails the source
    max_rate_limit_wait_s: float = 60.0
    force: bool = False  # re-index even when the head is the indexed commit
    # the API path: the archive above `archive.threshold` planned reads, else this many raw reads
    # at a time
    archive: ArchiveSettings = field(default_factory=ArchiveSettings)
    raw_read_workers: int = 8
    # each archive attempt is one REST call: 2 for the tree + 3 stays far below the budget of 10
    archive_retries: BackoffPolicy = field(
        default_factory=lambda: BackoffPolicy(max_attempts=3, base_delay_s=1.0, max_delay_s=10.0)
    )

    @classmethod
    def from_env(cls, **overrides: Any) -> ScanSettings:
        """`SKILLMEAT_MAX_CLONE_MB`, the clone's variables and the archive's:
        `SKILLMEAT_ARCHIVE_THRESHOLD`, `SKILLMEAT_ARCHIVE_TIMEOUT_SECONDS` (default: the clone's
        `CLONE_TIMEOUT_SECONDS`) and `SKILLMEAT_MAX_ARCHIVE_MB`."""
        env = os.environ
        clone = CloneSettings.from_env()
        defaults = ArchiveSettings()
        archive = ArchiveSettings(
            threshold=number_from_env(
                env, "SKILLMEAT_ARCHIVE_THRESHOLD", int, defaults.threshold, allow_zero=True
            ),
            timeout_s=number_from_env(
                env, "SKILLMEAT_ARCHIVE_TIMEOUT_SECONDS", float, clone.timeout_s, allow_zero=False
            ),
            max_bytes=round(
                number_from_env(
                    env,
                    "SKILLMEAT_MAX_ARCHIVE_MB",
                    float,
                    defaults.max_bytes / MB,
                    allow_zero=False,
                )
                * MB
            ),
        )
        settings = cls(
            clone=clone,
            max_clone_mb=number_from_env(
                env, "SKILLMEAT_MAX_CLONE_MB", float, float(DEFAULT_MAX_CLONE_MB), allow_zero=True
            ),
            archive=archive,
        )
        return replace(settings, **overrides)


@dataclass(frozen=True, slots=True)
class Fetchers:
    """Where trees come from: libgit2 (token for GitHub hosts only) and the GitHub API."""

    github: GitHubClient
    token: Secret | None = None
    settings: ScanSettings = field(default_factory=ScanSettings)

    def token_for(self, source: SourceConfig) -> Secret | None:
        return self.token if source.github else None
