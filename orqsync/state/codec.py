"""The state file's text: one span per line, sorted; written and parsed here only."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

from orqsync.errors import StateError
from orqsync.model import Metadata, Review, SpanId, Value, value_from_json, value_json
from orqsync.state.model import (
    FORMAT_VERSION,
    Applied,
    AppliedFeedback,
    InSync,
    Provenance,
    QueueRecord,
    State,
    _dumps,
    _metadata,
    _quote,
    feedback_pairs,
    sorted_spans,
    span_sum,
)

# The layout render_state writes, named for the readers that rely on it (snapshot.py reads
# single lines by these marks and parses a file whole when they are not where expected).
HEAD = '{\n"format_version": '
SPANS_OPEN = '\n"spans": [\n'
SPANS_CLOSE = '\n],\n"feedback": ['
NO_SPANS = '\n"spans": [],\n"feedback": ['
IN_SYNC_OPEN = '\n"in_sync": {\n'


def restore_hint(path: str) -> str:
    """What to do about a damaged state file: every message that says so gives this hint."""
    return f"restore it from git or from {os.path.basename(path)}.backup"


def _array(name: str, lines: list[str], last: bool = False) -> str:
    inner = "\n" + ",\n".join(lines) + "\n" if lines else ""
    return f'"{name}": [{inner}]' + ("" if last else ",")


def render_state(state: State, in_sync: InSync | None = None) -> str:
    """The state file's text: deterministic, sorted, one span or record per line.

    Each annotation names its provenance by id; the records sit once each in `provenance`.
    `in_sync` is a claim the caller makes about the state written (a complete apply's): it
    ends the file, with the hash of all the text before it.
    """
    provenance: dict[str, Provenance] = {}
    ids: dict[Provenance, str] = {}  # one hash per apply, not one per annotation

    def by(record: Provenance) -> str:
        if record not in ids:
            ids[record] = record.id
            provenance[ids[record]] = record
        return ids[record]

    span_lines = _span_lines(state, by)
    feedback_lines = []
    for _, applied in sorted(state.feedback.items()):
        fields = {k: value_json(v) for k, v in applied.body}
        feedback_lines.append(_dumps({"body": fields, "by": by(applied.provenance)}))
    provenance_lines = [
        _dumps({"id": record_id, **record.to_json()})
        for record_id, record in sorted(provenance.items())
    ]
    body = "\n".join(
        [
            "{",
            f'"format_version": {FORMAT_VERSION},',
            f'"lineage": {_dumps(state.lineage)},',
            f'"serial": {state.serial},',
            _array("provenance", provenance_lines),
            _array("spans", span_lines),
            _array("feedback", feedback_lines, last=in_sync is None and not state.queues),
        ]
    )
    if state.queues:  # absent when there is none: the files of earlier releases stay as they were
        queue_lines = [
            _dumps_ordered(record.to_json(name)) for name, record in sorted(state.queues.items())
        ]
        body += "\n" + _array("queues", queue_lines, last=in_sync is None)
    if in_sync is None:
        return body + "\n}\n"
    return _with_in_sync(body + "\n", state, in_sync)


def _span_lines(state: State, by: Callable[[Provenance], str]) -> list[str]:
    """One line per span, sorted, each annotation as _dumps gives it (keys sorted: by,
    metadata, value), from pieces made once each: a state holds few distinct provenances,
    metadata and labels."""
    heads: dict[tuple[str, Provenance, Metadata], str] = {}
    values: dict[tuple[type, Value], str] = {}
    span_lines = []
    labels = state.spans
    extra = state.asserted or state.removed or state.reviews  # records beyond the labels
    spans = labels.keys() | state.asserted.keys() | state.removed.keys() if extra else labels
    no_keys: dict[str, Applied] = {}
    for trace_id, span_id in sorted_spans(spans):
        keys = labels.get((trace_id, span_id), no_keys) if extra else labels[trace_id, span_id]
        items = []
        for key in sorted(keys):
            value, metadata, record = keys[key]
            head = heads.get((key, record, metadata))
            if head is None:
                meta = f',"metadata":{_dumps(dict(metadata))}' if metadata else ""
                head = f'{_quote(key)}:{{"by":{_quote(by(record))}{meta},"value":'
                heads[(key, record, metadata)] = head
            text = values.get((type(value), value))
            if text is None:
                text = _quote(value) if type(value) is str else _dumps(value_json(value))
                values[(type(value), value)] = text
            items.append(f"{head}{text}}}")
        # ids first: a line (and a git diff of it) starts with the span it is about
        line = (
            f'{{"trace_id":{_quote(trace_id)},"span_id":{_quote(span_id)},'
            f'"annotations":{{{",".join(items)}}}'
        )
        if extra:
            line += _span_record((trace_id, span_id), state)
        span_lines.append(line + "}")
    return span_lines


def _dumps_ordered(data: dict[str, object]) -> str:
    """JSON in the order of `data` (a queue's line starts with its name and id)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _span_record(span: SpanId, state: State) -> str:
    """What a state line says of a span besides its labels: when a reassertion last sent it,
    the keys orqsync removed from it, and how its labels resolved from reviewers' votes were
    resolved (each absent when there is nothing to say)."""
    text = ""
    asserted = state.asserted.get(span)
    if asserted is not None:
        text += f',"asserted":{_quote(asserted)}'
    removed = state.removed.get(span)
    if removed:
        text += f',"removed":{_dumps(list(removed))}'
    reviews = state.reviews.get(span)
    if reviews:
        by_key = {key: review.to_json() for key, review in reviews.items()}
        text += f',"reviews":{_dumps(by_key)}'
    return text


def _with_in_sync(body: str, state: State, in_sync: InSync) -> str:
    """`body` (the text up to the record) and the in_sync record that ends the file: the
    hash of `body`, the span sum of the state, and the record of each file."""
    files = [f"{_dumps(name)}: {_dumps(entry)}" for name, entry in in_sync.files_json().items()]
    inner = "\n" + ",\n".join(files) + "\n" if files else ""
    return body + "\n".join(
        [
            '"in_sync": {',
            f'"context": {_dumps(in_sync.context)},',
            f'"body": "{hashlib.sha256(body.encode("utf-8")).hexdigest()}",',
            f'"spans": "{span_sum(state.spans):032x}",',
            f'"files": {{{inner}}}',
            "}",
            "}\n",
        ]
    )


def state_hash(state: State) -> str:
    """Content hash of a state as it would be written."""
    return hashlib.sha256(render_state(state).encode("utf-8")).hexdigest()


def parse_state(text: str, path: str) -> State:
    """A state from its file text; anything unexpected is a StateError, never a guess."""
    data = _load_json(text, path)
    try:
        return _state_of(data, data.get("spans"), path)
    except _Twice as twice:
        raise _recorded_twice(text, twice.span, path) from None


def _load_json(text: str, path: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        conflict = _conflict_line(text)  # a marker is never JSON: it is always caught here
        if conflict:
            raise StateError(
                f"{path}:{conflict}: the state file has an unresolved git merge conflict",
                "the state is orqsync's record of what it applied: take the version of the "
                f"branch that applied last (e.g. `git checkout main -- {path}`), then run "
                "`orqsync plan` to see what is left to apply",
            ) from None
        raise StateError(
            f"{path}:{exc.lineno}:{exc.colno}: the state file is corrupt ({exc.msg})",
            restore_hint(path) + "; orqsync will not overwrite it",
        ) from None
    if not isinstance(data, dict) or "format_version" not in data:
        raise StateError(
            f"{path}: not an orqsync state file",
            restore_hint(path),
        )
    version = data["format_version"]
    if version != FORMAT_VERSION:
        newer = isinstance(version, int) and version > FORMAT_VERSION
        raise StateError(
            f"{path}: state format version {version} is not supported "
            f"(this orqsync reads version {FORMAT_VERSION})",
            "upgrade orqsync" if newer else "restore the state file from git",
        )
    return data


# What git writes around the two sides of a conflict (and diff3's base), at a line's start.
_CONFLICT_MARKERS = ("<<<<<<< ", "=======", ">>>>>>> ", "||||||| ")


def _conflict_line(text: str) -> int:
    """The line of the first git conflict marker in `text`; 0 for none."""
    found = [0 for marker in _CONFLICT_MARKERS if text.startswith(marker)]
    found += [at + 1 for marker in _CONFLICT_MARKERS if (at := text.find("\n" + marker)) >= 0]
    return text.count("\n", 0, min(found)) + 1 if found else 0


class _Twice(Exception):
    """A span recorded on two lines (not a ValueError: _state_of must not take it for one)."""

    def __init__(self, span: SpanId) -> None:
        super().__init__(span)
        self.span = span


def _recorded_twice(text: str, span: SpanId, path: str) -> StateError:
    """The error for a span the file records twice, with the lines of its first two records
    where they can be found (a record that starts with its ids, as render_state writes it)."""
    trace_id, span_id = span
    trace, spans = (  # each id as JSON, with and without \u escapes
        "|".join(re.escape(json.dumps(name, ensure_ascii=escaped)) for escaped in (False, True))
        for name in span
    )
    starts = re.compile(
        rf'\{{\s*"trace_id"\s*:\s*(?:{trace})\s*,\s*"span_id"\s*:\s*(?:{spans})\s*[,}}]'
    )
    lines = [text.count("\n", 0, match.start()) + 1 for match in starts.finditer(text)]
    where, first = (f":{lines[1]}", f" (first on line {lines[0]})") if len(lines) > 1 else ("", "")
    return StateError(
        f"{path}{where}: the state file is damaged: span {trace_id}/{span_id} is recorded "
        f"twice{first}",
        restore_hint(path),
    )


def _state_of(
    data: dict[str, Any], span_records: Iterable[dict[str, Any]] | None, path: str
) -> State:
    """The State of a parsed file, with the span records given (all, or a chosen few); a span
    recorded twice raises _Twice (the caller that has the text says on which lines)."""
    try:
        serial = data["serial"]
        if isinstance(serial, bool) or not isinstance(serial, int):
            raise StateError(
                f"{path}: the state file is damaged: serial is {json.dumps(serial)}, not a "
                "whole number",
                restore_hint(path),
            )
        state = State(lineage=str(data["lineage"]), serial=serial)
        provenance = {record["id"]: Provenance.from_json(record) for record in data["provenance"]}
        if span_records is None:
            raise KeyError("spans")
        # A state holds few distinct metadata: one shared tuple each, not one per annotation
        # (a third of the memory of a state of 400,000 annotations).
        shared: dict[Metadata, Metadata] = {}
        labels: dict[tuple[type, Value], Value] = {}  # keyed by type: True and 1 stay apart
        for record in span_records:
            span = {}
            for key, item in record["annotations"].items():
                metadata = _metadata(item.get("metadata", {}))
                value = value_from_json(item["value"])
                if type(value) is tuple or (type(value) is str and len(value) <= 64):
                    value = labels.setdefault((type(value), value), value)
                by = provenance.get(item["by"])
                if by is None:
                    raise StateError(
                        f"{path}: {record['trace_id']}/{record['span_id']} {key} names the "
                        f"provenance record {item['by']}, which is not in the file",
                        restore_hint(path),
                    )
                span[key] = Applied(value, shared.setdefault(metadata, metadata), by)
            ids = (record["trace_id"], record["span_id"])
            if ids in state.spans or ids in state.removed or ids in state.asserted:
                raise _Twice(ids)
            if span:
                state.spans[ids] = span
            if "asserted" in record:
                asserted = record["asserted"]
                if not isinstance(asserted, str):
                    raise TypeError("asserted")
                state.asserted[ids] = asserted
            if "removed" in record:
                removed = record["removed"]
                if not isinstance(removed, list) or not all(isinstance(k, str) for k in removed):
                    raise TypeError("removed")
                state.removed[ids] = tuple(sorted(removed))
            if "reviews" in record:
                reviews = {str(k): Review.from_json(v) for k, v in record["reviews"].items()}
                if not set(reviews) <= set(span):
                    raise ValueError("reviews")  # of keys the span does not hold
                if reviews:
                    state.reviews[ids] = reviews
        for record in data["feedback"]:
            body = record["body"]
            state.feedback[body["id"]] = AppliedFeedback(
                feedback_pairs(body), provenance[record["by"]]
            )
        for record in data.get("queues", []):
            name, queue = QueueRecord.from_json(record)
            if name in state.queues:
                raise StateError(
                    f'{path}: the state file is damaged: the annotation queue "{name}" is '
                    "recorded twice",
                    restore_hint(path),
                )
            state.queues[name] = queue
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        what = (
            f'the field "{exc.args[0]}" is missing'
            if isinstance(exc, KeyError)
            else ("a field holds a value of the wrong kind")
        )
        raise StateError(
            f"{path}: the state file is damaged: {what}",
            restore_hint(path),
        ) from None
    return state
