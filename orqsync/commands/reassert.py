"""`orqsync apply --reassert` and `plan --reassert`: self-heal of labels changed in orq.ai.

A plan compares the repository with the state file, never with orq.ai (which has no read of
a span's labels), so an edit in orq.ai's UI goes unseen. A reassertion sends the state's owned
labels again and deletes again the keys orqsync removed (planning/reassert.py), oldest spans
first, within --max-requests; it runs only when the repository and the state agree, so what it
sends is what the repository declares. It is applied like a plan: under the state lock, with
the journal, pacing, exit codes and a line in the apply history (`reassert`).
"""

from __future__ import annotations

from collections.abc import Mapping

from orqsync.commands.apply import apply
from orqsync.commands.common import load_definitions_or_fail
from orqsync.commands.plan import Planned, plan
from orqsync.errors import OrqsyncError
from orqsync.model import parent_id
from orqsync.planning.planfile import SavedPlan, plan_id, request_json
from orqsync.planning.reassert import Reassertion, make_reassertion
from orqsync.remote.apply import Api, Report, Reporter
from orqsync.source.project import Settings
from orqsync.text import plural


def plan_reassertion(
    settings: Settings, max_requests: int | None = None
) -> tuple[Reassertion, Planned]:
    """The reassertion of the state, oldest spans first within `max_requests`; an error when
    the repository has changes the state does not hold yet."""
    planned = plan(settings)
    if not planned.plan.empty:
        changes = plural(len(planned.plan.changes), "change")
        raise OrqsyncError(
            f"the repository has {changes} that the state does not hold: a reassertion sends "
            "what the state records, so it runs only when the two agree",
            "apply the changes first (`orqsync plan`, then `orqsync apply`), then reassert",
        )
    state = planned.snapshot.state()
    known = set(load_definitions_or_fail(settings))

    def defined(key: str) -> bool:
        return key in known or parent_id(key) is not None

    return make_reassertion(state, settings.owned_keys, max_requests, defined), planned


def reassert(
    settings: Settings,
    reassertion: Reassertion,
    planned: Planned,
    api: Api,
    *,
    reporter: Reporter | None = None,
    max_duration: float | None = None,
    commit: str = "",
    author: str = "",
    environ: Mapping[str, str] | None = None,
    lock_held: bool = False,
) -> Report:
    """Send the reassertion: the spans whose requests all succeed are recorded as asserted.
    The state's in_sync record stays (a reassertion changes no label)."""
    style = settings.metadata_style
    requests = [request_json(r, style) for r in reassertion.plan.requests]
    saved = SavedPlan(
        reassertion.plan,
        planned.base,
        plan_id(planned.base, requests),
        style,
        planned.snapshot.in_sync(),
    )
    return apply(
        settings,
        saved,
        api,
        plan_label="the reassertion",
        reporter=reporter,
        max_duration=max_duration,
        commit=commit,
        author=author,
        environ=environ,
        lock_held=lock_held,
        reassertion=reassertion.spans,
    )


def reassertion_document(
    reassertion: Reassertion, planned: Planned, metadata_style: str
) -> dict[str, object]:
    """`plan --reassert --format json`: the spans, when each was last asserted, and the
    requests, as a saved plan writes them."""
    state = reassertion.state
    return {
        "format": "orqsync-reassertion",
        "format_version": 1,
        "summary": {
            "spans": len(reassertion.spans),
            "labels": reassertion.labels,
            "removed": reassertion.removals,
            "requests": len(reassertion.plan.requests),
            "left": reassertion.left,
        },
        "spans": [
            {
                "trace_id": trace_id,
                "span_id": span_id,
                "asserted": state.asserted.get((trace_id, span_id)),
            }
            for trace_id, span_id in reassertion.spans
        ],
        "requests": [
            request_json(request, metadata_style) for request in reassertion.plan.requests
        ],
    }
