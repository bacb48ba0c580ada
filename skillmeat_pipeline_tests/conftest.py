"""Shared fixtures: the corpus of real marketplace repositories, cloned once per test session."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# The suite never sends a developer's own token anywhere; tests that need one set it. Removed
# before any module loads the definitions, whose resources get `EnvVar("GITHUB_TOKEN")` only when
# the variable is set at load time (defs/resources.py, optional_env_var): a test that removed it
# later would fail the run's config. Tests that set it build their resources after (resource_defs).
os.environ.pop("GITHUB_TOKEN", None)
# Every test server listens on 127.0.0.1, which the address rules refuse by default (SPEC §2):
# the suite allows it, as an operator allows an internal git server. The tests of the default
# refusal remove or change the variable themselves (test_addresses.py, test_input_sources.py).
os.environ["SKILLMEAT_ALLOWED_PRIVATE_HOSTS"] = "127.0.0.1"

# Fixture modules shared by several test modules.
pytest_plugins = [
    "skillmeat_pipeline_tests.fixtures_db",
    "skillmeat_pipeline_tests.fixtures_git",
    "skillmeat_pipeline_tests.fixtures_pipeline",
]


def corpus_dir() -> Path:
    """`../shared/corpus` beside the checkout, or `SKILLMEAT_CORPUS_DIR`."""
    configured = os.environ.get("SKILLMEAT_CORPUS_DIR")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "corpus"


def corpus_names() -> list[str]:
    return sorted(p.stem for p in corpus_dir().glob("*.bundle"))


ARTIFACT_KINDS = ("skill", "agent", "command", "hook", "mcp", "plugin")


def corpus_table() -> dict[str, dict[str, int]]:
    """`owner+repo` -> the corpus README row's numbers (`artifacts` and one column per kind)."""
    lines = (corpus_dir() / "README.md").read_text(encoding="utf-8").splitlines()
    header_index = next(i for i, line in enumerate(lines) if line.startswith("| repository"))
    headers = [cell.strip() for cell in lines[header_index].strip("|").split("|")]
    rows: dict[str, dict[str, int]] = {}
    for line in lines[header_index + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        # "miethe/skillmeat (application + `.claude/`)" names the bundle miethe+skillmeat
        repository = re.match(r"[\w.-]+/[\w.-]+", cells[0])
        assert repository, f"unreadable repository cell: {cells[0]!r}"
        numbers = dict(zip(headers, cells, strict=True))
        rows[repository.group().replace("/", "+", 1)] = {
            column: int(numbers[column]) for column in ["artifacts", *ARTIFACT_KINDS]
        }
    return rows


@pytest.fixture(scope="session")
def corpus_bare_repo(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Clone a corpus bundle (e.g. "wshobson+agents") into a bare repository, once per session."""
    root = tmp_path_factory.mktemp("corpus")
    cache: dict[str, Path] = {}

    def clone(name: str) -> Path:
        if name not in cache:
            bundle = corpus_dir() / f"{name}.bundle"
            if not bundle.is_file():
                raise FileNotFoundError(f"corpus bundle {bundle} is missing")
            target = root / f"{name}.git"
            subprocess.run(
                ["git", "clone", "--quiet", "--bare", str(bundle), str(target)], check=True
            )
            cache[name] = target
        return cache[name]

    return clone


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty DAGSTER_HOME of the test's own, as a user's `export DAGSTER_HOME=…`."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home
