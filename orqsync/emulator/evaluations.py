"""Evaluator results the emulator knows: what a correction's `parent_annotation_id` names.

The file (EmulatorConfig.evaluations_path) is strict YAML (the rules of yamlfile.py) with one
field at the top level, a list of results:

    evaluator_results:
      - id: 01JCEVAL0000000000000000A1   # the result's id: what parent_annotation_id names
        trace_id: 0af7651916cd43dd8448eb211c80319c
        span_id: b7ad6b7169203331
        output: categorical                # boolean | number | categorical | string
        options: [billing, technical]      # categorical only, optional: the values it may take
        evaluator: tone_judge              # optional, informative

`id`, `trace_id`, `span_id`, `evaluator` and the options are taken as written (a span id of
digits stays text); none may be empty, and no id may be listed twice. Results added at run time
(`check_results`) follow the same rules, with JSON strings for the text fields.

The first problem found is raised as an EvaluationsError: in a file it names the file, line and
column; in a list added at run time it names the place, such as `evaluator_results[1].output`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .definitions import DefinitionsError
from .yamlfile import NULL, YamlReader, read_text

OUTPUT_TYPES = ("boolean", "number", "categorical", "string")
FIELDS = ("id", "trace_id", "span_id", "output", "options", "evaluator")
_REQUIRED = ("id", "trace_id", "span_id", "output")
_TEXT_FIELDS = ("id", "trace_id", "span_id", "evaluator")

# Where a problem is: () the result itself, ("name",) one of its fields, ("options", 2) an option.
Path = tuple[str | int, ...]
Fail = Callable[[Path, str, str], Exception]


class EvaluationsError(DefinitionsError):
    """Evaluator results that cannot be used: the message starts with `file:line:column` (or the
    place in a list added at run time) and `hint` says what to do. A DefinitionsError, so that
    whoever reports a bad definitions file reports a bad evaluations file the same way."""


@dataclass(frozen=True, slots=True)
class EvaluatorResult:
    """One evaluator result on one span; `options` empty means any categorical value."""

    id: str
    trace_id: str
    span_id: str
    output: str
    options: tuple[str, ...] = ()
    evaluator: str | None = None

    def as_dict(self) -> dict[str, object]:
        """The result as the file and the seed route write it (optional fields when set)."""
        found: dict[str, object] = {
            "id": self.id,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "output": self.output,
        }
        if self.options:
            found["options"] = list(self.options)
        if self.evaluator is not None:
            found["evaluator"] = self.evaluator
        return found


def load_evaluations(path: str) -> dict[str, EvaluatorResult]:
    """Read an evaluations file; raise EvaluationsError naming the place of any problem."""
    return parse_evaluations(read_text(path, "evaluations file", EvaluationsError), source=path)


def parse_evaluations(text: str, source: str = "<evaluations>") -> dict[str, EvaluatorResult]:
    """Parse the text of an evaluations file (see `load_evaluations`)."""
    return _Parser(source).parse(text.removeprefix("\ufeff"))


def check_results(entries: object, known: Mapping[str, EvaluatorResult]) -> list[EvaluatorResult]:
    """Check results added at run time (a list of mappings) against each other and `known`."""
    if not isinstance(entries, list | tuple):
        raise EvaluationsError(
            "evaluator_results must be a list of evaluator results",
            'send {"evaluator_results": [{"id": ..., "trace_id": ..., "span_id": ..., '
            '"output": ...}]}',
        )
    found: dict[str, int] = {}
    results: list[EvaluatorResult] = []
    for index, entry in enumerate(entries):

        def fail(path: Path, message: str, hint: str, index: int = index) -> Exception:
            return EvaluationsError(f"{_place(index, path)}: {message}", hint)

        if not isinstance(entry, Mapping):
            raise fail((), "an evaluator result must be a mapping", _SHAPE_HINT)
        result = check_result(entry, fail)
        if result.id in known:
            raise fail(
                ("id",),
                f'evaluator result "{result.id}" is already known',
                "use another id, or POST /_emulator/reset to drop the results added at run time",
            )
        if result.id in found:
            raise fail(
                ("id",),
                f'duplicate id "{result.id}" (also evaluator_results[{found[result.id]}])',
                "remove one of the two",
            )
        found[result.id] = index
        results.append(result)
    return results


def check_result(fields: Mapping[str, object], fail: Fail) -> EvaluatorResult:
    """One result's fields as plain values (text, lists, None): the result, or `fail`'s error."""
    for name in fields:
        if name not in FIELDS:
            raise fail((name,), f'an evaluator result has no field "{name}"', _FIELDS_HINT)
    for name in _REQUIRED:
        if name not in fields:
            raise fail((), f"an evaluator result needs `{name}`", _MISSING_HINTS[name])
    for name in _TEXT_FIELDS:
        if name in fields and not _is_text(fields[name]):
            raise fail((name,), f"`{name}` must be non-empty text", "write it as orq.ai shows it")
    output = fields["output"]
    if output not in OUTPUT_TYPES:
        problem = (
            f'unknown output "{output}"' if isinstance(output, str) else "`output` must be text"
        )
        raise fail(("output",), problem, f"use one of {', '.join(OUTPUT_TYPES)}")
    assert isinstance(output, str)
    options = _options(fields, output, fail)
    evaluator = fields.get("evaluator")
    return EvaluatorResult(
        id=str(fields["id"]),
        trace_id=str(fields["trace_id"]),
        span_id=str(fields["span_id"]),
        output=output,
        options=options,
        evaluator=evaluator if isinstance(evaluator, str) else None,
    )


_SHAPE_HINT = "give each result id, trace_id, span_id and output (options and evaluator may follow)"
_MISSING_HINTS = {
    "id": "add its `id`: the id that corrections name as parent_annotation_id",
    "trace_id": "add the `trace_id` of the span the result is on",
    "span_id": "add the `span_id` of the span the result is on",
    "output": f"add its `output`: one of {', '.join(OUTPUT_TYPES)}",
}
_FIELDS_HINT = f"remove it; an evaluator result takes {', '.join(FIELDS)}"


def _options(fields: Mapping[str, object], output: str, fail: Fail) -> tuple[str, ...]:
    if "options" not in fields:
        return ()
    if output != "categorical":
        raise fail(
            ("options",),
            f"a {output} result takes no options",
            "remove `options`, or make the output categorical",
        )
    options = fields["options"]
    if not isinstance(options, list | tuple) or not options:
        raise fail(
            ("options",),
            "`options` must be a non-empty list",
            "list the values the evaluator may give, e.g. [billing, technical]",
        )
    seen: dict[str, int] = {}
    for index, option in enumerate(options):
        if not _is_text(option):
            raise fail(("options", index), "an option must be non-empty text", "write its text")
        assert isinstance(option, str)
        if option in seen:
            raise fail(
                ("options", index),
                f'option "{option}" is listed twice (also at position {seen[option] + 1})',
                "remove one of the two",
            )
        seen[option] = index
    return tuple(seen)


def _is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _place(index: int, path: Path) -> str:
    place = f"evaluator_results[{index}]"
    for part in path:
        place += f"[{part}]" if isinstance(part, int) else f".{part}"
    return place


class _Parser(YamlReader):
    def __init__(self, source: str) -> None:
        super().__init__(source, EvaluationsError)

    def parse(self, text: str) -> dict[str, EvaluatorResult]:
        root = self.compose(text)
        if root is None:
            raise EvaluationsError(
                f"{self.source}: the file is empty; expected `evaluator_results:`",
                "start with `evaluator_results:` and a list of results",
            )
        if not isinstance(root, MappingNode):
            raise self.error(
                root, "the evaluations file must be a mapping", "start with `evaluator_results:`"
            )
        top = dict(self.fields(root))
        for name, (key_node, _) in top.items():
            if name != "evaluator_results":
                raise self.error(
                    key_node,
                    f'unknown field "{name}" at the top level',
                    "the top level holds only `evaluator_results:`",
                )
        if "evaluator_results" not in top:
            raise self.error(
                root, "missing `evaluator_results:`", "add `evaluator_results:` with a list"
            )
        list_node = top["evaluator_results"][1]
        if not isinstance(list_node, SequenceNode):
            raise self.error(
                list_node,
                "`evaluator_results` must be a list",
                "write each result as a `- id: ...` entry under `evaluator_results:`",
            )
        results: dict[str, EvaluatorResult] = {}
        first_line: dict[str, int] = {}
        for entry in list_node.value:
            if not isinstance(entry, MappingNode):
                raise self.error(entry, "an evaluator result must be a mapping", _SHAPE_HINT)
            result = self._result(entry)
            if result.id in results:
                id_node = dict(self.fields(entry))["id"][1]
                raise self.error(
                    id_node,
                    f'duplicate id "{result.id}" (first on line {first_line[result.id]})',
                    "remove one of the two",
                )
            results[result.id] = result
            first_line[result.id] = entry.start_mark.line + 1
        return results

    def _result(self, entry: MappingNode) -> EvaluatorResult:
        nodes = dict(self.fields(entry))

        def fail(path: Path, message: str, hint: str) -> Exception:
            if not path:
                return self.error(entry, message, hint)
            key_node, node = nodes[str(path[0])]
            if path[0] not in FIELDS:
                node = key_node  # an unknown field: point at its name
            elif len(path) > 1 and isinstance(node, SequenceNode):
                node = node.value[int(path[1])]
            return self.error(node, message, hint)

        return check_result({name: _plain(value) for name, (_, value) in nodes.items()}, fail)


def _plain(node: Node) -> object:
    """A node as plain values, scalars as written; a plain null is None, a mapping stays a node."""
    if isinstance(node, ScalarNode):
        return None if not node.style and node.value in NULL else node.value
    if isinstance(node, SequenceNode):
        return [_plain(item) for item in node.value]
    return node  # a mapping: never valid where a result's fields are read
