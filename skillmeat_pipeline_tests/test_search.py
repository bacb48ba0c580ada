"""The search language (README "Searching") on SQLite and PostgreSQL: the parser, every operator on
both backends, and the parity of both backends on a catalog of the whole corpus."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pygit2
import pytest
from click.testing import CliRunner
from sqlalchemy.engine import Engine

from skillmeat_pipeline.cli import main
from skillmeat_pipeline.lib.catalog.query import (
    Query,
    QueryError,
    Term,
    TermKind,
    parse_query,
    search_document,
    stem,
)
from skillmeat_pipeline.lib.catalog.search import SearchHit, search_catalog, suggest_words
from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.catalog.tables import catalog_entries
from skillmeat_pipeline.lib.core.detection import detect_artifacts
from skillmeat_pipeline.lib.core.extraction import extract_catalog_entries
from skillmeat_pipeline.lib.core.models import ArtifactType, CatalogEntry
from skillmeat_pipeline.lib.core.strategy import CloneTarget, Strategy
from skillmeat_pipeline.lib.fetch.git.tree import snapshot_commit
from skillmeat_pipeline_tests.conftest import corpus_table
from skillmeat_pipeline_tests.fixtures_db import scratch_postgres_database
from skillmeat_pipeline_tests.test_catalog import (
    BACKENDS,
    HEAD,
    OTHER,
    SOURCE,
    config,
    entry,
    insert_source_row,
    scan,
    schema_differences,
    schema_revision,
    upgrade_to,
    write_as_stored_then,
)

# -- the parser -----------------------------------------------------------------------------------


def word(token: str, text: str | None = None) -> Term:
    return Term(TermKind.WORD, (token,), text or token)


def test_words_phrases_exclusions_or_and_prefixes_parse_into_one_query() -> None:
    query = parse_query('pdf "Fill Forms" -scanned -"old api" docx OR Xlsx tab*')

    assert query == Query(
        groups=(
            (word("pdf"),),
            (Term(TermKind.PHRASE, ("fill", "form"), "fill forms"),),
            (word("docx"), word("xlsx")),
            (Term(TermKind.PREFIX, ("tab",), "tab*"),),
        ),
        excluded=(word("scan", "scanned"), Term(TermKind.PHRASE, ("old", "api"), "old api")),
    )


def test_field_filters_take_plural_types_and_any_case() -> None:
    query = parse_query("Type:Hooks type:mcp -type:agent source:Anthropics/Skills -source:a/b x")

    assert query.types == {ArtifactType.HOOK, ArtifactType.MCP}
    assert query.excluded_types == {ArtifactType.AGENT}
    assert (query.sources, query.excluded_sources) == ({"anthropics/skills"}, {"a/b"})
    assert parse_query("type:hook").groups == ()  # filters alone list what they select
    with pytest.raises(QueryError, match=r"unknown type 'banana'.*skill, agent"):
        parse_query("type:banana pdf")


def test_punctuation_makes_phrases_and_unknown_fields_are_words() -> None:
    assert parse_query("pdf-tools").groups == (
        (Term(TermKind.PHRASE, ("pdf", "tool"), "pdf-tools"),),
    )
    assert parse_query("name:terraform").groups[0][0].tokens == ("name", "terraform")
    assert parse_query("pdf-to*").groups == (
        (word("pdf"),),
        (Term(TermKind.PREFIX, ("to",), "pdf-to*"),),
    )
    assert parse_query("--draft x").excluded == (word("draft", "-draft"),)
    assert parse_query("or x or").groups == ((word("x"),),)  # a dangling `or` joins nothing


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty query"),
        ("   ", "empty query"),
        ("-pdf", "only excludes"),
        ('-"fill forms" -type:hook', "only excludes"),
        ("() !! --", "no words"),
        ("x" * 1001, "at most 1000"),
        (" ".join(f"w{i}" for i in range(33)), "more than 32 terms"),
    ],
)
def test_queries_that_cannot_be_searched_say_why_in_one_line(text: str, message: str) -> None:
    with pytest.raises(QueryError, match=message) as raised:
        parse_query(text)
    assert isinstance(raised.value, ValueError) and "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("words", "stemmed"),
    [
        (["hook", "hooks", "Hooks"], "hook"),
        (["extract", "extracts", "extracting", "extracted"], "extract"),
        (["table", "tables"], "table"),
        (["class", "classes"], "class"),
        (["library", "libraries"], "library"),
        (["run", "running"], "run"),
    ],
)
def test_the_stemmer_maps_inflections_together(words: list[str], stemmed: str) -> None:
    assert {stem(w.lower()) for w in words} == {stemmed}


def test_the_document_holds_type_and_path_and_no_punctuation() -> None:
    document = search_document(
        artifact_type="hook",
        path="hooks/hooks.json",
        name="Pre-Commit",
        title=None,
        description='Runs "lint"\n(NEAR: *café*)',
        tags=["Git"],
        deep_search_text=None,
    )

    assert document == "pre commit git run lint near cafe hook hook hook json"


# -- every operator, on each backend --------------------------------------------------------------


def searchable_catalog(catalog: Catalog) -> Catalog:
    catalog.upsert_sources([config(SOURCE), config(OTHER)])
    scan(
        catalog,
        [
            entry("skills/tf", name="terraform-plan", description="Plans infrastructure changes"),
            entry("skills/fmt", description="Formats terraform files before commit"),
            entry("skills/lint", description="Lints shell scripts", deep="see terraform docs"),
            entry("skills/pdf", description="Extracts tables from PDF files", tags=("documents",)),
        ],
        "c1",
    )
    scan(
        catalog,
        [
            entry("agents/tf.md", source=OTHER, kind=ArtifactType.AGENT, description="terraform"),
            entry("commands/git/commit.md", source=OTHER, kind=ArtifactType.COMMAND),
        ],
        "c1",
        source=OTHER,
    )
    return catalog


def test_search_finds_a_skill_by_a_word_of_its_description(catalog: Catalog) -> None:
    searchable_catalog(catalog)

    [hit] = search_catalog(catalog, "tables")

    assert (hit.source_key, hit.path, hit.artifact_type, hit.name) == (
        SOURCE,
        "skills/pdf",
        ArtifactType.SKILL,
        "pdf",
    )
    assert hit.description == "Extracts tables from PDF files" and hit.score > 0
    assert [h.path for h in search_catalog(catalog, "documents")] == ["skills/pdf"]  # a tag
    assert [h.path for h in search_catalog(catalog, "EXTRACTING table")] == [
        "skills/pdf"
    ]  # stemmed
    assert (
        search_catalog(catalog, "tables extracts nothing-like-this") == []
    )  # every word must match


def test_search_filters_by_type_and_source(catalog: Catalog) -> None:
    searchable_catalog(catalog)

    assert {h.path for h in search_catalog(catalog, "terraform", source_key=OTHER)} == {
        "agents/tf.md"
    }
    assert [
        h.path for h in search_catalog(catalog, "terraform", artifact_type=ArtifactType.AGENT)
    ] == ["agents/tf.md"]
    assert search_catalog(catalog, "terraform", artifact_type="command") == []
    assert len(search_catalog(catalog, "terraform", source_key=SOURCE)) == 3
    assert len(search_catalog(catalog, "terraform", limit=2)) == 2


def test_search_ranks_a_name_match_above_a_mention(catalog: Catalog) -> None:
    searchable_catalog(catalog)

    hits = search_catalog(catalog, "terraform", source_key=SOURCE)

    assert [h.path for h in hits] == ["skills/tf", "skills/fmt", "skills/lint"]
    assert hits[0].score > hits[1].score > hits[2].score


def test_search_leaves_out_removed_entries(catalog: Catalog) -> None:
    searchable_catalog(catalog)
    scan(catalog, [entry("skills/pdf", description="Extracts tables from PDF files")], "c2")

    assert search_catalog(catalog, "terraform", source_key=SOURCE) == []
    assert [h.path for h in search_catalog(catalog, "tables")] == ["skills/pdf"]


HOSTILE_QUERIES = [
    '"foo',
    "AND (",
    "OR",
    "NOT",
    "*",
    "terraform*",
    "NEAR(a b)",
    "name:terraform",
    "-terraform",
    "'",
    '"',
    '""',
    "()",
    "\\",
    "^",
    '"a" OR "b"',
    "'; DROP TABLE sources; --",
    "terra\x00form",
    "",
    "   ",
    "ü 🤖 ∑",
    ":*",
    "&|!",
    "a & b | !c",
    "{name title}: x",
    "terraform AND",
    "terraform -",
]


def test_search_takes_any_text_without_a_database_error(catalog: Catalog) -> None:
    searchable_catalog(catalog)

    for query in HOSTILE_QUERIES:
        try:
            assert isinstance(search_catalog(catalog, query), list), query
        except QueryError as exc:  # empty, only exclusions, no words: one line, never SQL
            assert "\n" not in str(exc), query

    assert "skills/tf" in {h.path for h in search_catalog(catalog, '"terraform')}
    assert [s.key for s in catalog.list_sources()] == [OTHER, SOURCE]
    with pytest.raises(ValueError, match="limit"):
        search_catalog(catalog, "terraform", limit=0)


def test_an_artifact_with_a_megabyte_of_deep_text_is_written_and_found(catalog: Catalog) -> None:
    catalog.upsert_sources([config(SOURCE)])
    deep = " ".join(f"w{i:x}" for i in range(160_000))  # ~1 MB of distinct words
    assert len(deep) > 1_000_000

    scan(catalog, [entry("skills/big", deep=deep)], "c1")

    assert [h.path for h in search_catalog(catalog, "w1f00")] == ["skills/big"]


def test_sqlite_full_text_index_follows_every_change(sqlite_catalog: Catalog) -> None:
    catalog = searchable_catalog(sqlite_catalog)
    scan(catalog, [entry("skills/pdf", description="Splits PDF files")], "c2")
    catalog.mark_sources_removed([OTHER])
    with catalog.engine.begin() as conn:
        conn.execute(catalog_entries.delete().where(catalog_entries.c.path == "skills/pdf"))
        # Compares the FTS index with the content table; raises when they differ.
        conn.exec_driver_sql(
            "INSERT INTO catalog_entries_fts(catalog_entries_fts, rank) "
            "VALUES ('integrity-check', 1)"
        )
    assert search_catalog(catalog, "splits") == []


def paths(catalog: Catalog, query: str, **options: Any) -> list[str]:
    return [h.path for h in search_catalog(catalog, query, **options)]


def test_every_operator_on_each_backend(catalog: Catalog) -> None:
    searchable_catalog(catalog)

    assert paths(catalog, "terraform files") == ["skills/fmt"]  # every word
    assert paths(catalog, '"terraform files"') == ["skills/fmt"]  # a phrase
    assert paths(catalog, '"files terraform"') == []  # in that order
    assert set(paths(catalog, "terraform -formats")) == {"skills/tf", "skills/lint", "agents/tf.md"}
    assert "skills/fmt" not in paths(catalog, 'terraform -"terraform files"')
    assert set(paths(catalog, "tables or lints")) == {"skills/pdf", "skills/lint"}
    assert set(paths(catalog, "tables OR lints")) == {"skills/pdf", "skills/lint"}
    assert paths(catalog, "tables or lints pdf") == ["skills/pdf"]  # (tables or lints) and pdf
    assert set(paths(catalog, "terra*")) == {
        "skills/tf",
        "skills/fmt",
        "skills/lint",
        "agents/tf.md",
    }
    assert paths(catalog, "terraform type:agent") == ["agents/tf.md"]
    assert paths(catalog, "terraform type:agents") == ["agents/tf.md"]
    assert "agents/tf.md" not in paths(catalog, "terraform -type:agent")
    assert paths(catalog, "terraform source:ACME/agents") == ["agents/tf.md"]
    assert paths(catalog, "type:command") == ["commands/git/commit.md"]  # filters alone
    # the type and the path are words of the document
    assert paths(catalog, "commands") == ["commands/git/commit.md"]
    assert paths(catalog, "command") == ["commands/git/commit.md"]
    assert paths(catalog, "git commit") == ["commands/git/commit.md"]


def test_hooks_are_found_by_hook_and_hooks(catalog: Catalog) -> None:
    catalog.upsert_sources([config(SOURCE)])
    hook = entry("hooks/hooks.json", kind=ArtifactType.HOOK, name="hooks", description="Formats")
    scan(catalog, [hook, entry("skills/pdf", description="PDF files")], "c1")

    for query in ("hook", "hooks", "HOOKS", "type:hooks", "type:hook formats"):
        assert paths(catalog, query) == ["hooks/hooks.json"], query


def test_scores_are_one_bm25_scale_and_ties_go_by_key(catalog: Catalog) -> None:
    catalog.upsert_sources([config(SOURCE)])
    same = [entry(f"skills/{n}", name="x", description="gondola") for n in ("c", "a", "b")]
    scan(catalog, [*same, entry("skills/z", description="other")], "c1")

    hits = search_catalog(catalog, "gondola")

    assert [h.path for h in hits] == ["skills/a", "skills/b", "skills/c"]
    assert len({h.score for h in hits}) == 1 and 0 < hits[0].score < 10
    assert {h.score for h in search_catalog(catalog, "type:skill")} == {0.0}


def test_no_hits_suggest_close_words_of_the_catalog(catalog: Catalog) -> None:
    searchable_catalog(catalog)

    assert search_catalog(catalog, "pdff") == []
    assert suggest_words(catalog, "pdff") == ["pdf"]
    assert suggest_words(catalog, "terrafrom tables") == ["terraform"]
    assert suggest_words(catalog, "tables") == []  # every word is in the catalog
    assert suggest_words(catalog, "qqqqzz") == []


def test_the_cli_search_errors_suggests_and_keeps_one_line_per_hit(
    sqlite_catalog: Catalog, sqlite_catalog_url: str
) -> None:
    sqlite_catalog.upsert_sources([config(SOURCE)])
    described = "Extracts tables\n\n  from   PDF files\tfast"
    scan(sqlite_catalog, [entry("skills/pdf", description=described)], "c1")
    runner = CliRunner()
    env = {"SKILLMEAT_INDEX_URL": sqlite_catalog_url}

    def run(*args: str) -> Any:
        return runner.invoke(main, ["search", *args], env=env)

    found = run("tables")
    assert found.exit_code == 0
    [row] = found.stdout.splitlines()[1:]
    assert row.endswith("Extracts tables from PDF files fast")
    # words after the first, `-word` included, are the query's: no quotes and no `--` needed
    assert run("tables", "-invoices").stdout == found.stdout
    assert run("tables", "-pdf").stdout.startswith("no results for 'tables -pdf'")
    missing = run("pdff")
    assert (missing.exit_code, missing.stdout) == (0, "no results for 'pdff'; did you mean: pdf?\n")
    for args, message in [
        ([""], "error: empty query"),
        (["--", "-tables"], "only excludes"),
        (["tables", "--limit", "0"], "--limit"),
        (["tables", "--limt", "5"], "no such option: --limt"),
    ]:
        failed = run(*args)
        assert failed.exit_code == 2, args
        # the error is the last line (click puts its usage above its own)
        assert message in failed.stderr.strip().splitlines()[-1], args


@pytest.mark.parametrize("backend", BACKENDS)
def test_0009_indexes_the_rows_a_catalog_already_holds(backend: str, empty_database: Any) -> None:
    with empty_database(backend) as url:
        catalog = Catalog.from_url(url)
        upgrade_to(catalog, "0008")
        insert_source_row(catalog, SOURCE)
        hook = entry("hooks/hooks.json", kind=ArtifactType.HOOK, description="Formats code")
        write_as_stored_then(catalog, [hook, entry("skills/pdf", description="PDF tables")], "c1")

        catalog.migrate()

        assert schema_revision(catalog) == HEAD
        assert schema_differences(catalog) == []
        assert paths(catalog, "hooks") == ["hooks/hooks.json"]
        assert paths(catalog, '"pdf table"') == ["skills/pdf"]
        catalog.dispose()


# -- parity on the corpus -------------------------------------------------------------------------

PARITY_QUERIES = [
    "pdf",
    "code review",
    '"pull request"',
    "test -python",
    "docker or kubernetes",
    "deploy*",
    "hooks",
    "type:agent security",
    "source:anthropics/skills document",
    '"code review" -security',
    "frontend OR backend type:agents",
    "mcp server",
    'test* -"end to end"',
    "database migration -type:skill",
    "git commit",
]


@pytest.fixture(scope="module")
def corpus_entries(corpus_bare_repo: Any) -> list[tuple[str, list[CatalogEntry]]]:
    """Every corpus repository's catalog entries (detection and extraction, no findings)."""
    found = []
    for name, row in sorted(corpus_table().items()):
        if not row["artifacts"]:
            continue
        key = name.replace("+", "/", 1)
        snapshot = snapshot_commit(pygit2.Repository(str(corpus_bare_repo(name))))
        detection = detect_artifacts(snapshot, repo_name=key.split("/", 1)[1])
        found.append((key, extract_catalog_entries(snapshot, detection, source_key=key)))
    return found


def corpus_catalog(url: str, corpus: list[tuple[str, list[CatalogEntry]]]) -> Catalog:
    catalog = Catalog.from_url(url)
    catalog.migrate()
    catalog.upsert_sources([config(key) for key, _ in corpus])
    for key, entries in corpus:
        target = CloneTarget(
            strategy=Strategy.SPARSE_DIRECTORY,
            patterns=[],
            artifacts_root=None,
            artifact_paths=sorted(e.path for e in entries),
            commit_sha="c" * 40,
            tree_sha="t" * 40,
            computed_at=datetime(2025, 1, 1, tzinfo=UTC),
        )
        catalog.write_scan(
            key,
            entries,
            clone_target=target,
            api_calls=0,
            marketplace=None,
            indexed_at=datetime(2025, 1, 1, tzinfo=UTC),
        )
    return catalog


@pytest.fixture(scope="module")
def corpus_catalogs(
    corpus_entries: list[tuple[str, list[CatalogEntry]]],
    tmp_path_factory: pytest.TempPathFactory,
    postgres_admin: Engine,
) -> Iterator[dict[str, Catalog]]:
    """The corpus indexed once per module into a SQLite file and a PostgreSQL database."""
    sqlite_url = f"sqlite:///{tmp_path_factory.mktemp('corpus-search') / 'index.sqlite'}"
    with scratch_postgres_database(postgres_admin) as postgres_url:
        catalogs = {
            "sqlite": corpus_catalog(sqlite_url, corpus_entries),
            "postgresql": corpus_catalog(
                postgres_url.render_as_string(hide_password=False), corpus_entries
            ),
        }
        yield catalogs
        for catalog in catalogs.values():
            catalog.dispose()


def top(hits: list[SearchHit]) -> list[tuple[str, str, str, float]]:
    return [(h.source_key, h.artifact_type.value, h.path, h.score) for h in hits]


@pytest.mark.parametrize("query", PARITY_QUERIES)
def test_both_backends_return_the_same_top_five_with_the_same_scores(
    corpus_catalogs: dict[str, Catalog], query: str
) -> None:
    found = {}
    for backend, catalog in corpus_catalogs.items():
        started = time.perf_counter()
        found[backend] = top(search_catalog(catalog, query, limit=5))
        print(f"{backend} {query!r}: {1000 * (time.perf_counter() - started):.1f} ms")

    sqlite, postgresql = found["sqlite"], found["postgresql"]
    assert sqlite, query  # every parity query finds something in the corpus
    assert [hit[:3] for hit in sqlite] == [hit[:3] for hit in postgresql]
    assert [hit[3] for hit in sqlite] == pytest.approx([hit[3] for hit in postgresql], abs=1e-6)
