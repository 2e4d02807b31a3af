"""Annotation queues (docs/api-contract.md, sections 2.7 and 4.6): every route, its checks,
pagination, storage and inspection."""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from orqsync.emulator import Emulator, FaultConfig

from .emulator_helpers import (
    BOOLEAN_EVAL,
    CATEGORY_EVAL,
    SPAN,
    TRACE,
    annotate,
    client_for,
)

QUEUES = "/v2/annotation-queues"
ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")
WORKSPACE = "emulator-workspace"


def create(http: httpx.Client, name: str = "Support", **extra: object) -> dict[str, object]:
    body = {"display_name": name, "description": "Reviews", "project_id": "P1", **extra}
    response = http.post(QUEUES, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def add(http: httpx.Client, queue_id: object, *spans: tuple[str, str]) -> httpx.Response:
    items = [{"trace_id": trace, "span_id": span} for trace, span in spans]
    return http.post(f"{QUEUES}/{queue_id}/items", json={"items": items})


def spans(count: int) -> list[tuple[str, str]]:
    return [("t", f"s{number}") for number in range(count)]


def page(http: httpx.Client, path: str, **params: object) -> tuple[list[object], bool]:
    response = http.get(path, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    return [entry["_id"] for entry in body["data"]], body["has_more"]


def message(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["message"]


def missing_queue(queue_id: str) -> str:
    return f"Annotation queue with id {queue_id} for workspace {WORKSPACE} was not found."


# Queues: create, retrieve, update, delete.


def test_create_answers_the_whole_queue(client: httpx.Client, emulator: Emulator):
    queue = create(client, "Support triage")
    assert set(queue) == {
        "_id",
        "display_name",
        "description",
        "workspace_id",
        "project_id",
        "human_review_ids",
        "metadata",
        "created",
        "updated",
    }
    assert ULID.fullmatch(str(queue["_id"]))
    assert (queue["display_name"], queue["description"], queue["project_id"]) == (
        "Support triage",
        "Reviews",
        "P1",
    )
    assert queue["workspace_id"] == WORKSPACE
    assert queue["human_review_ids"] == []
    assert queue["metadata"] == {"items_count": 0}
    assert queue["created"] == queue["updated"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(queue["created"]))
    stamp = datetime.fromisoformat(str(queue["created"]).replace("Z", "+00:00"))
    assert abs((datetime.now(timezone.utc) - stamp).total_seconds()) < 60
    assert emulator.queues() == [queue]


def test_create_ignores_extra_fields_like_the_other_routes(client: httpx.Client):
    queue = create(client, human_review_ids=["X"], color="blue")
    assert queue["human_review_ids"] == []
    assert "color" not in queue


def test_create_takes_an_empty_description(client: httpx.Client):
    assert create(client, description="")["description"] == ""


@pytest.mark.parametrize("name", ["display_name", "description", "project_id"])
def test_create_without_a_required_field_is_400(client: httpx.Client, name: str):
    body = {"display_name": "Q", "description": "d", "project_id": "P1"}
    del body[name]
    assert message(client.post(QUEUES, json=body)) == (
        400,
        f'Invalid request body: "{name}" is required; a queue needs display_name, '
        "description and project_id.",
    )


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("display_name", "", '"display_name" must be a non-empty string, got "".'),
        ("display_name", 5, '"display_name" must be a non-empty string, got 5.'),
        ("project_id", None, '"project_id" must be a non-empty string, got null.'),
        ("description", ["d"], '"description" must be a string, got ["d"].'),
    ],
)
def test_create_with_a_field_of_the_wrong_type_is_400(
    client: httpx.Client, emulator: Emulator, field: str, value: object, expected: str
):
    body = {"display_name": "Q", "description": "d", "project_id": "P1", field: value}
    assert message(client.post(QUEUES, json=body)) == (400, f"Invalid request body: {expected}")
    assert emulator.queues() == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "Request body must be a JSON object."),
        (b"[]", "Request body must be a JSON object."),
        (b"{", "Request body is not valid JSON: "),
    ],
)
def test_create_with_a_body_that_is_no_object_is_400(
    client: httpx.Client, content: bytes, expected: str
):
    status, text = message(client.post(QUEUES, content=content))
    assert status == 400
    assert text.startswith(expected)


def test_retrieve_answers_the_queue_and_404_for_an_unknown_id(client: httpx.Client):
    queue = create(client)
    response = client.get(f"{QUEUES}/{queue['_id']}")
    assert (response.status_code, response.json()) == (200, queue)
    assert message(client.get(f"{QUEUES}/01JNOSUCHQUEUE0000000000000")) == (
        404,
        missing_queue("01JNOSUCHQUEUE0000000000000"),
    )


def test_update_changes_only_the_fields_sent(client: httpx.Client):
    queue = create(client)
    response = client.patch(
        f"{QUEUES}/{queue['_id']}", json={"display_name": "Renamed", "description": ""}
    )
    assert response.status_code == 200
    changed = response.json()
    assert (changed["display_name"], changed["description"]) == ("Renamed", "")
    assert changed["project_id"] == "P1"
    assert (changed["_id"], changed["created"]) == (queue["_id"], queue["created"])
    assert changed["updated"] >= queue["updated"]
    assert client.get(f"{QUEUES}/{queue['_id']}").json() == changed


def test_update_sets_human_review_ids_by_definition_id(client: httpx.Client, emulator: Emulator):
    queue = create(client)
    ids = [emulator.definitions["rating"].id, emulator.definitions["approved"].id]
    response = client.patch(f"{QUEUES}/{queue['_id']}", json={"human_review_ids": ids})
    assert response.json()["human_review_ids"] == ids
    # Setting project_id clears them, and wins over human_review_ids in the same body (the SDK).
    both = {"project_id": "P2", "human_review_ids": ids}
    cleared = client.patch(f"{QUEUES}/{queue['_id']}", json=both).json()
    assert (cleared["project_id"], cleared["human_review_ids"]) == ("P2", [])


def test_update_refuses_a_key_where_a_definition_id_belongs(client: httpx.Client):
    queue = create(client)
    response = client.patch(f"{QUEUES}/{queue['_id']}", json={"human_review_ids": ["rating"]})
    assert message(response) == (
        400,
        'Invalid request body: "human_review_ids" names rating, which is not the id of a '
        "Human Review definition; send definition ids (ULIDs), not keys.",
    )
    bad_list = client.patch(f"{QUEUES}/{queue['_id']}", json={"human_review_ids": "x"})
    assert bad_list.status_code == 400
    assert client.get(f"{QUEUES}/{queue['_id']}").json() == queue


def test_an_empty_update_changes_nothing(client: httpx.Client):
    queue = create(client)
    response = client.patch(f"{QUEUES}/{queue['_id']}", json={})
    assert (response.status_code, response.json()) == (200, queue)


def test_update_checks_the_body_before_the_queue(client: httpx.Client):
    assert client.patch(f"{QUEUES}/nope", json={"display_name": 1}).status_code == 400
    assert message(client.patch(f"{QUEUES}/nope", json={"display_name": "x"})) == (
        404,
        missing_queue("nope"),
    )


def test_delete_answers_204_and_removes_the_queue_and_its_items(
    client: httpx.Client, emulator: Emulator
):
    queue = create(client)
    kept = create(client, "Kept")
    add(client, queue["_id"], (TRACE, SPAN))
    add(client, kept["_id"], (TRACE, SPAN))
    response = client.delete(f"{QUEUES}/{queue['_id']}")
    assert (response.status_code, response.content) == (204, b"")
    assert client.get(f"{QUEUES}/{queue['_id']}").status_code == 404
    assert emulator.queue_items(str(queue["_id"])) == []
    assert [q["_id"] for q in emulator.queues()] == [kept["_id"]]
    assert len(emulator.queue_items(str(kept["_id"]))) == 1
    assert message(client.delete(f"{QUEUES}/{queue['_id']}")) == (
        404,
        missing_queue(str(queue["_id"])),
    )


# Listing queues: newest first, cursors both ways, limits.


def test_queues_list_newest_first_with_a_default_page_of_ten(client: httpx.Client):
    made = [create(client, f"Q{number}")["_id"] for number in range(12)]
    ids, more = page(client, QUEUES)
    assert ids == made[::-1][:10]
    assert more is True
    ids, more = page(client, QUEUES, starting_after=ids[-1])
    assert (ids, more) == (made[1::-1], False)


def test_queue_pages_forward_and_back(client: httpx.Client):
    made = [create(client, f"Q{number}")["_id"] for number in range(5)]
    newest = made[::-1]
    first, more = page(client, QUEUES, limit=2)
    assert (first, more) == (newest[:2], True)
    second, more = page(client, QUEUES, limit=2, starting_after=first[-1])
    assert (second, more) == (newest[2:4], True)
    third, more = page(client, QUEUES, limit=2, starting_after=second[-1])
    assert (third, more) == (newest[4:], False)
    back, more = page(client, QUEUES, limit=2, ending_before=third[0])
    assert (back, more) == (newest[2:4], True)
    back, more = page(client, QUEUES, limit=2, ending_before=back[0])
    assert (back, more) == (newest[:2], False)
    assert page(client, QUEUES, limit=2, ending_before=newest[0]) == ([], False)
    assert page(client, QUEUES, limit=200) == (newest, False)
    assert page(client, QUEUES, limit=1, ending_before=newest[2]) == (newest[1:2], True)


@pytest.mark.parametrize(
    "limit",
    ["0", "201", "-1", "1.5", "ten", "+5", " 5", pytest.param("9" * 5000, id="5000-digits")],
)
def test_a_limit_outside_1_to_200_is_400(client: httpx.Client, limit: str):
    assert message(client.get(QUEUES, params={"limit": limit})) == (
        400,
        f'Invalid query parameter "limit": {limit}. Pass an integer from 1 to 200 (default 10).',
    )


def test_limits_at_the_edges_are_accepted(client: httpx.Client):
    create(client)
    assert len(page(client, QUEUES, limit=1)[0]) == 1
    assert len(page(client, QUEUES, limit=200)[0]) == 1


def test_an_unknown_cursor_is_400(client: httpx.Client):
    create(client)
    for name in ("starting_after", "ending_before"):
        assert message(client.get(QUEUES, params={name: "01JNOSUCH"})) == (
            400,
            f'Invalid query parameter "{name}": no annotation queue with id 01JNOSUCH in this '
            "list. Pass the _id of an object of the previous page, or leave it out to start at "
            "the first page.",
        )


def test_both_cursors_at_once_are_400(client: httpx.Client):
    queue_id = create(client)["_id"]
    response = client.get(QUEUES, params={"starting_after": queue_id, "ending_before": queue_id})
    assert message(response)[0] == 400
    assert "do not go together" in message(response)[1]


def test_a_deleted_queue_is_no_cursor(client: httpx.Client):
    first = create(client)["_id"]
    create(client)
    client.delete(f"{QUEUES}/{first}")
    assert client.get(QUEUES, params={"starting_after": first}).status_code == 400


def test_search_matches_a_display_name_substring_in_any_case(client: httpx.Client):
    support = create(client, "Customer Support")["_id"]
    create(client, "Billing")
    street = create(client, "STRASSE checks")["_id"]
    assert page(client, QUEUES, search="support") == ([support], False)
    assert page(client, QUEUES, search="straße") == ([street], False)
    assert page(client, QUEUES, search="nothing") == ([], False)


def test_updated_by_matches_nothing_written_with_an_api_key(client: httpx.Client):
    create(client)
    assert page(client, QUEUES, updated_by="acc-1,acc-2") == ([], False)
    assert len(page(client, QUEUES, updated_by="")[0]) == 1


# Items: add, list, remove, clear, retrieve.


def test_add_answers_a_bare_list_of_the_items_created(client: httpx.Client, emulator: Emulator):
    queue_id = create(client)["_id"]
    response = add(client, queue_id, (TRACE, SPAN), ("t2", "s2"))
    assert response.status_code == 200
    items = response.json()
    assert [(item["trace_id"], item["span_id"]) for item in items] == [(TRACE, SPAN), ("t2", "s2")]
    first = items[0]
    assert set(first) == {
        "_id",
        "annotation_queue_id",
        "workspace_id",
        "type",
        "trace_id",
        "span_id",
        "used_human_review_ids",
    }
    assert ULID.fullmatch(first["_id"])
    assert first["_id"] != items[1]["_id"]
    assert (first["annotation_queue_id"], first["workspace_id"], first["type"]) == (
        queue_id,
        WORKSPACE,
        "span",
    )
    assert first["used_human_review_ids"] == []
    assert emulator.queue_items(str(queue_id)) == items
    assert client.get(f"{QUEUES}/{queue_id}").json()["metadata"] == {"items_count": 2}


def test_adding_a_span_already_queued_is_a_no_op(client: httpx.Client, emulator: Emulator):
    queue_id = create(client)["_id"]
    first = add(client, queue_id, (TRACE, SPAN)).json()
    again = add(client, queue_id, (TRACE, SPAN))
    assert (again.status_code, again.json()) == (200, [])
    mixed = add(client, queue_id, ("t2", "s2"), (TRACE, SPAN), ("t2", "s2")).json()
    assert [(item["trace_id"], item["span_id"]) for item in mixed] == [("t2", "s2")]
    assert [item["_id"] for item in emulator.queue_items(str(queue_id))] == [
        first[0]["_id"],
        mixed[0]["_id"],
    ]


def test_the_same_span_may_sit_in_two_queues(client: httpx.Client):
    one, two = create(client, "One")["_id"], create(client, "Two")["_id"]
    assert len(add(client, one, (TRACE, SPAN)).json()) == 1
    assert len(add(client, two, (TRACE, SPAN)).json()) == 1


def test_used_human_review_ids_are_the_ids_of_the_definitions_annotated(
    client: httpx.Client, emulator: Emulator
):
    queue_id = create(client)["_id"]
    add(client, queue_id, (TRACE, SPAN), ("t2", "s2"))
    annotate(client, {"key": "rating", "value": "good"}, {"key": "approved", "value": True})
    items = client.get(f"{QUEUES}/{queue_id}/items").json()["data"]
    ids = emulator.definitions
    assert items[0]["used_human_review_ids"] == [ids["approved"].id, ids["rating"].id]
    assert items[1]["used_human_review_ids"] == []
    # A value removed no longer counts.
    client.request(
        "DELETE", f"/v2/traces/{TRACE}/spans/{SPAN}/annotation", json={"keys": ["approved"]}
    )
    items = client.get(f"{QUEUES}/{queue_id}/items").json()["data"]
    assert items[0]["used_human_review_ids"] == [ids["rating"].id]


def test_one_thousand_items_fit_in_one_call_and_one_more_is_400(
    client: httpx.Client, emulator: Emulator
):
    queue_id = create(client)["_id"]
    many = spans(1001)
    assert message(add(client, queue_id, *many)) == (
        400,
        'Invalid request body: "items" must be an array of 1 to 1000 items, got 1001; send '
        "larger batches in several calls.",
    )
    assert emulator.queue_items(str(queue_id)) == []
    response = add(client, queue_id, *many[:1000])
    assert (response.status_code, len(response.json())) == (200, 1000)
    assert client.get(f"{QUEUES}/{queue_id}").json()["metadata"] == {"items_count": 1000}
    assert len(add(client, queue_id, many[1000]).json()) == 1


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, 'Invalid request body: "items" is required: a list of {"trace_id", "span_id"}.'),
        (
            {"items": []},
            'Invalid request body: "items" must be an array of 1 to 1000 items, got 0; send '
            "larger batches in several calls.",
        ),
        (
            {"items": "x"},
            'Invalid request body: "items" must be an array of 1 to 1000 items; send larger '
            "batches in several calls.",
        ),
        (
            {"items": ["s"]},
            'Invalid item at index 0: an item must be an object with "trace_id" and "span_id".',
        ),
        (
            {"items": [{"trace_id": "t", "span_id": "s"}, {"trace_id": "t"}]},
            'Invalid item at index 1: "span_id" must be a non-empty string.',
        ),
        (
            {"items": [{"trace_id": "", "span_id": "s"}]},
            'Invalid item at index 0: "trace_id" must be a non-empty string.',
        ),
        (
            {"items": [{"trace_id": "t", "span_id": "s", "type": "span"}]},
            'Invalid item at index 0: unknown field(s) "type"; an item has exactly "trace_id" '
            'and "span_id".',
        ),
    ],
)
def test_add_with_a_bad_body_is_400_and_adds_nothing(
    client: httpx.Client, emulator: Emulator, body: object, expected: str
):
    queue_id = create(client)["_id"]
    assert message(client.post(f"{QUEUES}/{queue_id}/items", json=body)) == (400, expected)
    assert emulator.queue_items(str(queue_id)) == []


def test_add_to_an_unknown_queue_is_404(client: httpx.Client):
    assert message(add(client, "nope", (TRACE, SPAN))) == (404, missing_queue("nope"))


def test_add_of_a_span_the_emulator_does_not_know_is_404_and_adds_none(make_emulator):
    emulator = make_emulator(known_spans=frozenset({(TRACE, SPAN)}))
    with client_for(emulator) as http:
        queue_id = create(http)["_id"]
        response = add(http, queue_id, (TRACE, SPAN), (TRACE, "0000000000000000"))
        assert message(response) == (
            404,
            f"Span with id 0000000000000000 for workspace {WORKSPACE} was not found.",
        )
        assert emulator.queue_items(str(queue_id)) == []
        assert len(add(http, queue_id, (TRACE, SPAN)).json()) == 1


def test_items_list_in_the_order_added_and_page_both_ways(client: httpx.Client):
    queue_id = create(client)["_id"]
    made = [item["_id"] for item in add(client, queue_id, *spans(5)).json()]
    path = f"{QUEUES}/{queue_id}/items"
    assert page(client, path) == (made, False)
    first, more = page(client, path, limit=2)
    assert (first, more) == (made[:2], True)
    second, more = page(client, path, limit=2, starting_after=first[-1])
    assert (second, more) == (made[2:4], True)
    third, more = page(client, path, limit=2, starting_after=second[-1])
    assert (third, more) == (made[4:], False)
    assert page(client, path, limit=2, ending_before=third[0]) == (made[2:4], True)
    assert page(client, path, limit=3, ending_before=made[2]) == (made[:2], False)
    assert page(client, path, limit=2, ending_before=made[0]) == ([], False)


def test_items_default_to_a_page_of_ten(client: httpx.Client):
    queue_id = create(client)["_id"]
    made = [item["_id"] for item in add(client, queue_id, *spans(11)).json()]
    assert page(client, f"{QUEUES}/{queue_id}/items") == (made[:10], True)


def test_an_item_of_another_queue_is_no_cursor(client: httpx.Client):
    one, two = create(client, "One")["_id"], create(client, "Two")["_id"]
    add(client, one, (TRACE, SPAN))
    other = add(client, two, (TRACE, SPAN)).json()[0]["_id"]
    response = client.get(f"{QUEUES}/{one}/items", params={"starting_after": other})
    assert message(response) == (
        400,
        f'Invalid query parameter "starting_after": no item with id {other} in this list. Pass '
        "the _id of an object of the previous page, or leave it out to start at the first page.",
    )


def test_items_of_an_unknown_queue_are_404_and_a_bad_limit_400(client: httpx.Client):
    assert message(client.get(f"{QUEUES}/nope/items")) == (404, missing_queue("nope"))
    assert client.get(f"{QUEUES}/nope/items", params={"limit": 0}).status_code == 400


def test_remove_answers_204_and_absent_spans_are_no_ops(client: httpx.Client, emulator: Emulator):
    queue_id = create(client)["_id"]
    add(client, queue_id, ("t1", "s1"), ("t2", "s1"), ("t2", "s2"), ("t3", "s3"))
    response = client.post(
        f"{QUEUES}/{queue_id}/items/remove", json={"span_ids": ["s1", "s3", "absent"]}
    )
    assert (response.status_code, response.content) == (204, b"")
    remaining = emulator.queue_items(str(queue_id))
    assert [(item["trace_id"], item["span_id"]) for item in remaining] == [("t2", "s2")]
    again = client.post(f"{QUEUES}/{queue_id}/items/remove", json={"span_ids": ["s1"]})
    assert again.status_code == 204
    assert client.get(f"{QUEUES}/{queue_id}").json()["metadata"] == {"items_count": 1}


NOT_SPAN_IDS = 'Invalid request body: "span_ids" must be an array of non-empty strings.'


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, 'Invalid request body: "span_ids" is required: a list of span ids.'),
        ({"span_ids": []}, 'Invalid request body: "span_ids" must have 1 to 1000 items, got 0.'),
        (
            {"span_ids": ["s"] * 1001},
            'Invalid request body: "span_ids" must have 1 to 1000 items, got 1001.',
        ),
        ({"span_ids": [""]}, NOT_SPAN_IDS),
        ({"span_ids": "s1"}, NOT_SPAN_IDS),
    ],
)
def test_remove_with_a_bad_body_is_400(
    client: httpx.Client, emulator: Emulator, body: object, expected: str
):
    queue_id = create(client)["_id"]
    add(client, queue_id, ("t", "s"))
    response = client.post(f"{QUEUES}/{queue_id}/items/remove", json=body)
    assert message(response) == (400, expected)
    assert len(emulator.queue_items(str(queue_id))) == 1


def test_remove_from_an_unknown_queue_is_404(client: httpx.Client):
    response = client.post(f"{QUEUES}/nope/items/remove", json={"span_ids": ["s"]})
    assert message(response) == (404, missing_queue("nope"))


def test_clear_answers_204_and_empties_only_that_queue(client: httpx.Client, emulator: Emulator):
    queue_id, other = create(client)["_id"], create(client, "Other")["_id"]
    add(client, queue_id, ("t", "s1"), ("t", "s2"))
    add(client, other, ("t", "s1"))
    response = client.delete(f"{QUEUES}/{queue_id}/clear")
    assert (response.status_code, response.content) == (204, b"")
    assert emulator.queue_items(str(queue_id)) == []
    assert client.get(f"{QUEUES}/{queue_id}").json()["metadata"] == {"items_count": 0}
    assert len(emulator.queue_items(str(other))) == 1
    assert message(client.delete(f"{QUEUES}/nope/clear")) == (404, missing_queue("nope"))


def test_retrieve_item_resolves_the_span_with_its_evaluations(make_emulator, evaluations_file):
    emulator = make_emulator(evaluations_path=str(evaluations_file))
    with client_for(emulator) as http:
        queue_id = create(http)["_id"]
        item = add(http, queue_id, (TRACE, SPAN)).json()[0]
        annotate(
            http,
            {"key": "rating", "value": "good"},
            {"key": "defects", "value": ["spelling"]},
            {"key": "confidence_score", "value": 0.5},
            {"key": "approved", "value": False},
            {"parent_annotation_id": CATEGORY_EVAL, "value": "technical", "explanation": "a bug"},
            metadata={"identity_id": "user-1"},
        )
        annotate(http, {"parent_annotation_id": BOOLEAN_EVAL, "value": True})
        response = http.get(f"{QUEUES}/{queue_id}/items/{item['_id']}")
    assert response.status_code == 200
    span = response.json()
    assert {key: span[key] for key in ("_id", "trace_id", "span_id", "type")} == {
        "_id": SPAN,
        "trace_id": TRACE,
        "span_id": SPAN,
        "type": "span",
    }
    entries = span["attributes"]["orq"]["evaluations"]
    for entry in entries:
        assert ULID.fullmatch(entry.pop("id"))
    ids = emulator.definitions
    human = {"annotator": {"kind": "human", "actor_id": "user-1"}, "reviewed_by_id": "user-1"}
    common = {"evaluation_type": "human_review", "source": "orq"}
    assert entries == [
        {
            **common,
            "human_review_id": ids["approved"].id,
            "output_schema": "boolean",
            "type": "boolean",
            "value": False,
            **human,
        },
        {
            **common,
            "human_review_id": ids["confidence_score"].id,
            "output_schema": "number",
            "type": "number",
            "value": 0.5,
            **human,
        },
        {
            **common,
            "human_review_id": ids["defects"].id,
            "output_schema": "categorical",
            "type": "string_array",
            "values": ["spelling"],
            **human,
        },
        {
            **common,
            "human_review_id": ids["rating"].id,
            "output_schema": "categorical",
            "type": "string",
            "value": "good",
            **human,
        },
        {
            **common,
            "parent_annotation_id": BOOLEAN_EVAL,
            "output_schema": "boolean",
            "type": "boolean",
            "value": True,
        },
        {
            **common,
            "parent_annotation_id": CATEGORY_EVAL,
            "output_schema": "categorical",
            "type": "string",
            "value": "technical",
            "explanation": "a bug",
            **human,
        },
    ]


def test_an_evaluation_id_is_stable_across_rewrites(client: httpx.Client):
    queue_id = create(client)["_id"]
    item_id = add(client, queue_id, (TRACE, SPAN)).json()[0]["_id"]
    path = f"{QUEUES}/{queue_id}/items/{item_id}"
    annotate(client, {"key": "correction", "value": "first"})
    before = client.get(path).json()["attributes"]["orq"]["evaluations"]
    annotate(client, {"key": "correction", "value": "second"})
    after = client.get(path).json()["attributes"]["orq"]["evaluations"]
    assert [entry["value"] for entry in before + after] == ["first", "second"]
    assert before[0]["id"] == after[0]["id"]
    assert "annotator" not in after[0]


def test_retrieve_item_is_404_for_an_unknown_item_queue_or_another_queues_item(
    client: httpx.Client,
):
    one, two = create(client, "One")["_id"], create(client, "Two")["_id"]
    theirs = add(client, two, (TRACE, SPAN)).json()[0]["_id"]
    assert message(client.get(f"{QUEUES}/{one}/items/{theirs}")) == (
        404,
        f"Annotation queue item with id {theirs} in annotation queue {one} was not found.",
    )
    assert client.get(f"{QUEUES}/{one}/items/remove").status_code == 404
    assert message(client.get(f"{QUEUES}/nope/items/{theirs}")) == (404, missing_queue("nope"))


# Auth, methods, paths.

ROUTES = [
    ("GET", QUEUES),
    ("POST", QUEUES),
    ("GET", f"{QUEUES}/Q"),
    ("PATCH", f"{QUEUES}/Q"),
    ("DELETE", f"{QUEUES}/Q"),
    ("DELETE", f"{QUEUES}/Q/clear"),
    ("GET", f"{QUEUES}/Q/items"),
    ("POST", f"{QUEUES}/Q/items"),
    ("POST", f"{QUEUES}/Q/items/remove"),
    ("GET", f"{QUEUES}/Q/items/I"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("key", [None, "sk-orq-wrong"])
def test_every_route_is_401_without_a_valid_key(
    emulator: Emulator, method: str, path: str, key: str | None
):
    with client_for(emulator, api_key=key) as stranger:
        response = stranger.request(method, path, json={})
    assert response.status_code == 401
    assert response.json()["message"] == "Authorization token is invalid"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", QUEUES, "GET, POST"),
        ("POST", f"{QUEUES}/Q", "GET, PATCH, DELETE"),
        ("GET", f"{QUEUES}/Q/clear", "DELETE"),
        ("DELETE", f"{QUEUES}/Q/items", "GET, POST"),
        ("DELETE", f"{QUEUES}/Q/items/remove", "GET, POST"),
        ("POST", f"{QUEUES}/Q/items/I", "GET"),
    ],
)
def test_a_wrong_method_is_405_with_allow(client: httpx.Client, method: str, path: str, allow: str):
    response = client.request(method, path)
    assert (response.status_code, response.headers["allow"]) == (405, allow)


@pytest.mark.parametrize(
    "path", [f"{QUEUES}/", f"{QUEUES}/Q/items/I/more", f"{QUEUES}/Q/other", f"{QUEUES}//items"]
)
def test_paths_beyond_the_routes_are_404(client: httpx.Client, path: str):
    assert message(client.get(path)) == (404, "Not found")


def test_ids_in_the_path_are_percent_decoded(client: httpx.Client):
    assert message(client.get(f"{QUEUES}/a%20b")) == (404, missing_queue("a b"))


# Storage, reset and inspection.


def test_queues_and_items_survive_reopening_the_db_file(make_emulator, tmp_path: Path):
    db = str(tmp_path / "emulator.db")
    first = make_emulator(db_path=db)
    with client_for(first) as http:
        older = create(http, "Older")
        queue = create(http, "Newer")
        items = add(http, queue["_id"], (TRACE, SPAN), ("t2", "s2")).json()
        annotate(http, {"key": "rating", "value": "bad"})
    before = first.queues()
    first.close()
    second = make_emulator(db_path=db)
    assert second.queues() == before
    assert [q["metadata"] for q in before] == [{"items_count": 0}, {"items_count": 2}]
    reread = second.queue_items(str(queue["_id"]))
    assert [item["_id"] for item in reread] == [item["_id"] for item in items]
    assert reread[0]["used_human_review_ids"] == [second.definitions["rating"].id]
    with client_for(second) as http:
        newest = create(http, "Newest")
        assert page(http, QUEUES) == ([newest["_id"], queue["_id"], older["_id"]], False)


def test_an_older_db_file_gains_the_queue_tables(make_emulator, tmp_path: Path):
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as old:
        old.execute(
            "CREATE TABLE annotations (trace_id TEXT NOT NULL, span_id TEXT NOT NULL, "
            "key TEXT NOT NULL, value TEXT NOT NULL, metadata TEXT NOT NULL, "
            "PRIMARY KEY (trace_id, span_id, key)) WITHOUT ROWID"
        )
        old.execute("INSERT INTO annotations VALUES ('t', 's', 'rating', '\"good\"', '{}')")
        old.execute("PRAGMA user_version=1")
    old.close()
    emulator = make_emulator(db_path=str(db))
    with client_for(emulator) as http:
        queue_id = create(http)["_id"]
        item = add(http, queue_id, ("t", "s")).json()[0]
    assert item["used_human_review_ids"] == [emulator.definitions["rating"].id]
    with sqlite3.connect(db) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == 3
    check.close()


def test_reset_wipes_queues_and_items(client: httpx.Client, emulator: Emulator):
    queue_id = create(client)["_id"]
    add(client, queue_id, (TRACE, SPAN))
    assert client.post("/_emulator/reset").status_code == 200
    assert emulator.queues() == []
    assert emulator.queue_items(str(queue_id)) == []
    assert page(client, QUEUES) == ([], False)
    assert client.get(f"{QUEUES}/{queue_id}").status_code == 404


def test_stats_count_queues_and_items(client: httpx.Client):
    one, two = create(client)["_id"], create(client)["_id"]
    add(client, one, ("t", "s1"), ("t", "s2"))
    add(client, two, ("t", "s1"))
    stats = client.get("/_emulator/stats").json()
    assert (stats["queues"], stats["queue_items"]) == (2, 3)


def test_the_inspection_route_lists_queues_oldest_first_with_their_items(
    emulator: Emulator, client: httpx.Client
):
    older = create(client, "Older")
    newer = create(client, "Newer")
    items = add(client, newer["_id"], (TRACE, SPAN)).json()
    with client_for(emulator, api_key=None) as anonymous:
        response = anonymous.get("/_emulator/queues")
        refused = anonymous.post("/_emulator/queues")
    assert response.json() == {
        "queues": [
            {**older, "items": []},
            {**newer, "metadata": {"items_count": 1}, "items": items},
        ]
    }
    assert refused.status_code == 405


def test_queue_routes_meet_injected_faults(make_emulator):
    emulator = make_emulator(faults=FaultConfig(error_rate=1.0))
    with client_for(emulator) as http:
        response = http.get(QUEUES)
    assert response.status_code in (500, 502, 503)
    assert emulator.stats()["faults"] == {"server_error": 1}
