"""Which trace and span ids orqsync accepts: orqsync.yaml's `id_format`.

Trace and span ids are sent inside the request path
(`/v2/traces/{trace_id}/spans/{span_id}/annotation`), so an id with `/`, `?`, `#`, a space or
a `%` would name another resource, or none. orq.ai's ids are OpenTelemetry's (32 lowercase hex
digits for a trace, 16 for a span, never all zeros), and that is what `id_format:
opentelemetry` (the default) checks; `id_format: any` takes any id that is safe in a path, for
workspaces whose ids differ. The client percent-encodes path segments as a second line of
defence.
"""

from __future__ import annotations

import re

ID_FORMATS = ("opentelemetry", "any")
DEFAULT_ID_FORMAT = "opentelemetry"

_HEX_DIGITS = {"trace_id": 32, "span_id": 16}
_OPENTELEMETRY = {what: re.compile(f"[0-9a-f]{{{n}}}") for what, n in _HEX_DIGITS.items()}
_ANY_CASE = {what: re.compile(f"[0-9a-fA-F]{{{n}}}") for what, n in _HEX_DIGITS.items()}
# RFC 3986's unreserved characters, and ":": nothing a server could read as structure.
_PATH_SAFE = re.compile(r"[A-Za-z0-9._~:-]+")


def id_problem(value: str, what: str, id_format: str) -> tuple[str, str] | None:
    """What is wrong with a trace_id or span_id (`what`) under `id_format`, as a message and a
    hint; None when nothing is."""
    if id_format == "opentelemetry":
        if _OPENTELEMETRY[what].fullmatch(value):
            if value.strip("0"):
                return None
            return (
                f"{what} {value} is all zeros, which OpenTelemetry reserves for no id",
                "copy the id from the trace in orq.ai",
            )
        digits = _HEX_DIGITS[what]
        if _ANY_CASE[what].fullmatch(value):
            return (
                f'{what} "{value}" has uppercase letters; OpenTelemetry ids are lowercase hex',
                "write it in lowercase",
            )
        return (
            f'{what} "{value}" is not an OpenTelemetry id ({digits} lowercase hex digits)',
            "copy the id from the trace in orq.ai; if your workspace's ids have another form, "
            "set `id_format: any` in orqsync.yaml",
        )
    if value in (".", ".."):
        return (
            f'{what} "{value}" would name another level of the URL path',
            "copy the id from the trace in orq.ai",
        )
    if _PATH_SAFE.fullmatch(value):
        return None
    return (
        f'{what} "{value}" has characters that cannot stand in a URL path',
        "ids are sent in the request's path: use letters, digits and - _ . ~ : only",
    )


def correction_id_problem(value: str) -> tuple[str, str] | None:
    """What is wrong with the id of an evaluator result a correction names, or None. orq.ai's
    ids are opaque (ULIDs in what has been seen): any id of the path-safe characters, at most
    255 of them, is taken."""
    if len(value) <= 255 and _PATH_SAFE.fullmatch(value):
        return None
    return (
        f'"{value}" is not an evaluator result id (letters, digits and - _ . ~ : only, at '
        "most 255)",
        "copy the id of the evaluator's result from the span in orq.ai",
    )
