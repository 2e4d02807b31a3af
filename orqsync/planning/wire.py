"""Requests as they go on the wire: method, path and JSON body (pure; shared by client and
renderers so that a plan shows exactly what apply sends)."""

from __future__ import annotations

from urllib.parse import quote

from orqsync.model import Correction, Metadata, Operation, Value, parent_id, value_json
from orqsync.planning.plan import ANNOTATE, FEEDBACK_PUT, FEEDBACK_REMOVE, REMOVE, Request

DOCUMENTED = "documented"
CURRENT = "current"


def _segment(value: str) -> str:
    return quote(value, safe="")


def wire_metadata(metadata: Metadata, style: str) -> dict[str, str]:
    """Metadata in the wire form the server expects.

    `documented` sends identityId/source/reviewerId as the docs show; `current` sends only
    `identity_id`, the one field the current OpenAPI spec has (docs/api-contract.md, section 3.4).
    """
    fields = dict(metadata)
    if style == CURRENT:
        return {"identity_id": fields["identityId"]} if "identityId" in fields else {}
    return fields


QUEUES = "/v2/annotation-queues"
_QUEUE_ROUTES = {  # method, path after the queue's own
    Operation.QUEUE_UPDATE: ("PATCH", ""),
    Operation.QUEUE_DELETE: ("DELETE", ""),
    Operation.QUEUE_ADD: ("POST", "/items"),
    Operation.QUEUE_REMOVE: ("POST", "/items/remove"),
}


def queue_path(name: str, queue_id: str) -> str:
    """A queue's path; for a queue a create earlier in the plan makes, a placeholder that
    names it (the applier sends the id the create got)."""
    return f"{QUEUES}/{_segment(queue_id) if queue_id else '{id of new queue ' + name + '}'}"


def method_and_path(request: Request) -> tuple[str, str]:
    ref = request.queue
    if ref is not None:
        if request.kind == Operation.QUEUE_CREATE:
            return "POST", QUEUES
        method, tail = _QUEUE_ROUTES[request.kind]
        return method, queue_path(ref.name, ref.id) + tail
    if request.kind in (ANNOTATE, REMOVE):
        path = (
            f"/v2/traces/{_segment(request.trace_id)}/spans/{_segment(request.span_id)}/annotation"
        )
        return ("POST" if request.kind == ANNOTATE else "DELETE"), path
    if request.kind == FEEDBACK_PUT:
        return "POST", "/v2/feedback"
    if request.kind == FEEDBACK_REMOVE:
        return "POST", "/v2/feedback/remove"
    raise ValueError(f"unknown request kind {request.kind!r}")


def _item(key: str, value: Value) -> dict[str, object]:
    """One item of a create: `{key, value}`, or for a correction (docs/api-contract.md,
    section 3.1, shape B) `{parent_annotation_id, value, explanation}`."""
    if isinstance(value, Correction):
        parent = parent_id(key)
        assert parent is not None, key
        item: dict[str, object] = {"parent_annotation_id": parent, "value": value_json(value.value)}
        if value.explanation is not None:
            item["explanation"] = value.explanation
        return item
    return {"key": key, "value": value_json(value)}


def request_body(request: Request, metadata_style: str) -> dict[str, object] | None:
    """The JSON body; None for a request without one (a queue's delete)."""
    ref = request.queue
    if ref is not None:
        if request.kind in (Operation.QUEUE_CREATE, Operation.QUEUE_UPDATE):
            return {
                name: list(v) if isinstance(v, tuple) else v
                for name, v in ref.fields
                if not (ref.adopting and name == "project_id")  # it would clear the queue's
            }
        if request.kind == Operation.QUEUE_ADD:
            return {"items": [{"trace_id": t, "span_id": s} for t, s in ref.spans]}
        if request.kind == Operation.QUEUE_REMOVE:
            return {"span_ids": [span_id for _, span_id in ref.spans]}
        return None
    if request.kind == ANNOTATE:
        body: dict[str, object] = {
            "annotations": [_item(key, value) for key, value in request.items]
        }
        metadata = wire_metadata(request.metadata, metadata_style)
        if metadata:
            body["metadata"] = metadata
        return body
    if request.kind == REMOVE:
        # Keys and the ids of corrected results, each list at most ten and only when it has
        # an item: a delete of annotations alone is the body the API has always taken.
        keys = [key for key in request.keys if parent_id(key) is None]
        parents = [parent for key in request.keys if (parent := parent_id(key)) is not None]
        removal: dict[str, object] = {"keys": keys} if keys else {}
        if parents:
            removal["parent_annotation_ids"] = parents
        return removal
    return {key: value_json(value) for key, value in request.feedback}
