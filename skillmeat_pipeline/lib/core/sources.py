"""The sources file (SPEC §2): the repositories that are marketplace sources, validated."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

DEFAULT_SOURCES_FILE = "sources.yaml"
GITHUB_REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
URL_RE = re.compile(r"^(https?|ssh|git)://[^\s/]+(/\S*)?$|^[\w.-]+@[\w.-]+:\S+$")
# Dagster rejects these in partition keys; `,[]` break the UI's partition range syntax.
FORBIDDEN_KEY_PARTS = ("...", ",", "[", "]")


class SourcesFileError(ValueError):
    """The sources file cannot be used; the message names the source and the field."""


class SourceConfig(BaseModel):
    """One marketplace source as declared in the sources file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    url: str
    github: str | None = None
    ref: str | None = None
    root_hint: str | None = None
    exclude: list[str] = Field(default_factory=list)
    deep_indexing: bool = False

    @field_validator("github")
    @classmethod
    def _github_is_owner_repo(cls, value: str | None) -> str | None:
        if value is not None and not GITHUB_REPO_RE.match(value):
            raise ValueError(f"must be 'owner/repo', got {value!r}")
        return value

    @field_validator("url")
    @classmethod
    def _url_is_git_url(cls, value: str) -> str:
        if value and not URL_RE.match(value):
            raise ValueError(f"not a git URL (https, http, ssh or git): {value!r}")
        if re.match(r"^https?://[^/@]*:[^/@]*@", value):
            # A token in the URL would end up in logs and in libgit2's config.
            raise ValueError("credentials in the URL are not allowed; set GITHUB_TOKEN instead")
        return value

    @field_validator("root_hint")
    @classmethod
    def _root_hint_is_relative(cls, value: str | None) -> str | None:
        if value is None:
            return None
        cleaned = value.strip("/")
        if not cleaned or ".." in cleaned.split("/"):
            raise ValueError(f"must be a relative folder inside the repository, got {value!r}")
        return cleaned

    @model_validator(mode="before")
    @classmethod
    def _derive_key_and_url(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        github = data.get("github")
        if not data.get("url") and not github:
            raise ValueError("needs 'url' or 'github'")
        if not data.get("key") and not github:
            raise ValueError("needs 'key' when 'github' is not given")
        derived = dict(data)
        if not data.get("key"):
            derived["key"] = github
        if not data.get("url") and isinstance(github, str):
            derived["url"] = f"{github_base_url()}/{github}.git"
        return derived

    @field_validator("key")
    @classmethod
    def _key_is_partition_key(cls, value: str) -> str:
        if any(part in value for part in FORBIDDEN_KEY_PARTS) or any(
            ord(c) < 32 or ord(c) == 127 for c in value
        ):
            raise ValueError(
                f"{value!r} is not a valid partition key "
                "(no '...', ',', '[', ']' or control characters)"
            )
        return value


def github_base_url() -> str:
    """Where `github: owner/repo` sources are cloned from (a GitHub Enterprise host can be set)."""
    return os.environ.get("SKILLMEAT_GITHUB_GIT_URL", "https://github.com").rstrip("/")


class SourcesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: Annotated[list[SourceConfig], Field(default_factory=list)]


def sources_file_path() -> Path:
    return Path(os.environ.get("SKILLMEAT_SOURCES_FILE", DEFAULT_SOURCES_FILE))


def _describe(error: ErrorDetails, raw_sources: list[Any]) -> str:
    loc = list(error["loc"])
    if len(loc) >= 2 and loc[0] == "sources" and isinstance(loc[1], int):
        index = loc[1]
        raw = raw_sources[index] if index < len(raw_sources) else {}
        name = (
            raw.get("key") or raw.get("github") or raw.get("url") if isinstance(raw, dict) else None
        )
        field = ".".join(str(p) for p in loc[2:]) or "(source)"
        who = f"source #{index + 1}" + (f" ({name})" if name else "")
        return f"{who}, field '{field}': {error['msg']}"
    return f"field '{'.'.join(map(str, loc))}': {error['msg']}"


def parse_sources(text: str, origin: str = "sources file") -> list[SourceConfig]:
    """Validate the YAML text of a sources file; every problem names the source and the field."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise SourcesFileError(f"{origin}: not valid YAML: {exc}") from None
    if isinstance(data, list):
        data = {"sources": data}
    if not isinstance(data, dict):
        raise SourcesFileError(f"{origin}: expected a mapping with a 'sources' list")
    raw_sources = data.get("sources") or []
    try:
        parsed = SourcesFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(e, raw_sources) for e in exc.errors())
        raise SourcesFileError(f"{origin}: {problems}") from None
    seen: dict[str, int] = {}
    for index, source in enumerate(parsed.sources):
        if source.key in seen:
            raise SourcesFileError(
                f"{origin}: source #{index + 1} ({source.key}), field 'key': duplicate of source "
                f"#{seen[source.key] + 1}"
            )
        seen[source.key] = index
    return parsed.sources


def load_sources(path: Path | None = None) -> list[SourceConfig]:
    """Read and validate the sources file (`SKILLMEAT_SOURCES_FILE`, default ./sources.yaml)."""
    path = path or sources_file_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SourcesFileError(
            f"{path}: sources file not found (set SKILLMEAT_SOURCES_FILE)"
        ) from None
    except UnicodeDecodeError as exc:
        raise SourcesFileError(f"{path}: not UTF-8 text ({exc.reason})") from None
    return parse_sources(text, origin=str(path))


def partition_changes(
    configured_keys: Sequence[str], existing_keys: Sequence[str]
) -> tuple[list[str], list[str]]:
    """(keys to add, in file order; keys to remove, sorted) to make partitions equal the file."""
    existing = set(existing_keys)
    configured = set(configured_keys)
    added = [key for key in configured_keys if key not in existing]
    removed = sorted(existing - configured)
    return added, removed
