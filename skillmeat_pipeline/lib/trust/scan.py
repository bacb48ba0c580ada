"""The trust rules engine: findings for a set of files (paths relative to the repository root).

Work is bounded whatever the input: files over 256 KB and binary files are skipped, a line longer
than 4,000 bytes is only looked at in a 1,000-byte window around each match, a file yields at most
MAX_HITS_PER_FILE trigger matches per pivot (MAX_HITS_PER_LINE per line) and MAX_FINDINGS_PER_RULE
findings per rule, JSON is parsed only for the few manifest names (and a nesting too deep for the
parser is a skipped file, not a crash).
Every regex is led by a literal and has bounded repetitions only, so none can backtrack
catastrophically.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator, Mapping
from functools import cache

from skillmeat_pipeline.lib.core.files import BINARY_SUFFIXES
from skillmeat_pipeline.lib.core.findings import Finding, risk_of
from skillmeat_pipeline.lib.trust.model import ANYWHERE, CODE, CONFIG, MARKDOWN, PROSE, Hit, Rule
from skillmeat_pipeline.lib.trust.predicates_injection import (
    BIDI_CONTROL,
    INVISIBLE,
    TAG_CHARACTERS,
    ZWJ,
)
from skillmeat_pipeline.lib.trust.predicates_secrets import (
    CONFIG_SECRET,
    CONFIG_SECRET_WORDS,
    config_secret_value,
)
from skillmeat_pipeline.lib.trust.rules import RULES, RULES_BY_ID
from skillmeat_pipeline.lib.trust.structured import MANIFEST_NAMES, structured_findings
from skillmeat_pipeline.lib.trust.text import excerpt
from skillmeat_pipeline.lib.trust.triggers import TRIGGERS, Trigger

__all__ = ["MAX_FILE_BYTES", "file_kind", "findings_for_files", "risk_of"]

MAX_FILE_BYTES = 256 * 1024
MAX_LINE = 4000
LONG_LINE_WINDOW = 1000  # bytes looked at around a match on a line longer than MAX_LINE
MAX_HITS_PER_FILE = 2000
MAX_HITS_PER_LINE = 20
MAX_FINDINGS_PER_RULE = 100
_BINARY_SHARE = 0.1  # of replacement characters after decoding: more means not text
_SNIFF_BYTES = 8192

_MARKDOWN_SUFFIXES = (".md", ".mdx", ".markdown")
_PROSE_SUFFIXES = (".txt", ".rst", ".adoc")
_CONFIG_SUFFIXES = (
    ".json",
    ".jsonc",
    ".json5",
    ".yaml",
    ".yml",
    ".toml",
    ".ini",
    ".cfg",
    ".conf",
    ".env",
    ".properties",
)

_DESCRIBING = re.compile(
    rb"\b(?:never|don'?t|do not|avoid|dangerous|malicious|attack(?:er|ers|s)?|insecure|unsafe"
    rb"|vulnerab\w{0,10}|risky|bad|wrong|blocked|detect(?:s|ed|ion)?|flag(?:s|ged)?|suspicious"
    rb"|forbidden|prohibited|not allowed|anti-?patterns?|exploit\w{0,5}|warning|den(?:y|ied|ies)"
    rb"|reject(?:s|ed)?|adversarial)\b"
    rb"|\xe2\x9d\x8c|\xe2\x9a\xa0|\xf0\x9f\x9a\xab"
)
_REGEX_LITERAL = re.compile(rb"\\[sbdw|.]|\(\?[:=!<]|\[\^|\.\*")
_EMOJI_BEFORE_ZWJ = re.compile(
    rb"(?:[\xf0-\xf4][\x80-\xbf]{3}|\xef\xb8\x8f|[\xe2\xe3][\x80-\xbf]{2})$"
)
_BLACK_FLAG = b"\xf0\x9f\x8f\xb4"


def file_kind(path: str) -> str:
    """`markdown`, `config`, `prose` or `code`, from the file name."""
    name = path.rsplit("/", 1)[-1].lower()
    if name.endswith(_MARKDOWN_SUFFIXES):
        return MARKDOWN
    if name.endswith(_CONFIG_SUFFIXES) or name.startswith(".env"):
        return CONFIG
    if name.endswith(_PROSE_SUFFIXES):
        return PROSE
    return CODE


@cache
def _trigger_regexes(
    kind: str,
) -> tuple[tuple[bytes, re.Pattern[bytes], tuple[_Member, ...]], ...]:
    """The triggers of `kind`, one regex per pivot byte (each a C-level literal search).

    The joined regex has no groups (a group would stop the regex engine from skipping, on the
    next byte, the alternatives that cannot match); which trigger matched is found by matching
    each member's own regex at the hit, which only runs on the few hits.
    """
    groups: dict[bytes, list[tuple[str, Trigger]]] = {}
    for name, trigger in TRIGGERS.items():
        if kind in trigger.kinds and _listeners(name, kind):
            groups.setdefault(trigger.literal[:1], []).append((name, trigger))
    compiled = []
    for first, members in sorted(groups.items()):
        alternatives = b"|".join(trigger.body() for _, trigger in members)
        regex = re.compile(re.escape(first) + b"(?:" + alternatives + b")")
        compiled.append(
            (first, regex, tuple((n, t.width_before, re.compile(t.full())) for n, t in members))
        )
    return tuple(compiled)


_Member = tuple[str, int, "re.Pattern[bytes]"]
_CONFIG_VALUE = RULES_BY_ID["secrets.config_value"]


@cache
def _listeners(trigger: str, kind: str) -> tuple[Rule, ...]:
    return tuple(r for r in RULES if trigger in r.triggers and kind in r.kinds)


def findings_for_files(
    files: Mapping[str, bytes], *, artifact_type: str | None = None
) -> list[Finding]:
    """Every finding of the trust rules in `files` (path relative to the repository root -> bytes).

    Files over 256 KB and binary files are skipped. JSON manifests (`hooks.json`, settings,
    `.mcp.json`, `plugin.json`) are also checked structurally. Identical (rule, file, line) are
    reported once; the result is sorted by file, line and rule. `artifact_type` is accepted for
    callers that scan one artifact at a time; no rule depends on it yet.
    """
    del artifact_type
    found: dict[tuple[str, int, str], Finding] = {}
    for path in sorted(files):
        data = files[path]
        scan = _FileScan.open(path, data)
        if scan is None:
            continue
        for finding in scan.findings():
            found.setdefault((finding.file, finding.line, finding.rule), finding)
        if scan.kind == CONFIG and path.rsplit("/", 1)[-1] in MANIFEST_NAMES:
            for finding in structured_findings(path, data, files, max_file_bytes=MAX_FILE_BYTES):
                found.setdefault((finding.file, finding.line, finding.rule), finding)
    return [found[key] for key in sorted(found)]


def is_text(path: str, data: bytes) -> bool:
    """Small enough, not a known binary type, no NUL byte, and mostly valid UTF-8."""
    if len(data) > MAX_FILE_BYTES or path.lower().endswith(BINARY_SUFFIXES):
        return False
    if b"\0" in data:
        return False
    if data.isascii():
        return True
    head = data[:_SNIFF_BYTES]  # like git, judge by the start of the file
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start >= len(head) - 3:  # a character cut by the sniff window
            return True
        text = head.decode("utf-8", "replace")
        return text.count("\ufffd") <= _BINARY_SHARE * len(text)
    return True


class _FileScan:
    """The findings of one file; markdown code regions and line numbers are computed on demand."""

    def __init__(self, path: str, data: bytes) -> None:
        self.path = path
        self.data = data
        self.low = data.lower()  # ASCII only: offsets stay those of `data`
        self.kind = file_kind(path)
        self._regions: list[tuple[int, int]] | None = None
        self._line_starts: list[int] | None = None
        self._counts: dict[str, int] = {}
        self._line_hits: dict[int, int] = {}
        self._secret_lines: set[int] = set()  # lines a token-format rule already reported
        self.out: list[Finding] = []

    @classmethod
    def open(cls, path: str, data: bytes) -> _FileScan | None:
        return cls(path, data) if is_text(path, data) else None

    # -- positions ------------------------------------------------------------------------

    def line_number(self, position: int) -> int:
        if self._line_starts is None:
            starts = [0]
            find = self.low.find
            index = find(b"\n")
            while index >= 0:
                starts.append(index + 1)
                index = find(b"\n", index + 1)
            self._line_starts = starts
        return bisect.bisect_right(self._line_starts, position)

    def line_bounds(self, position: int) -> tuple[int, int]:
        start = self.low.rfind(b"\n", 0, position) + 1
        end = self.low.find(b"\n", position)
        return start, len(self.low) if end < 0 else end

    def regions(self) -> list[tuple[int, int]]:
        """Markdown code: the frontmatter and fenced blocks, as (start, end) byte offsets."""
        if self._regions is None:
            self._regions = _markdown_code_regions(self.low) if self.kind == MARKDOWN else []
        return self._regions

    def region_of(self, position: int) -> tuple[int, int] | None:
        regions = self.regions()
        index = bisect.bisect_right(regions, (position, len(self.low) + 1)) - 1
        if index >= 0 and regions[index][0] <= position < regions[index][1]:
            return regions[index]
        return None

    # -- findings -------------------------------------------------------------------------

    def findings(self) -> list[Finding]:
        low = self.low
        for pivot_byte, regex, members in _trigger_regexes(self.kind):
            # a one-byte find is memchr, several times faster than the regex engine's own scan;
            # starting there changes no match (a look-behind still sees the bytes before it)
            first = low.find(pivot_byte)
            if first < 0:
                continue
            # a budget per pivot: padding a file with one word cannot hide another rule's match
            for hits, match in enumerate(regex.finditer(low, first)):
                if hits >= MAX_HITS_PER_FILE:
                    break
                pivot = match.start()
                for name, width, member in members:
                    found = member.match(low, pivot - width) if pivot >= width else None
                    if found is not None:
                        self._consider(name, found)
                        break
        if not self.data.isascii():
            self._invisible_characters()
        if self.kind == CONFIG:
            self._config_secrets()
        return self.out

    def _consider(self, trigger: str, match: re.Match[bytes]) -> None:
        spec = TRIGGERS[trigger]
        position = match.start()
        if position > 0 and (spec.lead or spec.literal)[:1].isalpha():
            previous = self.low[position - 1 : position]
            if previous.isalnum():
                return  # inside a longer word
        start, end = self.line_bounds(position)
        per_line = self._line_hits.get(start, 0)
        if per_line >= MAX_HITS_PER_LINE:
            return
        self._line_hits[start] = per_line + 1
        if end - start > MAX_LINE:
            start = max(start, position - LONG_LINE_WINDOW // 2)
            end = min(end, start + LONG_LINE_WINDOW)
        hit = self._hit(trigger, position, match.end(), start, end)
        context: str | None = None
        region: tuple[int, int] | None = None
        for rule in _listeners(trigger, self.kind):
            if self._counts.get(rule.id, 0) >= MAX_FINDINGS_PER_RULE:
                continue
            # the predicate first: it is cheap and rejects most candidates
            hit.secrets.clear()
            if rule.accept is None or not rule.accept(hit):
                continue
            if rule.contexts != ANYWHERE or rule.command:
                if context is None:
                    context, region = self._context(position, start)
                if context not in rule.contexts:
                    continue
                if rule.command and self._quiet_command(hit.line, hit.start, region, start):
                    continue
            self._report(rule, position, hit.raw, hit.start, tuple(hit.secrets))

    def _context(self, position: int, line_start: int) -> tuple[str, tuple[int, int] | None]:
        if self.kind == PROSE:
            return "prose", None
        if self.kind != MARKDOWN:
            return "code", None
        region = self.region_of(position)
        if region is not None:
            return "code", region
        # inline code: an odd number of backticks before the match on its line
        if self.low.count(b"`", line_start, position) % 2 == 1:
            return "code", None
        return "prose", None

    def _quiet_command(
        self,
        line: bytes,
        column: int,
        region: tuple[int, int] | None,
        line_start: int,
    ) -> bool:
        """A comment, a regular expression, or (markdown) a line that describes the pattern."""
        stripped = line.lstrip()
        if self.kind != MARKDOWN or region is not None:
            if stripped.startswith(b"//") or (stripped.startswith(b"#") and b"#!" not in line[:3]):
                return True
            before = line[:column]
            if b" #" in before or b" //" in before or b"\t#" in before:
                return True  # a trailing comment
        if _REGEX_LITERAL.search(line):
            return True
        if self.kind != MARKDOWN:
            return False
        if _DESCRIBING.search(line):
            return True
        return region is not None and bool(_DESCRIBING.search(self._lines_before(line_start, 3)))

    def _lines_before(self, line_start: int, count: int) -> bytes:
        start = line_start
        for _ in range(count):
            if start <= 0:
                break
            start = self.low.rfind(b"\n", 0, start - 1) + 1
        return self.low[max(start, line_start - MAX_LINE) : line_start]

    def _preceding(self, line_start: int) -> bytes:
        """A few lines before, and the nearest markdown heading above (for context checks)."""
        before = self._lines_before(line_start, 3)
        if self.kind == MARKDOWN:
            window = self.low[max(0, line_start - 4000) : line_start]
            heading = window.rfind(b"\n#")
            if heading >= 0:
                end = window.find(b"\n", heading + 1)
                before = window[heading + 1 : end if end >= 0 else None] + b"\n" + before
        return before

    def _hit(self, trigger: str, position: int, match_end: int, start: int, end: int) -> Hit:
        low = self.low

        def block() -> bytes:
            if self.kind != MARKDOWN:
                return low
            region = self.region_of(position)
            return low[region[0] : region[1]] if region else low[start:end]

        return Hit(
            trigger=trigger,
            path=self.path,
            line=low[start:end],
            raw=self.data[start:end],
            start=position - start,
            end=match_end - start,
            block=block,
            preceding=lambda: self._preceding(start),
            ahead=lambda n: low[position : position + n],
        )

    def _report(
        self, rule: Rule, position: int, raw_line: bytes, column: int, secrets: tuple[str, ...]
    ) -> None:
        self._counts[rule.id] = self._counts.get(rule.id, 0) + 1
        text = raw_line.decode("utf-8", "replace")
        # the column in characters, near enough for centring the excerpt
        column = len(raw_line[:column].decode("utf-8", "replace"))
        line = self.line_number(position)
        if rule.id.startswith("secrets.") and rule is not _CONFIG_VALUE:
            self._secret_lines.add(line)
        self.out.append(
            Finding(
                rule=rule.id,
                severity=rule.severity,
                file=self.path,
                line=line,
                excerpt=excerpt(text, column, secrets=secrets),
                message=rule.message,
            )
        )

    def _line_at(self, position: int) -> tuple[int, bytes]:
        start, end = self.line_bounds(position)
        if end - start > MAX_LINE:
            start = max(start, position - LONG_LINE_WINDOW // 2)
            end = min(end, start + LONG_LINE_WINDOW)
        return position - start, self.data[start:end]

    def _invisible_characters(self) -> None:
        """Bidi controls and zero-width characters (one pass), tag characters when present."""
        bidi = RULES_BY_ID["injection.bidi_control"]
        zero_width = RULES_BY_ID["injection.zero_width"]
        tags = RULES_BY_ID["injection.tag_characters"]
        with_zero_width = self.kind in zero_width.kinds
        lines: dict[str, set[int]] = {}
        data = self.data
        for match in INVISIBLE.finditer(data):
            position = match.start()
            char = match.group()
            if BIDI_CONTROL.fullmatch(char):
                rule = bidi
            elif not with_zero_width or (
                char == ZWJ and _EMOJI_BEFORE_ZWJ.search(data[max(0, position - 4) : position])
            ):
                continue
            else:
                rule = zero_width
            self._report_once(rule, position, lines)
        if b"\xf3\xa0" in data:
            for match in TAG_CHARACTERS.finditer(data):
                if not _in_flag(data, match.start()):
                    self._report_once(tags, match.start(), lines)

    def _report_once(self, rule: Rule, position: int, lines: dict[str, set[int]]) -> None:
        """One finding per line for a character rule."""
        seen = lines.setdefault(rule.id, set())
        number = self.line_number(position)
        if number in seen or len(seen) >= MAX_FINDINGS_PER_RULE:
            return
        seen.add(number)
        column, raw = self._line_at(position)
        self._report(rule, position, raw, column, ())

    def _config_secrets(self) -> None:
        """Secret-named keys with literal values: only the lines that name such a key are parsed."""
        seen: set[int] = set()
        for word in CONFIG_SECRET_WORDS:
            index = self.low.find(word)
            while index >= 0 and len(seen) < MAX_HITS_PER_FILE:
                start, end = self.line_bounds(index)
                if end - start > MAX_LINE:
                    start, end = max(start, index - 100), min(end, index + 400)
                if start not in seen:
                    seen.add(start)
                    self._config_line(start, end)
                index = self.low.find(word, max(end, index + 1))

    def _config_line(self, start: int, end: int) -> None:
        """One finding for the secret values of one line, every one of them masked in it."""
        if self._counts.get(_CONFIG_VALUE.id, 0) >= MAX_FINDINGS_PER_RULE:
            return
        found = [
            match
            for match in CONFIG_SECRET.finditer(self.data, start, end)
            if config_secret_value(match.group("key"), match.group("value"))
        ]
        # a known token format on the line was reported by its own, more telling rule
        if not found or self.line_number(found[0].start()) in self._secret_lines:
            return
        column, raw = self._line_at(found[0].start("value"))
        values = tuple(m.group("value").decode("utf-8", "replace") for m in found)
        self._report(_CONFIG_VALUE, found[0].start(), raw, column, values)


def _in_flag(data: bytes, position: int) -> bool:
    """Tag characters that follow U+1F3F4 (black flag) spell a subdivision flag's emoji."""
    cursor = position
    while cursor >= 4 and TAG_CHARACTERS.match(data, cursor - 4):
        cursor -= 4
    return data[max(0, cursor - 4) : cursor] == _BLACK_FLAG


def _markdown_code_regions(low: bytes) -> list[tuple[int, int]]:
    regions: list[tuple[int, int]] = []
    bom = 3 if low.startswith(b"\xef\xbb\xbf") else 0
    if low.startswith(b"---", bom):  # YAML frontmatter
        close = low.find(b"\n---", bom + 3)
        if close > 0:
            regions.append((0, close + 4))
    opening: tuple[bytes, int, int] | None = None  # fence characters, run length, content start
    for position in _fence_positions(low):
        line_start = low.rfind(b"\n", 0, position) + 1
        if low[line_start:position].strip(b" \t>-*") != b"":
            continue  # not at the start of its line
        char = low[position : position + 1]
        run = position
        while low[run : run + 1] == char:
            run += 1
        line_end = low.find(b"\n", run)
        line_end = len(low) if line_end < 0 else line_end
        if opening is None:
            opening = (char, run - position, line_end + 1)
        elif char == opening[0] and run - position >= opening[1] and not low[run:line_end].strip():
            regions.append((opening[2], line_start))
            opening = None
    if opening is not None:
        regions.append((opening[2], len(low)))
    return regions


def _fence_positions(low: bytes) -> Iterator[int]:
    positions: list[int] = []
    for marker in (b"```", b"~~~"):
        index = low.find(marker)
        while index >= 0:
            positions.append(index)
            # skip the rest of this run of fence characters
            index = low.find(marker, index + len(marker))
            while index >= 0 and low[index - 1 : index] == marker[:1]:
                index = low.find(marker, index + 1)
    positions.sort()
    yield from positions
