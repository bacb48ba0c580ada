"""Step 3, the clone (`clone`, `clone_batch`, `clone_together`): one bare depth-1 clone of each
repository commit a batch needs, every plan sharing it detected on it, transient failures retried;
a GitHub source whose clone keeps failing falls back to the API path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import replace

from skillmeat_pipeline.lib.core.models import ArtifactKey, CatalogEntry
from skillmeat_pipeline.lib.core.retry import call_with_retries
from skillmeat_pipeline.lib.core.strategy import Strategy
from skillmeat_pipeline.lib.core.untrusted import TreeTooLargeError
from skillmeat_pipeline.lib.fetch.git.clone import clone_source
from skillmeat_pipeline.lib.fetch.git.errors import CloneError
from skillmeat_pipeline.lib.scan.cost import Timeline
from skillmeat_pipeline.lib.scan.events import FAILURE_NEXT, FALLBACK_NEXT, log_event
from skillmeat_pipeline.lib.scan.outcomes import Failed, FellBack, Scanned, SourcePlan, failed
from skillmeat_pipeline.lib.scan.settings import Fetchers
from skillmeat_pipeline.lib.scan.tree_scan import (
    failed_too_large,
    index_fetched_tree,
    pinned_commit,
)

logger = logging.getLogger(__name__)


def clone(
    plan: SourcePlan,
    fetchers: Fetchers,
    previous: Mapping[ArtifactKey, CatalogEntry],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Scanned | FellBack | Failed:
    """Bare depth-1 clone, detection and extraction; transient failures retried with backoff.

    A GitHub source whose clone keeps failing falls back to the API path; any other source fails.
    """
    return clone_together([plan], fetchers, lambda _key: previous, sleep=sleep)[0]


def fetch_key(plan: SourcePlan) -> tuple[str, str]:
    """What a clone fetches: the repository and the commit (its head, or the plan's own key
    when the head is unknown, so that such plans are never merged)."""
    source = plan.source
    if plan.head is None:
        return (source.url, f"?{plan.key}")
    # GitHub names are case-insensitive; other servers' paths may not be
    where = source.github.lower() if source.github else source.url.rstrip("/").removesuffix(".git")
    return (where, plan.head.commit_sha)


def clone_batch(
    plans: Sequence[SourcePlan],
    fetchers: Fetchers,
    previous_of: Callable[[str], Mapping[ArtifactKey, CatalogEntry]],
    map_bounded: Callable[
        [Callable[[list[SourcePlan]], list[Scanned | FellBack | Failed]], list[list[SourcePlan]]],
        list[list[Scanned | FellBack | Failed]],
    ],
) -> list[Scanned | FellBack | Failed]:
    """Every plan of a batch cloned, each repository commit once (SPEC §2.1): the plans that
    share one (many git-subdir entries into one repository) are detected on one clone.
    Outcomes come back in the order of `plans`."""
    groups: dict[tuple[str, str], list[SourcePlan]] = {}
    for plan in plans:
        groups.setdefault(fetch_key(plan), []).append(plan)
    ended = map_bounded(
        lambda group: clone_together(group, fetchers, previous_of), list(groups.values())
    )
    by_key = {
        (o.key if isinstance(o, FellBack) else o.source_key): o for group in ended for o in group
    }
    return [by_key[plan.key] for plan in plans]


def clone_together(
    plans: Sequence[SourcePlan],
    fetchers: Fetchers,
    previous_of: Callable[[str], Mapping[ArtifactKey, CatalogEntry]],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Scanned | FellBack | Failed]:
    """One clone of the repository commit the `plans` share, each plan detected on it.

    A plan that follows a ref leads (a server may refuse fetching a commit by id; a pinned plan
    leads only a group of pins). The leader pays the clone (its cost and metadata show the fetch);
    the others record a shared clone of no bytes. A failure ends every plan the same way.
    """
    assert plans and all(p.selection is not None for p in plans), "route the plans first"
    first = next((p for p in plans if pinned_commit(p.source) is None), plans[0])
    source = first.source
    pin = pinned_commit(source)
    ref = first.head.ref_name if first.head and pin is None else source.ref
    timelines = {plan.key: Timeline(plan.cost) for plan in plans}

    def strategy_of(plan: SourcePlan) -> Strategy:
        assert plan.selection is not None
        if plan.selection.fallback or plan.selection.selected_strategy is Strategy.API:
            return Strategy.SPARSE_MANIFEST
        return plan.selection.selected_strategy

    def attempt() -> list[Scanned]:
        with ExitStack() as clone_dir:  # the clone's private directory, removed on every path
            with timelines[first.key].phase("clone") as phase:
                cloned = clone_dir.enter_context(
                    clone_source(
                        source.url,
                        ref=ref,
                        token=fetchers.token_for(source),
                        settings=fetchers.settings.clone,
                        commit=pin,
                    )
                )
                phase.set(commit_sha=cloned.commit_sha, bytes_fetched=cloned.bytes_fetched)
            timelines[first.key].spend(clone_ms=cloned.clone_ms, bytes_fetched=cloned.bytes_fetched)
            for plan in plans:
                if plan is first:
                    continue
                with timelines[plan.key].phase("clone") as phase:
                    phase.set(commit_sha=cloned.commit_sha, shared_with=first.key)
            return [
                index_fetched_tree(
                    plan,
                    timelines[plan.key],
                    strategy_of(plan),
                    cloned.snapshot,
                    previous_of(plan.key),
                )
                for plan in plans
            ]

    def on_retry(number: int, exc: BaseException, wait: float) -> None:
        for plan in plans:
            log_event(
                logger,
                logging.WARNING,
                f"source {plan.key}: clone failed ({exc}); retry {number} in {wait:.1f} s",
                source=plan.key,
                event="clone_retry",
                retry=number,
                wait_s=round(wait, 1),
            )

    try:
        scanned = call_with_retries(
            attempt,
            policy=fetchers.settings.clone_retries,
            is_transient=lambda exc: isinstance(exc, CloneError) and exc.transient,
            on_retry=on_retry,
            sleep=sleep,
        )
    except TreeTooLargeError as exc:
        # the same tree over the API would be as large: no fallback
        return [failed_too_large(replace(p, cost=timelines[p.key].cost()), exc) for p in plans]
    except CloneError as exc:
        return [_clone_failed(replace(p, cost=timelines[p.key].cost()), exc) for p in plans]
    return [replace(o, cost=timelines[o.source_key].cost()) for o in scanned]


def _clone_failed(spent: SourcePlan, exc: CloneError) -> FellBack | Failed:
    if spent.source.github:
        reason = f"clone failed ({exc.reason}): {exc}"
        log_event(
            logger,
            logging.WARNING,
            f"source {spent.key}: {reason}; {FALLBACK_NEXT}",
            source=spent.key,
            event="clone_fallback",
            reason=exc.reason.value,
        )
        return FellBack(replace(spent, fallback_reason=reason), reason)
    log_event(
        logger,
        logging.ERROR,
        f"source {spent.key}: clone failed and it has no API fallback: {exc}; {FAILURE_NEXT}",
        source=spent.key,
        event="clone_failed",
        reason=exc.reason.value,
    )
    return failed(spent, str(exc))
