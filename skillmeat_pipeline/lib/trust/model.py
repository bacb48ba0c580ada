"""What a rule is made of: severities, file kinds and match contexts, the `Hit` a rule's `accept`
sees, and the `Rule` record itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from skillmeat_pipeline.lib.core.findings import Severity
from skillmeat_pipeline.lib.trust.examples import Example

HIGH, MEDIUM, LOW = Severity.HIGH, Severity.MEDIUM, Severity.LOW

# File kinds (by name) and the contexts a match can be in.
MARKDOWN, CODE, CONFIG, PROSE = "markdown", "code", "config", "prose"
ALL_KINDS = frozenset({MARKDOWN, CODE, CONFIG, PROSE})
RUNNABLE_KINDS = frozenset({MARKDOWN, CODE, CONFIG})
IN_CODE = frozenset({"code"})
ANYWHERE = frozenset({"code", "prose"})


@dataclass(slots=True)
class Hit:
    """One trigger match, as a rule's `accept` sees it.

    `line` is the lowercased line (at most 4,000 bytes around the match), `raw` the same bytes as
    written, `start`/`end` the match within them. `block()` gives the lowercased code block around
    the line: the fenced block in markdown, the whole file otherwise. `preceding()` gives the few
    lowercased lines before it and the nearest markdown heading above; `ahead(n)` the next `n`
    lowercased bytes of the file from the match on (for constructs that span lines).
    """

    trigger: str
    path: str
    line: bytes
    raw: bytes
    start: int
    end: int
    block: Callable[[], bytes]
    preceding: Callable[[], bytes]
    ahead: Callable[[int], bytes]
    secrets: list[str] = field(default_factory=list)  # values an excerpt must mask

    @property
    def before(self) -> bytes:
        return self.line[: self.start]

    @property
    def after(self) -> bytes:
        return self.line[self.end :]


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    family: str
    matches: str  # what it matches, for the rules document
    message: str  # what a person should know or do
    why: str  # why it matters
    positives: tuple[Example, ...]
    negatives: tuple[Example, ...]
    triggers: tuple[str, ...] = ()
    accept: Callable[[Hit], bool] | None = None
    contexts: frozenset[str] = IN_CODE
    kinds: frozenset[str] = ALL_KINDS
    command: bool = True  # skip comments, regex literals and described patterns
    structured: bool = False
