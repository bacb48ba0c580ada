"""250 plugin entries into 60 repositories, indexed from scratch with `index --all`.

Entries mix `git-subdir` (a plugin folder of a repository) and `url` (a whole repository), a third
of them pinned to the repository's head commit. Served by the local git server and the GitHub
emulator; the catalog in a SQLite file, a fresh Dagster instance in a temp `DAGSTER_HOME`.

    .venv/bin/python benchmarks/bench_marketplace.py [--entries 250] [--repos 60]

Prints the wall time, the fetches made (pack negotiations the git server logged, divided by the
requests one depth-1 fetch takes) against the distinct repository commits the entries name (SPEC
§2.1: each is fetched once), and the REST calls the emulator counted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from skillmeat_pipeline.testing.git_server import GitHttpServer
from skillmeat_pipeline.testing.github_emulator import GitHubEmulator
from skillmeat_pipeline.testing.sample_marketplace import commit_files, marketplace_json

MARKET = "bench/market"


def _skill(name: str) -> bytes:
    return (
        f"---\nname: {name}\ndescription: Skill {name} of the benchmark\n---\n# {name}\n".encode()
    )


def build(root: Path, entries: int, repos: int) -> tuple[int, set[str]]:
    """The repositories and the marketplace; (entries written, slugs of referenced repos)."""
    per_repo = -(-entries // repos)
    heads: dict[str, str] = {}
    for r in range(repos):
        slug = f"bench/repo-{r:02d}"
        files = {
            f"plugins/p{k}/skills/s{k}/SKILL.md": _skill(f"r{r}-s{k}") for k in range(per_repo)
        }
        files["README.md"] = b"# benchmark repository\n"
        heads[slug] = commit_files(root, slug, files)
    listed: list[dict[str, Any]] = []
    for i in range(entries):
        r, k = i % repos, i // repos
        slug = f"bench/repo-{r:02d}"
        url = f"https://github.com/{slug}"
        source: dict[str, Any]
        if i % 2:
            source = {"source": "git-subdir", "url": url, "path": f"plugins/p{k}"}
        else:
            source = {"source": "url", "url": f"{url}.git"}
        if i % 3 == 0:
            source["sha"] = heads[slug]
        listed.append({"name": f"plugin-{i:03d}", "source": source})
    commit_files(root, MARKET, {".claude-plugin/marketplace.json": marketplace_json(listed)})
    return len(listed), set(heads)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=250)
    parser.add_argument("--repos", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-marketplace-") as tmp:
        work = Path(tmp)
        served = work / "served"
        entries, slugs = build(served, args.entries, args.repos)
        (work / "home").mkdir()
        (work / "sources.yaml").write_text(f"sources:\n  - github: {MARKET}\n")
        with (
            GitHttpServer(served) as git,
            GitHubEmulator(served, git_base_url=git.base_url) as github,
        ):
            os.environ |= {
                "DAGSTER_HOME": str(work / "home"),
                "SKILLMEAT_SOURCES_FILE": str(work / "sources.yaml"),
                "SKILLMEAT_INDEX_URL": f"sqlite:///{work / 'index.sqlite'}",
                "SKILLMEAT_GITHUB_API_URL": github.api_url,
                "SKILLMEAT_GITHUB_RAW_URL": github.raw_url,
                "SKILLMEAT_GITHUB_GIT_URL": git.base_url,
                "MIN_CLONE_DISK_SPACE_MB": "1",
            }
            os.environ.pop("GITHUB_TOKEN", None)
            from skillmeat_pipeline.cli import main as cli

            started = time.monotonic()
            result = CliRunner().invoke(cli, ["index", "--all"])
            wall_s = time.monotonic() - started
            git.stop()
            api_calls = len(github.api_calls())
            packs = {
                slug: sum(1 for r in git.requests(slug) if r.path.endswith("/git-upload-pack"))
                for slug in slugs
            }
        summary = result.stdout.strip().splitlines()[-1] if result.stdout else ""
        per_fetch = min(packs.values()) or 1  # one depth-1 fetch negotiates in this many POSTs
        fetches = sum(n // per_fetch for n in packs.values())
        numbers = {
            "entries": entries,
            "repositories": len(slugs),
            "distinct_repository_commits": len(slugs),
            "fetches": fetches,
            "upload_pack_requests_per_fetch": per_fetch,
            "api_calls": api_calls,
            "wall_s": round(wall_s, 1),
            "exit_code": result.exit_code,
            "summary": summary,
        }
        print(json.dumps(numbers, indent=2))
        if result.exit_code != 0:
            print(result.output[-3000:], file=sys.stderr)
        ok = result.exit_code == 0 and fetches == len(slugs)
        print("fetches == distinct repository commits:", "yes" if ok else "NO")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
