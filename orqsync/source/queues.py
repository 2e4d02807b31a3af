"""Queue files -> the annotation queues the repository declares, and the spans each routes.

A queue file (schemas/queue.schema.json; orqsync.yaml `queues`, default `queues/*.yaml`)
declares one orq.ai annotation queue: its name in the repository, the name and description
reviewers see, its project, the definitions reviewers use in it (by key; definitions.yaml
gives their ids), and its members: spans listed by id, and rules over the annotation files
(`where` a key holds a value, `unlabelled` a key). Everything is checked offline, every
problem placed at its line and column.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from orqsync.errors import Problem
from orqsync.model import Annotation, Label, SpanId
from orqsync.source.definitions import Definition, Definitions
from orqsync.source.desired import glob_files
from orqsync.source.ids import id_problem
from orqsync.source.project import PROJECT_FILE, Settings
from orqsync.source.schema import check
from orqsync.source.yamlfile import Document, decode_text, node_at, parse, to_python

# Items a request adds to a queue, and (the API names no limit; the same) span ids a request
# takes out of one (docs/api-contract.md, section 4.6).
ITEMS_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class Rule:
    """Spans of the annotation files to route: all `where` conditions hold (each a key and
    the values any of which it may hold), and the span does not carry `unlabelled`."""

    where: tuple[tuple[str, tuple[Label, ...]], ...] = ()
    unlabelled: str = ""

    def matches(self, annotations: Mapping[str, Annotation]) -> bool:
        return self.predicate()(annotations)

    def predicate(self) -> Callable[[Mapping[str, Annotation]], bool]:
        """`matches` as a function made once: membership tests every span of a repository.

        Values compare as same_value does (true is never 1; 1 is 1.0): each condition's
        values are split into a set of booleans and a set of the rest."""
        unlabelled = self.unlabelled
        conditions = [
            (
                key,
                frozenset(v for v in wanted if type(v) is bool),
                frozenset(v for v in wanted if type(v) is not bool),
            )
            for key, wanted in self.where
        ]

        def test(annotations: Mapping[str, Annotation]) -> bool:
            if unlabelled and unlabelled in annotations:
                return False
            for key, bools, others in conditions:
                held = annotations.get(key)
                if held is None:
                    return False
                value = held.value
                if type(value) is tuple:  # a multi select holds one of the values
                    if others.isdisjoint(value):
                        return False
                elif value not in (bools if type(value) is bool else others):
                    return False
            return True

        return test


@dataclass(frozen=True, slots=True)
class DesiredQueue:
    """One queue as its file declares it."""

    name: str
    display_name: str
    description: str
    project_id: str
    path: str  # the file, as the user reads it
    line: int  # of `name:`
    id: str = ""  # adopt this existing queue instead of creating one
    renamed_from: str = ""
    definitions: tuple[str, ...] = ()  # keys, as written
    human_review_ids: tuple[str, ...] = ()  # their ids, in the same order
    spans: tuple[SpanId, ...] = ()  # listed by id
    rules: tuple[Rule, ...] = ()

    def members(self, spans: Mapping[SpanId, Mapping[str, Annotation]]) -> frozenset[SpanId]:
        """The spans routed to the queue: those listed, and those of the annotation files
        (`spans`, the desired state's) that a rule selects."""
        chosen = set(self.spans)
        for rule in self.rules:
            test = rule.predicate()
            chosen.update([span for span, annotations in spans.items() if test(annotations)])
        return frozenset(chosen)


@dataclass(frozen=True, slots=True)
class Queues:
    """The queues declared, the hash of each queue file, and what is wrong in them."""

    queues: tuple[DesiredQueue, ...]
    files: dict[str, str]
    problems: tuple[Problem, ...] = ()

    @property
    def needs_labels(self) -> bool:
        """Whether a queue routes spans by rule: membership then depends on every span's
        labels, and a plan reads every annotation file."""
        return any(queue.rules for queue in self.queues)


def find_queue_files(settings: Settings) -> list[str]:
    """The queue files, the project's own files (definitions, orqsync.yaml) left out."""
    skip = {settings.definitions_path, settings.path(PROJECT_FILE)}
    return sorted(glob_files(settings, settings.queues) - skip)


def load_queues(settings: Settings, definitions: Definitions) -> Queues:
    """Every queue file of the project, checked against the schema, the definitions and each
    other."""
    queues: list[DesiredQueue] = []
    files: dict[str, str] = {}
    problems: list[Problem] = []
    names: dict[str, DesiredQueue] = {}
    ids: dict[str, DesiredQueue] = {}
    for path in find_queue_files(settings):
        display = settings.display(path)
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except OSError as exc:
            problems.append(Problem(display, None, None, f"cannot read the file: {exc.strerror}"))
            continue
        files[display] = hashlib.sha256(raw).hexdigest()
        text, unreadable = decode_text(raw, display)
        if text is None:
            problems.extend(unreadable)
            continue
        doc = parse(text, display)
        queue = _queue(doc, settings, definitions)
        problems.extend(doc.problems)
        if queue is None:
            continue
        for seen, key, what in ((names, queue.name, "name"), (ids, queue.id, "id")):
            first = seen.get(key) if key else None
            if first is not None:
                problems.append(
                    Problem(
                        display,
                        queue.line,
                        None,
                        f'the queue {what} "{key}" is also declared in {first.path}:{first.line}',
                        f"each queue is declared once: give this one another {what}"
                        if what == "name"
                        else "one queue file per orq.ai queue: remove one of the two ids",
                    )
                )
            elif key:
                seen[key] = queue
        queues.append(queue)
    for queue in queues:
        if queue.renamed_from and queue.renamed_from in names:
            other = names[queue.renamed_from]
            problems.append(
                Problem(
                    queue.path,
                    queue.line,
                    None,
                    f'renamed_from: "{queue.renamed_from}" is still declared, in '
                    f"{other.path}:{other.line}",
                    "a rename moves the queue: remove renamed_from, or the other file",
                )
            )
    return Queues(tuple(queues), files, tuple(problems))


def _queue(doc: Document, settings: Settings, definitions: Definitions) -> DesiredQueue | None:
    if doc.problems:
        return None
    data = to_python(doc, doc.root)
    if doc.root is None:
        doc.problem(None, "the file is empty", "start with `version: 1` and `name:`")
        return None
    schema_problems = check(doc, data, "queue")
    if schema_problems:
        doc.problems.extend(schema_problems)
        return None
    assert isinstance(data, dict)
    root = doc.root
    name_node = node_at(root, ("name",))
    line = (name_node.start_mark.line + 1) if name_node is not None else 1
    project_id = str(data.get("project_id") or settings.project_id)
    if not project_id:
        doc.problem(
            name_node,
            f'the queue "{data["name"]}" names no project (orq.ai creates a queue in one)',
            f"add `project_id: <id>` to this file, or a `project_id:` for every queue to "
            f"{PROJECT_FILE}",
        )
    keys: list[str] = data.get("definitions", [])
    review_ids = []
    for index, key in enumerate(keys):
        definition = definitions.get(key)
        node = node_at(root, ("definitions", index))
        if definition is None:
            doc.problem(node, f'"{key}" is not a key of definitions.yaml', _known(definitions))
        elif not definition.id:
            doc.problem(
                node,
                f'definitions.yaml gives "{key}" no id; a queue names its definitions by id',
                f"add `id: <ULID>` to {key} in definitions.yaml (the id orq.ai shows for the "
                "human review, or in a queue item's used_human_review_ids)",
            )
        else:
            review_ids.append(definition.id)
    spans = []
    for index, item in enumerate(data.get("spans", [])):
        span = []
        for part in ("trace_id", "span_id"):
            wrong = id_problem(item[part], part, settings.id_format)
            if wrong is not None:
                doc.problem(node_at(root, ("spans", index, part)), *wrong)
            span.append(item[part])
        spans.append((span[0], span[1]))
    rules = tuple(
        _rule(doc, definitions, rule, index) for index, rule in enumerate(data.get("select", []))
    )
    if doc.problems:
        return None
    return DesiredQueue(
        name=data["name"],
        display_name=str(data.get("display_name", data["name"])),
        description=data.get("description", ""),
        project_id=project_id,
        path=doc.path,
        line=line,
        id=data.get("id", ""),
        renamed_from=data.get("renamed_from", ""),
        definitions=tuple(keys),
        human_review_ids=tuple(review_ids),
        spans=tuple(dict.fromkeys(spans)),
        rules=rules,
    )


def _known(definitions: Definitions) -> str:
    keys = sorted(definitions)
    shown = ", ".join(keys[:8]) + (", ..." if keys[8:] else "")
    return f"definitions.yaml declares: {shown}" if keys else "definitions.yaml declares no key"


def _rule(doc: Document, definitions: Definitions, data: dict[str, object], index: int) -> Rule:
    where: list[tuple[str, tuple[Label, ...]]] = []
    raw_where = data.get("where", {})
    assert isinstance(raw_where, dict)
    for key, wanted in raw_where.items():
        at = ("select", index, "where", key)
        definition = definitions.get(key)
        if definition is None:
            doc.problem(
                node_at(doc.root, at),
                f'"{key}" is not a key of definitions.yaml',
                _known(definitions),
            )
            continue
        values = wanted if isinstance(wanted, list) else [wanted]
        where.append((key, tuple(_condition(doc, definition, v, at) for v in values)))
    unlabelled = str(data.get("unlabelled", ""))
    if unlabelled and unlabelled not in definitions:
        doc.problem(
            node_at(doc.root, ("select", index, "unlabelled")),
            f'"{unlabelled}" is not a key of definitions.yaml',
            _known(definitions),
        )
    return Rule(tuple(where), unlabelled)


def _condition(
    doc: Document, definition: Definition, value: object, at: tuple[object, ...]
) -> Label:
    """A value a rule compares a label with, in the label's own form; a located problem when
    no label of the key could ever hold it."""
    key = definition.key
    if definition.is_select:
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if text not in definition.options:
            doc.problem(
                node_at(doc.root, at),
                f'{key} has no option "{text}"',
                f"{key}'s options: {', '.join(definition.options)}",
            )
        return text
    if definition.type == "boolean":
        if not isinstance(value, bool):
            doc.problem(node_at(doc.root, at), f"{key} is a boolean: write true or false")
            return False
        return value
    if definition.type == "range":
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            doc.problem(node_at(doc.root, at), f"{key} is a range: write a number")
            return 0
        return value
    return str(value)
