"""Predicates of the structured rules, called by `structured.py` on parsed JSON hooks, settings
and MCP server configs."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

BROAD_HOOK_EVENTS = frozenset({"PreToolUse", "PostToolUse", "UserPromptSubmit"})
_NETWORK_COMMAND = re.compile(
    rb"\b(?:curl|wget|nc|ncat|netcat|socat|iwr|irm)\b|invoke-webrequest|invoke-restmethod"
    rb"|requests\.(?:post|put|get)|urlopen|\bfetch\(|https?://(?!localhost|127\.0\.0\.1)"
)
_SECRET_NAME = re.compile(
    r"(?:^|_)(?:KEY|TOKEN|SECRET|PASSWORD|PASSWD|PAT|CREDENTIALS?)(?:_|$)|API_?KEY|SECRET|TOKEN",
    re.IGNORECASE,
)
_PINNED_NPM = re.compile(r"^(?:@[^/@\s]+/)?[^@\s]+@(?!latest$|next$|\*$)[~^]?\d[\w.+-]*$")


def is_broad_matcher(matcher: Any) -> bool:
    return matcher is None or (isinstance(matcher, str) and matcher.strip() in ("", "*", ".*"))


def runs_network(command: str) -> bool:
    return bool(_NETWORK_COMMAND.search(command.lower().encode("utf-8", "replace")))


def is_allow_all_bash(entry: Any) -> bool:
    """`Bash`, `Bash(*)`, `Bash(:*)`, `Bash(**)` in `permissions.allow`."""
    if not isinstance(entry, str):
        return False
    compact = entry.replace(" ", "")
    return compact in ("Bash", "Bash(*)", "Bash(:*)", "Bash(**)", "Bash()")


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def unpinned_package(command: Any, args: Any) -> str | None:
    """The package that `npx`/`bunx`/`pnpm dlx`/`uvx`/`pipx run` runs without a version, or None."""
    if not isinstance(command, str):
        return None
    words = command.split()
    if isinstance(args, list):
        words += [a for a in args if isinstance(a, str)]
    if not words:
        return None
    tool = words[0].rsplit("/", 1)[-1].lower()
    rest = words[1:]
    if tool in ("pnpm", "yarn") and rest[:1] == ["dlx"]:
        tool, rest = "npx", rest[1:]
    elif tool == "pipx" and rest[:1] == ["run"]:
        rest = rest[1:]
    elif tool not in ("npx", "bunx", "uvx"):
        return None
    package = None
    skip_next = False
    for word in rest:
        if skip_next:
            skip_next = False
            continue
        if word in ("--from", "-p", "--package", "--with", "--python"):
            if word in ("--from", "-p", "--package"):
                return None if _pinned(tool, _next_after(rest, word)) else _next_after(rest, word)
            skip_next = True
            continue
        if word.startswith("-"):
            continue
        package = word
        break
    if package is None or package.startswith((".", "/", "$")):
        return None
    return None if _pinned(tool, package) else package


def _next_after(words: Sequence[str], flag: str) -> str:
    index = list(words).index(flag)
    return words[index + 1] if index + 1 < len(words) else ""


def _pinned(tool: str, package: str) -> bool:
    if tool in ("npx", "bunx"):
        return bool(_PINNED_NPM.match(package))
    return bool(re.search(r"==\s*\d|@\s*\d", package))


def secret_env_names(env: Any) -> list[str]:
    if not isinstance(env, Mapping):
        return []
    return [str(name) for name in env if is_secret_name(str(name))]
