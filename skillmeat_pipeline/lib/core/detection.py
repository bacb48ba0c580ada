"""Find the Claude Code artifacts of a source tree (SPEC §3).

Detection works on the tree listing. It reads only the few blobs whose content decides what a path
is (`plugin.json`, `hooks.json`, Claude settings, MCP configs, `marketplace.json`) and symlink
targets: on the GitHub API path every read is a network request. Markdown is left to extraction.
Here are the rules per kind; which paths are in scope and where symlinks lead is `tree_view.py`,
the confidence of what is found `confidence.py`.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from skillmeat_pipeline.lib.core.artifact_metadata import (
    hooks_metadata,
    mcp_metadata,
    nonblank_text,
    plugin_metadata,
)
from skillmeat_pipeline.lib.core.confidence import score_confidence
from skillmeat_pipeline.lib.core.models import (
    ArtifactType,
    DetectedArtifact,
    Detection,
    TreeEntry,
    TreeSnapshot,
)
from skillmeat_pipeline.lib.core.tree_view import TreeView, ancestors, basename, parent

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
ROOT_NAME_FALLBACK = "root"


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
    return _Detector(TreeView(snapshot, root_hint, exclude), repo_name, plugin_entry).run()


@dataclass(slots=True)
class _Plugin:
    directory: str
    name: str
    artifact: DetectedArtifact
    manifest: dict[str, Any] | None


@dataclass(slots=True)
class _Detector:
    view: TreeView
    repo_name: str | None
    plugin_entry: Mapping[str, Any] | None = None
    skill_dirs: dict[str, str] = field(default_factory=dict)  # folder -> its SKILL.md
    plugins: dict[str, _Plugin] = field(default_factory=dict)
    artifacts: dict[tuple[ArtifactType, str], DetectedArtifact] = field(default_factory=dict)
    marketplaces: list[dict[str, Any]] = field(default_factory=list)
    # files and folders that a marketplace entry without plugin.json lists -> that plugin's path
    entry_members: dict[str, str] = field(default_factory=dict)
    # the view's list: its problems (symlinks, reads) come first, in the order they are found
    problems: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.problems = self.view.problems

    def run(self) -> Detection:
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
            symlinks=self.view.symlinks,
        )

    # --- artifacts ----------------------------------------------------------------------------

    def _repo_dir_name(self) -> str:
        return basename(self.repo_name.strip("/")) if self.repo_name else ROOT_NAME_FALLBACK

    def _dir_name(self, directory: str) -> str:
        return basename(directory) if directory else self._repo_dir_name()

    def _add(self, artifact: DetectedArtifact) -> DetectedArtifact:
        key = (artifact.artifact_type, artifact.path)
        existing = self.artifacts.get(key)
        if existing is not None:
            existing.signals.extend(s for s in artifact.signals if s not in existing.signals)
            return existing
        real = self.view.real_paths.get(_view_path(artifact))
        if real is not None:
            artifact.signals.append("symlinked")
            artifact.metadata["real_path"] = real
        self.artifacts[key] = artifact
        return artifact

    def _inside_skill(self, path: str) -> bool:
        return any(folder in self.skill_dirs for folder in ancestors(path))

    def _detect_skills(self) -> None:
        for path in self.view.files:
            name = basename(path)
            if name.lower() != "skill.md":
                continue
            folder = parent(path)
            if folder not in self.skill_dirs or name == CANONICAL_SKILL_MANIFEST:
                self.skill_dirs[folder] = path
        for folder, manifest in self.skill_dirs.items():
            manifest_name = basename(manifest)
            canonical = manifest_name == CANONICAL_SKILL_MANIFEST
            self._add(
                DetectedArtifact(
                    artifact_type=ArtifactType.SKILL,
                    path=_artifact_path(folder),
                    name=self._dir_name(folder),
                    content_sha=self.view.dirs.get(folder, self.view.files[manifest].sha),
                    manifest_path=self.view.files[manifest].path,
                    confidence=0,
                    signals=[
                        "canonical_manifest_name" if canonical else "non_canonical_manifest_name"
                    ],
                    metadata={} if canonical else {"manifest_name": manifest_name},
                )
            )

    def _detect_container_documents(self) -> None:
        for path, entry in self.view.files.items():
            name = basename(path)
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
        for path in self.view.files:
            if basename(path) != "plugin.json" or basename(parent(path)) != PLUGIN_MANIFEST_FOLDER:
                continue
            folder = parent(parent(path))
            value, problems = self.view.read_json(path)
            manifest = value if isinstance(value, dict) else None
            if value is not None and manifest is None:
                problems.append(f"{path}: not a JSON object")
            signals = ["plugin_manifest"] + (["valid_json"] if manifest is not None else [])
            name = nonblank_text((manifest or {}).get("name")) or self._dir_name(folder)
            artifact = self._add(
                DetectedArtifact(
                    artifact_type=ArtifactType.PLUGIN,
                    path=_artifact_path(folder),
                    name=name,
                    content_sha=self.view.dirs.get(folder, self.view.files[path].sha),
                    manifest_path=self.view.files[path].path,
                    confidence=0,
                    signals=signals,
                    problems=problems,
                    metadata=plugin_metadata(manifest or {}),
                )
            )
            self.plugins[folder] = _Plugin(folder, name, artifact, manifest)
            if manifest is not None:
                self._detect_plugin_json_members(path, name, manifest)

    def _detect_plugin_json_members(
        self, path: str, plugin_name: str, manifest: dict[str, Any]
    ) -> None:
        entry = self.view.files[path]
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
                    metadata=hooks_metadata(hooks),
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
                documents = [target] if target in self.view.files else self._markdown_under(target)
                if (
                    not documents
                    and target not in self.view.by_path
                    and target not in self.view.dirs
                ):
                    plugin.artifact.problems.append(
                        f"plugin.json lists agent {item}, which does not exist"
                    )
                for document in documents:
                    if document.endswith(".md"):
                        stem = basename(document)[: -len(".md")]
                        entry = self.view.files[document]
                        self._add_document(
                            ArtifactType.AGENT, document, entry, stem, "listed_by_plugin_json"
                        )

    def _markdown_under(self, folder: str) -> list[str]:
        if folder not in self.view.dirs:
            return []
        prefix = f"{folder}/" if folder else ""
        return [
            path
            for path in self.view.files
            if path.startswith(prefix)
            and path.endswith(".md")
            and basename(path).lower() not in NON_ARTIFACT_DOC_NAMES
            and not self._inside_skill(path)
        ]

    def _detect_json_artifacts(self) -> None:
        for path in list(self.view.files):
            name = basename(path)
            parent_name = basename(parent(path))
            if name == "hooks.json":
                self._detect_hooks_json(path)
            elif name in CLAUDE_SETTINGS_NAMES and parent_name == CLAUDE_SETTINGS_FOLDER:
                self._detect_settings_hooks(path)
            elif name in MCP_CONFIG_NAMES:
                self._detect_mcp_config(path)
            elif name == "marketplace.json" and parent_name == PLUGIN_MANIFEST_FOLDER:
                self._record_marketplace(path)

    def _hook(self, path: str, signals: list[str], problems: list[str]) -> DetectedArtifact:
        entry = self.view.files[path]
        hook = DetectedArtifact(
            artifact_type=ArtifactType.HOOK,
            path=path,
            name=self._dir_name(parent(path)),
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
        value, problems = self.view.read_json(path)
        if value is None:
            # Unreadable, yet the file name says what it is meant to be: keep it, with the problem.
            self._add(self._hook(path, ["hooks_json_name"], problems))
        elif isinstance(value, dict) and isinstance(value.get("hooks"), dict):
            signals = ["hooks_json_name", "hooks_object", "valid_json"]
            hook = self._add(self._hook(path, signals, problems))
            hook.metadata = hooks_metadata(value)

    def _detect_settings_hooks(self, path: str) -> None:
        value, problems = self.view.read_json(path)
        if value is None:
            # Settings files are common and mostly hold no hooks: no artifact to keep the problem.
            self.problems.extend(problems)
        elif isinstance(value, dict) and "hooks" in value:
            hook = self._add(self._hook(path, ["claude_settings_hooks", "valid_json"], problems))
            hooks = value["hooks"]
            hook.metadata = hooks_metadata(hooks) if isinstance(hooks, dict) else {}

    def _detect_mcp_config(self, path: str) -> None:
        value, problems = self.view.read_json(path)
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
        entry = self.view.files[path]
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
                    metadata=mcp_metadata(config),
                )
            )

    def _record_marketplace(self, path: str) -> None:
        value, problems = self.view.read_json(path)
        self.problems.extend(problems)
        if not isinstance(value, dict):
            if value is not None:
                self.problems.append(f"{path}: not a JSON object")
            return
        base = parent(parent(path))
        metadata = value.get("metadata")
        details: dict[str, Any] = metadata if isinstance(metadata, dict) else {}
        plugin_root = nonblank_text(details.get("pluginRoot"))
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
                record["exists"] = self.view.is_folder(target)
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
                "name": nonblank_text(value.get("name")),
                "description": nonblank_text(value.get("description"))
                or nonblank_text(details.get("description")),
                "owner": value.get("owner"),
                "plugins": plugins,
            }
        )

    def _detect_entry_root(self, entry: Mapping[str, Any]) -> None:
        """The root of a plugin source is its plugin: `plugin.json` merged with the entry.

        A `plugin.json` wins over the entry's fields (as Claude Code's strict mode reads them);
        without one the entry is the manifest, and what it lists under `agents` is detected.
        """
        folder = self.view.root
        signal = "marketplace_entry"
        plugin = self.plugins.get(folder)
        if plugin is not None:
            artifact = plugin.artifact
            artifact.metadata = {**plugin_metadata(dict(entry)), **artifact.metadata}
            artifact.signals.append(signal)
            return
        name = nonblank_text(entry.get("name")) or self._dir_name(folder)
        tree_sha = self.view.dirs.get(folder)
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
                metadata=plugin_metadata(dict(entry)),
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
        name = nonblank_text(entry.get("name"))
        if name is None:
            self.problems.append(f"{path}: a plugin entry without a name is not indexed")
            return
        folder_sha = self.view.dirs.get(folder, "")
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
                manifest_path=self.view.files[path].path,
                confidence=0,
                signals=["marketplace_entry", "valid_json"],
                metadata={**plugin_metadata(entry), "plugin_root": _artifact_path(folder)},
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

    def _enclosing_plugin(self, artifact: DetectedArtifact) -> _Plugin | None:
        path = _view_path(artifact)
        start = "" if path == "." else path
        # A skill folder can be a plugin itself; a plugin belongs only to an enclosing one.
        if artifact.artifact_type is ArtifactType.SKILL:
            folders = [start, *ancestors(start)]
        else:
            folders = list(ancestors(start))
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
