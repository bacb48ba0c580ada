"""The Agent Skills name rule, shared by validation and the quality rubric."""

from __future__ import annotations

import re

MAX_NAME_CHARS = 64
_NAME_CHARSET = re.compile(r"[a-z0-9-]+")


def name_problems(name: str) -> list[str]:
    """What breaks the Agent Skills name rule (≤ 64 chars of a-z, 0-9 and `-`, no leading,
    trailing or double hyphen); empty when the name is valid."""
    problems: list[str] = []
    if not name:
        return ["is empty"]
    if len(name) > MAX_NAME_CHARS:
        problems.append(f"is {len(name)} characters, more than {MAX_NAME_CHARS}")
    if not _NAME_CHARSET.fullmatch(name):
        problems.append("has characters other than lowercase letters, digits and hyphens")
    if name.startswith("-") or name.endswith("-"):
        problems.append("starts or ends with a hyphen")
    if "--" in name:
        problems.append("has a double hyphen")
    return problems
