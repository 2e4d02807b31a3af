"""The legacy Feedback endpoints: validate, store by id, echo."""

from __future__ import annotations

import re

import httpx
import pytest

from orqsync.emulator import Emulator

from .emulator_helpers import client_for

PRODUCTS = [
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
]
ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
TRACE = "01JD6Y2QK3M8ZP0A1B2C3D4E5F"


def message(response: httpx.Response) -> tuple[int, str]:
    """Status and message of a feedback error, checking the bare {message} shape."""
    body = response.json()
    assert list(body) == ["message"]
    return response.status_code, body["message"]


def test_feedback_is_stored_and_echoed_with_a_generated_id_and_default_product(
    client: httpx.Client, emulator: Emulator
):
    response = client.post(
        "/v2/feedback", json={"property": "rating", "value": ["good"], "trace_id": TRACE}
    )
    assert response.status_code == 200
    record = response.json()
    assert ULID.fullmatch(record.pop("id"))
    assert record == {
        "property": "rating",
        "value": ["good"],
        "trace_id": TRACE,
        "product": "deployments",
    }
    assert emulator.feedback() == [response.json()]


def test_feedback_with_the_same_id_replaces_the_record(client: httpx.Client, emulator: Emulator):
    record = {"id": "01JD6Y3N0C8Q5X7F2W1T9V4B6M", "property": "rating", "trace_id": TRACE}
    client.post("/v2/feedback", json={**record, "value": "good"})
    response = client.post("/v2/feedback", json={**record, "value": "bad", "product": "agents"})
    assert response.json() == {**record, "value": "bad", "product": "agents"}
    assert emulator.feedback() == [{**record, "value": "bad", "product": "agents"}]


@pytest.mark.parametrize("value", ["good", 4.5, 3, ["spelling", "grammatical"], []])
def test_feedback_accepts_a_string_a_number_or_an_array_of_strings(
    client: httpx.Client, value: object
):
    response = client.post(
        "/v2/feedback", json={"property": "p", "value": value, "trace_id": TRACE}
    )
    assert response.status_code == 200
    assert response.json()["value"] == value


def test_feedback_accepts_every_documented_product(client: httpx.Client, emulator: Emulator):
    for product in PRODUCTS:
        body = {"property": "p", "value": "v", "trace_id": TRACE, "product": product}
        assert client.post("/v2/feedback", json=body).status_code == 200, product
    assert sorted(record["product"] for record in emulator.feedback()) == sorted(PRODUCTS)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"value": "v", "trace_id": TRACE}, '"property" is required.'),
        ({"property": "p", "trace_id": TRACE}, '"value" is required.'),
        ({"property": "p", "value": "v"}, '"trace_id" is required.'),
        (
            {"property": "", "value": "v", "trace_id": TRACE},
            '"property" must be a non-empty string.',
        ),
        (
            {"property": "p", "value": True, "trace_id": TRACE},
            '"value" must be a string, a number or an array of strings, got true.',
        ),
        (
            {"property": "p", "value": {"a": 1}, "trace_id": TRACE},
            '"value" must be a string, a number or an array of strings, got {"a":1}.',
        ),
        (
            {"property": "p", "value": "v", "trace_id": TRACE, "id": 5},
            '"id" must be a non-empty string.',
        ),
        (["property"], "Request body must be a JSON object."),
    ],
)
def test_feedback_rejects_a_body_that_breaks_the_schema(
    client: httpx.Client, emulator: Emulator, body: object, expected: str
):
    assert message(client.post("/v2/feedback", json=body)) == (400, expected)
    assert emulator.feedback() == []


def test_feedback_rejects_an_unknown_product(client: httpx.Client):
    body = {"property": "p", "value": "v", "trace_id": TRACE, "product": "mcp"}
    status, text = message(client.post("/v2/feedback", json=body))
    assert status == 400
    assert text.startswith('Invalid "product": mcp. Valid products are: agents, ai-chat, ')


def test_feedback_remove_deletes_the_record_and_echoes_the_body(
    client: httpx.Client, emulator: Emulator
):
    created = client.post(
        "/v2/feedback", json={"property": "rating", "value": "good", "trace_id": TRACE}
    ).json()
    body = {"id": created["id"], "trace_id": TRACE, "product": "deployments"}
    response = client.post("/v2/feedback/remove", json=body)
    assert response.status_code == 200
    assert response.json() == body
    assert emulator.feedback() == []


def test_feedback_remove_of_an_unknown_id_is_404(client: httpx.Client):
    body = {"id": "01JD6Y3N0C8Q5X7F2W1T9V4B6M", "trace_id": TRACE, "product": "deployments"}
    assert message(client.post("/v2/feedback/remove", json=body)) == (
        404,
        f"Feedback with id 01JD6Y3N0C8Q5X7F2W1T9V4B6M for trace {TRACE} was not found.",
    )


def test_feedback_remove_on_another_trace_is_404_and_keeps_the_record(
    client: httpx.Client, emulator: Emulator
):
    record = {"id": "F1", "property": "rating", "value": "good", "trace_id": TRACE}
    client.post("/v2/feedback", json=record)
    body = {"id": "F1", "trace_id": "another-trace", "product": "deployments"}
    assert client.post("/v2/feedback/remove", json=body).status_code == 404
    assert len(emulator.feedback()) == 1


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"trace_id": TRACE, "product": "deployments"}, '"id" is required.'),
        ({"id": "F1", "product": "deployments"}, '"trace_id" is required.'),
        ({"id": "F1", "trace_id": TRACE}, '"product" is required.'),
    ],
)
def test_feedback_remove_requires_id_trace_id_and_product(
    client: httpx.Client, body: dict[str, str], expected: str
):
    assert message(client.post("/v2/feedback/remove", json=body)) == (400, expected)


def test_feedback_endpoints_require_authorization(emulator: Emulator):
    with client_for(emulator, api_key=None) as anonymous:
        created = anonymous.post(
            "/v2/feedback", json={"property": "p", "value": "v", "trace_id": "t"}
        )
        removed = anonymous.post(
            "/v2/feedback/remove", json={"id": "F1", "trace_id": "t", "product": "deployments"}
        )
    assert (created.status_code, removed.status_code) == (401, 401)
    assert emulator.feedback() == []
