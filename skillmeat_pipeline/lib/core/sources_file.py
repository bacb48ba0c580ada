"""Adding and removing sources in a sources file that people also edit by hand.

An edit changes the lines of one entry and nothing else: every other byte (comments, blank lines,
quoting, the order of the fields) is kept. The lines are found from the YAML parser's positions,
not by dumping the document again, since a round-trip dump moves the comments that follow an
entry along with it (a heading above the next entry is lost when the entry before it goes).
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from skillmeat_pipeline.lib.core.sources import (
    GITHUB_REPO_RE,
    SourceEntries,
    SourcesFileError,
    entry_key,
    read_sources,
)

REMOTE_URL = re.compile(r"^(https?|ssh|git)://|^[\w.-]+@[\w.-]+:")
# the layout of a new file's list, as in the README
DEFAULT_DASH_COLUMN = 2
DEFAULT_KEY_COLUMN = 4
# the keys an unknown-key error names; a file may list hundreds
KNOWN_KEYS_SHOWN = 5


def default_source_key(location: str) -> str:
    """The key a source at `location` gets unless one is given: `owner/repo` from a URL's last
    two path segments or a corpus-style bundle `owner+repo.bundle`, else the folder's name."""
    if REMOTE_URL.match(location):
        path = location.split(":", 1)[1] if "://" not in location else urlsplit(location).path
        segments = [s for s in path.removesuffix(".git").split("/") if s]
        return "/".join(segments[-2:])
    name = Path(location.rstrip("/")).name
    for suffix in (".bundle", ".git"):
        name = name.removesuffix(suffix)
    return name.replace("+", "/", 1)


def new_entry(
    location: str, key: str | None = None, ref: str | None = None, root_hint: str | None = None
) -> dict[str, str]:
    """The fields of a sources file entry for `owner/repo` (`github:`) or a git URL (`url:`).

    A `github:` entry gets `key` only when it differs from the name (the key defaults to it); a
    URL entry always does, by default `default_source_key` of the URL.
    """
    fields: dict[str, str] = {}
    if REMOTE_URL.match(location):
        fields = {"key": key or default_source_key(location), "url": location}
    elif GITHUB_REPO_RE.match(location):
        fields = ({"key": key} if key and key != location else {}) | {"github": location}
    else:
        raise SourcesFileError(
            f"{location[:200]!r} is neither OWNER/REPO nor a git URL (https, http, ssh or git)"
        )
    if ref:
        fields["ref"] = ref
    if root_hint:
        fields["root_hint"] = root_hint
    return fields


@dataclass(frozen=True)
class SourcesEdit:
    """A sources file's new text and what its strict reading found (the problems left in other
    entries are the file's own, not the edit's)."""

    text: str
    entries: SourceEntries


def _sources_node(text: str, origin: str) -> tuple[yaml.Node, yaml.SequenceNode]:
    """The `sources` key and its list, after `read_sources` accepted the file as a whole."""
    read_sources(text, origin)  # raises for anything but one mapping holding a `sources` list
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    assert isinstance(root, yaml.MappingNode), "read_sources accepted the file"
    key, value = next((k, v) for k, v in root.value if k.value == "sources")
    if not isinstance(value, yaml.SequenceNode):
        raise SourcesFileError(f"{origin}: 'sources' must be a list of sources")
    return key, value


def _content_end(node: yaml.Node) -> tuple[int, int]:
    """(line, column) right after the last character of `node`'s own text.

    Every child counts, since an alias's node is its anchor's and sits earlier in the file.
    """
    if not isinstance(node, yaml.CollectionNode) or node.flow_style:
        return node.end_mark.line, node.end_mark.column
    ends = [(node.start_mark.line, node.start_mark.column)]
    for child in node.value:
        for part in child if isinstance(child, tuple) else (child,):
            ends.append(_content_end(part))
    return max(ends)


def _last_line(node: yaml.Node) -> int:
    """The index of the last line holding `node`'s text (a block scalar ends at a line's start)."""
    line, column = _content_end(node)
    return line - 1 if column == 0 and line > node.start_mark.line else line


_DASH_LINE = re.compile(r"^(\s*)-(\s|$)")


def _dash_line(lines: list[str], item: yaml.Node) -> int:
    """The index of the line holding the `-` of a block list item (before the item's text, or
    alone on a line above it)."""
    for index in range(item.start_mark.line, -1, -1):
        if _DASH_LINE.match(lines[index]):
            return index
    raise SourcesFileError(f"line {item.start_mark.line + 1}: cannot find the '-' of this entry")


def _entry_lines(entry: dict[str, str], dash_column: int, key_column: int, newline: str) -> str:
    """`entry` as lines of a block list item, its `-` and fields at the given columns."""
    dumped = yaml.safe_dump(
        entry, default_flow_style=False, sort_keys=False, allow_unicode=True, width=10_000
    ).splitlines()
    first = " " * dash_column + "-" + " " * (key_column - dash_column - 1) + dumped[0]
    return newline.join([first, *(" " * key_column + line for line in dumped[1:])]) + newline


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def add_source_text(text: str | None, entry: dict[str, str], origin: str) -> SourcesEdit:
    """`text` with `entry` appended to its `sources` list (a new file when `text` is None).

    The new entry follows the last one, indented like it; comments after the last entry stay
    after the new one. `SourcesFileError` (with the strict reading's problem) when the new entry
    is not valid there: a key or repository that the file already has, credentials in its URL,
    an address the rules refuse.
    """
    if text is None:
        new_text = "sources:\n" + _entry_lines(entry, DEFAULT_DASH_COLUMN, DEFAULT_KEY_COLUMN, "\n")
    else:
        new_text = _appended(text, entry, origin)
    entries = read_sources(new_text, origin)
    count = len(yaml.safe_load(new_text)["sources"])
    own = re.compile(rf"^(line \d+: )?source #{count}\b")
    problem = next((p for p in entries.problems if own.match(p)), None)
    if problem is not None:
        # its line number is one of the text that was not written
        raise SourcesFileError(f"{origin}: new {own.sub(f'source #{count}', problem)}")
    return SourcesEdit(new_text, entries)


def _appended(text: str, entry: dict[str, str], origin: str) -> str:
    key_node, sequence = _sources_node(text, origin)
    lines = text.splitlines(keepends=True)
    newline = _newline(text)
    if sequence.flow_style:
        if sequence.value:
            raise SourcesFileError(
                f"{origin}: line {sequence.start_mark.line + 1}: the 'sources' list is written "
                "in flow style ([...]); add and remove edit a block list (one `- ` entry a line)"
            )
        # `sources: []` becomes `sources:` with the entry below; a comment on the line stays
        line = lines[sequence.start_mark.line]
        start, end = sequence.start_mark.column, sequence.end_mark.column
        lines[sequence.start_mark.line] = line[:start].rstrip() + line[end:]
        insert_after = sequence.start_mark.line
        dash_column = key_node.start_mark.column + DEFAULT_DASH_COLUMN
        key_column = dash_column + DEFAULT_KEY_COLUMN - DEFAULT_DASH_COLUMN
    else:
        last = sequence.value[-1]
        dash = _dash_line(lines, last)
        dash_column = lines[dash].index("-")
        key_column = last.start_mark.column if last.start_mark.line == dash else dash_column + 2
        insert_after = _last_line(last)
    if not lines[insert_after].endswith(("\n", "\r")):
        lines[insert_after] += newline
    lines.insert(insert_after + 1, _entry_lines(entry, dash_column, key_column, newline))
    return "".join(lines)


def remove_source_text(text: str, key: str, origin: str) -> SourcesEdit:
    """`text` without the lines of the entries whose key is `key` (every one, should the file
    repeat it); comments and blank lines around them stay. The last entry gone, the list is
    written `sources: []`. `SourcesFileError` naming a few known keys when none has `key`."""
    key_node, sequence = _sources_node(text, origin)
    if sequence.flow_style and sequence.value:
        raise SourcesFileError(
            f"{origin}: line {sequence.start_mark.line + 1}: the 'sources' list is written in "
            "flow style ([...]); add and remove edit a block list (one `- ` entry a line)"
        )
    raw_entries = yaml.safe_load(text)["sources"]
    keys = [entry_key(raw) if isinstance(raw, dict) else None for raw in raw_entries]
    doomed = [item for item, k in zip(sequence.value, keys, strict=True) if k == key]
    if not doomed:
        known = [k for k in keys if k]
        shown = ", ".join(known[:KNOWN_KEYS_SHOWN]) + (
            f" … ({len(known)} in all)" if len(known) > KNOWN_KEYS_SHOWN else ""
        )
        raise SourcesFileError(
            f"{origin}: no source has the key {key[:200]!r}; "
            + (f"its keys: {shown}" if known else "it lists no source")
        )
    lines = text.splitlines(keepends=True)
    cut = {i for item in doomed for i in range(_dash_line(lines, item), _last_line(item) + 1)}
    if len(doomed) == len(sequence.value):
        # an empty `sources:` is refused (it looks like a file cut short): say it is empty
        line = lines[key_node.start_mark.line]
        colon = line.index(":", key_node.end_mark.column) + 1
        lines[key_node.start_mark.line] = line[:colon] + " []" + line[colon:]
    new_text = "".join(line for i, line in enumerate(lines) if i not in cut)
    return SourcesEdit(new_text, read_sources(new_text, origin))


def read_text_if_any(path: Path) -> str | None:
    """The file's text as stored (its line endings too), None when it does not exist."""
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise SourcesFileError(f"{path}: not UTF-8 text ({exc.reason})") from None


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` by `text` at once: a reader (the sync sensor) sees the old file or the new
    one, never half of it. The file keeps its permissions."""
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o644
    folder = path.parent if str(path.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
