"""definitions.yaml -> the pinned Human Review definitions, and the evaluators whose results
the annotation files correct."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from orqsync.errors import Problem
from orqsync.model import CORRECTION_MARK
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
    id: str = ""  # the human review's id in orq.ai (a ULID), when definitions.yaml records it

    @property
    def is_select(self) -> bool:
        return self.type in ("single_select", "multi_select")


OUTPUTS = ("boolean", "number", "categorical", "string")


@dataclass(frozen=True, slots=True)
class Evaluator:
    """An evaluator (an LLM judge, a code check) whose results a team corrects: its output
    type (orq.ai's `output_schema`) and, for a categorical one, the values it may take."""

    name: str
    output: str
    options: tuple[str, ...] = ()


class Definitions(dict[str, Definition]):
    """The definitions by key, and `evaluators` by name."""

    def __init__(
        self,
        found: dict[str, Definition] | None = None,
        evaluators: dict[str, Evaluator] | None = None,
    ) -> None:
        super().__init__(found or {})
        self.evaluators: dict[str, Evaluator] = evaluators or {}


def load_definitions(path: str, display: str) -> tuple[Definitions, list[Problem]]:
    """Read the definitions file; problems are returned, not raised."""
    doc = load(path, display)
    if doc.root is None:
        if not doc.problems:
            doc.problem(None, "the definitions file is empty", "start with `version: 1`")
        return Definitions(), doc.problems
    data = to_python(doc, doc.root)
    if doc.problems:
        return Definitions(), doc.problems
    if not isinstance(data, dict):
        doc.problem(
            doc.root,
            "the definitions file must be a mapping",
            "start with `version: 1` and a `definitions:` mapping",
        )
        return Definitions(), doc.problems
    # Every problem in one pass: the schema's, and those of values it cannot see.
    problems = check(doc, data, "definitions") + _unsatisfiable(doc) + _misnamed(doc)
    if problems:
        return Definitions(), sorted(problems, key=Problem.sort_key)
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


def _misnamed(doc: Document) -> list[Problem]:
    """Keys that would read as a correction's (model.CORRECTION_MARK), and evaluators with
    options that are not categorical."""
    problems: list[Problem] = []
    sections = dict((k, v) for k, _, v in _fields(doc.root))
    for key, key_node, _ in _fields(sections.get("definitions")):
        if key.startswith(CORRECTION_MARK):
            line, column = position(key_node)
            problems.append(
                Problem(
                    doc.path,
                    line,
                    column,
                    f'definition key "{key}" starts with "{CORRECTION_MARK}", which orqsync '
                    "keeps for corrections of evaluator results",
                    "rename the key in orq.ai and here",
                )
            )
    for name, _, body in _fields(sections.get("evaluators")):
        fields = {field: value for field, _, value in _fields(body)}
        output = fields.get("output")
        if "options" in fields and isinstance(output, ScalarNode):
            kind = scalar_text(output)
            if kind != "categorical":
                line, column = position(fields["options"])
                message = f'evaluator "{name}": options are for a categorical output, not {kind}'
                hint = "remove the options, or make the output categorical"
                problems.append(Problem(doc.path, line, column, message, hint))
    return problems


def _definitions(doc: Document) -> Definitions:
    found = Definitions()
    for name, _, value in mapping_items(doc, doc.root):
        if name == "evaluators":
            for evaluator, _, body in mapping_items(doc, value):
                fields = dict((k, v) for k, _, v in mapping_items(doc, body))
                options: tuple[str, ...] = ()
                if isinstance(fields.get("options"), SequenceNode):
                    options = tuple(scalar_text(o) or "" for o in fields["options"].value)
                output = scalar_text(fields["output"]) or ""
                found.evaluators[evaluator] = Evaluator(evaluator, output, options)
        if name != "definitions":
            continue
        for key, _, body in mapping_items(doc, value):
            fields = dict((k, v) for k, _, v in mapping_items(doc, body))
            kind = scalar_text(fields["type"]) or ""
            options = ()
            if "options" in fields and isinstance(fields["options"], SequenceNode):
                options = tuple(scalar_text(o) or "" for o in fields["options"].value)
            low = to_python(doc, fields.get("min")) if "min" in fields else None
            high = to_python(doc, fields.get("max")) if "max" in fields else None
            # Numbers or absent: the schema has checked them (load_definitions).
            found[key] = Definition(
                key,
                kind,
                options,
                cast("float | None", low),
                cast("float | None", high),
                scalar_text(fields["id"]) or "" if "id" in fields else "",
            )
    assert isinstance(doc.root, MappingNode)
    return found
