"""The catalog's search language (README "Searching"): its parser and the text both backends index.

Python produces every token, at index time (`search_document`, stored in the catalog row) and at
query time (`parse_query`), so SQLite and PostgreSQL see identical tokens: lowercased, accents
removed, split on anything that is not a letter or digit, with a light English stemmer. Changing
`tokens` changes what is stored: it needs a catalog migration that rebuilds `search_document`.

The language: words (all must match), "exact phrases", `-word` and `-"phrase"` (exclusion), `or`
between two terms, `prefix*`, and the filters `type:hook` (plural too) and `source:owner/repo`.
Any other text is plain words: quotes, brackets, colons and operators of the databases' own query
syntaxes never reach a database as syntax.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from skillmeat_pipeline.lib.core.models import ArtifactType

MAX_QUERY_CHARS = 1000
MAX_QUERY_TERMS = 32
MAX_TOKEN_CHARS = 64  # longer runs are hashes or encoded blobs, not words anyone searches
# Deep text is up to 1 MB per artifact; the first part is enough to find it by, and keeps the
# stored document (and PostgreSQL's tsvector, limited to 1 MiB) small.
MAX_DEEP_TEXT_CHARS = 200_000
MAX_DESCRIPTION_CHARS = 20_000

_WORD = re.compile(r"[^\W_]+")
_FIELDS = ("type", "source")
_TYPE_NAMES = {
    **{t.value: t for t in ArtifactType},
    **{f"{t.value}s": t for t in ArtifactType},
}


class QueryError(ValueError):
    """A query that cannot be searched (empty, only exclusions, unknown type, too long)."""


class TermKind(StrEnum):
    WORD = "word"
    PHRASE = "phrase"  # its tokens in this order, next to each other
    PREFIX = "prefix"  # any token starting with its one token


@dataclass(frozen=True, slots=True)
class Term:
    kind: TermKind
    tokens: tuple[str, ...]
    text: str  # as the user wrote it, lowercased (for suggestions and messages)


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query: every group must match, a group matches when one of its terms does."""

    groups: tuple[tuple[Term, ...], ...] = ()
    excluded: tuple[Term, ...] = ()
    types: frozenset[ArtifactType] = frozenset()
    excluded_types: frozenset[ArtifactType] = frozenset()
    sources: frozenset[str] = frozenset()
    excluded_sources: frozenset[str] = frozenset()

    @property
    def terms(self) -> tuple[Term, ...]:
        """Every term that scores: the positive ones, each once."""
        return tuple(dict.fromkeys(term for group in self.groups for term in group))


def stem(token: str) -> str:
    """A light English stemmer: plurals, -ing and -ed (`hooks`, `extracting` -> hook, extract).

    Deliberately small: the same function runs at index and query time, so it only has to map
    the usual inflections of a word together, not be a linguist.
    """
    if len(token) <= 3 or not token.isascii() or not token.isalpha():
        return token
    if token.endswith("ies") and len(token) > 4:
        token = token[:-3] + "y"
    elif token.endswith("sses") or (
        token.endswith("es") and (token[-3] in "sxz" or token[-4:-2] in ("ch", "sh"))
    ):
        token = token[:-2]
    elif token.endswith("s") and not token.endswith(("ss", "us", "is")):
        token = token[:-1]
    for suffix in ("ing", "ed"):
        base = token[: -len(suffix)]
        if token.endswith(suffix) and len(base) >= 3 and re.search("[aeiouy]", base):
            if len(base) > 3 and base[-1] == base[-2] and base[-1] not in "lsz":
                base = base[:-1]  # running -> run
            return base
    return token


def tokens(text: str) -> list[str]:
    """The search tokens of `text`, in order: what is indexed and what a query looks for."""
    return [stem(word) for word in words(text)]


def words(text: str) -> list[str]:
    """The words of `text`, lowercased and without accents, not stemmed."""
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in folded if not unicodedata.combining(c)).lower()
    return [word for word in _WORD.findall(folded) if len(word) <= MAX_TOKEN_CHARS]


def search_document(
    *,
    artifact_type: str,
    path: str,
    name: str,
    title: str | None,
    description: str | None,
    tags: Iterable[str],
    deep_search_text: str | None,
) -> str:
    """The text both backends index for one entry: its tokens joined by single spaces.

    Name first (a phrase never spans two fields' ends in a way a user would notice), then title,
    tags, description, the artifact type and its path (so `hook` and `hooks` find hooks), and the
    start of its deep text.
    """
    parts = [
        name,
        title or "",
        " ".join(tags),
        (description or "")[:MAX_DESCRIPTION_CHARS],
        artifact_type,
        path,
        (deep_search_text or "")[:MAX_DEEP_TEXT_CHARS],
    ]
    return " ".join(token for part in parts for token in tokens(part))


def parse_query(text: str) -> Query:
    """The query of `text`; `QueryError` with a one-line reason when it cannot be searched."""
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"the query is {len(text)} characters long; at most {MAX_QUERY_CHARS}")
    parser = _Parser()
    for negated, field, value, quoted in _lexemes(text.replace("\x00", " ")):
        parser.add(negated, field, value, quoted)
    return parser.query(text)


def _lexemes(text: str) -> Iterable[tuple[bool, str | None, str, bool]]:
    """(negated, field, value, quoted) for each whitespace-separated piece or quoted phrase."""
    position, end = 0, len(text)
    while position < end:
        if text[position].isspace():
            position += 1
            continue
        negated = text[position] == "-" and position + 1 < end and not text[position + 1].isspace()
        if negated:
            position += 1
        field: str | None = None
        match = re.match(r"([A-Za-z]+):(?=\S)", text[position:])
        if match and match.group(1).lower() in _FIELDS:
            field = match.group(1).lower()
            position += match.end()
        if text[position] == '"':
            close = text.find('"', position + 1)
            close = end if close < 0 else close
            yield negated, field, text[position + 1 : close], True
            position = close + 1
        else:
            stop = position
            while (
                stop < end and not text[stop].isspace() and (stop == position or text[stop] != '"')
            ):
                stop += 1
            yield negated, field, text[position:stop], False
            position = stop


class _Parser:
    def __init__(self) -> None:
        self.groups: list[list[Term]] = []
        self.excluded: list[Term] = []
        self.types: set[ArtifactType] = set()
        self.excluded_types: set[ArtifactType] = set()
        self.sources: set[str] = set()
        self.excluded_sources: set[str] = set()
        self.joining = False  # the previous piece was `or`
        self.count = 0

    def add(self, negated: bool, field: str | None, value: str, quoted: bool) -> None:
        joining, self.joining = self.joining, False
        if field == "type":
            kind = _TYPE_NAMES.get(value.strip().lower())
            if kind is None:
                known = ", ".join(t.value for t in ArtifactType)
                raise QueryError(f"unknown type {value!r} in type:{value}; one of {known}")
            (self.excluded_types if negated else self.types).add(kind)
            return
        if field == "source":
            (self.excluded_sources if negated else self.sources).add(value.strip().lower())
            return
        if not negated and not quoted and value.lower() == "or":
            self.joining = bool(self.groups)
            return
        found = _terms(value, quoted)
        self.count += len(found)
        if self.count > MAX_QUERY_TERMS:
            raise QueryError(f"the query has more than {MAX_QUERY_TERMS} terms")
        if negated:
            self.excluded.extend(found)
            return
        if joining and found:
            self.groups[-1].append(found.pop(0))
        self.groups.extend([term] for term in found)

    def query(self, text: str) -> Query:
        if not (self.groups or self.types or self.sources):
            if not text.strip():
                raise QueryError("empty query: give at least one word to search for")
            if self.excluded or self.excluded_types or self.excluded_sources:
                raise QueryError(
                    f"{text.strip()!r} only excludes: give at least one word to search for"
                )
            raise QueryError(f"{text.strip()!r} has no words to search for")
        return Query(
            groups=tuple(tuple(dict.fromkeys(group)) for group in self.groups),
            excluded=tuple(dict.fromkeys(self.excluded)),
            types=frozenset(self.types),
            excluded_types=frozenset(self.excluded_types),
            sources=frozenset(self.sources),
            excluded_sources=frozenset(self.excluded_sources),
        )


def _terms(value: str, quoted: bool) -> list[Term]:
    """The terms of one piece: a word, a phrase (quoted, or words joined by punctuation such as
    `pdf-tools`), or a prefix (`pdf*`; `pdf-to*` is the word pdf and the prefix to)."""
    text = value.lower()
    if not quoted and value.endswith("*"):
        found = words(value)
        # the prefix is matched as typed: stemming half a word would change it
        leading = [Term(TermKind.WORD, (stem(word),), word) for word in found[:-1]]
        return [*leading, Term(TermKind.PREFIX, (found[-1],), text)] if found else []
    found = tokens(value)
    if not found:
        return []
    if len(found) == 1:
        return [Term(TermKind.WORD, (found[0],), text)]
    return [Term(TermKind.PHRASE, tuple(found), text)]
