"""The /v2/annotation-queues routes (docs/api-contract.md, section 4.6), after auth and faults.

| Route                                          | Answer                                  |
|------------------------------------------------|-----------------------------------------|
| GET    /v2/annotation-queues                   | 200 list of queues, newest first        |
| POST   /v2/annotation-queues                   | 200 the new queue                       |
| GET    /v2/annotation-queues/{id}              | 200 the queue                           |
| PATCH  /v2/annotation-queues/{id}              | 200 the changed queue                   |
| DELETE /v2/annotation-queues/{id}              | 204, no body (the queue and its items)  |
| DELETE /v2/annotation-queues/{id}/clear        | 204, no body (every item)               |
| GET    /v2/annotation-queues/{id}/items        | 200 list of items, in the order added   |
| POST   /v2/annotation-queues/{id}/items        | 200 a bare list of the items created    |
| POST   /v2/annotation-queues/{id}/items/remove | 204, no body                            |
| GET    /v2/annotation-queues/{id}/items/{item} | 200 the resolved span (queue_views.py)  |

A list is `{"object": "list", "data": [...], "has_more": bool}`; has_more says whether more lie
in the direction paged (forward with starting_after or no cursor, back with ending_before). A
cursor that names no object of the list (a typo, another queue's item, one deleted since) is a
400: an emulator that guessed a position would hide a client that passes the wrong id.

Order of checks: the query or body (400), the queue (404), then the spans (404 when the config's
`known_spans` does not hold one; nothing is added then). Errors are `{"message": ...}`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from urllib.parse import parse_qs, unquote

from . import queues
from .config import EmulatorConfig
from .definitions import Definition
from .evaluations import EvaluatorResult
from .queue_store import UnknownCursor
from .queue_views import item_object, queue_object, resolved_span
from .response import Response, json_response
from .rules import ApiError, as_object, parse_json, span_not_found
from .store import Store

PREFIX = "/v2/annotation-queues"
_QUEUE = re.compile(r"/v2/annotation-queues/([^/]+)")
_CLEAR = re.compile(r"/v2/annotation-queues/([^/]+)/clear")
_ITEMS = re.compile(r"/v2/annotation-queues/([^/]+)/items")
_ITEM = re.compile(r"/v2/annotation-queues/([^/]+)/items/([^/]+)")
_NO_CONTENT = Response(204)


def allowed_methods(target: str) -> str | None:
    """The methods the path answers, as an Allow header; None for no queue route."""
    if target == PREFIX:
        return "GET, POST"
    if _ITEM.fullmatch(target):
        return "GET, POST" if target.endswith("/items/remove") else "GET"
    if _ITEMS.fullmatch(target):
        return "GET, POST"
    if _CLEAR.fullmatch(target):
        return "DELETE"
    if _QUEUE.fullmatch(target):
        return "GET, PATCH, DELETE"
    return None


class QueueApi:
    """Answers the queue routes from the store's queue tables and the emulator's definitions,
    evaluator results (read through `results`, which the emulator replaces) and config."""

    def __init__(
        self,
        store: Store,
        config: EmulatorConfig,
        definitions: Mapping[str, Definition],
        results: Callable[[], Mapping[str, EvaluatorResult]],
    ) -> None:
        self._store = store
        self._tables = store.queues
        self._config = config
        self._workspace = config.workspace
        self._definitions = definitions
        self._definition_ids = frozenset(d.id for d in definitions.values())
        self._results = results

    def handle(self, method: str, target: str, query: str, body: bytes) -> Response:
        """Answer an authorized request on a queue route with an allowed method."""
        params = {name: values[-1] for name, values in parse_qs(query).items()}
        try:
            return self._route(method, target, params, body)
        except ApiError as error:
            return json_response(error.status, {"message": error.message})
        except UnknownCursor as error:
            what = "annotation queue" if target == PREFIX else "item"
            problem = queues.unknown_cursor(error.name, error.cursor, what)
            return json_response(problem.status, {"message": problem.message})

    def _route(self, method: str, target: str, params: dict[str, str], body: bytes) -> Response:
        if target == PREFIX:
            return self._list(params) if method == "GET" else self._create(body)
        item = _ITEM.fullmatch(target)
        if item is not None and not (method == "POST" and item[2] == "remove"):
            return self._item(unquote(item[1]), unquote(item[2]))
        if item is not None:
            return self._remove(unquote(item[1]), body)
        items = _ITEMS.fullmatch(target)
        if items is not None:
            queue_id = unquote(items[1])
            return self._items(queue_id, params) if method == "GET" else self._add(queue_id, body)
        clear = _CLEAR.fullmatch(target)
        if clear is not None:
            if not self._tables.clear(unquote(clear[1])):
                raise self._missing(unquote(clear[1]))
            return _NO_CONTENT
        match = _QUEUE.fullmatch(target)
        assert match is not None  # allowed_methods admitted the path
        queue_id = unquote(match[1])
        if method == "GET":
            return json_response(200, self._queue(queue_id))
        if method == "PATCH":
            return self._update(queue_id, body)
        if not self._tables.delete(queue_id):
            raise self._missing(queue_id)
        return _NO_CONTENT

    def _list(self, params: dict[str, str]) -> Response:
        request = queues.check_queue_list(params)
        rows, more = self._tables.list_queues(request.page, request.search, request.updated_by)
        data = [queue_object(row, self._workspace) for row in rows]
        return json_response(200, {"object": "list", "data": data, "has_more": more})

    def _create(self, body: bytes) -> Response:
        fields = queues.check_queue_create(_payload(body))
        row = self._tables.create(fields, _now())
        return json_response(200, queue_object(row, self._workspace))

    def _queue(self, queue_id: str) -> dict[str, object]:
        row = self._tables.get(queue_id)
        if row is None:
            raise self._missing(queue_id)
        return queue_object(row, self._workspace)

    def _update(self, queue_id: str, body: bytes) -> Response:
        changes = queues.check_queue_update(_payload(body), self._definition_ids)
        row = self._tables.update(queue_id, changes, _now())
        if row is None:
            raise self._missing(queue_id)
        return json_response(200, queue_object(row, self._workspace))

    def _items(self, queue_id: str, params: dict[str, str]) -> Response:
        page = queues.check_page(params)
        self._queue(queue_id)
        rows, more = self._tables.list_items(queue_id, page)
        data = [item_object(row, self._workspace, self._definitions) for row in rows]
        return json_response(200, {"object": "list", "data": data, "has_more": more})

    def _add(self, queue_id: str, body: bytes) -> Response:
        spans = queues.check_items_add(_payload(body))
        self._queue(queue_id)
        known = self._config.known_spans
        unknown = None if known is None else next((s for s in spans if s not in known), None)
        if unknown is not None:
            raise span_not_found(unknown[1], self._workspace)
        created = self._tables.add_items(queue_id, spans)
        if created is None:  # deleted since the check above
            raise self._missing(queue_id)
        return json_response(
            200, [item_object(row, self._workspace, self._definitions) for row in created]
        )

    def _remove(self, queue_id: str, body: bytes) -> Response:
        span_ids = queues.check_items_remove(_payload(body))
        if not self._tables.remove_items(queue_id, span_ids):
            raise self._missing(queue_id)
        return _NO_CONTENT

    def _item(self, queue_id: str, item_id: str) -> Response:
        self._queue(queue_id)
        row = self._tables.get_item(queue_id, item_id)
        if row is None:
            raise queues.item_not_found(item_id, queue_id)
        span = resolved_span(
            row,
            self._store.annotations(row.trace_id, row.span_id),
            self._store.corrections(row.trace_id, row.span_id),
            self._definitions,
            self._results(),
        )
        return json_response(200, span)

    def all_queues(self) -> list[dict[str, object]]:
        """Every queue as the API answers it, oldest first."""
        return [queue_object(row, self._workspace) for row in self._tables.all_queues()]

    def all_items(self, queue_id: str) -> list[dict[str, object]]:
        """Every item of the queue as the API answers it, in the order added."""
        rows = self._tables.all_items(queue_id)
        return [item_object(row, self._workspace, self._definitions) for row in rows]

    def _missing(self, queue_id: str) -> ApiError:
        return queues.queue_not_found(queue_id, self._workspace)


def _payload(body: bytes) -> dict[str, object]:
    return as_object(parse_json(body) if body.strip() else None)


def _now() -> str:
    """The time as the API writes it: ISO 8601 in UTC with milliseconds and a Z."""
    stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")
