"""What the applier does differently for requests on annotation queues.

A queue's create is the one request orqsync sends that is not idempotent: sent twice, it
makes two queues. So the client never repeats one that may have reached orq.ai; the journal
says a create is in flight before it is sent; and a create that may or may not have made
its queue (no answer, a 5xx, an outage, an apply that died with it in flight) leaves a
record without an id in the state, with the time it was sent.

Before the next apply sends anything, it looks in orq.ai for the queue each such record's
create may have made (`look_for_made`): a queue with the name, description and project the
create sent, made around the time it was sent, that no other record holds. A create then
takes it instead of making another; a delete deletes it, or has nothing to do; two or more
candidates are not guessed between. The look happens once, before any request of the apply,
so that no queue made by the apply itself can be taken for one.

Only an adopted queue holds spans that are not orqsync's: an add to one records those the
queue held already (its answer lists the items it made) as someone else's, unless the add
went twice (OrqClient.repeated), when the answer cannot tell.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from orqsync.errors import ApiError
from orqsync.model import Operation, SpanId
from orqsync.planning.plan import Request
from orqsync.planning.wire import QUEUES, method_and_path
from orqsync.state.model import QueueRecord, unconfirmed_entry

CREATE = Operation.QUEUE_CREATE
LOOKUP_PAGES = 5  # of 200 queues, newest first: how far the look goes
# A queue made by a create sent at T has its `created` time within this window of T (the
# server's clock and ours may differ; a create is answered in seconds).
EARLIEST = datetime.timedelta(minutes=10)
LATEST = datetime.timedelta(hours=1)
_UNCERTAIN = frozenset({408, 500, 502, 503, 504})


def now() -> str:
    """The time as the state writes it: UTC, to the second."""
    moment = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def intent(request: Request) -> dict[str, object] | None:
    """What the journal's intent line says besides the request id: for a create, the record
    an apply that dies with it in flight leaves behind."""
    if request.kind != CREATE or request.queue is None:
        return None
    return {"queue_create": unconfirmed_entry(request.queue, now())}


def uncertain(request: Request, error: ApiError) -> bool:
    """A create that failed where it may have reached orq.ai: no answer, a 5xx, an outage."""
    if request.kind != CREATE or isinstance(error, Ambiguous):
        return False
    reason = getattr(error, "reason", "")
    if reason:  # a halt: an outage may hide a create that went through; the others cannot
        return bool(reason == "outage")
    return error.status is None or error.status in _UNCERTAIN


def gone(request: Request, error: ApiError) -> bool:
    """A delete answered 404: the queue is gone already, which is what was asked."""
    return request.kind == Operation.QUEUE_DELETE and error.status == 404


def hint(request: Request, error: ApiError) -> str:
    """What to do about a refused request on a queue ("" for none beyond the client's)."""
    ref = request.queue
    if ref is None:
        return ""
    if uncertain(request, error):
        return (
            f"the create may have made the queue {ref.name} all the same: the next apply looks "
            "for it in orq.ai before it creates one"
        )
    if error.status == 404 and ref.id:
        return (
            f"orq.ai has no queue {ref.id} (deleted there?): `orqsync queue forget {ref.name}` "
            "drops orqsync's record of it, and the next apply creates it again"
        )
    return ""


def created_id(request: Request, answer: object) -> str:
    """The id in a create's answer; an ApiError when it has none."""
    queue_id = answer.get("_id") if isinstance(answer, dict) else None
    if isinstance(queue_id, str) and queue_id:
        return queue_id
    method, path = method_and_path(request)
    name = request.queue.name if request.queue else ""
    raise ApiError(
        f"{method} {path}: the answer holds no _id for the new queue {name}",
        method=method,
        path=path,
        hint="look for the queue in orq.ai, and adopt it with `id:` in its file",
    )


def repeated(api: object) -> bool:
    """Whether the request `api` just sent on this thread went again after an attempt that
    may have arrived (OrqClient.repeated; False for an Api that does not say)."""
    said = getattr(api, "repeated", None)
    return bool(said()) if callable(said) else False


def created_spans(answer: object, asked: tuple[SpanId, ...]) -> frozenset[SpanId]:
    """The spans an add made members (its answer lists the items created; spans already in
    the queue are skipped); all it asked for when the answer does not say."""
    if not isinstance(answer, list):
        return frozenset(asked)
    made = set()
    for item in answer:
        if isinstance(item, dict) and "trace_id" in item and "span_id" in item:
            made.add((str(item["trace_id"]), str(item["span_id"])))
    return frozenset(made) & frozenset(asked)


def unconfirmed_names(requests: Iterable[Request], held: Mapping[str, QueueRecord]) -> list[str]:
    """The records without an id that the plan's creates and deletes are about."""
    names = []
    for request in requests:
        ref = request.queue
        if ref is None or ref.id or request.kind not in (CREATE, Operation.QUEUE_DELETE):
            continue
        name = ref.was or ref.name
        record = held.get(name)
        if record is not None and record.unconfirmed and name not in names:
            names.append(name)
    return names


def look_for_made(
    get: Callable[[str, Mapping[str, str]], object],
    names: list[str],
    held: Mapping[str, QueueRecord],
) -> dict[str, tuple[str, ...]]:
    """For each record named (held without an id), the queues its create may have made: those
    with the fields it sent, made around the time it was sent, that no record holds, newest
    first. One is taken; none means the create made nothing; two or more are not guessed
    between (another team may have made the same queue meanwhile)."""
    if not names:
        return {}
    listing = _queues(get)
    known = {record.id for record in held.values() if record.id}
    found: dict[str, tuple[str, ...]] = {}
    for name in sorted(names):
        record = held[name]
        if not record.display_name:
            found[name] = ()  # nothing to know it by
            continue
        candidates = tuple(
            str(queue["_id"])
            for queue in listing
            if isinstance(queue.get("_id"), str)
            and queue["_id"] not in known
            and queue.get("display_name") == record.display_name
            and queue.get("description") == record.description
            and queue.get("project_id") == record.project_id
            and _around(queue.get("created"), record.attempted)
        )
        found[name] = candidates
        if len(candidates) == 1:
            known.add(candidates[0])  # one record takes one queue
    return found


class Ambiguous(ApiError):
    """More than one queue may be the one an earlier create made: orqsync does not choose."""


def ambiguous(request: Request, record: QueueRecord, candidates: tuple[str, ...]) -> Ambiguous:
    method, path = method_and_path(request)
    name = request.queue.name if request.queue else ""
    return Ambiguous(
        f"{method} {path}: orq.ai holds {len(candidates)} queues named "
        f'"{record.display_name}" that the create sent at {record.attempted or "an unknown time"} '
        f"may have made ({', '.join(candidates)}); orqsync does not guess which",
        method=method,
        path=path,
        hint=f"adopt the right one with `id: ID` in the file of {name} (and delete the other "
        f"in orq.ai if it is an orphan), or `orqsync queue forget {name}` to make a new one",
        cause="more than one queue may be the one an earlier create made",
    )


def _queues(get: Callable[[str, Mapping[str, str]], object]) -> list[dict[str, Any]]:
    """The newest queues, newest first, up to LOOKUP_PAGES pages."""
    listing: list[dict[str, Any]] = []
    after = ""
    for _ in range(LOOKUP_PAGES):
        params = {"limit": "200", **({"starting_after": after} if after else {})}
        answer = get(QUEUES, params)
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list) or not data:
            break
        listing.extend(queue for queue in data if isinstance(queue, dict))
        if not (isinstance(answer, dict) and answer.get("has_more")):
            break
        after = str(listing[-1].get("_id", "")) if listing else ""
        if not after:
            break
    return listing


def _around(created: object, attempted: str) -> bool:
    """Whether a queue made at `created` can be the work of a create sent at `attempted`
    (both ISO 8601; a record of an older release, without the time, takes any)."""
    if not attempted:
        return True
    try:
        made = datetime.datetime.fromisoformat(str(created).replace("Z", "+00:00"))
        sent = datetime.datetime.fromisoformat(attempted.replace("Z", "+00:00"))
    except ValueError:
        return False
    if made.tzinfo is None:
        made = made.replace(tzinfo=datetime.timezone.utc)
    return sent - EARLIEST <= made <= sent + LATEST
