"""The annotation-queue API's rules as pure functions (docs/api-contract.md, sections 2.7, 4.6).

JSON payload or query parameters in, checked request or ApiError out; errors render as
`{"message": ...}`, the shape the SDK's ErrorResponseData reads. What the API leaves open:

- extra top-level body fields are ignored (as the annotation and feedback routes do, and as the
  SDK's models drop them); an item of `items` has exactly `trace_id` and `span_id`, like an
  annotation item has exactly `key` and `value`;
- `display_name` and `project_id` are non-empty strings, `description` any string;
- `human_review_ids` must name known definitions by id: a key sent instead of an id is the
  likely mistake, and a 400 says so;
- `items` and `span_ids` take 1 to 1,000 entries; an empty list is refused like an empty
  annotation delete;
- `limit` is an integer from 1 to 200 (default 10); `starting_after` and `ending_before` do not
  go together.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .rules import ApiError, as_object, bad_request, not_found

MAX_QUEUE_ITEMS = 1000  # items per add call, span ids per removal call
DEFAULT_LIMIT = 10
MAX_LIMIT = 200

_CREATE_FIELDS = ("display_name", "description", "project_id")
_ITEM_FIELDS = frozenset({"trace_id", "span_id"})
_DIGITS = re.compile(r"[0-9]{1,9}")  # int() of a longer text may raise


@dataclass(frozen=True, slots=True)
class PageRequest:
    """One page of a list: at most `limit` objects after `starting_after` or before
    `ending_before` (object ids; at most one of the two), in the list's order."""

    limit: int = DEFAULT_LIMIT
    starting_after: str | None = None
    ending_before: str | None = None


@dataclass(frozen=True, slots=True)
class QueueListRequest:
    """A checked queue list: the page, the display-name search and the updated_by accounts."""

    page: PageRequest
    search: str | None = None
    updated_by: tuple[str, ...] = ()


def check_page(params: Mapping[str, str]) -> PageRequest:
    """Check `limit`, `starting_after` and `ending_before` of a list's query."""
    limit = DEFAULT_LIMIT
    if "limit" in params:
        text = params["limit"]
        number = int(text) if _DIGITS.fullmatch(text) else None
        if number is None or not 1 <= number <= MAX_LIMIT:
            raise bad_request(
                f'Invalid query parameter "limit": {text}. Pass an integer from 1 to {MAX_LIMIT} '
                f"(default {DEFAULT_LIMIT})."
            )
        limit = number
    after = params.get("starting_after") or None
    before = params.get("ending_before") or None
    if after is not None and before is not None:
        raise bad_request(
            'Invalid query: "starting_after" and "ending_before" do not go together; pass '
            "starting_after to page forward or ending_before to page back."
        )
    return PageRequest(limit, after, before)


def check_queue_list(params: Mapping[str, str]) -> QueueListRequest:
    """Check the query of a queue list: the page, `search` and `updated_by` (comma-separated
    account ids)."""
    page = check_page(params)
    search = params.get("search") or None
    accounts = tuple(part.strip() for part in params.get("updated_by", "").split(","))
    return QueueListRequest(page, search, tuple(account for account in accounts if account))


def unknown_cursor(name: str, cursor: str, what: str) -> ApiError:
    """The 400 for a cursor that names no object of the list."""
    return bad_request(
        f'Invalid query parameter "{name}": no {what} with id {cursor} in this list. Pass the '
        "_id of an object of the previous page, or leave it out to start at the first page."
    )


def check_queue_create(payload: object) -> dict[str, str]:
    """Check a create body; return `{display_name, description, project_id}`."""
    body = as_object(payload)
    for name in _CREATE_FIELDS:
        if name not in body:
            raise bad_request(
                f'Invalid request body: "{name}" is required; a queue needs display_name, '
                "description and project_id."
            )
    return {name: _text(body, name) for name in _CREATE_FIELDS}


def check_queue_update(payload: object, definition_ids: frozenset[str]) -> dict[str, object]:
    """Check an update body; return the fields to change. Setting `project_id` clears
    `human_review_ids`, which apply only when the body sets no `project_id` (the SDK's model)."""
    body = as_object(payload)
    changes: dict[str, object] = {
        name: _text(body, name) for name in _CREATE_FIELDS if name in body
    }
    if "project_id" in changes:
        changes["human_review_ids"] = []
    elif "human_review_ids" in body:
        changes["human_review_ids"] = _review_ids(body["human_review_ids"], definition_ids)
    return changes


def check_items_add(payload: object) -> list[tuple[str, str]]:
    """Check an add body; return its (trace_id, span_id) pairs in order."""
    body = as_object(payload)
    if "items" not in body:
        raise bad_request(
            'Invalid request body: "items" is required: a list of {"trace_id", "span_id"}.'
        )
    items = body["items"]
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_QUEUE_ITEMS:
        got = f", got {len(items)}" if isinstance(items, list) else ""
        raise bad_request(
            f'Invalid request body: "items" must be an array of 1 to {MAX_QUEUE_ITEMS} items'
            f"{got}; send larger batches in several calls."
        )
    return [_item_ref(index, item) for index, item in enumerate(items)]


def check_items_remove(payload: object) -> list[str]:
    """Check a removal body; return its span ids in order."""
    body = as_object(payload)
    if "span_ids" not in body:
        raise bad_request('Invalid request body: "span_ids" is required: a list of span ids.')
    span_ids = body["span_ids"]
    if not isinstance(span_ids, list) or not all(isinstance(s, str) and s for s in span_ids):
        raise bad_request('Invalid request body: "span_ids" must be an array of non-empty strings.')
    if not 1 <= len(span_ids) <= MAX_QUEUE_ITEMS:
        raise bad_request(
            f'Invalid request body: "span_ids" must have 1 to {MAX_QUEUE_ITEMS} items, '
            f"got {len(span_ids)}."
        )
    return span_ids


def queue_not_found(queue_id: str, workspace: str) -> ApiError:
    """The 404 for a queue the workspace does not have."""
    return not_found(
        "annotation_queue_not_found",
        f"Annotation queue with id {queue_id} for workspace {workspace} was not found.",
    )


def item_not_found(item_id: str, queue_id: str) -> ApiError:
    """The 404 for an item the queue does not have."""
    return not_found(
        "annotation_queue_item_not_found",
        f"Annotation queue item with id {item_id} in annotation queue {queue_id} was not found.",
    )


def _text(body: Mapping[str, object], name: str) -> str:
    value = body[name]
    if not isinstance(value, str) or (not value and name != "description"):
        kind = "a string" if name == "description" else "a non-empty string"
        shown = json.dumps(value, ensure_ascii=False)
        raise bad_request(f'Invalid request body: "{name}" must be {kind}, got {shown}.')
    return value


def _review_ids(value: object, definition_ids: frozenset[str]) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise bad_request(
            'Invalid request body: "human_review_ids" must be an array of definition ids.'
        )
    for review_id in value:
        if review_id not in definition_ids:
            raise bad_request(
                f'Invalid request body: "human_review_ids" names {review_id}, which is not the '
                "id of a Human Review definition; send definition ids (ULIDs), not keys."
            )
    return list(dict.fromkeys(value))


def _item_ref(index: int, item: object) -> tuple[str, str]:
    where = f"Invalid item at index {index}"
    if not isinstance(item, dict):
        raise bad_request(f'{where}: an item must be an object with "trace_id" and "span_id".')
    unknown = sorted(set(item) - _ITEM_FIELDS)
    if unknown:
        names = ", ".join(f'"{name}"' for name in unknown)
        raise bad_request(
            f'{where}: unknown field(s) {names}; an item has exactly "trace_id" and "span_id".'
        )
    found: list[str] = []
    for name in ("trace_id", "span_id"):
        value = item.get(name)
        if not isinstance(value, str) or not value:
            raise bad_request(f'{where}: "{name}" must be a non-empty string.')
        found.append(value)
    return found[0], found[1]
