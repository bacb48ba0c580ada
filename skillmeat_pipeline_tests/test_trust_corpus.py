"""Trust findings on the real corpus: the count per severity of every bundle, as reviewed.

Every text file (≤ 256 KB) below each detected artifact's root is scanned. The table was recorded
after reading every finding (22 in all) and tuning the rules on the false positives found; what
each finding is and why it is kept is in the comments. A change in these numbers means a rule
changed what it reports on real repositories: review the difference, then update the table.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path

import pygit2
import pytest

from skillmeat_pipeline.lib.core.detection import detect_artifacts
from skillmeat_pipeline.lib.fetch.git.tree import snapshot_commit
from skillmeat_pipeline.lib.trust import RULES_BY_ID, findings_for_files
from skillmeat_pipeline.lib.trust.files import read_artifact_files
from skillmeat_pipeline.lib.trust.text import MAX_EXCERPT
from skillmeat_pipeline_tests.conftest import corpus_names

EXPECTED: dict[str, dict[str, int]] = {
    # langsmith-fetch/SKILL.md: two `echo 'export …' >> ~/.bashrc` setup lines (low, persistence)
    "ComposioHQ+awesome-claude-skills": {"high": 0, "medium": 0, "low": 2},
    # healthcare-admin.md: "Install: `curl -fsSL https://raw.githubusercontent.com/… | bash`"
    "VoltAgent+awesome-claude-code-subagents": {"high": 1, "medium": 0, "low": 0},
    # verify/SKILL.md: its script "shells out to `curl https://claude.ai/install.sh | bash`"
    "anthropics+claude-agent-sdk-python": {"high": 1, "medium": 0, "low": 0},
    "anthropics+claude-code": {"high": 0, "medium": 0, "low": 0},
    # discord and telegram READMEs: `curl -fsSL https://bun.sh/install | bash`; m5-onboard:
    # `/bin/bash -c "$(curl … Homebrew/install/HEAD/install.sh)"`; firebase-tools@latest,
    # @playwright/mcp@latest and serena from git HEAD as MCP servers (low, unpinned)
    "anthropics+claude-plugins-official": {"high": 3, "medium": 0, "low": 3},
    "anthropics+skills": {"high": 0, "medium": 0, "low": 0},
    "hesreallyhim+awesome-claude-code": {"high": 0, "medium": 0, "low": 0},
    "microsoft+playwright-mcp": {"high": 0, "medium": 0, "low": 0},
    # nano-banana: bun installer piped to bash, PATH line >> ~/.zshrc; troubleshooting.md:
    # export >> ~/.bashrc; error-handling.md: "Use `--dangerously-skip-permissions` only if
    # absolutely necessary"; .mcp.json: shadcn@latest
    "miethe+skillmeat": {"high": 1, "medium": 1, "low": 3},
    # two plans that run their tests with `--dangerously-skip-permissions`
    "obra+superpowers": {"high": 0, "medium": 2, "low": 0},
    # linkerd, flux (`| sudo bash`), uv (sh and PowerShell `irm … | iex`) installers; cargo PATH
    # line >> ~/.bashrc
    "wshobson+agents": {"high": 4, "medium": 0, "low": 1},
    "wshobson+commands": {"high": 0, "medium": 0, "low": 0},
}


def test_the_table_covers_every_bundle() -> None:
    assert sorted(EXPECTED) == corpus_names()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_findings_per_severity_match_the_reviewed_table(
    corpus_bare_repo: Callable[[str], Path], name: str
) -> None:
    snapshot = snapshot_commit(pygit2.Repository(str(corpus_bare_repo(name))))
    detection = detect_artifacts(snapshot, repo_name=name.split("+", 1)[1])
    files = read_artifact_files(snapshot, detection.artifacts)

    findings = findings_for_files(files)

    counts = collections.Counter(finding.severity.value for finding in findings)
    got = {severity: counts.get(severity, 0) for severity in ("high", "medium", "low")}
    assert got == EXPECTED[name], [(f.rule, f.file, f.line, f.excerpt) for f in findings]
    for finding in findings:
        assert finding.rule in RULES_BY_ID
        assert finding.file in files
        assert 1 <= finding.line <= files[finding.file].count(b"\n") + 1
        assert len(finding.excerpt) <= MAX_EXCERPT
