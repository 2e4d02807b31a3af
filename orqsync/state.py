"""The state file: the record of what orqsync wrote, and the journal that keeps it honest.

There is no API that reads annotations back, so the state is the only memory of what was
written. It is JSON with one span per line (sorted), so that git diffs and merges stay readable.

Progress during an apply goes to a journal beside the state (`state.json.journal`): one JSON line
per request that succeeded, written at once and fsynced (by the journal's flusher) before the
request counts as done, so the cost per request does not grow with the state. At the end of a
run the journal is folded into the state, which is written atomically (temp file, fsync,
rename), and the journal is removed.
After a crash, the next command folds the journal it finds. A journal names the lineage and
serial of the state it extends; one that does not match (already folded) is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from operator import itemgetter
from typing import IO, NamedTuple

from orqsync.errors import StateError
from orqsync.validate import Value

FORMAT_VERSION = 1

SpanId = tuple[str, str]
Metadata = tuple[tuple[str, str], ...]

_SUM_MODULUS = 1 << 128


def sorted_spans(spans: Iterable[SpanId]) -> list[SpanId]:
    """The span ids in the order of the tuples. Two stable sorts, by span id then by trace
    id, give that order in half the time of comparing the tuples (0.12 s instead of 0.23 s
    for 100,000 spans): a sort by one string key compares the strings directly."""
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
    """The files a complete apply left in sync with the state it wrote (plancache.py says
    what a plan makes of it): each file's content hash and the span_sum of the spans it
    declares, for one context (definitions, settings, orqsync version).

    `spans` is the span_sum of the whole state as written: render_state computes it, with the
    hash of the text before the record (`body`); a snapshot gives the record back only while
    that text is unchanged.
    """

    context: str
    files: dict[str, tuple[str, int]]
    spans: int | None = None


@dataclass(frozen=True, slots=True)
class Provenance:
    """Who decided a label and how it got applied."""

    commit: str = ""
    author: str = ""
    applied_at: str = ""
    plan_id: str = ""
    run_url: str = ""
    # The files applied had changes that `commit` does not hold: the sha256 of their content
    # (provenance.py). "" when everything applied was committed.
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


@dataclass(slots=True)
class State:
    """The last-applied state. Mutated only by `fold`, which the applier drives."""

    lineage: str
    serial: int = 0
    spans: dict[SpanId, dict[str, Applied]] = field(default_factory=dict)
    feedback: dict[str, AppliedFeedback] = field(default_factory=dict)

    @classmethod
    def new(cls) -> State:
        """No state yet: the lineage is fixed when the state is first written."""
        return cls(lineage="")

    @property
    def annotation_count(self) -> int:
        return sum(len(keys) for keys in self.spans.values())

    def fold(self, entry: dict, provenance: Provenance | None = None) -> None:
        """Apply one journal entry (the effect of one successful request). An apply passes
        its provenance, which the entry also holds, so as not to read it back every time."""
        op = entry["op"]
        if op == "intent":
            return  # a request about to be sent: says nothing about what was written
        if provenance is None:
            provenance = Provenance.from_json(entry.get("provenance", {}))
        if op == "set":
            values = [(key, _value(value)) for key, value in entry["values"].items()]
            metadata = _metadata(entry.get("metadata", {}))
            self.set_keys((entry["trace_id"], entry["span_id"]), values, metadata, provenance)
        elif op == "remove":
            self.remove_keys((entry["trace_id"], entry["span_id"]), entry["keys"])
        elif op == "feedback_put":
            body = entry["body"]
            self.feedback[body["id"]] = AppliedFeedback(feedback_pairs(body), provenance)
        elif op == "feedback_remove":
            self.feedback.pop(entry["id"], None)
        else:
            raise StateError(f"unknown journal entry {op!r}")

    def set_keys(
        self,
        span: SpanId,
        values: Iterable[tuple[str, Value]],
        metadata: Metadata,
        provenance: Provenance,
    ) -> None:
        """Keys set on a span (a successful annotate request; `metadata` sorted)."""
        keys = self.spans.get(span)
        if keys is None:
            keys = self.spans[span] = {}
        for key, value in values:
            keys[key] = Applied(value, metadata, provenance)

    def remove_keys(self, span: SpanId, keys: Iterable[str]) -> None:
        """Keys removed from a span (a successful remove request)."""
        held = self.spans.get(span, {})
        for key in keys:
            held.pop(key, None)
        if not held:
            self.spans.pop(span, None)


def _metadata(data: dict[str, str]) -> Metadata:
    return tuple(sorted((str(k), str(v)) for k, v in data.items()))


def _value(value: object) -> Value:
    if isinstance(value, list):
        return tuple(value)
    return value  # type: ignore[return-value]


def feedback_pairs(body: Mapping[str, object]) -> tuple[tuple[str, object], ...]:
    """A Feedback body as sorted, hashable pairs (lists become tuples)."""
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in body.items()))


def _jsonable(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


_quote = encode_basestring  # what _dumps gives for a str, without its per-call set-up


def _dumps(data: object) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


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

    # Each annotation as _dumps gives it (keys sorted: by, metadata, value), from pieces
    # made once each: a state holds few distinct provenances, metadata and labels.
    heads: dict[tuple[str, Provenance, Metadata], str] = {}
    values: dict[tuple[type, Value], str] = {}
    span_lines = []
    labels = state.spans
    for trace_id, span_id in sorted_spans(labels):
        keys = labels[trace_id, span_id]
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
                text = _quote(value) if type(value) is str else _dumps(_jsonable(value))
                values[(type(value), value)] = text
            items.append(f"{head}{text}}}")
        # ids first: a line (and a git diff of it) starts with the span it is about
        span_lines.append(
            f'{{"trace_id":{_quote(trace_id)},"span_id":{_quote(span_id)},'
            f'"annotations":{{{",".join(items)}}}}}'
        )
    feedback_lines = []
    for _, record in sorted(state.feedback.items()):
        body = {k: _jsonable(v) for k, v in record.body}
        feedback_lines.append(_dumps({"body": body, "by": by(record.provenance)}))
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
            _array("feedback", feedback_lines, last=in_sync is None),
        ]
    )
    if in_sync is None:
        return body + "\n}\n"
    body += "\n"
    files = [
        f'{_dumps(name)}: {{"hash":{_dumps(digest)},"spans":"{spans:032x}"}}'
        for name, (digest, spans) in sorted(in_sync.files.items())
    ]
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


def _load_json(text: str, path: str) -> dict:
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
            f"restore it from git or from {os.path.basename(path)}.backup; "
            "orqsync will not overwrite it",
        ) from None
    if not isinstance(data, dict) or "format_version" not in data:
        raise StateError(
            f"{path}: not an orqsync state file",
            f"restore it from git or from {os.path.basename(path)}.backup",
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
        f"restore it from git or from {os.path.basename(path)}.backup",
    )


def _state_of(data: dict, span_records: Iterable[dict] | None, path: str) -> State:
    """The State of a parsed file, with the span records given (all, or a chosen few); a span
    recorded twice raises _Twice (the caller that has the text says on which lines)."""
    try:
        serial = data["serial"]
        if isinstance(serial, bool) or not isinstance(serial, int):
            raise StateError(
                f"{path}: the state file is damaged: serial is {json.dumps(serial)}, not a "
                "whole number",
                f"restore it from git or from {os.path.basename(path)}.backup",
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
                value = _value(item["value"])
                if type(value) is tuple or (type(value) is str and len(value) <= 64):
                    value = labels.setdefault((type(value), value), value)
                by = provenance.get(item["by"])
                if by is None:
                    raise StateError(
                        f"{path}: {record['trace_id']}/{record['span_id']} {key} names the "
                        f"provenance record {item['by']}, which is not in the file",
                        f"restore it from git or from {os.path.basename(path)}.backup",
                    )
                span[key] = Applied(value, shared.setdefault(metadata, metadata), by)
            ids = (record["trace_id"], record["span_id"])
            if ids in state.spans:
                raise _Twice(ids)
            state.spans[ids] = span
        for record in data["feedback"]:
            body = record["body"]
            state.feedback[body["id"]] = AppliedFeedback(
                feedback_pairs(body), provenance[record["by"]]
            )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        what = (
            f'the field "{exc.args[0]}" is missing'
            if isinstance(exc, KeyError)
            else ("a field holds a value of the wrong kind")
        )
        raise StateError(
            f"{path}: the state file is damaged: {what}",
            f"restore it from git or from {os.path.basename(path)}.backup",
        ) from None
    return state


_SPANS_OPEN = b'\n"spans": [\n'
_IN_SYNC_OPEN = b'\n"in_sync": {\n'
_NO_SPANS = b'\n"spans": [],\n"feedback": ['
_SPANS_CLOSE = b'\n],\n"feedback": ['
_PLACEHOLDER = b"lines indexed by StateSnapshot"  # JSON keeps a later "spans" key instead
# How render_state starts a span line. JSON escapes quotes inside strings, so this can only
# match at the start of a line; ids with escapes do not match and send the file to the
# full parser (the count of matches and lines then differs).
_SPAN_START = re.compile(rb'\{"trace_id":"([^"\\]*)","span_id":"([^"\\]*)",')
_SEARCHES = 4096  # binary searches of a state's lines before indexing them all is cheaper


class StateSnapshot:
    """A state file's bytes as read once: their hash, and where each span's line is, so that
    a plan of a few changed files parses a few lines, not a state of 100,000 spans.

    The lines are found by an index of them all, or, in a file whose in_sync record vouches
    that it is exactly as render_state wrote it (sorted, one span a line), by binary search.
    Anything but the layout render_state writes is parsed whole (the same result, slower).
    """

    def __init__(
        self,
        raw: bytes | None,
        content_hash: str,
        display: str,
        whole: State | None = None,
        body_hash: str = "",
    ) -> None:
        """`whole`: a state already read in full (one with a journal folded in); its lines are
        then not the file's, and `indexed` is False. `body_hash`: the hash of the text before
        the in_sync record (see `in_sync_start`), when there is one."""
        self.raw = b"" if whole is not None else raw
        self.hash = content_hash
        self.body_hash = body_hash
        self.display = display
        self._where: dict[SpanId, tuple[int, int]] | None = None
        self._lines: tuple[int, int] | None = None  # where the span lines are, once located
        self._searches = 0
        self._rest: dict | None = None
        self._record: InSync | None = None
        self._whole: State | None = whole
        if whole is not None:
            self._where = {span: (0, 0) for span in whole.spans}

    @property
    def indexed(self) -> bool:
        """True when line() gives the file's own lines (so their hashes mean something)."""
        if self.in_sync() is not None:
            return True
        self._index()
        return self._whole is None or self.raw is None

    def spans(self) -> Iterable[SpanId]:
        self._index()
        assert self._where is not None
        return self._where.keys()

    def line(self, span: SpanId) -> bytes:
        """The span's line of the file as written (no trailing comma); empty when absent."""
        if self._where is None and self._searches < _SEARCHES and self.in_sync() is not None:
            self._searches += 1  # past a few thousand, one index of all lines is cheaper
            begin, finish = self._search(span)
            return self.raw[begin:finish]  # type: ignore[index]
        self._index()
        assert self._where is not None
        where = self._where.get(span)
        if where is None or self.raw is None:
            return b""
        return self.raw[where[0] : where[1]]

    def _search(self, span: SpanId) -> tuple[int, int]:
        """Where the span's line is, by binary search of the sorted lines; (0, 0) for none."""
        assert self._lines is not None and self.raw is not None
        raw = self.raw
        low, high = self._lines  # `low` is a line's start; every line left starts before `high`
        end = high
        while low < high:
            middle = (low + high) // 2
            start = raw.rfind(b"\n", low, middle) + 1 or low  # of the line holding `middle`
            newline = raw.find(b"\n", start, end)
            finish = end if newline < 0 else newline - 1  # without the ","
            found = self._ids(start, finish)
            if found == span:
                return start, finish
            if found < span:
                if newline < 0:
                    break
                low = newline + 1
            else:
                high = start
        return 0, 0

    def _ids(self, start: int, finish: int) -> SpanId:
        """The ids a line starts with (render_state writes them first)."""
        assert self.raw is not None
        match = _SPAN_START.match(self.raw, start, finish)
        try:
            if match is not None:
                return match[1].decode(), match[2].decode()
            record = json.loads(self.raw[start:finish])  # ids with escapes
            return str(record["trace_id"]), str(record["span_id"])
        except (ValueError, KeyError, TypeError):
            line = self.raw.count(b"\n", 0, start) + 1
            raise StateError(
                f"{self.display}:{line}: the state file is damaged (a span line is not as "
                "orqsync writes it, though its in_sync record says the file is unchanged)",
                f"restore it from git or from {os.path.basename(self.display)}.backup",
            ) from None

    def _locate(self) -> bool:
        """Find the span lines and read the rest (header, provenance records, feedback, the
        in_sync record); False when the file is not laid out as render_state writes it."""
        if self._lines is not None:
            return True
        raw = self.raw
        if raw is None or self._whole is not None:
            return False
        start = raw.find(_SPANS_OPEN)
        end = raw.find(_SPANS_CLOSE, start)
        if start < 0 or end < 0:
            empty = raw.find(_NO_SPANS)
            if empty < 0:
                return False
            rest = raw
        else:
            rest = raw[:start] + b'\n"spans": "' + _PLACEHOLDER + b'",' + raw[end + 3 :]
        try:
            self._rest = _load_json(_utf8(rest, self.display), self.display)
        except StateError:
            return False  # the full parser says what is wrong, on the file's own lines
        if start < 0 or end < 0:
            if self._rest.get("spans") != []:
                return False
            self._lines = (empty, empty)
            return True
        if self._rest.get("spans") != _PLACEHOLDER.decode():
            return False  # a second "spans" key: let the full parser have its say
        self._lines = (start + len(_SPANS_OPEN), end)
        return True

    def _index(self) -> None:
        if self._where is not None:
            return
        raw = self.raw
        if raw is None:
            self._where, self._whole = {}, State.new()
            return
        if not self._locate():
            self._parse_whole()
            return
        assert self._lines is not None
        first, end = self._lines
        if first == end:
            self._where = {}  # no spans
            return
        starts = []
        ids = []
        try:
            for match in _SPAN_START.finditer(raw, first, end):
                starts.append(match.start())
                ids.append((match[1].decode(), match[2].decode()))
        except UnicodeDecodeError:
            self._parse_whole()  # raises the error that says what to do
            return
        whole_lines = len(starts) == raw.count(b"\n", first, end) + 1
        if (
            not whole_lines
            or (starts and starts[0] != first)
            or any(raw[position - 2 : position] != b",\n" for position in starts[1:])
        ):
            self._parse_whole()  # not exactly the lines render_state writes
            return
        ends = [position - 2 for position in starts[1:]] + [end]  # each line ends in ",\n"
        where = dict(zip(ids, zip(starts, ends, strict=True), strict=True))
        if len(where) != len(ids):  # a span on two lines (a dict keeps one): never merged
            self._parse_whole()  # raises the error that says on which lines
            return
        self._where = where

    def _parse_whole(self) -> None:
        assert self.raw is not None
        self._whole = parse_state(_utf8(self.raw, self.display), self.display)
        self._where = {span: (0, 0) for span in self._whole.spans}  # not lines: see `indexed`
        self._record = None

    def provenance_ids(self) -> frozenset[str]:
        """The ids of the provenance records in the file."""
        if not self._locate():
            self._index()
        if self._rest is None:
            return frozenset()
        try:
            return frozenset(str(record["id"]) for record in self._rest["provenance"])
        except (KeyError, TypeError):
            return frozenset()

    def in_sync(self) -> InSync | None:
        """The in_sync record of the complete apply that wrote this file, while the text
        before it is unchanged (a record about other lines says nothing); None otherwise,
        and for anything not quite as render_state writes it."""
        if self._record is not None:
            return self._record
        if not self.body_hash or self._whole is not None or not self._locate():
            return None
        assert self._rest is not None
        data = self._rest.get("in_sync")
        try:
            if data["body"] != self.body_hash:
                return None
            files = {
                str(name): (str(item["hash"]), int(item["spans"], 16))
                for name, item in data["files"].items()
            }
            self._record = InSync(str(data["context"]), files, int(data["spans"], 16))
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        return self._record

    def state(
        self,
        leave_out: set[SpanId] | frozenset[SpanId] = frozenset(),
        only: Iterable[SpanId] | None = None,
    ) -> State:
        """The state, without the spans in `leave_out` (a plan that knows they are in sync),
        or with only the spans `only` it has."""
        if only is not None and self._where is None and self.in_sync() is not None:
            lines = [self.line(span) for span in dict.fromkeys(only)]  # each span once
            if self._where is None:  # still no index: the lines were searched for
                assert self._rest is not None
                records = (json.loads(line) for line in lines if line)
                return _state_of(self._rest, records, self.display)
        self._index()
        assert self._where is not None
        if only is not None:
            kept = set(only).intersection(self._where)
            leave_out = {span for span in self._where if span not in kept}
        if self._whole is not None:
            whole = self._whole
            if not leave_out:
                return whole
            kept = {span: keys for span, keys in whole.spans.items() if span not in leave_out}
            return State(whole.lineage, whole.serial, kept, dict(whole.feedback))
        assert self._rest is not None and self.raw is not None
        try:
            return _state_of(self._rest, self._records(leave_out), self.display)
        except (_DamagedLine, _Twice):
            self._parse_whole()  # the full parser says where
            return self.state(leave_out)

    def _records(self, leave_out: set[SpanId] | frozenset[SpanId]) -> Iterator[dict]:
        """The span lines not left out, parsed one at a time (a list of 100,000 would double
        the memory of a plan)."""
        assert self._where is not None and self.raw is not None
        raw = self.raw
        for span, (begin, finish) in self._where.items():
            if span not in leave_out:
                try:
                    yield json.loads(raw[begin:finish])
                except ValueError:
                    raise _DamagedLine from None


def in_sync_start(raw: bytes) -> int:
    """Where the in_sync record starts (the text before it ends in a newline); 0 for none."""
    return raw.rfind(_IN_SYNC_OPEN) + 1


class _DamagedLine(Exception):
    """A span line that is not JSON (not a ValueError: _state_of must not take it for one)."""


def _utf8(raw: bytes, display: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise StateError(
            f"{display}: the state file is not UTF-8 text",
            f"restore it from git or from {os.path.basename(display)}.backup",
        ) from None


class StateFile:
    """The state file on disk with its journal and backup."""

    def __init__(self, path: str, display: str | None = None) -> None:
        self.path = path
        self.display = display or path
        self.journal_path = path + ".journal"
        self.backup_path = path + ".backup"

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def content_hash(self) -> str:
        """Hash of the state file and any journal: what a saved plan pins."""
        digest = hashlib.sha256()
        for path in (self.path, self.journal_path):
            if os.path.exists(path):
                digest.update(_read_bytes(path))
            digest.update(b"\0")
        return digest.hexdigest()

    def snapshot(self) -> StateSnapshot:
        """The state file as read once, for planning. With a journal left by an interrupted
        apply, the whole state is loaded and the journal folded in."""
        raw = _read_bytes(self.path) if os.path.exists(self.path) else None
        journal = _read_bytes(self.journal_path) if self.has_journal() else None
        digest = hashlib.sha256()
        body_hash = ""
        if raw is not None:
            start = in_sync_start(raw)
            if start:  # the hash of the text before the record, on the way (one pass)
                digest.update(memoryview(raw)[:start])
                body_hash = digest.copy().hexdigest()
                digest.update(memoryview(raw)[start:])
            else:
                digest.update(raw)
        digest.update(b"\0")
        if journal is not None:
            digest.update(journal)
        digest.update(b"\0")
        whole = self.load() if journal is not None else None
        return StateSnapshot(raw, digest.hexdigest(), self.display, whole, body_hash)

    def load(self) -> State:
        """The state with any journal left by an interrupted apply folded in (in memory)."""
        if os.path.exists(self.path):
            try:
                with open(self.path, encoding="utf-8") as handle:
                    text = handle.read()
            except UnicodeDecodeError:
                raise StateError(
                    f"{self.display}: the state file is not UTF-8 text",
                    f"restore it from git or from {os.path.basename(self.backup_path)}",
                ) from None
            state = parse_state(text, self.display)
        else:
            state = State.new()
        for entry in self.pending(state):
            state.fold(entry)
        return state

    def pending(self, state: State) -> list[dict]:
        """Journal entries that extend `state` (an interrupted apply's finished requests)."""
        entries = self._journal_entries()
        if not entries or not _extends(entries[0], state):
            return []  # none, or written against another state (already folded)
        return entries[1:]

    def recovery(self, state: State) -> tuple[int, int]:
        """(finished, in flight) requests of an interrupted apply that extends `state`."""
        entries = self.pending(state)
        started = {e["req"] for e in entries if e["op"] == "intent"}
        finished = {e.get("req") for e in entries if e["op"] != "intent"}
        return len(finished), len(started - finished)

    def _journal_entries(self) -> list[dict]:
        """Every whole line of the journal; a torn last line never counted as done."""
        if not os.path.exists(self.journal_path):
            return []
        entries: list[dict] = []
        with open(self.journal_path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.endswith("\n"):
                    break
                try:
                    entries.append(json.loads(line))
                except json.JSONDecodeError:
                    break
        return entries

    def has_journal(self) -> bool:
        return os.path.exists(self.journal_path)

    def write(self, state: State, in_sync: InSync | None = None) -> None:
        """Bump the serial and write atomically; keep the previous file as a backup.
        `in_sync`: only a complete apply knows which files the state is now in sync with."""
        state.serial += 1
        if not state.lineage:
            state.lineage = str(uuid.uuid4())
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, exist_ok=True)
        text = render_state(state, in_sync)
        if os.path.exists(self.path):
            atomic_write(self.backup_path, _read_bytes(self.path))
        atomic_write(self.path, text.encode("utf-8"))
        if os.path.exists(self.journal_path):
            os.unlink(self.journal_path)
        fsync_dir(directory)

    def open_journal(self, state: State) -> Journal:
        """Start the journal of an apply against `state`, or continue the one that extends it."""
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        entries = self._journal_entries()
        if entries and _extends(entries[0], state):
            keep = "".join(_dumps(entry) + "\n" for entry in entries)
            atomic_write(self.journal_path, keep.encode("utf-8"))  # drops a torn tail
            return Journal(self.journal_path, header=None, continued=len(entries) > 1)
        return Journal(self.journal_path, header=_begin(state), continued=False)

    def discard_journal(self) -> None:
        if os.path.exists(self.journal_path):
            os.unlink(self.journal_path)


def _begin(state: State) -> dict:
    return {"op": "begin", "lineage": state.lineage, "serial": state.serial}


def _extends(header: dict, state: State) -> bool:
    return (
        header.get("op") == "begin"
        and header.get("lineage") == state.lineage
        and header.get("serial") == state.serial
    )


class Journal:
    """Append-only record of finished requests.

    `record` returns once its line is durable. `submit` writes the line at once (so that it
    outlives the process) and returns; a flusher thread fsyncs what was submitted, a batch at
    a time, and only then hands it to `on_durable`, so that a request counts as done only
    once it is on disk while the threads that send requests never wait for a disk.
    """

    def __init__(self, path: str, header: dict | None, continued: bool) -> None:
        self.continued = continued  # it holds work of an earlier, interrupted apply
        self.path = path
        self._lock = threading.Lock()  # one writer at a time
        self._handle: IO[str] = open(path, "a" if header is None else "w", encoding="utf-8")  # noqa: SIM115
        self._submitted = threading.Condition()
        self._pending: list[object] = []
        self._closing = False
        self._flusher: threading.Thread | None = None
        self._on_durable: Callable[[list[object]], None] | None = None
        self._failure: BaseException | None = None
        if header is not None:
            self.record(header)

    def start(self, on_durable: Callable[[list[object]], None]) -> None:
        """Start the flusher that passes the tokens of durable submissions to `on_durable`."""
        self._on_durable = on_durable
        self._flusher = threading.Thread(target=self._flush, name="journal", daemon=True)
        self._flusher.start()

    def submit(self, entry: dict, token: object) -> None:
        """Write a success now; `token` reaches `on_durable` once the line is on disk.
        Raises the flusher's failure, if it had one, so that the run stops at once (the line
        is written all the same: the request did succeed, and the next apply folds it in)."""
        self._write(_dumps(entry) + "\n")
        if self._failure is not None:
            raise self._failure
        with self._submitted:
            self._pending.append(token)
            self._submitted.notify()

    def _flush(self) -> None:
        assert self._on_durable is not None
        try:
            while True:
                with self._submitted:
                    while not self._pending and not self._closing:
                        self._submitted.wait()
                    if not self._pending:
                        return  # closing, and everything submitted is done
                    batch, self._pending = self._pending, []
                try:
                    os.fsync(self._handle.fileno())  # covers every line written before it
                except OSError as exc:
                    self._failure = StateError(
                        f"{self.path}: the journal could not be written to disk ({exc.strerror})",
                        "fix the disk, then run apply again: the requests sent so far are "
                        "in the journal, and the next apply finishes the work",
                    )
                    return
                self._on_durable(batch)
        except BaseException as exc:  # raised by submit() and close(): nothing passes silently
            self._failure = exc

    def _write(self, line: str) -> None:
        with self._lock:
            self._handle.write(line)
            self._handle.flush()  # from here on, the line outlives the process

    def intend(self, request_id: str) -> None:
        """A request is about to be sent. Not fsynced: losing it loses only a statistic."""
        # What _dumps gives for {"op": "intent", "req": request_id}: ids are hex, digits, dots.
        self._write(f'{{"op":"intent","req":"{request_id}"}}\n')

    def record(self, entry: dict) -> None:
        """Write a line and wait until it is on disk (the header; used before the flusher)."""
        self._write(_dumps(entry) + "\n")
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        """Make every submission durable and done, then close; re-raise a flusher failure."""
        if self._flusher is not None:
            with self._submitted:
                self._closing = True
                self._submitted.notify()
            self._flusher.join()
        self._handle.close()
        if self._failure is not None:
            raise self._failure


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def atomic_write(path: str, data: bytes) -> None:
    """Replace `path` with `data` in one step (temp file, fsync, rename): readers see the old
    file or the new one, never a part."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def fsync_dir(directory: str) -> None:
    """Make a new file's directory entry durable (best effort: some systems refuse)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
