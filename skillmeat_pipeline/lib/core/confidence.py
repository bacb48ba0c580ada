"""How confident detection is that a path is the artifact it looks like: the weights of its signals,
less a penalty per problem (0-100)."""

from __future__ import annotations

from collections.abc import Sequence

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
