"""A discrete-event simulation of an apply's senders against a rate-limited server.

`parallelism` senders each take a request, ask the Pacer for a start, reach the server half a
latency later and hear its answer a whole latency later; a 429 sends the same request again.
Time is simulated: the Pacer's clock is the simulation's, nothing sleeps, and the same inputs
give the same run, so tests can hold the controller to figures without timing anything.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from orqsync.remote.pacer import Outcome, Pacer, RateHeaders, Ticket


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    retry_after: float | None = None
    headers: RateHeaders | None = None


class Server:
    """What answers each request that reaches it at time `now`."""

    def answer(self, now: float) -> Answer:
        raise NotImplementedError


@dataclass
class Open(Server):
    """No limit: every request succeeds."""

    def answer(self, now: float) -> Answer:
        return Answer(200)


@dataclass
class TokenBucket(Server):
    """A bucket of `burst` requests refilled at `per_minute`, as the emulator's; with
    `headers`, it says so in X-RateLimit-* as the emulator does."""

    per_minute: float
    burst: float
    headers: bool = True
    tokens: float = field(init=False)
    last: float = 0.0

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def answer(self, now: float) -> Answer:
        per_second = self.per_minute / 60
        self.tokens = min(self.burst, self.tokens + (now - self.last) * per_second)
        self.last = now
        admitted = self.tokens >= 1
        if admitted:
            self.tokens -= 1
        told = RateHeaders(self.per_minute, float(int(self.tokens)), None) if self.headers else None
        if admitted:
            return Answer(200, headers=told)
        return Answer(429, max(1.0, math.ceil((1 - self.tokens) / per_second)), told)


@dataclass
class Noisy(Server):
    """A share `rate` of requests answered 429 with Retry-After `wait`, whatever the pace."""

    rate: float
    seed: int = 1
    wait: float = 1.0
    inner: Server = field(default_factory=Open)

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)

    def answer(self, now: float) -> Answer:
        if self.random.random() < self.rate:
            return Answer(429, self.wait)
        return self.inner.answer(now)


@dataclass
class Result:
    seconds: float  # from the first start to the last answer
    sent: int  # attempts, 429s included
    throttled: int
    rates: list[tuple[float, float | None]]  # (time, pacer.rate()) after every answer
    paused: float  # the union of the pauses the server asked for
    events: int
    succeeded_at: list[float]  # the time of every success

    def accepted_rate(self, after: float) -> float:
        """Successes a second from `after` to the end."""
        late = [t for t in self.succeeded_at if t >= after]
        return (len(late) - 1) / (late[-1] - late[0]) if len(late) > 1 else 0.0


def simulate(
    server: Server,
    *,
    requests: int,
    parallelism: int = 8,
    latency: float = 0.02,
    pacer: Callable[[Callable[[], float]], Pacer] = lambda clock: Pacer(clock=clock),
) -> Result:
    """Send `requests` requests, each until it succeeds; see the module docstring."""
    now = [0.0]
    the_pacer = pacer(lambda: now[0])
    events: list[tuple[float, int, str, int, Ticket, Answer | None]] = []
    order = 0
    waiting = requests
    sent = throttled = 0
    rates: list[tuple[float, float | None]] = []
    succeeded_at: list[float] = []

    def start(worker: int) -> None:
        nonlocal order, sent
        ticket = the_pacer.schedule()
        sent += 1
        order += 1
        heapq.heappush(events, (ticket.start + latency / 2, order, "arrive", worker, ticket, None))

    for worker in range(min(parallelism, requests)):
        waiting -= 1
        start(worker)
    while events:
        when, _, kind, worker, ticket, answer = heapq.heappop(events)
        now[0] = when
        if kind == "arrive":
            order += 1
            answer = server.answer(when)
            heapq.heappush(events, (when + latency / 2, order, "answer", worker, ticket, answer))
            continue
        assert answer is not None
        if answer.status == 429:
            throttled += 1
            the_pacer.answered(
                ticket, Outcome.THROTTLED, retry_after=answer.retry_after, headers=answer.headers
            )
            start(worker)  # the same request again
        else:
            the_pacer.answered(ticket, Outcome.OK, headers=answer.headers)
            succeeded_at.append(when)
            if waiting:
                waiting -= 1
                start(worker)
        rates.append((when, the_pacer.rate()))
    return Result(
        seconds=now[0],
        sent=sent,
        throttled=throttled,
        rates=rates,
        paused=the_pacer.paused_seconds,
        events=the_pacer.events,
        succeeded_at=succeeded_at,
    )
