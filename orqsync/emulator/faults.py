"""Seeded fault decisions: rate limiting, 429 bursts, 5xx errors, latency, dropped connections."""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from .config import FaultConfig


class Fault(str, Enum):
    """What happens to one request instead of (or after) its normal handling."""

    RATE_LIMITED = "rate_limited"  # the token bucket is empty: 429
    BURST_429 = "burst_429"  # a random 429, independent of the bucket
    SERVER_ERROR = "server_error"  # 500, 502 or 503, nothing applied
    DROP_BEFORE = "drop_before"  # connection closed, nothing applied
    DROP_AFTER = "drop_after"  # write applied, then the connection closed


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """The fate of one request: a fault or None, its status, headers to add, latency."""

    fault: Fault | None = None
    status: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)
    latency_s: float = 0.0


NO_FAULT = FaultDecision()
_SERVER_ERRORS = (500, 502, 503)


class FaultInjector:
    """Decides each request's fault from `random.Random(seed)`; thread-safe.

    Every decision draws the same five numbers whatever the outcome, so the n-th request meets
    the same fault in every run with the same seed; only the token bucket depends on the clock.
    """

    def __init__(self, config: FaultConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Start over: reseed the generator and fill the bucket."""
        with self._lock:
            self._random = random.Random(self._config.seed)
            limit = self._config.rate_limit_per_minute
            burst = self._config.rate_limit_burst
            self._capacity = 0.0 if limit is None else burst or max(limit, 1.0)
            self._tokens = self._capacity
            self._last = self._clock()

    def decide(self) -> FaultDecision:
        """The decision for the next request."""
        config = self._config
        if not config.enabled:
            return NO_FAULT
        with self._lock:
            burst, error, error_kind, drop, drop_phase = (self._random.random() for _ in range(5))
            headers: dict[str, str] = {}
            if config.rate_limit_per_minute is not None:
                admitted, headers = self._take_token(config.rate_limit_per_minute)
                if not admitted:
                    return self._decision(Fault.RATE_LIMITED, 429, headers)
        if burst < config.burst_429_rate:
            return self._decision(Fault.BURST_429, 429, {**headers, "Retry-After": "1"})
        if error < config.error_rate:
            status = _SERVER_ERRORS[min(int(error_kind * len(_SERVER_ERRORS)), 2)]
            return self._decision(Fault.SERVER_ERROR, status, headers)
        if drop < config.drop_rate:
            phase = Fault.DROP_BEFORE if drop_phase < 0.5 else Fault.DROP_AFTER
            return self._decision(phase, 0, headers)
        return self._decision(None, 0, headers)

    def _decision(
        self, fault: Fault | None, status: int, headers: Mapping[str, str]
    ) -> FaultDecision:
        return FaultDecision(fault, status, headers, self._config.latency_ms / 1000.0)

    def _take_token(self, limit: float) -> tuple[bool, dict[str, str]]:
        # Caller holds the lock. A token bucket refilled at limit/60 per second, as deep as one
        # minute's budget unless a burst is set: the same long-run rate as orq's rolling 60 s
        # window.
        per_second = limit / 60.0
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * per_second)
        self._last = now
        admitted = self._tokens >= 1.0
        if admitted:
            self._tokens -= 1.0
        headers = {
            "X-RateLimit-Limit": _integer(limit),
            "X-RateLimit-Remaining": str(int(self._tokens)),
            # Seconds until the bucket is full again.
            "X-RateLimit-Reset": str(math.ceil((self._capacity - self._tokens) / per_second)),
        }
        if not admitted:
            wait = math.ceil((1.0 - self._tokens) / per_second)
            headers["Retry-After"] = str(max(1, wait))
        return admitted, headers


def _integer(limit: float) -> str:
    return str(int(limit)) if float(limit).is_integer() else f"{limit:g}"
