"""OrqClient against httpx.MockTransport handlers and the in-process emulator."""

from __future__ import annotations

import itertools
import json
import random

import httpx
import pytest

from orqsync.emulator import Emulator, EmulatorConfig, EmulatorTransport, FaultConfig
from orqsync.errors import EXIT_ERROR, EXIT_PARTIAL, ApiError, ApiHaltError, DeadlineReached
from orqsync.remote.client import LATE, OrqClient, parse_retry_after, server_message
from orqsync.remote.pacer import Pacer

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


class FakeTime:
    """A clock that only sleeping moves; every sleep is recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def client(handler, *, sleeps: list[float] | None = None, **kwargs) -> OrqClient:
    time = FakeTime()
    if sleeps is not None:
        time.sleeps = sleeps
    return OrqClient(
        "https://api.example.test",
        SECRET,
        key_source="$ORQ_API_KEY",
        transport=httpx.MockTransport(handler),
        clock=time.clock,
        sleep=time.sleep,
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


@pytest.mark.parametrize("status", [400, 404, 422])
def test_client_errors_are_final_and_not_retried(status):
    handler = Recorder(httpx.Response(status, json={"message": "nope"}))
    with pytest.raises(ApiError) as caught:
        client(handler).annotate("t", "s", [("rating", "good")])
    assert len(handler.requests) == 1
    assert caught.value.status == status
    assert not caught.value.retryable
    assert caught.value.message == f"POST /v2/traces/t/spans/s/annotation: HTTP {status}: nope"


@pytest.mark.parametrize("status", [401, 403])
def test_a_rejected_key_halts_the_client_and_names_where_the_key_came_from(status):
    handler = Recorder(httpx.Response(status, json={"message": "Authorization token is invalid"}))
    api = client(handler)
    with pytest.raises(ApiHaltError) as caught:
        api.remove("t", "s", ["k"])
    halt = caught.value
    assert (halt.reason, halt.exit_code) == ("unauthorized", EXIT_ERROR)
    assert halt.message == (
        "orq.ai refused $ORQ_API_KEY at https://api.example.test: "
        f"HTTP {status}: Authorization token is invalid"
    )
    assert halt.hint == (
        "set ORQ_API_KEY to a valid API key of this workspace (orq.ai: Settings, API Keys)"
    )
    with pytest.raises(ApiHaltError) as again:  # every later call, without sending
        api.annotate("t", "s2", [("rating", "good")])
    assert again.value is halt
    assert len(handler.requests) == 1


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


@pytest.mark.parametrize("status", [400, 401])
def test_the_api_key_never_appears_in_an_error_even_when_the_server_echoes_it(status):
    handler = Recorder(httpx.Response(status, json={"message": f"key {SECRET} is not valid"}))
    with pytest.raises(ApiError) as caught:
        client(handler).remove("t", "s", ["k"])
    assert SECRET not in caught.value.render()
    assert "key *** is not valid" in caught.value.message


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.ConnectError("[Errno -2] Name or service not known"),
        httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"),
        httpx.ConnectTimeout("timed out"),
    ],
)
def test_an_unreachable_server_halts_after_the_timeout_with_one_message(failure):
    handler = Recorder(failure)
    sleeps: list[float] = []
    api = client(handler, sleeps=sleeps, unreachable_timeout=60)
    with pytest.raises(ApiHaltError) as caught:
        api.remove("t", "s", ["k"])
    halt = caught.value
    assert (halt.reason, halt.exit_code) == ("unreachable", EXIT_ERROR)
    assert halt.message.startswith(f"cannot reach https://api.example.test: {failure} (for ")
    assert "api.unreachable_timeout_seconds" in halt.hint
    assert SECRET not in halt.render()
    # the shared backoff grows, so a minute is a handful of attempts, not hundreds
    assert 60 <= sum(sleeps) <= 90
    assert len(handler.requests) <= 10
    with pytest.raises(ApiHaltError):
        api.remove("t", "s2", ["k"])
    assert len(handler.requests) <= 10


def test_a_url_with_another_scheme_is_unreachable_not_retried_per_request():
    api = OrqClient("ftp://example.test", SECRET, unreachable_timeout=0.001, sleep=lambda s: None)
    with pytest.raises(ApiHaltError) as caught:
        api.remove("t", "s", ["k"])
    assert caught.value.reason == "unreachable"
    assert caught.value.message.startswith("cannot reach ftp://example.test: ")


def test_a_lasting_outage_shares_one_backoff_then_halts_with_exit_3():
    handler = Recorder(httpx.Response(503, json={"message": "Service Unavailable"}))
    sleeps: list[float] = []
    api = client(handler, sleeps=sleeps, max_attempts=3, outage_timeout=300)
    with pytest.raises(ApiHaltError) as caught:
        for number in range(20):  # while most answers fail, attempts are not used up
            try:
                api.remove("t", f"s{number}", ["k"])
            except ApiHaltError:
                raise
            except ApiError as refused:
                assert "gave up after 3 attempts" in refused.message
    halt = caught.value
    assert (halt.reason, halt.exit_code) == ("outage", EXIT_PARTIAL)
    assert halt.message.startswith("orq.ai at https://api.example.test has failed every request")
    assert halt.message.endswith("its last answer: HTTP 503: Service Unavailable")
    assert 300 <= sum(sleeps) <= 400
    assert len(handler.requests) < 40  # backoff grows to its cap: not hundreds of requests


def test_flapping_5xx_converge_without_giving_up():
    # Bursts of failures longer than max_attempts (10): once most recent answers fail, the
    # shared backoff waits them out and they stop using up a request's attempts.
    script = ([httpx.Response(502, text="bad gateway")] * 15 + [httpx.Response(200)] * 8) * 5
    handler = Recorder(*script, httpx.Response(200))
    api = client(handler)
    for number in range(45):
        api.remove("t", f"s{number}", ["k"])
    assert len(handler.requests) == 15 * 5 + 45


def test_a_rate_limit_that_asks_to_wait_longer_than_the_outage_timeout_halts_at_once():
    handler = Recorder(httpx.Response(429, headers={"Retry-After": "3600"}, json={"message": "x"}))
    with pytest.raises(ApiHaltError) as caught:
        client(handler, outage_timeout=300).remove("t", "s", ["k"])
    assert caught.value.reason == "outage"
    assert caught.value.message.startswith("orq.ai's rate limit asks to wait 60 minutes")
    assert len(handler.requests) == 1


def test_x_ratelimit_headers_set_the_pace():
    headers = {"X-RateLimit-Limit": "120", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1"}
    handler = Recorder(httpx.Response(200, headers=headers))
    sleeps: list[float] = []
    api = client(handler, sleeps=sleeps)
    for number in range(5):
        api.remove("t", f"s{number}", ["k"])
    assert api.pacer.rate() == 2.0  # 120 a minute
    assert sum(sleeps) == pytest.approx(2.0)  # four starts after the first, half a second apart


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
    assert pacer.rate() == 1.0


def test_no_attempt_starts_after_the_deadline() -> None:
    """apply --max-duration: a request whose turn at the rate limit, or whose retry after a
    429, comes after the deadline raises DeadlineReached unsent, without waiting for it."""
    handler = Recorder(httpx.Response(200, json={}))
    sleeps: list[float] = []
    api = client(handler, sleeps=sleeps, requests_per_minute=60)
    api.deadline = 3.5
    for n in range(4):  # turns at 0, 1, 2 and 3 s
        api.annotate("t", f"s{n}", [("rating", "good")])
    with pytest.raises(DeadlineReached):
        api.annotate("t", "s4", [("rating", "good")])  # its turn, 4 s, is after 3.5 s
    assert len(handler.requests) == 4 and sum(sleeps) == pytest.approx(3.0)

    throttled = Recorder(httpx.Response(429, headers={"retry-after": "30"}))
    sleeps = []
    api = client(throttled, sleeps=sleeps)
    api.deadline = 10.0
    with pytest.raises(DeadlineReached) as reached:
        api.annotate("t", "s", [("rating", "good")])
    assert len(throttled.requests) == 1 and sum(sleeps) < 10  # 30 s were not waited
    # what it was waiting out, for the apply's summary
    assert reached.value.waiting == "https://api.example.test answered HTTP 429: Too Many Requests"

    refused = Recorder(httpx.ConnectError("[Errno 111] Connection refused"))
    api = client(refused)
    api.deadline = 0.0  # the first attempt at 0 s; its retry after a backoff is too late
    with pytest.raises(DeadlineReached) as reached:
        api.annotate("t", "s", [("rating", "good")])
    assert reached.value.waiting == (
        "cannot reach https://api.example.test: [Errno 111] Connection refused"
    )


def test_a_request_that_may_have_reached_orq_ai_goes_on_past_the_deadline() -> None:
    """A 5xx may have been applied: the retry goes on, so that `repeated` tells the applier
    (a queue's add takes its spans as orqsync's then; stopped, the next apply would take them
    as someone else's)."""
    handler = Recorder(httpx.Response(503), httpx.Response(200, json={}))
    api = client(handler, requests_per_minute=60)
    api.deadline = 0.0  # the first attempt at 0 s; its retry comes after
    api.annotate("t", "s", [("rating", "good")])
    assert len(handler.requests) == 2 and api.repeated()


def test_stop_sends_no_request_that_waits_for_its_turn() -> None:
    """Ctrl-C: a request waiting a minute for its turn at the rate limit raises at once."""
    import threading

    handler = Recorder(httpx.Response(200, json={}))
    api = OrqClient(
        "https://api.example.test", SECRET, transport=httpx.MockTransport(handler),
        requests_per_minute=1,
    )  # fmt: skip
    api.annotate("t", "s0", [("rating", "good")])  # its turn now; the next in 60 s
    raised: list[BaseException] = []

    def second() -> None:
        try:
            api.annotate("t", "s1", [("rating", "good")])
        except DeadlineReached as exc:
            raised.append(exc)

    waiting = threading.Thread(target=second)
    waiting.start()
    for _ in range(1000):  # until the second request has its turn, 60 s away
        if len(api.pacer._starts) == 2:
            break
        threading.Event().wait(0.01)
    assert len(api.pacer._starts) == 2 and waiting.is_alive()
    api.stop()
    waiting.join(30)  # not the 60 s of its turn
    assert not waiting.is_alive() and len(raised) == 1
    assert len(handler.requests) == 1


def test_after_stop_a_request_in_flight_retries_at_the_pace_asked_not_in_a_loop() -> None:
    """Ctrl-C during a request whose attempt may have arrived (a 503): it goes on to its
    answer, and the 429s it then meets are waited out as asked: stop() ends only the waits
    of requests not yet sent."""
    import time as clock

    api: OrqClient
    sent: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(clock.monotonic())
        if len(sent) == 1:
            api.stop()  # Ctrl-C while the first attempt is out
            return httpx.Response(503)
        if len(sent) <= 4:
            return httpx.Response(429, headers={"retry-after": "0.3"})
        return httpx.Response(200, json={})

    api = OrqClient("https://api.example.test", SECRET, transport=httpx.MockTransport(handler))
    api.annotate("t", "s", [("rating", "good")])
    assert len(sent) == 5 and api.repeated()
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent[1:])]
    assert all(gap >= 0.25 for gap in gaps), gaps  # each Retry-After waited out


def test_a_request_in_flight_is_retried_past_the_deadline_for_a_while_not_for_ever() -> None:
    """Every answer a 503: the request that may have arrived goes on after the deadline, but
    gives up once its next try would come more than LATE seconds after it (it went on to the
    five-minute outage halt, and a Ctrl-C waited for it)."""
    handler = Recorder(httpx.Response(503))
    time = FakeTime()
    api = OrqClient(
        "https://api.example.test", SECRET, transport=httpx.MockTransport(handler),
        clock=time.clock, sleep=time.sleep, rng=random.Random(1), max_attempts=10_000,
    )  # fmt: skip
    api.deadline = 0.0
    with pytest.raises(ApiError) as raised:
        api.annotate("t", "s", [("rating", "good")])
    assert not isinstance(raised.value, ApiHaltError)
    assert "given up: its next try came more than 30 seconds after the apply's deadline" in (
        raised.value.message
    )
    assert time.now <= LATE and len(handler.requests) > 1


def test_a_get_stops_at_the_deadline_even_after_a_5xx() -> None:
    """A GET changes nothing: the queue lookup before an apply stops at the deadline (it went
    on until 30 s past it and failed the apply with exit 1)."""
    handler = Recorder(httpx.Response(503))
    api = client(handler, max_attempts=10_000)
    api.deadline = 0.0
    with pytest.raises(DeadlineReached) as reached:
        api.get("/v2/annotation-queues")
    assert reached.value.waiting == (
        "https://api.example.test answered HTTP 503: Service Unavailable"
    )
    assert len(handler.requests) == 1


def test_the_shared_backoff_stays_a_number_however_many_failures() -> None:
    pacer = Pacer(sleep=lambda seconds: None)
    for _ in range(2000):  # 2**1024 is no float: an OverflowError once stop() woke sleepers
        assert pacer._backoff() <= 30


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
