"""Text helpers of the trust rules: Shannon entropy, placeholders, secret masking and excerpts."""

from __future__ import annotations

import math
import re
from collections import Counter

from skillmeat_pipeline.lib.core.untrusted import printable

MAX_EXCERPT = 160
# A masked secret shows this many characters, then an ellipsis.
MASK_KEEP = 4
ELLIPSIS = "\u2026"

# Values that stand for a secret without being one.
_PLACEHOLDER = re.compile(
    r"\$\{?[A-Za-z_]|\{\{|<[^>]*>|%\(|"
    r"x{4,}|X{4,}|\*{3,}|\.{3}|…|0{8,}|1234|abcd|"
    r"your[-_ ]?|my[-_]|example|sample|placeholder|changeme|change[-_]me|dummy|fake|"
    r"redacted|replace|insert|todo|secret[-_]?here|here$|^test|test[-_]|env:|process\.env|"
    r"os\.environ|getenv",
    re.IGNORECASE,
)


def shannon_entropy(value: str) -> float:
    """Bits per character of `value` (0 for the empty string)."""
    if not value:
        return 0.0
    total = len(value)
    return -sum(n / total * math.log2(n / total) for n in Counter(value).values())


def is_placeholder(value: str) -> bool:
    """True for values such as `${API_KEY}`, `<your-key>`, `xxx…`, `changeme` or `sk-...`."""
    return bool(_PLACEHOLDER.search(value)) or len(set(value)) <= 4


def looks_random(value: str, *, min_length: int = 16, min_entropy: float = 3.5) -> bool:
    """A value long and varied enough to be a credential rather than a word or a placeholder."""
    if len(value) < min_length or is_placeholder(value):
        return False
    if not (any(c.isdigit() for c in value) and any(c.isalpha() for c in value)):
        return False
    return shannon_entropy(value) >= min_entropy


def mask(value: str) -> str:
    """The first few characters of a secret, then an ellipsis: never the secret in full."""
    return value[:MASK_KEEP] + ELLIPSIS


# Everything that could be a live secret in an excerpt: the provider formats and any long token of
# mixed letters and digits that is random enough. Masking too much only hides a hash or an id.
_SECRET_SHAPES = re.compile(
    r"(?:A[KS]IA|AIza|gh[pousr]_|github_pat_|sk-|xox[bpars]-)[A-Za-z0-9_\-]{8,}"
    r"|[A-Za-z0-9_+/=\-]{20,}"
)


def mask_secrets(text: str) -> str:
    """`text` with every secret-shaped token cut to its first 4 characters."""

    def replace(match: re.Match[str]) -> str:
        token = match.group()
        if token[:4] in {"AKIA", "ASIA", "AIza"} or token.startswith(
            ("gh", "github_pat_", "sk-", "xox")
        ):
            return mask(token)
        return mask(token) if looks_random(token, min_length=20, min_entropy=3.8) else token

    return _SECRET_SHAPES.sub(replace, text)


def excerpt(line: str, column: int = 0, *, secrets: tuple[str, ...] = ()) -> str:
    """At most MAX_EXCERPT characters of `line` around `column`, escaped and with secrets masked.

    `secrets` are values known to be secret on this line (masked even when they look plain).
    """
    for value in secrets:
        if value:
            line = line.replace(value, mask(value))
    text = printable(mask_secrets(line.strip()))
    if len(text) <= MAX_EXCERPT:
        return text
    # Keep the match in view: start a little before it, mark what was cut with an ellipsis.
    stripped_offset = len(line) - len(line.lstrip())
    start = max(0, min(column - stripped_offset - 40, len(text) - MAX_EXCERPT + 1))
    head = ELLIPSIS if start > 0 else ""
    room = MAX_EXCERPT - len(head) - 1
    body = text[start : start + room]
    return head + body + (ELLIPSIS if start + room < len(text) else "")
