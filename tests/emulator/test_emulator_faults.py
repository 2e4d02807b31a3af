"""Seeded fault injection: reproducible 429s, 5xx, drops and latency, only on /v2 routes."""

from __future__ import annotations

import contextlib

import httpx
import pytest

from orqsync.emulator import Emulator, FaultConfig, core
from orqsync.emulator.faults import Fault, FaultInjector

from .emulator_helpers import annotate, client_for


def outcomes(emulator: Emulator, count: int) -> list[tuple[int, str | None]]:
    """Send `count` annotation requests on distinct spans; return (status, fault) per request."""
    with client_for(emulator) as http:
        for number in range(count):
            with contextlib.suppress(httpx.RemoteProtocolError):
                http.post(
                    f"/v2/traces/t/spans/s{number}/annotation",
                    json={"annotations": [{"key": "rating", "value": "good"}]},
                )
    return [(entry.status, entry.fault) for entry in emulator.requests()]


MIXED = FaultConfig(seed=42, burst_429_rate=0.1, error_rate=0.2, drop_rate=0.2)


def test_the_same_seed_gives_the_same_faults_in_the_same_order(make_emulator):
    first = outcomes(make_emulator(faults=MIXED), 200)
    second = outcomes(make_emulator(faults=MIXED), 200)
    assert first == second
    faults = {fault for _, fault in first}
    assert faults == {None, "burst_429", "server_error", "drop_before", "drop_after"}


def test_another_seed_gives_other_faults(make_emulator):
    first = outcomes(make_emulator(faults=MIXED), 200)
    other = FaultConfig(seed=43, burst_429_rate=0.1, error_rate=0.2, drop_rate=0.2)
    assert outcomes(make_emulator(faults=other), 200) != first


def test_reset_replays_the_fault_sequence_from_the_start(make_emulator):
    emulator = make_emulator(faults=MIXED)
    first = outcomes(emulator, 50)
    emulator.reset()
    assert outcomes(emulator, 50) == first


def test_fault_rates_are_roughly_the_configured_fractions(make_emulator):
    results = outcomes(make_emulator(faults=FaultConfig(seed=1, error_rate=0.25)), 400)
    errors = sum(1 for _, fault in results if fault == "server_error")
    assert 70 <= errors <= 130


def test_server_errors_are_500_502_or_503_and_apply_nothing(make_emulator):
    emulator = make_emulator(faults=FaultConfig(seed=3, error_rate=1.0))
    statuses = {status for status, _ in outcomes(emulator, 60)}
    assert statuses == {500, 502, 503}
    assert emulator.annotations() == []
    with client_for(emulator) as http:
        body = annotate(http, {"key": "rating", "value": "good"}).json()
    assert body["category"] == "server_error"


def test_a_dropped_request_raises_in_the_transport(make_emulator):
    emulator = make_emulator(faults=FaultConfig(drop_rate=1.0))
    with client_for(emulator) as http, pytest.raises(httpx.RemoteProtocolError) as raised:
        annotate(http, {"key": "rating", "value": "good"})
    assert str(raised.value) == "Server disconnected without sending a response."


def test_drops_happen_both_before_and_after_the_write(make_emulator):
    emulator = make_emulator(faults=FaultConfig(seed=5, drop_rate=1.0))
    outcomes(emulator, 40)
    written = {row["span_id"] for row in emulator.annotations()}
    before = {f"s{e.seq - 1}" for e in emulator.requests() if e.fault == "drop_before"}
    after = {f"s{e.seq - 1}" for e in emulator.requests() if e.fault == "drop_after"}
    assert before and after
    assert written == after
    assert all(e.status == 0 for e in emulator.requests())


def test_the_token_bucket_answers_429_with_retry_after_and_rate_limit_headers(make_emulator):
    emulator = make_emulator(faults=FaultConfig(rate_limit_per_minute=3))
    with client_for(emulator) as http:
        admitted = [annotate(http, {"key": "rating", "value": "good"}) for _ in range(3)]
        limited = annotate(http, {"key": "rating", "value": "bad"})
    assert [r.status_code for r in admitted] == [200, 200, 200]
    assert [r.headers["X-RateLimit-Remaining"] for r in admitted] == ["2", "1", "0"]
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "20"  # one token every 60/3 seconds
    assert limited.headers["X-RateLimit-Limit"] == "3"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert limited.headers["X-RateLimit-Reset"] == "60"
    assert limited.json()["category"] == "rate_limited"
    assert emulator.span("cb2289e8eae4e587f8bba591734cc831", "274c568b4fffdfc5")["annotations"] == {
        "rating": "good"
    }


def test_the_token_bucket_refills_with_time():
    clock = [100.0]
    injector = FaultInjector(FaultConfig(rate_limit_per_minute=60), clock=lambda: clock[0])
    assert all(injector.decide().fault is None for _ in range(60))
    empty = injector.decide()
    assert empty.fault is Fault.RATE_LIMITED
    assert empty.headers["Retry-After"] == "1"
    clock[0] += 2.0
    assert [injector.decide().fault for _ in range(3)] == [None, None, Fault.RATE_LIMITED]


def test_a_burst_sets_the_depth_of_the_bucket_and_the_headers_say_what_is_left():
    clock = [0.0]
    config = FaultConfig(rate_limit_per_minute=1200, rate_limit_burst=20)
    injector = FaultInjector(config, clock=lambda: clock[0])
    admitted = [injector.decide() for _ in range(20)]
    assert all(decision.fault is None for decision in admitted)
    assert [admitted[i].headers["X-RateLimit-Remaining"] for i in (0, 19)] == ["19", "0"]
    assert admitted[0].headers["X-RateLimit-Limit"] == "1200"
    assert injector.decide().fault is Fault.RATE_LIMITED
    clock[0] += 0.05  # 20 a second: one more
    assert [injector.decide().fault for _ in range(2)] == [None, Fault.RATE_LIMITED]
    with pytest.raises(ValueError, match="rate_limit_burst must be at least 1"):
        FaultConfig(rate_limit_per_minute=60, rate_limit_burst=0.5)


def test_retry_after_is_a_whole_number_of_seconds_at_least_one():
    clock = [0.0]
    injector = FaultInjector(FaultConfig(rate_limit_per_minute=6000), clock=lambda: clock[0])
    for _ in range(6000):
        injector.decide()
    decision = injector.decide()
    assert decision.status == 429
    assert decision.headers["Retry-After"] == "1"


def test_burst_429s_carry_retry_after_one(make_emulator):
    emulator = make_emulator(faults=FaultConfig(burst_429_rate=1.0))
    with client_for(emulator) as http:
        response = annotate(http, {"key": "rating", "value": "good"})
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert emulator.annotations() == []


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The latencies the emulator injects, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(core, "sleep", recorded.append)
    return recorded


def test_latency_delays_each_api_request(make_emulator, slept):
    emulator = make_emulator(faults=FaultConfig(latency_ms=40))
    with client_for(emulator) as http:
        assert annotate(http, {"key": "rating", "value": "good"}).status_code == 200
        assert annotate(http, {"key": "rating", "value": "bad"}).status_code == 200
    assert slept == [0.04, 0.04]


def test_faults_never_touch_the_inspection_routes(make_emulator, slept):
    emulator = make_emulator(faults=FaultConfig(error_rate=1.0, latency_ms=200))
    with client_for(emulator) as http:
        assert http.get("/_emulator/annotations").status_code == 200
        assert http.post("/_emulator/reset").status_code == 200
    assert slept == []
    assert emulator.requests() == []


def test_faults_apply_only_to_v2_routes(make_emulator):
    emulator = make_emulator(faults=FaultConfig(error_rate=1.0))
    with client_for(emulator) as http:
        assert http.post("/other").status_code == 404
        assert http.post("/v2/nowhere").status_code in (500, 502, 503)


def test_faults_are_counted_in_the_request_log_and_stats(make_emulator):
    emulator = make_emulator(faults=MIXED)
    results = outcomes(emulator, 100)
    stats = emulator.stats()
    assert stats["requests"] == 100
    assert sum(stats["faults"].values()) == sum(1 for _, fault in results if fault)
    assert stats["by_status"]["0"] == sum(1 for status, _ in results if status == 0)


@pytest.mark.parametrize(
    "settings",
    [
        {"error_rate": 1.5},
        {"drop_rate": -0.1},
        {"burst_429_rate": 2},
        {"rate_limit_per_minute": 0},
        {"latency_ms": -1},
    ],
)
def test_fault_settings_out_of_range_are_refused(settings: dict[str, float]):
    with pytest.raises(ValueError):
        FaultConfig(**settings)
