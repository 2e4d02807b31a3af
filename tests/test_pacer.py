"""The Pacer: at the server's limit, never a crawl, one decrease per congestion event.

The figures come from a simulation with a simulated clock (pacesim.py): the same inputs give
the same run, and nothing is timed.
"""

from __future__ import annotations

import pytest
from pacesim import Noisy, Open, Result, TokenBucket, simulate

from orqsync.remote.pacer import MIN_RATE, Outcome, Pacer, RateHeaders

PARALLELISM = 8
LATENCY = 0.02  # seconds: 400 requests a second at most, with 8 in flight
NATURAL = PARALLELISM / LATENCY


class Only429Headers(TokenBucket):
    """A limit that says X-RateLimit-* only when it refuses (orq.ai's documented 429s)."""

    def answer(self, now: float):
        answer = super().answer(now)
        return answer if answer.status == 429 else type(answer)(answer.status)


def run(server, requests: int) -> Result:
    return simulate(server, requests=requests, parallelism=PARALLELISM, latency=LATENCY)


@pytest.mark.parametrize("server", [TokenBucket, Only429Headers], ids=["always", "on 429s"])
def test_with_rate_limit_headers_the_burst_goes_at_once_and_the_rest_at_the_limit(server):
    result = run(server(per_minute=1200, burst=20), 1500)
    ideal = (1500 - 20) / 20
    assert result.seconds <= 1.02 * ideal
    assert result.throttled <= 0.01 * 1500
    assert result.rates[-1][1] == pytest.approx(20.0)


def test_a_burst_of_a_whole_minute_is_used_before_pacing_starts():
    result = run(TokenBucket(per_minute=1200, burst=1200), 2000)
    assert result.seconds <= 1.02 * (2000 - 1200) / 20
    assert result.throttled == 0


def test_without_headers_the_throughput_settles_within_10_percent_of_the_limit():
    result = run(TokenBucket(per_minute=1200, burst=20, headers=False), 1500)
    settled = result.accepted_rate(after=result.seconds / 2)
    assert 18.0 <= settled <= 22.0


@pytest.mark.parametrize("share", [0.05, 0.2, 0.5])
def test_random_429s_cost_the_waits_they_ask_for_and_never_a_crawl(share):
    clean = run(Open(), 1200)
    noisy = run(Noisy(share, seed=3), 1200)
    assert noisy.throttled > 0.8 * share * 1200  # the 429s really happened
    assert noisy.seconds <= 1.2 * (clean.seconds + noisy.paused)
    held = [rate for _, rate in noisy.rates if rate is not None]
    assert min(held) >= 0.5 * NATURAL  # never near MIN_RATE
    assert min(held) > 100 * MIN_RATE


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_429s_of_one_burst_are_one_congestion_event_and_pause_everyone():
    time = FakeTime()
    pacer = Pacer(clock=time.clock, sleep=time.sleep)
    in_flight = [pacer.schedule() for _ in range(8)]
    time.now = 0.05
    for ticket in in_flight:
        pacer.answered(ticket, Outcome.THROTTLED, retry_after=2.0)
    assert pacer.events == 1
    assert pacer.throttled == 8
    assert pacer.paused_seconds == pytest.approx(2.0)
    rate = pacer.rate()
    assert rate is not None and rate < 8 / 0.05  # lowered once, from what was being sent
    assert pacer.schedule().start >= 2.05  # everyone waits out the Retry-After
    late = pacer.schedule()
    pacer.answered(late, Outcome.THROTTLED, retry_after=1.0)  # a new event
    assert pacer.events == 2


def test_a_rate_lowered_by_429s_climbs_back_with_successes_and_stays_under_a_ceiling():
    time = FakeTime()
    pacer = Pacer(requests_per_minute=600, clock=time.clock, sleep=time.sleep)
    pacer.answered(pacer.wait(), Outcome.THROTTLED, retry_after=0.0)
    lowered = pacer.rate()
    assert lowered is not None and lowered < 10.0
    for _ in range(200):
        pacer.answered(pacer.wait(), Outcome.OK)
    assert pacer.rate() == 10.0  # back at the fixed ceiling, never above it


def test_failures_back_off_together_once_most_recent_answers_fail():
    time = FakeTime()
    pacer = Pacer(clock=time.clock, sleep=time.sleep)
    for _ in range(9):
        pacer.answered(pacer.schedule(), Outcome.FAILED)
    assert not pacer.systemic  # too few answers to say
    assert pacer.schedule().start == 0.0
    pacer.answered(pacer.schedule(), Outcome.FAILED)
    assert pacer.systemic
    assert pacer.schedule().start > 0.0  # a shared backoff
    for _ in range(20):
        pacer.answered(pacer.schedule(), Outcome.OK)
    assert not pacer.systemic


def test_only_a_failure_streak_or_most_answers_make_failures_systemic():
    time = FakeTime()
    pacer = Pacer(clock=time.clock, sleep=time.sleep)
    for number in range(200):  # one failure in four, spread out: never systemic
        pacer.answered(pacer.schedule(), Outcome.FAILED if number % 4 == 0 else Outcome.OK)
        assert not pacer.systemic


def test_the_server_budget_counts_requests_started_after_the_answer_that_told_it():
    time = FakeTime()
    pacer = Pacer(clock=time.clock, sleep=time.sleep)
    first = pacer.schedule()
    others = [pacer.schedule() for _ in range(3)]  # in flight before the answer came
    pacer.answered(first, Outcome.OK, headers=RateHeaders(limit=60, remaining=4))
    assert pacer.schedule().start == 0.0  # 4 left, 3 of them taken: this is the 4th
    assert pacer.schedule().start == pytest.approx(1.0)  # then one a second
    assert pacer.schedule().start == pytest.approx(2.0)
    pacer.answered(others[2], Outcome.OK, headers=RateHeaders(limit=60, remaining=9))
    # the freshest answer wins: 9 left when the 4th request was answered, 3 started since
    assert pacer.schedule().start == 0.0
    pacer.answered(others[0], Outcome.OK, headers=RateHeaders(limit=60, remaining=0))
    assert pacer.schedule().start == 0.0  # an older answer changes nothing
    assert pacer.rate() == 1.0


def test_a_start_refused_at_a_deadline_takes_no_place_from_the_others():
    """apply --max-duration: a refused start reserves nothing, or the refusals of many
    senders would push every later start past the deadline (an apply given 4 s did nothing)."""
    clock = [0.0]
    pacer = Pacer(requests_per_minute=60, clock=lambda: clock[0], sleep=lambda s: None)
    assert pacer.schedule(deadline=0.5).start == 0.0
    for _ in range(10):
        assert pacer.schedule(deadline=0.5) is None  # the next start is at 1 s
    assert pacer.schedule().start == 1.0  # not 11 s
