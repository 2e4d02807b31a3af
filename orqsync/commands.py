"""One work function per command; the CLI parses flags, calls these, and renders the result."""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
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
from orqsync.errors import OrqsyncError, Problem, ProblemsError, RemovalBudgetError
from orqsync.planning.cache import (
    Coverage,
    Fact,
    PlanCache,
    accounted,
    cache_path,
    context_hash,
    coverage,
    vouched,
)
from orqsync.planning.plan import Plan, Request, make_plan
from orqsync.planning.planfile import (
    Base,
    SavedPlan,
    check_fresh,
    check_same_project,
    plan_document,
    plan_id,
    request_json,
    summary,
)
from orqsync.remote.apply import Api, Failure, QuietReporter, Report, Reporter, apply_plan
from orqsync.source.definitions import load_definitions
from orqsync.source.desired import DesiredReader, DesiredState, definitions_hash, load_desired
from orqsync.source.project import PROJECT_FILE, Settings
from orqsync.state.files import StateFile
from orqsync.state.lock import state_lock
from orqsync.state.model import InSync, Provenance, SpanId, State
from orqsync.state.provenance import capture, ci_run_url, operator, uncommitted
from orqsync.state.snapshot import StateSnapshot
from orqsync.text import plural


@dataclass(frozen=True, slots=True)
class Planned:
    """A plan with what it was made from. `state` holds the spans compared: all of them, or
    (incremental plan) those not proved in sync. The desired state is not kept: a big one is
    hundreds of megabytes, and the plan holds what it needs of it."""

    plan: Plan
    base: Base
    state: State
    snapshot: StateSnapshot
    files_read: int = 0  # annotation files parsed; the others were proved in sync
    coverage: Coverage | None = None  # the files a complete apply leaves in sync
    left_out: tuple[int, int] | None = None  # spans, feedback records --target/--exclude left
    warnings: tuple[Problem, ...] = ()  # values read leniently, in the files read

    @property
    def in_sync(self) -> InSync | None:
        """What a complete apply of the plan records in the state."""
        return self.coverage.record() if self.coverage is not None else None

    def document(self, metadata_style: str) -> dict[str, object]:
        return plan_document(self.plan, self.base, metadata_style, self.in_sync)

    def whole_state(self) -> State:
        """The whole state (for label counts), whatever the plan left out."""
        return self.snapshot.state()


def state_file(settings: Settings) -> StateFile:
    return StateFile(settings.state_path, settings.display(settings.state_path))


def validate(settings: Settings) -> DesiredState:
    """Every file checked offline; raises ProblemsError with all problems."""
    return load_desired(settings)


def _matches(span: tuple[str, str], patterns: tuple[str, ...]) -> bool:
    """`TRACE/SPAN`, `TRACE` (all its spans) or `feedback/ID`; shell wildcards allowed."""
    joined = "/".join(span)
    return any(fnmatch.fnmatchcase(joined, p) or fnmatch.fnmatchcase(span[0], p) for p in patterns)


def select(
    desired: DesiredState, state: State, targets: tuple[str, ...], excludes: tuple[str, ...]
) -> tuple[DesiredState, State]:
    """Only the spans and feedback records named by --target and not by --exclude."""
    if not targets and not excludes:
        return desired, state
    known = [*desired.spans, *state.spans] + [
        ("feedback", record) for record in (*desired.feedback, *state.feedback)
    ]
    for pattern in targets:
        if not any(_matches(span, (pattern,)) for span in known):
            raise OrqsyncError(
                f'--target "{pattern}" matches no span and no feedback record, in the '
                "repository or in the state",
                "write TRACE/SPAN, TRACE (all its spans) or feedback/ID; * and ? match any "
                "characters",
            )

    def keep(span: tuple[str, str]) -> bool:
        return (not targets or _matches(span, targets)) and not _matches(span, excludes)

    chosen_desired = DesiredState(
        {k: v for k, v in desired.spans.items() if keep(k)},
        {k: v for k, v in desired.feedback.items() if keep(("feedback", k))},
        desired.files,
        desired.definitions_hash,
    )
    chosen_state = State(
        state.lineage,
        state.serial,
        {k: v for k, v in state.spans.items() if keep(k)},
        {k: v for k, v in state.feedback.items() if keep(("feedback", k))},
    )
    return chosen_desired, chosen_state


def plan(
    settings: Settings,
    targets: tuple[str, ...] = (),
    excludes: tuple[str, ...] = (),
    *,
    incremental: bool = True,
) -> Planned:
    """The plan. Files proved in sync (by an earlier plan's cache, or by the record of the
    apply that wrote the state) and unchanged are left out with their spans' state lines
    (plancache.py); the plan is the one a full read gives."""
    reader = DesiredReader(settings)
    hashes = reader.hashes()
    snapshot = state_file(settings).snapshot()
    context = context_hash(settings, reader.definitions_hash)
    cache = PlanCache.load(cache_path(settings), context)
    whole = not targets and not excludes
    # --target/--exclude choose among every span: all are read, as a target may be anywhere.
    incremental = incremental and snapshot.indexed and whole
    held = cache.holding(hashes, snapshot) if incremental else {}
    vouched_for = vouched(snapshot, context, hashes, held) if incremental else {}
    left_some_out = bool(held or vouched_for)
    try:
        desired = _read_changed(reader, snapshot, held, vouched_for)
    except ProblemsError:
        if not left_some_out:
            raise
        load_desired(settings)  # the problems as a full read reports them, in its order
        raise
    if vouched_for:  # the state's spans are those read and those left out: keep the read
        state = snapshot.state(only=desired.spans)
    else:
        state = snapshot.state({span for fact in held.values() for span in fact.spans})
    base = Base(
        state.lineage,
        state.serial,
        snapshot.hash,
        reader.definitions_hash,
        hashes,
        project_hash(settings),
    )
    chosen_desired, chosen_state = select(desired, state, targets, excludes)
    result = make_plan(chosen_desired, chosen_state, settings.owned_keys)
    left_out = None
    if not whole:
        left_out = (
            len(desired.spans.keys() | state.spans.keys())
            - len(chosen_desired.spans.keys() | chosen_state.spans.keys()),
            len(desired.feedback.keys() | state.feedback.keys())
            - len(chosen_desired.feedback.keys() | chosen_state.feedback.keys()),
        )
    if incremental:
        cache.prune(hashes)
        cache.record(desired, result, snapshot, desired.files)
        cache.save()
    covered = coverage(desired, hashes, held, vouched_for, context) if whole else None
    return Planned(
        result,
        base,
        state,
        snapshot,
        len(desired.files),
        covered,
        left_out,
        tuple(desired.warnings),
    )


def _read_changed(
    reader: DesiredReader,
    snapshot: StateSnapshot,
    held: dict[str, Fact],
    vouched_for: dict[str, int],
) -> DesiredState:
    """Read every file neither held nor vouched for, then any held file that shares a span
    with one read, until none does; then the files vouched for, unless the state's spans are
    exactly those read, held and vouched for. Mutates `held` and `vouched_for` (the files
    pulled back in are removed)."""
    by_span: dict[SpanId, list[str]] = {}
    for name, fact in held.items():
        for span in fact.spans:
            by_span.setdefault(span, []).append(name)
    paths = {reader.display(path): path for path in reader.paths}
    pending = [path for name, path in paths.items() if name not in held and name not in vouched_for]
    while True:
        for path in pending:
            reader.add(path)
        pending = []
        for span in reader.builder.spans if by_span else ():
            for name in by_span.get(span, ()):
                if name in held:
                    del held[name]
                    pending.append(paths[name])
        if not pending and vouched_for:
            known = set(reader.builder.spans).union(*(fact.spans for fact in held.values()))
            if not accounted(snapshot, known, vouched_for):
                pending = [paths[name] for name in vouched_for]
                vouched_for.clear()
        if not pending:
            return reader.result()


def apply_lock(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> contextlib.AbstractContextManager[object]:
    """The state lock an apply holds, from its plan to its last write."""
    return state_lock(settings.state_path, "apply", environ)


def _applied_files(settings: Settings, planned: SavedPlan) -> list[str]:
    """The files an apply's labels come from, relative to the project: orqsync.yaml,
    definitions.yaml and the annotation files the plan was made from."""
    return [PROJECT_FILE, settings.display(settings.definitions_path), *planned.base.files]


def project_hash(settings: Settings) -> str:
    """The hash of orqsync.yaml as it is on disk: a saved plan names its project by it."""
    with open(settings.path(PROJECT_FILE), "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def check_saved_plan(settings: Settings, saved: SavedPlan, label: str) -> None:
    """A saved plan must come from this project as it is now (planfile.check_same_project)."""
    check_same_project(saved, project_hash(settings), DesiredReader(settings).hashes(), label)


def as_saved(planned: Planned, metadata_style: str) -> SavedPlan:
    """A plan made just now, in the form apply takes (so it is checked the same way)."""
    requests = [request_json(request, metadata_style) for request in planned.plan.requests]
    return SavedPlan(
        planned.plan,
        planned.base,
        plan_id(planned.base, requests),
        metadata_style,
        planned.in_sync,
    )


def check_budget(plan: Plan, settings: Settings, allow_removals: bool) -> None:
    if plan.removals > settings.max_removals and not allow_removals:
        raise RemovalBudgetError(
            f"the plan removes {plan.removals} labels, more than policy.max_removals "
            f"({settings.max_removals})",
            "check that no annotation file went missing; if the removals are intended, "
            "run apply with --allow-removals",
        )


def text_keys(settings: Settings) -> frozenset[str]:
    """The keys whose definition type is free text (what `--redact` leaves out)."""
    definitions, problems = load_definitions(
        settings.definitions_path, settings.display(settings.definitions_path)
    )
    if problems:
        raise ProblemsError(problems)
    return frozenset(key for key, definition in definitions.items() if definition.type == "text")


def apply(
    settings: Settings,
    planned: SavedPlan,
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
) -> Report:
    """Under the state lock (taken here unless the caller holds it: `apply_lock`): refuse a
    stale plan, send it, record what succeeded.

    Every apply that sent a request, had one refused, or stopped on an error ends with a line
    in the apply history (history.py), written under the same lock.
    """
    check_budget(planned.plan, settings, allow_removals)
    files = state_file(settings)
    with contextlib.nullcontext() if lock_held else apply_lock(settings, environ):
        state = files.load()
        check_fresh(planned, state, files.content_hash(), definitions_hash(settings), plan_label)
        finished, in_flight = files.recovery(state)
        if (finished or in_flight) and reporter is not None:
            reporter.note(
                f"Finishing an interrupted apply: {finished} of its requests had succeeded "
                f"and are kept; {in_flight} were in flight and are sent again if still needed."
            )
        changed = uncommitted(settings.root, _applied_files(settings, planned))
        provenance = capture(
            settings.root, planned.plan_id, environ, commit=commit, author=author, changed=changed
        )
        if changed and reporter is not None:
            shown = ", ".join(list(changed)[:3]) + (" and more" if len(changed) > 3 else "")
            reporter.note(
                f"warning: {plural(len(changed), 'file')} applied with changes not committed "
                f"({shown}): the state records them as uncommitted "
                f"(content {provenance.uncommitted[:12]}), not as commit "
                f"{provenance.commit[:7] or '(none)'}. Commit first to credit the labels to a "
                "commit."
            )
        serial_before = state.serial
        counting = _CountingReporter(reporter or QuietReporter())
        try:
            report = apply_plan(
                planned.plan,
                api,
                files,
                state,
                provenance,
                parallelism=settings.parallelism,
                reporter=counting,
                max_requests=max_requests,
                max_duration=max_duration,
                in_sync=planned.in_sync,
            )
        except BaseException as exc:
            stopped = "interrupted" if isinstance(exc, KeyboardInterrupt) else "error"
            total = len(planned.plan.requests)
            _record_apply(
                settings,
                planned,
                provenance,
                serial_before,
                _serial_on_disk(files, serial_before),
                state.lineage,
                Report(total, counting.done, (), total - counting.done - counting.refused),
                counting.refused,
                stopped,
                reporter,
            )
            raise
        if report.done or report.failures or report.halt or state.serial != serial_before:
            _record_apply(
                settings,
                planned,
                provenance,
                serial_before,
                state.serial,
                state.lineage,
                report,
                len(report.failures),
                report.stopped,
                reporter,
            )
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


def _record_apply(
    settings: Settings,
    planned: SavedPlan,
    provenance: Provenance,
    serial_before: int,
    serial_after: int,
    lineage: str,
    report: Report,
    refused: int,
    stopped: str,
    reporter: Reporter | None,
) -> None:
    counts = summary(planned.plan)
    entry = Entry(
        time=utc_now(),
        operation="apply",
        outcome=COMPLETE if report.done == report.total and not stopped else PARTIAL,
        who=provenance.author,
        commit=provenance.commit,
        plan_id=planned.plan_id,
        lineage=lineage,
        serial_before=serial_before,
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
    path = history_path(settings.state_path)
    try:
        append_entry(path, entry)
    except OSError as exc:
        # The labels and the state are written; losing the audit line must not hide that.
        if reporter is not None:
            reporter.note(f"warning: could not append to {settings.display(path)}: {exc.strerror}")


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
