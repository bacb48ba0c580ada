"""Structured checks of JSON manifests: hooks and permissions in `hooks.json`, settings and
`plugin.json`, MCP servers in `.mcp.json`, `mcp.json` and `plugin.json`, parsed and handed to the
structured rules' predicates."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from skillmeat_pipeline.lib.core.findings import Finding
from skillmeat_pipeline.lib.trust.predicates_structured import (
    BROAD_HOOK_EVENTS,
    is_allow_all_bash,
    is_broad_matcher,
    runs_network,
    secret_env_names,
    unpinned_package,
)
from skillmeat_pipeline.lib.trust.rules import RULES_BY_ID
from skillmeat_pipeline.lib.trust.text import excerpt

_HOOK_FILES = frozenset({"hooks.json", "settings.json", "settings.local.json", "plugin.json"})
_MCP_FILES = frozenset({".mcp.json", "mcp.json", "plugin.json"})
MANIFEST_NAMES = _HOOK_FILES | _MCP_FILES


def structured_findings(
    path: str, raw: bytes, files: Mapping[str, bytes], *, max_file_bytes: int
) -> list[Finding]:
    """The structured rules' findings in the JSON manifest `raw` at `path` (its name one of
    `MANIFEST_NAMES`); `files` are the artifact's files, for the scripts a hook runs, each read
    only when at most `max_file_bytes` long."""
    try:
        data = json.loads(raw.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return []
    if not isinstance(data, dict):
        return []
    name = path.rsplit("/", 1)[-1]
    text = raw.decode("utf-8", "replace")
    out: list[Finding] = []

    def add(rule_id: str, needle: str, note: str = "") -> None:
        rule = RULES_BY_ID[rule_id]
        position = _locate(text, needle)
        line_text = text.splitlines()[position] if text.splitlines() else ""
        message = f"{rule.message} ({note})" if note else rule.message
        out.append(Finding(rule_id, rule.severity, path, position + 1, excerpt(line_text), message))

    if name in _HOOK_FILES:
        hooks = data.get("hooks")
        if isinstance(hooks, dict):
            for event, command, matcher in _hook_commands(hooks):
                _check_hook(event, command, matcher, files, add, max_file_bytes)
        if name in ("settings.json", "settings.local.json"):
            permissions = data.get("permissions")
            allow = permissions.get("allow") if isinstance(permissions, dict) else None
            if isinstance(allow, list):
                for entry in allow:
                    if is_allow_all_bash(entry):
                        add("permissions.allow_all_bash", json.dumps(entry))
    if name in _MCP_FILES:
        for server_name, server in _mcp_servers(name, data):
            package = unpinned_package(server.get("command"), server.get("args"))
            if package is None:
                continue
            secrets = secret_env_names(server.get("env"))
            if secrets:
                add(
                    "unpinned.mcp_server_with_secrets",
                    json.dumps(server_name),
                    f"{package}; env: {', '.join(secrets[:5])}",
                )
            else:
                add("unpinned.mcp_server", json.dumps(server_name), package)
    return out


def _hook_commands(hooks: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    for event, entries in hooks.items():
        if not isinstance(entries, list):
            continue
        for entry in entries[:200]:
            if not isinstance(entry, dict):
                continue
            matcher = entry.get("matcher")
            handlers = entry.get("hooks")
            if not isinstance(handlers, list):
                continue
            for handler in handlers[:200]:
                if isinstance(handler, dict) and isinstance(handler.get("command"), str):
                    yield str(event), handler["command"], matcher


def _check_hook(
    event: str,
    command: str,
    matcher: Any,
    files: Mapping[str, bytes],
    add: Callable[..., None],
    max_file_bytes: int,
) -> None:
    needle = json.dumps(command)[1:-1]
    if event in BROAD_HOOK_EVENTS and is_broad_matcher(matcher):
        script = _script_with_network(command, files, max_file_bytes)
        if runs_network(command) or script:
            note = f"{event}, matcher {matcher!r}" + (f", via {script}" if script else "")
            add("hooks.broad_network_hook", needle, note)
    for segment in re.split(r"&&|\|\||[;|]", command):
        package = unpinned_package(segment.strip(), None)
        if package:
            add("unpinned.hook_command", needle, package)
            break


_SCRIPT_PATH = re.compile(
    r"(?:\$\{?CLAUDE_(?:PLUGIN_ROOT|PROJECT_DIR)\}?/|\./)?((?:[\w.-]+/)*[\w.-]+\.(?:sh|py|js|mjs|ts|rb|pl|bash))"
)


def _script_with_network(
    command: str, files: Mapping[str, bytes], max_file_bytes: int
) -> str | None:
    """A script of the artifact that the hook command runs, when it makes network calls."""
    for match in _SCRIPT_PATH.finditer(command[:2000]):
        relative = match.group(1).lstrip("./")
        for candidate in files:
            if candidate == relative or candidate.endswith("/" + relative):
                data = files[candidate]
                if len(data) <= max_file_bytes and runs_network(data.decode("utf-8", "replace")):
                    return candidate
    return None


def _mcp_servers(name: str, data: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    servers = data.get("mcpServers")
    if not isinstance(servers, dict):
        if name == "plugin.json":
            return
        # `.mcp.json` without the wrapper: the top-level map is the servers
        servers = {
            k: v for k, v in data.items() if isinstance(v, dict) and ("command" in v or "url" in v)
        }
    for server_name, server in list(servers.items())[:500]:
        if isinstance(server, dict):
            yield str(server_name), server


def _locate(text: str, needle: str) -> int:
    """The 0-based line of the first occurrence of `needle` in `text` (0 when absent)."""
    index = text.find(needle) if needle else -1
    return text.count("\n", 0, index) if index >= 0 else 0
