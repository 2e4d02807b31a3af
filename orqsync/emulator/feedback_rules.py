"""The rules of the legacy feedback API (docs/api-contract.md, section 5), as pure functions."""

from __future__ import annotations

from collections.abc import Mapping

from .rules import as_object, bad_request, render_value

# The documented product enum (docs/api-contract.md, section 5).
FEEDBACK_PRODUCTS = frozenset(
    {
        "remoteconfigs",
        "deployments",
        "experiments",
        "playgrounds",
        "spreadsheets",
        "spreadsheet_run",
        "llm_evaluator",
        "knowledge",
        "router",
        "workflows",
        "external_events",
        "agents",
        "memory-stores",
        "generic",
        "evaluators",
        "otel",
        "ai-chat",
    }
)
DEFAULT_PRODUCT = "deployments"


def check_feedback(payload: object, new_id: str) -> dict[str, object]:
    """Check a legacy feedback body; return the record to store (id filled with `new_id`)."""
    body = as_object(payload)
    for name in ("property", "trace_id"):
        if name not in body:
            raise bad_request(f'"{name}" is required.')
        if not isinstance(body[name], str) or not body[name]:
            raise bad_request(f'"{name}" must be a non-empty string.')
    if "value" not in body:
        raise bad_request('"value" is required.')
    value = body["value"]
    if not _is_feedback_value(value):
        raise bad_request(
            f'"value" must be a string, a number or an array of strings, got {render_value(value)}.'
        )
    record_id = body.get("id", new_id)
    if not isinstance(record_id, str) or not record_id:
        raise bad_request('"id" must be a non-empty string.')
    product = _product(body, required=False)
    return {
        "property": body["property"],
        "value": value,
        "trace_id": body["trace_id"],
        "id": record_id,
        "product": product,
    }


def check_feedback_removal(payload: object) -> dict[str, str]:
    """Check a feedback removal body; return `{id, trace_id, product}`."""
    body = as_object(payload)
    found: dict[str, str] = {}
    for name in ("id", "trace_id"):
        if name not in body:
            raise bad_request(f'"{name}" is required.')
        value = body[name]
        if not isinstance(value, str) or not value:
            raise bad_request(f'"{name}" must be a non-empty string.')
        found[name] = value
    return {
        "id": found["id"],
        "trace_id": found["trace_id"],
        "product": _product(body, required=True),
    }


def _is_feedback_value(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, str | int | float):
        return True
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _product(body: Mapping[str, object], *, required: bool) -> str:
    if "product" not in body:
        if required:
            raise bad_request('"product" is required.')
        return DEFAULT_PRODUCT
    product = body["product"]
    if not isinstance(product, str) or product not in FEEDBACK_PRODUCTS:
        raise bad_request(
            f'Invalid "product": {render_value(product)}. '
            f"Valid products are: {', '.join(sorted(FEEDBACK_PRODUCTS))}."
        )
    return product
