"""`skillmeat-pipeline`: commands for users of the pipeline."""

import json
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from pydantic import ValidationError

from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.core.detection import detect_artifacts
from skillmeat_pipeline.lib.core.extraction import extract_catalog_entries
from skillmeat_pipeline.lib.core.models import CatalogEntry
from skillmeat_pipeline.lib.core.secrets import Secret, redact
from skillmeat_pipeline.lib.core.sources import SourceConfig, SourcesFileError, load_sources
from skillmeat_pipeline.lib.fetch.git.tree import (
    RepositoryError,
    open_local_repository,
    snapshot_commit,
)
from skillmeat_pipeline.lib.fetch.github.client import GitHubClient
from skillmeat_pipeline.lib.quality.rubric import score_entries
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
    """A plain text table: one header line, one line per row, columns padded."""
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
        (e.artifact_type.value, e.name, e.path, str(e.confidence), str(len(e.problems)))
        for e in entries
    ]
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.artifact_type.value] = counts.get(e.artifact_type.value, 0) + 1
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no artifacts"
    table = format_rows(("TYPE", "NAME", "PATH", "CONF", "PROBLEMS"), rows)
    return f"{table}\n{len(entries)} artifacts: {summary}"


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
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
        "api_calls": result.cost.api_calls,
        "raw_reads": result.cost.raw_reads,
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
                extract_started = time.monotonic()
                detection = detect_artifacts(
                    snapshot, root_hint=root_hint, exclude=exclude, repo_name=key
                )
                entries = score_entries(
                    extract_catalog_entries(snapshot, detection, source_key=key)
                )
                extract_ms = round((time.monotonic() - extract_started) * 1000)
    except RepositoryError as exc:
        message = str(exc)
        fail(message if message.startswith(repo or "") else f"{repo}: {message}")
    except ValidationError as exc:
        # pydantic's text quotes the input verbatim, which may hold credentials
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        fail(redact(f"{github_repo or repo}: {problems}"))
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
                "extract_ms": extract_ms,
                "api_calls": 0,
                "raw_reads": 0,
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
    removed (never deleted). Uses the Dagster instance of DAGSTER_HOME, like the `dagster` CLI.

    \b
    Example:
      export DAGSTER_HOME=$PWD/.dagster_home
      skillmeat-pipeline sources sync
      dagster asset materialize -m skillmeat_pipeline.definitions \\
          --select marketplace_index --partition anthropics/skills
    """
    # Imported here: Dagster takes a second to import and `detect` never needs it.
    import dagster as dg

    from skillmeat_pipeline.defs.index.partitions import (
        marketplace_sources,
        planned_partition_changes,
        sync_catalog_sources,
    )

    try:
        configured = load_sources()
    except SourcesFileError as exc:
        fail(str(exc))
    with dg.DagsterInstance.get() as instance:
        added, removed = planned_partition_changes(instance, configured)
        catalog = Catalog.from_env()
        catalog.migrate()
        sync_catalog_sources(catalog, configured)
        if added:
            instance.add_dynamic_partitions(marketplace_sources.name, added)
        for key in removed:
            instance.delete_dynamic_partition(marketplace_sources.name, key)
    click.echo(
        f"{len(configured)} sources: {len(added)} added, {len(removed)} removed"
        + (f" ({', '.join(added)})" if added and len(added) <= 10 else "")
    )


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
    if as_json:
        click.echo(json.dumps([r.model_dump(mode="json") for r in responses], indent=2))
        return
    rows = [
        (
            r.key,
            r.indexing_strategy.value if r.indexing_strategy else "-",
            str(r.artifact_count) if r.artifact_count is not None else "-",
            r.last_status.value if r.last_status else "never indexed",
            r.last_indexed_at.isoformat(timespec="seconds") if r.last_indexed_at else "-",
        )
        for r in responses
    ]
    click.echo(format_rows(("SOURCE", "STRATEGY", "ARTIFACTS", "STATUS", "INDEXED AT"), rows))


@main.command()
@click.argument("query")
@click.option(
    "--type",
    "artifact_type",
    type=click.Choice(["skill", "agent", "command", "hook", "mcp", "plugin"]),
    help="Only this kind of artifact.",
)
@click.option("--source", "source_key", help="Only this source (its key).")
@click.option("--limit", default=20, show_default=True, help="At most this many results.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array of results.")
@click.option("--all-copies", is_flag=True, help="Every copy of a duplicate, not only the first.")
@click.option("--min-quality", type=click.IntRange(0, 100), help="Only quality at least this.")
@click.option("--by-quality", is_flag=True, help="Best quality first, then best match.")
def search(
    query: str,
    artifact_type: str | None,
    source_key: str | None,
    limit: int,
    as_json: bool,
    all_copies: bool = False,
    min_quality: int | None = None,
    by_quality: bool = False,
) -> None:
    """Full-text search of the catalog (SKILLMEAT_INDEX_URL), best match first.

    \b
    Examples:
      skillmeat-pipeline search "pull request review" --type agent
      skillmeat-pipeline search pdf --source anthropics/skills --json
    """
    catalog = Catalog.from_env()
    catalog.migrate()
    hits = catalog.search(
        query,
        artifact_type=artifact_type,
        source_key=source_key,
        limit=limit,
        all_copies=all_copies,
        min_quality=min_quality,
        by_quality=by_quality,
    )
    if as_json:
        click.echo(json.dumps([h.model_dump(mode="json") for h in hits], indent=2))
        return
    if not hits:
        click.echo(f"no results for {query!r}")
        return
    rows = [
        (f"{h.score:.2f}", h.artifact_type.value, h.name, h.source_key, (h.description or "")[:60])
        for h in hits
    ]
    click.echo(format_rows(("SCORE", "TYPE", "NAME", "SOURCE", "DESCRIPTION"), rows))


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
def webhook_server(host: str, port: int, hook_path: str, max_body_bytes: int) -> None:
    """Receive GitHub `push` webhooks and store them for the `push_events_sensor`.

    The secret configured on the GitHub webhook comes from SKILLMEAT_WEBHOOK_SECRET; every
    delivery must carry a valid X-Hub-Signature-256 (401 otherwise). Accepted pushes are stored in
    the catalog database (SKILLMEAT_INDEX_URL); a redelivery of the same X-GitHub-Delivery is
    ignored; a repository that is no source gets 404. Runs until SIGTERM or Ctrl-C.

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
        server = WebhookServer(receiver, host=host, port=port, path=hook_path).start()
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
