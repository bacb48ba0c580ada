from pathlib import Path

import pytest

from skillmeat_pipeline.lib.core.sources import SourcesFileError, load_sources, parse_sources


def test_github_source_derives_key_and_url(monkeypatch):
    monkeypatch.delenv("SKILLMEAT_GITHUB_GIT_URL", raising=False)
    (source,) = parse_sources("sources:\n  - github: anthropics/skills\n")
    assert source.key == "anthropics/skills"
    assert source.url == "https://github.com/anthropics/skills.git"
    assert not source.deep_indexing


def test_github_enterprise_base_is_configurable(monkeypatch):
    monkeypatch.setenv("SKILLMEAT_GITHUB_GIT_URL", "http://127.0.0.1:8080/")
    (source,) = parse_sources("sources:\n- github: o/r\n")
    assert source.url == "http://127.0.0.1:8080/o/r.git"


def test_all_fields():
    (source,) = parse_sources(
        """
sources:
  - key: internal/tools
    url: ssh://git@git.example.com/tools.git
    ref: v2
    root_hint: /.claude/
    exclude: ["**/drafts/**"]
    deep_indexing: true
"""
    )
    assert source.root_hint == ".claude"
    assert source.exclude == ["**/drafts/**"]
    assert source.github is None


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ("- github: a/b\n  colour: red\n", "line 2: source #1 (a/b), field 'colour'"),
        (
            "- github: a/b\n- github: a/b\n",
            "line 3: source #2 (a/b), field 'key': duplicate of source #1",
        ),
        ("- key: 'a,b'\n  url: http://h/x.git\n", "source #1 (a,b), field 'key'"),
        ("- key: 'a...b'\n  url: http://h/x.git\n", "not a valid partition key"),
        ('- key: "a\\x01"\n  url: http://h/x.git\n', "field 'key'"),
        ("- key: k\n  url: ftp://h/x\n", "source #1 (k), field 'url'"),
        ("- key: k\n  url: https://me:tok@h/x.git\n", "credentials in a URL are never accepted"),
        ("- key: k\n", "needs 'url' or 'github'"),
        ("- url: http://h/x.git\n", "needs 'key'"),
        ("- github: not-a-repo\n", "field 'github'"),
        ("- github: a/b\n  root_hint: ../up\n", "field 'root_hint'"),
        ("- github: a/b\n  deep_indexing: maybe\n", "field 'deep_indexing'"),
        ("- just a string\n", "source #1: must be a mapping"),
    ],
)
def test_bad_input_names_line_source_and_field(entries, message):
    with pytest.raises(SourcesFileError) as raised:
        parse_sources("sources:\n" + entries)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sources: [\n", "not valid YAML: line 2, column 1"),
        ("42\n", "expected a mapping"),
        ("- github: a/b\n", "expected a mapping with a 'sources' list"),
        ("sources:\n- github: a/b\nsauces: []\n", "unknown top-level field(s): sauces"),
        ("sources: {github: a/b}\n", "'sources' must be a list"),
    ],
)
def test_a_file_that_is_not_one_mapping_with_a_sources_list_is_an_error(text, message):
    with pytest.raises(SourcesFileError) as raised:
        parse_sources(text)
    assert message in str(raised.value)


def test_missing_and_non_utf8_files(tmp_path: Path):
    with pytest.raises(SourcesFileError, match="not found"):
        load_sources(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"sources:\n- github: a/b\n# \xff\xfe\n")
    with pytest.raises(SourcesFileError, match="not UTF-8"):
        load_sources(bad)


def test_path_from_environment(tmp_path: Path, monkeypatch):
    path = tmp_path / "mine.yaml"
    path.write_text("sources:\n  - github: a/b\n")
    monkeypatch.setenv("SKILLMEAT_SOURCES_FILE", str(path))
    assert [s.key for s in load_sources()] == ["a/b"]


def test_aliases_that_expand_exponentially_are_refused_before_they_are_read():
    levels = ["lol0: &lol0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 10):  # 10**10 values once expanded
        refs = ", ".join([f"*lol{level - 1}"] * 10)
        levels.append(f"lol{level}: &lol{level} [{refs}]")
    text = "defaults:\n" + "".join(f"  {line}\n" for line in levels)
    text += "sources:\n  - github: a/b\n    exclude: *lol9\n"
    with pytest.raises(SourcesFileError, match=r"aliases \(`\*name`\) expand to more than"):
        parse_sources(text)


def test_a_merge_key_of_shared_defaults_stays_allowed():
    text = (
        "sources:\n"
        "  - &defaults {github: a/one, ref: main, exclude: ['docs/**']}\n"
        "  - <<: *defaults\n    github: a/two\n"
    )
    assert [(s.key, s.ref, s.exclude) for s in parse_sources(text)] == [
        ("a/one", "main", ["docs/**"]),
        ("a/two", "main", ["docs/**"]),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sources: " + "[" * 5000 + "]" * 5000, "nested too deeply"),
        ("sources: []\n" + "# padding\n" * 900_000, "more than a sources file may hold"),
    ],
)
def test_a_file_too_deep_or_too_large_is_one_clear_error(text, message):
    with pytest.raises(SourcesFileError, match=message):
        parse_sources(text)
