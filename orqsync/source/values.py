"""Values against their definitions and limits, offline.

Every check here mirrors a 400 or 404 the API would answer, so that nothing it would refuse is
ever sent. The result of a good value is its canonical form (docs/design.md, section 3):
single select -> str; multi select -> sorted tuple of distinct str; range -> int when whole,
else float; boolean -> bool; text -> str.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from orqsync.model import Correction, Label, Value
from orqsync.source.definitions import Definition, Evaluator
from orqsync.source.yamlfile import resolve_scalar, scalar_text


@dataclass(frozen=True, slots=True)
class Invalid:
    """Why a value was refused, and what to do."""

    message: str
    hint: str = ""
    node: Node | None = None  # the part of the value at fault, when not the whole value


def canonical_number(number: float | int) -> int | float:
    """`1` and `1.0` are one value: whole numbers become int."""
    if isinstance(number, float) and number.is_integer():
        return int(number)
    return number


@dataclass(frozen=True, slots=True)
class Lenient:
    """A value read in its canonical form that was not written in it: said as a warning."""

    message: str
    hint: str
    node: Node


def check_value(
    definition: Definition,
    node: Node,
    string_limit: int,
    lenient: list[Lenient] | None = None,
) -> Value | Invalid:
    """The canonical value of `node` under `definition`, or why the API would refuse it.

    Three spellings are read as the canonical value they equal (docs/design.md, section 3), and each
    is noted in `lenient` when given: a one-item list for a single select, one option for a
    multi select, an option listed twice in a multi select.
    """
    key = definition.key
    kind = definition.type
    if kind == "single_select":
        if isinstance(node, SequenceNode):
            if len(node.value) != 1:
                return Invalid(
                    f'"{key}" is a single select and takes one option, got {len(node.value)}',
                    "keep one option, or make the definition multi_select",
                )
            if lenient is not None:
                lenient.append(
                    Lenient(
                        f'"{key}" is a single select: a list of one option is read as that option',
                        "write the option without brackets",
                        node,
                    )
                )
            node = node.value[0]
        text = _text(key, node)
        if isinstance(text, Invalid):
            return text
        return _option(definition, text, node)
    if kind == "multi_select":
        items = node.value if isinstance(node, SequenceNode) else [node]
        if not items:
            return Invalid(
                f'"{key}" needs at least one option',
                "to remove the label, delete the key instead",
            )
        chosen: set[str] = set()
        for item in items:
            text = _text(key, item)
            if isinstance(text, Invalid):
                return Invalid(text.message, text.hint, item)
            option = _option(definition, text, item)
            if isinstance(option, Invalid):
                return option
            if option in chosen and lenient is not None:
                lenient.append(
                    Lenient(
                        f'"{key}" lists "{option}" twice; it counts once', "remove the repeat", item
                    )
                )
            chosen.add(option)
        if not isinstance(node, SequenceNode) and lenient is not None:
            lenient.append(
                Lenient(
                    f'"{key}" is a multi select: one option is read as a list of it',
                    f"write it as a list: [{scalar_text(node)}]",
                    node,
                )
            )
        return tuple(sorted(chosen))
    if kind == "range":
        number = resolve_scalar(node) if isinstance(node, ScalarNode) else None
        if isinstance(node, ScalarNode) and bool(node.style):
            number = None
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            return Invalid(
                f'"{key}" is a range and takes a number, got {_describe(node)}',
                f"write a number from {_num(definition.min)} to {_num(definition.max)}",
            )
        if math.isnan(number) or math.isinf(number):
            return Invalid(
                f'"{key}" takes a finite number, got {node.value}',
                f"write a number from {_num(definition.min)} to {_num(definition.max)}",
            )
        assert definition.min is not None and definition.max is not None
        if not definition.min <= number <= definition.max:
            return Invalid(
                f"Value {_num(number)} is out of range [{_num(definition.min)}, "
                f'{_num(definition.max)}] for "{key}"',
                "use a value inside the range, or change the definition",
            )
        return canonical_number(number)
    if kind == "boolean":
        value = resolve_scalar(node) if isinstance(node, ScalarNode) else None
        if isinstance(node, ScalarNode) and bool(node.style):
            value = None
        if not isinstance(value, bool):
            return Invalid(
                f'"{key}" is a boolean and takes true or false, got {_describe(node)}',
                "write true or false (yes/no/on/off are not booleans here)",
            )
        return value
    # text
    text = _text(key, node)
    if isinstance(text, Invalid):
        return text
    return _too_long(f'"{key}"', text, string_limit) or text


def js_length(text: str) -> int:
    """A string's length as orq.ai (JavaScript) counts it: UTF-16 code units, so a character
    outside the Basic Multilingual Plane (most emoji) counts twice."""
    return len(text) if text.isascii() else len(text.encode("utf-16-le", "surrogatepass")) // 2


def _too_long(what: str, text: str, string_limit: int) -> Invalid | None:
    """The API's 400 for a text value over the string limit, or None."""
    length = js_length(text)
    if length <= string_limit:
        return None
    return Invalid(
        f"{what}: string value exceeds maximum length of {string_limit} characters ({length})",
        "shorten the text, or raise api.string_limit if your orq.ai accepts more (max 3000)",
    )


def _text(key: str, node: Node) -> str | Invalid:
    if not isinstance(node, ScalarNode):
        kind = "a list" if isinstance(node, SequenceNode) else "a mapping"
        return Invalid(
            f'"{key}": expected text, got {kind}',
            'write the text as a single value, in quotes if it contains ": " or starts with [ or {',
        )
    text = scalar_text(node)
    if text is None:
        return Invalid(
            f'"{key}": empty value',
            "write a value, quote it ('' for empty text), or delete the key to remove the label",
        )
    return text


def _option(definition: Definition, text: str, node: Node) -> str | Invalid:
    if text in definition.options:
        return text
    return Invalid(
        f'Invalid value "{text}" for "{definition.key}". '
        f"Valid options are: {', '.join(definition.options)}",
        "use one of the options, or add it to definitions.yaml after adding it in orq.ai",
        node,
    )


def _describe(node: Node) -> str:
    if isinstance(node, SequenceNode):
        return "a list"
    if isinstance(node, MappingNode):
        return "a mapping"
    text = scalar_text(node)
    if text is None or not isinstance(node, ScalarNode):  # scalar_text: None for the others
        return "an empty value"
    return f'"{text}"' if bool(node.style) else text


def _num(number: float | int | None) -> str:
    if number is None:
        return "?"
    value = canonical_number(number)
    return str(value)


EXPLANATION_LIMIT = 3000  # characters of a correction's explanation (docs/api-contract.md, 3.1)


def check_correction(
    what: str, node: Node, evaluator: Evaluator | None, string_limit: int
) -> Label | Invalid:
    """The canonical value of a correction (`what` names it in messages), or why the API
    would refuse it. Without an evaluator whose output type is declared, any value of the
    API's union is taken: text, a finite number, true or false, a list of text. With one, the
    value must fit its output: boolean, number, categorical (text, or a list of text, among
    its options when it lists them) or string."""
    output = evaluator.output if evaluator is not None else None
    if isinstance(node, SequenceNode):
        if output not in (None, "categorical"):
            return Invalid(f"{what} takes {_OUTPUT_WORDS[output]}, got a list", _fit_hint(output))
        if not node.value:
            return Invalid(f"{what} needs at least one item", "write the corrected value")
        items = []
        for item in node.value:
            text = _text(what, item)
            if isinstance(text, Invalid):
                return Invalid(text.message, text.hint, item)
            if isinstance(choice := _choice(what, evaluator, text, item), Invalid):
                return choice
            items.append(text)
        return tuple(items)
    if isinstance(node, MappingNode):
        return Invalid(f"{what}: expected a value, got a mapping", _fit_hint(output))
    plain = resolve_scalar(node) if isinstance(node, ScalarNode) and not node.style else None
    if isinstance(plain, bool) and output in (None, "boolean"):
        return plain
    number = isinstance(plain, (int, float)) and not isinstance(plain, bool)
    if number and output in (None, "number"):
        assert isinstance(plain, (int, float))
        if not math.isfinite(plain):
            return Invalid(f"{what} takes a finite number, got {node.value}", "write a number")
        return canonical_number(plain)
    if output in ("boolean", "number"):
        got = _describe(node)
        return Invalid(f"{what} takes {_OUTPUT_WORDS[output]}, got {got}", _fit_hint(output))
    text = _text(what, node)
    if isinstance(text, Invalid):
        return text
    return _too_long(what, text, string_limit) or _choice(what, evaluator, text, node)


_OUTPUT_WORDS = {
    None: "a value",
    "boolean": "true or false",
    "number": "a number",
    "categorical": "a category",
    "string": "text",
}


def _fit_hint(output: str | None) -> str:
    if output is None:
        return "write text, a number, true or false, or a list of text"
    return f"the evaluator's output is {output}: write {_OUTPUT_WORDS[output]}"


def _choice(what: str, evaluator: Evaluator | None, text: str, node: Node) -> str | Invalid:
    """A categorical correction's text, among the evaluator's options when it lists them."""
    if evaluator is None or not evaluator.options or text in evaluator.options:
        return text
    return Invalid(
        f'Invalid value "{text}" for {what}. Valid options are: {", ".join(evaluator.options)}',
        f'use one of the options of evaluator "{evaluator.name}", or add it in definitions.yaml',
        node,
    )


def read_correction(
    what: str, node: Node, evaluators: Mapping[str, Evaluator], string_limit: int
) -> Correction | Invalid:
    """A correction as an annotation file (or an import) writes it: the corrected value
    alone, or a mapping of `value`, an optional `explanation` and an optional `evaluator`
    (a name in `evaluators`, whose output type the value must then fit)."""
    fields: dict[str, Node] = {"value": node}
    if isinstance(node, MappingNode):
        fields = {}
        for key_node, value_node in node.value:
            name = scalar_text(key_node) if isinstance(key_node, ScalarNode) else None
            if name not in ("value", "explanation", "evaluator"):
                return Invalid(
                    f"{what}: unknown field {name}",
                    "a correction has value, explanation and evaluator",
                    key_node,
                )
            fields[name] = value_node
        if "value" not in fields:
            return Invalid(f"{what}: no value", "write the corrected value as `value:`")
    evaluator = None
    if "evaluator" in fields:
        name = scalar_text(fields["evaluator"]) or ""
        evaluator = evaluators.get(name)
        if evaluator is None:
            known = ", ".join(sorted(evaluators)) or "none"
            return Invalid(
                f'{what}: unknown evaluator "{name}": not in the evaluators of definitions.yaml',
                f"known evaluators: {known}; add it under `evaluators:` with its output",
                fields["evaluator"],
            )
    value = check_correction(what, fields["value"], evaluator, string_limit)
    if isinstance(value, Invalid):
        return (
            value if value.node is not None else Invalid(value.message, value.hint, fields["value"])
        )
    explanation = None
    if "explanation" in fields:
        text = _text(f"{what}: the explanation", fields["explanation"])
        if isinstance(text, Invalid):
            return Invalid(text.message, text.hint, fields["explanation"])
        if js_length(text) > EXPLANATION_LIMIT:
            return Invalid(
                f"{what}: the explanation is longer than {EXPLANATION_LIMIT} characters "
                f"({js_length(text)})",
                "shorten it",
                fields["explanation"],
            )
        explanation = text
    return Correction(value, explanation)
