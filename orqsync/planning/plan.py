"""make_plan(desired, state) -> Plan: the pure diff and the requests that carry it out.

Per span: removes first, then sets; at most ten items a request (a remove: at most ten keys
and ten corrected results); the fewest requests possible. Corrections of evaluator results
are keyed beside annotations (model.correction_key) and share their requests.
Sets that share metadata share requests (metadata is per request). A changed value or changed
metadata is a set, because the API replaces a key's value. Only keys orqsync owns are removed.
No I/O, no clock, no randomness: the same inputs give the same plan.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import zip_longest
from operator import attrgetter
from typing import NamedTuple, TypeVar, cast

from orqsync.model import (
    Annotation,
    Metadata,
    Operation,
    QueueRef,
    Review,
    SpanId,
    Value,
    parent_id,
    same_value,
)
from orqsync.source.desired import DesiredState, Feedback, owned
from orqsync.source.reviews import Movement, Unresolved
from orqsync.state.model import Applied, State, feedback_pairs, sorted_spans

BATCH_LIMIT = 10

# The operations of requests, by their short names (model.Operation).
ANNOTATE = Operation.ANNOTATE
REMOVE = Operation.REMOVE
FEEDBACK_PUT = Operation.FEEDBACK_PUT
FEEDBACK_REMOVE = Operation.FEEDBACK_REMOVE

CREATE = "create"
UPDATE = "update"
DELETE = "delete"


class Request(NamedTuple):
    """One API request. `items` are (key, value) to set; `keys` are keys to remove; a
    correction's key among them names the evaluator result it corrects (wire.py sends it as
    the API's second item shape, or in `parent_annotation_ids`).

    Requests and changes are named tuples, not dataclasses: a big plan makes hundreds of
    thousands, and a tuple is built three times faster. They are just as immutable.
    """

    kind: Operation
    trace_id: str
    span_id: str = ""
    items: tuple[tuple[str, Value], ...] = ()
    keys: tuple[str, ...] = ()
    metadata: Metadata = ()
    feedback: tuple[tuple[str, object], ...] = ()  # the Feedback body, sorted pairs
    queue: QueueRef | None = None  # a request on an annotation queue (planning/queues.py)
    # How some of `items` were resolved from reviewers' votes (reviews): (key, review); the
    # state records it. Never sent.
    reviews: tuple[tuple[str, Review], ...] = ()

    @property
    def chain(self) -> tuple[str, ...]:
        """Requests of one chain run in order: one span, one feedback record, or one
        annotation queue."""
        if self.queue is not None:
            return ("queue", self.queue.name)
        if self.kind in (FEEDBACK_PUT, FEEDBACK_REMOVE):
            return ("feedback", str(dict(self.feedback)["id"]))
        return ("span", self.trace_id, self.span_id)


class Change(NamedTuple):
    """One (trace, span, key) or feedback record that differs, for people to read."""

    action: str  # create | update | delete
    trace_id: str
    span_id: str
    key: str
    old: Value | None = None
    new: Value | None = None
    old_metadata: Metadata = ()
    new_metadata: Metadata = ()
    # Where the desired value is declared; for a removal, where the span's other annotations
    # are (its first one), empty when the span is gone from the repository.
    path: str = ""
    line: int = 0
    feedback: bool = False

    @property
    def metadata_only(self) -> bool:
        return self.action == UPDATE and same_value(self.old, self.new)


class QueueChange(NamedTuple):
    """One annotation queue that differs (planning/queues.py), for people to read."""

    action: str  # create | adopt | update | delete | members (only spans enter or leave)
    name: str
    id: str = ""  # orq.ai's; "" for a queue the plan creates
    fields: tuple[tuple[str, object, object], ...] = ()  # (field, old, new) of those that change
    entering: tuple[SpanId, ...] = ()
    leaving: tuple[SpanId, ...] = ()
    was: str = ""  # the name the state knew it by, for a rename
    path: str = ""
    line: int = 0


_ACTION = attrgetter("action")


@dataclass(frozen=True, slots=True)
class Plan:
    """The changes, and the requests in the order they must be sent."""

    changes: tuple[Change, ...]
    requests: tuple[Request, ...]
    queues: tuple[QueueChange, ...] = ()
    # keys whose reviewers' votes do not resolve (reviews): not planned, listed for review
    unresolved: tuple[Unresolved, ...] = ()
    # and how many more such keys the files an incremental plan left out name
    unresolved_left_out: int = 0
    # how the changes move agreement between reviewers (plan --base REV), for the comment
    agreement: Movement | None = None
    # Changes by action, counted once: a big plan's renderers ask for them many times.
    counts: Counter[str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "counts", Counter(map(_ACTION, self.changes)))

    @property
    def empty(self) -> bool:
        return not self.requests

    def count(self, action: str) -> int:
        return self.counts[action]

    @property
    def removals(self) -> int:
        """What the removal budget counts: labels removed, and queues deleted."""
        return self.count(DELETE) + sum(1 for queue in self.queues if queue.action == DELETE)


_T = TypeVar("_T")


def _chunks(keys: list[_T], size: int = BATCH_LIMIT) -> Iterator[list[_T]]:
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


def removal_batches(keys: list[str]) -> Iterator[list[str]]:
    """Keys to remove, ten keys and ten corrected results a request: the two lists of a
    delete have a limit each (docs/api-contract.md, section 3.2)."""
    parents = [key for key in keys if parent_id(key) is not None]
    if not parents:
        yield from _chunks(keys)
        return
    plain = [key for key in keys if parent_id(key) is None]
    empty: list[str] = []
    for batch, corrected in zip_longest(_chunks(plain), _chunks(parents), fillvalue=empty):
        yield batch + corrected


def plan_span(
    trace_id: str,
    span_id: str,
    desired: dict[str, Annotation],
    applied: dict[str, Applied],
    owned_keys: tuple[str, ...],
) -> tuple[list[Change], list[Request]]:
    """The changes and requests of one span."""
    changes: list[Change] = []
    requests: list[Request] = []
    if applied:
        removes = sorted(key for key in applied if key not in desired and owned(key, owned_keys))
        line, path = min(((a.line, a.path) for a in desired.values()), default=(0, ""))
        for key in removes:
            old = applied[key]
            change = Change(DELETE, trace_id, span_id, key, old.value, None, old.metadata)
            changes.append(change._replace(path=path, line=line) if path else change)
        for batch in removal_batches(removes):
            requests.append(Request(REMOVE, trace_id, span_id, (), tuple(batch)))
    groups: dict[Metadata, list[tuple[str, Value]]] = {}
    for key in sorted(desired):
        want = desired[key]
        have = applied.get(key) if applied else None
        if have is None:
            changes.append(
                Change(
                    CREATE,
                    trace_id,
                    span_id,
                    key,
                    None,
                    want.value,
                    (),
                    want.metadata,
                    want.path,
                    want.line,
                )
            )
        elif same_value(have.value, want.value) and have.metadata == want.metadata:
            continue
        else:
            changes.append(
                Change(
                    UPDATE,
                    trace_id,
                    span_id,
                    key,
                    have.value,
                    want.value,
                    have.metadata,
                    want.metadata,
                    want.path,
                    want.line,
                )
            )
        group = groups.get(want.metadata)
        if group is None:
            group = groups[want.metadata] = []
        group.append((key, want.value))
    for metadata in sorted(groups) if len(groups) > 1 else groups:
        for items in _chunks(groups[metadata]):
            requests.append(Request(ANNOTATE, trace_id, span_id, tuple(items), (), metadata))
    return changes, requests


def _feedback_changes(
    desired: dict[str, Feedback], state: State
) -> Iterable[tuple[Change, Request]]:
    for record_id in sorted(set(desired) | set(state.feedback)):
        want = desired.get(record_id)
        have = state.feedback.get(record_id)
        if want is None:
            assert have is not None
            body = dict(have.body)
            remove = feedback_pairs(
                {"id": record_id, "trace_id": body["trace_id"], "product": body["product"]}
            )
            yield (
                Change(
                    DELETE,
                    str(body["trace_id"]),
                    "",
                    str(body["property"]),
                    old=cast("Value", body["value"]),  # a value orqsync sent
                    feedback=True,
                ),
                Request(FEEDBACK_REMOVE, str(body["trace_id"]), feedback=remove),
            )
            continue
        body_pairs = feedback_pairs(want.body())
        if have is not None and have.body == body_pairs:
            continue
        old_value = None if have is None else have.get("value")
        yield (
            Change(
                CREATE if have is None else UPDATE,
                want.trace_id,
                "",
                want.property,
                old=cast("Value | None", old_value),  # a value orqsync sent
                new=want.value,
                path=want.path,
                line=want.line,
                feedback=True,
            ),
            Request(FEEDBACK_PUT, want.trace_id, feedback=body_pairs),
        )


def make_plan(desired: DesiredState, state: State, owned_keys: tuple[str, ...] = ("*",)) -> Plan:
    """The diff of `desired` against `state`, with the fewest requests that carry it out."""
    changes: list[Change] = []
    requests: list[Request] = []
    no_annotations: dict[str, Annotation] = {}
    no_applied: dict[str, Applied] = {}
    wanted = desired.spans
    held = state.spans
    spans = wanted.keys() | held.keys() if held else wanted
    for span in sorted_spans(spans):
        want = wanted.get(span, no_annotations)
        have = held.get(span, no_applied)
        if not have and _only_creations(span, want, changes, requests):
            continue
        if have and _in_sync(want, have):
            continue
        span_changes, span_requests = plan_span(span[0], span[1], want, have, owned_keys)
        changes.extend(span_changes)
        requests.extend(span_requests)
    for change, request in _feedback_changes(desired.feedback, state):
        changes.append(change)
        requests.append(request)
    if desired.reviewed:
        requests = with_reviews(requests, desired.reviewed)
    return Plan(tuple(changes), tuple(requests))


def with_reviews(
    requests: Iterable[Request], reviewed: dict[SpanId, dict[str, Review]]
) -> list[Request]:
    """The requests, each set carrying how its resolved values were resolved."""
    carried = []
    for request in requests:
        by_key = (
            reviewed.get((request.trace_id, request.span_id)) if request.kind == ANNOTATE else None
        )
        if by_key:
            reviews = tuple((key, by_key[key]) for key, _ in request.items if key in by_key)
            request = request._replace(reviews=reviews)
        carried.append(request)
    return carried


# The two common cases of a big plan, a span with nothing applied yet and a span in sync,
# have their own short paths; they give what plan_span gives (the property tests hold both).
# tuple.__new__ builds the named tuples without their Python-level constructors.
_new = tuple.__new__


def _only_creations(
    span: SpanId, want: dict[str, Annotation], changes: list[Change], requests: list[Request]
) -> bool:
    """Plan a span with nothing applied, when all its values share metadata; else False."""
    chosen = sorted(want.items())  # keys are distinct: the annotations are never compared
    if not chosen:
        return True
    metadata = chosen[0][1].metadata
    for _, got in chosen:
        # Metadata tuples are shared (desired.py keeps one of each), so `is` mostly decides.
        if got.metadata is not metadata and got.metadata != metadata:
            return False
    trace_id, span_id = span
    changes.extend(
        [
            _new(
                Change,
                (
                    CREATE,
                    trace_id,
                    span_id,
                    key,
                    None,
                    got.value,
                    (),
                    metadata,
                    got.path,
                    got.line,
                    False,
                ),
            )
            for key, got in chosen
        ]
    )
    items = tuple([(key, got.value) for key, got in chosen])
    if len(items) <= BATCH_LIMIT:
        requests.append(
            _new(Request, (ANNOTATE, trace_id, span_id, items, (), metadata, (), None, ()))
        )
        return True
    for start in range(0, len(items), BATCH_LIMIT):
        batch = items[start : start + BATCH_LIMIT]
        requests.append(
            _new(Request, (ANNOTATE, trace_id, span_id, batch, (), metadata, (), None, ()))
        )
    return True


def _in_sync(want: dict[str, Annotation], have: dict[str, Applied]) -> bool:
    """True when the span holds exactly the desired values and metadata (nothing to do)."""
    if want.keys() != have.keys():
        return False
    for key, annotation in want.items():
        applied = have[key]
        if applied.metadata != annotation.metadata or not same_value(
            applied.value, annotation.value
        ):
            return False
    return True
