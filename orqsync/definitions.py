"""definitions.yaml -> the pinned Human Review definitions."""

from __future__ import annotations

from dataclasses import dataclass

from yaml.nodes import MappingNode, SequenceNode

from orqsync.errors import Problem
from orqsync.schema import check
from orqsync.yamlfile import Document, load, mapping_items, scalar_text, to_python

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
    problems = check(doc, data, "definitions")
    if problems:
        return {}, problems
    return _definitions(doc), doc.problems


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
            if kind == "range" and low is not None and high is not None and low > high:
                doc.problem(
                    body, f'definition "{key}": min {low} is above max {high}', "swap min and max"
                )
            found[key] = Definition(key, kind, options, low, high)
    assert isinstance(doc.root, MappingNode)
    return found
