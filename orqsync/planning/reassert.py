"""make_reassertion(state) -> Reassertion: the requests that assert the recorded labels again.

orq.ai has no endpoint that lists a span's labels (docs/api-contract.md, section 3.7), so a
plan compares the repository with the state file only: a label edited in orq.ai's UI is a
drift nothing sees. A reassertion is the answer of Argo CD's self-heal: send every owned label
the state records once more (writes replace by key) and delete again the keys orqsync removed
(the state's `removed`). It runs only when the repository and the state agree (the caller
checks that the plan is empty), so the state's labels are the repository's.

Spans go oldest first: never reasserted (by id), then by the time they last were. With a
budget of requests, whole spans are taken in that order while they fit, so that runs with a
fixed budget reassert every span once before any twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from orqsync.errors import OrqsyncError
from orqsync.model import Annotation, SpanId
from orqsync.planning.plan import REMOVE, Plan, Request, plan_span, removal_batches
from orqsync.source.desired import owned
from orqsync.state.model import State, sorted_spans


@dataclass(frozen=True, slots=True)
class Reassertion:
    """The requests of a reassertion, and what they assert."""

    plan: Plan  # requests only: a reassertion changes no label
    spans: tuple[SpanId, ...]  # the spans it sends in full, oldest assertion first
    labels: int  # labels sent again
    removals: int  # removed keys deleted again
    left: int  # spans a budget left for a later run
    state: State  # what it was made from (parsed once: a big state takes a second)
    sizes: tuple[tuple[int, int], ...] = ()  # of each span: labels sent, removed keys deleted


def oldest_first(state: State) -> list[SpanId]:
    """Every span the state records labels or removals of: never reasserted first (by id),
    then by when they last were."""
    spans = sorted_spans(state.spans.keys() | state.removed.keys())
    asserted = state.asserted
    return sorted(spans, key=lambda span: asserted.get(span, ""))  # stable: ids within a time


def make_reassertion(
    state: State,
    owned_keys: tuple[str, ...] = ("*",),
    max_requests: int | None = None,
    defined: Callable[[str], bool] = lambda key: True,
) -> Reassertion:
    """The reassertion of `state`'s owned labels and removals; with `max_requests`, the
    oldest spans whose requests fit in it (an error when not even the oldest one does: it
    would wait forever). A removed key that is no longer `defined` is not deleted again
    (orq.ai would answer 404 for a key it does not know)."""
    requests: list[Request] = []
    spans: list[SpanId] = []
    sizes: list[tuple[int, int]] = []
    left = 0
    for span in oldest_first(state):
        span_requests, sent, removed = _span_requests(span, state, owned_keys, defined)
        if not span_requests:
            continue  # nothing orqsync owns: nothing to assert
        if left or (max_requests is not None and len(requests) + len(span_requests) > max_requests):
            if not spans and max_requests is not None:
                raise OrqsyncError(
                    f"span {'/'.join(span)}, the next to reassert, needs "
                    f"{len(span_requests)} requests, more than --max-requests {max_requests}",
                    f"raise --max-requests to {len(span_requests)} or more",
                )
            left += 1
            continue
        requests.extend(span_requests)
        spans.append(span)
        sizes.append((sent, removed))
    labels = sum(sent for sent, _ in sizes)
    removals = sum(removed for _, removed in sizes)
    return Reassertion(
        Plan((), tuple(requests)), tuple(spans), labels, removals, left, state, tuple(sizes)
    )


def _span_requests(
    span: SpanId, state: State, owned_keys: tuple[str, ...], defined: Callable[[str], bool]
) -> tuple[list[Request], int, int]:
    """One span's requests (removes first, then sets grouped by metadata, as a plan sends
    them), with how many labels and removed keys they carry. A key the state holds is never
    deleted, whatever the record of removals says."""
    trace_id, span_id = span
    labelled = state.spans.get(span, {})
    removed = [
        key
        for key in state.removed.get(span, ())
        if owned(key, owned_keys) and key not in labelled and defined(key)
    ]
    requests = [
        Request(REMOVE, trace_id, span_id, (), tuple(batch)) for batch in removal_batches(removed)
    ]
    held = {
        key: Annotation(applied.value, applied.metadata, "", 0)
        for key, applied in state.spans.get(span, {}).items()
        if owned(key, owned_keys)
    }
    _, sets = plan_span(trace_id, span_id, held, {}, owned_keys)
    return requests + sets, len(held), len(removed)
