"""`orqsync plan`: the difference between the repository and the state, as requests."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, replace

from orqsync.commands.agreement import moved_since
from orqsync.commands.common import project_hash
from orqsync.errors import OrqsyncError, Problem, ProblemsError
from orqsync.model import Annotation, SpanId
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
from orqsync.planning.plan import Plan, make_plan
from orqsync.planning.planfile import (
    Base,
    SavedPlan,
    check_same_project,
    load_plan,
    plan_document,
    plan_id,
    request_json,
)
from orqsync.planning.queues import plan_queues
from orqsync.source.definitions import Definitions
from orqsync.source.desired import DesiredReader, DesiredState, load_desired
from orqsync.source.project import PROJECT_FILE, Settings
from orqsync.source.queues import Queues, load_queues
from orqsync.state.files import StateFile
from orqsync.state.model import InSync, State
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
    # spans, feedback records, annotation queues --target/--exclude left out
    left_out: tuple[int, int, int] | None = None
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


def _matches(span: tuple[str, str], patterns: tuple[str, ...]) -> bool:
    """`TRACE/SPAN`, `TRACE` (all its spans) or `feedback/ID`; shell wildcards allowed."""
    joined = "/".join(span)
    return any(fnmatch.fnmatchcase(joined, p) or fnmatch.fnmatchcase(span[0], p) for p in patterns)


def _chosen(span: tuple[str, str], targets: tuple[str, ...], excludes: tuple[str, ...]) -> bool:
    return (not targets or _matches(span, targets)) and not _matches(span, excludes)


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
        return _chosen(span, targets, excludes)

    chosen_desired = DesiredState(
        {k: v for k, v in desired.spans.items() if keep(k)},
        {k: v for k, v in desired.feedback.items() if keep(("feedback", k))},
        desired.files,
        desired.definitions_hash,
        reviewed={k: v for k, v in desired.reviewed.items() if keep(k)},
    )
    chosen_state = State(
        state.lineage,
        state.serial,
        {k: v for k, v in state.spans.items() if keep(k)},
        {k: v for k, v in state.feedback.items() if keep(("feedback", k))},
        queues=state.queues,
    )
    return chosen_desired, chosen_state


def plan(
    settings: Settings,
    targets: tuple[str, ...] = (),
    excludes: tuple[str, ...] = (),
    *,
    incremental: bool = True,
    base_rev: str | None = None,
) -> Planned:
    """The plan; with reviews and `base_rev`, how it moves agreement from that revision.
    Files proved in sync (by an earlier plan's cache, or by the record of the
    apply that wrote the state) and unchanged are left out with their spans' state lines
    (planning/cache.py); the plan is the one a full read gives."""
    reader = DesiredReader(settings)
    hashes = reader.hashes()
    queues = read_queues(settings, reader.definitions)
    snapshot = StateFile.of(settings).snapshot()
    context = context_hash(settings, reader.definitions_hash)
    cache = PlanCache.load(cache_path(settings), context)
    whole = not targets and not excludes
    # --target/--exclude choose among every span: all are read, as a target may be anywhere;
    # and so does a queue that routes spans by their labels.
    # And so does a comparison of agreement with a base revision: it takes every vote.
    reviews = settings.reviews is not None
    incremental = (
        incremental
        and snapshot.indexed
        and whole
        and not queues.needs_labels
        and not (reviews and base_rev is not None)
    )
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
        {**hashes, **queues.files},
        project_hash(settings),
    )
    hold_unresolved(desired, state)
    chosen_desired, chosen_state = select(desired, state, targets, excludes)
    result = make_plan(chosen_desired, chosen_state, settings.owned_keys)
    if whole:  # --target and --exclude choose spans: the queues are left as they are
        result = with_queues(settings, result, queues, desired, state, reader.definitions)
    unresolved = [u for u in desired.unresolved if whole or _chosen(u.span, targets, excludes)]
    if held and reviews:  # the keys the files left out name, as the plan that read them found
        unresolved += [item for fact in held.values() for item in fact.unresolved]
    unresolved.sort(key=lambda item: (item.path, item.line, item.key))
    left_unlisted = _unresolved_left_out(snapshot, vouched_for) if reviews else 0
    if unresolved or left_unlisted:
        result = replace(result, unresolved=tuple(unresolved), unresolved_left_out=left_unlisted)
    if base_rev is not None and reviews:
        moved = moved_since(settings, desired.votes, reader.definitions, base_rev)
        result = replace(result, agreement=moved)
    left_out = None
    if not whole:
        left_out = (
            len(desired.spans.keys() | state.spans.keys())
            - len(chosen_desired.spans.keys() | chosen_state.spans.keys()),
            len(desired.feedback.keys() | state.feedback.keys())
            - len(chosen_desired.feedback.keys() | chosen_state.feedback.keys()),
            len({queue.name for queue in queues.queues} | state.queues.keys()),
        )
    if incremental:
        cache.prune(hashes)
        cache.record(desired, result, snapshot, desired.files)
        cache.save()
    covered = None
    if whole:
        previous = snapshot.in_sync() if vouched_for else None
        covered = coverage(desired, hashes, held, vouched_for, context, previous, snapshot)
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


def _unresolved_left_out(snapshot: StateSnapshot, vouched_for: dict[str, int]) -> int:
    """How many keys not resolved by their votes the files left out on the state's word
    name (reviews): its record counts them, without listing them."""
    record = snapshot.in_sync() if vouched_for else None
    if record is None:
        return 0
    return sum(record.unresolved.get(name, 0) for name in vouched_for)


def hold_unresolved(desired: DesiredState, state: State) -> None:
    """Keys whose reviewers' votes do not resolve stay as the state has them: desired as
    applied, so that the plan neither sets nor removes them."""
    for item in desired.unresolved:
        applied = state.spans.get(item.span, {}).get(item.key)
        if applied is not None:
            desired.spans.setdefault(item.span, {})[item.key] = Annotation(
                applied.value, applied.metadata, item.path, item.line
            )


def read_queues(settings: Settings, definitions: Definitions) -> Queues:
    """The project's queue files; a ProblemsError when they have any."""
    queues = load_queues(settings, definitions)
    if queues.problems:
        raise ProblemsError(list(queues.problems))
    return queues


def with_queues(
    settings: Settings,
    result: Plan,
    queues: Queues,
    desired: DesiredState,
    state: State,
    definitions: Definitions,
) -> Plan:
    """The plan with the requests that make orq.ai's annotation queues those declared."""
    if not queues.queues and not state.queues:
        return result
    if not queues.files and settings.queues:
        # as for annotation files: a typo in the pattern must not delete every queue
        raise ProblemsError(
            [
                Problem(
                    PROJECT_FILE,
                    *settings.where("queues"),
                    f"queues ({', '.join(settings.queues)}) match no queue files, but the "
                    f"state holds {plural(len(state.queues), 'annotation queue')} "
                    f"({', '.join(sorted(state.queues))})",
                    "check `queues` in orqsync.yaml (default queues/*.yaml); to delete every "
                    "queue, write `queues: []`",
                )
            ]
        )
    members = {queue.name: queue.members(desired.spans) for queue in queues.queues}
    keys = {d.id: key for key, d in definitions.items() if d.id}
    changes, requests = plan_queues(queues.queues, members, state.queues, keys)
    return Plan(result.changes, result.requests + tuple(requests), tuple(changes))


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


def load_saved(settings: Settings, plan_file: str) -> SavedPlan:
    """A saved plan to apply: it must come from this project as it is now, the same
    orqsync.yaml byte for byte (its metadata_style, sources and policy) and the same files
    (planfile.check_same_project)."""
    saved = load_plan(plan_file)
    reader = DesiredReader(settings)
    hashes = {**reader.hashes(), **load_queues(settings, reader.definitions).files}
    check_same_project(saved, project_hash(settings), hashes, plan_file)
    return saved


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
