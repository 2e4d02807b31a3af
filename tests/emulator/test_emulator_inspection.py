"""The /_emulator/ routes: what a test or a demo reads back, without auth."""

from __future__ import annotations

import httpx

from orqsync.emulator import Emulator

from .emulator_helpers import ANNOTATION_PATH, SPAN, TRACE, annotate, client_for


def seed(http: httpx.Client) -> None:
    http.post(
        "/v2/traces/t2/spans/s1/annotation",
        json={"annotations": [{"key": "rating", "value": "bad"}], "metadata": {"source": "x"}},
    )
    annotate(http, {"key": "rating", "value": "good"}, {"key": "approved", "value": True})
    http.post(
        "/v2/traces/t2/spans/s0/annotation",
        json={"annotations": [{"key": "approved", "value": False}]},
    )


def test_annotations_are_listed_sorted_by_trace_span_and_key(emulator: Emulator):
    with client_for(emulator) as http:
        seed(http)
    with client_for(emulator, api_key=None) as anonymous:
        rows = anonymous.get("/_emulator/annotations").json()["annotations"]
    assert [(row["trace_id"], row["span_id"], row["key"]) for row in rows] == [
        (TRACE, SPAN, "approved"),
        (TRACE, SPAN, "rating"),
        ("t2", "s0", "approved"),
        ("t2", "s1", "rating"),
    ]
    assert rows[3] == {
        "trace_id": "t2",
        "span_id": "s1",
        "key": "rating",
        "value": "bad",
        "metadata": {"source": "x"},
    }


def test_annotations_can_be_filtered_by_trace_and_span(client: httpx.Client):
    seed(client)
    by_trace = client.get("/_emulator/annotations", params={"trace_id": "t2"}).json()
    by_span = client.get(
        "/_emulator/annotations", params={"trace_id": "t2", "span_id": "s1"}
    ).json()
    assert [row["span_id"] for row in by_trace["annotations"]] == ["s0", "s1"]
    assert [row["value"] for row in by_span["annotations"]] == ["bad"]


def test_span_view_maps_keys_to_values_and_metadata(client: httpx.Client):
    annotate(client, {"key": "rating", "value": "good"}, metadata={"identity_id": "u1"})
    view = client.get(f"/_emulator/spans/{TRACE}/{SPAN}").json()
    assert view == {
        "annotations": {"rating": "good"},
        "metadata": {"rating": {"identity_id": "u1"}},
        "corrections": {},
    }
    assert client.get("/_emulator/spans/none/none").json() == {
        "annotations": {},
        "metadata": {},
        "corrections": {},
    }


def test_feedback_view_lists_the_stored_records(client: httpx.Client):
    record = {
        "id": "F1",
        "property": "rating",
        "value": "good",
        "trace_id": "t",
        "product": "agents",
    }
    client.post("/v2/feedback", json=record)
    assert client.get("/_emulator/feedback").json() == {"feedback": [record]}


def test_request_log_lists_api_requests_but_not_inspection_requests(client: httpx.Client):
    annotate(client, {"key": "rating", "value": "good"})
    annotate(client, {"key": "rating", "value": "meh"})
    client.get("/_emulator/annotations")
    client.post("/v2/nowhere")
    log = client.get("/_emulator/requests").json()
    times = [entry.pop("at") for entry in log["requests"]]
    assert log == {
        "requests": [
            {"seq": 1, "method": "POST", "path": ANNOTATION_PATH, "status": 200, "fault": None},
            {"seq": 2, "method": "POST", "path": ANNOTATION_PATH, "status": 400, "fault": None},
            {"seq": 3, "method": "POST", "path": "/v2/nowhere", "status": 404, "fault": None},
        ],
        "count": 3,
    }
    assert 0 <= times[0] <= times[1] <= times[2]  # when each was answered, in order


def test_request_log_since_returns_only_later_requests(client: httpx.Client):
    for _ in range(5):
        annotate(client, {"key": "rating", "value": "good"})
    log = client.get("/_emulator/requests", params={"since": 3}).json()
    assert [entry["seq"] for entry in log["requests"]] == [4, 5]
    assert log["count"] == 5
    bad = client.get("/_emulator/requests", params={"since": "x"})
    assert bad.status_code == 400


def test_stats_count_requests_per_status_and_stored_records(client: httpx.Client):
    annotate(client, {"key": "rating", "value": "good"})
    annotate(client, {"key": "rating", "value": "meh"})
    annotate(client, {"key": "tone", "value": "x"})
    client.post("/v2/feedback", json={"property": "p", "value": "v", "trace_id": "t"})
    assert client.get("/_emulator/stats").json() == {
        "requests": 4,
        "by_status": {"200": 2, "400": 1, "404": 1},
        "faults": {},
        "annotations": 1,
        "corrections": 0,
        "feedback": 1,
        "queues": 0,
        "queue_items": 0,
    }


def test_reset_wipes_annotations_feedback_and_the_log(client: httpx.Client, emulator: Emulator):
    seed(client)
    client.post("/v2/feedback", json={"property": "p", "value": "v", "trace_id": "t"})
    response = client.post("/_emulator/reset")
    assert response.status_code == 200
    assert emulator.annotations() == []
    assert emulator.feedback() == []
    assert client.get("/_emulator/requests").json() == {"requests": [], "count": 0}


def test_inspection_routes_answer_405_and_404_like_the_api(client: httpx.Client):
    assert client.get("/_emulator/reset").status_code == 405
    assert client.post("/_emulator/annotations").status_code == 405
    assert client.delete(f"/_emulator/spans/{TRACE}/{SPAN}").status_code == 405
    assert client.get("/_emulator/nothing").status_code == 404
    assert client.get("/_emulator").status_code == 404
