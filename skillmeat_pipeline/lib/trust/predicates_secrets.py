"""Secrets: the `accept` predicates for token formats (checked case-sensitively on the original
bytes) and the secret-named config values."""

from __future__ import annotations

import re

from skillmeat_pipeline.lib.trust.model import Hit
from skillmeat_pipeline.lib.trust.text import looks_random

# Secret-named keys with a literal value in JSON, YAML, TOML and .env files (original bytes).
CONFIG_SECRET = re.compile(
    rb"(?P<key>[A-Za-z0-9_.-]{0,40}?(?:api[_-]?key|apikey|secret|token|password|passwd|pwd"
    rb"|access[_-]?key|private[_-]?key|credentials?|auth[_-]?key)[A-Za-z0-9_-]{0,20})"
    rb"[\"']?[ \t]*[:=][ \t]*[\"']?(?P<value>[^\"'\s,}{#]{16,300})",
    re.IGNORECASE,
)
CONFIG_SECRET_WORDS = (b"key", b"token", b"secret", b"passw", b"pwd", b"credential", b"auth")
_NOT_SECRET_KEY = re.compile(
    rb"(?:_|-|^)(?:url|uri|endpoint|path|file|dir|name|type|env|var|header|prefix|length|limit"
    rb"|count|ttl|expiry|expires|id|usage|budget|model|format|encoding|field|key_?name)$"
    rb"|tokens?_?(?:count|limit|usage|budget)|max_?tokens|tokenizer",
    re.IGNORECASE,
)


def _raw_secret(hit: Hit, pattern: re.Pattern[bytes]) -> str | None:
    match = pattern.match(hit.raw, hit.start)
    if match is None:
        return None
    return match.group().decode("ascii", "replace")


_AWS_KEY = re.compile(rb"(?:AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Za-z])")
_GITHUB_TOKEN = re.compile(rb"gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,251}")
_SK_KEY = re.compile(rb"sk-[A-Za-z0-9_-]{20,300}")
_SLACK_TOKEN = re.compile(rb"xox[bpars]-[0-9]{6,}-[0-9A-Za-z-]{6,250}")
_GOOGLE_KEY = re.compile(rb"AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])")


def _secret(hit: Hit, pattern: re.Pattern[bytes], body_from: int, min_entropy: float) -> bool:
    if hit.start > 0 and re.match(rb"[0-9a-z]", hit.line[hit.start - 1 : hit.start]):
        return False  # inside a longer word
    value = _raw_secret(hit, pattern)
    if value is None or "EXAMPLE" in value.upper():
        return False
    if not looks_random(value[body_from:], min_length=12, min_entropy=min_entropy):
        return False
    hit.secrets.append(value)
    return True


def accept_aws_key(hit: Hit) -> bool:
    return _secret(hit, _AWS_KEY, 4, 3.0)


def accept_github_token(hit: Hit) -> bool:
    return _secret(hit, _GITHUB_TOKEN, 4, 3.5)


def accept_openai_key(hit: Hit) -> bool:
    if hit.line.startswith(b"sk-ant-", hit.start):
        return False
    return _secret(hit, _SK_KEY, 3, 3.5)


def accept_anthropic_key(hit: Hit) -> bool:
    if not hit.line.startswith(b"sk-ant-", hit.start):
        return False
    return _secret(hit, _SK_KEY, 7, 3.5)


def accept_slack_token(hit: Hit) -> bool:
    return _secret(hit, _SLACK_TOKEN, 5, 3.0)


def accept_google_key(hit: Hit) -> bool:
    return _secret(hit, _GOOGLE_KEY, 4, 3.5)


_KEY_BODY = re.compile(rb"(?:\\n|\n|\r\n|\s)+([A-Za-z0-9+/=]{40,})")


def accept_private_key(hit: Hit) -> bool:
    if not hit.raw.startswith(b"-----BEGIN", hit.start):
        return False
    close = hit.line.find(b"-----", hit.end)
    if close < 0:
        return False
    # the body follows on the next line, or after an escaped `\n` in a JSON string
    after = hit.ahead(close + 5 - hit.start + 200)[close + 5 - hit.start :]
    return bool(_KEY_BODY.match(after))


def config_secret_value(key: bytes, value: bytes) -> bool:
    """A literal value of a secret-named config key that looks like a real credential."""
    if _NOT_SECRET_KEY.search(key):
        return False
    text = value.decode("utf-8", "replace")
    if "://" in text and "@" not in text:
        return False
    if text.startswith(("/", "./", "~", "../")) or text.endswith((".json", ".pem", ".txt")):
        return False
    return looks_random(text, min_length=16, min_entropy=3.5)
