"""Human Review definitions: orq.ai's built-in defaults and the definitions.yaml reader."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import yaml

DEFINITION_TYPES = ("single_select", "multi_select", "range", "text", "boolean", "correction")
SELECT_TYPES = ("single_select", "multi_select")


@dataclass(frozen=True, slots=True)
class Definition:
    """One Human Review definition; `options` only for selects, `minimum`/`maximum` for ranges."""

    key: str
    type: str
    options: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


class DefinitionsError(ValueError):
    """A definitions file that cannot be used; the message starts with `file:line:column`."""


# orq.ai pre-creates these two per workspace (contract 4.3).
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


class _Loader(yaml.SafeLoader):
    """SafeLoader whose booleans are only true/false: `no`, `yes`, `on`, `off` stay strings."""


_BOOL_TAG = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_definitions(path: str) -> dict[str, Definition]:
    """Read a definitions.yaml file; raise DefinitionsError naming the place of any problem."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionsError(f"{path}: cannot read the definitions file: {exc}") from exc
    return parse_definitions(text, source=path)


def parse_definitions(text: str, source: str = "<definitions>") -> dict[str, Definition]:
    """Parse the text of a definitions file (see `load_definitions`)."""
    return _Parser(source).parse(text)


class _Parser:
    def __init__(self, source: str) -> None:
        self._source = source
        self._constructor = _Loader("")

    def parse(self, text: str) -> dict[str, Definition]:
        try:
            root = yaml.compose(text, Loader=_Loader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = self._where(mark) if mark is not None else self._source
            problem = getattr(exc, "problem", None) or str(exc)
            raise DefinitionsError(f"{where}: not valid YAML: {problem}") from exc
        if root is None:
            raise DefinitionsError(
                f"{self._source}: the file is empty; expected `version: 1` and `definitions:`"
            )
        top = self._mapping(root, "the top level")
        version = top.get("version")
        if version is not None:
            value = self._value(version[1])
            if value != 1 or isinstance(value, bool):
                raise self._error(version[1], f"unsupported version {value!r}; use `version: 1`")
        if "definitions" not in top:
            raise self._error(root, "missing `definitions:` (a mapping of key to definition)")
        defs_node = top["definitions"][1]
        if isinstance(defs_node, yaml.SequenceNode):
            entries = [self._keyed_entry(item) for item in defs_node.value]
        else:
            entries = [
                (key, key_node, spec)
                for key, (key_node, spec) in self._mapping(defs_node, "`definitions`").items()
            ]
        result: dict[str, Definition] = {}
        for key, key_node, spec in entries:
            if not key:
                raise self._error(key_node, "a definition key must not be empty")
            if key in result:
                raise self._error(key_node, f'definition "{key}" is declared twice')
            result[key] = self._definition(key, key_node, spec)
        if not result:
            raise self._error(defs_node, "`definitions` is empty; declare at least one")
        return result

    def _keyed_entry(self, node: yaml.Node) -> tuple[str, yaml.Node, yaml.Node]:
        fields = self._mapping(node, "a definition")
        if "key" not in fields:
            raise self._error(node, "a definition in a list needs a `key:`")
        key_node = fields["key"][1]
        return self._text(key_node, "`key`"), key_node, node

    def _definition(self, key: str, key_node: yaml.Node, node: yaml.Node) -> Definition:
        fields = self._mapping(node, f'definition "{key}"')
        if "type" not in fields:
            raise self._error(
                key_node, f'definition "{key}" needs a `type:` ({", ".join(DEFINITION_TYPES)})'
            )
        type_node = fields["type"][1]
        kind = self._text(type_node, f'the type of "{key}"')
        if kind not in DEFINITION_TYPES:
            raise self._error(
                type_node,
                f'definition "{key}" has unknown type "{kind}"; '
                f"use one of {', '.join(DEFINITION_TYPES)}",
            )
        if kind in SELECT_TYPES:
            return Definition(key, kind, options=self._options(key, key_node, fields))
        if kind == "range":
            minimum, maximum = self._bounds(key, key_node, fields)
            return Definition(key, kind, minimum=minimum, maximum=maximum)
        return Definition(key, kind)

    def _options(
        self, key: str, key_node: yaml.Node, fields: dict[str, tuple[yaml.Node, yaml.Node]]
    ) -> tuple[str, ...]:
        if "options" not in fields:
            raise self._error(key_node, f'select definition "{key}" needs `options:`')
        node = fields["options"][1]
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            raise self._error(node, f'the options of "{key}" must be a non-empty list')
        options: list[str] = []
        for item in node.value:
            if isinstance(item, yaml.MappingNode):
                # The API's option objects ({value, sentiment, ...}) are accepted as well.
                item_fields = self._mapping(item, f'an option of "{key}"')
                if "value" not in item_fields:
                    raise self._error(item, f'an option object of "{key}" needs a `value:`')
                item = item_fields["value"][1]
            option = self._text(item, f'an option of "{key}"')
            if not option:
                raise self._error(item, f'an option of "{key}" is empty')
            if option in options:
                raise self._error(item, f'option "{option}" of "{key}" is listed twice')
            options.append(option)
        return tuple(options)

    def _bounds(
        self, key: str, key_node: yaml.Node, fields: dict[str, tuple[yaml.Node, yaml.Node]]
    ) -> tuple[float, float]:
        if "config" in fields and "min" not in fields and "max" not in fields:
            # The API nests range bounds under `config`.
            fields = self._mapping(fields["config"][1], f'the config of "{key}"')
        bounds: list[float] = []
        for name in ("min", "max"):
            if name not in fields:
                raise self._error(key_node, f'range definition "{key}" needs `{name}:`')
            node = fields[name][1]
            value = self._value(node)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self._error(node, f'`{name}` of "{key}" must be a number, got {value!r}')
            bounds.append(value)
        minimum, maximum = bounds
        if minimum > maximum:
            raise self._error(
                fields["min"][1], f'range "{key}" has min {minimum} greater than max {maximum}'
            )
        return minimum, maximum

    def _mapping(self, node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self._error(node, f"{what} must be a mapping")
        fields: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            name = self._text(key_node, f"a key in {what}")
            if name in fields:
                raise self._error(key_node, f'duplicate key "{name}" in {what}')
            fields[name] = (key_node, value_node)
        return fields

    def _text(self, node: yaml.Node, what: str) -> str:
        # The raw scalar text, so `no`, `1.10` or `on` stay exactly as written: option values
        # and keys are strings on orq.ai.
        if not isinstance(node, yaml.ScalarNode):
            raise self._error(node, f"{what} must be a plain value")
        return str(node.value)

    def _value(self, node: yaml.Node) -> object:
        return self._constructor.construct_object(node, deep=True)

    def _where(self, mark: yaml.Mark) -> str:
        return f"{self._source}:{mark.line + 1}:{mark.column + 1}"

    def _error(self, node: yaml.Node, message: str) -> DefinitionsError:
        return DefinitionsError(f"{self._where(node.start_mark)}: {message}")
