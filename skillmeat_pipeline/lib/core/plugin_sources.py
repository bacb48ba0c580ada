"""Plugin sources (SPEC §2.1): what the entries of an indexed marketplace reference.

A marketplace source's last scan stores its marketplace files (`Detection.marketplace`: each
plugin record keeps the entry's `source` and the entry itself). Every entry whose `source` is a
`github`, `url` or `git-subdir` object becomes a plugin source keyed `<entry name>@<marketplace
key>`; `npm` and any other form are listed as skipped with the reason. Entry content is untrusted:
each form is validated with pydantic, strings and counts are bounded, and nothing here raises on
odd input: a bad entry is skipped or recorded as a problem on its marketplace.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from skillmeat_pipeline.lib.core.sources import (
    FORBIDDEN_KEY_PARTS,
    GITHUB_REPO_RE,
    SourceConfig,
    github_base_url,
)

# A marketplace lists a few hundred plugins (the official one: 286). Beyond this many entries a
# marketplace source yields no more plugin sources: each is a partition, and a hostile
# marketplace.json of 100,000 entries must not become 100,000 partitions.
MAX_PLUGIN_SOURCES_PER_MARKETPLACE = 1000
MAX_ENTRY_NAME_CHARS = 128
MAX_URL_CHARS = 2048
MAX_REF_CHARS = 255
MAX_PATH_CHARS = 1024
# What of an entry is kept to describe its plugin (and merged into the plugin artifact).
MAX_ENTRY_JSON_CHARS = 16 * 1024
GITHUB_HOSTS = frozenset({"github.com", "www.github.com"})
_COMMIT_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")

Ref = Annotated[str, StringConstraints(min_length=1, max_length=MAX_REF_CHARS)]
Url = Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL_CHARS)]


class _Pinnable(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    ref: Ref | None = None
    sha: Annotated[str, StringConstraints(pattern=_COMMIT_RE.pattern)] | None = None


class GitHubEntry(_Pinnable):
    source: Literal["github"]
    repo: Annotated[str, StringConstraints(max_length=200)]

    @field_validator("repo")
    @classmethod
    def _owner_and_repo(cls, value: str) -> str:
        # a Python pattern: pydantic's own regex engine has no look-ahead
        if not GITHUB_REPO_RE.match(value):
            raise ValueError(f"{value!r} is not a GitHub owner/repo")
        return value


class UrlEntry(_Pinnable):
    source: Literal["url"]
    url: Url


class GitSubdirEntry(_Pinnable):
    source: Literal["git-subdir"]
    url: Url
    path: Annotated[str, StringConstraints(min_length=1, max_length=MAX_PATH_CHARS)]


FetchableEntry = GitHubEntry | UrlEntry | GitSubdirEntry
_FORMS: dict[str, type[FetchableEntry]] = {
    "github": GitHubEntry,
    "url": UrlEntry,
    "git-subdir": GitSubdirEntry,
}


class PluginSourceConfig(SourceConfig):
    """A source that a marketplace entry references (SPEC §2.1), indexed like any source."""

    marketplace_key: str
    plugin: str
    pinned_commit: str | None = None
    # the entry as the marketplace lists it (bounded): the plugin's manifest, or merged into it
    entry: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SkippedEntry:
    """A listed entry that is not fetched (npm, an unknown or invalid form): shown, not indexed."""

    key: str
    marketplace_key: str
    plugin: str
    reason: str
    location: str  # what the entry points at, for people (`npm:package`, a URL, or "")


@dataclass(frozen=True, slots=True)
class MarketplacePlugins:
    """What one marketplace source's entries become."""

    sources: tuple[PluginSourceConfig, ...] = ()
    skipped: tuple[SkippedEntry, ...] = ()
    problems: tuple[str, ...] = ()


def plugin_key(name: str, marketplace_key: str) -> str:
    """The key of a plugin source: Claude Code installs a plugin as `name@marketplace`."""
    return f"{name}@{marketplace_key}"


def name_problem(name: object) -> str | None:
    """Why `name` cannot name a plugin source (a partition key), or None."""
    if not isinstance(name, str) or not name.strip():
        return "has no name"
    if len(name) > MAX_ENTRY_NAME_CHARS:
        return f"name is longer than {MAX_ENTRY_NAME_CHARS} characters"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return f"name {name!r} holds control characters"
    if "@" in name or name != name.strip() or any(part in name for part in FORBIDDEN_KEY_PARTS):
        return f"name {name!r} is not a valid partition key (no '@', '...', ',', '[', ']')"
    return None


def github_repo_of(url: str) -> str | None:
    """`owner/repo` when `url` is a repository on GitHub (or the configured GitHub git host)."""
    if url.startswith("git@github.com:"):
        path = url.removeprefix("git@github.com:")
    else:
        parts = urlsplit(url)
        hosts = {*GITHUB_HOSTS, urlsplit(github_base_url()).netloc.lower()}
        if parts.scheme not in ("https", "http") or parts.netloc.lower() not in hosts:
            return None
        if parts.query or parts.fragment:
            return None
        path = parts.path
    repo = path.strip("/").removesuffix(".git")
    return repo if GITHUB_REPO_RE.match(repo) else None


def _same_repository(config: SourceConfig, marketplace: SourceConfig) -> bool:
    if config.github and marketplace.github:
        return config.github.lower() == marketplace.github.lower()

    def normal(url: str) -> str:
        return url.rstrip("/").removesuffix(".git").lower()

    return normal(config.url) == normal(marketplace.url)


def _bounded_entry(item: Mapping[str, Any]) -> dict[str, Any]:
    """The entry when its JSON is small enough to keep, else its name, description and source."""
    text = json.dumps(item, sort_keys=True, default=str)
    if len(text) <= MAX_ENTRY_JSON_CHARS:
        return dict(item)
    kept = {key: item[key] for key in ("name", "description", "version") if key in item}
    return kept if len(json.dumps(kept, default=str)) <= MAX_ENTRY_JSON_CHARS else {}


def entry_digest(entry: Mapping[str, Any]) -> str:
    """A stable digest of an entry (a changed entry is a changed plugin)."""
    return hashlib.sha1(json.dumps(entry, sort_keys=True, default=str).encode()).hexdigest()


def _location(source: object) -> str:
    if not isinstance(source, Mapping):
        return ""
    for field in ("url", "repo"):
        value = source.get(field)
        if isinstance(value, str):
            return value[:MAX_URL_CHARS]
    package = source.get("package")
    return f"npm:{package}"[:MAX_URL_CHARS] if isinstance(package, str) else ""


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    # pydantic quotes the input; an untrusted value is shown escaped, never raw
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def _entry_records(marketplace: Mapping[str, Any] | None) -> list[tuple[str, Mapping[str, Any]]]:
    """(marketplace.json path, plugin record) of every listed entry, in file order."""
    files = (marketplace or {}).get("marketplaces")
    records: list[tuple[str, Mapping[str, Any]]] = []
    for file in files if isinstance(files, list) else []:
        if not isinstance(file, Mapping) or not isinstance(file.get("plugins"), list):
            continue
        path = str(file.get("path") or "marketplace.json")
        records += [(path, r) for r in file["plugins"] if isinstance(r, Mapping)]
    return records


def plugin_sources(
    marketplace_source: SourceConfig, marketplace: Mapping[str, Any] | None
) -> MarketplacePlugins:
    """The plugin sources, skipped entries and problems of one indexed marketplace source.

    Relative entries (a path inside the repository) are the marketplace's own plugins and are
    indexed with it. Plugin sources never spawn plugin sources (a plugin is not a marketplace).
    """
    if isinstance(marketplace_source, PluginSourceConfig):
        return MarketplacePlugins()
    market_key = marketplace_source.key
    sources: list[PluginSourceConfig] = []
    skipped: list[SkippedEntry] = []
    problems: list[str] = []
    seen: set[str] = set()
    remote = [
        (path, record)
        for path, record in _entry_records(marketplace)
        if not isinstance(record.get("source"), str)
    ]
    for number, (path, record) in enumerate(remote, start=1):
        if len(sources) + len(skipped) >= MAX_PLUGIN_SOURCES_PER_MARKETPLACE:
            problems.append(
                f"{len(remote) - number + 1} more entries are not indexed: a marketplace yields "
                f"at most {MAX_PLUGIN_SOURCES_PER_MARKETPLACE} plugin sources"
            )
            break
        name = record.get("name")
        if (problem := name_problem(name)) is not None:
            problems.append(f"{path}: entry #{number} {problem}; it is not indexed")
            continue
        assert isinstance(name, str)
        key = plugin_key(name, market_key)
        if key in seen:
            problems.append(f"{path}: entry {name!r} is listed twice; only the first is indexed")
            continue
        seen.add(key)
        source = record.get("source")
        raw_entry = record.get("entry")
        entry = _bounded_entry(raw_entry if isinstance(raw_entry, Mapping) else record)
        outcome = _plugin_source(marketplace_source, key, name, source, entry)
        if isinstance(outcome, str):
            skipped.append(SkippedEntry(key, market_key, name, outcome, _location(source)))
        else:
            sources.append(outcome)
    return MarketplacePlugins(tuple(sources), tuple(skipped), tuple(problems))


def _plugin_source(
    marketplace_source: SourceConfig,
    key: str,
    name: str,
    source: object,
    entry: dict[str, Any],
) -> PluginSourceConfig | str:
    """The plugin source of one entry, or why it is skipped."""
    if not isinstance(source, Mapping):
        return f"source is not a path or an object: {type(source).__name__}"
    form = source.get("source")
    if form == "npm":
        return "npm packages are not fetched (only git repositories are indexed)"
    model = _FORMS.get(form) if isinstance(form, str) else None
    if model is None:
        return f"unknown source form {str(form)[:40]!r} (known: github, url, git-subdir, npm)"
    try:
        parsed = model.model_validate(dict(source))
    except ValidationError as exc:
        return f"invalid {form} source ({_first_error(exc)})"
    fields: dict[str, Any] = {"key": key, "ref": parsed.ref}
    if isinstance(parsed, GitHubEntry):
        fields["github"] = parsed.repo
    elif repo := github_repo_of(parsed.url):
        fields["github"] = repo
    else:
        fields["url"] = parsed.url
    if isinstance(parsed, GitSubdirEntry):
        fields["root_hint"] = parsed.path
    try:
        config = PluginSourceConfig.model_validate(
            fields
            | {
                "marketplace_key": marketplace_source.key,
                "plugin": name,
                "pinned_commit": parsed.sha,
                "entry": entry,
            }
        )
    except ValidationError as exc:
        return f"invalid {form} source ({_first_error(exc)})"
    if _same_repository(config, marketplace_source):
        return "points at the marketplace's own repository, which is indexed as the marketplace"
    return config
