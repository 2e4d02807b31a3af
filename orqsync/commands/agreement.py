"""`orqsync agreement`: how far the reviewers agree, key by key (reviews in orqsync.yaml)."""

from __future__ import annotations

import os
import tempfile

from orqsync.audit import gitrev
from orqsync.errors import OrqsyncError, ProblemsError
from orqsync.source.agreement import Agreement
from orqsync.source.definitions import Definitions
from orqsync.source.desired import DesiredReader
from orqsync.source.project import PROJECT_FILE, Settings, load_project
from orqsync.source.reviews import Movement, Votes, figures, movement
from orqsync.text import plural


def key_agreement(settings: Settings, only: tuple[str, ...] = ()) -> dict[str, Agreement]:
    """The figures of every key the reviewers voted on (or of the keys `only` names), from
    the annotation files; adjudications are not votes and are left out."""
    if settings.reviews is None:
        raise OrqsyncError(
            f"{PROJECT_FILE} has no `reviews`: each span's key has one author, so there is "
            "no agreement to measure",
            "add `reviews: {rule: majority}` to orqsync.yaml and give each reviewer's files "
            "`metadata: {reviewerId: NAME}`",
        )
    reader = DesiredReader(settings)
    for path in reader.paths:
        reader.add(path)
    found = figures(reader.result().votes, reader.definitions)
    unknown = [key for key in only if key not in found]
    if unknown:
        raise OrqsyncError(
            f"no reviewer voted on {', '.join(unknown)}",
            f"keys with votes: {', '.join(found) or 'none'}",
        )
    return {key: item for key, item in found.items() if not only or key in only}


def moved_since(settings: Settings, votes: Votes, definitions: Definitions, rev: str) -> Movement:
    """How the annotation files as they are (`votes`) move agreement from git revision `rev`
    (plan --base): each key's figures there and here. The project's files at `rev` are read
    into a temporary folder; when they cannot be read, or have no reviews, the movement says
    why (`note`) and the base has no figures."""
    head = figures(votes, definitions)
    root = gitrev.toplevel(settings.root)
    if root is None:
        raise OrqsyncError(
            f"--base {rev}: {settings.root} is not in a git repository",
            "--base compares with the annotation files of a commit; leave it out outside git",
        )
    sha = gitrev.resolve(root, rev)
    rel = gitrev.relative(root, settings.root)
    with tempfile.TemporaryDirectory(prefix="orqsync-base-") as folder:
        where = os.path.join(folder, rel)
        if not gitrev.holds(root, sha, rel):
            return movement(sha, {}, head, f"{rel} is not in {sha[:7]}: no figures for the base")
        gitrev.extract(root, sha, rel, folder)
        if not os.path.isfile(os.path.join(where, PROJECT_FILE)):  # not one above the folder
            return movement(sha, {}, head, f"{PROJECT_FILE} is not in {sha[:7]}")
        try:
            base = load_project(where)
            if base.reviews is None:
                return movement(sha, {}, head, f"{PROJECT_FILE} at {sha[:7]} has no `reviews`")
            reader = DesiredReader(base)
            for path in reader.paths:
                reader.add(path)
            before = figures(reader.result().votes, reader.definitions)
        except ProblemsError as exc:
            note = (
                f"the annotation files at {sha[:7]} have "
                f"{plural(len(exc.problems), 'problem')}: no figures for the base"
            )
            return movement(sha, {}, head, note)
        except OrqsyncError as exc:
            note = f"the project at {sha[:7]} cannot be read ({exc.message}): no figures for it"
            return movement(sha, {}, head, note.replace(folder + os.sep, "").replace(folder, "."))
    return movement(sha, before, head)


def agreement_json(figures: dict[str, Agreement]) -> dict[str, object]:
    return {"keys": [{"key": key, **item.to_json()} for key, item in figures.items()]}


def agreement_text(figures: dict[str, Agreement]) -> str:
    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    lines = [
        f"{'key':<20} {'metric':<9} {'items':>6} {'reviewers':>9} {'observed':>9} "
        f"{'alpha':>7} {'kappa':>7}"
    ]
    for key, item in figures.items():
        lines.append(
            f"{key:<20} {item.metric:<9} {item.items:>6} {item.reviewers:>9} "
            f"{number(item.observed):>9} {number(item.alpha):>7} {number(item.kappa):>7}"
        )
    lines.append(
        "observed: share of equal pairs of votes on one span; alpha: Krippendorff's (1 is "
        "full agreement, 0 chance); kappa: Cohen's, for two reviewers"
    )
    return "\n".join(lines) + "\n"
