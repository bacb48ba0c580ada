"""`skillmeat-pipeline sources …`: the sources file, its partitions, the catalog's source rows."""

import json
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import click

from skillmeat_pipeline.cli.instance import dagster_instance
from skillmeat_pipeline.cli.output import fail, format_risk_counts, format_rows
from skillmeat_pipeline.lib.catalog.store import Catalog, MarketplaceSourceResponse
from skillmeat_pipeline.lib.core.addresses import (
    AddressPolicy,
    IPAddress,
    UrlError,
    parse_ip,
    resolve_host,
    url_origin,
)
from skillmeat_pipeline.lib.core.findings import RiskCounts
from skillmeat_pipeline.lib.core.models import SourceStatus
from skillmeat_pipeline.lib.core.sources import (
    SourcesFileError,
    load_sources,
    read_sources,
    sources_file_path,
)
from skillmeat_pipeline.lib.core.untrusted import printable


@click.group()
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
    from skillmeat_pipeline.defs.index.partitions import sync_sources

    try:
        configured = load_sources()
    except SourcesFileError as exc:
        fail(str(exc))
    with dagster_instance() as instance:
        catalog = Catalog.from_env()
        try:
            catalog.migrate()
            wanted, added, removed = sync_sources(instance, catalog, configured)
        finally:
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
