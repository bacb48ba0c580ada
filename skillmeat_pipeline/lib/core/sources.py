"""The sources file (SPEC §2): the repositories that are marketplace sources, validated."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from skillmeat_pipeline.lib.core.addresses import (
    AddressPolicy,
    UrlError,
    credentials_problem,
    display_url,
    github_url,
    url_origin,
)

DEFAULT_SOURCES_FILE = "sources.yaml"
# GitHub's own rules: an owner is 1-39 letters, digits, '-' (and '_' for managed users); a
# repository 1-100 letters, digits, '.', '-', '_', and never '.' or '..'
GITHUB_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,38}/(?!\.\.?$)[A-Za-z0-9_.-]{1,100}$")
URL_RE = re.compile(r"^(https?|ssh|git)://[^\s/]+(/\S*)?$|^[\w.-]+@[\w.-]+:\S+$")
# Dagster rejects these in partition keys; `,[]` break the UI's partition range syntax.
FORBIDDEN_KEY_PARTS = ("...", ",", "[", "]")


class SourcesFileError(ValueError):
    """The sources file cannot be used; the message names the source and the field."""


def relative_root_hint(value: str) -> str:
    """`value` as a folder of the repository (no leading or trailing `/`); a ValueError when it
    is empty or leads out of the repository (`..`)."""
    cleaned = value.strip("/")
    if not cleaned or ".." in cleaned.split("/"):
        raise ValueError(f"must be a relative folder inside the repository, got {value!r}")
    return cleaned


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
            raise ValueError(
                f"must be 'owner/repo' as GitHub names them (letters, digits, '-', '_'; the "
                f"repository also '.', and never '.' or '..'), got {value[:200]!r}"
            )
        return value

    @field_validator("url")
    @classmethod
    def _url_is_git_url(cls, value: str) -> str:
        # checked first: every later message may quote the URL
        problem = credentials_problem(value)
        if problem:
            # a token in the URL would reach logs, libgit2's config and the catalog
            raise ValueError(
                f"{problem}: credentials in a URL are never accepted or stored; GitHub sources "
                "get GITHUB_TOKEN through libgit2's credentials callback"
            )
        if not URL_RE.match(value):
            raise ValueError(f"not a git URL (https, http, ssh or git): {display_url(value)!r}")
        try:
            AddressPolicy.from_env().check(value)
        except UrlError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("root_hint")
    @classmethod
    def _root_hint_is_relative(cls, value: str | None) -> str | None:
        return None if value is None else relative_root_hint(value)

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
    return github_url("SKILLMEAT_GITHUB_GIT_URL").rstrip("/")


def repository_identities(source: SourceConfig) -> list[str]:
    """Names of the repository a source indexes: two sources sharing one index it twice.

    A GitHub name compares case-insensitively, like GitHub; a URL by host, port and path
    (without `.git` or a trailing `/`), its path case-insensitively on the GitHub git host.
    """
    identities = [f"github {source.github.lower()}"] if source.github else []
    try:
        origin = url_origin(source.url)
    except UrlError:
        return identities
    scp = "://" not in source.url and ":" in source.url
    path = source.url.split(":", 1)[1] if scp else urlsplit(source.url).path
    path = "/" + path.strip("/").removesuffix(".git").strip("/")
    if AddressPolicy.from_env().is_github(source.url):
        path = path.lower()
    return [*identities, f"{origin.host}:{origin.port}{path}"]


def sources_file_path() -> Path:
    return Path(os.environ.get("SKILLMEAT_SOURCES_FILE", DEFAULT_SOURCES_FILE))


@dataclass(frozen=True)
class SourceEntries:
    """A sources file read entry by entry: what can be indexed, and what is wrong with the rest.

    `invalid` maps a partition key (or `source #N` for an entry without one) to the problem of its
    entry, so a run fails exactly the partitions whose entries are bad; `problems` lists them all.
    """

    origin: str
    valid: list[SourceConfig] = field(default_factory=list)
    invalid: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def strict(self) -> list[SourceConfig]:
        """The sources, or `SourcesFileError` naming every bad entry."""
        if self.problems:
            raise SourcesFileError(f"{self.origin}: " + "; ".join(self.problems))
        return self.valid


# bounds on a file anyone may have written: 10,000 sources take about 1 MB
MAX_SOURCES_FILE_CHARS = 8 * 1024 * 1024
MAX_EXPANDED_NODES = 1_000_000


class _RepeatedKey(yaml.YAMLError):
    pass


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key repeated inside a mapping is an error.

    PyYAML keeps the last value of a repeated key; in a sources file that silently drops a field,
    or every source of the first `sources:` list.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults`: keys written beside it override it, as YAML says
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key: the base class says so
            if first is not None:
                raise _RepeatedKey(
                    f"line {line}: key {_shown(key)!r} is repeated (first on line {first}); "
                    "the second would silently replace the first"
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    # PyYAML's own text quotes the lines around the problem, which may hold a credential
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    return str(exc)


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many nodes `node` stands for once every alias is expanded (shared nodes counted each
    time they are referred to), computed once per distinct node."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    sizes[id(node)] = size
    return size


def _load_yaml(text: str, origin: str) -> tuple[Any, list[int]]:
    """The document and the line of each entry of its `sources` list."""
    if len(text) > MAX_SOURCES_FILE_CHARS:
        raise SourcesFileError(
            f"{origin}: {len(text):,} characters, more than a sources file may hold "
            f"({MAX_SOURCES_FILE_CHARS:,}); split it or remove what is not a source"
        )
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SourcesFileError(
                f"{origin}: the file is empty or holds only comments, so it lists no source; "
                "nothing was changed (a file that really lists none says `sources: []`)"
            )
        # aliases of aliases grow exponentially when read (a "billion laughs")
        if _expanded_size(node, {}) > MAX_EXPANDED_NODES:
            raise SourcesFileError(
                f"{origin}: its aliases (`*name`) expand to more than {MAX_EXPANDED_NODES:,} "
                "values; write the sources out instead"
            )
        data = loader.construct_document(node)
    except RecursionError:
        raise SourcesFileError(f"{origin}: nested too deeply to be a sources file") from None
    except _RepeatedKey as exc:
        raise SourcesFileError(f"{origin}: {exc}") from None
    except yaml.YAMLError as exc:
        raise SourcesFileError(f"{origin}: not valid YAML: {_yaml_problem(exc)}") from None
    finally:
        loader.dispose()
    lines: list[int] = []
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == "sources" and isinstance(value_node, yaml.SequenceNode):
                lines = [item.start_mark.line + 1 for item in value_node.value]
    return data, lines


def _shown(value: object) -> str:
    text = str(value)[:200]
    return text if text.isprintable() else repr(text)


def entry_key(raw: dict[Any, Any]) -> str | None:
    """The partition key an entry asks for: `key`, else its `github` name."""
    for name in ("key", "github"):
        if isinstance(raw.get(name), str) and raw[name]:
            return str(raw[name])
    return None


def _describe(error: ErrorDetails) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "(source)"
    return f"field '{where}': {str(error['msg']).removeprefix('Value error, ')}"


def read_sources(text: str, origin: str = "sources file") -> SourceEntries:
    """Read a sources file's YAML entry by entry.

    The file as a whole must be one mapping with a `sources` list, without a repeated key: if not,
    `SourcesFileError` (nothing in it can be trusted). A bad entry (unknown field, invalid key,
    owner/repo or URL, credentials or a forbidden address in its URL, a key or repository that
    another entry already has) lands in `invalid`; the rest in `valid`.
    """
    data, lines = _load_yaml(text, origin)
    if not isinstance(data, dict):
        raise SourcesFileError(
            f"{origin}: expected a mapping with a 'sources' list (`sources:`, then one "
            "`- github: owner/repo` entry a line)"
        )
    unknown = sorted(str(k) for k in data if k != "sources")
    if unknown:
        raise SourcesFileError(f"{origin}: unknown top-level field(s): {', '.join(unknown)}")
    raw_sources = data.get("sources")
    if not isinstance(raw_sources, list):
        raise SourcesFileError(
            f"{origin}: 'sources' must be a list of sources; nothing was changed (a file that "
            "really lists none says `sources: []`)"
        )
    valid: list[SourceConfig] = []
    invalid: dict[str, str] = {}
    problems: list[str] = []
    first_by_key: dict[str, int] = {}
    first_by_identity: dict[str, int] = {}
    for index, raw in enumerate(raw_sources):
        key = entry_key(raw) if isinstance(raw, dict) else None
        url = raw.get("url") if isinstance(raw, dict) else None
        name = key or (display_url(url) if isinstance(url, str) and url else None)
        line = lines[index] if index < len(lines) else None
        who = (f"line {line}: " if line else "") + f"source #{index + 1}"
        who += f" ({_shown(name)})" if name else ""

        def reject(problem: str, slot: str | None = key, index: int = index) -> None:
            problems.append(problem)
            invalid.setdefault(slot or f"source #{index + 1}", problem)

        if not isinstance(raw, dict):
            reject(f"{who}: must be a mapping with 'github' or 'url'")
            continue
        try:
            source = SourceConfig.model_validate(raw)
        except ValidationError as exc:
            reject(f"{who}, " + "; ".join(_describe(e) for e in exc.errors()))
            continue
        if source.key in first_by_key:
            # the partition would name two entries: neither is indexed
            reject(f"{who}, field 'key': duplicate of source #{first_by_key[source.key] + 1}")
            continue
        first_by_key[source.key] = index
        identities = repository_identities(source)
        same = next((first_by_identity[i] for i in identities if i in first_by_identity), None)
        if same is not None:
            reject(
                f"{who}: the same repository as source #{same + 1} (compared by GitHub name or "
                "by host, port and path, case-insensitively on GitHub); one repository is one "
                "source",
                source.key,
            )
            continue
        for identity in identities:
            first_by_identity.setdefault(identity, index)
        valid.append(source)
    return SourceEntries(
        origin, [s for s in valid if s.key not in invalid], invalid=invalid, problems=problems
    )


def parse_sources(text: str, origin: str = "sources file") -> list[SourceConfig]:
    """Validate the YAML text of a sources file; every problem names the line, the source and
    the field."""
    return read_sources(text, origin).strict()


def read_sources_file(path: Path | None = None) -> SourceEntries:
    """`read_sources` of the sources file (`SKILLMEAT_SOURCES_FILE`, default ./sources.yaml)."""
    path = path or sources_file_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SourcesFileError(
            f"{path}: sources file not found (set SKILLMEAT_SOURCES_FILE)"
        ) from None
    except UnicodeDecodeError as exc:
        raise SourcesFileError(f"{path}: not UTF-8 text ({exc.reason})") from None
    return read_sources(text, origin=str(path))


def load_sources(path: Path | None = None) -> list[SourceConfig]:
    """Read and validate the sources file; any bad entry is a `SourcesFileError`."""
    return read_sources_file(path).strict()


def partition_changes(
    configured_keys: Sequence[str], existing_keys: Sequence[str]
) -> tuple[list[str], list[str]]:
    """(keys to add, in file order; keys to remove, sorted) to make partitions equal the file."""
    existing = set(existing_keys)
    configured = set(configured_keys)
    added = [key for key in configured_keys if key not in existing]
    removed = sorted(existing - configured)
    return added, removed
