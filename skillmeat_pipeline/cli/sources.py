"""`skillmeat-pipeline sources …`: the sources file, its partitions, the catalog's source rows."""

import json
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import click

from skillmeat_pipeline.cli.output import fail, format_risk_counts, format_rows
from skillmeat_pipeline.cli.stores import (
    SYNC,
    dagster_instance,
    missing_catalog,
    no_catalog_message,
)
from skillmeat_pipeline.lib.catalog.records import MarketplaceSourceResponse
from skillmeat_pipeline.lib.catalog.source_set import SourceSet, source_set
from skillmeat_pipeline.lib.catalog.store import Catalog
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
from skillmeat_pipeline.lib.core.sources_file import (
    SourcesEdit,
    add_source_text,
    new_entry,
    read_text_if_any,
    remove_source_text,
    write_atomically,
)
from skillmeat_pipeline.lib.core.untrusted import printable


@click.group()
def sources() -> None:
    """The sources file (SKILLMEAT_SOURCES_FILE, default ./sources.yaml) and its partitions.

    \b
    Examples:
      skillmeat-pipeline sources add anthropics/skills
      skillmeat-pipeline sources sync
      skillmeat-pipeline sources list --json
    """


def _written(path: Path, edit: SourcesEdit, done: str) -> None:
    """Write the edited file, say what changed, what the file still holds wrong and what next."""
    write_atomically(path, edit.text)
    click.echo(f"{path}: {printable(done)}; {len(edit.entries.valid)} sources")
    for problem in edit.entries.problems:
        click.echo(f"warning: {path}: {printable(problem)} (already in the file)", err=True)
    click.echo(f"next: `{SYNC} --dry-run` shows what `{SYNC}` would change; then run it")


@sources.command("add")
@click.argument("location", metavar="OWNER/REPO|URL")
@click.option("--key", help="The source's key (default: OWNER/REPO, or a URL's last two segments).")
@click.option("--ref", help="Branch, tag or commit to index (default: the remote's HEAD).")
@click.option("--root-hint", metavar="DIR", help="Only index below this folder of the repository.")
def sources_add(location: str, key: str | None, ref: str | None, root_hint: str | None) -> None:
    """Add a source to the sources file (SKILLMEAT_SOURCES_FILE, default ./sources.yaml).

    OWNER/REPO becomes `github: owner/repo`, a git URL `url: ...` with a key. The entry goes after
    the last one, indented like it; every other line of the file stays as it is (comments, blank
    lines, the order of the fields). A file that does not exist is created.

    The new file is validated as `sources check` and `sources sync` read it before it is written
    (at once: a reader sees the old file or the new one). A key or repository the file already
    has, credentials in the URL, an address the rules refuse: one line on stderr, exit status 2,
    the file unchanged. Nothing else changes: no partition, no catalog row (`sources sync` does).

    \b
    Examples:
      skillmeat-pipeline sources add anthropics/skills
      skillmeat-pipeline sources add https://git.example.com/team/tools.git --ref main
      skillmeat-pipeline sources add wshobson/agents --root-hint plugins
    """
    path = sources_file_path()
    try:
        entry = new_entry(location, key=key, ref=ref, root_hint=root_hint)
        edit = add_source_text(read_text_if_any(path), entry, origin=str(path))
    except SourcesFileError as exc:
        fail(f"{exc}; nothing was changed")
    added = entry.get("key") or entry["github"]
    _written(path, edit, f"added {added}")


@sources.command("remove")
@click.argument("key")
def sources_remove(key: str) -> None:
    """Remove the source KEY from the sources file (SKILLMEAT_SOURCES_FILE, default
    ./sources.yaml).

    The lines of its entry go; every other line stays (the comments above and below it too). A
    key the file does not have: one line naming the keys it has, exit status 2, the file
    unchanged. Its partition and catalog rows stay until `sources sync` (which marks the rows
    removed, never deletes them).

    \b
    Example:
      skillmeat-pipeline sources remove internal/tools
    """
    path = sources_file_path()
    try:
        text = read_text_if_any(path)
        if text is None:
            raise SourcesFileError(f"{path}: sources file not found (set SKILLMEAT_SOURCES_FILE)")
        edit = remove_source_text(text, key, origin=str(path))
    except SourcesFileError as exc:
        fail(f"{exc}; nothing was changed")
    _written(path, edit, f"removed {key}")


@sources.command("sync")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print what would be added and removed; change no partition and no catalog row.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (see below).")
def sources_sync(dry_run: bool, as_json: bool) -> None:
    """Make the Dagster partitions and the catalog's source rows equal the sources file.

    New sources get a partition; dropped ones lose theirs and their catalog rows are marked
    removed (never deleted). The plugin sources that indexed marketplaces list (entries in other
    repositories, keyed `plugin@marketplace`) are sources too: they get partitions while their
    marketplace lists them. Uses the Dagster instance of DAGSTER_HOME, like the `dagster` CLI.

    With --dry-run, the partitions and the catalog are only read (a SQLite catalog that does not
    exist is not created). With --json, one object: `sources` (how many have a partition),
    `added` and `removed` (partition keys), `plugin_sources` (keys), `skipped` (marketplace
    entries not fetched: key and reason), `problems`, `dry_run`.

    \b
    Example:
      export DAGSTER_HOME=$PWD/.dagster_home
      skillmeat-pipeline sources sync --dry-run
      skillmeat-pipeline sources sync
      dagster asset materialize -m skillmeat_pipeline.definitions \\
          --select marketplace_index --partition anthropics/skills
    """
    from skillmeat_pipeline.defs.index.partitions import planned_partition_changes, sync_sources

    try:
        configured = load_sources()
    except SourcesFileError as exc:
        fail(str(exc))
    with dagster_instance() as instance:
        if dry_run and missing_catalog() is not None:
            # no catalog yet: no marketplace was indexed, so no plugin source
            wanted = SourceSet(tuple(configured))
            added, removed = planned_partition_changes(instance, wanted)
        else:
            catalog = Catalog.from_env()
            try:
                if dry_run:
                    wanted = source_set(configured, catalog)
                    added, removed = planned_partition_changes(instance, wanted)
                else:
                    catalog.migrate()
                    wanted, added, removed = sync_sources(instance, catalog, configured)
            finally:
                catalog.dispose()
    if as_json:
        summary = {
            "sources": len(wanted.partition_keys),
            "added": added,
            "removed": removed,
            "plugin_sources": [plugin.key for plugin in wanted.plugins],
            "skipped": [{"key": entry.key, "reason": entry.reason} for entry in wanted.skipped],
            "problems": list(wanted.problems),
            "dry_run": dry_run,
        }
        click.echo(json.dumps(summary, indent=2))
        return
    for problem in wanted.problems:
        click.echo(f"warning: {printable(problem)}", err=True)
    plugins = (
        f" ({len(wanted.plugins)} plugin sources, {len(wanted.skipped)} entries skipped)"
        if wanted.plugins or wanted.skipped
        else ""
    )
    if dry_run:
        click.echo(
            f"{len(wanted.partition_keys)} sources{plugins}: {len(added)} to add, "
            f"{len(removed)} to remove; nothing was changed (--dry-run)"
        )
        for sign, keys in (("+", added), ("-", removed)):
            for key in keys:
                click.echo(f"  {sign} {printable(key)}")
        return
    click.echo(
        f"{len(wanted.partition_keys)} sources{plugins}: {len(added)} added, "
        f"{len(removed)} removed"
        + (f" ({printable(', '.join(added))})" if added and len(added) <= 10 else "")
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
                result = "allowed: a SKILLMEAT_GITHUB_*_URL host (trusted)"
            elif isinstance(answer, str):
                result = f"error: {answer}"
            else:
                try:
                    policy.check_connect(source.url, resolve=lambda _h, _p, a=answer: a)
                    result = "allowed"
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

    STATUS is the metadata's `scan_status` of the last run (scanned, current, failed with its
    reason, removed, skipped), or `never indexed`. When SKILLMEAT_INDEX_URL names a SQLite file
    that does not exist, one line says so (with --json: `[]`, the line on stderr) and the exit
    status is 0: nothing is created, so a mistyped URL does not leave an empty catalog behind.

    \b
    Example:
      skillmeat-pipeline sources list --json
    """
    missing = missing_catalog()
    if missing is not None:
        # opening it would create an empty catalog where the user may have a typo
        message = no_catalog_message(missing)
        click.echo("[]" if as_json else message)
        if as_json:
            click.echo(message, err=True)
        return
    catalog = Catalog.from_env()
    try:
        catalog.migrate()
        responses = catalog.source_responses()
        risks = catalog.risk_counts()
    finally:
        catalog.dispose()
    if as_json:
        listed = [
            r.model_dump(mode="json") | {"risk_counts": risks.get(r.key, RiskCounts()).to_dict()}
            for r in responses
        ]
        click.echo(json.dumps(listed, indent=2))
        return
    if not responses:
        click.echo(f"the catalog has no sources yet: run `{SYNC}` to add the sources file's")
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
