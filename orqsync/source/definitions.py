"""definitions.yaml -> the pinned Human Review definitions."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from orqsync.errors import Problem
from orqsync.source.schema import check
from orqsync.source.yamlfile import (
    Document,
    load,
    mapping_items,
    position,
    resolve_scalar,
    scalar_text,
    to_python,
)

TYPES = ("single_select", "multi_select", "range", "text", "boolean")


@dataclass(frozen=True, slots=True)
class Definition:
    """One Human Review definition; `options` are text exactly as written in the file."""

    key: str
    type: str
    options: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None

    @property
    def is_select(self) -> bool:
        return self.type in ("single_select", "multi_select")


Definitions = dict[str, Definition]


def load_definitions(path: str, display: str) -> tuple[Definitions, list[Problem]]:
    """Read the definitions file; problems are returned, not raised."""
    doc = load(path, display)
    if doc.root is None:
        if not doc.problems:
            doc.problem(None, "the definitions file is empty", "start with `version: 1`")
        return {}, doc.problems
    data = to_python(doc, doc.root)
    if doc.problems:
        return {}, doc.problems
    if not isinstance(data, dict):
        doc.problem(
            doc.root,
            "the definitions file must be a mapping",
            "start with `version: 1` and a `definitions:` mapping",
        )
        return {}, doc.problems
    # Every problem in one pass: the schema's, and those of values it cannot see.
    problems = check(doc, data, "definitions") + _unsatisfiable(doc)
    if problems:
        return {}, sorted(problems, key=Problem.sort_key)
    return _definitions(doc), doc.problems


def _fields(node: Node | None) -> Iterator[tuple[str, Node, Node]]:
    """A mapping's (key, key node, value node), first of each key, without reporting anything
    (the conversion to Python values has reported duplicates already)."""
    seen: set[str] = set()
    for key_node, value_node in node.value if isinstance(node, MappingNode) else ():
        key = scalar_text(key_node)
        if key is not None and key not in seen:
            seen.add(key)
            yield key, key_node, value_node


def _unsatisfiable(doc: Document) -> list[Problem]:
    """Definitions no value could satisfy: a bound that is not a finite number, min above max,
    an empty option, an option listed twice."""
    problems: list[Problem] = []

    def problem(node: Node, message: str, hint: str) -> None:
        line, column = position(node)
        problems.append(Problem(doc.path, line, column, message, hint))

    definitions = dict((k, v) for k, _, v in _fields(doc.root)).get("definitions")
    for key, _, body in _fields(definitions):
        fields = {name: value for name, _, value in _fields(body)}
        bounds: dict[str, float] = {}
        for bound in ("min", "max"):
            node = fields.get(bound)
            if not isinstance(node, ScalarNode):
                continue  # not a number: the schema says so
            value = resolve_scalar(node)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue  # not a number: the schema says so
            if math.isfinite(value):
                bounds[bound] = value
            else:
                problem(
                    node,
                    f'definition "{key}": {bound} {node.value} is not a finite number',
                    "write a number, such as 0 or 1",
                )
        if len(bounds) == 2 and bounds["min"] > bounds["max"]:
            low, high = (fields[b].value for b in ("min", "max"))
            problem(body, f'definition "{key}": min {low} is above max {high}', "swap min and max")
        options = fields.get("options")
        first: dict[str, int | None] = {}
        for item in options.value if isinstance(options, SequenceNode) else ():
            if not isinstance(item, ScalarNode):
                continue  # a list or a mapping: the schema says so
            text = scalar_text(item)
            if text is None:
                continue  # a plain null: the schema says so
            if not text.strip():
                problem(
                    item,
                    f'definition "{key}": an option is empty',
                    "remove it, or write the option's text",
                )
            elif text in first:
                problem(
                    item,
                    f'definition "{key}": option "{text}" is listed twice (first on line '
                    f"{first[text]})",
                    "remove one of the two",
                )
            else:
                first[text] = position(item)[0]
    return problems


def _definitions(doc: Document) -> Definitions:
    found: Definitions = {}
    for name, _, value in mapping_items(doc, doc.root):
        if name != "definitions":
            continue
        for key, _, body in mapping_items(doc, value):
            fields = dict((k, v) for k, _, v in mapping_items(doc, body))
            kind = scalar_text(fields["type"]) or ""
            options: tuple[str, ...] = ()
            if "options" in fields and isinstance(fields["options"], SequenceNode):
                options = tuple(scalar_text(o) or "" for o in fields["options"].value)
            low = to_python(doc, fields.get("min")) if "min" in fields else None
            high = to_python(doc, fields.get("max")) if "max" in fields else None
            # Numbers or absent: the schema has checked them (load_definitions).
            found[key] = Definition(
                key, kind, options, cast("float | None", low), cast("float | None", high)
            )
    assert isinstance(doc.root, MappingNode)
    return found
