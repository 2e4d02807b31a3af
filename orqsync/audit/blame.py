"""`orqsync state blame`: who decided a label, in which commit and apply, and what it was before.

The apply workflow commits the state, so the history of a label is the state file's git history
plus the working copy. Each revision of the state is read through one `git cat-file` process;
for one span only its line and the provenance records are parsed (`state.snapshot.read_span`),
because a state can hold 100,000 spans and the history hundreds of revisions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from orqsync.audit import gitrev
from orqsync.audit.gitrev import Commit
from orqsync.audit.history import Entry, history_path, load_history, short_sha
from orqsync.errors import OrqsyncError, StateError
from orqsync.model import Review, SpanId, same_value, value_json
from orqsync.review.render import key_text, metadata_text, review_text, value_text
from orqsync.source.project import Settings
from orqsync.state.files import StateFile
from orqsync.state.model import Applied, Provenance, State
from orqsync.state.snapshot import read_span


@dataclass(frozen=True, slots=True)
class Version:
    """One value a key held, from the state commit (None: the working copy) that recorded it."""

    key: str
    applied: Applied | None  # None: the key was removed here
    recorded_in: Commit | None
    serial: int
    removed_by: tuple[Entry, ...] = ()  # applies in the history that removed labels meanwhile
    review: Review | None = None  # how the value was resolved from reviewers' votes


@dataclass(frozen=True, slots=True)
class Blame:
    """Every version of each key of one span, newest first."""

    trace_id: str
    span_id: str
    versions: dict[str, tuple[Version, ...]]
    note: str = ""


@dataclass(frozen=True, slots=True)
class _Snapshot:
    commit: Commit | None
    lineage: str
    serial: int
    record: dict[str, Applied] | None
    reviews: dict[str, Review] = field(default_factory=dict)


def blame(settings: Settings, trace_id: str, span_id: str, key: str | None = None) -> Blame:
    """The versions of a span's labels through the state's git history and the working copy."""
    span = (trace_id, span_id)
    files = StateFile.of(settings)
    working, current = _working(files, span)
    snapshots: list[_Snapshot] = []
    note = ""
    root = gitrev.toplevel(os.path.dirname(settings.state_path))
    if root is None:
        note = (
            f"{settings.root} is not in a git repository: this is the current record only; "
            "the history of a label needs the state file committed to git"
        )
    else:
        rel = gitrev.relative(root, settings.state_path)
        commits = list(reversed(gitrev.log_path(root, rel)))  # oldest first
        if not commits:
            note = f"{rel} has no commits yet: this is the current record only"
        by_sha = {commit.sha: commit for commit in commits}
        unreadable = []
        for sha, data in gitrev.iter_show(root, [c.sha for c in commits], rel):
            if data is None:  # the file was deleted in that commit
                snapshots.append(_Snapshot(by_sha[sha], "", 0, None))
                continue
            try:
                header, record = read_span(_decode(data, rel), span, f"{rel} at {sha[:7]}")
            except StateError:  # e.g. merge conflict markers committed by mistake
                unreadable.append(sha[:7])
                continue
            snapshots.append(
                _Snapshot(
                    by_sha[sha], header.lineage, header.serial, record, header.reviews.get(span, {})
                )
            )
        if unreadable:
            note = (
                f"{rel} could not be read in {'commits' if len(unreadable) > 1 else 'commit'} "
                f"{', '.join(unreadable)}, left out of this history"
            )
    if (snapshots[-1].record != current) if snapshots else (files.exists() or files.has_journal()):
        reviews = working.reviews.get(span, {})
        snapshots.append(_Snapshot(None, working.lineage, working.serial, current, reviews))
    history = load_history(history_path(settings.state_path)).entries
    versions = _versions(snapshots, history)
    if not versions:
        raise OrqsyncError(
            f"{trace_id}/{span_id} is not in the state"
            + ("" if root is None else " and never was in its git history"),
            "see `orqsync state list`",
        )
    if key is not None:
        if key not in versions:
            raise OrqsyncError(
                f"{trace_id}/{span_id} has no key {key} in the state or its history",
                f"its keys: {', '.join(sorted(versions))}",
            )
        versions = {key: versions[key]}
    return Blame(trace_id, span_id, versions, note)


def _working(files: StateFile, span: SpanId) -> tuple[State, dict[str, Applied] | None]:
    """The working copy's header and record of `span`, read as a plan reads the state: any
    damage (a merge conflict, a span recorded twice) is refused, as `plan` refuses it. Only
    the span's line is parsed when the state's in_sync record vouches for the file, and the
    whole state only when a journal is pending."""
    state = files.snapshot().state(only=[span])
    return state, state.spans.get(span)


def _decode(data: bytes, display: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise StateError(f"{display}: the state file is not UTF-8 text") from None


def _same(a: Applied | None, b: Applied) -> bool:
    return (
        a is not None
        and same_value(a.value, b.value)
        and a.metadata == b.metadata
        and a.provenance == b.provenance
    )


def _versions(
    snapshots: list[_Snapshot], history: tuple[Entry, ...]
) -> dict[str, tuple[Version, ...]]:
    found: dict[str, list[Version]] = {}
    previous: dict[str, Applied] = {}
    seen_at: dict[str, _Snapshot] = {}
    for snap in snapshots:
        record = snap.record or {}
        for key, applied in sorted(record.items()):
            if not _same(previous.get(key), applied):
                review = snap.reviews.get(key)
                version = Version(key, applied, snap.commit, snap.serial, review=review)
                found.setdefault(key, []).append(version)
        for key in sorted(set(previous) - set(record)):
            before = seen_at[key]
            removers = tuple(
                entry
                for entry in history
                if entry.counts.delete
                and entry.lineage == snap.lineage == before.lineage
                and before.serial <= entry.serial_before
                and entry.serial_after <= snap.serial
            )
            found[key].append(Version(key, None, snap.commit, snap.serial, removers))
        for key in record:
            seen_at[key] = snap
        previous = dict(record)
    return {key: tuple(reversed(items)) for key, items in sorted(found.items())}


def _by(applied: Applied) -> str:
    prov = applied.provenance
    parts = []
    if prov.author:
        parts.append(f"by {prov.author}")
    parts.append(f"in {_commit(prov)}")
    when = ", ".join(x for x in (_plan(prov.plan_id) if prov.plan_id else "", prov.applied_at) if x)
    return " ".join(parts) + (f" ({when})" if when else "")


def _where(version: Version) -> str:
    if version.recorded_in is None:
        return "in the working copy (not committed)"
    commit = version.recorded_in
    return f"in state commit {commit.short} ({commit.date}, {commit.author})"


def _was(version: Version) -> str:
    if version.applied is None:
        return f"removed {_where(version)}"
    prov = version.applied.provenance
    who = [f"by {prov.author}"] if prov.author else []
    if prov.commit:
        who.append(_commit(prov))
    return value_text(version.applied.value) + (f" ({', '.join(who)})" if who else "")


def _commit(prov: Provenance) -> str:
    """`commit abc1234`, `no commit`, or, when the files applied had changes not committed,
    `commit abc1234 + uncommitted files (content 0123456789ab)`: that commit does not hold
    the label."""
    text = f"commit {short_sha(prov.commit)}" if prov.commit else "no commit"
    if prov.uncommitted:
        text += f" + uncommitted files (content {prov.uncommitted[:12]})"
    return text


def _plan(plan_id: str) -> str:
    return f"import {plan_id}" if plan_id.startswith("import-") else f"apply plan {plan_id}"


def _detail(version: Version) -> str:
    """`time  value  who  commit  plan  (state commit, serial)`, one version a line."""
    recorded = (
        "working copy, not committed"
        if version.recorded_in is None
        else f"state commit {version.recorded_in.short}"
    )
    recorded = f"({recorded}, serial {version.serial})"
    if version.applied is None:
        when = version.recorded_in.date if version.recorded_in else "-"
        parts = [when, "removed", recorded]
        for entry in version.removed_by:
            by = ", ".join(
                x
                for x in (entry.who, f"commit {short_sha(entry.commit)}" if entry.commit else "")
                if x
            )
            parts.append(f"by {_plan(entry.plan_id)}" + (f" ({by})" if by else ""))
        return "  ".join(parts)
    applied = version.applied
    prov = applied.provenance
    parts = [prov.applied_at or "-", value_text(applied.value), prov.author or "unknown"]
    parts.append(_commit(prov))
    if prov.plan_id:
        parts.append(_plan(prov.plan_id))
    if prov.run_url:
        parts.append(f"run {prov.run_url}")
    if applied.metadata:
        parts.append("metadata " + metadata_text(applied.metadata))
    if version.review is not None:
        parts.append(review_text(version.review))
    parts.append(recorded)
    return "  ".join(parts)


def render_blame_text(result: Blame) -> str:
    """Per key, newest first: a headline like `git blame`, then every version."""
    out = [f"{result.trace_id}/{result.span_id}"]
    for key, versions in result.versions.items():
        latest = versions[0]
        shown = key_text(key)
        if latest.applied is None:
            head = f"{shown}: removed {_where(latest)}"
        else:
            head = f"{shown} = {value_text(latest.applied.value)}  {_by(latest.applied)}"
        if len(versions) > 1:
            head += f", was {_was(versions[1])}"
        out.append(head)
        out.extend(f"    {_detail(version)}" for version in versions)
    return "\n".join(out) + "\n"


def _commit_json(commit: Commit | None) -> dict[str, str] | None:
    if commit is None:
        return None
    return {"sha": commit.sha, "author": commit.author, "date": commit.date}


def blame_json(result: Blame) -> dict[str, object]:
    """The blame as data: `keys` maps each key to its versions, newest first."""
    keys = {}
    for key, versions in result.versions.items():
        items = []
        for version in versions:
            item: dict[str, object] = {
                "removed": version.applied is None,
                "state_commit": _commit_json(version.recorded_in),
                "serial": version.serial,
            }
            if version.applied is not None:
                item["value"] = value_json(version.applied.value)
                item["metadata"] = dict(version.applied.metadata)
                item["provenance"] = version.applied.provenance.to_json()
                if version.review is not None:
                    item["review"] = version.review.to_json()
            else:
                item["removed_by"] = [entry.to_json() for entry in version.removed_by]
            items.append(item)
        keys[key] = items
    return {
        "trace_id": result.trace_id,
        "span_id": result.span_id,
        "note": result.note,
        "keys": keys,
    }
