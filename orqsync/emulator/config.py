"""Settings of the emulator: what it accepts and which faults it injects."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Fault injection on the /v2 API routes; everything is off by default.

    Every decision comes from `random.Random(seed)`, so the same request sequence meets the same
    faults. Rates are fractions of requests in [0, 1].
    """

    seed: int = 0
    rate_limit_per_minute: float | None = None
    rate_limit_burst: float | None = None  # the bucket's depth; None: a minute's budget
    burst_429_rate: float = 0.0
    error_rate: float = 0.0
    latency_ms: float = 0.0
    drop_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("rate_limit_per_minute", "rate_limit_burst", "latency_ms"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value}")
        for name in ("burst_429_rate", "error_rate", "drop_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {rate}")
        if self.rate_limit_per_minute is not None and self.rate_limit_per_minute <= 0:
            raise ValueError(
                f"rate_limit_per_minute must be positive or None, got {self.rate_limit_per_minute}"
            )
        if self.rate_limit_burst is not None and self.rate_limit_burst < 1:
            raise ValueError(f"rate_limit_burst must be at least 1, got {self.rate_limit_burst}")
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms must not be negative, got {self.latency_ms}")

    @property
    def enabled(self) -> bool:
        """True when at least one fault can happen."""
        return (
            self.rate_limit_per_minute is not None
            or self.burst_429_rate > 0
            or self.error_rate > 0
            or self.latency_ms > 0
            or self.drop_rate > 0
        )


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """What the emulator accepts and where it keeps its data.

    `api_keys`: accepted bearer keys (an empty tuple rejects every request with 401).
    `definitions_path`: a definitions.yaml; None seeds orq.ai's built-in `rating` and `defects`.
    `evaluations_path`: a YAML file of the evaluator results that corrections may name
    (evaluations.py); None: none until added at run time.
    `known_spans`: when given, every other (trace_id, span_id) answers 404.
    `string_limit`: maximum length of a string value (200 documented, 3000 in the newer spec).
    `db_path`: SQLite file, or ":memory:".
    `workspace`: the workspace name used in error messages.
    """

    api_keys: tuple[str, ...]
    definitions_path: str | None = None
    evaluations_path: str | None = None
    known_spans: frozenset[tuple[str, str]] | None = None
    string_limit: int = 200
    db_path: str = ":memory:"
    workspace: str = "emulator-workspace"
    faults: FaultConfig = field(default_factory=FaultConfig)

    def __post_init__(self) -> None:
        if isinstance(self.api_keys, str):
            raise TypeError("api_keys must be a tuple of keys, not a single string")
        if self.string_limit < 1:
            raise ValueError(f"string_limit must be positive, got {self.string_limit}")
