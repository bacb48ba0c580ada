"""`format.*` findings: every rule on a passing and a failing manifest, the corpus traps
(title-case names, a leading dash, missing descriptions) included."""

import json

import pytest

from skillmeat_pipeline.lib.core.findings import Severity
from skillmeat_pipeline.lib.core.models import ArtifactType
from skillmeat_pipeline.lib.quality.validation import (
    RULES,
    format_findings,
    validate_agent,
    validate_command,
    validate_marketplace,
    validate_plugin,
    validate_skill,
)


def skill(frontmatter: str, folder: str = "skills/pdf-tables") -> list[tuple[str, str, int]]:
    data = f"---\n{frontmatter}\n---\n# PDF\nBody.\n".encode()
    findings = validate_skill(data, file=f"{folder}/SKILL.md", folder=folder)
    return [(f.rule, f.severity.value, f.line) for f in findings]


GOOD = "name: pdf-tables\ndescription: Extracts tables from PDF files."


def test_a_valid_skill_has_no_findings_also_with_claude_code_extensions() -> None:
    assert skill(GOOD) == []
    extended = GOOD + "\nargument-hint: [file]\nmodel: sonnet\ncontext: fork\nuser-invocable: true"
    extended += "\ndisable-model-invocation: false\nallowed-tools: Read Grep\nlicense: MIT"
    assert skill(extended) == []


NAME_TRAP = [("format.name.invalid", "low", 2), ("format.name.not_folder", "low", 2)]


@pytest.mark.parametrize(
    ("frontmatter", "expected"),
    [
        ("name: PDF Tables\ndescription: x", NAME_TRAP),  # title case, as in the corpus
        ("name: -pdf-tables\ndescription: x", NAME_TRAP),  # a leading dash
        ("name: pdf--tables\ndescription: x", NAME_TRAP),
        ("name: pdf-tables", [("format.description.missing", "medium", 1)]),
        # a description written as a YAML list item (a leading dash): no description at all
        (
            "name: pdf-tables\ndescription:\n  - Extracts tables",
            [("format.description.missing", "medium", 3)],
        ),
        (
            f"name: pdf-tables\ndescription: {'x' * 1025}",
            [("format.description.too_long", "low", 3)],
        ),
        ("description: x", [("format.name.missing", "low", 1)]),
        (GOOD + "\ncompatibility: " + "y" * 501, [("format.compatibility.too_long", "low", 4)]),
        (GOOD + "\ntriggers: pdf", [("format.key.unknown", "low", 4)]),
    ],
)
def test_skill_rules_fail_on_bad_manifests(
    frontmatter: str, expected: list[tuple[str, str, int]]
) -> None:
    # lines count from the file's first line (the opening ---); 1 when no line names the key
    assert skill(frontmatter) == expected


def test_the_name_must_be_the_folders() -> None:
    assert skill(GOOD, folder="skills/tables") == [("format.name.not_folder", "low", 2)]


def test_a_skill_without_frontmatter_is_not_loaded() -> None:
    findings = validate_skill(b"# PDF\nExtracts tables.\n", file="a/SKILL.md", folder="a")
    assert [(f.rule, f.severity) for f in findings] == [
        ("format.frontmatter.missing", Severity.MEDIUM)
    ]


def agent(text: str) -> list[str]:
    return [f.rule for f in validate_agent(text.encode(), file="agents/reviewer.md")]


def test_agent_rules() -> None:
    assert agent("---\nname: code-reviewer\ndescription: Reviews diffs.\ntools: Read\n---\n") == []
    assert agent("---\nname: Code Reviewer\ndescription: Reviews diffs.\n---\n") == [
        "format.name.invalid"
    ]
    assert agent("---\nname: code-reviewer\n---\n") == ["format.description.missing"]
    assert agent("You review code.\n") == ["format.frontmatter.missing"]
    assert agent("---\nname: r\ndescription: d\ncolour: red\n---\n") == ["format.key.unknown"]


def test_command_rules() -> None:
    ok = b"---\ndescription: Commit\nargument-hint: [message]\nallowed-tools: Bash\n---\nGo"
    assert validate_command(ok, file="commands/commit.md") == []
    assert validate_command(b"Just a prompt.", file="commands/commit.md") == []
    bad = validate_command(b"---\ndescription: x\ntool: Bash\n---\n", file="commands/c.md")
    assert [(f.rule, f.line, f.excerpt) for f in bad] == [("format.key.unknown", 3, "tool: Bash")]


def plugin(manifest: object) -> list[str]:
    data = manifest if isinstance(manifest, bytes) else json.dumps(manifest, indent=2).encode()
    return [f.rule for f in validate_plugin(data, file=".claude-plugin/plugin.json")]


def test_plugin_rules() -> None:
    assert plugin({"name": "pdf-kit", "version": "1.0.0", "commands": "./commands"}) == []
    assert plugin({"version": "1.0.0"}) == ["format.plugin.name_missing"]
    assert plugin({"name": "PDF Kit"}) == ["format.plugin.name_invalid"]
    assert plugin({"name": "pdf-kit", "widgets": []}) == ["format.key.unknown"]
    assert plugin(b"{not json") == ["format.json.invalid"]
    assert plugin([1, 2]) == ["format.json.invalid"]


def marketplace(manifest: object) -> list[str]:
    data = json.dumps(manifest).encode()
    return [f.message for f in validate_marketplace(data, file=".claude-plugin/marketplace.json")]


def test_marketplace_rules() -> None:
    good = {
        "name": "tools",
        "owner": {"name": "Acme"},
        "plugins": [
            {"name": "a", "source": "./plugins/a"},
            {"name": "b", "source": {"source": "github", "repo": "acme/b"}},
            {
                "name": "c",
                "source": {"source": "git-subdir", "url": "https://h/x.git", "path": "p"},
            },
        ],
    }
    assert marketplace(good) == []
    assert marketplace({"plugins": [{"name": "a", "source": "./a"}]}) == [
        "marketplace.json has no 'name'",
        "marketplace.json has no 'owner'",
    ]
    assert marketplace({"name": "t", "owner": {"name": "A"}, "plugins": []}) == [
        "marketplace.json has no 'plugins'"
    ]
    broken = good | {
        "plugins": [{"source": "./a"}, {"name": "b"}, {"name": "c", "source": {"source": "ftp"}}]
    }
    assert marketplace(broken) == [
        "plugin entry #1 has no name",
        "plugin 'b' has no source",
        "plugin 'c': source 'ftp' is no form",
    ]


def test_format_findings_dispatches_by_kind_and_manifest() -> None:
    bad_skill = b"---\nname: PDF\n---\n"
    found = format_findings(
        ArtifactType.SKILL, "skills/pdf/SKILL.md", bad_skill, folder="skills/pdf"
    )
    assert {f.rule for f in found} == {
        "format.name.invalid",
        "format.name.not_folder",
        "format.description.missing",
    }
    assert format_findings(ArtifactType.HOOK, "hooks/hooks.json", b"{}", folder="hooks") == []
    assert format_findings(ArtifactType.SKILL, None, b"", folder="x") == []


def test_every_rule_is_format_family_low_or_medium() -> None:
    assert all(r.startswith("format.") for r in RULES)
    assert {rule.severity for rule in RULES.values()} == {Severity.LOW, Severity.MEDIUM}
