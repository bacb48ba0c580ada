"""README.md documents what the code reads."""

import re
from pathlib import Path

import skillmeat_pipeline

ROOT = Path(skillmeat_pipeline.__file__).parent
README = ROOT.parent / "README.md"
# a string literal that names an environment variable of ours or of the libraries we configure
VARIABLE = re.compile(r"[\"'`]((?:SKILLMEAT|OTEL|DAGSTER|GITHUB|CLONE|MIN_CLONE)_[A-Z0-9_]+)[\"'`]")
NOT_VARIABLES = {
    "SKILLMEAT_DEMO",  # the demo's marker file; the README's table says so
    "GITHUB_PERSONAL_ACCESS_TOKEN",  # a trust rule's example of a secret in an MCP config
    "GITHUB_URLS",  # the Python mapping of the SKILLMEAT_GITHUB_*_URL variables
}


def test_every_environment_variable_the_code_names_is_in_the_readme_table():
    named = {
        name
        for path in ROOT.rglob("*.py")
        if "testing" not in path.parts
        for name in VARIABLE.findall(path.read_text(encoding="utf-8"))
    } - NOT_VARIABLES
    section = README.read_text(encoding="utf-8").split("## Environment variables", 1)[1]
    table = section.split("\n## ", 1)[0]

    assert len(named) > 20
    assert sorted(name for name in named if f"`{name}" not in table) == []
