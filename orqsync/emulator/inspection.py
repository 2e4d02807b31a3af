"""The /_emulator/ routes: read what the emulator holds, wipe it, seed evaluator results; without
auth and without faults."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, cast
from urllib.parse import parse_qs, unquote

from .evaluations import EvaluationsError
from .response import Response, json_response
from .rules import ApiError, parse_json

if TYPE_CHECKING:
    from .core import Emulator

_SPAN_PATH = re.compile(r"/_emulator/spans/([^/]+)/([^/]+)")


def handle_inspection(
    emulator: Emulator, method: str, target: str, query: str, body: bytes
) -> Response:
    """Answer one /_emulator/ request."""
    params = {name: values[-1] for name, values in parse_qs(query).items()}
    if target == "/_emulator/reset":
        if method != "POST":
            return _not_allowed("POST")
        emulator.reset()
        return json_response(200, {})
    if target == "/_emulator/evaluator-results":
        if method == "GET":
            return json_response(200, {"evaluator_results": emulator.evaluator_results()})
        if method == "POST":
            return _add_results(emulator, body)
        return _not_allowed("GET, POST")
    if method != "GET":
        if target in _GET_ROUTES or _SPAN_PATH.fullmatch(target):
            return _not_allowed("GET")
        return json_response(404, {"message": "Not found"})
    if target == "/_emulator/annotations":
        rows = emulator.annotations(params.get("trace_id"), params.get("span_id"))
        return json_response(200, {"annotations": rows})
    if target == "/_emulator/corrections":
        rows = emulator.corrections(params.get("trace_id"), params.get("span_id"))
        return json_response(200, {"corrections": rows})
    if target == "/_emulator/feedback":
        return json_response(200, {"feedback": emulator.feedback()})
    if target == "/_emulator/queues":
        found = [
            {**queue, "items": emulator.queue_items(str(queue["_id"]))}
            for queue in emulator.queues()
        ]
        return json_response(200, {"queues": found})
    if target == "/_emulator/requests":
        return _requests(emulator, params)
    if target == "/_emulator/stats":
        return json_response(200, emulator.stats())
    match = _SPAN_PATH.fullmatch(target)
    if match is not None:
        return json_response(200, emulator.span(unquote(match[1]), unquote(match[2])))
    return json_response(404, {"message": "Not found"})


_GET_ROUTES = frozenset(
    {
        "/_emulator/annotations",
        "/_emulator/corrections",
        "/_emulator/feedback",
        "/_emulator/queues",
        "/_emulator/requests",
        "/_emulator/stats",
    }
)
_SEED_USAGE = (
    'send {"evaluator_results": [{"id": ..., "trace_id": ..., "span_id": ..., "output": ...}]}'
)


def _add_results(emulator: Emulator, body: bytes) -> Response:
    try:
        payload = parse_json(body) if body.strip() else None
    except ApiError as error:
        return json_response(400, {"message": f"{error.message}; {_SEED_USAGE}"})
    if not isinstance(payload, dict) or set(payload) != {"evaluator_results"}:
        return json_response(
            400,
            {"message": f'the body must be an object with only "evaluator_results"; {_SEED_USAGE}'},
        )
    entries = cast(Sequence[Mapping[str, object]], payload["evaluator_results"])  # checked next
    try:
        added = emulator.add_evaluator_results(entries)
    except EvaluationsError as error:
        return json_response(400, {"message": f"{error}; {error.hint}"})
    return json_response(200, {"evaluator_results": added})


def _requests(emulator: Emulator, params: dict[str, str]) -> Response:
    try:
        since = int(params.get("since", "0"))
    except ValueError:
        return json_response(400, {"message": "since must be an integer sequence number"})
    entries = emulator.requests(since)
    count = emulator.request_count()
    return json_response(
        200,
        {
            "requests": [
                {
                    "seq": entry.seq,
                    "method": entry.method,
                    "path": entry.path,
                    "status": entry.status,
                    "fault": entry.fault,
                    "at": round(entry.at, 6),
                }
                for entry in entries
            ],
            "count": count,
        },
    )


def _not_allowed(allow: str) -> Response:
    return json_response(405, {"message": "Method not allowed"}, {"Allow": allow})
