"""Words for numbers in messages: counts with their noun, durations a person reads."""

from __future__ import annotations


def plural(count: int, noun: str, nouns: str = "", *, grouped: bool = True) -> str:
    """`1 request`, `2 requests`, `1,200 requests`; `nouns` for an irregular plural.
    `grouped=False` writes `1200 requests`, for the lines that have always been written so
    (Terraform's plan summary, the counts of `validate` and the problem counts)."""
    number = f"{count:,}" if grouped else str(count)
    return f"{number} {noun if count == 1 else nouns or noun + 's'}"


def duration_text(seconds: float) -> str:
    """`1 second`, `45 seconds`, `1 minute`, `50 minutes`, `1 hour`, `2.5 hours`."""
    if seconds < 89.5:
        return plural(max(0, round(seconds)), "second")
    if seconds < 89.5 * 60:
        return plural(round(seconds / 60), "minute")
    hours = round(seconds / 3600, 1)
    return "1 hour" if hours == 1 else f"{hours:g} hours"
