"""Validation against the published formats (SPEC §5.5, docs: research/formats-and-indexes.md):
Agent Skills `SKILL.md`, subagents, slash commands, `plugin.json` and `marketplace.json`.

Each rule is data (`FormatRule`: id of family `format.*`, severity, message); the checks below
say when it applies. Severity is `low`, or `medium` where Claude Code would not load the artifact
(no frontmatter or description for a skill or subagent, a plugin.json without a name, a
marketplace without plugins). Inputs are the manifest bytes the scan reads anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skillmeat_pipeline.lib.core.findings import Finding, Severity
from skillmeat_pipeline.lib.core.manifests import parse_json_manifest, parse_markdown_manifest
from skillmeat_pipeline.lib.core.models import ArtifactType
from skillmeat_pipeline.lib.quality.names import name_problems
from skillmeat_pipeline.lib.trust.text import excerpt

MAX_DESCRIPTION_CHARS = 1024
MAX_COMPATIBILITY_CHARS = 500
LOW, MEDIUM = Severity.LOW, Severity.MEDIUM

# Agent Skills keys, and the ones Claude Code adds (a strict validator rejects valid skills)
AGENT_SKILLS_KEYS = frozenset(
    {"name", "description", "license", "compatibility", "metadata", "allowed-tools"}
)
CLAUDE_SKILL_KEYS = frozenset(
    {"argument-hint", "model", "context", "user-invocable", "disable-model-invocation", "hooks"}
    | {"agent", "version", "when_to_use"}
)
AGENT_KEYS = frozenset(
    {"name", "description", "tools", "model", "color", "skills", "memory", "hooks"}
    | {"permissionMode", "disallowedTools", "mcpServers", "maxTurns", "isolation", "background"}
)
COMMAND_KEYS = frozenset(
    {"description", "argument-hint", "allowed-tools", "model", "disable-model-invocation"}
    | {"name", "hooks", "context", "agent"}
)
PLUGIN_METADATA_KEYS = frozenset(
    {"name", "version", "description", "author", "homepage", "repository", "license", "keywords"}
    | {"$schema"}
)
PLUGIN_COMPONENT_KEYS = frozenset(
    {"commands", "agents", "skills", "hooks", "mcpServers", "outputStyles", "lspServers"}
    | {"channels", "userConfig", "monitors", "themes", "experimental", "defaultEnabled"}
    | {"dependencies"}
)
SOURCE_FORMS = frozenset({"github", "url", "git-subdir", "npm"})


@dataclass(frozen=True, slots=True)
class FormatRule:
    id: str
    severity: Severity
    message: str  # `{}` fields are filled from the check


RULES: dict[str, FormatRule] = {
    rule.id: rule
    for rule in [
        FormatRule("format.frontmatter.missing", MEDIUM, "no YAML frontmatter: not loaded"),
        FormatRule("format.name.missing", LOW, "no name: the folder or file name is used"),
        FormatRule("format.name.invalid", LOW, "name {}"),
        FormatRule("format.name.not_folder", LOW, "name {!r} is not its folder's name {!r}"),
        FormatRule("format.description.missing", MEDIUM, "no description: not offered to a model"),
        FormatRule("format.description.too_long", LOW, "description is {} characters, over {}"),
        FormatRule("format.compatibility.too_long", LOW, "compatibility is {} characters, over {}"),
        FormatRule("format.key.unknown", LOW, "unknown top-level key {!r}: ignored"),
        FormatRule("format.json.invalid", MEDIUM, "{}"),
        FormatRule("format.plugin.name_missing", MEDIUM, "plugin.json has no name: not loaded"),
        FormatRule("format.plugin.name_invalid", LOW, "plugin name {!r} is not kebab-case"),
        FormatRule("format.marketplace.field_missing", MEDIUM, "marketplace.json has no {!r}"),
        FormatRule("format.marketplace.entry_name_missing", MEDIUM, "plugin entry {} has no name"),
        FormatRule("format.marketplace.entry_source_missing", MEDIUM, "plugin {!r} has no source"),
        FormatRule("format.marketplace.entry_source_unknown", LOW, "plugin {!r}: source {}"),
    ]
}


class _Report:
    """Findings of one file, each placed on the line that names its key (1 when none does)."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.lines = text.splitlines() or [""]
        self.findings: list[Finding] = []

    def add(self, rule_id: str, *args: object, key: str | None = None) -> None:
        rule = RULES[rule_id]
        line = self._line_of(key)
        self.findings.append(
            Finding(
                rule=rule.id,
                severity=rule.severity,
                file=self.file,
                line=line,
                excerpt=excerpt(self.lines[line - 1]),
                message=rule.message.format(*args),
            )
        )

    def _line_of(self, key: str | None) -> int:
        if key is None:
            return 1
        for number, line in enumerate(self.lines, start=1):
            stripped = line.lstrip()
            if stripped.startswith((f"{key}:", f'"{key}"')):
                return number
        return 1


def _folder_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _check_name(report: _Report, name: Any, *, rule: str = "format.name.invalid") -> None:
    problems = name_problems(name) if isinstance(name, str) else ["is not text"]
    if problems:
        report.add(rule, "; ".join(problems) if rule == "format.name.invalid" else name, key="name")


def _check_description(report: _Report, frontmatter: Mapping[str, Any]) -> None:
    description = frontmatter.get("description")
    if not isinstance(description, str) or not description.strip():
        report.add("format.description.missing", key="description")
    elif len(description) > MAX_DESCRIPTION_CHARS:
        report.add(
            "format.description.too_long",
            len(description),
            MAX_DESCRIPTION_CHARS,
            key="description",
        )


def _check_keys(report: _Report, data: Mapping[str, Any], known: frozenset[str]) -> None:
    for key in data:
        if key not in known:
            report.add("format.key.unknown", key, key=key)


def validate_skill(data: bytes, *, file: str, folder: str) -> list[Finding]:
    """`SKILL.md` of the skill folder `folder` (its path in the repository)."""
    manifest = parse_markdown_manifest(data)
    report = _Report(file, data.decode("utf-8", "replace"))
    if not manifest.has_frontmatter:
        report.add("format.frontmatter.missing")
        return report.findings
    frontmatter = manifest.frontmatter
    name = frontmatter.get("name")
    if name is None:
        report.add("format.name.missing")
    else:
        _check_name(report, name)
        folder_name = _folder_name(folder)
        if isinstance(name, str) and folder not in ("", ".") and name != folder_name:
            report.add("format.name.not_folder", name, folder_name, key="name")
    _check_description(report, frontmatter)
    compatibility = frontmatter.get("compatibility")
    if isinstance(compatibility, str) and len(compatibility) > MAX_COMPATIBILITY_CHARS:
        report.add(
            "format.compatibility.too_long",
            len(compatibility),
            MAX_COMPATIBILITY_CHARS,
            key="compatibility",
        )
    _check_keys(report, frontmatter, AGENT_SKILLS_KEYS | CLAUDE_SKILL_KEYS)
    return report.findings


def validate_agent(data: bytes, *, file: str) -> list[Finding]:
    """A subagent's markdown: `name` and `description` are required, `name` is kebab-case."""
    manifest = parse_markdown_manifest(data)
    report = _Report(file, data.decode("utf-8", "replace"))
    if not manifest.has_frontmatter:
        report.add("format.frontmatter.missing")
        return report.findings
    name = manifest.frontmatter.get("name")
    if name is None:
        report.add("format.name.missing")
    else:
        _check_name(report, name)
    _check_description(report, manifest.frontmatter)
    _check_keys(report, manifest.frontmatter, AGENT_KEYS)
    return report.findings


def validate_command(data: bytes, *, file: str) -> list[Finding]:
    """A slash command: frontmatter is optional; when present, its keys are known ones."""
    manifest = parse_markdown_manifest(data)
    report = _Report(file, data.decode("utf-8", "replace"))
    _check_keys(report, manifest.frontmatter, COMMAND_KEYS)
    return report.findings


def _load_json(data: bytes, report: _Report) -> dict[str, Any] | None:
    value, problems = parse_json_manifest(data)
    if problems or not isinstance(value, dict):
        report.add("format.json.invalid", "; ".join(problems) or "not a JSON object")
        return None
    return value


def validate_plugin(data: bytes, *, file: str) -> list[Finding]:
    """`plugin.json`: `name` required and kebab-case; unknown component keys are dropped."""
    report = _Report(file, data.decode("utf-8", "replace"))
    manifest = _load_json(data, report)
    if manifest is None:
        return report.findings
    name = manifest.get("name")
    if not isinstance(name, str) or not name.strip():
        report.add("format.plugin.name_missing")
    elif name_problems(name):
        report.add("format.plugin.name_invalid", name, key="name")
    _check_keys(report, manifest, PLUGIN_METADATA_KEYS | PLUGIN_COMPONENT_KEYS)
    return report.findings


def validate_marketplace(data: bytes, *, file: str) -> list[Finding]:
    """`marketplace.json`: `name`, `owner`, `plugins`; each entry a `name` and a `source`."""
    report = _Report(file, data.decode("utf-8", "replace"))
    manifest = _load_json(data, report)
    if manifest is None:
        return report.findings
    for field in ("name", "owner", "plugins"):
        if not manifest.get(field):
            report.add("format.marketplace.field_missing", field)
    plugins = manifest.get("plugins")
    for index, plugin in enumerate(plugins if isinstance(plugins, list) else []):
        if not isinstance(plugin, dict) or not isinstance(plugin.get("name"), str):
            report.add("format.marketplace.entry_name_missing", f"#{index + 1}")
            continue
        name = plugin["name"]
        source = plugin.get("source")
        if source is None or source == "":
            report.add("format.marketplace.entry_source_missing", name)
        elif isinstance(source, str):
            if not source.startswith("./"):
                report.add(
                    "format.marketplace.entry_source_unknown", name, "a path not starting ./"
                )
        elif not isinstance(source, dict) or source.get("source") not in SOURCE_FORMS:
            form = source.get("source") if isinstance(source, dict) else type(source).__name__
            report.add("format.marketplace.entry_source_unknown", name, f"{form!r} is no form")
    return report.findings


def format_findings(
    artifact_type: ArtifactType, manifest_path: str | None, data: bytes, *, folder: str
) -> list[Finding]:
    """The `format.*` findings of an artifact from its manifest's bytes (read by the scan).

    `folder` is the artifact's folder (a skill's name must equal its last segment).
    """
    if manifest_path is None:
        return []
    file_name = _folder_name(manifest_path)
    if file_name == "marketplace.json":
        return validate_marketplace(data, file=manifest_path)
    if artifact_type is ArtifactType.SKILL and file_name == "SKILL.md":
        return validate_skill(data, file=manifest_path, folder=folder)
    if artifact_type is ArtifactType.AGENT:
        return validate_agent(data, file=manifest_path)
    if artifact_type is ArtifactType.COMMAND:
        return validate_command(data, file=manifest_path)
    if artifact_type is ArtifactType.PLUGIN and file_name == "plugin.json":
        return validate_plugin(data, file=manifest_path)
    return []
