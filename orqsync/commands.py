"""One work function per command; the CLI parses flags, calls these, and renders the result."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass

from orqsync.apply import Api, Report, Reporter, apply_plan
from orqsync.desired import DesiredState, load_desired, sha256
from orqsync.errors import RemovalBudgetError
from orqsync.lock import state_lock
from orqsync.plan import Plan, make_plan
from orqsync.planfile import Base, SavedPlan, check_fresh, make_base, plan_document
from orqsync.project import Settings
from orqsync.provenance import capture
from orqsync.state import State, StateFile


@dataclass(frozen=True, slots=True)
class Planned:
    """A plan with everything it was made from."""

    plan: Plan
    base: Base
    desired: DesiredState
    state: State

    def document(self, metadata_style: str) -> dict[str, object]:
        return plan_document(self.plan, self.base, metadata_style)


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
    settings: Settings, targets: tuple[str, ...] = (), excludes: tuple[str, ...] = ()
) -> Planned:
    desired = load_desired(settings)
    state = state_file(settings).load()
    base = make_base(state, desired)
    chosen_desired, chosen_state = select(desired, state, targets, excludes)
    result = make_plan(chosen_desired, chosen_state, settings.owned_keys)
    return Planned(result, base, desired, state)


def as_saved(planned: Planned, metadata_style: str) -> SavedPlan:
    """A plan made just now, in the form apply takes (so it is checked the same way)."""
    document = planned.document(metadata_style)
    return SavedPlan(planned.plan, planned.base, str(document["plan_id"]), metadata_style)


def check_budget(plan: Plan, settings: Settings, allow_removals: bool) -> None:
    if plan.removals > settings.max_removals and not allow_removals:
        raise RemovalBudgetError(
            f"the plan removes {plan.removals} labels, more than policy.max_removals "
            f"({settings.max_removals})",
            "check that no annotation file went missing; if the removals are intended, "
            "run apply with --allow-removals",
        )


def definitions_hash(settings: Settings) -> str:
    try:
        with open(settings.definitions_path, "rb") as handle:
            return sha256(handle.read())
    except OSError:
        return ""  # gone: certainly not what a plan saw


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
) -> Report:
    """Under the state lock: refuse a stale plan, send it, record what succeeded."""
    check_budget(planned.plan, settings, allow_removals)
    files = state_file(settings)
    with state_lock(settings.state_path, "apply", environ):
        state = files.load()
        check_fresh(planned, state, definitions_hash(settings), plan_label)
        finished, in_flight = files.recovery(state)
        if (finished or in_flight) and reporter is not None:
            reporter.note(
                f"Finishing an interrupted apply: {finished} of its requests had succeeded "
                f"and are kept; {in_flight} were in flight and are sent again if still needed."
            )
        provenance = capture(settings.root, planned.plan_id, environ, commit=commit, author=author)
        return apply_plan(
            planned.plan,
            api,
            files,
            state,
            provenance,
            parallelism=settings.parallelism,
            reporter=reporter,
            max_requests=max_requests,
            max_duration=max_duration,
        )
