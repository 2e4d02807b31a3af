"""The annotation API's rules as pure functions: JSON payload in, checked write or ApiError out.

Order of checks, as a schema-first server does it: body shape (400), then the span (404), then
each item in order: the definition key (404) and the value against the definition (400) for an
annotation, the evaluator result (404) and the value against its output (400) for a correction.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeGuard

from .definitions import Definition
from .evaluations import EvaluatorResult

MAX_ITEMS = 10
MAX_EXPLANATION = 3000  # characters of a correction's explanation (JS length)

_ANNOTATION_FIELDS = frozenset({"key", "value"})
_CORRECTION_FIELDS = frozenset({"parent_annotation_id", "value", "explanation"})

JsonValue = str | int | float | bool | list[str]


class ApiError(Exception):
    """A request the API refuses; rendered as `{code, message, category}` or `{message}`."""

    def __init__(self, status: int, code: str, category: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.category = category
        self.message = message


def bad_request(message: str) -> ApiError:
    """A 400 for a body that breaks the schema or a business rule."""
    return ApiError(400, "bad_request", "bad_request", message)


def not_found(code: str, message: str) -> ApiError:
    """A 404 with the given snake_case code."""
    return ApiError(404, code, "not_found", message)


def definition_not_found(key: str, workspace: str) -> ApiError:
    """The live 404 for a key without a Human Review definition."""
    # `deployment_not_found` (sic) is the code the live service answers
    # (docs/api-contract.md, section 2.4, source WS02).
    return not_found(
        "deployment_not_found",
        f'The human review with key "{key}" for workspace {workspace} was not found.',
    )


def span_not_found(span_id: str, workspace: str) -> ApiError:
    """The 404 for a span the workspace does not have."""
    return not_found(
        "span_not_found", f"Span with id {span_id} for workspace {workspace} was not found."
    )


def evaluation_not_found(parent_id: str, span_id: str) -> ApiError:
    """The 404 for a correction of an evaluator result the span does not have."""
    return not_found(
        "evaluation_not_found",
        f'The evaluation with id "{parent_id}" for span {span_id} was not found.',
    )


@dataclass(frozen=True, slots=True)
class Correction:
    """A correction of an evaluator result; `explanation` None when the request has none."""

    parent_annotation_id: str
    value: JsonValue
    explanation: str | None = None


@dataclass(frozen=True, slots=True)
class AnnotationWrite:
    """A checked create: (key, stored value) pairs and corrections in request order, and the
    request metadata."""

    items: tuple[tuple[str, JsonValue], ...]
    metadata: Mapping[str, object]
    corrections: tuple[Correction, ...] = ()


@dataclass(frozen=True, slots=True)
class AnnotationRemoval:
    """A checked delete: the definition keys whose values, and the evaluator result ids whose
    corrections, to remove from the span."""

    keys: tuple[str, ...]
    parent_ids: tuple[str, ...] = ()


def parse_json(body: bytes) -> object:
    """Decode a JSON body; NaN and Infinity are not JSON and are refused like other junk."""
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise bad_request(f"Request body is not valid JSON: {exc}") from exc


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON value")


def check_annotation_post(
    payload: object,
    *,
    trace_id: str,
    span_id: str,
    span_known: bool,
    definitions: Mapping[str, Definition],
    evaluations: Mapping[str, EvaluatorResult],
    string_limit: int,
    workspace: str,
) -> AnnotationWrite:
    """Check a create body fully; return the write to apply, or raise the API's error."""
    body = as_object(payload)
    if "annotations" not in body:
        raise bad_request('Invalid request body: "annotations" is required.')
    items = body["annotations"]
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
        raise bad_request(
            f'Invalid request body: "annotations" must be an array of 1 to {MAX_ITEMS} items'
            f"{_got_length(items)}."
        )
    checked = [_annotation_item(index, item, string_limit) for index, item in enumerate(items)]
    metadata = _metadata(body)
    if not span_known:
        raise span_not_found(span_id, workspace)
    stored: list[tuple[str, JsonValue]] = []
    corrections: list[Correction] = []
    for item in checked:
        if isinstance(item, Correction):
            result = _evaluation(evaluations, item.parent_annotation_id, trace_id, span_id)
            check_correction_value(result, item.value)
            corrections.append(item)
            continue
        key, value = item
        definition = definitions.get(key)
        if definition is None:
            raise definition_not_found(key, workspace)
        stored.append((key, check_value(definition, value)))
    return AnnotationWrite(tuple(stored), metadata, tuple(corrections))


def check_annotation_delete(
    payload: object,
    *,
    trace_id: str,
    span_id: str,
    span_known: bool,
    definitions: Mapping[str, Definition],
    evaluations: Mapping[str, EvaluatorResult],
    workspace: str,
) -> AnnotationRemoval:
    """Check a delete body fully; return the keys and parent ids to remove, or raise the API's
    error."""
    if payload is None:
        raise bad_request(
            'Request body is required: send {"keys": [...]} or {"parent_annotation_ids": [...]} '
            f"with 1 to {MAX_ITEMS} items."
        )
    body = as_object(payload)
    keys = _string_list(body, "keys")
    parent_ids = _string_list(body, "parent_annotation_ids")
    _metadata(body)
    if not keys and not parent_ids:
        raise bad_request(
            'Nothing to remove: "keys" or "parent_annotation_ids" must list '
            f"1 to {MAX_ITEMS} items."
        )
    if not span_known:
        raise span_not_found(span_id, workspace)
    for key in keys:
        if key not in definitions:
            raise definition_not_found(key, workspace)
    for parent_id in parent_ids:
        _evaluation(evaluations, parent_id, trace_id, span_id)
    return AnnotationRemoval(tuple(keys), tuple(parent_ids))


def check_value(definition: Definition, value: JsonValue) -> JsonValue:
    """Check a schema-valid value against its definition; return the value to store."""
    kind = definition.type
    if kind == "single_select":
        # A one-element array is accepted and stored as the plain string
        # (docs/api-contract.md, unknown U16).
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if not isinstance(value, str):
            raise _invalid_option(value, definition)
        if value not in definition.options:
            raise _invalid_option(value, definition)
        return value
    if kind == "multi_select":
        if not isinstance(value, list):
            raise bad_request(
                f"Invalid value: {render_value(value)}. Expected an array of options; "
                f"valid options are: {', '.join(definition.options)}."
            )
        for option in value:
            if option not in definition.options:
                raise _invalid_option(option, definition)
        return value
    if kind == "range":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad_request(
                f"Invalid value: {render_value(value)}. Expected a number in range "
                f"[{js_number(definition.minimum)}, {js_number(definition.maximum)}]."
            )
        assert definition.minimum is not None and definition.maximum is not None
        if not definition.minimum <= value <= definition.maximum:
            raise bad_request(
                f"Value {js_number(value)} is out of range "
                f"[{js_number(definition.minimum)}, {js_number(definition.maximum)}]."
            )
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise bad_request(f"Invalid value: {render_value(value)}. Expected true or false.")
        return value
    # text definitions take a string.
    if not isinstance(value, str):
        raise bad_request(f"Invalid value: {render_value(value)}. Expected a string.")
    return value


def check_correction_value(result: EvaluatorResult, value: JsonValue) -> JsonValue:
    """Check a schema-valid value against the output of the evaluator result it corrects."""
    output = result.output
    if output == "boolean":
        if not isinstance(value, bool):
            raise bad_request(f"Invalid value: {render_value(value)}. Expected true or false.")
        return value
    if output == "number":
        finite = (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
        if not finite:
            raise bad_request(f"Invalid value: {render_value(value)}. Expected a finite number.")
        return value
    if output == "categorical":
        if not isinstance(value, str | list):
            valid = f"; valid options are: {', '.join(result.options)}" if result.options else ""
            raise bad_request(
                f"Invalid value: {render_value(value)}. "
                f"Expected a string or an array of strings{valid}."
            )
        for option in [value] if isinstance(value, str) else value:
            if result.options and option not in result.options:
                raise bad_request(
                    f"Invalid value: {render_value(option)}. "
                    f"Valid options are: {', '.join(result.options)}."
                )
        return value
    # string outputs take a string.
    if not isinstance(value, str):
        raise bad_request(f"Invalid value: {render_value(value)}. Expected a string.")
    return value


def render_value(value: object) -> str:
    """Show a value in a message: strings bare, everything else as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return js_number(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def js_number(number: float | None) -> str:
    """Format a number the way the JavaScript server prints it (2.0 is "2")."""
    if number is None:
        return "null"
    if isinstance(number, float) and math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if isinstance(number, float) and number.is_integer() and abs(number) < 1e21:
        return str(int(number))
    return str(number)


def js_length(text: str) -> int:
    """The length JavaScript reports: UTF-16 code units, so an emoji counts twice."""
    return len(text.encode("utf-16-le")) // 2


def _evaluation(
    evaluations: Mapping[str, EvaluatorResult], parent_id: str, trace_id: str, span_id: str
) -> EvaluatorResult:
    result = evaluations.get(parent_id)
    if result is None or (result.trace_id, result.span_id) != (trace_id, span_id):
        raise evaluation_not_found(parent_id, span_id)
    return result


def _annotation_item(
    index: int, item: object, string_limit: int
) -> tuple[str, JsonValue] | Correction:
    where = f"Invalid annotation at index {index}"
    if not isinstance(item, dict):
        raise bad_request(
            f"{where}: an annotation must be an object with key and value "
            "(or, correcting an evaluator result, parent_annotation_id and value)."
        )
    fields = set(item)
    if "key" in fields and "parent_annotation_id" in fields:
        raise bad_request(
            f'{where}: "key" and "parent_annotation_id" do not go together; send '
            '{"key", "value"} to annotate and {"parent_annotation_id", "value"} '
            '(and optionally "explanation") to correct an evaluator result.'
        )
    if "parent_annotation_id" in fields:
        return _correction_item(where, item, string_limit)
    unknown = sorted(fields - _ANNOTATION_FIELDS)
    if unknown:
        names = ", ".join(f'"{name}"' for name in unknown)
        raise bad_request(
            f'{where}: unknown field(s) {names}; an annotation has exactly "key" and "value".'
        )
    for name in ("key", "value"):
        if name not in item:
            raise bad_request(f'{where}: "{name}" is required.')
    key = item["key"]
    if not isinstance(key, str) or not key:
        raise bad_request(f'{where}: "key" must be a non-empty string.')
    return key, _item_value(item["value"], string_limit)


def _correction_item(where: str, item: dict[str, object], string_limit: int) -> Correction:
    unknown = sorted(set(item) - _CORRECTION_FIELDS)
    if unknown:
        names = ", ".join(f'"{name}"' for name in unknown)
        raise bad_request(
            f"{where}: unknown field(s) {names}; a correction has "
            '"parent_annotation_id", "value" and optionally "explanation".'
        )
    if "value" not in item:
        raise bad_request(f'{where}: "value" is required.')
    parent_id = item["parent_annotation_id"]
    if not isinstance(parent_id, str) or not parent_id:
        raise bad_request(f'{where}: "parent_annotation_id" must be a non-empty string.')
    value = _item_value(item["value"], string_limit)
    explanation = item.get("explanation")
    if "explanation" in item and (
        not isinstance(explanation, str) or js_length(explanation) > MAX_EXPLANATION
    ):
        got = f", got {js_length(explanation)}" if isinstance(explanation, str) else ""
        raise bad_request(
            f'{where}: "explanation" must be a string of at most {MAX_EXPLANATION} characters{got}.'
        )
    return Correction(parent_id, value, explanation if isinstance(explanation, str) else None)


def _item_value(value: object, string_limit: int) -> JsonValue:
    if not _is_annotation_value(value):
        raise bad_request(
            f"Invalid value: {render_value(value)}. A value is a string, a number, a boolean "
            "or a non-empty array of strings."
        )
    if isinstance(value, str) and js_length(value) > string_limit:
        raise bad_request(f"String value exceeds maximum length of {string_limit} characters.")
    return value


def _is_annotation_value(value: object) -> TypeGuard[JsonValue]:
    if isinstance(value, str | bool | int | float):
        return True
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def _metadata(body: Mapping[str, object]) -> Mapping[str, object]:
    if "metadata" not in body:
        return {}
    metadata = body["metadata"]
    if not isinstance(metadata, dict):
        raise bad_request('Invalid request body: "metadata" must be an object.')
    # The current spec types only identity_id; the legacy identityId, source and reviewerId and
    # anything else pass through untyped (the metadata object allows additional properties).
    if "identity_id" in metadata and not isinstance(metadata["identity_id"], str):
        raise bad_request('Invalid request body: "metadata.identity_id" must be a string.')
    return metadata


def _string_list(body: Mapping[str, object], name: str) -> list[str]:
    if name not in body:
        return []
    values = body[name]
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise bad_request(f'Invalid request body: "{name}" must be an array of non-empty strings.')
    if len(values) > MAX_ITEMS:
        raise bad_request(
            f'Invalid request body: "{name}" must have at most {MAX_ITEMS} items, '
            f"got {len(values)}."
        )
    return values


def as_object(payload: object) -> dict[str, object]:
    """The payload if it is a JSON object; else the API's 400."""
    if not isinstance(payload, dict):
        raise bad_request("Request body must be a JSON object.")
    return payload


def _got_length(items: object) -> str:
    if isinstance(items, Sequence) and not isinstance(items, str):
        return f", got {len(items)}"
    return ""


def _invalid_option(value: object, definition: Definition) -> ApiError:
    return bad_request(
        f"Invalid value: {render_value(value)}. Valid options are: {', '.join(definition.options)}."
    )
