"""The span tree of one source's scan, built after the fact from its recorded phases (SPEC §7).

A source's steps run in different ops and threads (possibly processes), so no live span can follow
it. Instead each step of lib/scan/ records its wall-clock start and end (`Phase`) on the
source's `ScanCost`, which travels with it from op to op, and `ScanTracer.emit` builds the whole
tree when the rows are written, with explicit start and end times:

    skillmeat.scan                      one trace per source and run
      skillmeat.resolve_head            head commit over the git protocol
      skillmeat.strategy_selection
      skillmeat.clone                   one per attempt
      skillmeat.extraction              (on the clone path)
      skillmeat.api_fallback            the GitHub API path, whether chosen or a fallback
        skillmeat.extraction            (raw reads happen while extracting)
      skillmeat.db_write

Every attribute, status and event text goes through `core.secrets.redact` first.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from skillmeat_pipeline.lib.core.secrets import Secret, redact
from skillmeat_pipeline.lib.scan.cost import Phase
from skillmeat_pipeline.lib.scan.outcomes import Failed, SourceOutcome

SPAN_SCAN = "skillmeat.scan"
PHASE_SPAN_NAMES = {
    "resolve": "skillmeat.resolve_head",
    "select": "skillmeat.strategy_selection",
    "clone": "skillmeat.clone",
    "extract": "skillmeat.extraction",
    "api": "skillmeat.api_fallback",
    "write": "skillmeat.db_write",
}


class ScanTracer:
    """Emits the span tree of a scan on `tracer`, with `secrets` redacted from every text."""

    def __init__(self, tracer: Tracer, secrets: Iterable[Secret | str]) -> None:
        self._tracer = tracer
        self._secrets = tuple(secrets)

    def emit(self, result: SourceOutcome, run_id: str | None) -> str | None:
        """The spans of `result`; its trace id (hex) when the trace is sampled."""
        cost = result.cost
        strategy = result.strategy.value if result.strategy else "none"
        common: dict[str, AttributeValue] = {
            "dagster.partition_key": result.source_key,
            "strategy": strategy,
        }
        if run_id:
            common["dagster.run_id"] = run_id
        start_ns = min((p.start_ns for p in cost.phases), default=time.time_ns())
        end_ns = start_ns + total_ns(result)
        root_attributes: dict[str, Any] = {
            **common,
            "scan_status": result.status.value,
            "artifact_count": result.artifact_count,
            "patterns_count": 0 if isinstance(result, Failed) else len(result.target.patterns),
            "api_calls": cost.api_calls,
            "raw_reads": cost.raw_reads,
            "bytes_fetched": cost.bytes_fetched,
            "commit_sha": result.commit_sha or "",
            "duration_ms": round((end_ns - start_ns) / 1e6, 3),
        }
        if result.fallback_reason:
            root_attributes["fallback_reason"] = result.fallback_reason
        root = self._tracer.start_span(
            SPAN_SCAN,
            # a root of its own, whatever span the calling thread has open
            context=Context(),
            kind=SpanKind.INTERNAL,
            attributes=self._clean(root_attributes),
            start_time=start_ns,
        )
        if isinstance(result, Failed):
            self._fail(root, result.reason, end_ns)
        spans: list[Span] = []
        for phase in cost.phases:
            parent = spans[phase.parent] if phase.parent is not None else root
            spans.append(self._phase_span(phase, parent, common, result))
        for phase, span in zip(reversed(cost.phases), reversed(spans), strict=True):
            span.end(end_time=phase.end_ns)
        root.end(end_time=end_ns)
        context = root.get_span_context()
        if not (context.is_valid and context.trace_flags.sampled):
            return None
        return trace.format_trace_id(context.trace_id)

    def _phase_span(
        self,
        phase: Phase,
        parent: Span,
        common: Mapping[str, AttributeValue],
        result: SourceOutcome,
    ) -> Span:
        end_ns = phase.end_ns
        attributes: dict[str, Any] = {
            **common,
            **phase.attributes,
            "duration_ms": round((end_ns - phase.start_ns) / 1e6, 3),
        }
        if phase.name == "api" and result.fallback_reason:
            attributes["fallback_reason"] = result.fallback_reason
        span = self._tracer.start_span(
            PHASE_SPAN_NAMES.get(phase.name, f"skillmeat.{phase.name}"),
            context=trace.set_span_in_context(parent),
            kind=SpanKind.INTERNAL,
            attributes=self._clean(attributes),
            start_time=phase.start_ns,
        )
        for event in phase.events:
            span.add_event(event.name, self._clean(event.attributes), timestamp=event.at_ns)
        if phase.error is not None:
            self._fail(span, phase.error, end_ns)
        return span

    def _fail(self, span: Span, message: str, at_ns: int) -> None:
        message = redact(message, self._secrets)
        span.set_status(Status(StatusCode.ERROR, message))
        span.add_event("exception", {"exception.message": message}, timestamp=at_ns)

    def _clean(self, attributes: Mapping[str, Any]) -> dict[str, AttributeValue]:
        clean: dict[str, AttributeValue] = {}
        for key, value in attributes.items():
            if value is None:
                continue
            if isinstance(value, str):
                value = redact(value, self._secrets)
            elif not isinstance(value, bool | int | float):
                value = redact(str(value), self._secrets)
            clean[key] = value
        return clean


def total_ns(result: SourceOutcome) -> int:
    """From the scan's first step to the end of its last (the write, once it is recorded)."""
    phases = result.cost.phases
    if not phases:
        return 0
    return max(0, max(p.end_ns for p in phases) - min(p.start_ns for p in phases))
