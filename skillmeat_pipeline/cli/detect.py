"""`skillmeat-pipeline detect`: preview what a repository would give, storing nothing."""

import json
import time
from typing import Any

import click
from pydantic import ValidationError

from skillmeat_pipeline.cli.output import fail, format_entries, format_rows
from skillmeat_pipeline.lib.core.addresses import display_url
from skillmeat_pipeline.lib.core.secrets import Secret, redact, secrets_from_env
from skillmeat_pipeline.lib.core.sources import SourceConfig, relative_root_hint
from skillmeat_pipeline.lib.core.sources_file import REMOTE_URL, default_source_key
from skillmeat_pipeline.lib.core.untrusted import TreeTooLargeError, printable
from skillmeat_pipeline.lib.fetch.git.tree import (
    RepositoryError,
    open_local_repository,
    snapshot_commit,
)
from skillmeat_pipeline.lib.fetch.github.client import GitHubClient
from skillmeat_pipeline.lib.scan.artifacts import index_tree
from skillmeat_pipeline.lib.scan.outcomes import Failed, Scanned, SourceOutcome
from skillmeat_pipeline.lib.scan.pipeline import scan_source
from skillmeat_pipeline.lib.scan.settings import Fetchers, ScanSettings


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


@click.command()
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
    if root_hint is not None:
        try:
            root_hint = relative_root_hint(root_hint)
        except ValueError as exc:
            fail(f"--root-hint {exc}")
    result: Scanned | None = None
    started = time.monotonic()
    try:
        if github_repo or REMOTE_URL.match(repo or ""):
            location = {"github": github_repo} if github_repo else {"url": repo}
            source = SourceConfig.model_validate(
                {"key": github_repo or default_source_key(repo or ""), **location}
                | {"ref": ref, "root_hint": root_hint, "exclude": list(exclude)}
            )
            outcome = _preview_remote(source, use_api=bool(github_repo))
            if isinstance(outcome, Failed):
                fail(outcome.reason.splitlines()[0])
            assert isinstance(outcome, Scanned), "a preview has nothing indexed to be current with"
            result, entries, problems = outcome, list(outcome.entries), list(outcome.problems)
        else:
            key = default_source_key(repo or "")
            with open_local_repository(repo or "") as repository:
                snapshot = snapshot_commit(repository, ref)
                indexed = index_tree(
                    snapshot, source_key=key, repo_name=key, root_hint=root_hint, exclude=exclude
                )
                entries, problems = indexed.entries, indexed.problems
    except ValidationError as exc:
        # pydantic's text quotes the input verbatim, which may hold credentials
        reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        fail(redact(f"{github_repo or display_url(repo or '')}: {reasons}", secrets_from_env()))
    except TreeTooLargeError as exc:
        fail(f"{repo or github_repo}: {exc}")
    except RepositoryError as exc:
        message = str(exc)
        fail(message if message.startswith(repo or "") else f"{repo}: {message}")
    # the tree's own problems (paths that cannot be indexed, a root hint that matches nothing)
    for problem in problems:
        click.echo(f"problem: {printable(problem)}", err=True)
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
