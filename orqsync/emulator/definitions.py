"""Human Review definitions: orq.ai's built-in defaults and the definitions.yaml reader.

The reader accepts exactly the files orqsync accepts (its schemas/definitions.schema.json and the
checks of orqsync/definitions.py), with the rules written out again here, so that the emulator
imports nothing from orqsync (tests/emulator/test_emulator_definitions_agree.py holds the two
readers to the same answers):

- UTF-8 text holding one YAML document; only the plain YAML tags; no merge keys (`<<`);
  mapping keys are text, each once; aliases add at most 10,000 nodes; lists and mappings nest
  at most 64 deep;
- scalars are read by YAML 1.2 core rules: only true/false are booleans, dates stay text;
- the top level is `version: 1` and `definitions:`, a mapping of key (1 to 255 characters) to
  definition, and nothing else;
- a definition has a `type` (single_select, multi_select, range, text, boolean) and may have an
  `id` and a `description` (text); selects need `options:`, a non-empty list of text, numbers or
  booleans, none empty and none listed twice (as written); ranges need `min:` and `max:`, finite
  numbers with min <= max; no other field.

The first problem found is raised as a DefinitionsError naming its file, line and column, with
a hint that says what to do.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

DEFINITION_TYPES = ("single_select", "multi_select", "range", "text", "boolean")
SELECT_TYPES = ("single_select", "multi_select")
_COMMON_FIELDS = ("type", "id", "description")
_FIELDS = {
    "single_select": (*_COMMON_FIELDS, "options"),
    "multi_select": (*_COMMON_FIELDS, "options"),
    "range": (*_COMMON_FIELDS, "min", "max"),
    "text": _COMMON_FIELDS,
    "boolean": _COMMON_FIELDS,
}
MAX_KEY_LENGTH = 255
ALIAS_EXPANSION_LIMIT = 10_000  # nodes that aliases may add beyond those written out
MAX_DEPTH = 64  # the deepest nesting of lists and mappings


@dataclass(frozen=True, slots=True)
class Definition:
    """One Human Review definition; `options` only for selects, `minimum`/`maximum` for ranges."""

    key: str
    type: str
    options: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


class DefinitionsError(ValueError):
    """A definitions file that cannot be used; the message starts with `file:line:column`
    (or just `file` when the place is unknown) and `hint` says what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


# orq.ai pre-creates these two per workspace (docs/api-contract.md, section 4.3).
DEFAULT_DEFINITIONS: Mapping[str, Definition] = MappingProxyType(
    {
        "rating": Definition("rating", "single_select", ("good", "bad")),
        "defects": Definition(
            "defects",
            "multi_select",
            (
                "grammatical",
                "spelling",
                "hallucination",
                "repetition",
                "inappropriate",
                "off_topic",
                "incompleteness",
                "ambiguity",
            ),
        ),
    }
)

# libyaml composes when it is there; scalars are resolved below, not by PyYAML's resolver.
_Composer = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# YAML 1.2 core schema.
_NULL = frozenset(("", "~", "null", "Null", "NULL"))
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
_NUMBER_HINT = "write a number, such as 0 or 1"


def load_definitions(path: str) -> dict[str, Definition]:
    """Read a definitions.yaml file; raise DefinitionsError naming the place of any problem."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise DefinitionsError(
            f"{path}: cannot read the definitions file: {exc.strerror or exc}",
            "check the path, and that the file can be read",
        ) from exc
    return parse_definitions(_decode(raw, path), source=path)


def parse_definitions(text: str, source: str = "<definitions>") -> dict[str, Definition]:
    """Parse the text of a definitions file (see `load_definitions`)."""
    return _Parser(source).parse(text.removeprefix("\ufeff"))


def _decode(raw: bytes, source: str) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DefinitionsError(f"{source}:1:1: the file is UTF-16, not UTF-8", "save it as UTF-8")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DefinitionsError(
            f"{source}:{line}:{column}: the file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
            "save it as UTF-8",
        ) from exc


def _char_at(text: str, mark: yaml.Mark | None) -> str:
    lines = text.split("\n")
    if mark is not None and mark.line < len(lines) and mark.column < len(lines[mark.line]):
        return lines[mark.line][mark.column]
    return ""


def _resolve(node: ScalarNode) -> object:
    """A scalar's value by YAML 1.2 core rules; quoted and block scalars are always text."""
    if node.style:
        return node.value
    text = node.value
    if text in _NULL:
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT.fullmatch(text):
        return int(text, 0) if text[:2] in ("0o", "0x") else int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return _SPECIAL_FLOAT.get(text, text)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Parser:
    def __init__(self, source: str) -> None:
        self._source = source

    def parse(self, text: str) -> dict[str, Definition]:
        root = self._compose(text)
        if root is None:
            raise DefinitionsError(
                f"{self._source}: the file is empty; expected `version: 1` and `definitions:`",
                "start with `version: 1` and a `definitions:` mapping",
            )
        _TreeCheck(self).visit(root, 0)
        if not isinstance(root, MappingNode):
            raise self._error(
                root,
                "the definitions file must be a mapping",
                "start with `version: 1` and a `definitions:` mapping",
            )
        top = dict(self._fields(root))
        for name, (key_node, _) in top.items():
            if name not in ("version", "definitions"):
                raise self._error(
                    key_node,
                    f'unknown field "{name}" at the top level',
                    "the top level holds only `version: 1` and `definitions:`",
                )
        if "version" not in top:
            raise self._error(root, "missing `version: 1`", "add `version: 1` at the top")
        version_node = top["version"][1]
        version = self._scalar(version_node)
        if not _is_number(version) or version != 1:
            raise self._error(
                version_node,
                f"unsupported version {self._shown(version_node)}; use `version: 1`",
                "write `version: 1`",
            )
        if "definitions" not in top:
            raise self._error(
                root,
                "missing `definitions:` (a mapping of key to definition)",
                "add `definitions:` with one entry per Human Review definition",
            )
        defs_node = top["definitions"][1]
        if not isinstance(defs_node, MappingNode):
            raise self._error(
                defs_node,
                "`definitions` must be a mapping of key to definition",
                "write each definition as `key: {type: ...}` under `definitions:`",
            )
        result: dict[str, Definition] = {}
        for key, (key_node, spec) in self._fields(defs_node):
            if not 1 <= len(key) <= MAX_KEY_LENGTH:
                raise self._error(
                    key_node,
                    f"a definition key must be 1 to {MAX_KEY_LENGTH} characters long",
                    "write the key as orq.ai shows it",
                )
            result[key] = self._definition(key, key_node, spec)
        return result

    def _compose(self, text: str) -> Node | None:
        try:
            return yaml.compose(text, Loader=_Composer)
        except yaml.reader.ReaderError as exc:
            before = text[: exc.position]
            line = before.count("\n") + 1
            column = exc.position - (before.rfind("\n") + 1) + 1
            character = exc.character
            shown = f"#x{character:04x}" if isinstance(character, int) else repr(character)
            raise DefinitionsError(
                f"{self._source}:{line}:{column}: not valid YAML: unacceptable character {shown}",
                "remove the character",
            ) from exc
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = self._where(mark) if mark is not None else self._source
            problem = exc.problem or exc.context or "not valid YAML"
            hint = "fix the YAML syntax here"
            if problem == "but found another document":
                problem = "the file holds more than one YAML document"
                hint = 'remove the "---" line and what follows it'
            elif "cannot start any token" in problem and _char_at(text, mark) == "\t":
                problem = "a tab character is not allowed here"
                hint = "indent with spaces, not tabs"
            raise DefinitionsError(f"{where}: not valid YAML: {problem}", hint) from exc
        except RecursionError as exc:  # the pure-Python composer on very deep nesting
            raise DefinitionsError(
                f"{self._source}: lists and mappings are nested too deeply",
                "write the file with fewer levels of nesting",
            ) from exc
        except yaml.YAMLError as exc:
            raise DefinitionsError(
                f"{self._source}: not valid YAML: {exc}", "fix the YAML syntax"
            ) from exc

    def _definition(self, key: str, key_node: Node, node: Node) -> Definition:
        if not isinstance(node, MappingNode):
            raise self._error(
                node,
                f'definition "{key}" must be a mapping',
                f"write `{key}: {{type: ...}}`",
            )
        fields = dict(self._fields(node))
        if "type" not in fields:
            raise self._error(
                key_node,
                f'definition "{key}" needs a `type:` ({", ".join(DEFINITION_TYPES)})',
                "add the type the definition has in orq.ai",
            )
        type_node = fields["type"][1]
        kind = self._scalar(type_node)
        if not isinstance(kind, str) or kind not in DEFINITION_TYPES:
            if isinstance(type_node, ScalarNode):
                shown = f'"{type_node.value}"'
            else:
                shown = self._shown(type_node)
            raise self._error(
                type_node,
                f'definition "{key}" has unknown type {shown}',
                f"use one of {', '.join(DEFINITION_TYPES)}",
            )
        allowed = _FIELDS[kind]
        for name, (field_node, value_node) in fields.items():
            if name not in allowed:
                raise self._error(
                    field_node,
                    f'{kind} definition "{key}" has no field `{name}`',
                    f"remove it; a {kind} definition takes {', '.join(allowed)}",
                )
            if name in ("id", "description") and not isinstance(self._scalar(value_node), str):
                raise self._error(
                    value_node,
                    f'the {name} of definition "{key}" must be text',
                    "put the value in quotes",
                )
        if kind in SELECT_TYPES:
            return Definition(key, kind, options=self._options(key, key_node, fields))
        if kind == "range":
            minimum, maximum = self._bounds(key, key_node, node, fields)
            return Definition(key, kind, minimum=minimum, maximum=maximum)
        return Definition(key, kind)

    def _options(
        self, key: str, key_node: Node, fields: dict[str, tuple[Node, Node]]
    ) -> tuple[str, ...]:
        if "options" not in fields:
            raise self._error(
                key_node,
                f'select definition "{key}" needs `options:`',
                "list the options the definition has in orq.ai",
            )
        node = fields["options"][1]
        if not isinstance(node, SequenceNode) or not node.value:
            raise self._error(
                node,
                f'the options of "{key}" must be a non-empty list',
                "list the options the definition has in orq.ai, e.g. [good, bad]",
            )
        options: dict[str, Node] = {}
        for item in node.value:
            if not isinstance(item, ScalarNode) or self._scalar(item) is None:
                raise self._error(
                    item,
                    f'an option of "{key}" must be text, a number or true/false',
                    "write the option's text",
                )
            option = item.value  # as written: `no`, `1.10` or `on` stay exactly so
            if not option.strip():
                raise self._error(
                    item, f'an option of "{key}" is empty', "remove it, or write the option's text"
                )
            if option in options:
                first = options[option].start_mark.line + 1
                raise self._error(
                    item,
                    f'option "{option}" of "{key}" is listed twice (first on line {first})',
                    "remove one of the two",
                )
            options[option] = item
        return tuple(options)

    def _bounds(
        self, key: str, key_node: Node, node: Node, fields: dict[str, tuple[Node, Node]]
    ) -> tuple[float, float]:
        bounds: list[float] = []
        for name in ("min", "max"):
            if name not in fields:
                raise self._error(
                    key_node, f'range definition "{key}" needs `{name}:`', _NUMBER_HINT
                )
            bound_node = fields[name][1]
            value = self._scalar(bound_node)
            if not _is_number(value):
                raise self._error(
                    bound_node,
                    f'`{name}` of "{key}" must be a number, got {self._shown(bound_node)}',
                    _NUMBER_HINT,
                )
            assert isinstance(value, int | float)
            if not math.isfinite(value):
                raise self._error(
                    bound_node,
                    f'`{name}` of "{key}" is {self._shown(bound_node)}, not a finite number',
                    _NUMBER_HINT,
                )
            bounds.append(value)
        minimum, maximum = bounds
        if minimum > maximum:
            raise self._error(
                fields["min"][1],
                f'range "{key}" has min {minimum} greater than max {maximum}',
                "swap min and max",
            )
        return minimum, maximum

    def _fields(self, node: MappingNode) -> Iterator[tuple[str, tuple[Node, Node]]]:
        # Keys were checked by _TreeCheck: text, each once, no merge keys.
        for key_node, value_node in node.value:
            yield key_node.value, (key_node, value_node)

    def _scalar(self, node: Node) -> object:
        """A scalar's value; a list or a mapping is returned as its node (never valid here)."""
        return _resolve(node) if isinstance(node, ScalarNode) else node

    def _shown(self, node: Node) -> str:
        if isinstance(node, ScalarNode):
            return f'"{node.value}"' if node.style else node.value or "null"
        return "a list" if isinstance(node, SequenceNode) else "a mapping"

    def _where(self, mark: yaml.Mark) -> str:
        return f"{self._source}:{mark.line + 1}:{mark.column + 1}"

    def _error(self, node: Node, message: str, hint: str = "") -> DefinitionsError:
        return DefinitionsError(f"{self._where(node.start_mark)}: {message}", hint)


class _TreeCheck:
    """What holds in every part of the file, read or not: tags, keys, aliases, depth."""

    def __init__(self, parser: _Parser) -> None:
        self._parser = parser
        self._seen: set[int] = set()
        self._extra = 0

    def visit(self, node: Node, depth: int) -> None:
        error = self._parser._error
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
                not key_node.style and key_node.value in _NULL
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
