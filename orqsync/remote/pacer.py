"""When each request may start, so that an apply runs at the server's limit and no faster.

One Pacer is shared by every thread of an apply. Each request asks `wait()` for a start (a
`Ticket`) and reports how it was answered with `answered()`. What decides the start:

- **A fixed ceiling** (`api.requests_per_minute`): never exceeded.
- **Pauses for everyone.** A 429's ``Retry-After`` names the whole client, so every request
  waits it out, not only the one refused. While most recent answers are server failures (5xx,
  timeouts, dropped connections) or no connection can be made, everyone backs off together
  (exponential, with jitter) instead of each request spending its own attempts.
- **The server's budget**, when it sends ``X-RateLimit-Limit`` (requests a minute) and
  ``X-RateLimit-Remaining``: a model of its bucket. The freshest answer's ``Remaining``, less
  every request started after that one, plus the refill at the limit since; a request starts
  when the model holds a whole request. The burst goes out at once, the rest at the limit.
- **Congestion control** for servers that answer 429 without those headers (AIMD, as TCP
  does): the first 429 of a congestion event lowers the rate to ``BETA`` of what it was; 429s
  of requests sent before that belong to the same event. Each success that had to wait for
  the rate raises it by ``GROWTH``, so it is back where it was after a few dozen requests, and
  no 429 lowers it again before it is: random 429s (other clients sharing the workspace's
  limit) cost the waits the server asked for and little more, never a crawl. Against a real
  limit the Retry-After pauses hold the throughput at the limit.

The Pacer never reads the wall clock or sleeps except through the `clock` and `sleep` it was
given, and `schedule()` returns a start without sleeping, so that a simulation can drive it.
"""

from __future__ import annotations

import collections
import enum
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

BETA = 0.7  # the rate kept after a congestion event
GROWTH = 0.015  # the rise of the rate per success that waited for it
MIN_RATE = 0.05  # requests a second: never slower than one every 20 s
WINDOW = 20  # recent answers that say whether failures are systemic
SYSTEMIC = 0.75  # the share of server failures among them that is
SYSTEMIC_MIN = 10  # the fewest answers that can say so; as many failures in a row do
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0


class Outcome(enum.Enum):
    """How a request was answered, as far as pacing is concerned."""

    OK = "ok"  # a 2xx, or a refusal (4xx) that says the server is up
    THROTTLED = "throttled"  # 429
    FAILED = "failed"  # 5xx, 408, a timeout, a dropped connection
    UNREACHABLE = "unreachable"  # no connection could be made


@dataclass(frozen=True, slots=True)
class RateHeaders:
    """The server's X-RateLimit-* headers: a limit a minute, what is left, seconds to reset."""

    limit: float | None = None
    remaining: float | None = None
    reset: float | None = None


@dataclass(frozen=True, slots=True)
class Ticket:
    """One request's start: its place in the sequence, the congestion epoch it was sent in,
    when it starts, and whether it waited for the congestion rate."""

    seq: int
    epoch: int
    start: float
    spaced: bool = False


class Pacer:
    """Decides when each request may start; thread-safe. See the module docstring."""

    def __init__(
        self,
        requests_per_minute: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,  # what it returns is ignored
        rng: random.Random | None = None,
    ) -> None:
        self.ceiling = requests_per_minute / 60.0 if requests_per_minute else None
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        now = clock()
        # congestion control
        self._rate: float | None = None  # requests a second; None: not slowed by 429s
        self._peak: float | None = None  # the rate before the last decrease
        self._epoch = 0
        # spacing and pauses
        self._next = 0.0
        self._paused_until = 0.0
        self._started = 0
        self._starts: collections.deque[float] = collections.deque(maxlen=WINDOW)
        # the server's budget, from the freshest answer with X-RateLimit-* headers
        self._limit: float | None = None  # requests a second
        self._budget_seq = -1
        self._budget_left = 0.0
        self._budget_at = 0.0
        # health
        self._recent: collections.deque[bool] = collections.deque(maxlen=WINDOW)  # failed?
        self._backoffs = 0  # shared backoffs since the last good answer
        self._last_good = now
        self._unreachable_since: float | None = None
        # what happened, for reports and benchmarks
        self.throttled = 0
        self.events = 0
        self.paused_seconds = 0.0
        self._paused_from = 0.0

    # The start of a request --------------------------------------------------------------

    def schedule(self, deadline: float | None = None) -> Ticket | None:
        """Reserve the next start; does not sleep. None, reserving nothing, when that start
        would come after `deadline` (a refused start takes no place from the others)."""
        with self._lock:
            now = self._clock()
            start = max(now, self._paused_until)
            spaced = False
            interval = self._interval()
            if interval and self._next > start:
                spaced = self._rate is not None and 1.0 / self._rate >= interval
                start = self._next
            if self._limit is not None and self._budget_seq >= 0:
                # requests the model must still hold, this one included
                needed = 1.0 + (self._started - self._budget_seq) - self._budget_left
                if needed > 0:
                    start = max(start, self._budget_at + needed / self._limit)
            if deadline is not None and start > deadline:
                return None
            self._next = start + interval if interval else start
            self._started += 1
            self._starts.append(start)
            return Ticket(self._started, self._epoch, start, spaced)

    def wait(
        self, deadline: float | None = None, sleep: Callable[[float], object] | None = None
    ) -> Ticket | None:
        """Sleep (with `sleep`, else the pacer's) until the next start is due; the ticket goes
        back with `answered`. None, at once, when that start would come after `deadline`."""
        ticket = self.schedule(deadline)
        if ticket is None:
            return None
        delay = ticket.start - self._clock()
        if delay > 0:
            (sleep or self._sleep)(delay)
        return ticket

    def _interval(self) -> float:
        rates = [r for r in (self.ceiling, self._rate) if r is not None]
        return 1.0 / min(rates) if rates else 0.0

    # What the server said ------------------------------------------------------------------

    def answered(
        self,
        ticket: Ticket,
        outcome: Outcome,
        *,
        retry_after: float | None = None,
        headers: RateHeaders | None = None,
    ) -> None:
        """Learn from one answer (every attempt's, retries included)."""
        with self._lock:
            now = self._clock()
            if headers is not None:
                self._learn_budget(ticket, headers, now)
            if outcome is not Outcome.UNREACHABLE:
                self._unreachable_since = None
            if outcome is Outcome.OK:
                self._recent.append(False)
                self._last_good = now
                self._backoffs = 0
                if self._rate is not None and ticket.spaced:
                    self._rate *= 1.0 + GROWTH
                    if self.ceiling is not None:
                        self._rate = min(self._rate, self.ceiling)
            elif outcome is Outcome.THROTTLED:
                self.throttled += 1
                self._pause(now, retry_after if retry_after is not None else self._backoff())
                if ticket.epoch == self._epoch:
                    self._congestion(now)
            elif outcome is Outcome.FAILED:
                self._recent.append(True)
                if self.systemic and ticket.epoch == self._epoch:
                    self._epoch += 1
                    self._pause(now, self._backoff())
            else:
                if self._unreachable_since is None:
                    self._unreachable_since = now
                if ticket.epoch == self._epoch:
                    self._epoch += 1
                    self._pause(now, self._backoff())

    def _learn_budget(self, ticket: Ticket, headers: RateHeaders, now: float) -> None:
        if headers.limit is None or headers.limit <= 0:
            return
        self._limit = headers.limit / 60.0
        if headers.remaining is not None and ticket.seq > self._budget_seq:
            self._budget_seq = ticket.seq
            self._budget_left = max(0.0, headers.remaining)
            self._budget_at = now

    def _congestion(self, now: float) -> None:
        """The first 429 of a new event: lower the rate, unless it is still climbing back to
        where the last decrease started (see the module docstring)."""
        self._epoch += 1
        self.events += 1
        rate = self._rate if self._rate is not None else self._measured_rate(now)
        if self.ceiling is not None:
            rate = min(rate, self.ceiling)
        if self._peak is not None and rate < self._peak:
            return
        self._peak = rate
        self._rate = max(MIN_RATE, rate * BETA)

    def _measured_rate(self, now: float) -> float:
        """Requests a second over the last starts (the first congestion event sets the rate
        from it): at least one request a second."""
        if not self._starts:
            return 1.0
        return max(1.0, len(self._starts) / max(now - self._starts[0], 1e-3))

    def _backoff(self) -> float:
        # the exponent stops where the cap is reached: 2**1024 is no float
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(self._backoffs, 64))
        self._backoffs += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def _pause(self, now: float, seconds: float) -> None:
        until = now + seconds
        if until <= self._paused_until:
            return
        # the union of pauses, for reports: what the server asked us to wait
        self.paused_seconds += until - max(now, self._paused_until)
        self._paused_until = until

    # What the applier and the client ask ------------------------------------------------------

    @property
    def systemic(self) -> bool:
        """Most recent answers are server failures, or the last SYSTEMIC_MIN all were: everyone
        is backing off together."""
        recent = self._recent
        if len(recent) < SYSTEMIC_MIN:
            return False
        streak = all(recent[i] for i in range(-SYSTEMIC_MIN, 0))
        return streak or sum(recent) >= SYSTEMIC * len(recent)

    def unreachable_for(self) -> float:
        """Seconds since the first of the connection failures that followed the last answer."""
        with self._lock:
            since = self._unreachable_since
            return 0.0 if since is None else self._clock() - since

    def failing_for(self) -> float:
        """Seconds since the last answer that was neither a server failure nor a 429."""
        with self._lock:
            return self._clock() - self._last_good

    def rate(self) -> float | None:
        """The requests a second the pacer holds to now; None when it holds to none."""
        with self._lock:
            rates = [r for r in (self.ceiling, self._rate, self._limit) if r is not None]
            return min(rates) if rates else None


def rate_headers(headers: object) -> RateHeaders | None:
    """X-RateLimit-Limit, -Remaining and -Reset from a mapping of headers (case as httpx
    gives them), or None when the limit is not among them or not a number."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    values = []
    for name in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"):
        raw = get(name)
        try:
            value = float(raw) if raw is not None else None
        except ValueError:
            value = None
        values.append(value if value is not None and math.isfinite(value) else None)
    if values[0] is None:
        return None
    return RateHeaders(*values)
