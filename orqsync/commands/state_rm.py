"""`orqsync state rm`: forget labels without sending anything, on the record."""

from __future__ import annotations

import os
from collections.abc import Mapping

from orqsync.audit.history import (
    COMPLETE,
    Counts,
    Entry,
    append_entry,
    history_path,
    utc_now,
)
from orqsync.commands.common import state_file
from orqsync.errors import OrqsyncError
from orqsync.model import SpanId
from orqsync.source.project import Settings
from orqsync.state.lock import state_lock
from orqsync.state.provenance import ci_run_url, operator


def forget(
    settings: Settings,
    span_id: SpanId,
    keys: tuple[str, ...],
    environ: Mapping[str, str] | None = None,
) -> int:
    """`state rm`: drop a span (or some of its keys) from the state without sending anything,
    and record who did it in the apply history. Returns how many labels were dropped."""
    span = "/".join(span_id)
    files = state_file(settings)
    with state_lock(settings.state_path, "state rm", environ):
        current = files.load()
        held = current.spans.get(span_id)
        if held is None:
            raise OrqsyncError(f"{span} is not in the state", "see `orqsync state list`")
        missing = [key for key in keys if key not in held]
        if missing:
            raise OrqsyncError(
                f"{span} has no key {', '.join(missing)} in the state",
                f"see `orqsync state show {span}`",
            )
        dropped = keys or tuple(held)
        for key in dropped:
            held.pop(key)
        if not held:
            current.spans.pop(span_id)
        serial_before = current.serial
        files.write(current)
        env = os.environ if environ is None else environ
        append_entry(
            history_path(settings.state_path),
            Entry(
                time=utc_now(),
                operation="state rm",
                outcome=COMPLETE,
                who=operator(settings.root, env),
                commit="",
                plan_id="",
                lineage=current.lineage,
                serial_before=serial_before,
                serial_after=current.serial,
                counts=Counts(delete=len(dropped)),
                run_url=ci_run_url(env),
                detail=span + (f": {', '.join(keys)}" if keys else ""),
            ),
        )
    return len(dropped)
