"""OrqClient against httpx.MockTransport handlers and the in-process emulator."""

from __future__ import annotations

import json
import random

import httpx
import pytest

from orqsync.client import OrqClient, Pacer, parse_retry_after, server_message
from orqsync.emulator import Emulator, EmulatorConfig, EmulatorTransport, FaultConfig
from orqsync.errors import ApiError

SECRET = "sk-orq-0123456789-verysecretvalue"


class Recorder:
    """A MockTransport handler answering from a script of responses, recording requests."""

    def __init__(self, *responses: httpx.Response | Exception) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def client(handler, *, sleeps: list[float] | None = None, **kwargs) -> OrqClient:
    record = sleeps if sleeps is not None else []
    return OrqClient(
        "https://api.example.test",
        SECRET,
        transport=httpx.MockTransport(handler),
        sleep=record.append,
        pacer=Pacer(sleep=record.append),
        rng=random.Random(1),
        **kwargs,
    )


def test_annotate_posts_the_documented_body_with_bearer_auth():
    handler = Recorder(httpx.Response(200, json={}))
    client(handler).annotate(
        "t 1",
        "s/1",
        [("rating", "good"), ("defects", ("a", "b"))],
        (("identityId", "u1"), ("source", "orqsync")),
    )
    sent = handler.requests[0]
    assert sent.method == "POST"
    assert sent.url.raw_path == b"/v2/traces/t%201/spans/s%2F1/annotation"
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    assert json.loads(sent.content) == {
        "annotations": [
            {"key": "rating", "value": "good"},
            {"key": "defects", "value": ["a", "b"]},
        ],
        "metadata": {"identityId": "u1", "source": "orqsync"},
    }


def test_current_metadata_style_sends_only_identity_id():
    handler = Recorder(httpx.Response(200))
    client(handler, metadata_style="current").annotate(
        "t", "s", [("rating", "good")], (("identityId", "u1"), ("reviewerId", "alice"))
    )
    assert json.loads(handler.requests[0].content)["metadata"] == {"identity_id": "u1"}


def test_remove_sends_delete_with_its_json_body():
    handler = Recorder(httpx.Response(200, json={}))
    client(handler).remove("t", "s", ["rating", "defects"])
    sent = handler.requests[0]
    assert sent.method == "DELETE"
    assert json.loads(sent.content) == {"keys": ["rating", "defects"]}


def test_feedback_calls_use_the_feedback_endpoints():
    handler = Recorder(httpx.Response(200, json={}))
    api = client(handler)
    api.feedback_put(
        {
            "id": "F1",
            "trace_id": "T1",
            "product": "deployments",
            "property": "rating",
            "value": ["good"],
        }
    )
    api.feedback_remove("F1", "T1", "deployments")
    assert [r.url.path for r in handler.requests] == ["/v2/feedback", "/v2/feedback/remove"]
    assert json.loads(handler.requests[1].content) == {
        "id": "F1",
        "trace_id": "T1",
        "product": "deployments",
    }


def test_429_waits_out_retry_after_then_succeeds():
    sleeps: list[float] = []
    handler = Recorder(
        httpx.Response(429, headers={"Retry-After": "7"}, json={"message": "slow down"}),
        httpx.Response(200, json={}),
    )
    api = client(handler, sleeps=sleeps)
    api.remove("t", "s", ["rating"])
    assert len(handler.requests) == 2
    assert sleeps and min(sleeps) >= 6.9  # the whole client waited at least Retry-After


def test_5xx_and_dropped_connections_are_retried_with_backoff():
    sleeps: list[float] = []
    handler = Recorder(
        httpx.Response(503, text="unavailable"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadTimeout("timed out"),
        httpx.Response(200),
    )
    client(handler, sleeps=sleeps).remove("t", "s", ["rating"])
    assert len(handler.requests) == 4
    assert len(sleeps) == 3
    assert all(0 <= delay <= 30 for delay in sleeps)


def test_retries_stop_after_max_attempts_with_a_clear_error():
    handler = Recorder(httpx.Response(500, json={"message": "boom"}))
    with pytest.raises(ApiError) as caught:
        client(handler, max_attempts=3).remove("t", "s", ["rating"])
    assert len(handler.requests) == 3
    assert caught.value.message == (
        "DELETE /v2/traces/t/spans/s/annotation: HTTP 500: boom (gave up after 3 attempts)"
    )
    assert caught.value.status == 500


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_final_and_not_retried(status):
    handler = Recorder(httpx.Response(status, json={"message": "nope"}))
    with pytest.raises(ApiError) as caught:
        client(handler).annotate("t", "s", [("rating", "good")])
    assert len(handler.requests) == 1
    assert caught.value.status == status
    assert not caught.value.retryable
    assert caught.value.message == f"POST /v2/traces/t/spans/s/annotation: HTTP {status}: nope"


def test_401_hint_points_at_the_key():
    handler = Recorder(httpx.Response(401, json={"message": "Authorization token is invalid"}))
    with pytest.raises(ApiError) as caught:
        client(handler).remove("t", "s", ["k"])
    assert caught.value.hint == "check the API key (and that it belongs to this workspace)"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"message": "plain"}, "plain"),
        ({"error": {"message": "nested", "type": "x"}}, "nested"),
        ({"error": "flat"}, "flat"),
        ({"code": 5}, '{"code":5}'),
    ],
)
def test_server_message_is_read_tolerantly(body, expected):
    assert server_message(httpx.Response(400, json=body)) == expected


def test_server_message_falls_back_to_raw_text():
    assert server_message(httpx.Response(502, text="<html>bad gateway</html>")) == (
        "<html>bad gateway</html>"
    )


def test_the_api_key_never_appears_in_an_error_even_when_the_server_echoes_it():
    handler = Recorder(httpx.Response(401, json={"message": f"key {SECRET} is not valid"}))
    with pytest.raises(ApiError) as caught:
        client(handler).remove("t", "s", ["k"])
    assert SECRET not in caught.value.render()
    assert "key *** is not valid" in caught.value.message


def test_connection_errors_name_the_host_but_never_the_key():
    handler = Recorder(httpx.ConnectError("connection refused"))
    with pytest.raises(ApiError) as caught:
        client(handler, max_attempts=2).remove("t", "s", ["k"])
    assert "cannot connect to https://api.example.test" in caught.value.message
    assert SECRET not in caught.value.render()


def test_retry_after_is_read_in_seconds_dates_and_milliseconds():
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=1445412480) == 10
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_a_fixed_rate_is_never_exceeded():
    clock = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    pacer = Pacer(requests_per_minute=60, clock=lambda: clock[0], sleep=sleep)
    for _ in range(5):
        pacer.wait()
    assert clock[0] == pytest.approx(4.0)  # five requests at one a second: 0, 1, 2, 3, 4


def test_faults_injected_by_seed_are_retried_to_success():
    emulator = Emulator(
        EmulatorConfig(
            api_keys=("k",),
            faults=FaultConfig(seed=7, error_rate=0.3, drop_rate=0.1, burst_429_rate=0.1),
        )
    )
    with OrqClient(
        "http://emulator",
        "k",
        transport=EmulatorTransport(emulator, owns_emulator=True),
        sleep=lambda s: None,
        pacer=Pacer(sleep=lambda s: None),
        max_attempts=20,
    ) as api:
        for number in range(50):
            api.annotate("t", f"s{number}", [("rating", "good")])
        assert len(emulator.annotations()) == 50
        assert api.attempts > 50  # faults happened and were retried
