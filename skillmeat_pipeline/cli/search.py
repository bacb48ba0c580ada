"""`skillmeat-pipeline search` and `findings`: read the catalog."""

import json

import click

from skillmeat_pipeline.cli.output import fail, format_rows, one_line, risk_label
from skillmeat_pipeline.cli.stores import existing_catalog
from skillmeat_pipeline.lib.catalog.query import QueryError
from skillmeat_pipeline.lib.catalog.search import NO_RISK, search_catalog, suggest_words
from skillmeat_pipeline.lib.core.findings import SEVERITIES, Severity
from skillmeat_pipeline.lib.core.untrusted import printable


# `search pdf -form` reads `-form` as part of the query, not as an unknown option
@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("words", nargs=-1, type=click.UNPROCESSED, metavar="QUERY...")
@click.option(
    "--type",
    "artifact_type",
    type=click.Choice(["skill", "agent", "command", "hook", "mcp", "plugin"]),
    help="Only this kind of artifact.",
)
@click.option("--source", "source_key", help="Only this source (its key).")
@click.option(
    "--max-risk",
    type=click.Choice([NO_RISK, *(s.value for s in reversed(SEVERITIES))]),
    help="Only artifacts whose risk is at most this (none: no finding at all).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="At most this many results.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON array of results.")
@click.option("--all-copies", is_flag=True, help="Every copy of a duplicate, not only the first.")
@click.option("--min-quality", type=click.IntRange(0, 100), help="Only quality at least this.")
@click.option("--by-quality", is_flag=True, help="Best quality first, then best match.")
def search(
    words: tuple[str, ...],
    artifact_type: str | None,
    source_key: str | None,
    max_risk: str | None,
    limit: int,
    as_json: bool,
    all_copies: bool,
    min_quality: int | None,
    by_quality: bool,
) -> None:
    """Full-text search of the catalog (SKILLMEAT_INDEX_URL), best match first.

    Words must all match; "exact phrase", -word (not), a or b, prefix*, type:hook and
    source:owner/repo (README "Searching"). SCORE is the BM25 relevance: higher is better.
    Each result carries its `risk` (the highest severity of its security findings) and, with
    --json, its `findings`.

    \b
    Examples:
      skillmeat-pipeline search "pull request review" --type agent
      skillmeat-pipeline search 'pdf -form source:anthropics/skills' --json
      skillmeat-pipeline search "type:hooks format or lint" --max-risk low
      skillmeat-pipeline search pdf -form          # no quotes or -- needed for -word
    """
    mistyped = [word for word in words if word.startswith("--")]
    if mistyped:
        fail(f"no such option: {mistyped[0]} (a query word starts with one dash at most)")
    query = " ".join(words)
    with existing_catalog() as catalog:
        try:
            hits = search_catalog(
                catalog,
                query,
                artifact_type=artifact_type,
                source_key=source_key,
                max_risk=max_risk,
                limit=limit,
                all_copies=all_copies,
                min_quality=min_quality,
                by_quality=by_quality,
            )
        except QueryError as exc:
            fail(str(exc))
        suggestions = [] if hits or as_json else suggest_words(catalog, query)
    if as_json:
        shown = [h.model_dump(mode="json") | {"install": h.install_name} for h in hits]
        click.echo(json.dumps(shown, indent=2))
        return
    if not hits:
        hint = f"; did you mean: {', '.join(suggestions)}?" if suggestions else ""
        click.echo(f"no results for {printable(query)!r}{printable(hint)}")
        return

    rows = [
        (
            f"{h.score:.2f}",
            h.artifact_type.value,
            one_line(h.name),
            one_line(h.install_name or h.source_key),
            risk_label(h.risk),
            one_line(h.description)[:60],
        )
        for h in hits
    ]
    # PLUGIN: what `/plugin install` takes (`plugin@marketplace`), else the source key
    click.echo(
        format_rows(("SCORE", "TYPE", "NAME", "PLUGIN / SOURCE", "RISK", "DESCRIPTION"), rows)
    )


@click.command("findings")
@click.option("--source", "source_key", help="Only this source (its key).")
@click.option(
    "--severity",
    type=click.Choice([s.value for s in SEVERITIES]),
    help="Only findings of at least this severity (high: high only).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="At most this many findings.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON array of findings.")
def findings(source_key: str | None, severity: str | None, limit: int, as_json: bool) -> None:
    """Security findings of the catalog's artifacts (SKILLMEAT_INDEX_URL), highest severity first.

    A finding is a trust rule (README "Trust", docs/trust-rules.md) that matched one line of an
    artifact's files: its rule id, severity, file and line, a short excerpt (secrets cut to their
    first 4 characters) and what to do about it.

    \b
    Examples:
      skillmeat-pipeline findings --severity high
      skillmeat-pipeline findings --source anthropics/skills --json
    """
    with existing_catalog() as catalog:
        found = catalog.findings(
            source_key=source_key,
            min_severity=Severity(severity) if severity else None,
            limit=limit + 1,
        )
    shown = found[:limit]
    if as_json:
        click.echo(json.dumps([f.to_dict() for f in shown], indent=2))
    elif not shown:
        click.echo("no findings")
    else:
        rows = [
            (
                f.finding.severity.value,
                f.finding.rule,
                f.source_key,
                f"{f.artifact_type.value}:{printable(f.path)}",
                f"{printable(f.finding.file)}:{f.finding.line}",
                f.finding.excerpt,
            )
            for f in shown
        ]
        headers = ("SEVERITY", "RULE", "SOURCE", "ARTIFACT", "WHERE", "EXCERPT")
        click.echo(format_rows(headers, rows, max_width=60))
    if len(found) > limit:
        click.echo(f"more than {limit} findings; showing the first {limit} (--limit)", err=True)
