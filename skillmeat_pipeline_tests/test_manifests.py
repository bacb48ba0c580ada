import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from skillmeat_pipeline.lib.core.manifests import (
    MAX_ALIAS_EXPANSION,
    MAX_BODY_DESCRIPTION_CHARS,
    MAX_DEEP_FILE_BYTES,
    MAX_DEEP_TEXT_BYTES,
    MAX_MANIFEST_BYTES,
    _check_alias_expansion,
    collect_deep_text,
    normalize_list,
    parse_json_manifest,
    parse_markdown_manifest,
)

# Shaped like anthropics/claude-code plugins/plugin-dev/agents/agent-creator.md: an unquoted
# multi-line description whose `<example>` blocks hold column-0 `Context:`/`user:` lines.
AGENT_WITH_EXAMPLES = b"""---
name: agent-creator
description: Use this agent when the user asks to "create an agent" or describes an agent. Examples:

<example>
Context: User wants to create a code review agent
user: "Create an agent that reviews code for quality issues"
assistant: "I'll use the agent-creator agent to generate the agent configuration."
<commentary>
User requesting new agent creation, trigger agent-creator to generate it.
</commentary>
</example>

<example>
Context: User describes needed functionality
user: "I need an agent that generates unit tests for my code"
assistant: "I'll use the agent-creator agent to create a test generation agent."
</example>

model: sonnet
color: magenta
tools: ["Write", "Read"]
---

You are an elite AI agent architect.
"""


def md(text: str) -> bytes:
    return text.encode()


def test_valid_frontmatter_title_and_body():
    manifest = parse_markdown_manifest(
        md("---\nname: pdf\ndescription: ' Read PDFs. '\nmodel: opus\n---\n# PDF tools\n\nBody.\n")
    )
    assert manifest.has_frontmatter and manifest.frontmatter_valid
    assert manifest.frontmatter == {"name": "pdf", "description": "Read PDFs.", "model": "opus"}
    assert manifest.title == "PDF tools"
    assert manifest.description == "Read PDFs."
    assert manifest.body == "# PDF tools\n\nBody.\n"
    assert manifest.problems == []


def test_bom_is_stripped_and_reported():
    manifest = parse_markdown_manifest(b"\xef\xbb\xbf---\nname: x\n---\n# T\n")
    assert manifest.frontmatter_valid
    assert manifest.frontmatter == {"name": "x"}
    assert manifest.title == "T"
    assert any("byte order mark" in p for p in manifest.problems)


def test_crlf_line_ends():
    manifest = parse_markdown_manifest(
        b"---\r\nname: x\r\ndescription: |\r\n  one\r\n  two\r\n---\r\n# Title\r\n\r\nBody\r\n"
    )
    assert manifest.frontmatter_valid
    assert manifest.frontmatter["description"] == "one\ntwo"
    assert manifest.title == "Title"
    assert "\r" not in manifest.body
    assert manifest.problems == []


def test_tabs_in_frontmatter_are_read_as_indentation():
    manifest = parse_markdown_manifest(
        md("---\nname:\tfoo\ntools:\n\t- Read\n\t- Write\ndescription: |\n\tline 1\n\tline 2\n---")
    )
    assert manifest.has_frontmatter
    assert not manifest.frontmatter_valid
    assert manifest.frontmatter == {
        "name": "foo",
        "tools": ["Read", "Write"],
        "description": "line 1\nline 2",
    }
    assert any("tab" in p for p in manifest.problems)


def test_unclosed_frontmatter_is_body():
    text = "---\nname: x\ndescription: never closed\n\n# Heading\n\nFirst paragraph.\n"
    manifest = parse_markdown_manifest(md(text))
    assert not manifest.has_frontmatter
    assert manifest.frontmatter == {}
    assert manifest.body == text
    assert manifest.title == "Heading"
    assert any("never closed" in p for p in manifest.problems)


def test_non_utf8_bytes_are_replaced_and_reported():
    manifest = parse_markdown_manifest(b"---\nname: caf\xe9\ndescription: ok\n---\nBody\n")
    assert manifest.frontmatter["name"] == "caf\ufffd"
    assert manifest.description == "ok"
    assert any("not valid UTF-8" in p and "offset 13" in p for p in manifest.problems)


def test_nul_characters_are_removed():
    manifest = parse_markdown_manifest(b"---\nname: a\x00b\n---\n")
    assert manifest.frontmatter["name"] == "ab"
    assert any("NUL" in p for p in manifest.problems)


BLOCK_SCALARS = [
    "notes: |\n  line one\n    indented\n\n  after blank\n",
    "notes: |-\n  stripped\n  end\n\n",
    "notes: |+\n  kept\n\n",
    "notes: >\n  folded one\n  folded two\n\n  second paragraph\n",
    "notes: >-\n  a\n  b\n\n\n  c\n",
    "notes: >\n  text\n    more indented\n    lines\n  back\n",
]


@pytest.mark.parametrize("block", BLOCK_SCALARS)
def test_block_scalars_match_yaml_on_both_paths(block):
    expected = yaml.safe_load(block)["notes"]
    strict = parse_markdown_manifest(md(f"---\nname: x\n{block}---\n"))
    # A broken line elsewhere sends the same block through the tolerant parser.
    tolerant = parse_markdown_manifest(md(f"---\nname: x\n{block}argument-hint: [a] | [b]\n---\n"))
    assert strict.frontmatter_valid and strict.frontmatter["notes"] == expected
    assert not tolerant.frontmatter_valid
    assert tolerant.frontmatter["notes"] == expected


def test_tolerant_parser_reads_block_scalars_it_cannot_load():
    # Strict YAML rejects both blocks (a stray `*` alias), so the raw reader must fold/keep them.
    manifest = parse_markdown_manifest(
        md("---\nname: x\nliteral: |\n  a *\n  *b\nfolded: >\n  a *\n  *b\n\n  c\n---\n")
    )
    assert manifest.frontmatter["literal"] == "a *\n*b\n"
    assert manifest.frontmatter["folded"] == "a * *b\nc\n"


def test_unquoted_description_with_examples():
    manifest = parse_markdown_manifest(AGENT_WITH_EXAMPLES)
    frontmatter = manifest.frontmatter
    assert manifest.has_frontmatter and not manifest.frontmatter_valid
    assert set(frontmatter) == {"name", "description", "model", "color", "tools"}
    assert frontmatter["name"] == "agent-creator"
    assert frontmatter["model"] == "sonnet"
    assert frontmatter["tools"] == ["Write", "Read"]
    description = frontmatter["description"]
    assert description.startswith('Use this agent when the user asks to "create an agent"')
    assert "\nContext: User describes needed functionality\n" in description
    assert description.endswith("</example>")
    assert manifest.description == description
    assert manifest.problems[0].startswith("frontmatter is not valid YAML (")
    assert "line 3" in manifest.problems[0]
    assert "read as raw text: description" in manifest.problems[1]


def test_unclosed_example_ends_at_a_known_key():
    manifest = parse_markdown_manifest(
        md("---\nname: x\ndescription: Use it. <example>\nuser: hi\nnote: a: b\nmodel: opus\n---\n")
    )
    assert manifest.frontmatter["description"] == "Use it. <example>\nuser: hi\nnote: a: b"
    assert manifest.frontmatter["model"] == "opus"


def test_argument_hint_with_pipe():
    manifest = parse_markdown_manifest(
        md("---\ndescription: Run it\nargument-hint: [pr-number] | [branch]\n---\n")
    )
    assert manifest.frontmatter == {
        "description": "Run it",
        "argument-hint": "[pr-number] | [branch]",
    }
    assert not manifest.frontmatter_valid


def test_tolerant_parser_reports_stray_lines_and_duplicates():
    manifest = parse_markdown_manifest(md("---\njust text\nname: a\nname: b\nbad: [x] | y\n---\n"))
    assert manifest.frontmatter == {"name": "b", "bad": "[x] | y"}
    assert any("outside any key" in p and "line 2" in p for p in manifest.problems)
    assert any("duplicate" in p and "name" in p for p in manifest.problems)


def test_frontmatter_that_is_not_a_mapping():
    manifest = parse_markdown_manifest(md("---\n- a\n- b\n---\n"))
    assert manifest.has_frontmatter and not manifest.frontmatter_valid
    assert manifest.frontmatter == {}
    assert any("not a mapping" in p for p in manifest.problems)


def test_empty_frontmatter():
    manifest = parse_markdown_manifest(md("---\n---\nHello there.\n"))
    assert manifest.has_frontmatter and manifest.frontmatter_valid
    assert manifest.description == "Hello there."
    assert manifest.problems == ["frontmatter is empty"]


@pytest.mark.parametrize("data", [b"", b"  \n\n", b"\xef\xbb\xbf"])
def test_empty_manifest(data):
    manifest = parse_markdown_manifest(data)
    assert manifest.frontmatter == {} and manifest.body == ""
    assert "empty manifest" in manifest.problems


def test_oversized_manifest_is_not_parsed():
    data = b"---\nname: big\n---\n" + b"x" * (2 * 1024 * 1024)
    manifest = parse_markdown_manifest(data)
    assert manifest.frontmatter == {} and not manifest.has_frontmatter
    assert manifest.problems == [
        f"manifest is {len(data)} bytes, larger than {MAX_MANIFEST_BYTES}: not parsed"
    ]


def billion_laughs(levels: int = 9) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        prev, name = chr(ord("a") + level - 1), chr(ord("a") + level)
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_a_problem_and_returns_quickly():
    started = time.perf_counter()
    manifest = parse_markdown_manifest(md(f"---\nname: bomb\n{billion_laughs()}---\n# Title\n"))
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5
    assert not manifest.frontmatter_valid
    assert any("alias" in p for p in manifest.problems)
    assert manifest.frontmatter["name"] == "bomb"
    assert len(json.dumps(manifest.frontmatter)) < 2000  # nothing got expanded
    assert manifest.title == "Title"


def test_self_referencing_alias_is_a_problem():
    manifest = parse_markdown_manifest(md("---\nname: x\nloop: &l [*l]\n---\n"))
    assert manifest.frontmatter["name"] == "x"
    assert any("alias" in p for p in manifest.problems)
    json.dumps(manifest.frontmatter)


def test_modest_alias_use_is_accepted():
    manifest = parse_markdown_manifest(
        md("---\nbase: &base {model: opus}\nname: x\nconfig:\n  <<: *base\n  color: red\n---\n")
    )
    assert manifest.frontmatter_valid
    assert manifest.frontmatter["config"] == {"model": "opus", "color": "red"}


@pytest.mark.parametrize("loader", [yaml.SafeLoader, getattr(yaml, "CSafeLoader", yaml.SafeLoader)])
def test_alias_bound_holds_for_the_pure_python_and_c_parsers(loader):
    _check_alias_expansion(yaml.compose(billion_laughs(3), Loader=loader))  # 9*9 leaves: fine
    with pytest.raises(yaml.YAMLError, match="alias"):
        _check_alias_expansion(yaml.compose(billion_laughs(), Loader=loader))
    wide = "a: &a [" + ",".join(["1"] * 100) + "]\nb: [" + ",".join(["*a"] * 200) + "]\n"
    assert MAX_ALIAS_EXPANSION < 100 * 200
    with pytest.raises(yaml.YAMLError, match="alias"):
        _check_alias_expansion(yaml.compose(wide, Loader=loader))


def test_no_frontmatter_title_and_first_paragraph():
    manifest = parse_markdown_manifest(
        md(
            "```bash\n# not a title\n```\n\n<!-- a\ncomment -->\n# Claude Code Expert\n\n"
            "## Overview\n\nClaude Code   is a\n  terminal tool.\n\nSecond paragraph.\n"
        )
    )
    assert not manifest.has_frontmatter
    assert manifest.title == "Claude Code Expert"
    assert manifest.description == "Claude Code is a terminal tool."
    assert manifest.problems == []


def test_body_description_is_capped():
    manifest = parse_markdown_manifest(md("# T\n\n" + "word " * 1000))
    assert manifest.description is not None
    assert manifest.description.endswith("…")
    assert len(manifest.description) <= MAX_BODY_DESCRIPTION_CHARS + 1


def test_name_and_description_normalised():
    manifest = parse_markdown_manifest(
        md("---\nname: 123\ndescription: [a, b]\ncreated: 2024-01-01\n---\nFrom the body.\n")
    )
    assert manifest.frontmatter["name"] == "123"
    assert "description" not in manifest.frontmatter
    assert manifest.description == "From the body."
    assert manifest.frontmatter["created"] == "2024-01-01"
    assert "frontmatter name is a int, read as text" in manifest.problems
    assert "frontmatter description is a list, ignored" in manifest.problems


def test_frontmatter_is_json_serialisable():
    manifest = parse_markdown_manifest(
        md("---\nname: x\nwhen: 2024-01-02 03:04:05\ntags: !!set {a, b}\nbin: !!binary aGk=\n---\n")
    )
    assert manifest.frontmatter_valid
    assert json.loads(json.dumps(manifest.frontmatter)) == {
        "name": "x",
        "when": "2024-01-02 03:04:05",
        "tags": ["a", "b"],
        "bin": "aGk=",
    }


def test_empty_name_is_dropped_with_a_problem():
    manifest = parse_markdown_manifest(md("---\nname:\ndescription: '   '\n---\n"))
    assert manifest.frontmatter == {}
    assert "frontmatter name is empty" in manifest.problems
    assert "frontmatter description is empty" in manifest.problems


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Read, Write, Edit", ["Read", "Write", "Edit"]),
        ("Bash(git add:*, git commit:*), Read", ["Bash(git add:*, git commit:*)", "Read"]),
        ("Read Grep  Glob", ["Read", "Grep", "Glob"]),
        ('["Write", "Read"]', ["Write", "Read"]),
        (["Read", " Write ", "Read", "", 3, None, True, ["x"]], ["Read", "Write", "3"]),
        ("", []),
        (None, []),
        ({"Read": True}, []),
    ],
)
def test_normalize_list(value, expected):
    assert normalize_list(value) == expected


def test_truncated_inputs_never_raise():
    for end in range(len(AGENT_WITH_EXAMPLES)):
        manifest = parse_markdown_manifest(AGENT_WITH_EXAMPLES[:end])
        json.dumps(manifest.frontmatter)


def test_real_agents_of_anthropics_claude_code(corpus_bare_repo: Callable[[str], Path]):
    repo = corpus_bare_repo("anthropics+claude-code")
    paths = subprocess.run(
        ["git", "-C", str(repo), "ls-tree", "-r", "--name-only", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    agents = [p for p in paths if "/agents/" in p and p.endswith(".md")]
    assert len(agents) == 15
    tolerant = 0
    for path in agents:
        data = subprocess.run(
            ["git", "-C", str(repo), "show", f"HEAD:{path}"], capture_output=True, check=True
        ).stdout
        manifest = parse_markdown_manifest(data)
        tolerant += not manifest.frontmatter_valid
        assert manifest.frontmatter["name"] == Path(path).stem
        assert manifest.frontmatter["model"]
        assert len(manifest.description or "") > 100
        assert "\nmodel:" not in manifest.description
    assert tolerant == 10


@pytest.mark.parametrize(
    ("data", "value", "problem"),
    [
        (b'{"name": "p"}', {"name": "p"}, None),
        (b'\xef\xbb\xbf{"name": "p"}', {"name": "p"}, "byte order mark"),
        (b'{"name": "caf\xe9"}', {"name": "caf\ufffd"}, "not valid UTF-8"),
        (b'{"name": }', None, "invalid JSON: Expecting value (line 1, column 10)"),
        (b"", None, "empty manifest"),
        (b'{"n": NaN}', None, "NaN is not a JSON value"),
        (b"[" * 100_000, None, "invalid JSON"),
        (b'{"a": "' + b"x" * MAX_MANIFEST_BYTES + b'"}', None, "larger than"),
    ],
)
def test_parse_json_manifest(data, value, problem):
    parsed, problems = parse_json_manifest(data)
    assert parsed == value
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


def test_deep_text_joins_files_in_order():
    deep = collect_deep_text([("SKILL.md", b"# Skill\r\n"), ("ref.md", b"more"), ("e.md", b"")])
    assert deep.text == "# Skill\n\n\nmore"
    assert deep.files == ["SKILL.md", "ref.md"]
    assert deep.problems == []


def test_deep_text_skips_large_and_binary_files_and_decodes_legacy_text():
    deep = collect_deep_text(
        [
            ("big.md", b"a" * (MAX_DEEP_FILE_BYTES + 1)),
            ("exact.md", b"b" * MAX_DEEP_FILE_BYTES),
            ("logo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
            ("noise.bin", bytes(range(128, 256)) * 4),
            ("latin1.txt", "café crème".encode("latin-1")),
        ]
    )
    assert deep.files == ["exact.md", "latin1.txt"]
    assert deep.text == "b" * MAX_DEEP_FILE_BYTES + "\n\ncaf\ufffd cr\ufffdme"
    assert [p.split(":")[0] for p in deep.problems] == [
        "big.md",
        "logo.png",
        "noise.bin",
        "latin1.txt",
    ]
    assert "not valid UTF-8" in deep.problems[-1]


def test_deep_text_total_is_capped_and_stops_reading():
    read: list[str] = []

    def files():
        for i in range(15):
            read.append(f"f{i}.md")
            yield f"f{i}.md", "é".encode() * 45_000  # 90 KB each

    deep = collect_deep_text(files())
    assert len(deep.text.encode()) <= MAX_DEEP_TEXT_BYTES
    assert len(deep.text.encode()) > MAX_DEEP_TEXT_BYTES - 2  # the cut fell inside a character
    assert deep.files == [f"f{i}.md" for i in range(12)]
    assert read == [f"f{i}.md" for i in range(13)]
    assert deep.problems == [
        f"f11.md: truncated, deep text reached {MAX_DEEP_TEXT_BYTES} bytes",
        f"deep text reached {MAX_DEEP_TEXT_BYTES} bytes: f12.md and later files not deep-indexed",
    ]
