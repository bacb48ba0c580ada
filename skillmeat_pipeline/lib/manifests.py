"""Parse artifact manifests (SPEC §5.1): markdown with YAML frontmatter, and JSON files.

Parsing never raises on bad input: every oddity becomes a string in `problems`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_MANIFEST_BYTES = 1024 * 1024


@dataclass(slots=True)
class MarkdownManifest:
    """What a markdown manifest says about its artifact."""

    frontmatter: dict[str, Any] = field(default_factory=dict)
    has_frontmatter: bool = False
    frontmatter_valid: bool = False  # strict YAML accepted it
    title: str | None = None  # first `# heading` of the body
    description: str | None = None  # frontmatter description, else the body's first paragraph
    body: str = ""
    problems: list[str] = field(default_factory=list)


def parse_markdown_manifest(data: bytes) -> MarkdownManifest:
    """Frontmatter (strict YAML, then a tolerant fallback), title and description of a markdown file."""
    # Placeholder until the tolerant parser lands: strict YAML only.
    manifest = MarkdownManifest()
    text = data.decode("utf-8", errors="replace")
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end != -1:
            manifest.has_frontmatter = True
            try:
                loaded = yaml.safe_load(text[3:end])
                if isinstance(loaded, dict):
                    manifest.frontmatter = loaded
                    manifest.frontmatter_valid = True
            except yaml.YAMLError as exc:
                manifest.problems.append(f"invalid frontmatter: {exc}")
            text = text[end + 4 :]
    manifest.body = text
    manifest.description = manifest.frontmatter.get("description")
    return manifest


def parse_json_manifest(data: bytes) -> tuple[Any, list[str]]:
    """The decoded JSON value (None when unusable) and the problems found."""
    if len(data) > MAX_MANIFEST_BYTES:
        return None, [f"manifest larger than {MAX_MANIFEST_BYTES} bytes, not parsed"]
    try:
        return json.loads(data.decode("utf-8")), []
    except UnicodeDecodeError as exc:
        return None, [f"not UTF-8: {exc}"]
    except json.JSONDecodeError as exc:
        return None, [f"invalid JSON: {exc}"]
