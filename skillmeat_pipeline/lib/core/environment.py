"""Settings read from environment variables, checked so that a bad value fails with its name."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TypeVar

_Number = TypeVar("_Number", int, float)


def number_from_env(
    env: Mapping[str, str],
    name: str,
    parse: Callable[[str], _Number],
    default: _Number,
    *,
    allow_zero: bool,
) -> _Number:
    """Variable `name` of `env` read with `parse` (`int` or `float`), `default` when unset or blank.

    Raises `ValueError` naming the variable for text that is no number, a negative or non-finite
    number, and zero unless `allow_zero`.
    """
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError:
        kind = "a whole number" if parse is int else "a number"
        raise ValueError(f"{name} must be {kind}, got {raw!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "more than zero"
        raise ValueError(f"{name} must be {bound}, got {raw!r}")
    return value
