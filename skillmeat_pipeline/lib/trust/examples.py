"""Example files for the rules' positives and negatives, and the fake secrets they contain.

Fake credentials are assembled here so that no literal secret sits in the source."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Example:
    """A file that a rule must (positive) or must not (negative) report, and any files beside it."""

    path: str
    text: str
    others: tuple[tuple[str, str], ...] = ()

    def files(self) -> dict[str, bytes]:
        return {self.path: self.text.encode("utf-8"), **{p: t.encode() for p, t in self.others}}


FAKE_AWS = "AKIA" + "LQSAJ08XUI6D39ZZ"
FAKE_GITHUB = "ghp_" + "u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d"
FAKE_OPENAI = "sk-proj-" + "KLzdocJ2isAjIhKtJ0RlgLKOmxgJTeKdNnFRIBXu"
FAKE_ANTHROPIC = "sk-ant-api03-" + "DL7DxtpYlSXpfKtHF4vUCsMehGAkWvj7FAc9QeWJKY40uvSw"
FAKE_SLACK = "xoxb-" + "7302156489-5820913467-" + "MFLZDe1f8rESQedUStPKR0Cs"
FAKE_GOOGLE = "AIza" + "Ty4Qwb8DwkNhFdnXsiVpzz63FfkCzJr4i0B"
FAKE_PASSWORD = "q8Zr3LmV9xT2pK7wN4sB" + "3JrTAwR4y9ojfljoQoaF"
FAKE_PEM_BODY = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW"
#: every fake secret above, for the test that no excerpt shows one in full
EXAMPLE_SECRETS = (
    FAKE_AWS,
    FAKE_GITHUB,
    FAKE_OPENAI,
    FAKE_ANTHROPIC,
    FAKE_SLACK,
    FAKE_GOOGLE,
    FAKE_PASSWORD,
    FAKE_PEM_BODY,
)


def skill_md(body: str, name: str = "helper") -> Example:
    text = f"---\nname: {name}\ndescription: Helps with {name}.\n---\n# {name}\n\n{body}\n"
    return Example(f"skills/{name}/SKILL.md", text)


def fenced(code: str, name: str = "helper", lang: str = "bash") -> Example:
    return skill_md(f"Run this:\n\n```{lang}\n{code}\n```", name)


def script(code: str, name: str = "scripts/run.sh") -> Example:
    shebang = "#!/usr/bin/env bash\n" if name.endswith(".sh") else ""
    return Example(f"skills/helper/{name}", shebang + code + "\n")


def agent_md(body: str, frontmatter: str = "") -> Example:
    text = f"---\nname: reviewer\ndescription: Reviews code.\n{frontmatter}---\n\n{body}\n"
    return Example("agents/reviewer.md", text)


def command_md(body: str) -> Example:
    return Example("commands/ship.md", f"---\ndescription: Ship it\n---\n\n{body}\n")


def hooks_json(
    event: str, command: str, matcher: str | None = "*", others: tuple[tuple[str, str], ...] = ()
) -> Example:
    entry: dict[str, Any] = {"hooks": [{"type": "command", "command": command}]}
    if matcher is not None:
        entry = {"matcher": matcher, **entry}
    text = json.dumps({"hooks": {event: [entry]}}, indent=2)
    return Example("plugins/p/hooks/hooks.json", text, others)


def settings_json(data: str, name: str = ".claude/settings.json") -> Example:
    return Example(name, data)


def mcp_json(server: str) -> Example:
    return Example(".mcp.json", '{\n  "mcpServers": {\n    "srv": ' + server + "\n  }\n}\n")
