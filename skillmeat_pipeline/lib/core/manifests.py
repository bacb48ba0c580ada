"""Parse artifact manifests (SPEC §5.1): markdown with YAML frontmatter, JSON files, deep text.

Parsing never raises on bad input: every oddity becomes a string in `problems`.
"""

from __future__ import annotations

import codecs
import io
import itertools
import json
import re
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

MAX_MANIFEST_BYTES = 1024 * 1024
# SPEC §5.1 says "100 KB" and "1 MB" for deep text, "1 MiB" for manifests: decimal units here.
MAX_DEEP_FILE_BYTES = 100_000
MAX_DEEP_TEXT_BYTES = 1_000_000
# A body paragraph can be a whole file without blank lines; a description is a summary for listings
# and search_text, so anything past this is noise that bloats every catalog row.
MAX_BODY_DESCRIPTION_CHARS = 1_000
# Nodes that aliases may add beyond those the document spells out. Real frontmatter reuses an
# anchor a handful of times at most; a billion-laughs document asks for 10**9.
MAX_ALIAS_EXPANSION = 10_000
# A file is not text when this share of it is undecodable: legacy-encoded text stays far below.
_MAX_REPLACEMENT_SHARE = 0.3

# Claude Code's own frontmatter keys. Inside an open `<example>` block, `user:`/`Context:` lines
# belong to the description; one of these keys still ends it, so an unclosed `<example>` cannot
# swallow the rest of the frontmatter.
_KNOWN_KEYS = frozenset(
    {
        "name",
        "description",
        "tools",
        "allowed-tools",
        "disallowedTools",
        "model",
        "color",
        "argument-hint",
        "license",
        "version",
        "permissionMode",
        "skills",
        "hooks",
        "disable-model-invocation",
        "user-invocable",
    }
)
_KEY_LINE = re.compile(
    r"""^(["']?)(?P<key>[A-Za-z_][\w.-]*)\1[ \t]*:(?:[ \t]+(?P<value>.*)|[ \t]*)$"""
)
_BLOCK_HEADER = re.compile(r"^(?P<style>[|>])(?P<chomp>[+-]?)\d?(?P<chomp2>[+-]?)[ \t]*(?:#.*)?$")
_LEADING_WS = re.compile(r"^[ \t]+", re.M)
_FRONTMATTER_CLOSE = re.compile(r"^---[ \t]*$", re.M)
_HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]|$)")
_TITLE_OR_FENCE = re.compile(
    r"^ {0,3}(?:(?P<fence>`{3,}|~{3,})|#(?:[ \t]+(?P<title>.*?))?(?:[ \t]+#+)?[ \t]*$)", re.M
)
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_THEMATIC_BREAK = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")


class _AliasExpansionError(yaml.YAMLError):
    pass


# libyaml parses several times faster than the pure-Python parser, which stays the fallback.
# Both have the same API; the type checker sees the pure-Python one.
if TYPE_CHECKING:
    _SafeLoaderBase = yaml.SafeLoader
else:
    _SafeLoaderBase = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _SafeLoader(_SafeLoaderBase):
    """Safe loader whose results are JSON-serialisable (frontmatter is stored as row metadata).

    Dates and binaries stay the text the author wrote; sets become lists.
    """

    def _construct_list_of_keys(self, node: yaml.MappingNode) -> list[Any]:
        return list(self.construct_mapping(node))


def _as_written(loader: _SafeLoader, node: yaml.Node) -> str:
    return loader.construct_yaml_str(node)


_SafeLoader.add_constructor("tag:yaml.org,2002:timestamp", _as_written)
_SafeLoader.add_constructor("tag:yaml.org,2002:binary", _as_written)
_SafeLoader.add_constructor("tag:yaml.org,2002:set", _SafeLoader._construct_list_of_keys)


class _BoundedSafeLoader(_SafeLoader):
    """A `_SafeLoader` whose aliases cannot expand past MAX_ALIAS_EXPANSION.

    PyYAML shares one object per anchor, so loading a bomb is cheap; the blow-up comes later when
    the value is serialised or walked. The check runs on the composed node graph, before
    construction, and works the same for the C and the pure-Python parser.
    """

    def construct_document(self, node: yaml.Node) -> Any:
        _check_alias_expansion(node)
        return super().construct_document(node)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    if isinstance(node, yaml.SequenceNode):
        items: list[yaml.Node] = node.value
        return items
    return []


def _check_alias_expansion(root: yaml.Node) -> None:
    """Raise when aliases make the document expand past its own size by more than the budget."""
    # Iterative post-order walk: 1 MiB of frontmatter can nest deeper than Python's recursion limit.
    expanded: dict[int, int] = {}
    open_nodes: set[int] = set()  # the current path from the root, to spot self-referencing aliases
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            expanded[key] = 1 + sum(expanded[id(child)] for child in _children(node))
            continue
        if key in expanded:
            continue
        open_nodes.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_nodes:
                raise _AliasExpansionError(
                    "YAML alias refers to its own parent (infinite expansion)"
                )
            stack.append((child, False))
    if expanded[id(root)] - len(expanded) > MAX_ALIAS_EXPANSION:
        raise _AliasExpansionError(
            f"YAML aliases expand to {expanded[id(root)]} nodes from {len(expanded)} (alias bomb?)"
        )


def _load_yaml(text: str) -> Any:
    # Every alias is written `*anchor`: without a `*` nothing can expand, so the walk is skipped.
    return yaml.load(text, Loader=_BoundedSafeLoader if "*" in text else _SafeLoader)


def _yaml_error(exc: Exception, first_line: int) -> str:
    """A one-line message: PyYAML's str() spans several lines and quotes the input."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        where = f", line {mark.line + first_line}" if mark is not None else ""
        return f"{exc.problem}{where}"
    if isinstance(exc, yaml.YAMLError) and str(exc):
        return str(exc).splitlines()[0][:200]
    return type(exc).__name__


def _decode(data: bytes) -> tuple[str, list[str]]:
    """Text of a file with LF line ends, and what was odd about its encoding."""
    notes: list[str] = []
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        notes.append("UTF-16 encoded, decoded (Claude Code expects UTF-8)")
        text = data.decode("utf-16", errors="replace")
    else:
        offset = 0
        if data.startswith(codecs.BOM_UTF8):
            # Stripped, but reported: Node's JSON.parse and frontmatter readers trip over it.
            notes.append("UTF-8 byte order mark at the start (stripped)")
            offset = len(codecs.BOM_UTF8)
        try:
            text = data[offset:].decode("utf-8")
        except UnicodeDecodeError as exc:
            notes.append(
                f"not valid UTF-8 (first bad byte at offset {exc.start + offset}); "
                "decoded with replacement characters"
            )
            text = data[offset:].decode("utf-8", errors="replace")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text, notes


@dataclass(slots=True)
class MarkdownManifest:
    """What a markdown manifest says about its artifact."""

    frontmatter: dict[str, Any] = field(default_factory=dict)
    has_frontmatter: bool = False
    frontmatter_valid: bool = False  # strict YAML accepted it
    title: str | None = None  # first `# heading` of the body
    description: str | None = None  # frontmatter description, else the body's first paragraph
    body: str = ""
    problems: list[str] = field(default_factory=list)


def parse_markdown_manifest(data: bytes) -> MarkdownManifest:
    """Frontmatter (strict YAML, then a tolerant fallback), title and description of a markdown."""
    manifest = MarkdownManifest()
    problems = manifest.problems
    if len(data) > MAX_MANIFEST_BYTES:
        problems.append(
            f"manifest is {len(data)} bytes, larger than {MAX_MANIFEST_BYTES}: not parsed"
        )
        return manifest
    text, notes = _decode(data)
    problems.extend(notes)
    if "\x00" in text:
        # Text columns (PostgreSQL) cannot hold NUL.
        problems.append("NUL characters removed")
        text = text.replace("\x00", "")
    if not text.strip():
        problems.append("empty manifest")
        return manifest

    body = text
    first_line, newline, rest = text.partition("\n")
    if first_line.rstrip() == "---":
        close = _FRONTMATTER_CLOSE.search(rest) if newline else None
        if close is None:
            # Reading to the end of file as YAML would turn the whole body into frontmatter.
            problems.append("frontmatter opened with --- but never closed: read as body")
        else:
            manifest.has_frontmatter = True
            manifest.frontmatter, manifest.frontmatter_valid = _read_frontmatter(
                rest[: close.start()], problems
            )
            body = rest[close.end() + 1 :]
    manifest.body = body

    description = manifest.frontmatter.get("description")
    manifest.title = _first_title(body)
    manifest.description = description or _first_paragraph(body)
    return manifest


def _read_frontmatter(source: str, problems: list[str]) -> tuple[dict[str, Any], bool]:
    """The frontmatter mapping, and whether strict YAML accepted it."""
    try:
        loaded = _load_yaml(source)
    except Exception as exc:  # RecursionError from the pure-Python loader too, never only YAMLError
        problems.append(f"frontmatter is not valid YAML ({_yaml_error(exc, 2)}): read leniently")
    else:
        if loaded is None:
            problems.append("frontmatter is empty")
            return {}, True
        if isinstance(loaded, dict):
            return _normalise_fields(loaded, problems), True
        problems.append(
            f"frontmatter is a YAML {type(loaded).__name__}, not a mapping: read leniently"
        )
    return _normalise_fields(_tolerant_frontmatter(source, problems), problems), False


def _normalise_fields(frontmatter: dict[Any, Any], problems: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in frontmatter.items():
        if not isinstance(key, str):
            problems.append(f"frontmatter key {key!r} is not text")
        result[str(key)] = value
    for key in ("name", "description"):
        if key not in result:
            continue
        value = result[key]
        if isinstance(value, int | float):  # bool included: `name: yes` is a YAML boolean
            problems.append(f"frontmatter {key} is a {type(value).__name__}, read as text")
            value = str(value)
        if isinstance(value, str) and value.strip():
            result[key] = value.strip()
            continue
        if isinstance(value, str) or value is None:
            problems.append(f"frontmatter {key} is empty")
        else:
            problems.append(f"frontmatter {key} is a {type(value).__name__}, ignored")
        del result[key]
    return result


def _listing(items: Iterable[object], limit: int = 10) -> str:
    """A short, deduplicated list for a problem message: problems must stay readable strings."""
    unique = list(dict.fromkeys(map(str, items)))
    return ", ".join(unique[:limit]) + (", …" if len(unique) > limit else "")


def _example_balance(line: str) -> int:
    lowered = line.lower()
    return lowered.count("<example") - lowered.count("</example")


def _tolerant_frontmatter(source: str, problems: list[str]) -> dict[str, Any]:
    """Line-based reading of frontmatter that strict YAML rejects.

    A `key:` line at column 0 starts an entry; every other line continues the previous entry, so
    unquoted multi-line descriptions keep their `<example>` blocks, whose `Context:`/`user:` lines
    are column-0 `key:` lines too and are kept while an `<example>` is open. Each entry is then
    tried as strict YAML on its own, so only the broken ones are read as raw text.
    """
    if "\t" in source and re.search(r"^[ \t]*\t", source, re.M):
        problems.append("tab indentation in frontmatter (read as spaces)")
        source = _LEADING_WS.sub(lambda m: m.group().expandtabs(2), source)
    entries: list[tuple[str, str, str, list[str]]] = []  # key, first value, key line, continuation
    stray: list[int] = []
    open_examples = 0
    for number, line in enumerate(source.split("\n"), start=2):
        match = _KEY_LINE.match(line)
        if match and (open_examples == 0 or match["key"] in _KNOWN_KEYS):
            value = match["value"] or ""
            entries.append((match["key"], value.strip(), line, []))
            open_examples = max(0, _example_balance(value))
        elif open_examples == 0 and line.startswith("#"):
            continue  # a YAML comment
        elif entries:
            entries[-1][3].append(line)
            open_examples = max(0, open_examples + _example_balance(line))
        elif line.strip():
            stray.append(number)
    if stray:
        problems.append(f"frontmatter lines outside any key ignored (line {_listing(stray)})")

    result: dict[str, Any] = {}
    raw_keys: list[str] = []
    duplicates: list[str] = []
    for key, first, key_line, rest in entries:
        if key in result:
            duplicates.append(key)
        try:
            loaded = _load_yaml("\n".join([key_line, *rest, ""]))
        except Exception:
            loaded = None
        if isinstance(loaded, dict) and list(loaded) == [key]:
            result[key] = loaded[key]
        else:
            raw_keys.append(key)
            result[key] = _raw_value(first, rest)
    if duplicates:
        problems.append(f"duplicate frontmatter keys, last value kept: {_listing(duplicates)}")
    if raw_keys:
        problems.append(f"frontmatter values read as raw text: {_listing(raw_keys)}")
    elif not entries:
        problems.append("no `key: value` lines in frontmatter")
    return result


def _raw_value(first: str, rest: list[str]) -> str | list[str] | None:
    """The value of one entry that strict YAML rejects, read as text."""
    header = _BLOCK_HEADER.match(first)
    if header:
        return _block_scalar(header["style"], header["chomp"] or header["chomp2"], rest)
    items = [line.strip() for line in rest if line.strip()]
    if not first and items and all(item.startswith("- ") or item == "-" for item in items):
        return [_unquote(item[1:].strip()) for item in items]
    text = "\n".join(line.strip() for line in [first, *rest]).strip()
    return _unquote(text) or None


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def _block_scalar(style: str, chomp: str, lines: list[str]) -> str:
    """A `|` (literal) or `>` (folded) block scalar, with YAML's chomping."""
    lines = textwrap.dedent("\n".join(lines)).split("\n")
    if style == ">":
        # Folding: a break between two plain lines becomes a space; the break before blank lines is
        # dropped and each blank line is a newline; more-indented lines keep their breaks.
        folded = lines[:1]
        for previous, line in itertools.pairwise(lines):
            plain_previous = bool(previous) and not previous[0].isspace()
            if line and not line[0].isspace() and plain_previous:
                folded.append(" " + line)
            elif not line and plain_previous:
                folded.append("")
            else:
                folded.append("\n" + line)
        text = "".join(folded) + "\n"
    else:
        text = "\n".join(lines) + "\n"
    if chomp == "+":
        return text
    stripped = text.rstrip("\n")
    return stripped if chomp == "-" or not stripped else stripped + "\n"


def _first_title(body: str) -> str | None:
    """Text of the first `# heading` outside code fences."""
    # Regex search rather than a line loop: most bodies have no H1 and are scanned to the end.
    position = 0
    while match := _TITLE_OR_FENCE.search(body, position):
        fence = match["fence"]
        if fence is None:
            if match["title"]:
                return match["title"]
            position = match.end() + 1
            continue
        close = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", re.M)
        closing = close.search(body, match.end())
        if closing is None:
            return None
        position = closing.end() + 1
    return None


def _first_paragraph(body: str) -> str | None:
    """First prose paragraph, whitespace collapsed: no headings, code fences or HTML comments."""
    lines: list[str] = []
    fence: str | None = None
    in_comment = False
    for raw in io.StringIO(body):
        line = raw.rstrip("\n")
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
        elif in_comment:
            in_comment = "-->" not in line
        elif fence_match := _FENCE.match(line):
            fence = fence_match.group(1)
        elif not line.strip() or _HEADING.match(line) or _THEMATIC_BREAK.match(line):
            pass
        elif line.lstrip().startswith("<!--"):
            in_comment = "-->" not in line
        else:
            lines.append(line.lstrip(" >"))
            continue
        if lines:
            break
    if not lines:
        return None
    text = " ".join(" ".join(lines).split())
    if len(text) > MAX_BODY_DESCRIPTION_CHARS:
        cut = text.rfind(" ", 0, MAX_BODY_DESCRIPTION_CHARS)
        text = text[: cut if cut > 0 else MAX_BODY_DESCRIPTION_CHARS] + "…"
    return text


def normalize_list(value: Any) -> list[str]:
    """`tools`/`allowed-tools` as a list of names, whether written as a list or a delimited string.

    A string is split on commas, or on whitespace when it has no comma (`Read Grep`), but never
    inside parentheses: `Bash(git add:*, git commit:*)` is one entry. Duplicates and empty items
    are dropped.
    """
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith(
            "]"
        ):  # a flow list the tolerant parser kept as text
            text = text[1:-1]
        items = _split_outside_parentheses(text, "," if "," in text else None)
    elif isinstance(value, list | tuple):
        items = [
            str(item)
            for item in value
            if isinstance(item, str | int | float) and not isinstance(item, bool)
        ]
    else:
        items = []
    cleaned = (_unquote(item.strip()).strip() for item in items)
    return list(dict.fromkeys(item for item in cleaned if item))


def _split_outside_parentheses(text: str, separator: str | None) -> list[str]:
    items: list[str] = []
    depth = 0
    start = 0
    for match in re.finditer(r"[()]|" + (re.escape(separator) if separator else r"\s+"), text):
        token = match.group()
        if token == "(":
            depth += 1
        elif token == ")":
            depth = max(0, depth - 1)
        elif depth == 0:
            items.append(text[start : match.start()])
            start = match.end()
    items.append(text[start:])
    return items


def parse_json_manifest(data: bytes) -> tuple[Any, list[str]]:
    """The decoded JSON value (None when unusable) and the problems found.

    A BOM is stripped and reported; bytes that are not UTF-8 are replaced and reported, and the JSON
    is still read, as Node (Claude Code) reads it. NaN/Infinity are rejected: they are not JSON.
    """
    if len(data) > MAX_MANIFEST_BYTES:
        return None, [
            f"manifest is {len(data)} bytes, larger than {MAX_MANIFEST_BYTES}: not parsed"
        ]
    text, problems = _decode(data)
    if not text.strip():
        return None, [*problems, "empty manifest"]
    try:
        return json.loads(text, parse_constant=_reject_constant), problems
    except json.JSONDecodeError as exc:
        problems.append(f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
    except (ValueError, RecursionError) as exc:  # NaN, huge integers, absurd nesting
        problems.append(f"invalid JSON: {str(exc)[:200] or type(exc).__name__}")
    return None, problems


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


@dataclass(slots=True)
class DeepText:
    """Full text of an artifact's files for the deep index (SPEC §5.1, §5.2)."""

    text: str = ""
    files: list[str] = field(default_factory=list)  # paths whose text is in `text`
    problems: list[str] = field(default_factory=list)


def collect_deep_text(files: Iterable[tuple[str, bytes]]) -> DeepText:
    """Join the text of `(path, data)` files, in the order given, within the deep-index limits.

    Binary files (any NUL byte: git's own test, and text columns cannot hold NUL) are skipped.
    Text that is not UTF-8 is decoded with replacement characters: its ASCII words stay searchable,
    which beats dropping the file. The file that crosses MAX_DEEP_TEXT_BYTES is truncated and
    iteration stops there, so a lazy `files` is not read further; pass the manifest first.
    """
    deep = DeepText()
    parts: list[str] = []
    used = 0
    separator = b"\n\n"
    for path, data in files:
        room = MAX_DEEP_TEXT_BYTES - used - (len(separator) if parts else 0)
        if room <= 0:
            deep.problems.append(
                f"deep text reached {MAX_DEEP_TEXT_BYTES} bytes: {path} and later files"
                " not deep-indexed"
            )
            break
        if len(data) > MAX_DEEP_FILE_BYTES:
            deep.problems.append(
                f"{path}: {len(data)} bytes, larger than {MAX_DEEP_FILE_BYTES}: not deep-indexed"
            )
            continue
        text, notes = _decode(data)
        if "\x00" in text:
            deep.problems.append(f"{path}: binary file, not deep-indexed")
            continue
        if notes and text.count("\ufffd") > _MAX_REPLACEMENT_SHARE * len(text):
            deep.problems.append(f"{path}: not text, not deep-indexed")
            continue
        deep.problems.extend(f"{path}: {note}" for note in notes)
        if not text.strip():
            continue
        encoded = text.encode("utf-8")
        if len(encoded) > room:
            encoded = encoded[:room]
            deep.problems.append(
                f"{path}: truncated, deep text reached {MAX_DEEP_TEXT_BYTES} bytes"
            )
        if parts:
            used += len(separator)
        used += len(encoded)
        parts.append(encoded.decode("utf-8", errors="ignore"))  # ignore: a cut multi-byte character
        deep.files.append(path)
    deep.text = separator.decode().join(parts)
    return deep
