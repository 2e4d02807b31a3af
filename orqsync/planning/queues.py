"""plan_queues: the annotation queues the repository declares against those the state holds.

A queue is matched to its state record by name, by `renamed_from`, or by the `id:` its file
adopts; a match under another name is a rename, which is an update of the same queue (its id
kept). Per queue, in order: create (or, adopting, an update that sets the declared fields),
the update of the fields that differ (the definitions in a request of their own when the
project changes or the queue is new: orq.ai applies `human_review_ids` only in a request
without `project_id`), the spans that leave, the spans that enter, each at most 1,000 a
request. A queue the state holds and no file declares is deleted: the removal budget counts
it. Only spans orqsync added are taken out. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from orqsync.errors import OrqsyncError
from orqsync.model import Operation, QueueRef, SpanId
from orqsync.planning.plan import CREATE, DELETE, UPDATE, QueueChange, Request
from orqsync.source.queues import ITEMS_LIMIT, DesiredQueue
from orqsync.state.model import QueueRecord, sorted_spans

ADOPT = "adopt"
MEMBERS = "members"

Fields = tuple[tuple[str, object], ...]


def _declared(queue: DesiredQueue) -> dict[str, object]:
    return {
        "display_name": queue.display_name,
        "description": queue.description,
        "project_id": queue.project_id,
    }


def _record_fields(record: QueueRecord) -> dict[str, object]:
    return {
        "display_name": record.display_name,
        "description": record.description,
        "project_id": record.project_id,
    }


def match(
    queues: tuple[DesiredQueue, ...], held: Mapping[str, QueueRecord]
) -> dict[str, tuple[str, QueueRecord] | None]:
    """Each declared queue's state record and the name it is held under (None: none).

    A queue is the state's record of its name, of its `renamed_from`, or of the id its file
    adopts. Two of those that name different records, or two files that claim one record, are
    refused: any guess would rename or delete a queue reviewers work in."""
    by_id = {record.id: name for name, record in held.items() if record.id}
    found: dict[str, tuple[str, QueueRecord] | None] = {}
    claimed: dict[str, DesiredQueue] = {}
    for queue in queues:
        where = f"{queue.path}:{queue.line}"
        candidates = [
            name
            for name in (queue.name, queue.renamed_from, by_id.get(queue.id, ""))
            if name and name in held
        ]
        names = list(dict.fromkeys(candidates))
        if len(names) > 1:
            first, second = names[0], names[1]
            raise OrqsyncError(
                f"{where}: the queue {queue.name} is two queues of the state: {first} "
                f"({held[first].id or 'not confirmed'}) and {second} "
                f"({held[second].id or 'not confirmed'})",
                "a rename's new name must be free: delete or rename the other queue in an "
                "apply of its own first, or drop renamed_from / id from this file",
            )
        name = names[0] if names else ""
        record = held.get(name) if name else None
        if record is not None and queue.id and record.id != queue.id:
            raise OrqsyncError(
                f"{where}: the queue {queue.name} adopts id {queue.id}, but the state knows "
                f"it as {record.id or 'a queue whose create is not confirmed'}",
                "to manage the queue orqsync already has, remove the `id:` line; to adopt "
                "another one, give it a file of its own with another name",
            )
        if name:
            other = claimed.get(name)
            if other is not None:
                raise OrqsyncError(
                    f"{where}: the queue {queue.name} and the queue {other.name} "
                    f"({other.path}:{other.line}) both claim the state's queue {name} "
                    f"({held[name].id or 'not confirmed'})",
                    "one queue file per orq.ai queue: remove the renamed_from or id that "
                    "points at it from one of the two",
                )
            claimed[name] = queue
        found[queue.name] = (name, record) if record is not None else None
    return found


def plan_queues(
    queues: tuple[DesiredQueue, ...],
    members: Mapping[str, frozenset[SpanId]],
    held: Mapping[str, QueueRecord],
    keys: Mapping[str, str] | None = None,
) -> tuple[list[QueueChange], list[Request]]:
    """The changes and requests that make orq.ai's queues those declared; `members` holds
    each declared queue's spans (DesiredQueue.members); `keys` names definitions by id, for
    people to read."""
    changes: list[QueueChange] = []
    requests: list[Request] = []
    matched = match(queues, held)
    kept = {found[0] for found in matched.values() if found is not None}
    for queue in sorted(queues, key=lambda q: q.name):
        found = matched[queue.name]
        change, queue_requests = _plan_queue(queue, members[queue.name], found, keys or {})
        if change is not None:
            changes.append(change)
            requests.extend(queue_requests)
    for name in sorted(held.keys() - kept):
        record = held[name]
        changes.append(
            QueueChange(DELETE, name, record.id, leaving=tuple(sorted_spans(record.spans)))
        )
        # a record without an id: the applier looks for the queue its create may have made
        requests.append(Request(Operation.QUEUE_DELETE, "", queue=QueueRef(name, record.id)))
    return changes, requests


def _plan_queue(
    queue: DesiredQueue,
    wanted: frozenset[SpanId],
    found: tuple[str, QueueRecord] | None,
    keys: Mapping[str, str],
) -> tuple[QueueChange | None, list[Request]]:
    name = queue.name
    declared = _declared(queue)
    review_ids = queue.human_review_ids
    requests: list[Request] = []
    if found is None or found[1].unconfirmed:
        # A record without an id: a create that may have made the queue. The create is
        # planned again; the applier looks for the queue in orq.ai before it sends it.
        was = found[0] if found is not None and found[0] != name else ""
        had = frozenset[SpanId]()
        old: dict[str, object] = {}
        old_ids: tuple[str, ...] = ()
        queue_id = queue.id
        if queue_id:
            # adopt: set the declared name and description on the queue as it is. Not its
            # project (wire.py leaves it out of an adopting update): a project_id in an
            # update clears the definitions the queue has, and the plan cannot read which
            # project it is in. The state records the declared one.
            action = ADOPT
            adopt = QueueRef(name, queue_id, tuple(declared.items()), was=was, adopting=True)
            requests.append(Request(Operation.QUEUE_UPDATE, "", queue=adopt))
        else:
            action = CREATE
            fields = tuple(declared.items())
            requests.append(_request(Operation.QUEUE_CREATE, name, "", fields, was))
        if review_ids:
            ids_fields: Fields = (("human_review_ids", review_ids),)
            requests.append(_request(Operation.QUEUE_UPDATE, name, queue_id, ids_fields))
    else:
        held_name, record = found
        was = held_name if held_name != name else ""
        had, queue_id = record.spans | record.foreign, record.id
        old, old_ids = _record_fields(record), record.human_review_ids
        changed = [(k, v) for k, v in declared.items() if old[k] != v]
        moved = any(k == "project_id" for k, _ in changed)
        # A new project clears the definitions (so none left is what a move gives), and
        # orq.ai reads them only in a request without project_id: then a request of their own.
        ids_change = review_ids != old_ids or (moved and bool(review_ids))
        if moved and not review_ids:
            ids_change = False
        first: list[tuple[str, object]] = list(changed)
        if ids_change and not moved:
            first.append(("human_review_ids", review_ids))
        if not first and was:
            # a rename in the repository alone still sends an update: it is what moves the
            # state's record, and sets the name reviewers see
            first.append(("display_name", queue.display_name))
        if first:
            requests.append(_request(Operation.QUEUE_UPDATE, name, queue_id, tuple(first), was))
        if ids_change and moved:
            ids_fields = (("human_review_ids", review_ids),)
            requests.append(_request(Operation.QUEUE_UPDATE, name, queue_id, ids_fields))
        action = UPDATE if requests else MEMBERS
    ours = found[1].spans if found is not None else frozenset[SpanId]()
    leaving = sorted_spans(ours - wanted)  # only what orqsync added: never someone else's
    entering = sorted_spans(wanted - had)
    # A rename always starts with an update (above): it moves the record; these never need to.
    for batch in _batches(leaving):
        requests.append(
            Request(Operation.QUEUE_REMOVE, "", queue=QueueRef(name, queue_id, spans=batch))
        )
    # Adds to an adopted queue: of the spans it held already, orqsync owns none.
    adopted = action == ADOPT or (found is not None and found[1].adopted)
    for batch in _batches(entering):
        ref = QueueRef(name, queue_id, spans=batch, adopting=adopted)
        requests.append(Request(Operation.QUEUE_ADD, "", queue=ref))
    if not requests:
        return None, []
    shown: tuple[tuple[str, object, object], ...]
    if action == CREATE:
        shown = tuple((k, "", v) for k, v in declared.items() if v)
    else:
        shown = tuple((k, old.get(k, ""), v) for k, v in declared.items() if old.get(k) != v)
    if review_ids != old_ids:  # shown by key (the state holds ids only)
        old_keys = tuple(keys.get(review_id, review_id) for review_id in old_ids)
        shown += (("definitions", old_keys, queue.definitions),)
    return (
        QueueChange(
            action,
            name,
            queue_id,
            shown,
            tuple(entering),
            tuple(leaving),
            was,
            queue.path,
            queue.line,
        ),
        requests,
    )


def _request(kind: Operation, name: str, queue_id: str, fields: Fields, was: str = "") -> Request:
    return Request(kind, "", queue=QueueRef(name, queue_id, fields, was=was))


def _batches(spans: list[SpanId]) -> Iterator[tuple[SpanId, ...]]:
    for start in range(0, len(spans), ITEMS_LIMIT):
        yield tuple(spans[start : start + ITEMS_LIMIT])
