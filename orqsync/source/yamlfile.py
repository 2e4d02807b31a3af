"""Strict YAML reading: nodes with line and column, no surprises.

PyYAML composes the node graph (in C when libyaml is there); the conversion to Python values is
ours, so that the rules of docs/design.md, section 3 hold everywhere:

- duplicate mapping keys are problems, not a silent last-one-wins;
- only ``true``/``false`` are booleans (YAML 1.2), ``yes``/``no``/``on``/``off`` stay text;
- dates are never resolved: they stay text;
- aliases may not expand past a bound (no billion laughs);
- files must be UTF-8.

Where a caller wants a string (ids, options, text values) it reads the scalar's own text with
``scalar_text`` instead of the resolved value, so ``no`` or ``0123`` arrive exactly as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypeVar, cast

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from orqsync.errors import Problem

Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# The most nodes that aliases may add to a document beyond those written out.
ALIAS_EXPANSION_LIMIT = 10_000
# The deepest nesting of lists and mappings (orqsync's files need fewer than ten levels).
MAX_DEPTH = 64

_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_NULL = {"", "~", "null", "Null", "NULL"}
NULL_TEXTS = frozenset(_NULL)  # plain scalars that are null (YAML 1.2 core)
BOOL_TEXTS = frozenset(_BOOL)  # plain scalars that are booleans
_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_SPECIAL_FLOAT = {
    ".inf": float("inf"),
    "+.inf": float("inf"),
    "-.inf": float("-inf"),
    ".Inf": float("inf"),
    "-.Inf": float("-inf"),
    ".nan": float("nan"),
    ".NaN": float("nan"),
}
_STANDARD_TAG = "tag:yaml.org,2002:"
# PyYAML resolves a plain ``<<`` to the merge tag wherever it stands; as a key it is refused in
# `mapping_items`, as a value it is the text "<<" (YAML 1.2 has no merge keys).
_STANDARD_TAGS = (
    "str",
    "int",
    "float",
    "bool",
    "null",
    "timestamp",
    "seq",
    "map",
    "value",
    "merge",
)
_ALLOWED_TAGS = frozenset(["!", *(_STANDARD_TAG + name for name in _STANDARD_TAGS)])


@dataclass(slots=True)
class Document:
    """A parsed file: its path, its root node (None when empty) and what was wrong in it."""

    path: str
    root: Node | None
    problems: list[Problem] = field(default_factory=list)

    def problem(self, node: Node | yaml.Event | None, message: str, hint: str = "") -> Problem:
        line, column = position(node)
        found = Problem(self.path, line, column, message, hint)
        self.problems.append(found)
        return found


def position(node: Node | yaml.Event | None) -> tuple[int | None, int | None]:
    """1-based line and column of a node (or of a parser event)."""
    if node is None:
        return None, None
    mark = cast(yaml.Mark, node.start_mark)  # the parser marks every node and event it makes
    return mark.line + 1, mark.column + 1


def read_text(path: str, display: str | None = None) -> tuple[str | None, list[Problem]]:
    """The file's text, or the problem that stops it being read."""
    shown = display or path
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return None, [Problem(shown, None, None, "file not found", "check the path")]
    except OSError as exc:
        return None, [Problem(shown, None, None, f"cannot read the file: {exc.strerror}")]
    return decode_text(raw, shown)


def decode_text(raw: bytes, shown: str) -> tuple[str | None, list[Problem]]:
    """A file's bytes as text, or the problem that stops them being read."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None, [
            Problem(shown, 1, 1, "the file is UTF-16, not UTF-8", "save the file as UTF-8")
        ]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, [
            Problem(
                shown,
                line,
                column,
                f"the file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
                "save the file as UTF-8",
            )
        ]
    return text.removeprefix("\ufeff"), []


def _syntax_problem(text: str, path: str, exc: yaml.MarkedYAMLError) -> Problem:
    """libyaml's words, with where the broken construct started and a hint that fits."""
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else None
    column = mark.column + 1 if mark else None
    what = exc.problem or exc.context or "invalid YAML"
    hint = "fix the YAML syntax here"
    if what == "but found another document":
        what = "the file holds more than one YAML document"
        hint = 'remove the "---" line, or move the second document to a file of its own'
    elif "cannot start any token" in what and mark and _char_at(text, mark) == "\t":
        what = "a tab character is not allowed here"
        hint = "indent with spaces, not tabs"
    elif what.startswith("mapping values are not allowed"):
        hint = 'put the value in quotes if it contains ": "'
    elif exc.context and exc.context_mark and exc.problem:
        start = exc.context_mark
        what += f" ({exc.context} that starts at line {start.line + 1}, column {start.column + 1})"
    return Problem(path, line, column, f"invalid YAML: {what}", hint)


_TOO_DEEP = (
    "lists and mappings are nested too deeply",
    "write the value with fewer levels of nesting",
)

_Located = TypeVar("_Located", Node, yaml.Event)


def _outermost_flow(stack: list[_Located], deepest: _Located) -> _Located:
    """Where too deep a nesting is reported: the outermost ``[``/``{`` that holds it (the start
    of a one-line value that runs away), else the collection one level too deep."""
    return next((item for item in stack if getattr(item, "flow_style", False)), deepest)


def _too_deep(text: str) -> yaml.Event | None:
    """The event to report when collections nest deeper than MAX_DEPTH before the first syntax
    error, if they do.

    The pure-Python parser reads events one at a time without recursion; libyaml's cannot be
    used here, as its scanner reads a whole line of ``[`` ahead and hits its own limit first.
    """
    stack: list[yaml.Event] = []
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                if len(stack) >= MAX_DEPTH:
                    return _outermost_flow(stack, event)
                stack.append(event)
            elif isinstance(event, yaml.CollectionEndEvent):
                stack.pop()
    except yaml.YAMLError:
        return None
    return None


def _char_at(text: str, mark: yaml.Mark) -> str:
    lines = text.split("\n")
    if mark.line < len(lines) and mark.column < len(lines[mark.line]):
        return lines[mark.line][mark.column]
    return ""


def parse(text: str, path: str) -> Document:
    """Compose one YAML document; a syntax error becomes a located problem."""
    doc = Document(path, None)
    try:
        doc.root = yaml.compose(text, Loader=Loader)
    except (yaml.MarkedYAMLError, RecursionError) as exc:
        # PyYAML has limits of its own on nesting, and they differ between releases: libyaml
        # 0.2.5 as bundled by PyYAML 6.0.4 stops at 1,000 levels with its own words, and the
        # pure-Python composer recurses until Python's stack runs out. Whenever composing
        # fails, the file is read again as a stream of events, which never recurses and stops
        # at MAX_DEPTH, so nesting is reported the same way whatever PyYAML does.
        too_deep = _too_deep(text)
        if too_deep is not None:
            doc.problem(too_deep, *_TOO_DEEP)
        elif isinstance(exc, yaml.MarkedYAMLError):
            doc.problems.append(_syntax_problem(text, path, exc))
        else:  # pragma: no cover - a recursion without deep nesting would be a PyYAML bug
            raise
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        before = text[: exc.position]
        line = before.count("\n") + 1
        column = exc.position - (before.rfind("\n") + 1) + 1
        doc.problems.append(
            Problem(
                path,
                line,
                column,
                f"invalid YAML: unacceptable character #x{exc.character:04x}: {exc.reason}",
                "remove the character",
            )
        )
    except yaml.YAMLError as exc:  # pragma: no cover - every PyYAML error above is marked
        doc.problems.append(Problem(path, None, None, f"invalid YAML: {exc}"))
    return doc


def load(path: str, display: str | None = None) -> Document:
    """Read and compose a file; problems are collected on the document."""
    shown = display or path
    text, problems = read_text(path, shown)
    if text is None:
        doc = Document(shown, None)
        doc.problems.extend(problems)
        return doc
    return parse(text, shown)


def scalar_text(node: Node) -> str | None:
    """The text of a scalar exactly as written; None for a plain null (``~``, empty)."""
    if not isinstance(node, ScalarNode):
        return None
    text: str = node.value  # a scalar's value is its text
    if not node.style and text in _NULL:
        return None
    return text


def resolve_scalar(node: ScalarNode) -> object:
    """A scalar's value under YAML 1.2 core rules (quoted scalars are always strings)."""
    if bool(node.style):
        return node.value
    return resolve_plain(node.value)


def resolve_plain(text: str) -> object:
    """The value of a plain (unquoted) scalar's text under YAML 1.2 core rules."""
    if text in _NULL:
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT.fullmatch(text):
        return int(text, 0) if text[:2] in ("0o", "0x") else int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    if text in _SPECIAL_FLOAT:
        return _SPECIAL_FLOAT[text]
    return text


def mapping_items(doc: Document, node: Node | None) -> Iterator[tuple[str, Node, Node]]:
    """(key text, key node, value node) of a mapping, reporting duplicate and non-text keys
    (none for anything else, such as an empty file's root)."""
    if not isinstance(node, MappingNode):
        return
    seen: dict[str, Node] = {}
    for key_node, value_node in node.value:
        if key_node.tag == _STANDARD_TAG + "merge":
            doc.problem(
                key_node,
                "YAML merge keys (<<) are not supported",
                "write the fields out in full",
            )
            continue
        key = scalar_text(key_node) if isinstance(key_node, ScalarNode) else None
        if key is None:
            doc.problem(key_node, "a mapping key must be text", "write the key as plain text")
            continue
        if key in seen:
            first_line, _ = position(seen[key])
            doc.problem(
                key_node,
                f'duplicate key "{key}" (first defined on line {first_line})',
                "remove one of the two",
            )
            continue
        seen[key] = key_node
        yield key, key_node, value_node


def tag_problem(doc: Document, node: Node) -> bool:
    """Report a tag orqsync does not read (anything but the plain YAML types); True if so."""
    if node.tag in _ALLOWED_TAGS:
        return False
    shown = (
        "!!" + node.tag[len(_STANDARD_TAG) :] if node.tag.startswith(_STANDARD_TAG) else node.tag
    )
    doc.problem(node, f"unsupported YAML tag {shown}", "remove the tag")
    return True


class _Converter:
    """Node graph to plain Python values, under the rules at the top of this module."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.seen: set[int] = set()
        self.extra = 0
        self.exhausted = False
        self.stack: list[Node] = []

    def convert(self, node: Node) -> object:
        if id(node) in self.seen:
            self.extra += 1
            if self.extra > ALIAS_EXPANSION_LIMIT:
                if not self.exhausted:
                    self.exhausted = True
                    self.doc.problem(
                        node,
                        f"aliases expand to more than {ALIAS_EXPANSION_LIMIT} extra nodes",
                        "write the values out instead of nesting anchors",
                    )
                return None
        else:
            self.seen.add(id(node))
        if tag_problem(self.doc, node):
            return None
        if isinstance(node, ScalarNode):
            return resolve_scalar(node)
        if len(self.stack) >= MAX_DEPTH:
            if not self.exhausted:
                self.exhausted = True
                self.doc.problem(_outermost_flow(self.stack, node), *_TOO_DEEP)
            return None
        self.stack.append(node)
        try:
            if isinstance(node, SequenceNode):
                return [self.convert(item) for item in node.value]
            return {key: self.convert(value) for key, _, value in mapping_items(self.doc, node)}
        finally:
            self.stack.pop()


def to_python(doc: Document, node: Node | None) -> object:
    """Convert a node (and everything under it) to plain values; problems go to the document."""
    if node is None:
        return None
    return _Converter(doc).convert(node)


def node_at(root: Node | None, path: tuple[object, ...] | list[object]) -> Node | None:
    """The deepest node along a JSON-style path (keys and indexes), for locating errors."""
    node = root
    for step in path:
        if isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, ScalarNode) and key_node.value == step:
                    node = value_node
                    break
            else:
                return node
        elif isinstance(node, SequenceNode) and isinstance(step, int) and step < len(node.value):
            node = node.value[step]
        else:
            return node
    return node


def key_node_at(root: Node | None, path: tuple[object, ...], key: str) -> Node | None:
    """The key node named `key` in the mapping at `path` (for "unknown field" errors)."""
    node = node_at(root, path)
    if isinstance(node, MappingNode):
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.value == key:
                return key_node
    return node
