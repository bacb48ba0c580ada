"""`skillmeat-pipeline catalog export`: the catalog as JSON Lines, from the shell."""

from contextlib import nullcontext
from pathlib import Path
from typing import IO, Any

import click

from skillmeat_pipeline.cli.output import fail
from skillmeat_pipeline.cli.stores import existing_catalog
from skillmeat_pipeline.lib.catalog.export import (
    export_dir_from_env,
    export_line,
    live_rows,
    write_export,
)


@click.group()
def catalog() -> None:
    """The catalog database (SKILLMEAT_INDEX_URL) as files other systems read."""


@catalog.command("export")
@click.option(
    "--format",
    "export_format",
    type=click.Choice(["jsonl", "snapshot"]),
    default="jsonl",
    show_default=True,
    help="jsonl: one JSON object per live row; snapshot: the gzip file the catalog_export asset "
    "writes, with latest.json, into --dir.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="jsonl: write to this file instead of stdout.",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="snapshot: the folder (default SKILLMEAT_EXPORT_DIR, else ./exports).",
)
def catalog_export(export_format: str, output: Path | None, directory: Path | None) -> None:
    """Export every live catalog row, ordered by source, type and path, with the fields and
    schema version of README "Export" (the rows the `catalog_export` asset writes).

    \b
    Examples:
      skillmeat-pipeline catalog export --format jsonl > catalog.jsonl
      skillmeat-pipeline catalog export --format jsonl -o catalog.jsonl
      skillmeat-pipeline catalog export --format snapshot --dir /srv/exports
    """
    if export_format == "jsonl" and directory is not None:
        fail("--dir goes with --format snapshot; give --output for jsonl")
    if export_format == "snapshot" and output is not None:
        fail("--output goes with --format jsonl; give --dir for a snapshot")
    with existing_catalog() as store:
        if export_format == "snapshot":
            result = write_export(store, directory or export_dir_from_env())
            click.echo(f"{result.path}: {result.rows} rows, {result.bytes} bytes, {result.sha256}")
            return
        rows = 0
        target: Any = (
            click.open_file(str(output), "w", encoding="utf-8", atomic=True)
            if output
            else nullcontext(click.get_text_stream("stdout"))
        )
        stream: IO[str]
        with target as stream:
            for row in live_rows(store):
                stream.write(export_line(row))
                rows += 1
        click.echo(f"{rows} rows exported" + (f" to {output}" if output else ""), err=True)
