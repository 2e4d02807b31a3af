"""One work function per command; the CLI parses flags, calls these, and renders the result."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass

from orqsync.apply import Api, Report, Reporter, apply_plan
from orqsync.desired import DesiredState, load_desired, sha256
from orqsync.errors import RemovalBudgetError
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


def check_budget(plan: Plan, settings: Settings, allow_removals: bool) -> None:
    if plan.removals > settings.max_removals and not allow_removals:
        raise RemovalBudgetError(
            f"the plan removes {plan.removals} labels, more than policy.max_removals "
            f"({settings.max_removals})",
            "check that no annotation file went missing; if the removals are intended, "
            "run apply with --allow-removals",
        )


def apply(
    settings: Settings,
    plan: Plan,
    plan_id: str,
    api: Api,
    *,
    reporter: Reporter | None = None,
    allow_removals: bool = False,
    max_requests: int | None = None,
    max_duration: float | None = None,
    commit: str = "",
    author: str = "",
    environ: Mapping[str, str] | None = None,
) -> Report:
    """Send a plan made against the current state and record what succeeded."""
    check_budget(plan, settings, allow_removals)
    files = state_file(settings)
    state = files.load()
    provenance = capture(settings.root, plan_id, environ, commit=commit, author=author)
    return apply_plan(
        plan,
        api,
        files,
        state,
        provenance,
        parallelism=settings.parallelism,
        reporter=reporter,
        max_requests=max_requests,
        max_duration=max_duration,
    )


def check_saved(settings: Settings, saved: SavedPlan, path: str) -> None:
    """Refuse a stale saved plan before anything is sent."""
    state = state_file(settings).load()
    try:
        with open(settings.definitions_path, "rb") as handle:
            definitions_hash = sha256(handle.read())
    except OSError:
        definitions_hash = ""  # gone now: certainly not what the plan saw
    check_fresh(saved, state, definitions_hash, path)
