"""`skillmeat-pipeline`: commands for users of the pipeline."""

import click

from skillmeat_pipeline.cli.catalog import catalog
from skillmeat_pipeline.cli.detect import detect
from skillmeat_pipeline.cli.index import index
from skillmeat_pipeline.cli.search import findings, search
from skillmeat_pipeline.cli.servers import demo, metrics_server, webhook_server
from skillmeat_pipeline.cli.sources import sources


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="skillmeat-pipeline", prog_name="skillmeat-pipeline")
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


for command in (
    detect,
    sources,
    index,
    search,
    findings,
    catalog,
    demo,
    webhook_server,
    metrics_server,
):
    main.add_command(command)
