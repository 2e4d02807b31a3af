"""The state's model: what orqsync applied, span by span, and where it came from."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from json.encoder import encode_basestring
from operator import itemgetter
from typing import Any, NamedTuple

from orqsync.errors import StateError
from orqsync.model import Metadata, Operation, QueueRef, Review, SpanId, Value, value_from_json

FORMAT_VERSION = 1


_SUM_MODULUS = 1 << 128


def sorted_spans(spans: Iterable[SpanId]) -> list[SpanId]:
    """The span ids in the order of the tuples. Two stable sorts, by span id then by trace
    id, give that order in about half the time of comparing the tuples: a sort by one string
    key compares the strings directly."""
    ordered = list(spans)
    ordered.sort(key=itemgetter(1))
    ordered.sort(key=itemgetter(0))
    return ordered


def span_sum(spans: Iterable[SpanId]) -> int:
    """The sum of the spans' hashes modulo 2**128: a fingerprint of a set of spans that adds
    and subtracts, so that the spans of many files can be checked against the state's without
    being listed. Equal sums mean equal collections, but for a 2**-128 chance."""
    total = 0
    for trace_id, span_id in spans:
        key = f"{len(trace_id)}:{trace_id}{span_id}".encode()
        total += int.from_bytes(hashlib.blake2b(key, digest_size=16).digest(), "big")
    return total % _SUM_MODULUS


def sum_difference(total: int, *parts: int) -> int:
    """`total` less the `parts`, modulo 2**128 (zero: the parts make up the total)."""
    return (total - sum(parts)) % _SUM_MODULUS


@dataclass(frozen=True, slots=True)
class InSync:
    """The files a complete apply left in sync with the state it wrote (planning/cache.py says
    what a plan makes of it): each file's content hash and the span_sum of the spans it
    declares, for one context (definitions, settings, orqsync version).

    Files that share spans (several reviewers' files, a span's keys split over two files) are
    vouched for as a group: `groups` maps each member to the group's first file, which holds
    the span_sum of the group's spans (each once); the other members hold 0. A group is left
    out of a plan whole or not at all.

    `spans` is the span_sum of the whole state as written: render_state computes it, with the
    hash of the text before the record (`body`); a snapshot gives the record back only while
    that text is unchanged.
    """

    context: str
    files: dict[str, tuple[str, int]]
    spans: int | None = None
    groups: dict[str, str] = field(default_factory=dict)
    # keys whose reviewers' votes did not resolve, by the file that names them (reviews): a
    # plan that leaves the file out says how many it did not list
    unresolved: dict[str, int] = field(default_factory=dict)

    def files_json(self) -> dict[str, dict[str, str]]:
        """Each file's record, sorted, as the state file and a saved plan both write it."""
        found = {}
        for name, (digest, spans) in sorted(self.files.items()):
            item = {"hash": digest, "spans": f"{spans:032x}"}
            if name in self.groups:
                item["group"] = self.groups[name]
            if self.unresolved.get(name):
                item["unresolved"] = str(self.unresolved[name])
            found[name] = item
        return found

    @classmethod
    def from_json(cls, data: Any) -> InSync:
        """The record as written by `files_json` with its context (and, in a state file, the
        whole state's span sum); a KeyError, TypeError, ValueError or AttributeError when it
        is not."""
        files = {
            str(name): (str(item["hash"]), int(item["spans"], 16))
            for name, item in data["files"].items()
        }
        groups = {
            str(name): str(item["group"]) for name, item in data["files"].items() if "group" in item
        }
        unresolved = {
            str(name): int(item["unresolved"])
            for name, item in data["files"].items()
            if "unresolved" in item
        }
        spans = int(data["spans"], 16) if "spans" in data else None
        return cls(str(data["context"]), files, spans, groups, unresolved)

    def only(self, names: Iterable[str]) -> InSync:
        """The record of `names` alone, less every group that loses a member."""
        kept = set(names) & self.files.keys()
        lost = {self.groups[name] for name in self.files.keys() - kept if name in self.groups}
        kept = {name for name in kept if self.groups.get(name) not in lost}
        return InSync(
            self.context,
            {name: self.files[name] for name in kept},
            self.spans,
            {name: group for name, group in self.groups.items() if name in kept},
            {name: count for name, count in self.unresolved.items() if name in kept},
        )


@dataclass(frozen=True, slots=True)
class Provenance:
    """Who decided a label and how it got applied."""

    commit: str = ""
    author: str = ""
    applied_at: str = ""
    plan_id: str = ""
    run_url: str = ""
    # The files applied had changes that `commit` does not hold: the sha256 of their content
    # (state/provenance.py). "" when everything applied was committed.
    uncommitted: str = ""

    def to_json(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in self.__slots__ if getattr(self, name)}

    @property
    def id(self) -> str:
        """Content id: annotations of one apply share one provenance record in the file."""
        return hashlib.sha256(_dumps(self.to_json()).encode("utf-8")).hexdigest()[:12]

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Provenance:
        return cls(**{name: str(data.get(name, "")) for name in cls.__slots__})


class Applied(NamedTuple):
    """An annotation as orqsync last wrote it (a named tuple: states hold hundreds of
    thousands)."""

    value: Value
    metadata: Metadata
    provenance: Provenance


@dataclass(frozen=True, slots=True)
class AppliedFeedback:
    """A Feedback API record as orqsync last wrote it (`body` is what was sent)."""

    body: tuple[tuple[str, object], ...]
    provenance: Provenance

    def get(self, name: str) -> object:
        return dict(self.body).get(name)


QUEUE_FIELDS = ("display_name", "description", "project_id", "human_review_ids")


@dataclass(frozen=True, slots=True)
class QueueRecord:
    """An annotation queue orqsync created or adopted: its id in orq.ai, its fields as
    orqsync last sent them, and the spans orqsync added to it (the only ones it takes out).

    `id` is "" while a create may or may not have made the queue (it failed in a way that
    leaves it open, or the apply stopped with it in flight), and `attempted` says when (UTC):
    the next apply looks for it in orq.ai first (remote/queues.py). `foreign`: spans the
    queue held already when orqsync added them (someone else's: never taken out)."""

    id: str
    display_name: str = ""
    description: str = ""
    project_id: str = ""
    human_review_ids: tuple[str, ...] = ()
    spans: frozenset[SpanId] = frozenset()
    foreign: frozenset[SpanId] = frozenset()
    attempted: str = ""
    adopted: bool = False  # made elsewhere: spans it held already may be someone else's

    @property
    def unconfirmed(self) -> bool:
        return not self.id

    def to_json(self, name: str) -> dict[str, object]:
        data: dict[str, object] = {"name": name, "id": self.id}
        for field_name in QUEUE_FIELDS:
            value = getattr(self, field_name)
            data[field_name] = list(value) if isinstance(value, tuple) else value
        data["spans"] = [list(span) for span in sorted_spans(self.spans)]
        if self.foreign:
            data["foreign"] = [list(span) for span in sorted_spans(self.foreign)]
        if self.attempted:
            data["attempted"] = self.attempted
        if self.adopted:
            data["adopted"] = True
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> tuple[str, QueueRecord]:
        """The name and record of a state file's line; KeyError, TypeError or ValueError
        when it is not one."""
        fields = {name: data.get(name, "") for name in (*QUEUE_FIELDS[:3], "attempted")}
        if not all(isinstance(value, str) for value in fields.values()):
            raise TypeError("queues")
        ids = data.get("human_review_ids", [])
        spans = data.get("spans", [])
        foreign = data.get("foreign", [])
        if not all(isinstance(value, list) for value in (ids, spans, foreign)):
            raise TypeError("queues")
        return str(data["name"]), cls(
            str(data["id"]),
            **fields,
            human_review_ids=tuple(map(str, ids)),
            spans=frozenset((str(trace_id), str(span_id)) for trace_id, span_id in spans),
            foreign=frozenset((str(trace_id), str(span_id)) for trace_id, span_id in foreign),
            adopted=data.get("adopted") is True,
        )

    def changed(self, fields: tuple[tuple[str, object], ...]) -> QueueRecord:
        """The record with the fields a create or an update sent."""
        values: dict[str, Any] = {
            name: tuple(v) if isinstance(v, list) else v for name, v in fields
        }
        if "project_id" in values and "human_review_ids" not in values:
            values["human_review_ids"] = ()  # orq.ai: a new project clears the selection
        return replace(self, **{name: values[name] for name in QUEUE_FIELDS if name in values})


def queue_entry(kind: Operation, ref: QueueRef) -> dict[str, object]:
    """A successful request on a queue as a journal line (the id a create got included)."""
    entry: dict[str, object] = {"op": kind.journal_op, "name": ref.name, "id": ref.id}
    if ref.was:
        entry["was"] = ref.was
    if ref.fields:
        entry["fields"] = {name: list(v) if isinstance(v, tuple) else v for name, v in ref.fields}
    if ref.spans:
        entry["spans"] = [list(span) for span in ref.spans]
    if ref.adopting:
        entry["adopting"] = True
    return entry


def unconfirmed_entry(ref: QueueRef, attempted: str) -> dict[str, object]:
    """The journal's line for a create that may or may not have made its queue (sent at
    `attempted`, UTC): a record without an id, which the next apply looks for."""
    entry = queue_entry(Operation.QUEUE_CREATE, ref._replace(id=""))
    entry["attempted"] = attempted
    return entry


def queue_ref(entry: dict[str, Any]) -> QueueRef:
    """The inverse of queue_entry."""
    return QueueRef(
        str(entry["name"]),
        str(entry.get("id", "")),
        tuple(sorted(entry.get("fields", {}).items())),
        tuple((str(t), str(s)) for t, s in entry.get("spans", [])),
        str(entry.get("was", "")),
        bool(entry.get("adopting", False)),
    )


@dataclass(slots=True)
class State:
    """The last-applied state. Mutated only by `fold`, which the applier drives."""

    lineage: str
    serial: int = 0
    spans: dict[SpanId, dict[str, Applied]] = field(default_factory=dict)
    feedback: dict[str, AppliedFeedback] = field(default_factory=dict)
    # When a reassertion (apply --reassert) last sent a span in full: what the next one
    # with a budget goes by, oldest first. Spans never reasserted are absent.
    asserted: dict[SpanId, str] = field(default_factory=dict)
    # Keys orqsync removed from a span (sorted): what a reassertion deletes again, in case
    # someone set them in orq.ai since. A key set again leaves the list.
    removed: dict[SpanId, tuple[str, ...]] = field(default_factory=dict)
    # The annotation queues orqsync manages, by their names in the repository.
    queues: dict[str, QueueRecord] = field(default_factory=dict)
    # How the labels resolved from reviewers' votes (reviews) were resolved, as applied:
    # span -> key -> review. A key set without review, or removed, leaves it.
    reviews: dict[SpanId, dict[str, Review]] = field(default_factory=dict)

    @classmethod
    def new(cls) -> State:
        """No state yet: the lineage is fixed when the state is first written."""
        return cls(lineage="")

    @property
    def annotation_count(self) -> int:
        return sum(len(keys) for keys in self.spans.values())

    def fold(self, entry: dict[str, Any], provenance: Provenance | None = None) -> None:
        """Apply one journal entry (the effect of one successful request). An apply passes
        its provenance, which the entry also holds, so as not to read it back every time."""
        op = entry["op"]
        if op == "intent" and "queue_create" in entry:
            # a create about to be sent: until its success line (which follows, if it came),
            # the queue may or may not exist
            op, entry = "queue_create", entry["queue_create"]
        if op in ("intent", "reasserted"):
            # a request about to be sent, or a reassertion's set of labels the state holds:
            # neither changes what the state records
            return
        if provenance is None:
            provenance = Provenance.from_json(entry.get("provenance", {}))
        if op == Operation.ANNOTATE.journal_op:
            values = [(key, value_from_json(value)) for key, value in entry["values"].items()]
            metadata = _metadata(entry.get("metadata", {}))
            reviews = tuple(
                (key, Review.from_json(review)) for key, review in entry.get("reviews", {}).items()
            )
            self.set_keys(
                (entry["trace_id"], entry["span_id"]), values, metadata, provenance, reviews
            )
        elif op == Operation.REMOVE.journal_op:
            self.remove_keys((entry["trace_id"], entry["span_id"]), entry["keys"])
        elif op == Operation.FEEDBACK_PUT.journal_op:
            body = entry["body"]
            self.feedback[body["id"]] = AppliedFeedback(feedback_pairs(body), provenance)
        elif op == Operation.FEEDBACK_REMOVE.journal_op:
            self.feedback.pop(entry["id"], None)
        elif op == Operation.QUEUE_ADD.journal_op and "created" in entry:
            created = frozenset((str(t), str(s)) for t, s in entry["created"])
            self.fold_added(queue_ref(entry), created)
        elif op.startswith("queue_"):
            self.fold_queue(Operation(op), queue_ref(entry), str(entry.get("attempted", "")))
        else:
            raise StateError(f"unknown journal entry {op!r}")

    def set_keys(
        self,
        span: SpanId,
        values: Iterable[tuple[str, Value]],
        metadata: Metadata,
        provenance: Provenance,
        reviews: tuple[tuple[str, Review], ...] = (),
    ) -> None:
        """Keys set on a span (a successful annotate request; `metadata` sorted), and how
        those resolved from votes were resolved."""
        keys = self.spans.get(span)
        if keys is None:
            keys = self.spans[span] = {}
        for key, value in values:
            keys[key] = Applied(value, metadata, provenance)
        if reviews or (self.reviews and span in self.reviews):
            self._reviewed(span, [key for key, _ in values], dict(reviews))
        if self.removed and span in self.removed:
            left = tuple(key for key in self.removed[span] if key not in keys)
            self._tombstones(span, left)

    def fold_queue(self, kind: Operation, ref: QueueRef, attempted: str = "") -> None:
        """A successful request on a queue (`ref.id` the queue's, a create's from its answer);
        a create without an id: one that may have made the queue, sent at `attempted`."""
        if kind is Operation.QUEUE_DELETE:
            self.queues.pop(ref.name, None)
            return
        record = self.queues.pop(ref.was, None) if ref.was else None
        record = record or self.queues.get(ref.name) or QueueRecord(ref.id)
        if ref.id and record.id != ref.id:
            record = QueueRecord(ref.id)  # created at last, or another queue adopted
        if kind in (Operation.QUEUE_CREATE, Operation.QUEUE_UPDATE):
            record = record.changed(ref.fields)
            if not ref.id and attempted:
                record = replace(record, attempted=attempted)
            if ref.adopting:
                record = replace(record, adopted=True)
        elif kind is Operation.QUEUE_ADD:
            record = replace(record, spans=record.spans | set(ref.spans))
        elif kind is Operation.QUEUE_REMOVE:
            record = replace(record, spans=record.spans - set(ref.spans))
        self.queues[ref.name] = record

    def fold_added(self, ref: QueueRef, created: frozenset[SpanId]) -> None:
        """A successful add: of `ref.spans`, orqsync made `created` members; the others were
        members already of the adopted queue: someone else's."""
        self.fold_queue(Operation.QUEUE_ADD, ref._replace(spans=tuple(created)))
        record = self.queues[ref.name]
        foreign = record.foreign | (set(ref.spans) - created)
        self.queues[ref.name] = replace(record, foreign=frozenset(foreign))

    def remove_keys(self, span: SpanId, keys: Iterable[str]) -> None:
        """Keys removed from a span (a successful remove request)."""
        held = self.spans.get(span, {})
        removed = set(self.removed.get(span, ()))
        for key in keys:
            held.pop(key, None)
            removed.add(key)
        if not held:
            self.spans.pop(span, None)
        self._tombstones(span, tuple(sorted(removed)))
        if self.reviews and span in self.reviews:
            self._reviewed(span, removed, {})

    def forget(self, span: SpanId, keys: Iterable[str] | None = None) -> None:
        """Drop keys (None: the whole span, with its record of removals and reassertion) from
        the record without anything having been sent (`state rm`)."""
        if keys is None:
            self.spans.pop(span, None)
            self.removed.pop(span, None)
            self.asserted.pop(span, None)
            self.reviews.pop(span, None)
            return
        held = self.spans.get(span, {})
        forgotten = set(keys)
        if self.reviews and span in self.reviews:
            self._reviewed(span, forgotten, {})
        for key in forgotten:
            held.pop(key, None)
        if not held:
            self.spans.pop(span, None)
        left = tuple(key for key in self.removed.get(span, ()) if key not in forgotten)
        self._tombstones(span, left)
        if span not in self.spans and span not in self.removed:
            self.asserted.pop(span, None)  # nothing left to reassert

    def _reviewed(self, span: SpanId, keys: Iterable[str], reviews: dict[str, Review]) -> None:
        """Of `keys` (just set, removed or forgotten), record the reviews given and drop
        the others'."""
        held = self.reviews.get(span, {})
        for key in keys:
            review = reviews.get(key)
            if review is None:
                held.pop(key, None)
            else:
                held[key] = review
        if held:
            self.reviews[span] = held
        else:
            self.reviews.pop(span, None)

    def _tombstones(self, span: SpanId, keys: tuple[str, ...]) -> None:
        if keys:
            self.removed[span] = keys
        else:
            self.removed.pop(span, None)


def _metadata(data: dict[str, str]) -> Metadata:
    return tuple(sorted((str(k), str(v)) for k, v in data.items()))


def feedback_pairs(body: Mapping[str, object]) -> tuple[tuple[str, object], ...]:
    """A Feedback body as sorted, hashable pairs (lists become tuples)."""
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in body.items()))


_quote = encode_basestring  # what _dumps gives for a str, without its per-call set-up


def _dumps(data: object) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
