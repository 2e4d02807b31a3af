"""StateSnapshot: a state file's lines, indexed without parsing them all."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from orqsync.errors import StateError
from orqsync.model import SpanId
from orqsync.state import codec
from orqsync.state.codec import _load_json, _state_of, _Twice, parse_state, restore_hint
from orqsync.state.model import Applied, InSync, State

_SPANS_OPEN = codec.SPANS_OPEN.encode()
_IN_SYNC_OPEN = codec.IN_SYNC_OPEN.encode()
_NO_SPANS = codec.NO_SPANS.encode()
_SPANS_CLOSE = codec.SPANS_CLOSE.encode()
_PLACEHOLDER = b"lines indexed by StateSnapshot"  # JSON keeps a later "spans" key instead
# How render_state starts a span line. JSON escapes quotes inside strings, so this can only
# match at the start of a line; ids with escapes do not match and send the file to the
# full parser (the count of matches and lines then differs).
_SPAN_START = re.compile(rb'\{"trace_id":"([^"\\]*)","span_id":"([^"\\]*)",')
_BY = re.compile(rb'"by":"([^"\\]*)"')  # how a span line refers to provenance records
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
        self._rest: dict[str, Any] | None = None
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
                restore_hint(self.display),
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
        # Parsed JSON: anything but the expected mapping is caught below (None included).
        data: Any = self._rest.get("in_sync")
        try:
            if data["body"] != self.body_hash:
                return None
            record = InSync.from_json(data)
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        if record.spans is None:
            return None  # a state's record always has the sum of its spans
        self._record = record
        return record

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
            spans = {span: keys for span, keys in whole.spans.items() if span not in leave_out}
            return State(
                whole.lineage, whole.serial, spans, dict(whole.feedback), queues=dict(whole.queues)
            )
        assert self._rest is not None and self.raw is not None
        try:
            return _state_of(self._rest, self._records(leave_out), self.display)
        except (_DamagedLine, _Twice):
            self._parse_whole()  # the full parser says where
            return self.state(leave_out)

    def _records(self, leave_out: set[SpanId] | frozenset[SpanId]) -> Iterator[dict[str, Any]]:
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


def provenance_refs(lines: bytes) -> tuple[str, ...]:
    """The provenance ids that span lines (as `StateSnapshot.line` gives them) refer to."""
    return tuple(sorted({found.decode() for found in _BY.findall(lines)}))


def read_span(text: str, span: SpanId, display: str) -> tuple[State, dict[str, Applied] | None]:
    """The state's header (lineage, serial; no spans) and the record of one span, or None.

    Fast path: the state has one span per line, so the lines naming the span id are cut out
    and parsed with the header and the provenance records, through `parse_state` itself. Text
    that does not have render_state's layout is parsed whole, and so is text where the span
    is recorded twice or a merge conflict reaches its line or the header: the whole parse
    refuses it and says where. `orqsync state blame` reads the revisions of the history so,
    where damage elsewhere in the file does not hide the span's record.
    """
    start = text.find(codec.SPANS_OPEN) if text.startswith(codec.HEAD) else -1
    body = start + len(codec.SPANS_OPEN)
    end = text.find(codec.SPANS_CLOSE, body - 1) if start >= 0 else -1
    if start >= 0 and end >= 0:
        lines = []
        for needle in {
            '"span_id":' + json.dumps(span[1], ensure_ascii=False),
            '"span_id":' + json.dumps(span[1]),
        }:
            pos = text.find(needle, body, end)
            while pos >= 0:
                line_start = text.rfind("\n", body - 1, pos) + 1
                line_end = text.find("\n", pos, end + 1)
                line_end = end if line_end < 0 else line_end
                lines.append(text[line_start:line_end].removesuffix(","))
                pos = text.find(needle, line_end, end)
        inner = "\n" + ",\n".join(lines) + "\n" if lines else ""
        mini = text[:start] + '\n"spans": [' + inner + '],\n"feedback": []\n}\n'
        try:
            state = parse_state(mini, display)
        except StateError:
            pass  # not the layout it looked like: the whole parse below decides
        else:
            return state, state.spans.get(span)
    state = parse_state(text, display)
    record = state.spans.get(span)
    state.spans.clear()
    state.feedback.clear()
    return state, record


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
            restore_hint(display),
        ) from None
