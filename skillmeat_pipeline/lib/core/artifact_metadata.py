"""The metadata an artifact keeps from its manifest, per kind: plugins, hooks, MCP servers (server
credentials never: only the names of `env` and `headers`)."""

from __future__ import annotations

from typing import Any


def nonblank_text(value: Any) -> str | None:
    """`value` if it is a string that is not blank, else None."""
    return value if isinstance(value, str) and value.strip() else None


def plugin_metadata(manifest: dict[str, Any]) -> dict[str, Any]:
    keys = ("description", "version", "keywords", "author", "license", "homepage", "repository")
    return {key: manifest[key] for key in keys if key in manifest}


def hooks_metadata(hooks: dict[str, Any]) -> dict[str, Any]:
    # hooks.json wraps the event map in `hooks`; settings and plugin.json may hold it directly.
    wrapped = hooks.get("hooks")
    events: dict[str, Any] = wrapped if isinstance(wrapped, dict) else hooks
    metadata: dict[str, Any] = {"events": sorted(str(event) for event in events)}
    if nonblank_text(hooks.get("description")):
        metadata["description"] = hooks["description"]
    return metadata


def mcp_metadata(config: dict[str, Any]) -> dict[str, Any]:
    # Values of `env` and `headers` can be credentials committed by mistake: keep only the names.
    kept = ("type", "command", "args", "url")
    metadata: dict[str, Any] = {key: config[key] for key in kept if key in config}
    for secret_map in ("env", "headers"):
        if isinstance(config.get(secret_map), dict):
            metadata[f"{secret_map}_names"] = sorted(config[secret_map])
    if nonblank_text(config.get("description")):
        metadata["description"] = config["description"]
    return metadata
