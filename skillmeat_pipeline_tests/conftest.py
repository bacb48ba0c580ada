"""Shared fixtures: the corpus of real marketplace repositories, cloned once per test session."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def corpus_dir() -> Path:
    """`../shared/corpus` beside the checkout, or `SKILLMEAT_CORPUS_DIR`."""
    configured = os.environ.get("SKILLMEAT_CORPUS_DIR")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "corpus"


def corpus_names() -> list[str]:
    return sorted(p.stem for p in corpus_dir().glob("*.bundle"))


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
