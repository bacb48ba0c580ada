"""What a scan spent, and its timeline: immutable values that travel with a source's outcome.

A source's steps run in different ops and threads, so its timeline travels with it as data and its
whole span tree is emitted when its rows are written (`lib/observability`). Each step records its
phases on a private `Timeline` and hands on a new `ScanCost`; nothing is shared or changed later.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

AttributeValue = str | int | float | bool | None  # None: not known, left out of spans
Attributes = Mapping[str, AttributeValue]


@dataclass(frozen=True, slots=True)
class PhaseEvent:
    """Something that happened during a phase (a rate-limit wait): a span event."""

    at_ns: int
    name: str
    attributes: Attributes


@dataclass(frozen=True, slots=True)
class Phase:
    """One step of a scan on the wall clock (`time.time_ns()`)."""

    name: str  # resolve, select, clone, extract, api, write
    start_ns: int
    end_ns: int
    parent: int | None = None  # index of the enclosing phase in `ScanCost.phases`
    error: str | None = None
    attributes: Attributes = field(default_factory=dict)
    events: tuple[PhaseEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class ScanCost:
    """What a scan spent. The numbers are Dagster metadata values of the partition (SPEC §7);
    `phases` (its timeline) and `responses` (GitHub requests by status class) feed telemetry."""

    api_calls: int = 0
    raw_reads: int = 0
    archive_bytes: int = 0  # repository archive bytes received on the API path, in bytes_fetched
    bytes_fetched: int = 0
    clone_ms: int = 0
    extract_ms: int = 0  # detection + extraction
    findings_ms: int = 0  # the trust rules: reading the artifacts' files and matching them
    phases: tuple[Phase, ...] = ()
    responses: Mapping[tuple[str, str], int] = field(default_factory=dict)

    def busy_ns(self) -> int:
        """Time spent on this source itself: its top-level steps, not its waits between ops.

        In a batch every source waits for the whole batch at each op, so wall time since the
        start would give every source of a run the same total.
        """
        return sum(p.end_ns - p.start_ns for p in self.phases if p.parent is None)

    def plus(
        self,
        *,
        api_calls: int = 0,
        raw_reads: int = 0,
        archive_bytes: int = 0,
        bytes_fetched: int = 0,
        clone_ms: int = 0,
        extract_ms: int = 0,
        findings_ms: int = 0,
        responses: Mapping[tuple[str, str], int] | None = None,
    ) -> ScanCost:
        merged = dict(self.responses)
        for key, count in (responses or {}).items():
            merged[key] = merged.get(key, 0) + count
        return replace(
            self,
            api_calls=self.api_calls + api_calls,
            raw_reads=self.raw_reads + raw_reads,
            archive_bytes=self.archive_bytes + archive_bytes,
            bytes_fetched=self.bytes_fetched + bytes_fetched,
            clone_ms=self.clone_ms + clone_ms,
            extract_ms=self.extract_ms + extract_ms,
            findings_ms=self.findings_ms + findings_ms,
            responses=merged,
        )


class OpenPhase:
    """A phase being recorded by one step; becomes a `Phase` when it ends."""

    def __init__(self, name: str, parent: int | None) -> None:
        self.name = name
        self.parent = parent
        self.start_ns = time.time_ns()
        self.attributes: dict[str, AttributeValue] = {}
        self.events: list[PhaseEvent] = []
        self.error: str | None = None

    def set(self, **attributes: AttributeValue) -> None:
        self.attributes.update(attributes)

    def fail(self, error: BaseException | str) -> None:
        self.error = str(error) or type(error).__name__

    def note(self, name: str, **attributes: AttributeValue) -> None:
        self.events.append(PhaseEvent(time.time_ns(), name, dict(attributes)))


class Timeline:
    """The phases one step adds to a source's cost; private to that step, never shared."""

    def __init__(self, cost: ScanCost) -> None:
        self._base = cost
        # by index in the source's phases: a nested phase ends before the phase it is in
        self._phases: dict[int, Phase] = {}
        self._open: list[tuple[int, OpenPhase]] = []
        self._spent: dict[str, Any] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[OpenPhase]:
        """Record a phase inside the innermost one still open; an exception marks it failed."""
        index = len(self._base.phases) + len(self._phases) + len(self._open)
        # phases are numbered in the order they begin
        parent = self._open[-1][0] if self._open else None
        opened = OpenPhase(name, parent)
        self._open.append((index, opened))
        try:
            yield opened
        except BaseException as exc:
            opened.fail(exc)
            raise
        finally:
            self._open.pop()
            self._close(index, opened)

    def _close(self, index: int, opened: OpenPhase) -> None:
        self._phases[index] = Phase(
            name=opened.name,
            start_ns=opened.start_ns,
            end_ns=time.time_ns(),
            parent=opened.parent,
            error=opened.error,
            attributes=dict(opened.attributes),
            events=tuple(opened.events),
        )

    def spend(self, **amounts: Any) -> None:
        """Add to the counters of `ScanCost.plus` (api_calls, clone_ms, responses, ...)."""
        for key, value in amounts.items():
            if key == "responses":
                merged = dict(self._spent.get("responses", {}))
                for status, count in value.items():
                    merged[status] = merged.get(status, 0) + count
                self._spent["responses"] = merged
            else:
                self._spent[key] = self._spent.get(key, 0) + value

    def cost(self) -> ScanCost:
        """The source's cost with this step's phases and spending added."""
        if self._open:
            raise RuntimeError(f"phase {self._open[-1][1].name!r} is still open")
        added = replace(
            self._base,
            phases=self._base.phases + tuple(self._phases[i] for i in sorted(self._phases)),
        )
        return added.plus(**self._spent)
