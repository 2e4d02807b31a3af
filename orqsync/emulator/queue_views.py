"""The JSON the queue routes answer with: queues, items and the resolved span of an item.

The resolved span (GET .../items/{item_id}) is what the emulator knows of a span, and it knows
no span documents: `_id` is the span id, `type` is "span", and there is no input or output. Its
`attributes.orq.evaluations` lists the span's stored annotations (sorted by key), then its
stored corrections (sorted by parent id), in the entry shape of docs/api-contract.md 3.7:

- `id`: a stable ULID-shaped id of the stored value (from trace, span and key or parent id);
- `evaluation_type` "human_review", `source` "orq";
- `human_review_id`: the definition's id (annotations only; corrections have none and carry
  `parent_annotation_id`, and `explanation` when they have one);
- `output_schema`: categorical for selects, number for ranges, string for text, boolean for
  booleans; a correction's is its evaluator result's output (left out when the result is no
  longer known);
- `type` and the value: `string` / `number` / `boolean` with `value`, `string_array` with
  `values`;
- `annotator` {kind: human, actor_id} and the deprecated `reviewed_by_id` only when the write's
  metadata named someone (`identity_id`, or the legacy `identityId`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .definitions import Definition, derived_id
from .evaluations import EvaluatorResult
from .ids import stable_ulid
from .queue_store import ItemRow, QueueRow

_OUTPUT_SCHEMAS = {
    "single_select": "categorical",
    "multi_select": "categorical",
    "range": "number",
    "text": "string",
    "boolean": "boolean",
}


def queue_object(row: QueueRow, workspace: str) -> dict[str, object]:
    """A queue as the API answers it (the SDK's AnnotationQueue); created_by_id and
    updated_by_id stay unset, as for any queue written with an API key."""
    return {
        "_id": row.id,
        "display_name": row.display_name,
        "description": row.description,
        "workspace_id": workspace,
        "project_id": row.project_id,
        "human_review_ids": list(row.human_review_ids),
        "metadata": {"items_count": row.items_count},
        "created": row.created,
        "updated": row.updated,
    }


def item_object(
    row: ItemRow, workspace: str, definitions: Mapping[str, Definition]
) -> dict[str, object]:
    """An item as the API answers it (the SDK's AnnotationQueueItem): `used_human_review_ids`
    are the ids of the definitions whose values are stored on the span, in key order."""
    return {
        "_id": row.id,
        "annotation_queue_id": row.queue_id,
        "workspace_id": workspace,
        "type": "span",
        "trace_id": row.trace_id,
        "span_id": row.span_id,
        "used_human_review_ids": [review_id(key, definitions) for key in row.keys],
    }


def review_id(key: str, definitions: Mapping[str, Definition]) -> str:
    """The id of the definition `key`; for a key stored before its definition left the file,
    the id it would have without an `id:`."""
    definition = definitions.get(key)
    return definition.id if definition is not None else derived_id(key)


def resolved_span(
    row: ItemRow,
    annotations: Sequence[Mapping[str, object]],
    corrections: Sequence[Mapping[str, object]],
    definitions: Mapping[str, Definition],
    results: Mapping[str, EvaluatorResult],
) -> dict[str, object]:
    """The span an item points to, with its evaluations (see the module docstring)."""
    entries = [_annotation_entry(row, stored, definitions) for stored in annotations]
    entries.extend(_correction_entry(row, fix, results) for fix in corrections)
    return {
        "_id": row.span_id,
        "trace_id": row.trace_id,
        "span_id": row.span_id,
        "type": "span",
        "attributes": {"orq": {"evaluations": entries}},
    }


def _annotation_entry(
    row: ItemRow, stored: Mapping[str, object], definitions: Mapping[str, Definition]
) -> dict[str, object]:
    key = str(stored["key"])
    definition = definitions.get(key)
    entry: dict[str, object] = {
        "id": stable_ulid("orqsync-emulator-annotation", row.trace_id, row.span_id, key),
        "evaluation_type": "human_review",
        "human_review_id": review_id(key, definitions),
        "source": "orq",
    }
    value = stored["value"]
    schema = _OUTPUT_SCHEMAS[definition.type] if definition is not None else _schema_of(value)
    entry["output_schema"] = schema
    entry.update(_typed_value(value))
    entry.update(_annotator(stored["metadata"]))
    return entry


def _correction_entry(
    row: ItemRow, fix: Mapping[str, object], results: Mapping[str, EvaluatorResult]
) -> dict[str, object]:
    parent_id = str(fix["parent_annotation_id"])
    entry: dict[str, object] = {
        "id": stable_ulid("orqsync-emulator-correction", row.trace_id, row.span_id, parent_id),
        "evaluation_type": "human_review",
        "source": "orq",
        "parent_annotation_id": parent_id,
    }
    result = results.get(parent_id)
    if result is not None:
        entry["output_schema"] = result.output
    entry.update(_typed_value(fix["value"]))
    if fix.get("explanation") is not None:
        entry["explanation"] = fix["explanation"]
    entry.update(_annotator(fix["metadata"]))
    return entry


def _typed_value(value: object) -> dict[str, object]:
    if isinstance(value, bool):
        return {"type": "boolean", "value": value}
    if isinstance(value, int | float):
        return {"type": "number", "value": value}
    if isinstance(value, list):
        return {"type": "string_array", "values": value}
    return {"type": "string", "value": value}


def _schema_of(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "categorical" if isinstance(value, list) else "string"


def _annotator(metadata: object) -> dict[str, object]:
    if not isinstance(metadata, Mapping):
        return {}
    for name in ("identity_id", "identityId"):
        actor = metadata.get(name)
        if isinstance(actor, str) and actor:
            return {"annotator": {"kind": "human", "actor_id": actor}, "reviewed_by_id": actor}
    return {}
