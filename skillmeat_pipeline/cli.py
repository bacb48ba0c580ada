"""`skillmeat-pipeline`: commands for users of the pipeline."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from skillmeat_pipeline.lib.detection import detect_artifacts
from skillmeat_pipeline.lib.extraction import extract_catalog_entries
from skillmeat_pipeline.lib.git_tree import RepositoryError, open_local_repository, snapshot_commit
from skillmeat_pipeline.lib.models import CatalogEntry


def local_source_key(location: str) -> str:
    """`owner/repo` for a corpus-style bundle `owner+repo.bundle`, else the folder's name."""
    name = Path(location.rstrip("/")).name
    for suffix in (".bundle", ".git"):
        name = name.removesuffix(suffix)
    return name.replace("+", "/", 1)


def format_table(entries: Sequence[CatalogEntry]) -> str:
    """A readable table of catalog entries, one line each, plus a per-kind summary."""
    headers = ("TYPE", "NAME", "PATH", "CONF", "PROBLEMS")
    rows = [
        (e.artifact_type.value, e.name, e.path, str(e.confidence), str(len(e.problems)))
        for e in entries
    ]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    widths[2] = min(widths[2], 70)
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.artifact_type.value] = counts.get(e.artifact_type.value, 0) + 1
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no artifacts"
    lines.append(f"{len(entries)} artifacts: {summary}")
    return "\n".join(lines)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Index Claude Code artifacts (skills, agents, commands, hooks, MCP servers, plugins) found in
    git repositories into a searchable catalog, as a Dagster code location.

    \b
    Example:
      skillmeat-pipeline detect ../shared/corpus/anthropics+skills.bundle
    """


@main.command()
@click.argument("repo")
@click.option("--ref", help="Branch, tag or commit to read (default: HEAD).")
@click.option("--root-hint", help="Only index below this folder of the repository.")
@click.option("--exclude", multiple=True, help="Extra glob to ignore (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array of catalog entries.")
def detect(
    repo: str, ref: str | None, root_hint: str | None, exclude: tuple[str, ...], as_json: bool
) -> None:
    """Show what would be indexed from REPO: a local git repository (bare or not) or a git bundle.

    \b
    Examples:
      skillmeat-pipeline detect ~/src/my-skills
      skillmeat-pipeline detect wshobson+agents.bundle --root-hint plugins --json
    """
    key = local_source_key(repo)
    try:
        with open_local_repository(repo) as repository:
            snapshot = snapshot_commit(repository, ref)
            detection = detect_artifacts(
                snapshot, root_hint=root_hint, exclude=exclude, repo_name=key.rsplit("/", 1)[-1]
            )
            entries = extract_catalog_entries(snapshot, detection, source_key=key)
    except RepositoryError as exc:
        message = str(exc)
        click.echo(
            f"error: {message if message.startswith(repo) else f'{repo}: {message}'}", err=True
        )
        sys.exit(2)
    if as_json:
        click.echo(json.dumps([e.model_dump(mode="json") for e in entries], indent=2))
    else:
        click.echo(format_table(entries))
