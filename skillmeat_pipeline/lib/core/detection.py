"""Find the Claude Code artifacts of a source tree (SPEC §3).

Detection works on the tree listing. It reads only the few blobs whose content decides what a path
is (`plugin.json`, `hooks.json`, Claude settings, MCP configs, `marketplace.json`) and symlink
targets: on the GitHub API path every read is a network request. Markdown is left to extraction.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import posixpath
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from skillmeat_pipeline.lib.core.manifests import parse_json_manifest
from skillmeat_pipeline.lib.core.models import (
    ArtifactType,
    DetectedArtifact,
    Detection,
    TreeEntry,
    TreeSnapshot,
)

DEFAULT_IGNORED_SEGMENTS = frozenset(
    {
        ".git",
        "node_modules",
        "vendor",
        ".venv",
        "venv",
        "__pycache__",
        "site-packages",
        "dist",
        "build",
        ".tox",
        ".next",
        "target",
        "fixtures",
        "__fixtures__",
        "testdata",
        "test-data",
        "test_data",
        "__snapshots__",
    }
)
# Documentation that sits in agents/ and commands/ folders without being an agent or a command.
NON_ARTIFACT_DOC_NAMES = frozenset(
    {
        "readme.md",
        "changelog.md",
        "license.md",
        "contributing.md",
        "claude.md",
        "agents.md",
        "index.md",
    }
)
CONTAINER_FOLDERS = {"agents": ArtifactType.AGENT, "commands": ArtifactType.COMMAND}
CANONICAL_SKILL_MANIFEST = "SKILL.md"
PLUGIN_MANIFEST_FOLDER = ".claude-plugin"
CLAUDE_SETTINGS_FOLDER = ".claude"
CLAUDE_SETTINGS_NAMES = frozenset({"settings.json", "settings.local.json"})
MCP_CONFIG_NAMES = frozenset({".mcp.json", "mcp.json"})
# The same bound Linux puts on a chain of symlinks; beyond it the chain is treated as a loop.
MAX_SYMLINK_HOPS = 40
ROOT_NAME_FALLBACK = "root"

# Confidence is the sum of the weights of an artifact's signals, less a penalty per problem.
SIGNAL_WEIGHTS: dict[str, int] = {
    "canonical_manifest_name": 70,
    "non_canonical_manifest_name": 50,
    "container_folder": 70,
    "listed_by_plugin_json": 70,
    "plugin_manifest": 70,
    "hooks_json_name": 40,
    "hooks_object": 45,
    "claude_settings_hooks": 85,
    "inline_plugin_hooks": 85,
    "mcp_config_file": 50,
    "mcp_servers_wrapper": 40,
    "top_level_server_map": 30,
    "plugin_json_mcp_servers": 85,
    "valid_json": 15,
    "valid_frontmatter": 20,
    "recovered_frontmatter": 10,
    "has_description": 10,
}
PROBLEM_PENALTY = 15


def score_confidence(signals: Sequence[str], problems: Sequence[str]) -> int:
    """Confidence 0-100 from the signals that found an artifact and the problems it has."""
    score = sum(SIGNAL_WEIGHTS.get(signal, 0) for signal in set(signals))
    return max(0, min(100, score - PROBLEM_PENALTY * len(problems)))


def _artifact_path(directory: str) -> str:
    """The artifact path of a directory: `.` for the repository root."""
    return directory or "."


def detect_artifacts(
    snapshot: TreeSnapshot,
    *,
    root_hint: str | None = None,
    exclude: Sequence[str] = (),
    repo_name: str | None = None,
    plugin_entry: Mapping[str, Any] | None = None,
) -> Detection:
    """Every artifact of `snapshot` under `root_hint`, outside ignored and `exclude`d paths.

    `exclude` holds glob patterns: one without `/` matches any path segment (`examples`,
    `*.draft.md`); one with a `/` (`docs/**`, `/examples`) matches a path from the repository root,
    and excludes everything below a folder it matches.
    `repo_name` (`repo` or `owner/repo`) names a skill or plugin at the repository root.
    Odd input never raises: it becomes a problem on the artifact or on the detection.

    `Detection.marketplace` is `{"marketplaces": [{"path", "name", "description", "owner",
    "plugins": [{"name", "source", "path", "exists"}]}]}`, one record per marketplace file (`path`
    and `exists` are None for remote sources); `Detection.symlinks` maps each in-scope symlink to
    its target as written.

    `plugin_entry` is the marketplace entry of a plugin source (SPEC §2.1): the root (`root_hint`)
    is then one `plugin` artifact, from its `plugin.json` merged with the entry's fields, or from
    the entry alone.
    """
    return _Detector(snapshot, root_hint, exclude, repo_name, plugin_entry).run()


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


def _basename(path: str) -> str:
    return path.rpartition("/")[2]


def _ancestors(path: str) -> Iterator[str]:
    """The folders holding `path`, nearest first, ending with the root `""`."""
    while path:
        path = _parent(path)
        yield path


def _normalize_root_hint(root_hint: str | None) -> str:
    if not root_hint:
        return ""
    cleaned = posixpath.normpath(root_hint.strip().strip("/"))
    return "" if cleaned in (".", "") else cleaned


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


@dataclass(frozen=True, slots=True)
class _ExcludePattern:
    regex: re.Pattern[str]
    matches_segment: bool  # no `/` in the pattern: it names a file or folder at any depth

    @classmethod
    def compile(cls, pattern: str) -> list[_ExcludePattern]:
        stripped = pattern.strip()
        anchored = stripped.startswith(("/", "./"))
        cleaned = stripped.removeprefix("./").strip("/")
        if not cleaned:
            return []
        matches_segment = "/" not in cleaned and not anchored
        compiled = [cls(re.compile(fnmatch.translate(cleaned)), matches_segment)]
        if cleaned.startswith("**/"):
            # `**/x` also means `x` at the root, which fnmatch's `*` (one or more chars) misses.
            compiled.extend(cls.compile(cleaned[3:]))
        return compiled

    def excludes(self, path: str) -> bool:
        if self.matches_segment:
            return any(self.regex.match(segment) for segment in path.split("/"))
        prefix = path
        while prefix:
            if self.regex.match(prefix):
                return True
            prefix = _parent(prefix)
        return False


@dataclass(slots=True)
class _Plugin:
    directory: str
    name: str
    artifact: DetectedArtifact
    manifest: dict[str, Any] | None


@dataclass(slots=True)
class _Detector:
    snapshot: TreeSnapshot
    root_hint: str | None
    exclude: Sequence[str]
    repo_name: str | None
    plugin_entry: Mapping[str, Any] | None = None
    root: str = ""
    excludes: list[_ExcludePattern] = field(default_factory=list)
    by_path: dict[str, TreeEntry] = field(default_factory=dict)
    # The tree as detection sees it: in-scope paths, symlinked folders followed, symlinked files
    # mapped to the blob they lead to. The root folder is "".
    files: dict[str, TreeEntry] = field(default_factory=dict)
    dirs: dict[str, str] = field(default_factory=dict)
    real_paths: dict[str, str] = field(default_factory=dict)  # paths reached through a symlink
    symlinks: dict[str, str] = field(default_factory=dict)
    link_targets: dict[str, str | None] = field(default_factory=dict)
    json_cache: dict[str, tuple[Any, list[str]]] = field(default_factory=dict)
    skill_dirs: dict[str, str] = field(default_factory=dict)  # folder -> its SKILL.md
    plugins: dict[str, _Plugin] = field(default_factory=dict)
    artifacts: dict[tuple[ArtifactType, str], DetectedArtifact] = field(default_factory=dict)
    marketplaces: list[dict[str, Any]] = field(default_factory=list)
    # files and folders that a marketplace entry without plugin.json lists -> that plugin's path
    entry_members: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def run(self) -> Detection:
        self.root = _normalize_root_hint(self.root_hint)
        self.excludes = [c for p in self.exclude for c in _ExcludePattern.compile(p)]
        self.by_path = {entry.path: entry for entry in self.snapshot.entries}
        if self.root and not any(
            path == self.root or path.startswith(self.root + "/") for path in self.by_path
        ):
            self.problems.append(
                f"root_hint {self.root!r} matches no folder of the repository: nothing below it "
                "to index (folder names are case-sensitive)"
            )
        self._build_view()
        self._detect_skills()
        self._detect_plugins()
        if self.plugin_entry is not None:
            self._detect_entry_root(self.plugin_entry)
        self._detect_container_documents()
        self._detect_plugin_listed_agents()
        self._detect_json_artifacts()
        self._assign_plugins()
        artifacts = sorted(self.artifacts.values(), key=lambda a: (a.path, a.artifact_type))
        for artifact in artifacts:
            artifact.confidence = score_confidence(artifact.signals, artifact.problems)
        return Detection(
            artifacts=artifacts,
            marketplace={"marketplaces": self.marketplaces} if self.marketplaces else None,
            problems=self.problems,
            symlinks=self.symlinks,
        )

    # --- scope and the view of the tree -------------------------------------------------------

    def _in_scope(self, path: str) -> bool:
        if self.root:
            if path != self.root and not path.startswith(self.root + "/"):
                return False
            # A root_hint the user chose wins over the ignore list (`build/skills` stays indexable).
            relative = path[len(self.root) + 1 :]
        else:
            relative = path
        if relative and any(s in DEFAULT_IGNORED_SEGMENTS for s in relative.split("/")):
            return False
        return not any(pattern.excludes(path) for pattern in self.excludes)

    def _build_view(self) -> None:
        if self._in_scope(""):
            self.dirs[""] = self.snapshot.tree_sha
        links: list[TreeEntry] = []
        for entry in self.snapshot.entries:
            if not self._in_scope(entry.path):
                continue
            if entry.is_tree:
                self.dirs[entry.path] = entry.sha
            elif entry.is_blob:
                self.files[entry.path] = entry
            elif entry.is_symlink:
                links.append(entry)
            # gitlinks (submodules) are another repository's commit, absent from this tree
        followed: set[str] = set()
        # Reversed so that pop() takes them in path order: of two links to one folder, the first
        # is the one followed.
        pending = [(link.path, link) for link in reversed(links)]
        while pending:
            view_path, link = pending.pop()
            pending.extend(self._follow_symlink(view_path, link, followed))

    def _link_target(self, link: TreeEntry) -> str | None:
        if link.path not in self.link_targets:
            data = self._read(link)
            try:
                self.link_targets[link.path] = None if data is None else data.decode("utf-8")
            except UnicodeDecodeError:
                self.problems.append(f"symlink {link.path}: target is not UTF-8")
                self.link_targets[link.path] = None
        return self.link_targets[link.path]

    def _resolve(self, path: str) -> tuple[str | None, str]:
        """The real path that `path` leads to through any symlinks ("" for the root), or None and
        the reason it leads nowhere."""
        pending = path.split("/")
        resolved: list[str] = []
        hops = 0
        while pending:
            part = pending.pop(0)
            entry = self.by_path.get("/".join([*resolved, part]))
            if entry is None or not entry.is_symlink:
                resolved.append(part)
                continue
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                return None, "a symlink loop"
            target = self._link_target(entry)
            if target is None:
                return None, "an unreadable target"
            joined = posixpath.normpath(posixpath.join("/".join(resolved), target))
            if target.startswith("/") or joined == ".." or joined.startswith("../"):
                return None, "a target outside the repository"
            resolved = []
            pending = ([] if joined == "." else joined.split("/")) + pending
        real = "/".join(resolved)
        if real and real not in self.by_path:
            return None, "a target that does not exist"
        return real, ""

    def _follow_symlink(
        self, view_path: str, link: TreeEntry, followed: set[str]
    ) -> list[tuple[str, TreeEntry]]:
        """Map a symlink into the view; returns the symlinks found inside a folder it follows."""
        target = self._link_target(link)
        self.symlinks[view_path] = target if target is not None else ""
        real, reason = self._resolve(link.path)
        if real is None:
            self.problems.append(f"symlink {view_path} -> {target}: {reason}, not followed")
            return []
        entry = self.by_path.get(real)
        if entry is not None and entry.is_blob:
            self.files[view_path] = entry
            self.real_paths[view_path] = real
            return []
        if entry is not None and not entry.is_tree:
            return []
        # A folder inside the scope is visited at its real path already; following it too would
        # find its artifacts twice. Folders outside root_hint are followed once.
        if self._in_scope(real) or real in followed:
            return []
        if any(s in DEFAULT_IGNORED_SEGMENTS for s in real.split("/")) or any(
            pattern.excludes(real) for pattern in self.excludes
        ):
            return []
        followed.add(real)
        self.dirs[view_path] = entry.sha if entry is not None else self.snapshot.tree_sha
        self.real_paths[view_path] = real
        prefix = f"{real}/" if real else ""
        nested: list[tuple[str, TreeEntry]] = []
        for inner in self.snapshot.entries:
            if not inner.path.startswith(prefix) or self._in_scope(inner.path):
                continue
            inner_view = f"{view_path}/{inner.path[len(prefix) :]}"
            if not self._in_scope(inner_view):
                continue
            self.real_paths[inner_view] = inner.path
            if inner.is_tree:
                self.dirs[inner_view] = inner.sha
            elif inner.is_blob:
                self.files[inner_view] = inner
            elif inner.is_symlink:
                nested.append((inner_view, inner))
        return nested

    # --- reading JSON -------------------------------------------------------------------------

    def _read(self, entry: TreeEntry) -> bytes | None:
        try:
            return self.snapshot.read_blob(entry)
        except (LookupError, ValueError, OSError) as exc:
            # A missing object or unreadable file is odd input; network errors propagate so the
            # caller can retry the scan.
            self.problems.append(f"{entry.path}: could not be read ({exc})")
            return None

    def _read_json(self, view_path: str) -> tuple[Any, list[str]]:
        entry = self.files[view_path]
        if entry.path not in self.json_cache:
            data = self._read(entry)
            if data is None:
                self.json_cache[entry.path] = (None, ["could not be read"])
            else:
                value, problems = parse_json_manifest(data)
                self.json_cache[entry.path] = (value, problems)
        value, problems = self.json_cache[entry.path]
        return value, [f"{view_path}: {problem}" for problem in problems]

    # --- artifacts ----------------------------------------------------------------------------

    def _repo_dir_name(self) -> str:
        return _basename(self.repo_name.strip("/")) if self.repo_name else ROOT_NAME_FALLBACK

    def _dir_name(self, directory: str) -> str:
        return _basename(directory) if directory else self._repo_dir_name()

    def _add(self, artifact: DetectedArtifact) -> DetectedArtifact:
        key = (artifact.artifact_type, artifact.path)
        existing = self.artifacts.get(key)
        if existing is not None:
            existing.signals.extend(s for s in artifact.signals if s not in existing.signals)
            return existing
        real = self.real_paths.get(_view_path(artifact))
        if real is not None:
            artifact.signals.append("symlinked")
            artifact.metadata["real_path"] = real
        self.artifacts[key] = artifact
        return artifact

    def _inside_skill(self, path: str) -> bool:
        return any(folder in self.skill_dirs for folder in _ancestors(path))

    def _detect_skills(self) -> None:
        for path in self.files:
            name = _basename(path)
            if name.lower() != "skill.md":
                continue
            folder = _parent(path)
            if folder not in self.skill_dirs or name == CANONICAL_SKILL_MANIFEST:
                self.skill_dirs[folder] = path
        for folder, manifest in self.skill_dirs.items():
            manifest_name = _basename(manifest)
            canonical = manifest_name == CANONICAL_SKILL_MANIFEST
            self._add(
                DetectedArtifact(
                    artifact_type=ArtifactType.SKILL,
                    path=_artifact_path(folder),
                    name=self._dir_name(folder),
                    content_sha=self.dirs.get(folder, self.files[manifest].sha),
                    manifest_path=self.files[manifest].path,
                    confidence=0,
                    signals=[
                        "canonical_manifest_name" if canonical else "non_canonical_manifest_name"
                    ],
                    metadata={} if canonical else {"manifest_name": manifest_name},
                )
            )

    def _detect_container_documents(self) -> None:
        for path, entry in self.files.items():
            name = _basename(path)
            # `*.md` as a shell reads it: `.md` alone is a hidden file without a stem.
            if not name.endswith(".md") or name == ".md" or name.lower() in NON_ARTIFACT_DOC_NAMES:
                continue
            segments = path.split("/")
            container = next(
                (i for i in range(len(segments) - 2, -1, -1) if segments[i] in CONTAINER_FOLDERS),
                None,
            )
            if container is None or self._inside_skill(path):
                continue
            kind = CONTAINER_FOLDERS[segments[container]]
            stem = segments[-1][: -len(".md")]
            namespaced = ":".join([*segments[container + 1 : -1], stem])
            name = namespaced if kind is ArtifactType.COMMAND else stem
            self._add_document(kind, path, entry, name, "container_folder")

    def _add_document(
        self, kind: ArtifactType, path: str, entry: TreeEntry, name: str, signal: str
    ) -> None:
        self._add(
            DetectedArtifact(
                artifact_type=kind,
                path=path,
                name=name,
                content_sha=entry.sha,
                manifest_path=entry.path,
                confidence=0,
                signals=[signal],
            )
        )

    def _detect_plugins(self) -> None:
        for path in self.files:
            if (
                _basename(path) != "plugin.json"
                or _basename(_parent(path)) != PLUGIN_MANIFEST_FOLDER
            ):
                continue
            folder = _parent(_parent(path))
            value, problems = self._read_json(path)
            manifest = value if isinstance(value, dict) else None
            if value is not None and manifest is None:
                problems.append(f"{path}: not a JSON object")
            signals = ["plugin_manifest"] + (["valid_json"] if manifest is not None else [])
            name = _text((manifest or {}).get("name")) or self._dir_name(folder)
            artifact = self._add(
                DetectedArtifact(
                    artifact_type=ArtifactType.PLUGIN,
                    path=_artifact_path(folder),
                    name=name,
                    content_sha=self.dirs.get(folder, self.files[path].sha),
                    manifest_path=self.files[path].path,
                    confidence=0,
                    signals=signals,
                    problems=problems,
                    metadata=_plugin_metadata(manifest or {}),
                )
            )
            self.plugins[folder] = _Plugin(folder, name, artifact, manifest)
            if manifest is not None:
                self._detect_plugin_json_members(path, name, manifest)

    def _detect_plugin_json_members(
        self, path: str, plugin_name: str, manifest: dict[str, Any]
    ) -> None:
        entry = self.files[path]
        hooks = manifest.get("hooks")
        if isinstance(hooks, dict):
            self._add(
                DetectedArtifact(
                    artifact_type=ArtifactType.HOOK,
                    path=path,
                    name=plugin_name,
                    content_sha=entry.sha,
                    manifest_path=entry.path,
                    confidence=0,
                    signals=["inline_plugin_hooks", "valid_json"],
                    metadata=_hooks_metadata(hooks),
                )
            )
        servers = manifest.get("mcpServers")
        if isinstance(servers, dict):
            signals = ["plugin_json_mcp_servers", "valid_json"]
            self._add_mcp_servers(path, servers, signals, [])

    def _detect_plugin_listed_agents(self) -> None:
        for folder, plugin in self.plugins.items():
            listed = (plugin.manifest or {}).get("agents")
            items = [listed] if isinstance(listed, str) else listed
            if not isinstance(items, list):
                continue
            for item in items:
                if not isinstance(item, str):
                    plugin.artifact.problems.append(f"plugin.json agents: not a path: {item!r}")
                    continue
                target = posixpath.normpath(posixpath.join(folder, item))
                if target == ".." or target.startswith("../"):
                    plugin.artifact.problems.append(f"plugin.json agent {item}: outside the repo")
                    continue
                target = "" if target == "." else target
                documents = [target] if target in self.files else self._markdown_under(target)
                if not documents and target not in self.by_path and target not in self.dirs:
                    plugin.artifact.problems.append(
                        f"plugin.json lists agent {item}, which does not exist"
                    )
                for document in documents:
                    if document.endswith(".md"):
                        stem = _basename(document)[: -len(".md")]
                        entry = self.files[document]
                        self._add_document(
                            ArtifactType.AGENT, document, entry, stem, "listed_by_plugin_json"
                        )

    def _markdown_under(self, folder: str) -> list[str]:
        if folder not in self.dirs:
            return []
        prefix = f"{folder}/" if folder else ""
        return [
            path
            for path in self.files
            if path.startswith(prefix)
            and path.endswith(".md")
            and _basename(path).lower() not in NON_ARTIFACT_DOC_NAMES
            and not self._inside_skill(path)
        ]

    def _detect_json_artifacts(self) -> None:
        for path in list(self.files):
            name = _basename(path)
            parent_name = _basename(_parent(path))
            if name == "hooks.json":
                self._detect_hooks_json(path)
            elif name in CLAUDE_SETTINGS_NAMES and parent_name == CLAUDE_SETTINGS_FOLDER:
                self._detect_settings_hooks(path)
            elif name in MCP_CONFIG_NAMES:
                self._detect_mcp_config(path)
            elif name == "marketplace.json" and parent_name == PLUGIN_MANIFEST_FOLDER:
                self._record_marketplace(path)

    def _hook(self, path: str, signals: list[str], problems: list[str]) -> DetectedArtifact:
        entry = self.files[path]
        hook = DetectedArtifact(
            artifact_type=ArtifactType.HOOK,
            path=path,
            name=self._dir_name(_parent(path)),
            content_sha=entry.sha,
            manifest_path=entry.path,
            confidence=0,
            signals=signals,
            problems=problems,
        )
        plugin = self._enclosing_plugin(hook)
        if plugin is not None:
            hook.name = plugin.name
        return hook

    def _detect_hooks_json(self, path: str) -> None:
        value, problems = self._read_json(path)
        if value is None:
            # Unreadable, yet the file name says what it is meant to be: keep it, with the problem.
            self._add(self._hook(path, ["hooks_json_name"], problems))
        elif isinstance(value, dict) and isinstance(value.get("hooks"), dict):
            signals = ["hooks_json_name", "hooks_object", "valid_json"]
            hook = self._add(self._hook(path, signals, problems))
            hook.metadata = _hooks_metadata(value)

    def _detect_settings_hooks(self, path: str) -> None:
        value, problems = self._read_json(path)
        if value is None:
            # Settings files are common and mostly hold no hooks: no artifact to keep the problem.
            self.problems.extend(problems)
        elif isinstance(value, dict) and "hooks" in value:
            hook = self._add(self._hook(path, ["claude_settings_hooks", "valid_json"], problems))
            hooks = value["hooks"]
            hook.metadata = _hooks_metadata(hooks) if isinstance(hooks, dict) else {}

    def _detect_mcp_config(self, path: str) -> None:
        value, problems = self._read_json(path)
        if value is None:
            # Without a readable file there are no server names to index.
            self.problems.extend(problems)
        elif not isinstance(value, dict):
            self.problems.append(f"{path}: not a JSON object")
        elif isinstance(value.get("mcpServers"), dict):
            signals = ["mcp_config_file", "mcp_servers_wrapper", "valid_json"]
            self._add_mcp_servers(path, value["mcpServers"], signals, problems)
        else:
            signals = ["mcp_config_file", "top_level_server_map", "valid_json"]
            self._add_mcp_servers(path, value, signals, problems)

    def _add_mcp_servers(
        self, path: str, servers: dict[str, Any], signals: list[str], problems: list[str]
    ) -> None:
        entry = self.files[path]
        for server, config in servers.items():
            # Only an object can configure a server; `$schema` and friends are not servers.
            if not isinstance(config, dict):
                continue
            self._add(
                DetectedArtifact(
                    artifact_type=ArtifactType.MCP,
                    path=f"{path}#{server}",
                    name=server,
                    content_sha=entry.sha,
                    manifest_path=entry.path,
                    confidence=0,
                    signals=list(signals),
                    problems=list(problems),
                    metadata=_mcp_metadata(config),
                )
            )

    def _record_marketplace(self, path: str) -> None:
        value, problems = self._read_json(path)
        self.problems.extend(problems)
        if not isinstance(value, dict):
            if value is not None:
                self.problems.append(f"{path}: not a JSON object")
            return
        base = _parent(_parent(path))
        metadata = value.get("metadata")
        details: dict[str, Any] = metadata if isinstance(metadata, dict) else {}
        plugin_root = _text(details.get("pluginRoot"))
        if plugin_root:
            # pluginRoot is prepended to every relative plugin source.
            base = posixpath.join(base, plugin_root)
        entries = value.get("plugins")
        listed: list[Any] = entries if isinstance(entries, list) else []
        plugins: list[dict[str, Any]] = []
        for item in listed:
            if not isinstance(item, dict):
                self.problems.append(f"{path}: plugin entry is not an object: {item!r}")
                continue
            name, source = item.get("name"), item.get("source")
            record: dict[str, Any] = {"name": name, "source": source, "path": None, "exists": None}
            if isinstance(source, dict):
                # the entry of a plugin in another repository describes that plugin (§2.1)
                record["entry"] = item
            if isinstance(source, str) and "://" not in source and not source.startswith("git@"):
                target = posixpath.normpath(posixpath.join(base, source))
                record["path"] = target
                record["exists"] = self._is_folder(target)
                if not record["exists"]:
                    self.problems.append(
                        f"{path}: plugin {name!r} points at {source}, a folder that does not exist"
                    )
                elif ("" if target == "." else target) not in self.plugins:
                    self._add_entry_plugin(path, item, "" if target == "." else target)
            plugins.append(record)
        self.marketplaces.append(
            {
                "path": path,
                "name": _text(value.get("name")),
                "description": _text(value.get("description")) or _text(details.get("description")),
                "owner": value.get("owner"),
                "plugins": plugins,
            }
        )

    def _detect_entry_root(self, entry: Mapping[str, Any]) -> None:
        """The root of a plugin source is its plugin: `plugin.json` merged with the entry.

        A `plugin.json` wins over the entry's fields (as Claude Code's strict mode reads them);
        without one the entry is the manifest, and what it lists under `agents` is detected.
        """
        folder = self.root
        signal = "marketplace_entry"
        plugin = self.plugins.get(folder)
        if plugin is not None:
            artifact = plugin.artifact
            artifact.metadata = {**_plugin_metadata(dict(entry)), **artifact.metadata}
            artifact.signals.append(signal)
            return
        name = _text(entry.get("name")) or self._dir_name(folder)
        tree_sha = self.dirs.get(folder)
        digest = hashlib.sha1(
            json.dumps(entry, sort_keys=True, default=str).encode() + (tree_sha or "").encode()
        ).hexdigest()
        artifact = self._add(
            DetectedArtifact(
                artifact_type=ArtifactType.PLUGIN,
                path=_artifact_path(folder),
                name=name,
                content_sha=digest,
                manifest_path=None,
                confidence=0,
                signals=[signal, "plugin_manifest", "valid_json"],
                metadata=_plugin_metadata(dict(entry)),
            )
        )
        if tree_sha is None:
            artifact.problems.append(f"the entry's folder {_artifact_path(folder)} does not exist")
        self.plugins[folder] = _Plugin(folder, name, artifact, dict(entry))

    def _add_entry_plugin(self, path: str, entry: dict[str, Any], folder: str) -> None:
        """A relative entry whose folder has no `plugin.json`: the entry is the plugin's manifest.

        Several entries may share one folder (anthropics/skills), so the artifact is named by the
        entry: `<marketplace.json path>#<entry name>`. The skills, agents and commands it lists
        belong to it.
        """
        name = _text(entry.get("name"))
        if name is None:
            self.problems.append(f"{path}: a plugin entry without a name is not indexed")
            return
        folder_sha = self.dirs.get(folder, "")
        # The entry is the manifest: a changed entry is a changed plugin, even in the same folder.
        digest = hashlib.sha1(
            json.dumps(entry, sort_keys=True, default=str).encode() + folder_sha.encode()
        ).hexdigest()
        artifact = self._add(
            DetectedArtifact(
                artifact_type=ArtifactType.PLUGIN,
                path=f"{path}#{name}",
                name=name,
                content_sha=digest,
                manifest_path=self.files[path].path,
                confidence=0,
                signals=["marketplace_entry", "valid_json"],
                metadata={**_plugin_metadata(entry), "plugin_root": _artifact_path(folder)},
            )
        )
        for kind in ("skills", "agents", "commands"):
            listed = entry.get(kind)
            for item in listed if isinstance(listed, list) else []:
                if not isinstance(item, str):
                    artifact.problems.append(f"marketplace entry {kind}: not a path: {item!r}")
                    continue
                member = posixpath.normpath(posixpath.join(folder or ".", item))
                if member == ".." or member.startswith("../"):
                    artifact.problems.append(f"marketplace entry lists {item}, outside the repo")
                    continue
                self.entry_members.setdefault("" if member == "." else member, artifact.path)

    def _is_folder(self, path: str) -> bool:
        real, _ = self._resolve("" if path == "." else path)
        return real == "" or (real is not None and self.by_path[real].is_tree)

    def _enclosing_plugin(self, artifact: DetectedArtifact) -> _Plugin | None:
        path = _view_path(artifact)
        start = "" if path == "." else path
        # A skill folder can be a plugin itself; a plugin belongs only to an enclosing one.
        if artifact.artifact_type is ArtifactType.SKILL:
            folders = [start, *_ancestors(start)]
        else:
            folders = list(_ancestors(start))
        return next((self.plugins[f] for f in folders if f in self.plugins), None)

    def _assign_plugins(self) -> None:
        for artifact in self.artifacts.values():
            plugin = self._enclosing_plugin(artifact)
            if plugin is not None:
                artifact.plugin_path = _artifact_path(plugin.directory)
            elif artifact.artifact_type is not ArtifactType.PLUGIN:
                view = _view_path(artifact)
                artifact.plugin_path = self.entry_members.get("" if view == "." else view)


def _view_path(artifact: DetectedArtifact) -> str:
    """The file or folder an artifact is: an MCP server's path is `<file>#<server>`."""
    if artifact.artifact_type is ArtifactType.MCP:
        return artifact.path.removesuffix(f"#{artifact.name}")
    return artifact.path


def _plugin_metadata(manifest: dict[str, Any]) -> dict[str, Any]:
    keys = ("description", "version", "keywords", "author", "license", "homepage", "repository")
    return {key: manifest[key] for key in keys if key in manifest}


def _hooks_metadata(hooks: dict[str, Any]) -> dict[str, Any]:
    # hooks.json wraps the event map in `hooks`; settings and plugin.json may hold it directly.
    wrapped = hooks.get("hooks")
    events: dict[str, Any] = wrapped if isinstance(wrapped, dict) else hooks
    metadata: dict[str, Any] = {"events": sorted(str(event) for event in events)}
    if _text(hooks.get("description")):
        metadata["description"] = hooks["description"]
    return metadata


def _mcp_metadata(config: dict[str, Any]) -> dict[str, Any]:
    # Values of `env` and `headers` can be credentials committed by mistake: keep only the names.
    kept = ("type", "command", "args", "url")
    metadata: dict[str, Any] = {key: config[key] for key in kept if key in config}
    for secret_map in ("env", "headers"):
        if isinstance(config.get(secret_map), dict):
            metadata[f"{secret_map}_names"] = sorted(config[secret_map])
    if _text(config.get("description")):
        metadata["description"] = config["description"]
    return metadata
