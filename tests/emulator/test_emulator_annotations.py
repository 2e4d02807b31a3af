"""The annotation endpoints (POST and DELETE) through the in-process transport."""

from __future__ import annotations

import httpx
import pytest

from orqsync.emulator import Emulator

from .emulator_helpers import ANNOTATION_PATH, API_KEY, SPAN, TRACE, annotate, client_for, remove

UNAUTHORIZED = {
    "code": "unauthorized",
    "message": "Authorization token is invalid",
    "category": "unauthorized",
}


def error(response: httpx.Response) -> tuple[int, str]:
    """Status and message of an annotation error, checking the {code, message, category} shape."""
    body = response.json()
    assert set(body) == {"code", "message", "category"}
    assert body["category"] == {400: "bad_request", 404: "not_found"}[response.status_code]
    return response.status_code, body["message"]


def stored(emulator: Emulator) -> dict[str, object]:
    return emulator.span(TRACE, SPAN)["annotations"]


# --- create: success and replace semantics -------------------------------------------------


def test_post_stores_every_annotation_of_the_batch(client: httpx.Client, emulator: Emulator):
    response = annotate(
        client,
        {"key": "rating", "value": "good"},
        {"key": "defects", "value": ["grammatical", "spelling"]},
        {"key": "confidence_score", "value": 0.95},
        {"key": "correction", "value": "Emphasise fault tolerance."},
        {"key": "approved", "value": True},
    )
    assert response.status_code == 200
    assert response.json() == {}
    assert stored(emulator) == {
        "rating": "good",
        "defects": ["grammatical", "spelling"],
        "confidence_score": 0.95,
        "correction": "Emphasise fault tolerance.",
        "approved": True,
    }


def test_post_replaces_existing_key_on_the_span(client: httpx.Client, emulator: Emulator):
    annotate(client, {"key": "rating", "value": "good"}, metadata={"identity_id": "alice"})
    response = annotate(client, {"key": "rating", "value": "bad"}, metadata={"identity_id": "bob"})
    assert response.status_code == 200
    rows = emulator.annotations()
    assert [(row["key"], row["value"], row["metadata"]) for row in rows] == [
        ("rating", "bad", {"identity_id": "bob"})
    ]


def test_post_keeps_other_keys_of_the_span(client: httpx.Client, emulator: Emulator):
    annotate(client, {"key": "rating", "value": "good"}, {"key": "approved", "value": False})
    annotate(client, {"key": "rating", "value": "bad"})
    assert stored(emulator) == {"rating": "bad", "approved": False}


def test_post_stores_single_select_sent_as_one_element_array_as_string(
    client: httpx.Client, emulator: Emulator
):
    assert annotate(client, {"key": "rating", "value": ["good"]}).status_code == 200
    assert stored(emulator) == {"rating": "good"}


def test_post_accepts_ten_items_and_the_last_value_of_a_repeated_key_wins(
    client: httpx.Client, emulator: Emulator
):
    items = [{"key": "confidence_score", "value": n / 10} for n in range(10)]
    assert annotate(client, *items).status_code == 200
    assert stored(emulator) == {"confidence_score": 0.9}


def test_post_accepts_options_that_yaml_would_read_as_booleans(
    client: httpx.Client, emulator: Emulator
):
    assert annotate(client, {"key": "answered", "value": "no"}).status_code == 200
    assert stored(emulator) == {"answered": "no"}
    assert error(annotate(client, {"key": "answered", "value": False})) == (
        400,
        "Invalid value: false. Valid options are: yes, no, on, off.",
    )


def test_post_decodes_percent_encoded_ids_in_the_path(client: httpx.Client, emulator: Emulator):
    path = "/v2/traces/trace%20one/spans/span%2Fa/annotation"
    response = client.post(path, json={"annotations": [{"key": "rating", "value": "good"}]})
    assert response.status_code == 200
    assert emulator.span("trace one", "span/a")["annotations"] == {"rating": "good"}


# --- create: auth -------------------------------------------------------------------------


def test_post_without_authorization_is_401(emulator: Emulator):
    with client_for(emulator, api_key=None) as anonymous:
        response = annotate(anonymous, {"key": "rating", "value": "good"})
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert emulator.annotations() == []


def test_post_with_unknown_key_is_401(emulator: Emulator):
    with client_for(emulator, api_key="sk-orq-someone-else") as stranger:
        response = annotate(stranger, {"key": "rating", "value": "good"})
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_post_with_a_non_bearer_scheme_is_401(client: httpx.Client):
    response = client.post(
        ANNOTATION_PATH,
        json={"annotations": [{"key": "rating", "value": "good"}]},
        headers={"Authorization": "Basic c2stb3JxLXRlc3Qta2V5"},
    )
    assert response.status_code == 401


def test_auth_is_checked_before_the_body(emulator: Emulator):
    with client_for(emulator, api_key=None) as anonymous:
        response = anonymous.post(ANNOTATION_PATH, content=b"not json")
    assert response.status_code == 401


def test_bearer_scheme_is_case_insensitive(client: httpx.Client):
    response = client.post(
        ANNOTATION_PATH,
        json={"annotations": [{"key": "rating", "value": "good"}]},
        headers={"Authorization": f"bearer {API_KEY}"},
    )
    assert response.status_code == 200


# --- create: body schema --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "Request body must be a JSON object."),
        (b"[]", "Request body must be a JSON object."),
        (b'"annotations"', "Request body must be a JSON object."),
        (b"{}", 'Invalid request body: "annotations" is required.'),
        (
            b'{"annotations": []}',
            'Invalid request body: "annotations" must be an array of 1 to 10 items, got 0.',
        ),
        (
            b'{"annotations": {"key": "rating"}}',
            'Invalid request body: "annotations" must be an array of 1 to 10 items.',
        ),
    ],
)
def test_post_rejects_a_body_without_an_annotations_array(
    client: httpx.Client, content: bytes, message: str
):
    assert error(client.post(ANNOTATION_PATH, content=content)) == (400, message)


def test_post_rejects_a_body_that_is_not_json(client: httpx.Client):
    status, message = error(client.post(ANNOTATION_PATH, content=b"{annotations:"))
    assert status == 400
    assert message.startswith("Request body is not valid JSON: ")


def test_post_rejects_nan_which_is_not_json(client: httpx.Client, emulator: Emulator):
    content = b'{"annotations": [{"key": "confidence_score", "value": NaN}]}'
    status, message = error(client.post(ANNOTATION_PATH, content=content))
    assert status == 400
    assert "NaN is not a JSON value" in message
    assert emulator.annotations() == []


def test_post_rejects_more_than_ten_items(client: httpx.Client, emulator: Emulator):
    items = [{"key": "rating", "value": "good"}] * 11
    assert error(annotate(client, *items)) == (
        400,
        'Invalid request body: "annotations" must be an array of 1 to 10 items, got 11.',
    )
    assert emulator.annotations() == []


def test_post_rejects_unknown_item_fields(client: httpx.Client):
    response = annotate(client, {"key": "rating", "value": "good", "source": "ui", "comment": "x"})
    assert error(response) == (
        400,
        'Invalid annotation at index 0: unknown field(s) "comment", "source"; '
        'an annotation has exactly "key" and "value".',
    )


def test_post_rejects_an_item_with_both_key_and_parent_annotation_id(
    client: httpx.Client, emulator: Emulator
):
    response = annotate(client, {"key": "rating", "value": "good", "parent_annotation_id": "e1"})
    assert error(response) == (
        400,
        'Invalid annotation at index 0: "key" and "parent_annotation_id" do not go together; '
        'send {"key", "value"} to annotate and {"parent_annotation_id", "value"} '
        '(and optionally "explanation") to correct an evaluator result.',
    )
    assert emulator.annotations() == []


def test_post_of_a_correction_the_emulator_has_no_evaluator_result_for_is_404(
    client: httpx.Client, emulator: Emulator
):
    response = annotate(
        client, {"parent_annotation_id": "01JEVAL", "value": "fixed", "explanation": "why"}
    )
    assert error(response) == (
        404,
        f'The evaluation with id "01JEVAL" for span {SPAN} was not found.',
    )
    assert response.json()["code"] == "evaluation_not_found"
    assert emulator.corrections() == []


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            "rating",
            "Invalid annotation at index 0: an annotation must be an object with key and value "
            "(or, correcting an evaluator result, parent_annotation_id and value).",
        ),
        ({"key": "rating"}, 'Invalid annotation at index 0: "value" is required.'),
        ({"value": "good"}, 'Invalid annotation at index 0: "key" is required.'),
        (
            {"key": "", "value": "good"},
            'Invalid annotation at index 0: "key" must be a non-empty string.',
        ),
        (
            {"key": 7, "value": "good"},
            'Invalid annotation at index 0: "key" must be a non-empty string.',
        ),
    ],
)
def test_post_rejects_an_item_without_key_and_value(
    client: httpx.Client, item: object, message: str
):
    assert error(client.post(ANNOTATION_PATH, json={"annotations": [item]})) == (400, message)


@pytest.mark.parametrize(
    ("value", "shown"),
    [(None, "null"), ({"a": 1}, '{"a":1}'), ([], "[]"), (["good", 1], '["good",1]')],
)
def test_post_rejects_a_value_outside_the_value_union(
    client: httpx.Client, value: object, shown: str
):
    assert error(annotate(client, {"key": "correction", "value": value})) == (
        400,
        f"Invalid value: {shown}. A value is a string, a number, a boolean "
        "or a non-empty array of strings.",
    )


# --- create: string limit -------------------------------------------------------------------


def test_post_accepts_a_string_at_the_limit_and_rejects_one_longer(
    client: httpx.Client, emulator: Emulator
):
    assert annotate(client, {"key": "correction", "value": "x" * 200}).status_code == 200
    assert error(annotate(client, {"key": "correction", "value": "x" * 201})) == (
        400,
        "String value exceeds maximum length of 200 characters.",
    )
    assert stored(emulator) == {"correction": "x" * 200}


def test_string_limit_counts_utf16_units_as_the_javascript_server_does(client: httpx.Client):
    assert annotate(client, {"key": "correction", "value": "🙂" * 100}).status_code == 200
    assert annotate(client, {"key": "correction", "value": "🙂" * 100 + "x"}).status_code == 400


def test_string_limit_3000_is_an_option(make_emulator):
    with client_for(make_emulator(string_limit=3000)) as http:
        assert annotate(http, {"key": "correction", "value": "x" * 3000}).status_code == 200
        assert error(annotate(http, {"key": "correction", "value": "x" * 3001})) == (
            400,
            "String value exceeds maximum length of 3000 characters.",
        )


def test_string_limit_is_a_schema_check_made_before_the_key_lookup(client: httpx.Client):
    response = annotate(client, {"key": "no_such_key", "value": "x" * 201})
    assert error(response)[0] == 400


# --- create: business rules -----------------------------------------------------------------


def test_post_with_unknown_definition_key_is_404(client: httpx.Client):
    assert error(annotate(client, {"key": "tone", "value": "friendly"})) == (
        404,
        'The human review with key "tone" for workspace emulator-workspace was not found.',
    )


def test_unknown_key_404_carries_the_code_the_live_service_sends(client: httpx.Client):
    body = annotate(client, {"key": "tone", "value": "friendly"}).json()
    assert body["code"] == "deployment_not_found"


def test_messages_name_the_configured_workspace(make_emulator):
    with client_for(make_emulator(workspace="acme-support")) as http:
        message = error(annotate(http, {"key": "tone", "value": "x"}))[1]
    assert message == 'The human review with key "tone" for workspace acme-support was not found.'


def test_post_on_unknown_span_is_404_when_spans_are_known(make_emulator):
    emulator = make_emulator(known_spans=frozenset({(TRACE, SPAN)}))
    with client_for(emulator) as http:
        assert annotate(http, {"key": "rating", "value": "good"}).status_code == 200
        response = http.post(
            f"/v2/traces/{TRACE}/spans/0000000000000000/annotation",
            json={"annotations": [{"key": "rating", "value": "good"}]},
        )
        assert error(response) == (
            404,
            "Span with id 0000000000000000 for workspace emulator-workspace was not found.",
        )
        other_trace = http.post(
            f"/v2/traces/{'f' * 32}/spans/{SPAN}/annotation",
            json={"annotations": [{"key": "rating", "value": "good"}]},
        )
        assert other_trace.status_code == 404
    assert len(emulator.annotations()) == 1


def test_any_span_is_accepted_when_spans_are_not_configured(client: httpx.Client):
    response = client.post(
        "/v2/traces/any/spans/thing/annotation",
        json={"annotations": [{"key": "rating", "value": "good"}]},
    )
    assert response.status_code == 200


def test_unknown_span_is_reported_before_unknown_keys(make_emulator):
    with client_for(make_emulator(known_spans=frozenset())) as http:
        message = error(annotate(http, {"key": "tone", "value": "x"}))[1]
    assert message.startswith("Span with id ")


def test_the_first_failing_item_decides_the_error(client: httpx.Client):
    response = annotate(
        client,
        {"key": "rating", "value": "good"},
        {"key": "rating", "value": "meh"},
        {"key": "tone", "value": "x"},
    )
    assert error(response) == (400, "Invalid value: meh. Valid options are: good, bad.")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("rating", "meh", "Invalid value: meh. Valid options are: good, bad."),
        ("rating", "Good", "Invalid value: Good. Valid options are: good, bad."),
        ("rating", ["good", "bad"], 'Invalid value: ["good","bad"]. Valid options are: good, bad.'),
        ("rating", 1, "Invalid value: 1. Valid options are: good, bad."),
        (
            "defects",
            ["spelling", "typo"],
            "Invalid value: typo. Valid options are: grammatical, spelling, hallucination, "
            "ambiguity.",
        ),
        (
            "defects",
            "spelling",
            "Invalid value: spelling. Expected an array of options; valid options are: "
            "grammatical, spelling, hallucination, ambiguity.",
        ),
        ("confidence_score", 1.5, "Value 1.5 is out of range [0, 1]."),
        ("confidence_score", -0.01, "Value -0.01 is out of range [0, 1]."),
        ("confidence_score", 2.0, "Value 2 is out of range [0, 1]."),
        ("confidence_score", "0.5", "Invalid value: 0.5. Expected a number in range [0, 1]."),
        ("confidence_score", True, "Invalid value: true. Expected a number in range [0, 1]."),
        ("approved", "true", "Invalid value: true. Expected true or false."),
        ("approved", 1, "Invalid value: 1. Expected true or false."),
        ("correction", 42, "Invalid value: 42. Expected a string."),
        ("correction", ["a"], 'Invalid value: ["a"]. Expected a string.'),
    ],
)
def test_post_rejects_a_value_its_definition_does_not_allow(
    client: httpx.Client, emulator: Emulator, key: str, value: object, message: str
):
    assert error(annotate(client, {"key": key, "value": value})) == (400, message)
    assert emulator.annotations() == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("confidence_score", 0),
        ("confidence_score", 1),
        ("confidence_score", 0.5),
        ("defects", ["ambiguity"]),
        ("defects", ["spelling", "spelling"]),
        ("approved", False),
        ("correction", ""),
    ],
)
def test_post_accepts_values_at_the_edges_of_their_definition(
    client: httpx.Client, emulator: Emulator, key: str, value: object
):
    assert annotate(client, {"key": key, "value": value}).status_code == 200
    assert stored(emulator) == {key: value}


def test_post_applies_all_or_nothing(client: httpx.Client, emulator: Emulator):
    annotate(client, {"key": "rating", "value": "good"})
    response = annotate(
        client,
        {"key": "rating", "value": "bad"},
        {"key": "approved", "value": True},
        {"key": "confidence_score", "value": 7},
    )
    assert response.status_code == 400
    assert stored(emulator) == {"rating": "good"}


# --- create: metadata -----------------------------------------------------------------------


def test_post_stores_the_metadata_as_sent_with_each_annotation(
    client: httpx.Client, emulator: Emulator
):
    metadata = {"identityId": "user-123", "source": "orqsync", "reviewerId": "alice"}
    annotate(
        client,
        {"key": "rating", "value": "good"},
        {"key": "approved", "value": True},
        metadata=metadata,
    )
    assert emulator.span(TRACE, SPAN)["metadata"] == {"rating": metadata, "approved": metadata}


def test_post_passes_legacy_metadata_fields_through_untyped(
    client: httpx.Client, emulator: Emulator
):
    metadata = {"identityId": 42, "source": None, "reviewerId": ["a"]}
    assert (
        annotate(client, {"key": "rating", "value": "good"}, metadata=metadata).status_code == 200
    )
    assert emulator.annotations()[0]["metadata"] == metadata


def test_post_accepts_identity_id_and_tolerates_unknown_metadata_fields(
    client: httpx.Client, emulator: Emulator
):
    metadata = {"identity_id": "user-123", "team": "support"}
    assert (
        annotate(client, {"key": "rating", "value": "good"}, metadata=metadata).status_code == 200
    )
    assert emulator.annotations()[0]["metadata"] == metadata


def test_post_without_metadata_stores_an_empty_object(client: httpx.Client, emulator: Emulator):
    annotate(client, {"key": "rating", "value": "good"})
    assert emulator.annotations()[0]["metadata"] == {}


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ([], 'Invalid request body: "metadata" must be an object.'),
        (None, 'Invalid request body: "metadata" must be an object.'),
        ({"identity_id": 5}, 'Invalid request body: "metadata.identity_id" must be a string.'),
    ],
)
def test_post_rejects_malformed_metadata(client: httpx.Client, metadata: object, message: str):
    assert error(annotate(client, {"key": "rating", "value": "good"}, metadata=metadata)) == (
        400,
        message,
    )


# --- delete ---------------------------------------------------------------------------------

REQUIRED = (
    'Request body is required: send {"keys": [...]} or {"parent_annotation_ids": [...]} '
    "with 1 to 10 items."
)
NOTHING = 'Nothing to remove: "keys" or "parent_annotation_ids" must list 1 to 10 items.'


def test_delete_removes_the_listed_keys_and_keeps_the_others(
    client: httpx.Client, emulator: Emulator
):
    annotate(
        client,
        {"key": "rating", "value": "good"},
        {"key": "approved", "value": True},
        {"key": "correction", "value": "fix"},
    )
    response = remove(client, {"keys": ["rating", "correction"]})
    assert response.status_code == 200
    assert response.json() == {}
    assert stored(emulator) == {"approved": True}


def test_delete_of_a_key_without_a_value_is_a_no_op(client: httpx.Client, emulator: Emulator):
    annotate(client, {"key": "rating", "value": "good"})
    assert remove(client, {"keys": ["approved"]}).status_code == 200
    assert stored(emulator) == {"rating": "good"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", REQUIRED),
        (b"null", REQUIRED),
        (b"[]", "Request body must be a JSON object."),
        (b"{}", NOTHING),
        (b'{"keys": []}', NOTHING),
        (b'{"keys": [], "parent_annotation_ids": []}', NOTHING),
        (
            b'{"keys": "rating"}',
            'Invalid request body: "keys" must be an array of non-empty strings.',
        ),
        (b'{"keys": [""]}', 'Invalid request body: "keys" must be an array of non-empty strings.'),
        (
            b'{"keys": ["rating"], "parent_annotation_ids": [1]}',
            'Invalid request body: "parent_annotation_ids" must be an array of non-empty strings.',
        ),
    ],
)
def test_delete_rejects_a_body_without_keys(client: httpx.Client, content: bytes, message: str):
    assert error(remove(client, content=content)) == (400, message)


def test_delete_rejects_more_than_ten_keys(client: httpx.Client):
    assert error(remove(client, {"keys": ["rating"] * 11})) == (
        400,
        'Invalid request body: "keys" must have at most 10 items, got 11.',
    )


def test_delete_with_unknown_definition_key_is_404_and_removes_nothing(
    client: httpx.Client, emulator: Emulator
):
    annotate(client, {"key": "rating", "value": "good"})
    assert error(remove(client, {"keys": ["rating", "tone"]})) == (
        404,
        'The human review with key "tone" for workspace emulator-workspace was not found.',
    )
    assert stored(emulator) == {"rating": "good"}


def test_delete_on_unknown_span_is_404(make_emulator):
    with client_for(make_emulator(known_spans=frozenset({("t", "s")}))) as http:
        assert error(remove(http, {"keys": ["rating"]})) == (
            404,
            f"Span with id {SPAN} for workspace emulator-workspace was not found.",
        )


def test_delete_of_an_unknown_parent_annotation_id_is_404_and_removes_nothing(
    client: httpx.Client, emulator: Emulator
):
    annotate(client, {"key": "rating", "value": "good"})
    body = {
        "keys": ["rating"],
        "parent_annotation_ids": ["01JEVAL"],
        "metadata": {"identity_id": "u"},
    }
    assert error(remove(client, body)) == (
        404,
        f'The evaluation with id "01JEVAL" for span {SPAN} was not found.',
    )
    assert stored(emulator) == {"rating": "good"}


def test_delete_without_authorization_is_401(emulator: Emulator):
    with client_for(emulator, api_key=None) as anonymous:
        response = remove(anonymous, {"keys": ["rating"]})
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


# --- routing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v2/traces/t/spans/s/annotations",
        "/v2/traces/t/annotation",
        "/v3/traces/t/spans/s/annotation",
        "/v2/human-evals",
        "/",
    ],
)
def test_unknown_routes_are_404(client: httpx.Client, path: str):
    response = client.post(path, json={})
    assert response.status_code == 404
    assert response.json() == {"message": "Not found"}


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", ANNOTATION_PATH, "POST, DELETE"),
        ("PUT", ANNOTATION_PATH, "POST, DELETE"),
        ("GET", "/v2/feedback", "POST"),
        ("DELETE", "/v2/feedback/remove", "POST"),
    ],
)
def test_a_wrong_method_on_a_known_route_is_405(
    client: httpx.Client, method: str, path: str, allow: str
):
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["Allow"] == allow
