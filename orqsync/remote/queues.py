"""What the applier does differently for requests on annotation queues.

A queue's create is the one request orqsync sends that is not idempotent: sent twice, it
makes two queues. So the client never repeats one that may have reached orq.ai, the journal
says a create is in flight before it is sent, and a create that may or may not have made the
queue leaves a record without an id in the state. The next create of that queue first looks
for it in orq.ai (the newest queues with its name, description and project that the state
does not know) and takes it instead of making another.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from orqsync.errors import ApiError
from orqsync.model import Operation, SpanId
from orqsync.planning.plan import Request
from orqsync.planning.wire import QUEUES, method_and_path

CREATE = Operation.QUEUE_CREATE
LOOKUP_PAGES = 5  # of 200 queues, newest first: a create looks this far for one it made
_UNCERTAIN = frozenset({408, 500, 502, 503, 504})


def intent(request: Request) -> dict[str, object] | None:
    """What the journal's intent line says besides the request id: for a create, the queue
    (so that an apply that stops with it in flight leaves a record to look for)."""
    ref = request.queue
    if request.kind != CREATE or ref is None:
        return None
    fields = {name: list(v) if isinstance(v, tuple) else v for name, v in ref.fields}
    return {"queue_create": {"op": CREATE.value, "name": ref.name, "id": "", "fields": fields}}


def uncertain(request: Request, error: ApiError) -> bool:
    """A create that failed where it may have reached orq.ai (no answer, or a 5xx)."""
    return request.kind == CREATE and (error.status is None or error.status in _UNCERTAIN)


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


def find_made(
    get: Callable[[str, Mapping[str, str]], object], request: Request, known: set[str]
) -> str:
    """The id of a queue a create that may have reached orq.ai made: the newest one with the
    create's name, description and project that the state does not know; "" for none."""
    assert request.queue is not None
    fields = dict(request.queue.fields)
    after = ""
    for _ in range(LOOKUP_PAGES):
        params = {"limit": "200", **({"starting_after": after} if after else {})}
        answer: Any = get(QUEUES, params)
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list) or not data:
            return ""
        for queue in data:
            if not isinstance(queue, dict) or queue.get("_id") in known:
                continue
            if all(queue.get(name) == value for name, value in fields.items()):
                return str(queue["_id"])
        if not answer.get("has_more"):
            return ""
        after = str(data[-1].get("_id", ""))
    return ""
