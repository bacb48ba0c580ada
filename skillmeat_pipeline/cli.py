"""`skillmeat-pipeline`: commands for users of the pipeline."""

import json
import os
import re
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from pydantic import ValidationError

from skillmeat_pipeline.lib.catalog.query import QueryError
from skillmeat_pipeline.lib.catalog.search import NO_RISK, search_catalog, suggest_words
from skillmeat_pipeline.lib.catalog.store import Catalog, MarketplaceSourceResponse
from skillmeat_pipeline.lib.core.addresses import (
    AddressPolicy,
    IPAddress,
    UrlError,
    display_url,
    parse_ip,
    resolve_host,
    url_origin,
)
from skillmeat_pipeline.lib.core.findings import SEVERITIES, RiskCounts, Severity
from skillmeat_pipeline.lib.core.models import CatalogEntry, SourceStatus
from skillmeat_pipeline.lib.core.secrets import Secret, redact, secrets_from_env
from skillmeat_pipeline.lib.core.sources import (
    SourceConfig,
    SourcesFileError,
    load_sources,
    read_sources,
    sources_file_path,
)
from skillmeat_pipeline.lib.core.untrusted import (
    TreeTooLargeError,
    printable,
)
from skillmeat_pipeline.lib.fetch.git.tree import (
    RepositoryError,
    open_local_repository,
    snapshot_commit,
)
from skillmeat_pipeline.lib.fetch.github.client import GitHubClient
from skillmeat_pipeline.lib.scan.artifacts import index_tree
from skillmeat_pipeline.lib.scan.outcomes import Failed, Scanned, SourceOutcome
from skillmeat_pipeline.lib.scan.pipeline import Fetchers, ScanSettings, scan_source

REMOTE_URL = re.compile(r"^(https?|ssh|git)://|^[\w.-]+@[\w.-]+:")


def preview_source_key(location: str) -> str:
    """The key a previewed source gets: `owner/repo` from a URL's last two path segments or a
    corpus-style bundle `owner+repo.bundle`, else the folder's name."""
    if REMOTE_URL.match(location):
        path = location.split(":", 1)[1] if "://" not in location else urlsplit(location).path
        segments = [s for s in path.removesuffix(".git").split("/") if s]
        return "/".join(segments[-2:])
    name = Path(location.rstrip("/")).name
    for suffix in (".bundle", ".git"):
        name = name.removesuffix(suffix)
    return name.replace("+", "/", 1)


def format_rows(headers: Sequence[str], rows: Sequence[Sequence[str]], max_width: int = 70) -> str:
    """A plain text table: one header line, one line per row, columns padded.

    Cells hold names, paths and descriptions from repositories: control characters are escaped,
    so a cell is one line and cannot drive the terminal.
    """
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [
        min(max_width, max([len(h)] + [len(r[i]) for r in rows])) for i, h in enumerate(headers)
    ]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [headers, *rows]
    )


def format_entries(entries: Sequence[CatalogEntry]) -> str:
    """Catalog entries as a table, plus a per-kind summary line."""
    rows = [
        (
            e.artifact_type.value,
            printable(e.name),
            printable(e.path),
            str(e.confidence),
            str(len(e.problems)),
            risk_label(e.risk),
        )
        for e in entries
    ]
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.artifact_type.value] = counts.get(e.artifact_type.value, 0) + 1
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no artifacts"
    table = format_rows(("TYPE", "NAME", "PATH", "CONF", "PROBLEMS", "RISK"), rows)
    return f"{table}\n{len(entries)} artifacts: {summary}"


def risk_label(risk: Severity | None) -> str:
    return risk.value if risk else "-"


def format_risk_counts(counts: RiskCounts) -> str:
    """`2 high, 1 low`: the artifacts of a source at each risk; `-` when none has a finding."""
    parts = [f"{n} {s.value}" for s in SEVERITIES if (n := getattr(counts, s.value))]
    return ", ".join(parts) or "-"


def fail(message: str) -> None:
    click.echo(f"error: {printable(message)}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Index Claude Code artifacts (skills, agents, commands, hooks, MCP servers, plugins) found in
    git repositories into a searchable catalog, as a Dagster code location.

    \b
    Examples:
      skillmeat-pipeline demo --serve
      skillmeat-pipeline detect ../shared/corpus/anthropics+skills.bundle
      skillmeat-pipeline sources sync
      skillmeat-pipeline search "code review" --type agent
    """


# -- detect ---------------------------------------------------------------------------------------


def _preview_remote(source: SourceConfig, use_api: bool) -> SourceOutcome:
    """Index a remote source exactly as the pipeline would, without storing anything."""
    with GitHubClient.from_env() as github:
        fetchers = Fetchers(
            github=github,
            token=Secret.from_env("GITHUB_TOKEN"),
            settings=ScanSettings.from_env(),
        )
        return scan_source(source, fetchers, api_only=use_api)


def _stats(result: Scanned) -> dict[str, Any]:
    return {
        "strategy": result.strategy.value,
        "commit_sha": result.commit_sha,
        "bytes_fetched": result.cost.bytes_fetched,
        "clone_ms": result.cost.clone_ms,
        "extract_ms": result.cost.extract_ms,
        "findings_ms": result.cost.findings_ms,
        "api_calls": result.cost.api_calls,
        "raw_reads": result.cost.raw_reads,
        "archive_bytes": result.cost.archive_bytes,
    }


@main.command()
@click.argument("repo", required=False)
@click.option("--github", "github_repo", metavar="OWNER/REPO", help="Read over the GitHub API.")
@click.option("--ref", help="Branch, tag or commit to read (default: HEAD).")
@click.option("--root-hint", help="Only index below this folder of the repository.")
@click.option("--exclude", multiple=True, help="Extra glob to ignore (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array of catalog entries.")
@click.option("--stats", is_flag=True, help="Also print what the scan cost, on stderr.")
def detect(
    repo: str | None,
    github_repo: str | None,
    ref: str | None,
    root_hint: str | None,
    exclude: tuple[str, ...],
    as_json: bool,
    stats: bool,
) -> None:
    """Preview what would be indexed from REPO, before adding it as a source.

    REPO is a local git repository (bare or not), a git bundle file, or a git URL (cloned exactly
    as the pipeline clones: bare, depth 1, under CLONE_TIMEOUT_SECONDS). With --github OWNER/REPO
    the tree is read through the GitHub API instead (SKILLMEAT_GITHUB_API_URL, GITHUB_TOKEN).

    \b
    Examples:
      skillmeat-pipeline detect ~/src/my-skills
      skillmeat-pipeline detect wshobson+agents.bundle --root-hint plugins --json
      skillmeat-pipeline detect https://github.com/anthropics/skills.git --stats
      skillmeat-pipeline detect --github anthropics/skills --stats
    """
    if bool(repo) == bool(github_repo):
        fail("give either REPO or --github OWNER/REPO")
    result: Scanned | None = None
    started = time.monotonic()
    try:
        if github_repo or REMOTE_URL.match(repo or ""):
            location = {"github": github_repo} if github_repo else {"url": repo}
            source = SourceConfig.model_validate(
                {"key": github_repo or preview_source_key(repo or ""), **location}
                | {"ref": ref, "root_hint": root_hint, "exclude": list(exclude)}
            )
            outcome = _preview_remote(source, use_api=bool(github_repo))
            if isinstance(outcome, Failed):
                fail(outcome.reason.splitlines()[0])
            assert isinstance(outcome, Scanned), "a preview has nothing indexed to be current with"
            result, entries = outcome, list(outcome.entries)
        else:
            key = preview_source_key(repo or "")
            with open_local_repository(repo or "") as repository:
                snapshot = snapshot_commit(repository, ref)
                indexed = index_tree(
                    snapshot, source_key=key, repo_name=key, root_hint=root_hint, exclude=exclude
                )
                # the problems of paths that cannot be indexed; the detection's are on entries
                source_problems = indexed.problems[: -len(indexed.detection.problems) or None]
                for problem in source_problems:
                    click.echo(f"problem: {printable(problem)}", err=True)
                entries = indexed.entries
    except TreeTooLargeError as exc:
        fail(f"{repo or github_repo}: {exc}")
    except RepositoryError as exc:
        message = str(exc)
        fail(message if message.startswith(repo or "") else f"{repo}: {message}")
    except ValidationError as exc:
        # pydantic's text quotes the input verbatim, which may hold credentials
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        fail(redact(f"{github_repo or display_url(repo or '')}: {problems}", secrets_from_env()))
    if as_json:
        click.echo(json.dumps([e.model_dump(mode="json") for e in entries], indent=2))
    else:
        click.echo(format_entries(entries))
    if stats:
        numbers = (
            _stats(result)
            if result
            else {
                "strategy": "local",
                "commit_sha": snapshot.commit_sha,
                "bytes_fetched": 0,
                "clone_ms": 0,
                "extract_ms": indexed.extract_ms,
                "findings_ms": indexed.findings.findings_ms,
                "api_calls": 0,
                "raw_reads": 0,
                "archive_bytes": 0,
            }
        )
        numbers["total_ms"] = round((time.monotonic() - started) * 1000)
        if as_json:
            click.echo(json.dumps(numbers), err=True)
        else:
            click.echo(
                format_rows(("STAT", "VALUE"), [(k, str(v)) for k, v in numbers.items()]), err=True
            )


# -- sources and search ---------------------------------------------------------------------------


@main.group()
def sources() -> None:
    """The sources file (SKILLMEAT_SOURCES_FILE, default ./sources.yaml) and its partitions.

    \b
    Examples:
      skillmeat-pipeline sources sync
      skillmeat-pipeline sources list --json
    """


@sources.command("sync")
def sources_sync() -> None:
    """Make the Dagster partitions and the catalog's source rows equal the sources file.

    New sources get a partition; dropped ones lose theirs and their catalog rows are marked
    removed (never deleted). The plugin sources that indexed marketplaces list (entries in other
    repositories, keyed `plugin@marketplace`) are sources too: they get partitions while their
    marketplace lists them. Uses the Dagster instance of DAGSTER_HOME, like the `dagster` CLI.

    \b
    Example:
      export DAGSTER_HOME=$PWD/.dagster_home
      skillmeat-pipeline sources sync
      dagster asset materialize -m skillmeat_pipeline.definitions \\
          --select marketplace_index --partition anthropics/skills
    """
    # Imported here: Dagster takes a second to import and `detect` never needs it.
    import dagster as dg

    from skillmeat_pipeline.defs.index.partitions import sync_sources

    try:
        configured = load_sources()
    except SourcesFileError as exc:
        fail(str(exc))
    catalog = Catalog.from_env()
    catalog.migrate()
    with dg.DagsterInstance.get() as instance:
        wanted, added, removed = sync_sources(instance, catalog, configured)
    catalog.dispose()
    for problem in wanted.problems:
        click.echo(f"warning: {printable(problem)}", err=True)
    plugins = (
        f" ({len(wanted.plugins)} plugin sources, {len(wanted.skipped)} entries skipped)"
        if wanted.plugins or wanted.skipped
        else ""
    )
    click.echo(
        f"{len(wanted.partition_keys)} sources{plugins}: {len(added)} added, "
        f"{len(removed)} removed" + (f" ({', '.join(added)})" if added and len(added) <= 10 else "")
    )


def _resolve_all(
    endpoints: Sequence[tuple[str, int]], timeout_s: float, parallel: int = 16
) -> dict[tuple[str, int], list[IPAddress] | str]:
    """Each endpoint's addresses (or why it has none), resolved `parallel` at a time.

    Daemon threads: a resolver that hangs past `timeout_s` is reported, and cannot hold up the
    process's exit the way a thread pool's workers would.
    """
    pending = list(endpoints)
    results: dict[tuple[str, int], list[IPAddress] | str] = {}
    done = threading.Condition()

    def work() -> None:
        while True:
            with done:
                if not pending:
                    return
                host, port = pending.pop()
            try:
                answer: list[IPAddress] | str = resolve_host(host, port)
            except UrlError as exc:
                answer = str(exc)
            with done:
                results[(host, port)] = answer
                done.notify_all()

    for _ in range(min(parallel, len(endpoints))):
        threading.Thread(target=work, daemon=True, name="sources-check-resolve").start()
    deadline = time.monotonic() + timeout_s
    with done:
        while len(results) < len(endpoints) and (left := deadline - time.monotonic()) > 0:
            done.wait(left)
        for endpoint in endpoints:
            results.setdefault(endpoint, f"no answer from the resolver within {timeout_s:g} s")
        return dict(results)


@sources.command("check")
@click.argument(
    "path", required=False, type=click.Path(dir_okay=False, path_type=Path), metavar="[FILE]"
)
@click.option(
    "--resolve",
    is_flag=True,
    help="Also resolve each source's host and apply the address rules to what it resolves to.",
)
@click.option(
    "--timeout",
    default=10.0,
    show_default=True,
    help="Seconds to wait for all host lookups (--resolve).",
)
def sources_check(path: Path | None, resolve: bool, timeout: float) -> None:
    """Validate a sources file (default: SKILLMEAT_SOURCES_FILE, else ./sources.yaml) and change
    nothing: no partition, no catalog row, no connection to a git server.

    Every problem is printed on its own line with the line of the file: a repeated key, an
    empty file, an invalid key or owner/repo, credentials in a URL, two sources of one
    repository, a host that is a non-public address not listed in
    SKILLMEAT_ALLOWED_PRIVATE_HOSTS. With --resolve, each host is also resolved (DNS only) and
    every address it resolves to must pass the same rules, as it must when the pipeline
    connects.

    Exit status: 0 the file is valid (with --resolve: and every host resolves to allowed
    addresses); 1 it is not; 2 the file cannot be read or SKILLMEAT_ALLOWED_PRIVATE_HOSTS or a
    SKILLMEAT_GITHUB_*_URL variable is malformed.

    \b
    Examples:
      skillmeat-pipeline sources check
      skillmeat-pipeline sources check deploy/sources.yaml --resolve
    """
    path = path or sources_file_path()
    try:
        policy = AddressPolicy.from_env()
    except ValueError as exc:
        fail(str(exc))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{path}: cannot be read ({exc})")
    try:
        entries = read_sources(text, origin=str(path))
    except SourcesFileError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    for problem in entries.problems:
        click.echo(f"error: {path}: {problem}", err=True)
    failures = len(entries.problems)
    if resolve and entries.valid:
        origins = {source.key: url_origin(source.url) for source in entries.valid}
        to_resolve = sorted(
            {
                origin.endpoint
                for source in entries.valid
                if not policy.is_github(source.url)
                and parse_ip((origin := origins[source.key]).host) is None
            }
        )
        answers = _resolve_all(to_resolve, timeout)
        rows = []
        for source in entries.valid:
            origin = origins[source.key]
            answer: list[IPAddress] | str = answers.get(origin.endpoint, [])
            shown = ", ".join(map(str, answer)) if isinstance(answer, list) else "-"
            if policy.is_github(source.url):
                result = "ok: a SKILLMEAT_GITHUB_*_URL host (trusted)"
            elif isinstance(answer, str):
                result = f"error: {answer}"
            else:
                try:
                    policy.check_connect(source.url, resolve=lambda _h, _p, a=answer: a)
                    result = "ok"
                except UrlError as exc:
                    result = f"error: {exc}"
            failures += result.startswith("error")
            rows.append((source.key, str(origin), shown or origin.host, result))
        click.echo(format_rows(("SOURCE", "HOST", "ADDRESSES", "RESULT"), rows, max_width=60))
    checked = "valid" + (", hosts resolved and allowed" if resolve else "")
    if failures:
        click.echo(f"{path}: {failures} problem(s); nothing was changed", err=True)
        sys.exit(1)
    click.echo(f"{path}: {len(entries.valid)} sources, {checked}")


@sources.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array of source objects.")
def sources_list(as_json: bool) -> None:
    """Every source in the catalog with its last index (MarketplaceSourceResponse).

    \b
    Example:
      skillmeat-pipeline sources list --json
    """
    catalog = Catalog.from_env()
    catalog.migrate()
    responses = catalog.source_responses()
    risks = catalog.risk_counts()
    if as_json:
        listed = [
            r.model_dump(mode="json") | {"risk_counts": risks.get(r.key, RiskCounts()).to_dict()}
            for r in responses
        ]
        click.echo(json.dumps(listed, indent=2))
        return
    # plugin sources listed under their marketplace, indented
    plugins: dict[str, list[MarketplaceSourceResponse]] = {}
    for r in responses:
        if r.marketplace:
            plugins.setdefault(r.marketplace, []).append(r)
    ordered: list[tuple[MarketplaceSourceResponse, str]] = []
    for r in responses:
        if not r.marketplace:
            ordered += [(r, ""), *((p, "  ") for p in plugins.pop(r.key, []))]
    ordered += [(p, "  ") for orphans in plugins.values() for p in orphans]

    def status(r: MarketplaceSourceResponse) -> str:
        if r.last_status is None:
            return "never indexed"
        if r.last_status in (SourceStatus.FAILED, SourceStatus.SKIPPED) and r.last_error:
            return f"{r.last_status.value}: {printable(r.last_error.splitlines()[0])[:70]}"
        return r.last_status.value

    rows = [
        (
            indent + printable(r.key),
            r.indexing_strategy.value if r.indexing_strategy else "-",
            str(r.artifact_count) if r.artifact_count is not None else "-",
            (r.pinned_commit or "")[:12] or "-",
            status(r),
            r.last_indexed_at.isoformat(timespec="seconds") if r.last_indexed_at else "-",
            format_risk_counts(risks.get(r.key, RiskCounts())),
        )
        for r, indent in ordered
    ]
    headers = ("SOURCE", "STRATEGY", "ARTIFACTS", "PINNED", "STATUS", "INDEXED AT", "RISK")
    click.echo(format_rows(headers, rows, max_width=90))


@main.command("index")
@click.argument("keys", nargs=-1, metavar="[KEY]...")
@click.option("--all", "everything", is_flag=True, help="Every source (file and plugin sources).")
@click.option("--stale", is_flag=True, help="Only sources never indexed, or whose last run failed.")
@click.option("--force", is_flag=True, help="Re-index sources whose head is the indexed commit.")
@click.option(
    "--no-follow",
    is_flag=True,
    help="Do not index the plugin sources that the indexed marketplaces reveal.",
)
def index(
    keys: tuple[str, ...], everything: bool, stale: bool, force: bool, no_follow: bool
) -> None:
    """Index sources now, through the Dagster instance of DAGSTER_HOME.

    Syncs the partitions first (as `sources sync`), then materializes marketplace_index for the
    named sources in batched runs (the runs show in the Dagster UI). Unless --no-follow, the
    plugin sources that the indexed marketplaces list are then synced and indexed too, until no
    new one appears. Prints a progress bar on stderr and a summary table; exits 1 when a source
    failed (named in the summary), 0 when every source succeeded.

    \b
    Examples:
      skillmeat-pipeline index --all
      skillmeat-pipeline index anthropics/claude-plugins-official
      skillmeat-pipeline index --stale
      skillmeat-pipeline index my/source --force --no-follow
    """
    import dagster as dg

    from skillmeat_pipeline.index_command import IndexUsageError, run_index

    try:
        configured = load_sources()
    except SourcesFileError as exc:
        fail(str(exc))
    catalog = Catalog.from_env()
    catalog.migrate()

    def progress(total: int) -> Any:
        return click.progressbar(length=total, label="indexing", file=sys.stderr)

    try:
        with dg.DagsterInstance.get() as instance:
            results = run_index(
                instance,
                catalog,
                configured,
                list(keys),
                everything=everything,
                stale=stale,
                force=force,
                follow=not no_follow,
                progress=progress,
            )
    except IndexUsageError as exc:
        fail(str(exc))
    finally:
        catalog.dispose()
    rows = [
        (
            printable(r.key),
            r.status,
            "-" if r.artifact_count is None else str(r.artifact_count),
            printable(r.detail.splitlines()[0] if r.detail else "")[:90],
        )
        for r in results
    ]
    click.echo(format_rows(("SOURCE", "STATUS", "ARTIFACTS", "DETAIL"), rows, max_width=90))
    failed = [r.key for r in results if r.status == "failed"]
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing"
    click.echo(f"{len(results)} sources indexed: {summary}")
    if failed:
        click.echo(f"failed: {', '.join(printable(k) for k in failed)}", err=True)
        sys.exit(1)


@main.command()
@click.argument("query")
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
    query: str,
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
    """
    catalog = Catalog.from_env()
    try:
        catalog.migrate()
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
        suggestions = [] if hits or as_json else suggest_words(catalog, query)
    except QueryError as exc:
        fail(str(exc))
    finally:
        catalog.dispose()
    if as_json:
        shown = [h.model_dump(mode="json") | {"install": h.install_name} for h in hits]
        click.echo(json.dumps(shown, indent=2))
        return
    if not hits:
        hint = f"; did you mean: {', '.join(suggestions)}?" if suggestions else ""
        click.echo(f"no results for {printable(query)!r}{printable(hint)}")
        return

    def cell(text: str | None, width: int | None = None) -> str:
        # descriptions hold newlines and runs of spaces: one line per row (format_rows escapes
        # what is left of control characters)
        flat = " ".join((text or "").split())
        return flat[:width] if width else flat

    rows = [
        (
            f"{h.score:.2f}",
            h.artifact_type.value,
            cell(h.name),
            cell(h.install_name or h.source_key),
            risk_label(h.risk),
            cell(h.description, 60),
        )
        for h in hits
    ]
    # PLUGIN: what `/plugin install` takes (`plugin@marketplace`), else the source key
    click.echo(
        format_rows(("SCORE", "TYPE", "NAME", "PLUGIN / SOURCE", "RISK", "DESCRIPTION"), rows)
    )


@main.command("findings")
@click.option("--source", "source_key", help="Only this source (its key).")
@click.option(
    "--severity",
    type=click.Choice([s.value for s in SEVERITIES]),
    help="Only findings of at least this severity (high: high only).",
)
@click.option("--limit", default=1000, show_default=True, help="At most this many findings.")
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
    if limit < 1:
        fail(f"--limit must be at least 1, got {limit}")
    catalog = Catalog.from_env()
    catalog.migrate()
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


# -- demo -----------------------------------------------------------------------------------------


@main.command(short_help="The pipeline end to end on sample repositories.")
@click.option(
    "--dir",
    "directory",
    default=".demo",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the repositories, catalog and Dagster instance; rebuilt on every run.",
)
@click.option(
    "--serve",
    is_flag=True,
    help="Then keep the servers up and run the Dagster UI (dagster dev) until Ctrl-C.",
)
@click.option("--port", default=3000, show_default=True, help="Port of the Dagster UI (--serve).")
def demo(directory: Path, serve: bool, port: int) -> None:
    """Run the pipeline end to end on sample repositories: no set-up, no network.

    Builds five sample marketplace repositories (skills, agents, commands, hooks, MCP servers,
    plugins), serves them on loopback with a git server and a GitHub API emulator, writes a
    sources file, syncs the partitions and materializes marketplace_index in a Dagster instance
    under DIR/dagster_home, twice (the second time after a push to one repository). Prints what
    each partition's metadata says: strategy, artifacts, REST calls and durations.

    \b
    Examples:
      skillmeat-pipeline demo
      skillmeat-pipeline demo --serve              # then open http://127.0.0.1:3000
      skillmeat-pipeline demo --serve --port 3333 --dir /tmp/skillmeat-demo
    """
    from skillmeat_pipeline.demo import DemoError, run_demo

    try:
        code = run_demo(directory, serve=serve, port=port, echo=click.echo)
    except DemoError as exc:
        fail(str(exc))
    sys.exit(code)


# -- webhook-server -------------------------------------------------------------------------------


@main.command("webhook-server", short_help="Receive GitHub push webhooks into the catalog.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8090, show_default=True, help="Port (0: any free port).")
@click.option("--path", "hook_path", default="/webhook", show_default=True, help="Hook URL path.")
@click.option(
    "--max-body-bytes",
    default=5 * 1024 * 1024,
    show_default=True,
    help="Larger deliveries are refused with 413.",
)
@click.option(
    "--max-connections-per-client",
    default=4,
    show_default=True,
    help="Connections one address may hold of the 16 (more get 503); behind a reverse proxy, 16.",
)
def webhook_server(
    host: str, port: int, hook_path: str, max_body_bytes: int, max_connections_per_client: int
) -> None:
    """Receive GitHub `push` webhooks and store them for the `push_events_sensor`.

    The secret configured on the GitHub webhook comes from SKILLMEAT_WEBHOOK_SECRET; every
    delivery must carry a valid X-Hub-Signature-256 (401 otherwise). Accepted pushes are stored in
    the catalog database (SKILLMEAT_INDEX_URL); a redelivery of the same X-GitHub-Delivery is
    ignored; a repository that is no source gets 404. Headers must arrive within 10 s, a body
    within 30 s, and one address holds at most --max-connections-per-client connections, so slow
    or greedy clients cannot keep deliveries out. Runs until SIGTERM or Ctrl-C.

    \b
    Example:
      export SKILLMEAT_WEBHOOK_SECRET=...   # the secret set on the GitHub webhook
      skillmeat-pipeline webhook-server --host 0.0.0.0 --port 8090
      # GitHub: Payload URL http://HOST:8090/webhook, content type application/json
    """
    import signal
    import threading

    from skillmeat_pipeline.lib.services.webhooks import (
        WebhookReceiver,
        WebhookServer,
        secret_from_env,
    )

    try:
        secret = secret_from_env()
    except ValueError as exc:
        fail(str(exc))
    catalog = Catalog.from_env()
    catalog.migrate()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    receiver = WebhookReceiver(catalog, secret, max_body_bytes=max_body_bytes)
    try:
        server = WebhookServer(
            receiver,
            host=host,
            port=port,
            path=hook_path,
            max_connections_per_client=max_connections_per_client,
        ).start()
    except (OSError, ValueError) as exc:
        catalog.dispose()
        fail(f"cannot listen on {host}:{port}: {exc}")
    click.echo(f"listening on {server.url}")
    sys.stdout.flush()
    try:
        stop.wait()
    finally:
        server.stop()
        catalog.dispose()
    click.echo("webhook server stopped")


# -- metrics-server -------------------------------------------------------------------------------


@main.command("metrics-server")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--port", default=9464, show_default=True, help="Port (0: any free port).")
@click.option(
    "--log-format",
    type=click.Choice(["json", "text"]),
    help="Log lines on stderr as JSON or text (default: SKILLMEAT_LOG_FORMAT, else text).",
)
def metrics_server(host: str, port: int, log_format: str | None) -> None:
    """Serve the pipeline's metrics to Prometheus at /metrics, one place for every run.

    Run workers live for one run, too short to be scraped. When a run ends, its worker pushes the
    run's metrics here over OTLP/HTTP (POST /v1/metrics) and this process adds them up: scrape this
    one process, never the workers. Point the workers at it with
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=http://HOST:PORT/v1/metrics. Totals restart at zero when
    this server restarts, which Prometheus's rate() and increase() handle as a counter reset.

    \b
    Examples:
      skillmeat-pipeline metrics-server --port 9464
      # prometheus.yml: - job_name: skillmeat
      #                   static_configs: [{targets: ["HOST:9464"]}]
    """
    import signal
    import threading

    from skillmeat_pipeline.lib.observability.logs import configure_logging
    from skillmeat_pipeline.lib.services.metrics_server import MetricsServer

    configure_logging(log_format or os.environ.get("SKILLMEAT_LOG_FORMAT") or "text")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        server = MetricsServer(host, port).start()
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc}")
    click.echo(
        f"serving Prometheus metrics on {server.url}; "
        f"run workers push OTLP metrics to {server.otlp_url}"
    )
    sys.stdout.flush()
    try:
        stop.wait()
    finally:
        server.stop()
    click.echo("metrics server stopped")
