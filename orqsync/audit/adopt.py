"""`orqsync import FILE`: adopt labels that already exist in orq.ai, sending nothing.

The file lists annotations as rows (trace_id, span_id, key, value), in JSONL (typed JSON
values) or CSV (text, read by the key's definition), or is a file written by `orqsync export`.
Every row is checked against definitions.yaml and the project's rules, and against what the
repository already declares and what the state already records; all problems are reported,
with the row's line, before anything is written. Then (commands/imports.py), under the state
lock, a YAML file declaring the new labels is written and read back through the normal loader
(a failure there removes it again), and the labels enter the state with an
`import-<file hash>` provenance, so that `orqsync plan` finds nothing to do for them.

An export gives each label's metadata too, and the import keeps it exactly: the YAML file
says it (in the file's `metadata` what most spans share, in a span's `metadata` the rest; a
span whose keys carry different metadata is written once for each), so that the labels read
back with the same metadata, over the project's own from orqsync.yaml. An annotation file can
override the project's metadata but not take a name of it away: a label whose metadata lacks
one is refused. Rows of trace_id, span_id, key, value say no metadata: theirs is the project's.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from orqsync.audit.export import CSV_COLUMNS, FORMAT, NEUTRALIZED, REVIEW_COLUMNS
from orqsync.errors import OrqsyncError, Problem, ProblemsError
from orqsync.model import (
    CORRECTION_MARK,
    Annotation,
    Correction,
    Metadata,
    SpanId,
    Value,
    parent_id,
    same_value,
    value_json,
)
from orqsync.review.render import value_text
from orqsync.source.definitions import Definition, Definitions
from orqsync.source.desired import DesiredState, key_problem, owned
from orqsync.source.ids import correction_id_problem, id_problem
from orqsync.source.project import PROJECT_FILE, Settings, normalize_metadata
from orqsync.source.values import Invalid, check_value, read_correction
from orqsync.source.yamlfile import resolve_plain
from orqsync.state.model import Applied
from orqsync.text import plural

DEFAULT_OUT = "annotations/imported.yaml"
FORMATS = ("jsonl", "csv")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
_STR = "tag:yaml.org,2002:str"
_COLUMNS = ("trace_id", "span_id", "key", "value")
# The metadata names an annotation file can hold (schemas/annotations.schema.json).
METADATA_NAMES = ("identityId", "identity_id", "source", "reviewerId")


class ImportProblemsError(ProblemsError):
    """Problems in the import file (or the repository); nothing was written."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems)
        count = len(self.problems)
        self.message = f"{plural(count, 'problem', grouped=False)} found; nothing was written"


@dataclass(frozen=True, slots=True)
class Row:
    """One (trace, span, key) of the import file; the value as a YAML node, so that it is
    judged by `check_value` exactly as a value in an annotation file."""

    line: int
    trace_id: object
    span_id: object
    key: str
    node: Node
    metadata: Metadata | None = None  # as an export gives it; None: the row says none


@dataclass(frozen=True, slots=True)
class Imported:
    """What an import did."""

    out: str  # the YAML file written, "" when every label was already declared
    declared: int  # labels written to the YAML file
    adopted: int  # labels added to the state
    unchanged: int  # rows already declared and in the state with the same value
    plan_id: str


def _scalar(text: str, quoted: bool) -> ScalarNode:
    return ScalarNode(_STR, text, style='"' if quoted else None)


def json_node(value: object) -> Node:
    """A JSON value as the YAML node that would hold it (strings quoted: text stays text)."""
    if isinstance(value, str):
        return _scalar(value, True)
    if isinstance(value, bool):
        return _scalar("true" if value else "false", False)
    if isinstance(value, (int, float)):
        return _scalar(json.dumps(value), False)
    if isinstance(value, list):
        return SequenceNode("tag:yaml.org,2002:seq", [json_node(item) for item in value])
    if isinstance(value, dict):  # a correction: {value, explanation}
        pairs = [(_scalar(str(name), False), json_node(item)) for name, item in value.items()]
        return MappingNode("tag:yaml.org,2002:map", pairs)
    return _scalar("", False)  # null


def text_node(text: str, definition: Definition | None) -> Node | str:
    """A CSV cell read by its key's definition; a str is why it cannot be read."""
    if definition is None or definition.type in ("single_select", "text"):
        return _scalar(text, True) if text != "" else _scalar("", False)
    if definition.type == "multi_select":
        stripped = text.strip()
        if stripped.startswith("["):
            try:
                items = json.loads(stripped)
            except json.JSONDecodeError:
                return f'"{definition.key}": {text} is not a JSON list'
            if not isinstance(items, list):
                return f'"{definition.key}": {text} is not a JSON list'
            return json_node(items)
        if not stripped:
            return _scalar("", False)
        parts = [part.strip() for part in stripped.split("|")]
        return SequenceNode("tag:yaml.org,2002:seq", [_scalar(part, True) for part in parts])
    return _scalar(text.strip(), False)  # range, boolean: read as YAML would read them


def read_metadata(data: object, what: str) -> Metadata | Invalid:
    """Metadata as an export writes it (a JSON object of names and texts), in the names the
    state keeps; or why an annotation file could not hold it."""
    if not isinstance(data, dict):
        return Invalid(
            f"{what} must be a JSON object, got {_json(data)}", 'write {"source": "..."}'
        )
    for name, value in data.items():
        if name not in METADATA_NAMES:
            return Invalid(
                f'{what}: "{name}" is not a metadata name an annotation file can hold',
                f"the names are {', '.join(METADATA_NAMES)}",
            )
        if not isinstance(value, str):
            return Invalid(f"{what}: {name} must be text, got {_json(value)}", "write it in quotes")
    if "identityId" in data and "identity_id" in data:
        return Invalid(f"{what}: identityId and identity_id are one name", "keep one of them")
    return tuple(sorted(normalize_metadata(data).items()))


def _json(data: object) -> str:
    return json.dumps(data, ensure_ascii=False)


def detect_format(path: str, fmt: str | None) -> str:
    if fmt:
        return fmt
    found = _EXTENSIONS.get(os.path.splitext(path)[1].lower())
    if found is None:
        raise OrqsyncError(
            f"cannot tell the format of {path} from its name",
            "pass --format jsonl or --format csv",
        )
    return found


def _read_jsonl(text: str, display: str) -> tuple[list[Row], list[Problem]]:
    rows: list[Row] = []
    problems: list[Problem] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(
                Problem(display, number, None, f"not valid JSON ({exc.msg})", "one object a line")
            )
            continue
        if not isinstance(data, dict):
            problems.append(
                Problem(
                    display,
                    number,
                    None,
                    "expected a JSON object",
                    'write {"trace_id": ..., "span_id": ..., "key": ..., "value": ...}',
                )
            )
            continue
        if "manifest" in data:
            continue  # the first line of an `orqsync export`
        if isinstance(data.get("annotations"), dict) and "key" not in data:  # an export row
            rows += _export_row(data, number, display, problems)
            continue
        missing = [name for name in _COLUMNS if name not in data]
        if missing:
            problems.append(
                Problem(
                    display,
                    number,
                    None,
                    f"missing {', '.join(missing)}",
                    "each line needs trace_id, span_id, key and value",
                )
            )
            continue
        if not isinstance(data["key"], str):
            problems.append(Problem(display, number, None, "key must be text", "quote the key"))
            continue
        rows.append(
            Row(number, data["trace_id"], data["span_id"], data["key"], json_node(data["value"]))
        )
    return rows, problems


def _export_row(
    data: dict[str, Any], line: int, display: str, problems: list[Problem]
) -> list[Row]:
    """The labels of one JSONL export row, each with its metadata (a key missing from
    "metadata" has none; a row with no "metadata" at all says none)."""
    metadata = data.get("metadata")
    if "metadata" in data and not isinstance(metadata, dict):
        problems.append(
            Problem(display, line, None, f'"metadata" must be a JSON object, got {_json(metadata)}')
        )
        return []
    rows = []
    for key, value in data["annotations"].items():
        meta: Metadata | None = None
        if metadata is not None:
            read = read_metadata(metadata.get(key, {}), f'the metadata of "{key}"')
            if isinstance(read, Invalid):
                problems.append(Problem(display, line, None, read.message, read.hint))
                continue
            meta = read
        trace_id, span_id = data.get("trace_id"), data.get("span_id")
        rows.append(Row(line, trace_id, span_id, key, json_node(value), meta))
    return rows


def _read_csv(text: str, display: str, definitions: Definitions) -> tuple[list[Row], list[Problem]]:
    lines = text.split("\n")
    skipped = 0
    export = False
    neutralized = False  # cells that could start a formula carry a leading ' (export)
    while skipped < len(lines) and lines[skipped].startswith("#"):
        with contextlib.suppress(json.JSONDecodeError, AttributeError, TypeError):
            manifest = json.loads(lines[skipped][1:])["manifest"]
            export = export or manifest.get("format") == FORMAT
            neutralized = neutralized or manifest.get("formulas") == NEUTRALIZED
        skipped += 1
    reader = csv.reader(io.StringIO("\n".join(lines[skipped:]), newline=""), strict=True)
    rows: list[Row] = []
    problems: list[Problem] = []
    try:
        header = next(reader, None)
    except csv.Error as exc:
        return [], [Problem(display, skipped + 1, None, f"not valid CSV ({exc})")]
    if header is not None and neutralized:
        header = [cell[1:] if cell.startswith("'") else cell for cell in header]
    header_line = skipped + reader.line_num
    if header is None:
        return [], [Problem(display, header_line, None, "the file has no header row")]
    columns = {name: index for index, name in enumerate(header)}
    if export:
        info = {f"{k}.{c}" for k in header for c in (*CSV_COLUMNS, *REVIEW_COLUMNS)}
        keys = [name for name in header if name not in ("trace_id", "span_id") and name not in info]
        needed: tuple[str, ...] = ("trace_id", "span_id")
    else:
        keys = []
        needed = _COLUMNS
    missing = [name for name in needed if name not in columns]
    if missing:
        return [], [
            Problem(
                display,
                header_line,
                None,
                f"the header has no column {', '.join(missing)}",
                "the columns are trace_id, span_id, key, value (others are ignored), "
                "or the file is one written by `orqsync export --format csv`",
            )
        ]
    last = reader.line_num
    while True:
        try:
            cells = next(reader, None)
        except csv.Error as exc:
            problems.append(Problem(display, skipped + last + 1, None, f"not valid CSV ({exc})"))
            break
        line = skipped + last + 1
        last = reader.line_num
        if cells is None:
            break
        if not cells or cells == [""]:
            continue
        if neutralized:
            cells = [cell[1:] if cell.startswith("'") else cell for cell in cells]
        if len(cells) != len(header):
            problems.append(
                Problem(
                    display,
                    line,
                    None,
                    f"{len(cells)} cells, the header has {len(header)}",
                    "quote cells that hold a comma",
                )
            )
            continue
        trace_id, span_id = cells[columns["trace_id"]], cells[columns["span_id"]]
        if not export:
            key, value = cells[columns["key"]], cells[columns["value"]]
            node = (
                _correction_value_cell(value)
                if parent_id(key) is not None
                else text_node(value, definitions.get(key))
            )
            if isinstance(node, str):
                problems.append(Problem(display, line, None, node, "write a JSON list or a|b"))
                continue
            rows.append(Row(line, trace_id, span_id, key, node))
            continue
        for key in keys:
            row = _export_cells(key, cells, columns, definitions)
            if isinstance(row, Invalid):
                problems.append(Problem(display, line, None, row.message, row.hint))
            elif row is not None:
                node, metadata = row
                rows.append(Row(line, trace_id, span_id, key, node, metadata))
    return rows, problems


def _export_cells(
    key: str, cells: list[str], columns: dict[str, int], definitions: Definitions
) -> tuple[Node, Metadata | None] | Invalid | None:
    """The label `key` of a CSV export row with its metadata, or None when the row has none.

    An empty value cell is no label, unless one of the key's other cells is filled: then it
    is an empty text (export writes `{}` as its metadata when nothing else would be)."""
    value = cells[columns[key]]
    named = [columns.get(f"{key}.{column}") for column in CSV_COLUMNS]
    if value == "" and not any(cells[index] for index in named if index is not None):
        return None
    definition = definitions.get(key)
    if parent_id(key) is not None:
        node: Node | str = _correction_cell(key, value)
    elif value == "" and (definition is None or definition.type == "text"):
        node = _scalar("", True)
    else:
        node = text_node(value, definition)
    if isinstance(node, str):
        return Invalid(node, "write a JSON list or a|b")
    index = columns.get(f"{key}.metadata")
    if index is None:
        return node, None
    what = f'the cell "{key}.metadata"'
    try:
        data = json.loads(cells[index]) if cells[index] else {}
    except json.JSONDecodeError:
        return Invalid(f"{what} is not JSON", 'write a JSON object like {"source": "..."}')
    metadata = read_metadata(data, what)
    return metadata if isinstance(metadata, Invalid) else (node, metadata)


def _correction_value_cell(text: str) -> Node:
    """A correction's value cell in rows of trace_id, span_id, key, value: JSON when it is
    (a number, true, a list, or the {value, explanation} object export writes), else text."""
    try:
        return json_node(json.loads(text))
    except json.JSONDecodeError:
        return _scalar(text, True)


def _correction_cell(key: str, text: str) -> Node | str:
    """A correction's CSV cell: the JSON object export writes; a str is why it is not one."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        return f'"{key}": {text} is not a JSON object of a value and an explanation'
    return json_node(data)


def read_rows(
    path: str, display: str, fmt: str, definitions: Definitions
) -> tuple[list[Row], list[Problem], bytes]:
    """The rows of an import file, the problems found reading it, and its bytes."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise OrqsyncError(f"{display}: file not found", "check the path") from None
    except OSError as exc:
        raise OrqsyncError(f"{display}: cannot read the file: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problem = Problem(display, line, None, "the file is not UTF-8", "save it as UTF-8")
        return [], [problem], raw
    if fmt == "jsonl":
        rows, problems = _read_jsonl(text.replace("\r\n", "\n"), display)
    else:  # the csv module reads \r\n line ends itself, and keeps them inside quoted cells
        rows, problems = _read_csv(text, display, definitions)
    return rows, problems, raw


def _id_problem(value: object, what: str, id_format: str) -> tuple[str, str] | None:
    if not isinstance(value, str):
        return f"{what} must be text, got {json.dumps(value)}", f"write the {what} in quotes"
    if not value.strip():
        return f"{what} is empty", f"write the {what}"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return f"{what} holds a control character", "remove it"
    if value != value.strip():
        return f"{what} has leading or trailing spaces", "remove the spaces"
    return id_problem(value, what, id_format)


@dataclass(frozen=True, slots=True)
class _Label:
    line: int
    value: Value
    metadata: Metadata | None  # the row's, exactly; None: the row says none


def metadata_text(metadata: Metadata) -> str:
    return _json(dict(metadata))


def _row_value(row: Row, settings: Settings, definitions: Definitions) -> Value | Invalid:
    """A row's canonical value under its key's definition (or, for a correction's key, as a
    correction), or why it cannot be taken."""
    parent = parent_id(row.key)
    if parent is not None:
        wrong = correction_id_problem(parent)
        if wrong is not None:
            return Invalid(*wrong)
        if not owned(row.key, settings.owned_keys):
            return Invalid(
                f"correction of {parent}: corrections are not in policy.owned_keys",
                f'add "{CORRECTION_MARK}*" to policy.owned_keys in orqsync.yaml, or leave the '
                "row out",
            )
        what = f"correction of {parent}"
        return read_correction(what, row.node, definitions.evaluators, settings.string_limit)
    refused = key_problem(
        row.key,
        definitions,
        settings,
        row.key in definitions and owned(row.key, settings.owned_keys),
        define="",
        or_else="leave the row out",
    )
    if refused is not None:
        return Invalid(*refused)
    return check_value(definitions[row.key], row.node, settings.string_limit)


def check_rows(
    rows: list[Row],
    display: str,
    settings: Settings,
    definitions: Definitions,
) -> tuple[dict[tuple[str, str, str], _Label], list[Problem]]:
    """Each row's canonical value, or why the API (or the project) would refuse it."""
    labels: dict[tuple[str, str, str], _Label] = {}
    problems: list[Problem] = []
    # Rows whose metadata lacks names the project's metadata gives every label, by those names
    lacking: dict[tuple[str, ...], list[Row]] = {}

    def problem(row: Row, message: str, hint: str = "") -> None:
        problems.append(Problem(display, row.line, None, message, hint))

    for row in rows:
        bad_ids = [
            p
            for p in (
                _id_problem(row.trace_id, "trace_id", settings.id_format),
                _id_problem(row.span_id, "span_id", settings.id_format),
            )
            if p
        ]
        for message, hint in bad_ids:
            problem(row, message, hint)
        value = _row_value(row, settings, definitions)
        if isinstance(value, Invalid):
            problem(row, value.message, value.hint)
            continue
        if bad_ids:
            continue
        if not _encodable((row.trace_id, row.span_id, row.key, value_json(value), row.metadata)):
            problem(row, "the row holds a lone surrogate (\\ud800-\\udfff): not valid Unicode")
            continue
        assert isinstance(row.trace_id, str) and isinstance(row.span_id, str)
        label = (row.trace_id, row.span_id, row.key)
        if row.metadata is not None:
            held = dict(row.metadata)
            missing = tuple(name for name in sorted(settings.metadata) if name not in held)
            if missing:
                lacking.setdefault(missing, []).append(row)
        previous = labels.get(label)
        if previous is not None:
            where = f'"{row.key}" of span {row.trace_id}/{row.span_id} is also on line'
            if not same_value(previous.value, value):
                problem(
                    row,
                    f"{where} {previous.line} with another value ({value_text(previous.value)})",
                    "keep one of the two rows",
                )
            elif None not in (previous.metadata, row.metadata) and (
                previous.metadata != row.metadata
            ):
                assert previous.metadata is not None
                problem(
                    row,
                    f"{where} {previous.line} with other metadata "
                    f"({metadata_text(previous.metadata)})",
                    "keep one of the two rows",
                )
            elif previous.metadata is None:
                labels[label] = _Label(previous.line, previous.value, row.metadata)
            continue
        labels[label] = _Label(row.line, value, row.metadata)
    for missing, found in lacking.items():
        first = found[0]
        assert first.metadata is not None
        others = len(found) - 1
        more = f" ({plural(others, 'more label', grouped=False)} of the file too)" if others else ""
        names = ", ".join(missing)
        problem(
            first,
            f'"{first.key}" of span {first.trace_id}/{first.span_id} has the metadata '
            f"{metadata_text(first.metadata)}, without {names}, which {PROJECT_FILE} gives "
            f"every label{more}",
            f"an annotation file cannot take a name of the project's metadata away: remove "
            f"{names} from metadata in {PROJECT_FILE}, or import into a project without it",
        )
    return labels, problems


def _encodable(data: object) -> bool:
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# Characters YAML does not allow raw in a file, or reads as line breaks: escaped.
_UNSAFE = re.compile(
    "[^\t\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[\u2028\u2029\ufeff]"
)
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_RESERVED = {"true", "false", "null", "yes", "no", "on", "off", "y", "n"}


def yaml_text(text: str) -> str:
    """`text` as a YAML double-quoted scalar (JSON escapes are YAML escapes)."""
    dumped = json.dumps(text, ensure_ascii=False)
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", dumped)


def _yaml_key(key: str) -> str:
    if _PLAIN_KEY.fullmatch(key) and key.lower() not in _RESERVED:
        return key
    return yaml_text(key)


def _yaml_value(value: Value) -> str:
    if isinstance(value, Correction):
        fields = f"value: {_yaml_value(value.value)}"
        if value.explanation is not None:
            fields += f", explanation: {yaml_text(value.explanation)}"
        return "{" + fields + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(yaml_text(item) for item in value) + "]"
    return yaml_text(value)


_PLAIN_TEXT = re.compile(r"[A-Za-z_][A-Za-z0-9_.@-]*")


def _metadata_value(text: str) -> str:
    """A metadata value in a flow mapping: plain when YAML reads it back as that text (the fast
    reader takes those), else double-quoted."""
    if (
        _PLAIN_TEXT.fullmatch(text)
        and text.lower() not in _RESERVED
        and resolve_plain(text) == text
    ):
        return text
    return yaml_text(text)


def _flow_metadata(metadata: Mapping[str, str]) -> str:
    items = ", ".join(f"{name}: {_metadata_value(text)}" for name, text in sorted(metadata.items()))
    return "{" + items + "}"


def _file_metadata(targets: list[dict[str, str]], project: Mapping[str, str]) -> dict[str, str]:
    """What the file's `metadata` says, over the project's: for each name that every target
    has, the value most spans give it (ties: the least), unless the project gives that already.
    Names some target lacks stay out, as spans cannot take a name away."""
    if not targets:
        return {}
    names = set(targets[0]).intersection(*targets[1:])
    chosen = {}
    for name in sorted(names):
        counts = Counter(target[name] for target in targets)
        value = min(counts.items(), key=lambda item: (-item[1], item[0]))[0]
        if project.get(name) != value:
            chosen[name] = value
    return chosen


def render_yaml(
    labels: Mapping[tuple[str, str, str], Value],
    source: str,
    metadata: Mapping[tuple[str, str, str], Metadata] | None = None,
    project: Mapping[str, str] | None = None,
) -> str:
    """The annotation file declaring `labels`: sorted, ids always quoted. Each label reads back
    with its `metadata` (the project's, `project`, when not given), which must hold every name
    of the project's: the file's and spans' metadata say the difference. A span whose keys
    carry different metadata is written once for each."""
    project = dict(project or {})
    base = tuple(sorted(project.items()))
    given = metadata or {}
    spans: dict[SpanId, dict[Metadata, dict[str, Value]]] = {}
    for label, value in labels.items():
        trace_id, span_id, key = label
        groups = spans.setdefault((trace_id, span_id), {})
        groups.setdefault(given.get(label, base), {})[key] = value
    targets = [dict(target) for groups in spans.values() for target in groups]
    file_meta = _file_metadata(targets, project)
    head = {**project, **file_meta}
    out = [
        f"# Labels adopted from {os.path.basename(source)} by `orqsync import`: they already",
        "# existed in orq.ai. Edit them here like any other annotation.",
        "version: 1",
    ]
    if file_meta:
        out.append(f"metadata: {_flow_metadata(file_meta)}")
    out.append("spans:")
    for (trace_id, span_id), groups in sorted(spans.items()):
        entries = []
        for target, keys in groups.items():
            missing = set(head) - {name for name, _ in target}
            assert not missing, f"metadata {target} lacks {missing}: check_rows refuses it"
            own = {name: text for name, text in target if head.get(name) != text}
            entries.append((_flow_metadata(own) if own else "", keys))
        for own_text, keys in sorted(entries, key=lambda entry: entry[0]):
            out.append(f"  - trace_id: {yaml_text(trace_id)}")
            out.append(f"    span_id: {yaml_text(span_id)}")
            if own_text:
                out.append(f"    metadata: {own_text}")
            annotations = {k: v for k, v in keys.items() if parent_id(k) is None}
            if annotations:
                out.append("    annotations:")
            for key, value in sorted(annotations.items()):
                out.append(f"      {_yaml_key(key)}: {_yaml_value(value)}")
            corrections = {parent_id(k): v for k, v in keys.items() if parent_id(k) is not None}
            if corrections:
                out.append("    corrections:")
            for parent, value in sorted(corrections.items()):
                out.append(f"      {yaml_text(str(parent))}: {_yaml_value(value)}")
    return "\n".join(out) + "\n"


def conflicts(
    labels: dict[tuple[str, str, str], _Label],
    display: str,
    declared: DesiredState,
    skip_file: str,
    state_spans: Mapping[SpanId, Mapping[str, Applied]],
) -> tuple[list[Problem], set[tuple[str, str, str]], set[tuple[str, str, str]]]:
    """Rows that contradict the YAML or the state (in value, or in metadata when the row
    gives it); and which labels each already holds."""
    problems = []
    in_yaml: set[tuple[str, str, str]] = set()
    in_state: set[tuple[str, str, str]] = set()
    for label, row in sorted(labels.items(), key=lambda item: item[1].line):
        trace_id, span_id, key = label
        where = f'"{key}" of span {trace_id}/{span_id}'

        def problem(message: str, hint: str, row: _Label = row) -> None:
            problems.append(Problem(display, row.line, None, message, hint))

        annotation: Annotation | None = declared.spans.get((trace_id, span_id), {}).get(key)
        if annotation is not None and annotation.path != skip_file:
            hint = (
                "leave the row out, or change the YAML first: import adopts only labels the "
                "repository does not declare otherwise"
            )
            at = f"{annotation.path}:{annotation.line}"
            if not same_value(annotation.value, row.value):
                problem(
                    f"{where} is declared at {at} as {value_text(annotation.value)}; "
                    f"the import says {value_text(row.value)}",
                    hint,
                )
                continue
            if row.metadata is not None and row.metadata != annotation.metadata:
                problem(
                    f"{where} is declared at {at} with the metadata "
                    f"{metadata_text(annotation.metadata)}; the import says "
                    f"{metadata_text(row.metadata)}",
                    hint,
                )
                continue
            in_yaml.add(label)
        applied = state_spans.get((trace_id, span_id), {}).get(key)
        if applied is None:
            continue
        hint = (
            "the state records what orqsync wrote: leave the row out, or if orq.ai really holds "
            "the imported {}, `orqsync state rm` the label first"
        )
        if not same_value(applied.value, row.value):
            prov = applied.provenance
            by = ", ".join(
                x for x in (prov.author, f"commit {prov.commit[:7]}" if prov.commit else "") if x
            )
            problem(
                f"{where} is in the state as {value_text(applied.value)}"
                + (f" (applied by {by})" if by else "")
                + f"; the import says {value_text(row.value)}",
                hint.format("value"),
            )
        elif row.metadata is not None and row.metadata != applied.metadata:
            problem(
                f"{where} is in the state with the metadata {metadata_text(applied.metadata)}; "
                f"the import says {metadata_text(row.metadata)}",
                hint.format("metadata"),
            )
        else:
            in_state.add(label)
    return problems, in_yaml, in_state
