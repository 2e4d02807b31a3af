"""`orqsync apply`: send a plan, journal each success, and record the result."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from orqsync.audit.history import (
    COMPLETE,
    PARTIAL,
    Counts,
    Entry,
    append_entry,
    history_path,
    utc_now,
)
from orqsync.errors import OrqsyncError, RemovalBudgetError
from orqsync.model import SpanId
from orqsync.planning.plan import DELETE, Plan, Request
from orqsync.planning.planfile import (
    SavedPlan,
    check_fresh,
    summary,
)
from orqsync.remote.apply import Api, Failure, QuietReporter, Report, Reporter, apply_plan
from orqsync.source.desired import definitions_hash
from orqsync.source.project import PROJECT_FILE, Settings
from orqsync.state.files import StateFile
from orqsync.state.lock import state_lock
from orqsync.state.model import Provenance, State
from orqsync.state.provenance import capture, uncommitted
from orqsync.text import plural


def apply_lock(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> contextlib.AbstractContextManager[object]:
    """The state lock an apply holds, from its plan to its last write."""
    return state_lock(settings.state_path, "apply", environ)


def _applied_files(settings: Settings, saved: SavedPlan) -> list[str]:
    """The files an apply's labels come from, relative to the project: orqsync.yaml,
    definitions.yaml and the annotation files the plan was made from."""
    return [PROJECT_FILE, settings.display(settings.definitions_path), *saved.base.files]


def check_budget(plan: Plan, settings: Settings, allow_removals: bool) -> None:
    if plan.removals > settings.max_removals and not allow_removals:
        deleted = plan.removals - plan.count(DELETE)
        what = plural(plan.count(DELETE), "label") + (
            f" and deletes {plural(deleted, 'annotation queue')}" if deleted else ""
        )
        raise RemovalBudgetError(
            f"the plan removes {what}: {plan.removals} removals, more than "
            f"policy.max_removals ({settings.max_removals})",
            "check that no annotation or queue file went missing; if the removals are "
            "intended, run apply with --allow-removals",
        )


def apply(
    settings: Settings,
    saved: SavedPlan,
    api: Api,
    *,
    plan_label: str = "the plan",
    reporter: Reporter | None = None,
    allow_removals: bool = False,
    max_requests: int | None = None,
    max_duration: float | None = None,
    commit: str = "",
    author: str = "",
    environ: Mapping[str, str] | None = None,
    lock_held: bool = False,
    reassertion: tuple[SpanId, ...] | None = None,
) -> Report:
    """Under the state lock (taken here unless the caller holds it: `apply_lock`): refuse a
    stale plan, send it, record what succeeded. `reassertion`: the plan reasserts these
    spans (commands/reassert.py), recorded as such in the state and the history.

    Every apply that sent a request, had one refused, or stopped on an error ends with a line
    in the apply history (audit/history.py), written under the same lock.
    """
    check_budget(saved.plan, settings, allow_removals)
    files = StateFile.of(settings)
    with contextlib.nullcontext() if lock_held else apply_lock(settings, environ):
        state = files.load()
        check_fresh(saved, state, files.content_hash(), definitions_hash(settings), plan_label)
        finished, in_flight = files.recovery(state)
        if (finished or in_flight) and reporter is not None:
            reporter.note(
                f"Finishing an interrupted apply: {finished} of its requests had succeeded "
                f"and are kept; {in_flight} were in flight and are sent again if still needed."
            )
        changed = uncommitted(settings.root, _applied_files(settings, saved))
        provenance = capture(
            settings.root, saved.plan_id, environ, commit=commit, author=author, changed=changed
        )
        if changed and reporter is not None and reassertion is None:  # it credits no label
            shown = ", ".join(list(changed)[:3]) + (" and more" if len(changed) > 3 else "")
            reporter.note(
                f"warning: {plural(len(changed), 'file')} applied with changes not committed "
                f"({shown}): the state records them as uncommitted "
                f"(content {provenance.uncommitted[:12]}), not as commit "
                f"{provenance.commit[:7] or '(none)'}. Commit first to credit the labels to a "
                "commit."
            )
        serial_before = state.serial
        operation = "apply" if reassertion is None else "reassert"
        run = _Run(settings, saved, provenance, state, serial_before, reporter, operation)
        counting = _CountingReporter(reporter or QuietReporter())
        try:
            report = apply_plan(
                saved.plan,
                api,
                files,
                state,
                provenance,
                parallelism=settings.parallelism,
                reporter=counting,
                max_requests=max_requests,
                max_duration=max_duration,
                in_sync=saved.in_sync,
                reassertion=reassertion,
            )
        except BaseException as exc:
            stopped = "interrupted" if isinstance(exc, KeyboardInterrupt) else "error"
            total = len(saved.plan.requests)
            run.record(
                _serial_on_disk(files, serial_before),
                Report(total, counting.done, (), total - counting.done - counting.refused),
                counting.refused,
                stopped,
            )
            raise
        if report.done or report.failures or report.halt or state.serial != serial_before:
            run.record(state.serial, report, len(report.failures), report.stopped)
        return report


class _CountingReporter:
    """Passes progress on and counts it, so that a run stopped by an error is still recorded."""

    def __init__(self, inner: Reporter) -> None:
        self.inner = inner
        self.lock = threading.Lock()
        self.done = 0
        self.refused = 0

    def started(self, total: int) -> None:
        self.inner.started(total)

    def finished_request(self, request: Request, done: int, total: int) -> None:
        with self.lock:
            self.done = max(self.done, done)
        self.inner.finished_request(request, done, total)

    def failed_request(self, failure: Failure) -> None:
        with self.lock:
            self.refused += 1
        self.inner.failed_request(failure)

    def note(self, text: str) -> None:
        self.inner.note(text)


def _serial_on_disk(files: StateFile, default: int) -> int:
    try:
        return files.load().serial
    except OrqsyncError:
        return default


@dataclass(frozen=True, slots=True)
class _Run:
    """One apply, as its line in the apply history names it."""

    settings: Settings
    saved: SavedPlan
    provenance: Provenance
    state: State  # applied to in place: a new state gets its lineage on the first write
    serial_before: int
    reporter: Reporter | None
    operation: str = "apply"

    def record(self, serial_after: int, report: Report, refused: int, stopped: str) -> None:
        """Append the apply's line to the history: how far it got and why it stopped ("" for
        not stopped). A line that cannot be written is a warning: the state is written."""
        counts = summary(self.saved.plan)
        provenance = self.provenance
        entry = Entry(
            time=utc_now(),
            operation=self.operation,
            outcome=COMPLETE if report.done == report.total and not stopped else PARTIAL,
            who=provenance.author,
            commit=provenance.commit,
            plan_id=self.saved.plan_id,
            lineage=self.state.lineage,
            serial_before=self.serial_before,
            serial_after=serial_after,
            counts=Counts(
                create=counts["create"],
                update=counts["update"],
                delete=counts["delete"],
                requests=counts["requests"],
                done=report.done,
                refused=refused,
                left=max(report.total - report.done - refused, 0),
            ),
            stopped=stopped,
            started=provenance.applied_at,
            run_url=provenance.run_url,
        )
        path = history_path(self.settings.state_path)
        try:
            append_entry(path, entry)
        except OSError as exc:
            # The labels and the state are written; losing the audit line must not hide that.
            if self.reporter is not None:
                shown = self.settings.display(path)
                self.reporter.note(f"warning: could not append to {shown}: {exc.strerror}")
