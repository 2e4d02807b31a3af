"""A fast reader for annotation files in the common block layout.

The strict reader in desired.py (PyYAML nodes, JSON Schema, the checks of values.py) is the
reference, and the only source of problem messages. This module reads the layout that people
and `orqsync import` write:

    version: 1
    metadata: {reviewerId: alice}        # optional; the head is read by the strict reader
    spans:
      - trace_id: cb2289e8eae4e587f8bba591734cc831
        span_id: 274c568b4fffdfc5
        metadata: {identityId: user-1}   # optional, flow form
        annotations:
          rating: good                   # one line each: a plain or simply quoted scalar,
          defects: [spelling, grammar]   # or a flow list of plain scalars

It returns a file's spans only when it understood every line and every value is valid; for
anything else (another layout, a tab, an anchor, a value the API would refuse) it returns None
and the strict reader reads the file. A differential test holds the two to the same results.
Value checks are memoised per (key, text as written): labels repeat, so most cost a lookup.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from yaml.nodes import MappingNode, ScalarNode

from orqsync.errors import Problem
from orqsync.model import Annotation, Metadata, SpanId
from orqsync.source.definitions import Definition
from orqsync.source.ids import DEFAULT_ID_FORMAT, id_problem
from orqsync.source.values import canonical_number, js_length
from orqsync.source.yamlfile import (
    BOOL_TEXTS,
    NULL_TEXTS,
    Document,
    mapping_items,
    parse,
    resolve_plain,
)

FileMetadata = Callable[[Document, "MappingNode | None"], Metadata]

METADATA_FIELDS = frozenset(("identityId", "identity_id", "source", "reviewerId"))
HEAD_FIELDS = frozenset(("version", "metadata"))

# Characters that make the strict reader's job different from ours send the file to it: line
# breaks other than \n (YAML also breaks lines at \r, NEL, LS, PS), tabs, a byte order mark
# inside the text, and anything YAML does not allow in a stream. Checked on the UTF-8 bytes:
# deleting the usual ASCII bytes (at memory speed) leaves control bytes and the few non-ASCII
# characters, in which a short search finds the encodings of U+0080-U+009F, LS, PS, a byte
# order mark, U+FFFE and U+FFFF. Deleting ASCII bytes cannot join two characters into one of
# those: each starts with a lead byte, and a lead byte is always followed by its own
# continuation bytes, which are not ASCII.
_ASCII_USUAL = bytes([0x0A, *range(0x20, 0x7F)])
_NOT_ASCII = bytes(range(0x80, 0x100))
_UNUSUAL_UTF8 = re.compile(rb"\xc2[\x80-\x9f]|\xe2\x80[\xa8\xa9]|\xef\xbb\xbf|\xef\xbf[\xbe\xbf]")
_BOM = b"\xef\xbb\xbf"


def _unusual(text: str, raw: bytes | None = None) -> bool:
    """Whether `text` holds a character that sends it to the strict reader. `raw`, when given,
    is the file's bytes that `text` was decoded from (decode_text drops a leading byte order
    mark from the text, so it is dropped here too)."""
    if raw is None:
        raw = text.encode("utf-8")
    elif raw.startswith(_BOM):
        raw = raw[len(_BOM) :]  # decode_text took it off the text
    rest = raw.translate(None, _ASCII_USUAL)
    if not rest:
        return False
    return bool(rest.translate(None, _NOT_ASCII)) or _UNUSUAL_UTF8.search(rest) is not None


_SPANS_LINE = re.compile(r"^spans:(?:[ ]+#[^\n]*|[ ]*)\n", re.M)
_SPAN = re.compile(
    r"""
    (?P<pre>(?:[ ]*(?:\#[^\n]*)?\n)*)                # blank and comment lines
    (?P<ind>[ ]*)-[ ]trace_id:[ ](?P<t>[^\n]*)\n
    (?P=ind)[ ][ ]span_id:[ ](?P<s>[^\n]*)\n
    (?:(?P=ind)[ ][ ]metadata:[ ](?P<m>[^\n]*)\n)?
    (?P=ind)[ ][ ]annotations:(?:[ ]+\#[^\n]*|[ ]*)\n
    (?P<ann>
      (?P<ai>(?P=ind)[ ]{3,})[A-Za-z_][^\n]*\n
      (?:(?P=ai)[A-Za-z_][^\n]*\n|(?P=ai)[ ]*-[ ][^\n]*\n|[ ]*(?:\#[^\n]*)?\n)*
    )
    """,
    re.X,
)
_TAIL = re.compile(r"(?:[ ]*(?:#[^\n]*)?\n)*\Z")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*\Z")
# Double-quoted scalars may escape only ", \\ and / here; other escapes go to the strict reader.
_QUOTED = re.compile(r"""(?:"((?:[^"\\]|\\["\\/])*)"|'((?:[^']|'')*)')[ ]*(?:[ ]\#.*)?\Z""")
_FLOW_LIST = re.compile(r"\[(.*)\][ ]*(?:[ ]#.*)?\Z")
_FLOW_ITEM = re.compile(
    r"""[ ]*(?:"((?:[^"\\]|\\["\\/])*)"|'((?:[^']|'')*)'|([^,"'\[\]{}#]*?))[ ]*(,|\Z)"""
)
_FLOW_MAP = re.compile(r"\{([^\[\]{}\"'#]*)\}[ ]*(?:[ ]#.*)?\Z")
# Plain scalars may not start with an indicator; '-' may start one when no space follows.
_PLAIN_START = re.compile(r"[^\-?:,\[\]{}#&*!|>'\"%@`\s]|-[^\s\-]")

PLAIN = ""  # the style of a plain scalar (PyYAML's None); quoted ones are '"' or "'"


class _Bail(Exception):
    """The file is not one this reader can vouch for: the strict reader takes it."""


_INVALID = object()  # a value the strict reader must report


class _Noted(NamedTuple):
    """A value written in a lenient spelling that the strict reader also takes, with the
    warning it gives (values.check_value); it points at the value, on the key's line."""

    value: object
    message: str
    hint: str


def _plain(raw: str, flow: bool) -> str:
    """The text of a one-line plain scalar as YAML reads it, or _Bail."""
    cut = raw.find(" #")
    text = (raw if cut < 0 else raw[:cut]).strip(" ")
    if not text or not _PLAIN_START.match(text) or ": " in text or text.endswith(":"):
        raise _Bail
    if text == "<<":
        raise _Bail  # YAML's merge key: the strict reader refuses it
    if flow and (":" in text or "," in text):
        raise _Bail
    return text


def scalar(raw: str) -> tuple[str, str]:
    """(text, style) of the rest of a line holding one scalar; _Bail if it is anything else."""
    first = raw[:1]
    if first == '"' or first == "'":
        match = _QUOTED.match(raw)
        if match is None:
            raise _Bail
        if first == '"':
            return _unescape(match.group(1)), '"'
        return match.group(2).replace("''", "'"), "'"
    return _plain(raw, flow=False), PLAIN


def _simple_text(raw: str) -> bool:
    """Whether `raw` is a plain scalar that is exactly the text as written, not null: it starts
    with a letter or digit and holds no ':' or '#' (so no mapping and no comment), nor spaces
    at its end. Most free text is; scalar() gives such text unchanged."""
    return (
        raw[:1].isalnum()
        and raw[-1] != " "
        and ":" not in raw
        and "#" not in raw
        and raw not in NULL_TEXTS
    )


def _unescape(text: str) -> str:
    """The escapes _QUOTED lets through: \\\\, \\" and \\/ (NUL cannot occur in the text)."""
    if "\\" not in text:
        return text
    return text.replace("\\\\", "\0").replace('\\"', '"').replace("\\/", "/").replace("\0", "\\")


def flow_list(raw: str) -> list[tuple[str, str]]:
    """(text, style) of the items of a one-line flow list `[a, "b", 'c']`; _Bail otherwise."""
    match = _FLOW_LIST.match(raw)
    if match is None:
        raise _Bail
    inner = match.group(1)
    items: list[tuple[str, str]] = []
    position = 0
    while True:
        item = _FLOW_ITEM.match(inner, position)
        if item is None:
            raise _Bail
        double, single, plain, comma = item.groups()
        if double is not None:
            items.append((_unescape(double), '"'))
        elif single is not None:
            items.append((single.replace("''", "'"), "'"))
        elif plain.strip(" "):
            items.append((_plain(plain, flow=True), PLAIN))
        elif comma or not items:
            raise _Bail  # an empty item ([a, , b] or [])
        if not comma:
            return items  # `[a, b, ]`: YAML allows one trailing comma
        position = item.end()


@dataclass(frozen=True, slots=True)
class FastFile:
    """A file the fast reader vouches for: its spans, and the warnings the strict reader would
    give about it (values in a lenient spelling)."""

    spans: list[tuple[SpanId, dict[str, Annotation]]]
    warnings: list[Problem]


class FastReader:
    """Reads the files of one project; value checks are memoised across files."""

    def __init__(
        self,
        definitions: dict[str, Definition],
        string_limit: int,
        owned: Callable[[str], bool],
        merge_metadata: Callable[[Metadata, dict[str, str]], Metadata],
        id_format: str = DEFAULT_ID_FORMAT,
    ) -> None:
        self.definitions = definitions
        self.id_format = id_format
        self._good_traces: set[str] = set()  # trace ids repeat: each is checked once
        self.string_limit = string_limit
        self.owned = owned
        self.merge_metadata = merge_metadata
        # (key, rest of line) -> (key, canonical value): labels repeat, so most cost a lookup
        self._known: dict[tuple[str, str], tuple[str, object]] = {}
        self._keys: dict[str, tuple[str, bool]] = {}  # key -> (key, whether it is free text)
        self._metadata: dict[tuple[Metadata, str], Metadata] = {}
        self._numbers: list[int] = []

    def read(
        self, text: str, path: str, file_metadata: FileMetadata, raw: bytes | None = None
    ) -> FastFile | None:
        """The file's spans, or None when the strict reader must read it. `raw`, when given,
        is the file's content, which `text` was decoded from (it saves encoding it again)."""
        try:
            return self._read(text, path, file_metadata, raw)
        except _Bail:
            return None

    def _read(
        self, text: str, path: str, file_metadata: FileMetadata, raw: bytes | None
    ) -> FastFile:
        if _unusual(text, raw):
            raise _Bail
        if not text.endswith("\n"):
            text += "\n"
        found = _SPANS_LINE.search(text)
        if found is None:
            raise _Bail
        head, metadata_node = self._head(text[: found.end()], path)
        base = file_metadata(head, metadata_node)
        if head.problems:
            raise _Bail
        line = text.count("\n", 0, found.end()) + 1
        position = found.end()
        indent = None
        spans: list[tuple[SpanId, dict[str, Annotation]]] = []
        self._warnings: list[Problem] = []
        # One span after the other, each where the last ended (a search from each position,
        # which finditer does, took time cubic in a run of blank-looking lines: the fuzzer's
        # 1 MB file took a minute)
        while (match := _SPAN.match(text, position)) is not None:
            pre, ind, trace, span, metadata, block, ai = match.groups()
            if indent is None:
                indent = ind
            elif ind != indent:
                raise _Bail
            line += pre.count("\n") if pre else 0
            first = line + (4 if metadata is not None else 3)
            spans.append(
                (
                    (self._span_id(trace, "trace_id"), self._span_id(span, "span_id")),
                    self._annotations(
                        block,
                        len(ai),
                        first,
                        base if metadata is None else self._span_metadata(base, metadata),
                        path,
                    ),
                )
            )
            line = first + block.count("\n")
            position = match.end()
        if not spans or not _TAIL.match(text, position):
            raise _Bail  # no span at all: `spans:` is empty, which the strict reader refuses
        return FastFile(spans, self._warnings)

    def _span_id(self, raw: str, what: str) -> str:
        """A trace_id or span_id as the strict reader takes it, of the project's id_format;
        anything it would refuse is left to it, to say where and why."""
        text = _id(raw)
        if text in self._good_traces and what == "trace_id":
            return text
        if id_problem(text, what, self.id_format) is not None:
            raise _Bail
        if what == "trace_id":
            self._good_traces.add(text)
        return text

    def _head(self, text: str, path: str) -> tuple[Document, MappingNode | None]:
        """Everything up to the `spans:` line, read by the strict reader (so that the file's
        root is a mapping like the strict reader's): version and file metadata."""
        if "!" in text or "&" in text or "*" in text:  # tags, anchors, aliases
            raise _Bail
        head = parse(text, path)
        if head.problems or not isinstance(head.root, MappingNode):
            raise _Bail
        items = list(mapping_items(head, head.root))
        if head.problems or not items or items[-1][0] != "spans":
            raise _Bail
        fields = {name: value for name, _, value in items[:-1]}
        if not set(fields) <= HEAD_FIELDS:
            raise _Bail
        version = fields.get("version")
        if not isinstance(version, ScalarNode) or version.style or version.value != "1":
            raise _Bail
        metadata = fields.get("metadata")
        if metadata is None:
            return head, None
        if not isinstance(metadata, MappingNode):
            raise _Bail
        for name, _, value in mapping_items(head, metadata):
            if name not in METADATA_FIELDS or not isinstance(value, ScalarNode):
                raise _Bail
            resolved = value.value if value.style else resolve_plain(value.value)
            if resolved is None or isinstance(resolved, bool):
                raise _Bail
        if head.problems:
            raise _Bail
        return head, metadata

    def _annotations(
        self, block: str, width: int, first: int, metadata: Metadata, path: str
    ) -> dict[str, Annotation]:
        """{key: annotation} of one span's `annotations:` block."""
        pattern = _ENTRIES.get(width)
        if pattern is None:
            # `key: value` lines with keys as _KEY takes them; any other line (a comment, a
            # block list, another key) leaves the count short: _numbered_entries reads those.
            pattern = _ENTRIES[width] = re.compile(
                rf"^ {{{width}}}([A-Za-z_][A-Za-z0-9_.\-/]*): ([^\n]*)\n", re.M
            )
        entries: list[tuple[str, str]] = pattern.findall(block)
        if len(entries) == block.count("\n"):
            numbers = self._line_numbers(first, len(entries))
        else:
            entries, numbers = _numbered_entries(block, width, first)
        known = self._known
        new, make = tuple.__new__, Annotation  # a named tuple: skip its Python __new__
        annotations: dict[str, Annotation] = {}
        for entry, number in zip(entries, numbers, strict=True):
            found = known.get(entry)
            if found is not None:
                key, value = found
            else:
                key, value = self._entry(entry)
                if type(value) is _Noted:  # never remembered: each place gets its warning
                    column = width + len(key) + 3  # the value's: `key: value` at `width` spaces
                    self._warnings.append(
                        Problem(path, number, column, value.message, value.hint, "warning")
                    )
                    value = value.value
            annotations[key] = new(make, (value, metadata, path, number))
        if len(annotations) != len(entries):
            raise _Bail  # a key twice in one span
        return annotations

    def _line_numbers(self, first: int, count: int) -> list[int]:
        """[first, first + 1, ...], count of them. Every file has a line 20, 21...: one int
        object for each number, instead of one for each annotation, saves memory and time."""
        end = first + count
        numbers = self._numbers
        if end > len(numbers):
            numbers.extend(range(len(numbers), end + 1000))
        return numbers[first:end]

    def _entry(self, entry: tuple[str, str]) -> tuple[str, object]:
        """(key, canonical value) of an entry (key, rest of line) not seen before; remembered
        unless the key holds free text, which is mostly distinct (remembering it would cost
        more than it saves). The key is one string object for all the spans that use it."""
        key, raw = entry
        known_key = self._keys.get(key)
        if known_key is None:
            if key not in self.definitions or not _KEY.match(key) or not self.owned(key):
                raise _Bail
            known_key = self._keys[key] = (key, self.definitions[key].type == "text")
        key, free_text = known_key
        if free_text and _simple_text(raw):
            # What _check gives for such text, without its general steps: it is the value.
            if len(raw) > self.string_limit:
                raise _Bail
            return (key, raw)
        value = self._check(key, raw)
        if value is _INVALID:
            raise _Bail
        found = (key, value)
        if not free_text and type(value) is not _Noted:
            self._known[entry] = found
        return found

    def _span_metadata(self, base: Metadata, raw: str) -> Metadata:
        known = self._metadata.get((base, raw))
        if known is not None:
            return known
        match = _FLOW_MAP.match(raw)
        if match is None:
            raise _Bail
        fields = _flow_mapping(match.group(1))
        merged = self.merge_metadata(base, fields)
        self._metadata[(base, raw)] = merged
        return merged

    def _check(self, key: str, raw: str) -> object:
        """The canonical value of `raw` under the key's definition, or _INVALID."""
        definition = self.definitions[key]
        kind = definition.type
        try:
            if raw[:1] == _BLOCK:
                # A one-item block list for a single select is warned about at its item's
                # line: left to the strict reader.
                chosen = _select(definition, [scalar(item) for item in raw[1:].split(_BLOCK)])
                return _INVALID if type(chosen) is _Noted else chosen
            if raw[:1] == "[":
                return _select(definition, flow_list(raw))
            text, style = scalar(raw)
        except _Bail:
            return _INVALID
        if not style and text in NULL_TEXTS:
            return _INVALID
        if kind == "single_select":
            return text if text in definition.options else _INVALID
        if kind == "multi_select":
            if text not in definition.options:
                return _INVALID
            return _Noted(
                (text,),
                f'"{definition.key}" is a multi select: one option is read as a list of it',
                f"write it as a list: [{text}]",
            )
        if kind == "text":
            return text if js_length(text) <= self.string_limit else _INVALID
        if style:
            return _INVALID  # a quoted number or boolean is text
        value = resolve_plain(text)
        if kind == "boolean":
            return value if isinstance(value, bool) else _INVALID
        if kind == "range":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return _INVALID
            if math.isnan(value) or math.isinf(value):
                return _INVALID
            assert definition.min is not None and definition.max is not None
            if not definition.min <= value <= definition.max:
                return _INVALID
            return canonical_number(value)
        return _INVALID


def _numbered_entries(
    block: str, width: int, first: int
) -> tuple[list[tuple[str, str]], list[int]]:
    """The entries (key, rest of line) of an annotation block with comments, blank lines or
    block lists (`key:` then `- item` lines, whose items come back joined by _BLOCK), and
    their line numbers."""
    entries: list[tuple[str, str]] = []
    numbers: list[int] = []
    lines = block.split("\n")[:-1]
    offset = 0
    while offset < len(lines):
        entry = lines[offset]
        if entry[width : width + 1] in ("", " ", "#"):
            if entry.strip(" ")[:1] not in ("", "#"):
                raise _Bail  # a line deeper than the keys that is not part of a block list
            offset += 1
            continue
        key, sep, raw = entry[width:].partition(": ")
        if not sep:
            if not entry.endswith(":"):
                raise _Bail
            key, raw, offset = entry[width:-1], "", offset + 1
            items, indent = [], None
            while offset < len(lines):
                item = lines[offset]
                stripped = item.lstrip(" ")
                if not stripped.startswith("- ") or len(item) - len(stripped) < width:
                    break
                if indent is None:
                    indent = len(item) - len(stripped)
                elif len(item) - len(stripped) != indent:
                    raise _Bail
                items.append(stripped[2:])
                offset += 1
            if not items:
                raise _Bail
            entries.append((key, _BLOCK + _BLOCK.join(items)))
            numbers.append(first + offset - len(items) - 1)
            continue
        entries.append((key, raw))
        numbers.append(first + offset)
        offset += 1
    return entries, numbers


_BLOCK = "\x00"  # joins the items of a block list (the text can hold no NUL: see _unusual)


_ENTRIES: dict[int, re.Pattern[str]] = {}
_NOT_IDS = NULL_TEXTS | BOOL_TEXTS


def _select(definition: Definition, items: list[tuple[str, str]]) -> object:
    """The canonical value of a block list's items (text, style) under a select definition."""
    if any(not style and text in NULL_TEXTS for text, style in items):
        return _INVALID
    texts = [text for text, _ in items]
    if definition.type == "multi_select" and all(t in definition.options for t in texts):
        chosen = tuple(sorted(set(texts)))
        # A repeat is warned about at the repeated item: left to the strict reader.
        return chosen if len(chosen) == len(texts) else _INVALID
    if definition.type == "single_select" and len(texts) == 1 and texts[0] in definition.options:
        return _Noted(
            texts[0],
            f'"{definition.key}" is a single select: a list of one option is read as that option',
            "write the option without brackets",
        )
    return _INVALID  # the strict reader says what is wrong


def _id(raw: str) -> str:
    """An id as the strict reader takes it: any text, numbers as written; never empty."""
    if raw.isalnum() and raw not in _NOT_IDS:
        return raw  # the common case: hex ids
    text, style = scalar(raw)
    if (not style and text in _NOT_IDS) or not text.strip() or text != text.strip():
        raise _Bail
    return text


def _flow_mapping(inner: str) -> dict[str, str]:
    """`{name: value, ...}` of span metadata, as the strict reader would take it."""
    fields: dict[str, str] = {}
    if not inner.strip(" "):
        return fields
    parts = [part.strip(" ") for part in inner.split(",")]
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    for part in parts:
        name, sep, value = part.partition(": ")
        value = value.strip(" ")
        if not sep or name not in METADATA_FIELDS or name in fields or not value:
            raise _Bail
        if not _PLAIN_START.match(value) or ":" in value or value == "<<":
            raise _Bail
        resolved = resolve_plain(value)
        if resolved is None or isinstance(resolved, bool):
            raise _Bail
        fields[name] = value
    return fields
