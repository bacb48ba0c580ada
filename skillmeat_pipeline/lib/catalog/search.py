"""Search of the catalog (README "Searching"): one query language, one score, on both backends.

The database only selects candidates: the live entries whose indexed `search_document` matches the
parsed query (SQLite: FTS5 with the `ascii` tokenizer; PostgreSQL: a tsvector of the same tokens,
no text-search parser involved), at most `MAX_CANDIDATES`. Python then scores every candidate
with one BM25 formula from statistics both backends give identically (entry count, document
lengths, how many entries hold each term), so the two backends return the same hits, the same
scores and the same order. Ties go by source, type and path.
"""

from __future__ import annotations

import difflib
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Row

from skillmeat_pipeline.lib.catalog.query import (
    MAX_DESCRIPTION_CHARS,
    Query,
    Term,
    TermKind,
    parse_query,
    tokens,
    words,
)
from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.catalog.tables import catalog_entries, sources
from skillmeat_pipeline.lib.core.findings import Finding, Severity
from skillmeat_pipeline.lib.core.models import ArtifactStatus, ArtifactType

# More matches than this: the shortest documents are scored (BM25 favours them anyway), so a
# query matching most of a large catalog stays bounded.
MAX_CANDIDATES = 2000
# Term counts are read from the start of each candidate's document (deep text can be long).
SCORED_DOCUMENT_CHARS = 20_000
BM25_K1 = 1.2
BM25_B = 0.75
# A token in these fields counts this many times more than once (the document holds it once):
# a name match ranks above a mention in a description, which ranks above one in deep text.
FIELD_BOOSTS = {"name": 4, "title": 4, "tags": 2, "description": 1}
MAX_SUGGESTIONS = 3
# Shorter words have too many near neighbours to be worth suggesting for.
MIN_SUGGESTED_CHARS = 4
SUGGESTION_CUTOFF = 0.8  # difflib's ratio: pdff/pdf is 0.86, word/work 0.75
_VOCABULARY_ROWS = 20_000
_VOCABULARY_DESCRIPTION_CHARS = 300
# `--max-risk none`: only entries without any finding
NO_RISK = "none"


class SearchHit(BaseModel):
    """One search result; `score` is its BM25 relevance (higher is better, 0 for filters only)."""

    model_config = ConfigDict(frozen=True)

    source_key: str
    path: str
    artifact_type: ArtifactType
    name: str
    title: str | None
    description: str | None
    tags: list[str]
    upstream_url: str | None
    confidence: int
    risk: Severity | None
    findings: list[Finding] | None
    score: float
    # where a user installs it from: `plugin@marketplace` (Claude Code's name for a plugin)
    marketplace: str | None = None
    plugin: str | None = None
    quality: int | None = None
    copies: int | None = None  # the size of its duplicate cluster (None: not computed yet)

    @property
    def install_name(self) -> str | None:
        return f"{self.plugin}@{self.marketplace}" if self.plugin and self.marketplace else None


def search_catalog(
    catalog: Catalog,
    query: str | Query,
    *,
    artifact_type: ArtifactType | str | None = None,
    source_key: str | None = None,
    max_risk: Severity | str | None = None,
    limit: int = 20,
    min_quality: int | None = None,
    all_copies: bool = False,
    by_quality: bool = False,
) -> list[SearchHit]:
    """Live entries matching `query` (text in the search language, or parsed), best first.

    `QueryError` (a ValueError) when the text cannot be searched: empty, only exclusions.
    `max_risk` keeps entries whose risk is at most that severity, or `"none"`: only entries
    without findings. A duplicate cluster shows once, as its canonical copy, unless `all_copies`;
    `min_quality` leaves out entries below it (and those not scored); `by_quality` sorts by
    quality first.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    parsed = parse_query(query) if isinstance(query, str) else query
    backend = _backend(catalog)
    document = catalog_entries.c.search_document
    statement = (
        sa.select(
            *catalog_entries.c["source_key", "path", "artifact_type", "name", "title"],
            *catalog_entries.c["description", "tags", "upstream_url", "confidence"],
            *catalog_entries.c["risk", "findings", "quality", "copies"],
            catalog_entries.c.plugin_path,
            sources.c.marketplace_key,
            sources.c.plugin,
            sources.c.marketplace.is_not(None).label("is_marketplace"),
            sa.func.length(document).label("document_length"),
            sa.func.substr(document, 1, SCORED_DOCUMENT_CHARS).label("scored_document"),
        )
        .join_from(catalog_entries, sources, sources.c.key == catalog_entries.c.source_key)
        .where(catalog_entries.c.status != ArtifactStatus.REMOVED, *backend.conditions(parsed))
    )
    if artifact_type is not None:
        statement = statement.where(catalog_entries.c.artifact_type == ArtifactType(artifact_type))
    if source_key is not None:
        statement = statement.where(catalog_entries.c.source_key == source_key)
    if max_risk is not None:
        statement = statement.where(_risk_at_most(max_risk))
    if not all_copies:
        statement = statement.where(catalog_entries.c.duplicate_of.is_(None))
    if min_quality is not None:
        statement = statement.where(catalog_entries.c.quality >= min_quality)
    key_order = [
        catalog_entries.c.source_key,
        catalog_entries.c.artifact_type,
        catalog_entries.c.path,
    ]
    statement = statement.order_by(sa.func.length(document), *key_order).limit(MAX_CANDIDATES)
    with catalog.engine.connect() as conn:
        rows = conn.execute(statement).all()
        statistics = _statistics(conn, backend, parsed.terms) if rows else None
        scored = sorted(
            ((_score(row, parsed.terms, statistics) if statistics else 0.0, row) for row in rows),
            key=lambda pair: _order(*pair, by_quality=by_quality),
        )[:limit]
        owners = _plugin_names(conn, [row for _, row in scored])
    return [_hit(row, score, owners) for score, row in scored]


def suggest_words(
    catalog: Catalog, query: str | Query, *, limit: int = MAX_SUGGESTIONS
) -> list[str]:
    """Words of the catalog close to the query's words that match nothing (`pdff` -> `pdf`).

    Bounded: the vocabulary is the words of the names, titles and description starts of at most
    `_VOCABULARY_ROWS` live entries.
    """
    parsed = parse_query(query) if isinstance(query, str) else query
    backend = _backend(catalog)
    with catalog.engine.connect() as conn:
        missing = [
            word
            for term in parsed.terms
            if term.kind is not TermKind.PREFIX
            for word, token in zip(words(term.text), term.tokens, strict=False)
            if len(word) >= MIN_SUGGESTED_CHARS
            and conn.execute(
                _count_matching(backend, Term(TermKind.WORD, (token,), word))
            ).scalar_one()
            == 0
        ]
        if not missing:
            return []
        rows = conn.execute(
            sa.select(
                catalog_entries.c.name,
                catalog_entries.c.title,
                sa.func.substr(catalog_entries.c.description, 1, _VOCABULARY_DESCRIPTION_CHARS),
            )
            .where(catalog_entries.c.status != ArtifactStatus.REMOVED)
            .order_by(catalog_entries.c.id)
            .limit(_VOCABULARY_ROWS)
        ).all()
    vocabulary = sorted(
        {word for row in rows for text in row if text for word in words(text) if len(word) > 2}
    )
    found: list[str] = []
    for word in missing:
        for close in difflib.get_close_matches(word, vocabulary, n=limit, cutoff=SUGGESTION_CUTOFF):
            if close not in found:
                found.append(close)
    return found[:limit]


# -- backends ---------------------------------------------------------------------------------


class _Backend:
    """How one database matches a term against the indexed `search_document`."""

    def conditions(self, query: Query) -> list[sa.ColumnElement[bool]]:
        found: list[sa.ColumnElement[bool]] = []
        if query.groups:
            found.append(self.matches_all(query.groups))
        if query.excluded:
            found.append(sa.not_(self.matches_all((query.excluded,))))
        if query.types:
            found.append(catalog_entries.c.artifact_type.in_(sorted(query.types)))
        if query.excluded_types:
            found.append(catalog_entries.c.artifact_type.not_in(sorted(query.excluded_types)))
        source = sa.func.lower(catalog_entries.c.source_key)
        if query.sources:
            found.append(source.in_(sorted(query.sources)))
        if query.excluded_sources:
            found.append(source.not_in(sorted(query.excluded_sources)))
        return found

    def matches_all(self, groups: Sequence[Sequence[Term]]) -> sa.ColumnElement[bool]:
        """Every group has a matching term."""
        raise NotImplementedError


class _SQLite(_Backend):
    """One FTS5 MATCH expression; every token is a quoted string, so nothing is FTS syntax."""

    def matches_all(self, groups: Sequence[Sequence[Term]]) -> sa.ColumnElement[bool]:
        expression = " AND ".join(
            "(" + " OR ".join(self._fts5(term) for term in group) + ")" for group in groups
        )
        fts = sa.table("catalog_entries_fts", sa.column("rowid"))
        fts_name: sa.ColumnClause[Any] = sa.literal_column("catalog_entries_fts")
        return catalog_entries.c.id.in_(
            sa.select(fts.c.rowid).where(fts_name.op("MATCH")(expression))
        )

    @staticmethod
    def _fts5(term: Term) -> str:
        # Tokens are letters and digits only (query.tokens): no quote to escape.
        quoted = '"' + " ".join(term.tokens) + '"'
        return quoted + "*" if term.kind is TermKind.PREFIX else quoted


class _PostgreSQL(_Backend):
    """tsquery literals of the stored tokens (no parser, no dictionary), and a phrase check on
    the document text: the tsvector holds no positions."""

    def matches_all(self, groups: Sequence[Sequence[Term]]) -> sa.ColumnElement[bool]:
        return sa.and_(*(sa.or_(*(self._matches(term) for term in group)) for group in groups))

    @staticmethod
    def _matches(term: Term) -> sa.ColumnElement[bool]:
        vector = sa.literal_column("catalog_entries.search_vector", postgresql.TSVECTOR)
        suffix = ":*" if term.kind is TermKind.PREFIX else ""
        lexemes = " & ".join(f"'{token}'{suffix}" for token in term.tokens)
        matched = vector.bool_op("@@")(sa.cast(sa.literal(lexemes), postgresql.TSQUERY))
        if term.kind is not TermKind.PHRASE:
            return matched
        spaced = sa.literal(" ") + catalog_entries.c.search_document + sa.literal(" ")
        return sa.and_(matched, sa.func.strpos(spaced, f" {' '.join(term.tokens)} ") > 0)


def _backend(catalog: Catalog) -> _Backend:
    return _SQLite() if catalog.dialect == "sqlite" else _PostgreSQL()


# -- scoring ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Statistics:
    entries: int
    average_length: float
    holding: dict[Term, int]  # how many live entries match each term


def _count_matching(backend: _Backend, term: Term) -> sa.Select[int]:
    return sa.select(sa.func.count()).where(
        catalog_entries.c.status != ArtifactStatus.REMOVED, backend.matches_all(((term,),))
    )


def _statistics(conn: Connection, backend: _Backend, terms: Sequence[Term]) -> _Statistics | None:
    if not terms:
        return None
    live = catalog_entries.c.status != ArtifactStatus.REMOVED
    entries, total_length = conn.execute(
        sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(sa.func.length(catalog_entries.c.search_document)), 0),
        ).where(live)
    ).one()
    holding = {term: conn.execute(_count_matching(backend, term)).scalar_one() for term in terms}
    # integers from the database; the float arithmetic is Python's on both backends
    return _Statistics(int(entries), int(total_length) / max(int(entries), 1), holding)


def _score(row: Row[*tuple[Any, ...]], terms: Sequence[Term], statistics: _Statistics) -> float:
    """BM25 of the row's document; occurrences in boosted fields count extra."""
    document = row.scored_document.split(" ") if row.scored_document else []
    fields = {
        "name": tokens(row.name),
        "title": tokens(row.title or ""),
        "tags": [token for tag in row.tags for token in tokens(tag)],
        "description": tokens((row.description or "")[:MAX_DESCRIPTION_CHARS]),
    }
    length_ratio = (
        row.document_length / statistics.average_length if statistics.average_length else 1.0
    )
    score = 0.0
    for term in terms:
        frequency = _occurrences(term, document) + sum(
            boost * _occurrences(term, fields[field]) for field, boost in FIELD_BOOSTS.items()
        )
        if not frequency:
            continue
        holding = statistics.holding[term]
        idf = math.log(1 + (statistics.entries - holding + 0.5) / (holding + 0.5))
        norm = BM25_K1 * (1 - BM25_B + BM25_B * length_ratio)
        score += idf * frequency * (BM25_K1 + 1) / (frequency + norm)
    return score


def _order(score: float, row: Row[*tuple[Any, ...]], *, by_quality: bool) -> tuple[Any, ...]:
    quality = (row.quality is None, -(row.quality or 0)) if by_quality else ()
    return (*quality, -score, row.source_key, row.artifact_type, row.path)


def _occurrences(term: Term, document: Sequence[str]) -> int:
    if term.kind is TermKind.PREFIX:
        return sum(1 for token in document if token.startswith(term.tokens[0]))
    if term.kind is TermKind.WORD:
        return Counter(document)[term.tokens[0]] if document else 0
    width = len(term.tokens)
    return sum(
        1
        for start in range(len(document) - width + 1)
        if tuple(document[start : start + width]) == term.tokens
    )


# -- hits -------------------------------------------------------------------------------------


def _hit(row: Row[*tuple[Any, ...]], score: float, owners: dict[tuple[str, str], str]) -> SearchHit:
    fields = row._asdict()
    if row.marketplace_key:  # an artifact of a plugin source
        fields |= {"marketplace": row.marketplace_key, "plugin": row.plugin}
    elif row.is_marketplace:  # one of a marketplace's own plugins, or inside one
        own = row.name if row.artifact_type == ArtifactType.PLUGIN else None
        plugin = own or owners.get((row.source_key, row.plugin_path))
        fields |= {"marketplace": row.source_key if plugin else None, "plugin": plugin}
    return SearchHit.model_validate(fields | {"score": score})


def _plugin_names(
    conn: Connection, rows: Sequence[Row[*tuple[Any, ...]]]
) -> dict[tuple[str, str], str]:
    """(source, plugin path) -> plugin name, for hits inside a marketplace's own plugins."""
    wanted = {
        (row.source_key, row.plugin_path)
        for row in rows
        if row.is_marketplace and not row.marketplace_key and row.plugin_path
    }
    if not wanted:
        return {}
    query = sa.select(
        catalog_entries.c.source_key, catalog_entries.c.path, catalog_entries.c.name
    ).where(
        catalog_entries.c.artifact_type == ArtifactType.PLUGIN,
        catalog_entries.c.source_key.in_(sorted({key for key, _ in wanted})),
        catalog_entries.c.path.in_(sorted({path for _, path in wanted})),
    )
    return {(r.source_key, r.path): r.name for r in conn.execute(query)}


def _risk_at_most(max_risk: Severity | str) -> sa.ColumnElement[bool]:
    risk = catalog_entries.c.risk
    if max_risk == NO_RISK:
        return risk.is_(None)
    allowed = [s.value for s in Severity.at_most(Severity(max_risk))]
    return sa.or_(risk.is_(None), risk.in_(allowed))
