"""`skillmeat-pipeline index`: materialize sources now through the Dagster instance."""

import sys
from typing import Any

import click

from skillmeat_pipeline.cli.output import fail, format_rows
from skillmeat_pipeline.cli.stores import dagster_instance
from skillmeat_pipeline.lib.catalog.store import Catalog
from skillmeat_pipeline.lib.core.sources import SourcesFileError, load_sources
from skillmeat_pipeline.lib.core.untrusted import printable


@click.command("index")
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
    from skillmeat_pipeline.index_command import IndexUsageError, run_index

    try:
        configured = load_sources()
    except SourcesFileError as exc:
        fail(str(exc))

    def progress(total: int) -> Any:
        return click.progressbar(length=total, label="indexing", file=sys.stderr)

    with dagster_instance() as instance:
        catalog = Catalog.from_env()
        try:
            catalog.migrate()
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
