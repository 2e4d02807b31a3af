"""Conformance: orq's official Python SDK (orq-ai-sdk) driven against the served emulator.

What the SDK sends, the emulator must accept; what the emulator refuses, the SDK must raise
with the same status. Differences found between the SDK and the contract are noted per test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from orq_ai_sdk import Orq, models
from orq_ai_sdk.utils import BackoffStrategy, RetryConfig

from orqsync.emulator import Emulator, EmulatorConfig, EmulatorServer, FaultConfig

from .emulator_helpers import (
    API_KEY,
    BOOLEAN_EVAL,
    CATEGORY_EVAL,
    DEFINITIONS_YAML,
    ELSEWHERE_EVAL,
    EVALUATIONS_YAML,
    NUMBER_EVAL,
    SPAN,
    STRING_EVAL,
    TRACE,
)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Emulator, EmulatorServer, Orq]]:
    """One served emulator and SDK client for the module: an Orq client takes 50 ms to build."""
    folder = tmp_path_factory.mktemp("sdk")
    path = folder / "definitions.yaml"
    path.write_text(DEFINITIONS_YAML, encoding="utf-8")
    evaluations = folder / "evaluations.yaml"
    evaluations.write_text(EVALUATIONS_YAML, encoding="utf-8")
    emulator = Emulator(
        EmulatorConfig(
            api_keys=(API_KEY,),
            definitions_path=str(path),
            evaluations_path=str(evaluations),
        )
    )
    with EmulatorServer(emulator) as server, Orq(api_key=API_KEY, server_url=server.url) as sdk:
        yield emulator, server, sdk
    emulator.close()


@pytest.fixture
def emulator(served: tuple[Emulator, EmulatorServer, Orq]) -> Emulator:
    """The module's emulator, wiped before each test."""
    served[0].reset()
    return served[0]


@pytest.fixture
def server(emulator: Emulator, served: tuple[Emulator, EmulatorServer, Orq]) -> EmulatorServer:
    return served[1]


@pytest.fixture
def orq(emulator: Emulator, served: tuple[Emulator, EmulatorServer, Orq]) -> Orq:
    return served[2]


def status_of(error: pytest.ExceptionInfo[models.OrqError]) -> int:
    return error.value.status_code


def test_sdk_create_of_every_definition_type_is_accepted(orq: Orq, emulator: Emulator):
    result = orq.annotations.create(
        trace_id=TRACE,
        span_id=SPAN,
        annotations=[
            {"key": "rating", "value": "good"},
            {"key": "defects", "value": ["hallucination", "ambiguity"]},
            {"key": "confidence_score", "value": 0.95},
            {"key": "correction", "value": "Say it shorter."},
            {"key": "approved", "value": False},
        ],
        metadata={"identity_id": "user-123"},
    )
    assert result is None
    assert emulator.span(TRACE, SPAN) == {
        "annotations": {
            "rating": "good",
            "defects": ["hallucination", "ambiguity"],
            "confidence_score": 0.95,
            "correction": "Say it shorter.",
            "approved": False,
        },
        "metadata": {
            key: {"identity_id": "user-123"}
            for key in ("rating", "defects", "confidence_score", "correction", "approved")
        },
        "corrections": {},
    }


def test_sdk_create_replaces_the_value_of_a_key(orq: Orq, emulator: Emulator):
    for value in ("good", "bad"):
        orq.annotations.create(
            trace_id=TRACE, span_id=SPAN, annotations=[{"key": "rating", "value": value}]
        )
    assert emulator.span(TRACE, SPAN)["annotations"] == {"rating": "bad"}


def test_sdk_sends_integers_as_numbers_the_range_accepts(orq: Orq, emulator: Emulator):
    orq.annotations.create(
        trace_id=TRACE, span_id=SPAN, annotations=[{"key": "confidence_score", "value": 1}]
    )
    assert emulator.span(TRACE, SPAN)["annotations"]["confidence_score"] == 1


def test_sdk_strips_unknown_item_fields_before_sending(orq: Orq, emulator: Emulator):
    # The SDK's pydantic models drop `source`, so the emulator's 400 for unknown item fields
    # is only reachable by raw HTTP clients.
    orq.annotations.create(
        trace_id=TRACE,
        span_id=SPAN,
        annotations=[{"key": "rating", "value": "good", "source": "ui"}],  # type: ignore[list-item]
    )
    assert emulator.requests()[-1].status == 200


@pytest.mark.parametrize(
    ("item", "status", "message"),
    [
        (
            {"key": "rating", "value": "meh"},
            400,
            "Invalid value: meh. Valid options are: good, bad.",
        ),
        ({"key": "confidence_score", "value": 3}, 400, "Value 3 is out of range [0, 1]."),
        (
            {"key": "correction", "value": "x" * 201},
            400,
            "String value exceeds maximum length of 200 characters.",
        ),
        (
            {"key": "tone", "value": "calm"},
            404,
            'The human review with key "tone" for workspace emulator-workspace was not found.',
        ),
        (
            {"parent_annotation_id": "01JEVAL", "value": "x"},
            404,
            f'The evaluation with id "01JEVAL" for span {SPAN} was not found.',
        ),
        (
            {"parent_annotation_id": ELSEWHERE_EVAL, "value": True},
            404,
            f'The evaluation with id "{ELSEWHERE_EVAL}" for span {SPAN} was not found.',
        ),
        (
            {"parent_annotation_id": BOOLEAN_EVAL, "value": "yes"},
            400,
            "Invalid value: yes. Expected true or false.",
        ),
        (
            {"parent_annotation_id": CATEGORY_EVAL, "value": ["sales"]},
            400,
            "Invalid value: sales. Valid options are: billing, technical.",
        ),
        (
            {"parent_annotation_id": STRING_EVAL, "value": "x", "explanation": "e" * 3001},
            400,
            'Invalid annotation at index 0: "explanation" must be a string of at most 3000 '
            "characters, got 3001.",
        ),
    ],
)
def test_sdk_raises_the_emulators_refusals_with_their_status(
    orq: Orq, emulator: Emulator, item: dict[str, object], status: int, message: str
):
    with pytest.raises(models.APIDefaultError) as raised:
        orq.annotations.create(trace_id=TRACE, span_id=SPAN, annotations=[item])  # type: ignore[list-item]
    assert status_of(raised) == status
    assert json.loads(raised.value.body)["message"] == message
    assert emulator.annotations() == []
    assert emulator.corrections() == []


def test_sdk_raises_404_for_an_unknown_span(make_emulator):
    emulator = make_emulator(known_spans=frozenset({(TRACE, SPAN)}))
    with EmulatorServer(emulator) as server, Orq(api_key=API_KEY, server_url=server.url) as orq:
        with pytest.raises(models.APIDefaultError) as raised:
            orq.annotations.create(
                trace_id=TRACE,
                span_id="ffffffffffffffff",
                annotations=[{"key": "rating", "value": "good"}],
            )
        assert status_of(raised) == 404
        assert "Span with id ffffffffffffffff" in raised.value.body


def test_sdk_raises_401_for_an_unknown_api_key(server: EmulatorServer):
    # SDK 4.17 types a 401 body as {message, code: int}; the emulator's string code makes it
    # raise ResponseValidationError, still an OrqError carrying the status.
    with (
        Orq(api_key="sk-orq-wrong", server_url=server.url) as stranger,
        pytest.raises(models.OrqError) as raised,
    ):
        stranger.annotations.create(
            trace_id=TRACE, span_id=SPAN, annotations=[{"key": "rating", "value": "good"}]
        )
    assert status_of(raised) == 401
    assert "Authorization token is invalid" in raised.value.body


def test_sdk_delete_removes_keys_and_an_empty_delete_is_refused(orq: Orq, emulator: Emulator):
    orq.annotations.create(
        trace_id=TRACE,
        span_id=SPAN,
        annotations=[{"key": "rating", "value": "good"}, {"key": "approved", "value": True}],
    )
    assert orq.annotations.delete(trace_id=TRACE, span_id=SPAN, keys=["rating"]) is None
    assert emulator.span(TRACE, SPAN)["annotations"] == {"approved": True}
    with pytest.raises(models.APIDefaultError) as raised:
        orq.annotations.delete(trace_id=TRACE, span_id=SPAN)
    assert status_of(raised) == 400


def test_sdk_delete_with_keys_parent_ids_and_metadata_removes_both(orq: Orq, emulator: Emulator):
    orq.annotations.create(
        trace_id=TRACE,
        span_id=SPAN,
        annotations=[
            {"key": "rating", "value": "good"},
            {"parent_annotation_id": BOOLEAN_EVAL, "value": False},
        ],
    )
    result = orq.annotations.delete(
        trace_id=TRACE,
        span_id=SPAN,
        keys=["rating"],
        parent_annotation_ids=[BOOLEAN_EVAL],
        metadata={"identity_id": "u"},
    )
    assert result is None
    assert emulator.annotations() == []
    assert emulator.corrections() == []


def test_sdk_create_with_an_annotations2_item_stores_a_correction(orq: Orq, emulator: Emulator):
    item = models.Annotations2(
        parent_annotation_id=CATEGORY_EVAL, value="technical", explanation="asks about a bug"
    )
    result = orq.annotations.create(
        trace_id=TRACE, span_id=SPAN, annotations=[item], metadata={"identity_id": "u1"}
    )
    assert result is None
    assert emulator.corrections() == [
        {
            "trace_id": TRACE,
            "span_id": SPAN,
            "parent_annotation_id": CATEGORY_EVAL,
            "value": "technical",
            "explanation": "asks about a bug",
            "metadata": {"identity_id": "u1"},
        }
    ]


def test_sdk_create_with_mixed_items_stores_annotations_and_corrections(
    orq: Orq, emulator: Emulator
):
    orq.annotations.create(
        trace_id=TRACE,
        span_id=SPAN,
        annotations=[
            models.Annotations1(key="rating", value="bad"),
            models.Annotations2(parent_annotation_id=NUMBER_EVAL, value=0.25),
            {"key": "approved", "value": True},
            {"parent_annotation_id": BOOLEAN_EVAL, "value": True, "explanation": "it is right"},
        ],
    )
    assert emulator.span(TRACE, SPAN) == {
        "annotations": {"rating": "bad", "approved": True},
        "metadata": {"rating": {}, "approved": {}},
        "corrections": {
            NUMBER_EVAL: {"value": 0.25, "explanation": None},
            BOOLEAN_EVAL: {"value": True, "explanation": "it is right"},
        },
    }


def test_sdk_delete_of_an_unknown_parent_id_raises_404(orq: Orq, emulator: Emulator):
    orq.annotations.create(
        trace_id=TRACE,
        span_id=SPAN,
        annotations=[{"parent_annotation_id": STRING_EVAL, "value": "kept"}],
    )
    with pytest.raises(models.APIDefaultError) as raised:
        orq.annotations.delete(
            trace_id=TRACE, span_id=SPAN, parent_annotation_ids=[STRING_EVAL, "01JEVAL"]
        )
    assert status_of(raised) == 404
    assert json.loads(raised.value.body)["code"] == "evaluation_not_found"
    assert [row["value"] for row in emulator.corrections()] == ["kept"]


def test_sdk_delete_of_eleven_parent_ids_raises_400(orq: Orq):
    with pytest.raises(models.APIDefaultError) as raised:
        orq.annotations.delete(
            trace_id=TRACE, span_id=SPAN, parent_annotation_ids=[BOOLEAN_EVAL] * 11
        )
    assert status_of(raised) == 400
    assert json.loads(raised.value.body)["message"] == (
        'Invalid request body: "parent_annotation_ids" must have at most 10 items, got 11.'
    )


def test_sdk_delete_of_an_unknown_key_raises_404(orq: Orq):
    with pytest.raises(models.APIDefaultError) as raised:
        orq.annotations.delete(trace_id=TRACE, span_id=SPAN, keys=["tone"])
    assert status_of(raised) == 404


def test_sdk_feedback_create_is_echoed_into_its_response_model(orq: Orq, emulator: Emulator):
    created = orq.feedback.create(
        request={"field": "rating", "value": ["good"], "trace_id": "01JD6Y2QK3M8ZP0A1B2C3D4E5F"}
    )
    assert isinstance(created, models.PostV2FeedbackResponseBody)
    assert (created.property, created.value, created.product) == ("rating", ["good"], "deployments")
    assert created.id is not None and len(created.id) == 26
    assert emulator.feedback()[0]["id"] == created.id


def test_sdk_feedback_remove_succeeds_then_raises_404(orq: Orq, emulator: Emulator):
    created = orq.feedback.create(
        request={
            "id": "F1",
            "field": "rating",
            "value": "good",
            "trace_id": "tr",
            "product": "agents",
        }
    )
    assert created.id == "F1"
    removed = orq.feedback.remove(request={"id": "F1", "trace_id": "tr", "product": "agents"})
    assert (removed.id, removed.trace_id, removed.product) == ("F1", "tr", "agents")
    assert emulator.feedback() == []
    with pytest.raises(models.OrqError) as raised:
        orq.feedback.remove(request={"id": "F1", "trace_id": "tr", "product": "agents"})
    assert status_of(raised) == 404
    assert raised.value.message == "Feedback with id F1 for trace tr was not found."


def test_sdk_feedback_product_outside_the_contract_is_400(orq: Orq):
    # SDK 4.17 added `mcp_gateway` to the enum; the contract (SDK 4.13) lists 17 products.
    with pytest.raises(models.OrqError) as raised:
        orq.feedback.create(
            request={"field": "p", "value": "v", "trace_id": "t", "product": "mcp_gateway"}
        )
    assert status_of(raised) == 400


def test_sdk_retries_injected_server_errors_to_success(make_emulator):
    emulator = make_emulator(faults=FaultConfig(seed=11, error_rate=0.4))
    retries = RetryConfig("backoff", BackoffStrategy(1, 5, 1.5, 30_000, jitter_ms=0), False)
    with (
        EmulatorServer(emulator) as server,
        Orq(api_key=API_KEY, server_url=server.url, retry_config=retries) as orq,
    ):
        for number in range(15):
            orq.annotations.create(
                trace_id="t", span_id=f"s{number}", annotations=[{"key": "rating", "value": "good"}]
            )
    assert len(emulator.annotations()) == 15
    assert emulator.stats()["faults"]["server_error"] > 0


def test_sdk_does_not_retry_a_dropped_connection(make_emulator):
    # retry_connection_errors covers httpx NetworkError only; a server that hangs up raises
    # RemoteProtocolError, which the SDK passes through: callers must handle it themselves.
    emulator = make_emulator(faults=FaultConfig(drop_rate=1.0))
    retries = RetryConfig("backoff", BackoffStrategy(1, 5, 1.5, 2_000, jitter_ms=0), True)
    with (
        EmulatorServer(emulator) as server,
        Orq(api_key=API_KEY, server_url=server.url, retry_config=retries) as orq,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        orq.annotations.create(
            trace_id="t", span_id="s", annotations=[{"key": "rating", "value": "good"}]
        )
    assert len(emulator.requests()) == 1
