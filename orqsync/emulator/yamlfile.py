"""Strict YAML files for the emulator: the rules its definitions and evaluations files share.

- UTF-8 text holding one YAML document; only the plain YAML tags; no merge keys (`<<`);
  mapping keys are text, each once; aliases add at most 10,000 nodes; lists and mappings nest
  at most 64 deep;
- scalars are read by YAML 1.2 core rules: only true/false are booleans, dates stay text.

Every problem is raised through the reader's `error` factory, `error(message, hint)`, with a
message that starts with `file:line:column` (or just `file` when the place is unknown).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

ALIAS_EXPANSION_LIMIT = 10_000  # nodes that aliases may add beyond those written out
MAX_DEPTH = 64  # the deepest nesting of lists and mappings

ErrorFactory = Callable[[str, str], Exception]

# libyaml composes when it is there; scalars are resolved below, not by PyYAML's resolver.
_Composer = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# YAML 1.2 core schema.
NULL = frozenset(("", "~", "null", "Null", "NULL"))
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_SPECIAL_FLOAT = {
    ".inf": math.inf,
    "+.inf": math.inf,
    "-.inf": -math.inf,
    ".Inf": math.inf,
    "-.Inf": -math.inf,
    ".nan": math.nan,
    ".NaN": math.nan,
}
_STANDARD_TAG = "tag:yaml.org,2002:"
_MERGE_TAG = _STANDARD_TAG + "merge"
_ALLOWED_TAGS = frozenset(
    [
        "!",
        *(
            _STANDARD_TAG + name
            for name in (
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
        ),
    ]
)


def read_text(path: str, what: str, error: ErrorFactory) -> str:
    """The text of a UTF-8 file; `what` names the file in the message when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise error(
            f"{path}: cannot read the {what}: {exc.strerror or exc}",
            "check the path, and that the file can be read",
        ) from exc
    return decode(raw, path, error)


def decode(raw: bytes, source: str, error: ErrorFactory) -> str:
    """UTF-8 bytes as text; UTF-16 and invalid bytes are errors naming their place."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise error(f"{source}:1:1: the file is UTF-16, not UTF-8", "save it as UTF-8")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise error(
            f"{source}:{line}:{column}: the file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
            "save it as UTF-8",
        ) from exc


def resolve(node: ScalarNode) -> object:
    """A scalar's value by YAML 1.2 core rules; quoted and block scalars are always text."""
    if node.style:
        return node.value
    text = node.value
    if text in NULL:
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT.fullmatch(text):
        return int(text, 0) if text[:2] in ("0o", "0x") else int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return _SPECIAL_FLOAT.get(text, text)


def is_number(value: object) -> bool:
    """True for an int or a float, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _char_at(text: str, mark: yaml.Mark | None) -> str:
    lines = text.split("\n")
    if mark is not None and mark.line < len(lines) and mark.column < len(lines[mark.line]):
        return lines[mark.line][mark.column]
    return ""


class YamlReader:
    """Composes one file's YAML into checked nodes and makes errors that name their place."""

    def __init__(self, source: str, error: ErrorFactory) -> None:
        self.source = source
        self._make_error = error

    def compose(self, text: str) -> Node | None:
        """The document's root node, checked everywhere (see the module); None when empty."""
        try:
            root = yaml.compose(text, Loader=_Composer)
        except yaml.reader.ReaderError as exc:
            before = text[: exc.position]
            line = before.count("\n") + 1
            column = exc.position - (before.rfind("\n") + 1) + 1
            character = exc.character
            shown = f"#x{character:04x}" if isinstance(character, int) else repr(character)
            raise self._make_error(
                f"{self.source}:{line}:{column}: not valid YAML: unacceptable character {shown}",
                "remove the character",
            ) from exc
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = self.where(mark) if mark is not None else self.source
            problem = exc.problem or exc.context or "not valid YAML"
            hint = "fix the YAML syntax here"
            if problem == "but found another document":
                problem = "the file holds more than one YAML document"
                hint = 'remove the "---" line and what follows it'
            elif "cannot start any token" in problem and _char_at(text, mark) == "\t":
                problem = "a tab character is not allowed here"
                hint = "indent with spaces, not tabs"
            raise self._make_error(f"{where}: not valid YAML: {problem}", hint) from exc
        except RecursionError as exc:  # the pure-Python composer on very deep nesting
            raise self._make_error(
                f"{self.source}: lists and mappings are nested too deeply",
                "write the file with fewer levels of nesting",
            ) from exc
        except yaml.YAMLError as exc:
            raise self._make_error(
                f"{self.source}: not valid YAML: {exc}", "fix the YAML syntax"
            ) from exc
        if root is not None:
            _TreeCheck(self).visit(root, 0)
        return root

    def fields(self, node: MappingNode) -> Iterator[tuple[str, tuple[Node, Node]]]:
        """A mapping's (key, (key node, value node)) pairs, in file order."""
        # Keys were checked by _TreeCheck: text, each once, no merge keys.
        for key_node, value_node in node.value:
            yield key_node.value, (key_node, value_node)

    def scalar(self, node: Node) -> object:
        """A scalar's value; a list or a mapping is returned as its node (never valid here)."""
        return resolve(node) if isinstance(node, ScalarNode) else node

    def shown(self, node: Node) -> str:
        """A node as a message shows it: a scalar as written, else "a list" or "a mapping"."""
        if isinstance(node, ScalarNode):
            return f'"{node.value}"' if node.style else node.value or "null"
        return "a list" if isinstance(node, SequenceNode) else "a mapping"

    def where(self, mark: yaml.Mark) -> str:
        """`file:line:column` of a place in the file."""
        return f"{self.source}:{mark.line + 1}:{mark.column + 1}"

    def error(self, node: Node, message: str, hint: str = "") -> Exception:
        """An error at the start of `node`."""
        return self._make_error(f"{self.where(node.start_mark)}: {message}", hint)


class _TreeCheck:
    """What holds in every part of the file, read or not: tags, keys, aliases, depth."""

    def __init__(self, reader: YamlReader) -> None:
        self._reader = reader
        self._seen: set[int] = set()
        self._extra = 0

    def visit(self, node: Node, depth: int) -> None:
        error = self._reader.error
        if id(node) in self._seen:
            self._extra += 1
            if self._extra > ALIAS_EXPANSION_LIMIT:
                raise error(
                    node,
                    f"aliases expand to more than {ALIAS_EXPANSION_LIMIT} extra nodes",
                    "write the values out instead of nesting anchors",
                )
        else:
            self._seen.add(id(node))
        if node.tag not in _ALLOWED_TAGS:
            tag = node.tag
            shown = "!!" + tag[len(_STANDARD_TAG) :] if tag.startswith(_STANDARD_TAG) else tag
            raise error(node, f"unsupported YAML tag {shown}", "remove the tag")
        if isinstance(node, ScalarNode):
            return
        if depth >= MAX_DEPTH:
            raise error(
                node,
                "lists and mappings are nested too deeply",
                "write the value with fewer levels of nesting",
            )
        if isinstance(node, SequenceNode):
            for item in node.value:
                self.visit(item, depth + 1)
            return
        seen: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                raise error(
                    key_node,
                    "YAML merge keys (<<) are not supported",
                    "write the fields out in full",
                )
            if not isinstance(key_node, ScalarNode) or (
                not key_node.style and key_node.value in NULL
            ):
                raise error(key_node, "a mapping key must be text", "write the key as plain text")
            key = key_node.value
            if key in seen:
                first = seen[key].start_mark.line + 1
                raise error(
                    key_node,
                    f'duplicate key "{key}" (first on line {first})',
                    "remove one of the two",
                )
            seen[key] = key_node
            self.visit(value_node, depth + 1)
