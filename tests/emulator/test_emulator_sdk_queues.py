"""Conformance: every `annotation_queues` method of orq's official SDK (orq-ai-sdk 4.17) against
the served emulator over TCP. The SDK's models are the reference for shapes and status codes:
it raises on a 200 where it expects a 204, and on a body its model cannot read."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest
from orq_ai_sdk import Orq, models

from orqsync.emulator import Emulator, EmulatorConfig, EmulatorServer

from .emulator_helpers import (
    API_KEY,
    CATEGORY_EVAL,
    DEFINITIONS_YAML,
    EVALUATIONS_YAML,
    SPAN,
    TRACE,
)

ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")
Served = tuple[Emulator, EmulatorServer, Orq, list[httpx.Response]]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One served emulator and SDK client for the module; the client's httpx hook keeps every
    response (read), for the raw JSON the SDK's models drop."""
    folder = tmp_path_factory.mktemp("sdk-queues")
    definitions = folder / "definitions.yaml"
    definitions.write_text(DEFINITIONS_YAML, encoding="utf-8")
    evaluations = folder / "evaluations.yaml"
    evaluations.write_text(EVALUATIONS_YAML, encoding="utf-8")
    emulator = Emulator(
        EmulatorConfig(
            api_keys=(API_KEY,),
            definitions_path=str(definitions),
            evaluations_path=str(evaluations),
        )
    )
    seen: list[httpx.Response] = []

    def keep(response: httpx.Response) -> None:
        response.read()
        seen.append(response)

    with (
        EmulatorServer(emulator) as server,
        httpx.Client(event_hooks={"response": [keep]}) as http,
        Orq(api_key=API_KEY, server_url=server.url, client=http) as sdk,
    ):
        yield emulator, server, sdk, seen
    emulator.close()


@pytest.fixture
def emulator(served: Served) -> Emulator:
    """The module's emulator, wiped before each test."""
    served[0].reset()
    served[3].clear()
    return served[0]


@pytest.fixture
def orq(emulator: Emulator, served: Served) -> Orq:
    return served[2]


@pytest.fixture
def responses(emulator: Emulator, served: Served) -> list[httpx.Response]:
    return served[3]


def new_queue(orq: Orq, name: str = "Support") -> models.AnnotationQueue:
    return orq.annotation_queues.create(display_name=name, description="Reviews", project_id="P1")


def test_sdk_create_reads_the_queue_into_its_model(orq: Orq, emulator: Emulator):
    queue = new_queue(orq, "Support triage")
    assert isinstance(queue, models.AnnotationQueue)
    assert ULID.fullmatch(queue.id)
    assert (queue.display_name, queue.description, queue.project_id) == (
        "Support triage",
        "Reviews",
        "P1",
    )
    assert queue.workspace_id == "emulator-workspace"
    assert queue.human_review_ids == []
    assert queue.metadata.items_count == 0
    assert isinstance(queue.created, datetime) and queue.created.tzinfo is not None
    assert queue.created == queue.updated
    assert (queue.created_by_id, queue.updated_by_id) == (None, None)
    assert [stored["_id"] for stored in emulator.queues()] == [queue.id]


def test_sdk_retrieve_answers_the_queue_and_raises_404_as_error_response(orq: Orq):
    queue = new_queue(orq)
    assert orq.annotation_queues.retrieve(annotation_queue_id=queue.id) == queue
    with pytest.raises(models.ErrorResponse) as raised:
        orq.annotation_queues.retrieve(annotation_queue_id="01JNOSUCHQUEUE000000000000")
    assert raised.value.status_code == 404
    assert raised.value.data.message == (
        "Annotation queue with id 01JNOSUCHQUEUE000000000000 for workspace emulator-workspace "
        "was not found."
    )


def test_sdk_update_changes_the_fields_it_sends(orq: Orq, emulator: Emulator):
    queue = new_queue(orq)
    renamed = orq.annotation_queues.update(annotation_queue_id=queue.id, display_name="Renamed")
    assert (renamed.display_name, renamed.description) == ("Renamed", "Reviews")
    rating = emulator.definitions["rating"].id
    chosen = orq.annotation_queues.update(annotation_queue_id=queue.id, human_review_ids=[rating])
    assert chosen.human_review_ids == [rating]
    moved = orq.annotation_queues.update(annotation_queue_id=queue.id, project_id="P2")
    assert (moved.project_id, moved.human_review_ids) == ("P2", [])
    with pytest.raises(models.APIDefaultError) as raised:
        orq.annotation_queues.update(annotation_queue_id=queue.id, human_review_ids=["rating"])
    assert raised.value.status_code == 400
    assert "not keys" in json.loads(raised.value.body)["message"]


def test_sdk_list_pages_newest_first_both_ways_and_searches(orq: Orq):
    made = [new_queue(orq, f"Queue {number}").id for number in range(5)]
    newest = made[::-1]
    first = orq.annotation_queues.list(limit=2)
    assert isinstance(first, models.ListAnnotationQueuesResponse)
    assert (first.object, [q.id for q in first.data], first.has_more) == ("list", newest[:2], True)
    second = orq.annotation_queues.list(limit=2, starting_after=first.data[-1].id)
    assert ([q.id for q in second.data], second.has_more) == (newest[2:4], True)
    back = orq.annotation_queues.list(limit=2, ending_before=second.data[0].id)
    assert ([q.id for q in back.data], back.has_more) == (newest[:2], False)
    found = orq.annotation_queues.list(search="QUEUE 3")
    assert [q.id for q in found.data] == [made[3]]
    assert orq.annotation_queues.list(updated_by="account-1").data == []


def test_sdk_list_with_a_limit_out_of_range_raises_400(orq: Orq):
    with pytest.raises(models.APIDefaultError) as raised:
        orq.annotation_queues.list(limit=201)
    assert raised.value.status_code == 400
    assert json.loads(raised.value.body)["message"].startswith('Invalid query parameter "limit"')


def test_sdk_delete_takes_the_204_and_the_queue_is_gone(orq: Orq, emulator: Emulator):
    queue = new_queue(orq)
    assert orq.annotation_queues.delete(annotation_queue_id=queue.id) is None
    assert emulator.queues() == []
    with pytest.raises(models.APIDefaultError) as raised:
        orq.annotation_queues.delete(annotation_queue_id=queue.id)
    assert raised.value.status_code == 404


def test_sdk_add_items_returns_only_the_items_created(orq: Orq, emulator: Emulator):
    queue = new_queue(orq)
    created = orq.annotation_queues.add_items(
        annotation_queue_id=queue.id,
        items=[
            {"trace_id": TRACE, "span_id": SPAN},
            models.AnnotationQueueItemRef(trace_id="t2", span_id="s2"),
        ],
    )
    assert all(isinstance(item, models.AnnotationQueueItem) for item in created)
    assert [(item.trace_id, item.span_id) for item in created] == [(TRACE, SPAN), ("t2", "s2")]
    first = created[0]
    assert ULID.fullmatch(first.id)
    assert (first.annotation_queue_id, first.type, first.used_human_review_ids) == (
        queue.id,
        "span",
        [],
    )
    again = orq.annotation_queues.add_items(
        annotation_queue_id=queue.id, items=[{"trace_id": TRACE, "span_id": SPAN}]
    )
    assert again == []
    assert orq.annotation_queues.retrieve(annotation_queue_id=queue.id).metadata.items_count == 2
    assert [item["_id"] for item in emulator.queue_items(queue.id)] == [i.id for i in created]


def test_sdk_add_items_of_1001_spans_raises_400(orq: Orq, emulator: Emulator):
    queue = new_queue(orq)
    items = [{"trace_id": "t", "span_id": f"s{number}"} for number in range(1001)]
    with pytest.raises(models.APIDefaultError) as raised:
        orq.annotation_queues.add_items(annotation_queue_id=queue.id, items=items)
    assert raised.value.status_code == 400
    assert emulator.queue_items(queue.id) == []


def test_sdk_list_items_pages_and_shows_the_definitions_used(orq: Orq, emulator: Emulator):
    queue = new_queue(orq)
    spans = [{"trace_id": TRACE, "span_id": SPAN}] + [
        {"trace_id": "t", "span_id": f"s{number}"} for number in range(3)
    ]
    added = orq.annotation_queues.add_items(annotation_queue_id=queue.id, items=spans)
    made = [item.id for item in added]
    orq.annotations.create(
        trace_id=TRACE, span_id=SPAN, annotations=[{"key": "rating", "value": "good"}]
    )
    first = orq.annotation_queues.list_items(annotation_queue_id=queue.id, limit=3)
    assert isinstance(first, models.ListAnnotationQueueItemsResponse)
    assert ([item.id for item in first.data], first.has_more) == (made[:3], True)
    assert first.data[0].used_human_review_ids == [emulator.definitions["rating"].id]
    rest = orq.annotation_queues.list_items(
        annotation_queue_id=queue.id, limit=3, starting_after=first.data[-1].id
    )
    assert ([item.id for item in rest.data], rest.has_more) == (made[3:], False)
    back = orq.annotation_queues.list_items(
        annotation_queue_id=queue.id, limit=2, ending_before=made[3]
    )
    assert ([item.id for item in back.data], back.has_more) == (made[1:3], True)


def test_sdk_remove_items_takes_the_204(orq: Orq, emulator: Emulator):
    queue = new_queue(orq)
    orq.annotation_queues.add_items(
        annotation_queue_id=queue.id,
        items=[{"trace_id": "t", "span_id": "s1"}, {"trace_id": "t", "span_id": "s2"}],
    )
    result = orq.annotation_queues.remove_items(
        annotation_queue_id=queue.id, span_ids=["s1", "absent"]
    )
    assert result is None
    assert [item["span_id"] for item in emulator.queue_items(queue.id)] == ["s2"]


def test_sdk_clear_takes_the_204_and_empties_the_queue(orq: Orq, emulator: Emulator):
    queue = new_queue(orq)
    orq.annotation_queues.add_items(
        annotation_queue_id=queue.id, items=[{"trace_id": "t", "span_id": "s1"}]
    )
    assert orq.annotation_queues.clear(annotation_queue_id=queue.id) is None
    assert orq.annotation_queues.list_items(annotation_queue_id=queue.id).data == []
    assert orq.annotation_queues.retrieve(annotation_queue_id=queue.id).metadata.items_count == 0


def test_sdk_retrieve_item_parses_an_empty_model_so_the_raw_json_holds_the_span(
    orq: Orq, emulator: Emulator, responses: list[httpx.Response]
):
    queue = new_queue(orq)
    item = orq.annotation_queues.add_items(
        annotation_queue_id=queue.id, items=[{"trace_id": TRACE, "span_id": SPAN}]
    )[0]
    orq.annotations.create(
        trace_id=TRACE,
        span_id=SPAN,
        annotations=[
            {"key": "rating", "value": "bad"},
            {"parent_annotation_id": CATEGORY_EVAL, "value": "billing"},
        ],
        metadata={"identity_id": "user-9"},
    )
    result = orq.annotation_queues.retrieve_item(annotation_queue_id=queue.id, item_id=item.id)
    # SDK 4.17's model of this answer has no fields: everything is in the raw response.
    assert isinstance(result, models.RetrieveAnnotationQueueItemResponseBody)
    assert result.model_dump() == {}
    raw = responses[-1]
    assert raw.request.url.path == f"/v2/annotation-queues/{queue.id}/items/{item.id}"
    span = raw.json()
    assert (span["_id"], span["trace_id"], span["span_id"], span["type"]) == (
        SPAN,
        TRACE,
        SPAN,
        "span",
    )
    rating, correction = span["attributes"]["orq"]["evaluations"]
    assert rating["human_review_id"] == emulator.definitions["rating"].id
    assert (rating["type"], rating["value"], rating["annotator"]) == (
        "string",
        "bad",
        {"kind": "human", "actor_id": "user-9"},
    )
    assert correction["parent_annotation_id"] == CATEGORY_EVAL
    assert "human_review_id" not in correction
    with pytest.raises(models.ErrorResponse) as raised:
        orq.annotation_queues.retrieve_item(annotation_queue_id=queue.id, item_id="nope")
    assert raised.value.status_code == 404


def test_sdk_raises_401_on_queue_routes_for_an_unknown_key(served: Served, emulator: Emulator):
    # The 401 body's string `code` does not fit ErrorResponseData (an int): the SDK raises
    # ResponseValidationError, still an OrqError with the status.
    with (
        Orq(api_key="sk-orq-wrong", server_url=served[1].url) as stranger,
        pytest.raises(models.OrqError) as raised,
    ):
        stranger.annotation_queues.list()
    assert raised.value.status_code == 401
    assert "Authorization token is invalid" in raised.value.body
