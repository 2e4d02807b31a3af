"""Human Review definitions: orq.ai's built-in defaults and the definitions.yaml reader.

The reader accepts exactly the files orqsync accepts (its schemas/definitions.schema.json and the
checks of orqsync/definitions.py), with the rules written out again here, so that the emulator
imports nothing from orqsync (tests/emulator/test_emulator_definitions_agree.py holds the two
readers to the same answers):

- (the rules of yamlfile.py, shared with the evaluations file) UTF-8 text holding one YAML
  document; only the plain YAML tags; no merge keys (`<<`);
  mapping keys are text, each once; aliases add at most 10,000 nodes; lists and mappings nest
  at most 64 deep;
- scalars are read by YAML 1.2 core rules: only true/false are booleans, dates stay text;
- the top level is `version: 1` and `definitions:`, a mapping of key (1 to 255 characters) to
  definition, and nothing else;
- a definition has a `type` (single_select, multi_select, range, text, boolean) and may have an
  `id` (orq.ai's ULID of the definition: 26 characters of 0-9 and A-Z but I, L, O and U; without
  one the emulator derives a stable id from the key) and a `description` (text); selects need
  `options:`, a non-empty list of text, numbers or booleans, none empty and none listed twice
  (as written); ranges need `min:` and `max:`, finite numbers with min <= max; no other field.

The first problem found is raised as a DefinitionsError naming its file, line and column, with
a hint that says what to do.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .ids import stable_ulid
from .yamlfile import YamlReader, is_number, read_text

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
# An orq.ai id as schemas/definitions.schema.json takes it.
ULID_PATTERN = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


@dataclass(frozen=True, slots=True)
class Definition:
    """One Human Review definition; `options` only for selects, `minimum`/`maximum` for ranges.

    `id` is what orq.ai calls the definition (a human review id): the file's `id:` when it has
    one, else `derived_id(key)`, so that every definition has one.
    """

    key: str
    type: str
    options: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", derived_id(self.key))


def derived_id(key: str) -> str:
    """The id of a definition whose file gives none: ULID-shaped and the same for the same key
    in every run (the first 128 bits of a SHA-256 of the key)."""
    return stable_ulid("orqsync-emulator-definition", key)


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

_NUMBER_HINT = "write a number, such as 0 or 1"


def load_definitions(path: str) -> dict[str, Definition]:
    """Read a definitions.yaml file; raise DefinitionsError naming the place of any problem."""
    return parse_definitions(read_text(path, "definitions file", DefinitionsError), source=path)


def parse_definitions(text: str, source: str = "<definitions>") -> dict[str, Definition]:
    """Parse the text of a definitions file (see `load_definitions`)."""
    return _Parser(source).parse(text.removeprefix("\ufeff"))


class _Parser(YamlReader):
    def __init__(self, source: str) -> None:
        super().__init__(source, DefinitionsError)

    def parse(self, text: str) -> dict[str, Definition]:
        root = self.compose(text)
        if root is None:
            raise DefinitionsError(
                f"{self.source}: the file is empty; expected `version: 1` and `definitions:`",
                "start with `version: 1` and a `definitions:` mapping",
            )
        if not isinstance(root, MappingNode):
            raise self.error(
                root,
                "the definitions file must be a mapping",
                "start with `version: 1` and a `definitions:` mapping",
            )
        top = dict(self.fields(root))
        for name, (key_node, value_node) in top.items():
            if name == "evaluators":
                # The evaluators whose results a project corrects, for its own offline checks:
                # nothing a workspace defines. The results the emulator knows come from its
                # evaluations file (EmulatorConfig.evaluations_path).
                if not isinstance(value_node, MappingNode):
                    raise self.error(
                        value_node,
                        "`evaluators` must be a mapping of name to evaluator",
                        "write each evaluator as `name: {output: ...}` under `evaluators:`",
                    )
                continue
            if name not in ("version", "definitions"):
                raise self.error(
                    key_node,
                    f'unknown field "{name}" at the top level',
                    "the top level holds only `version: 1`, `definitions:` and `evaluators:`",
                )
        if "version" not in top:
            raise self.error(root, "missing `version: 1`", "add `version: 1` at the top")
        version_node = top["version"][1]
        version = self.scalar(version_node)
        if not is_number(version) or version != 1:
            raise self.error(
                version_node,
                f"unsupported version {self.shown(version_node)}; use `version: 1`",
                "write `version: 1`",
            )
        if "definitions" not in top:
            raise self.error(
                root,
                "missing `definitions:` (a mapping of key to definition)",
                "add `definitions:` with one entry per Human Review definition",
            )
        defs_node = top["definitions"][1]
        if not isinstance(defs_node, MappingNode):
            raise self.error(
                defs_node,
                "`definitions` must be a mapping of key to definition",
                "write each definition as `key: {type: ...}` under `definitions:`",
            )
        result: dict[str, Definition] = {}
        for key, (key_node, spec) in self.fields(defs_node):
            if not 1 <= len(key) <= MAX_KEY_LENGTH:
                raise self.error(
                    key_node,
                    f"a definition key must be 1 to {MAX_KEY_LENGTH} characters long",
                    "write the key as orq.ai shows it",
                )
            result[key] = self._definition(key, key_node, spec)
        return result

    def _definition(self, key: str, key_node: Node, node: Node) -> Definition:
        if not isinstance(node, MappingNode):
            raise self.error(
                node,
                f'definition "{key}" must be a mapping',
                f"write `{key}: {{type: ...}}`",
            )
        fields = dict(self.fields(node))
        if "type" not in fields:
            raise self.error(
                key_node,
                f'definition "{key}" needs a `type:` ({", ".join(DEFINITION_TYPES)})',
                "add the type the definition has in orq.ai",
            )
        type_node = fields["type"][1]
        kind = self.scalar(type_node)
        if not isinstance(kind, str) or kind not in DEFINITION_TYPES:
            if isinstance(type_node, ScalarNode):
                shown = f'"{type_node.value}"'
            else:
                shown = self.shown(type_node)
            raise self.error(
                type_node,
                f'definition "{key}" has unknown type {shown}',
                f"use one of {', '.join(DEFINITION_TYPES)}",
            )
        allowed = _FIELDS[kind]
        for name, (field_node, value_node) in fields.items():
            if name not in allowed:
                raise self.error(
                    field_node,
                    f'{kind} definition "{key}" has no field `{name}`',
                    f"remove it; a {kind} definition takes {', '.join(allowed)}",
                )
            if name in ("id", "description") and not isinstance(self.scalar(value_node), str):
                raise self.error(
                    value_node,
                    f'the {name} of definition "{key}" must be text',
                    "put the value in quotes",
                )
        definition_id = self._id(key, fields)
        if kind in SELECT_TYPES:
            options = self._options(key, key_node, fields)
            return Definition(key, kind, options=options, id=definition_id)
        if kind == "range":
            minimum, maximum = self._bounds(key, key_node, node, fields)
            return Definition(key, kind, minimum=minimum, maximum=maximum, id=definition_id)
        return Definition(key, kind, id=definition_id)

    def _id(self, key: str, fields: dict[str, tuple[Node, Node]]) -> str:
        if "id" not in fields:
            return ""
        node = fields["id"][1]
        value = self.scalar(node)
        if not isinstance(value, str) or not ULID_PATTERN.fullmatch(value):
            raise self.error(
                node,
                f'the id of definition "{key}" is not an orq.ai id (a ULID: 26 characters, '
                "digits and capitals but I, L, O and U)",
                "copy the id from orq.ai, or leave the field out",
            )
        return value

    def _options(
        self, key: str, key_node: Node, fields: dict[str, tuple[Node, Node]]
    ) -> tuple[str, ...]:
        if "options" not in fields:
            raise self.error(
                key_node,
                f'select definition "{key}" needs `options:`',
                "list the options the definition has in orq.ai",
            )
        node = fields["options"][1]
        if not isinstance(node, SequenceNode) or not node.value:
            raise self.error(
                node,
                f'the options of "{key}" must be a non-empty list',
                "list the options the definition has in orq.ai, e.g. [good, bad]",
            )
        options: dict[str, Node] = {}
        for item in node.value:
            if not isinstance(item, ScalarNode) or self.scalar(item) is None:
                raise self.error(
                    item,
                    f'an option of "{key}" must be text, a number or true/false',
                    "write the option's text",
                )
            option = item.value  # as written: `no`, `1.10` or `on` stay exactly so
            if not option.strip():
                raise self.error(
                    item, f'an option of "{key}" is empty', "remove it, or write the option's text"
                )
            if option in options:
                first = options[option].start_mark.line + 1
                raise self.error(
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
                raise self.error(
                    key_node, f'range definition "{key}" needs `{name}:`', _NUMBER_HINT
                )
            bound_node = fields[name][1]
            value = self.scalar(bound_node)
            if not is_number(value):
                raise self.error(
                    bound_node,
                    f'`{name}` of "{key}" must be a number, got {self.shown(bound_node)}',
                    _NUMBER_HINT,
                )
            assert isinstance(value, int | float)
            if not math.isfinite(value):
                raise self.error(
                    bound_node,
                    f'`{name}` of "{key}" is {self.shown(bound_node)}, not a finite number',
                    _NUMBER_HINT,
                )
            bounds.append(value)
        minimum, maximum = bounds
        if minimum > maximum:
            raise self.error(
                fields["min"][1],
                f'range "{key}" has min {minimum} greater than max {maximum}',
                "swap min and max",
            )
        return minimum, maximum
