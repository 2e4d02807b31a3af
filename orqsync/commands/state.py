"""`orqsync state list|show|rm|blame|history` and `orqsync unlock`: what the state holds,
how it came to hold it, and the two edits made by hand (forget labels, release a lock).
Each returns what cli.py renders."""

from __future__ import annotations

import os
from collections.abc import Mapping

from orqsync.audit import blame as blame_
from orqsync.audit.history import (
    COMPLETE,
    Counts,
    Entry,
    History,
    append_entry,
    history_path,
    load_history,
    utc_now,
)
from orqsync.errors import OrqsyncError
from orqsync.model import Review, SpanId
from orqsync.planning.reassert import oldest_first
from orqsync.source.project import Settings
from orqsync.state.files import StateFile
from orqsync.state.lock import LockInfo, state_lock
from orqsync.state.lock import unlock as release
from orqsync.state.model import Applied, State
from orqsync.state.provenance import ci_run_url, operator


def current(settings: Settings) -> State:
    """The state as a plan reads it (with an interrupted apply's journal folded in)."""
    return StateFile.of(settings).load()


def least_recently_asserted(
    settings: Settings, count: int
) -> list[tuple[SpanId, str | None, list[str]]]:
    """The `count` spans a reassertion sends first: each with when it last was (None: never)
    and its keys."""
    state = current(settings)
    return [
        (span, state.asserted.get(span), sorted(state.spans.get(span, {})))
        for span in oldest_first(state)[:count]
    ]


def span_keys(settings: Settings, span_id: SpanId) -> tuple[dict[str, Applied], dict[str, Review]]:
    """The keys the state records for one span, and how those resolved from reviewers' votes
    were resolved; an error when it records none."""
    state = StateFile.of(settings).load()
    keys = state.spans.get(span_id)
    if keys is None:
        raise OrqsyncError(f"{'/'.join(span_id)} is not in the state", "see `orqsync state list`")
    return keys, state.reviews.get(span_id, {})


def blame(settings: Settings, span_id: SpanId, key: str | None = None) -> blame_.Blame:
    """Every value each key of the span held, newest first (audit/blame.py)."""
    return blame_.blame(settings, span_id[0], span_id[1], key)


def history(settings: Settings, limit: int | None = None) -> tuple[str, History]:
    """The history file's name as shown, and its last `limit` entries, newest first."""
    path = history_path(settings.state_path)
    found = load_history(path, settings.display(path))
    newest = tuple(reversed(found.entries))[:limit]
    return settings.display(path), History(newest, found.unreadable)


def unlock(settings: Settings, lock_id: str) -> LockInfo:
    """Release a stuck state lock, only when `lock_id` names it."""
    return release(settings.state_path, lock_id)


def forget(
    settings: Settings,
    span_id: SpanId,
    keys: tuple[str, ...],
    environ: Mapping[str, str] | None = None,
) -> int:
    """`state rm`: drop a span (or some of its keys) from the state without sending anything,
    and record who did it in the apply history. Returns how many labels were dropped."""
    span = "/".join(span_id)
    files = StateFile.of(settings)
    with state_lock(settings.state_path, "state rm", environ):
        current = files.load()
        held = current.spans.get(span_id, {})
        if not held and span_id not in current.removed and span_id not in current.asserted:
            raise OrqsyncError(f"{span} is not in the state", "see `orqsync state list`")
        tombstones = current.removed.get(span_id, ())
        missing = [key for key in keys if key not in held and key not in tombstones]
        if missing:
            raise OrqsyncError(
                f"{span} has no key {', '.join(missing)} in the state",
                f"see `orqsync state show {span}`",
            )
        dropped = tuple(key for key in keys if key in held) if keys else tuple(held)
        # The whole span goes with its record of removals and reassertion; some keys alone
        # are forgotten, not recorded as removed (nothing was removed in orq.ai).
        current.forget(span_id, keys or None)
        detail = span + (f": {', '.join(keys)}" if keys else "")
        write_edit(settings, files, current, "state rm", len(dropped), detail, environ)
    return len(dropped)


def write_edit(
    settings: Settings,
    files: StateFile,
    state: State,
    operation: str,
    dropped: int,
    detail: str,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Write a state edited by hand (nothing sent; the caller holds the lock) and record who
    did it in the apply history."""
    serial_before = state.serial
    files.write(state)
    env = os.environ if environ is None else environ
    append_entry(
        history_path(settings.state_path),
        Entry(
            time=utc_now(),
            operation=operation,
            outcome=COMPLETE,
            who=operator(settings.root, env),
            commit="",
            plan_id="",
            lineage=state.lineage,
            serial_before=serial_before,
            serial_after=state.serial,
            counts=Counts(delete=dropped),
            run_url=ci_run_url(env),
            detail=detail,
        ),
    )
