"""What earlier plans proved in sync, so that a plan reads only what changed.

A plan that finds no change in an annotation file F records a fact beside the state
(`state.json.cache`, never committed):

    F with content hash h, sharing spans with files G (content hashes h_G), declares the
    spans S; the state lines of S, whose hash is H, hold exactly what F and the G declare.

The fact is about contents, not about time, so it never goes stale: it holds whenever F, the G
and the lines of S are again exactly as recorded. A later plan checks those three things (file
hashes are computed anyway; the state's lines are indexed, not parsed) and leaves out every
file whose fact holds, and the state lines of its spans. A file that now shares a span with a
file being read is read too, until no file left out shares a span with one read. Any doubt
(another orqsync version, other definitions or settings, a state being recovered from a journal)
means no fact is used.

A fresh clone has no cache, so the state itself carries the facts of the complete apply that
wrote it (its `in_sync` record, state/model.py):

    F with content hash h declares spans whose span_sum is s, shares none with another file,
    and the plan of F against this state's lines is empty.

These name no spans (a committed list of every span would be as big as the state), so a plan
checks them together: it reads every other file, and the state's spans must be exactly those
read plus those of the files left out, each once: span sums add up, so the state's sum less
the sums of the spans read and of the files left out must be zero. Anything else (a span
gone from a file read, a file read now declaring a span of one left out) and the files left
out are read after all. The record is used only while the state's text before it is unchanged.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from orqsync import __version__
from orqsync.model import SpanId
from orqsync.planning.plan import Plan
from orqsync.planning.planfile import unresolved_from_json, unresolved_json
from orqsync.source.desired import DesiredState
from orqsync.source.project import Settings
from orqsync.source.reviews import Unresolved
from orqsync.state.disk import atomic_write
from orqsync.state.model import InSync, span_sum, sum_difference
from orqsync.state.snapshot import StateSnapshot, provenance_refs

FORMAT = "orqsync-plan-cache"
FORMAT_VERSION = 2


def cache_path(settings: Settings) -> str:
    return settings.state_path + ".cache"


def context_hash(settings: Settings, definitions_hash: str) -> str:
    """Everything besides the files that decides what they declare."""
    context = [
        FORMAT_VERSION,
        __version__,
        definitions_hash,
        sorted(settings.metadata.items()),
        settings.string_limit,
        list(settings.owned_keys),
    ]
    reviews = settings.reviews
    if reviews is not None:  # how votes resolve decides what the files declare, too
        context.append(
            [
                reviews.rule,
                list(reviews.priority),
                sorted(reviews.keys.items()),
                list(reviews.adjudication),
            ]
        )
    return hashlib.sha256(json.dumps(context).encode("utf-8")).hexdigest()


def state_lines(snapshot: StateSnapshot, spans: Iterable[SpanId]) -> bytes:
    """The state lines of `spans`, in order; a span with no line counts as empty."""
    line = snapshot.line
    return b"\n".join([line(span) for span in spans])


def lines_hash(snapshot: StateSnapshot, spans: Iterable[SpanId]) -> str:
    return hashlib.sha256(state_lines(snapshot, spans)).hexdigest()


@dataclass(frozen=True, slots=True)
class Fact:
    """A file proved in sync with the state lines of its spans (see the module docstring)."""

    hash: str
    spans: tuple[SpanId, ...]  # sorted
    lines: str
    shares: dict[str, str]  # other files declaring some of these spans -> their hashes
    state: str  # the whole state file's hash then: when it is unchanged, so are the lines
    by: tuple[str, ...]  # the provenance records those lines name; they must still be there
    # keys named here whose reviewers' votes did not resolve (reviews): listed by the plans
    # that leave the file out
    unresolved: tuple[Unresolved, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "hash": self.hash,
            "lines": self.lines,
            "shares": self.shares,
            "spans": [list(span) for span in self.spans],
            "state": self.state,
            "by": list(self.by),
            "unresolved": [unresolved_json(item) for item in self.unresolved],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fact:
        return cls(
            str(data["hash"]),
            tuple((str(t), str(s)) for t, s in data["spans"]),
            str(data["lines"]),
            {str(k): str(v) for k, v in data["shares"].items()},
            str(data["state"]),
            tuple(str(record) for record in data["by"]),
            tuple(unresolved_from_json(item) for item in data.get("unresolved", [])),
        )


@dataclass(slots=True)
class PlanCache:
    """The facts of one state file, for one context."""

    path: str
    context: str
    facts: dict[str, Fact] = field(default_factory=dict)
    changed: bool = False

    @classmethod
    def load(cls, path: str, context: str) -> PlanCache:
        """The recorded facts; none when the file is missing, unreadable or of another context."""
        empty = cls(path, context)
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
            if data.get("format") != FORMAT or data.get("context") != context:
                return empty
            facts = {str(name): Fact.from_json(fact) for name, fact in data["files"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return empty  # a cache only saves time: a bad one is ignored, then replaced
        return cls(path, context, facts)

    def holding(self, hashes: dict[str, str], snapshot: StateSnapshot) -> dict[str, Fact]:
        """The files whose facts hold now: they can be left out of the plan."""
        held = {}
        records = snapshot.provenance_ids()
        for name, fact in self.facts.items():
            if not records.issuperset(fact.by):
                continue  # a line would name a record the state lost: a full read says so
            if hashes.get(name) != fact.hash:
                continue
            if any(hashes.get(other) != digest for other, digest in fact.shares.items()):
                continue
            if fact.state == snapshot.hash or lines_hash(snapshot, fact.spans) == fact.lines:
                held[name] = fact
        return held

    def prune(self, hashes: dict[str, str]) -> None:
        """Forget the facts of files that are gone."""
        for name in [name for name in self.facts if name not in hashes]:
            del self.facts[name]
            self.changed = True

    def record(
        self,
        desired: DesiredState,
        plan: Plan,
        snapshot: StateSnapshot,
        read: Iterable[str],
    ) -> None:
        """Record a fact for every file read that the plan found in sync."""
        changed_files = set(map(attrgetter("path"), plan.changes)) - {""}
        with_feedback = {record.path for record in desired.feedback.values()}
        if not set(read) - changed_files - with_feedback:
            return  # every file read has changes (a first plan): nothing to prove
        changed_spans = {(change.trace_id, change.span_id) for change in plan.changes}
        if changed_spans.issuperset(desired.spans):
            return  # every span read changes (a first plan with reviews): nothing to prove
        declared, declarers = declarations(desired)
        unresolved: dict[str, list[Unresolved]] = {}
        for item in desired.unresolved:
            unresolved.setdefault(item.path, []).append(item)
        for name in read:
            spans = declared.get(name, set())
            if name in with_feedback or not spans or spans & changed_spans:
                continue
            ordered = tuple(sorted(spans))
            shares = {
                other: desired.files[other]
                for span in ordered
                for other in declarers[span]
                if other != name
            }
            lines = state_lines(snapshot, ordered)
            fact = Fact(
                desired.files[name],
                ordered,
                hashlib.sha256(lines).hexdigest(),
                shares,
                snapshot.hash,
                provenance_refs(lines),
                tuple(unresolved.get(name, ())),
            )
            previous = self.facts.get(name)
            if previous is None or (previous.lines, previous.hash, previous.unresolved) != (
                fact.lines,
                fact.hash,
                fact.unresolved,
            ):
                self.facts[name] = fact
                self.changed = True

    def save(self) -> None:
        """Write the facts atomically; a cache that cannot be written is simply not kept."""
        if not self.changed:
            return
        data = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "context": self.context,
            "files": {name: fact.to_json() for name, fact in sorted(self.facts.items())},
        }
        try:
            atomic_write(self.path, json.dumps(data, separators=(",", ":")).encode("utf-8"))
        except OSError:
            return
        self.changed = False


def declarations(desired: DesiredState) -> tuple[dict[str, set[SpanId]], dict[SpanId, set[str]]]:
    """The spans each file read declares, and the files that declare each span: by their
    values and, with reviews, by their reviewers' votes (a resolved value names one file)."""
    declared: dict[str, set[SpanId]] = {}
    declarers: dict[SpanId, set[str]] = {}
    for span, keys in desired.spans.items():
        for annotation in keys.values():
            declared.setdefault(annotation.path, set()).add(span)
            declarers.setdefault(span, set()).add(annotation.path)
    for span, by_key in desired.votes.items():
        for votes in by_key.values():
            for vote in votes.values():
                declared.setdefault(vote.path, set()).add(span)
                declarers.setdefault(span, set()).add(vote.path)
    return declared, declarers


def vouched(
    snapshot: StateSnapshot, context: str, hashes: dict[str, str], held: dict[str, Fact]
) -> dict[str, int]:
    """The files the state's in_sync record vouches for, besides those `held` (cache facts):
    unchanged since, in the same context. Name -> the span_sum of the spans each declares.
    They may be left out only if `accounted` says so once the rest is read."""
    record = snapshot.in_sync()
    if record is None or record.context != context:
        return {}
    unchanged = [
        name
        for name, (digest, _) in record.files.items()
        if name not in held and hashes.get(name) == digest
    ]
    return {name: record.files[name][1] for name in record.only(unchanged).files}


def accounted(snapshot: StateSnapshot, known: Iterable[SpanId], left_out: dict[str, int]) -> bool:
    """True when the state's spans are exactly the `known` ones it has (spans read, or of
    files the cache holds) and those of the files `left_out` on the state's word, each once."""
    record = snapshot.in_sync()
    if record is None or record.spans is None:
        return False
    present = span_sum(span for span in known if snapshot.line(span))
    return sum_difference(record.spans, present, *left_out.values()) == 0


@dataclass(slots=True)
class Coverage:
    """The files a complete apply of a plan leaves in sync, with what the state's InSync
    record needs of each: the files read and those the plan cache held, each alone or, when
    they share spans, as a group (none with a file that declares feedback: all in sync once
    applied), and the files left out on the state's word, as it grouped them. Worked out on
    demand: a plan that is only shown never needs it, and on a big repository finding each
    file's spans and their sums is a visible part of a plan (BENCHMARKS.md)."""

    context: str
    desired: DesiredState
    hashes: dict[str, str]
    held: dict[str, Fact]  # files left out on the plan cache's word
    vouched_for: dict[str, int]  # files left out on the state's word: their span sums
    previous: InSync | None = None  # the state's record that vouched for them
    snapshot: StateSnapshot | None = None  # the state planned against
    _record: InSync | None = None

    def record(self) -> InSync:
        if self._record is None:
            files = {name: (self.hashes[name], total) for name, total in self.vouched_for.items()}
            groups = {}
            unresolved = Counter(item.path for item in self.desired.unresolved)
            unresolved.update({name: len(fact.unresolved) for name, fact in self.held.items()})
            if self.previous is not None:
                groups = {n: g for n, g in self.previous.groups.items() if n in self.vouched_for}
                unresolved.update(
                    {n: c for n, c in self.previous.unresolved.items() if n in self.vouched_for}
                )
            declared = self._declared()
            for members in _groups(declared):
                union: set[SpanId] = set().union(*(declared[name] for name in members))
                if not all(map(self._kept, union)):
                    # a span whose only keys are votes that never resolved has no state line:
                    # the state's sums cannot tell when another file votes on it, so the
                    # group is read by every plan until its votes resolve
                    continue
                total = span_sum(union)
                first = min(members)
                for name in members:
                    files[name] = (self.hashes[name], total if name == first else 0)
                    if len(members) > 1:
                        groups[name] = first
            counts = {name: unresolved[name] for name in files if unresolved[name]}
            self._record = InSync(self.context, files, groups=groups, unresolved=counts)
        return self._record

    def _kept(self, span: SpanId) -> bool:
        """Whether the state holds `span` once the plan is applied: it has values (those
        read), or a line now (those held). A span whose only keys are votes that do not
        resolve, never applied, has none."""
        if self.desired.spans.get(span):
            return True
        return (
            self.snapshot is not None
            and span not in self.desired.spans
            and (bool(self.snapshot.line(span)))
        )

    def _declared(self) -> dict[str, set[SpanId]]:
        """The spans of each file read or held, but for files that declare feedback and
        those that share a span with one."""
        desired = self.desired
        declared: dict[str, set[SpanId]] = {
            name: set() for name in desired.files
        }  # a file may declare no span
        found, _ = declarations(desired)
        for name, spans in found.items():
            declared[name] = spans
        for name, fact in self.held.items():
            declared[name] = set(fact.spans)
        with_feedback = {record.path for record in desired.feedback.values()}
        for members in _groups(declared):
            if not with_feedback.isdisjoint(members):
                for name in members:
                    del declared[name]
        return declared


def _groups(declared: dict[str, set[SpanId]]) -> list[list[str]]:
    """The files in groups that share spans (connected: a shares with b, b with c), each
    sorted, in the order of their first files."""
    leader: dict[str, str] = {name: name for name in declared}

    def find(name: str) -> str:
        while leader[name] != name:
            leader[name] = leader[leader[name]]
            name = leader[name]
        return name

    first_of: dict[SpanId, str] = {}
    for name, spans in declared.items():
        for span in spans:
            other = first_of.setdefault(span, name)
            if other != name:
                a, b = find(name), find(other)
                if a != b:
                    leader[max(a, b)] = min(a, b)
    members: dict[str, list[str]] = {}
    for name in sorted(declared):
        members.setdefault(find(name), []).append(name)
    return list(members.values())


def coverage(
    desired: DesiredState,
    hashes: dict[str, str],
    held: dict[str, Fact],
    vouched_for: dict[str, int],
    context: str,
    previous: InSync | None = None,
    snapshot: StateSnapshot | None = None,
) -> Coverage:
    """What a complete apply of this plan may record (see Coverage); `previous`: the
    state's record that vouched for `vouched_for`; `snapshot`: the state planned against."""
    return Coverage(context, desired, hashes, dict(held), dict(vouched_for), previous, snapshot)
