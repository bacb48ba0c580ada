"""The one secret type and the one redaction function.

A token travels as `Secret`, whose `str()` and `repr()` are redacted (like pip's `HiddenText`), so
an f-string, a log call, an exception or a dataclass `repr` cannot leak it by accident; only
`reveal()` gives the value, at the place it is sent. `redact` is the one function that cleans text
that might carry a secret: known secret values, and the `user:password@` part of URLs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

REDACTED = "***"

# Environment variables whose values never appear in a log line, span, metric label or metadata.
SECRET_VARIABLES = ("GITHUB_TOKEN", "SKILLMEAT_WEBHOOK_SECRET", "DAGSTER_PG_PASSWORD")

# `scheme://user:password@host` and `scheme://token@host`: everything between `//` and `@`.
_CREDENTIALS_IN_URL = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
# A value this short is no credential, and redacting it would blank half of every line.
_MIN_SECRET_LENGTH = 4


class Secret:
    """A value that must not be printed: `str()` and `repr()` show `***`, `reveal()` the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    @classmethod
    def from_env(cls, name: str, environ: Mapping[str, str] | None = None) -> Secret | None:
        """The variable's value as a secret, or None when it is unset or empty."""
        value = (os.environ if environ is None else environ).get(name, "")
        return cls(value) if value else None

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return REDACTED

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def secrets_from_env(environ: Mapping[str, str] | None = None) -> tuple[Secret, ...]:
    """The secrets set in the environment (`SECRET_VARIABLES`)."""
    env = os.environ if environ is None else environ
    found = (Secret.from_env(name, env) for name in SECRET_VARIABLES)
    return tuple(s for s in found if s is not None)


def redact(text: str, secrets: Iterable[Secret | str | None] = ()) -> str:
    """`text` without any of `secrets` and without credentials inside URLs."""
    for secret in secrets:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if value and len(value) >= _MIN_SECRET_LENGTH and value in text:
            text = text.replace(value, REDACTED)
    return _CREDENTIALS_IN_URL.sub(r"\1", text)
