"""`orqsync export`: the applied labels as a dataset, deterministic and traceable to a commit.

One row per span, sorted by (trace_id, span_id), with each key's value, metadata and
provenance. The first line is a manifest: the commit the state was read from, the state's
lineage and serial, the row count, the filters and the sha256 of everything after the manifest
line. Nothing in the output depends on the time or the machine, so the same state and filters
give the same bytes.

JSONL: line 1 `{"manifest": {...}}`, then one object per span:
    {"annotations": {KEY: VALUE}, "metadata": {KEY: {NAME: TEXT}},
     "provenance": {KEY: {"applied_at", "author", "commit", "plan_id", "run_url",
                          "uncommitted"}},
     "span_id": ..., "trace_id": ...}
  (keys sorted, compact separators, UTF-8 with U+0085/U+2028/U+2029 escaped; empty provenance
  fields and empty metadata left out: a key absent from "metadata" has none). A correction of
  an evaluator result is a key too: `@` and the result's id, with the value
  `{"value": VALUE, "explanation": TEXT}` (no explanation: none given).
CSV: line 1 `# {"manifest": {...}}` (read with pandas' `skiprows=1`, or `comment="#"`: every
  cell holding a `#` is quoted), then the header `trace_id,span_id,<key>...,<key>.<field>...`
  with one value column per key (sorted) and, per key, the columns `.commit`, `.author`,
  `.applied_at`, `.plan_id`, `.run_url`, `.uncommitted` and `.metadata` (compact JSON, empty
  when the label has none). Values: text as is, numbers as JSON numbers, booleans
  `true`/`false`, multi-select options as a JSON list, a correction (a column `@ID` for each
  evaluator result corrected) as its JSON object. An empty value cell means the span has
  no such label, unless one of the key's other cells is filled (its metadata cell is `{}` if
  need be): then the label is an empty text. Lines end with `\\n`. Exports written before
  the `.uncommitted` column existed lack it; `orqsync import` reads both.

Spreadsheet formulas: a CSV cell a spreadsheet would run as a formula (it starts with `=`, `+`,
`-`, `@`, a tab or a carriage return: OWASP's list), and one starting with `'`, gets a leading
`'`; numbers are written as numbers, untouched. The manifest says `"formulas": "neutralized"`,
and `orqsync import` strips exactly one leading `'` from every cell of such a file. `--raw`
writes cells as they are (`"formulas": "raw"`), for pipelines that read CSV, not people.
JSONL is always written as it is.

`--votes` (projects with reviews): how each label resolved from reviewers' votes was resolved,
as the apply that sent it recorded it: JSONL rows get `"reviews": {KEY: {"rule": RULE,
"votes": {REVIEWER: VALUE}}}` (keys not resolved from votes left out), CSV rows the columns
`<key>.rule` and `<key>.votes` (a JSON object) after each key's others, empty for a label not
resolved from votes; the manifest says `"votes": true`. RULE is the rule that decided
(majority, unanimous, priority, median, option_majority) or `adjudicated` when an adjudication
file's value won over the votes. `orqsync import` reads both and leaves the votes out.

`uncommitted` is the sha256 of the applied files whose changes `commit` does not hold ("" when
all were committed: left out of JSONL, an empty cell in CSV).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass

from orqsync.audit import gitrev
from orqsync.errors import OrqsyncError, StateError
from orqsync.model import Correction, Review, SpanId, value_json
from orqsync.source.definitions import Definitions, load_definitions
from orqsync.source.project import Settings
from orqsync.state.codec import parse_state
from orqsync.state.files import StateFile
from orqsync.state.model import Applied, State

FORMAT = "orqsync-export"
VERSION = 1
FORMATS = ("jsonl", "csv")
PROVENANCE_COLUMNS = ("commit", "author", "applied_at", "plan_id", "run_url", "uncommitted")
CSV_COLUMNS = (*PROVENANCE_COLUMNS, "metadata")
REVIEW_COLUMNS = ("rule", "votes")  # with --votes
# CSV cells a spreadsheet would run as a formula (OWASP's list), and the mark that defuses them
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")
NEUTRALIZED = "neutralized"  # the manifest's "formulas" of a CSV written without --raw


@dataclass(frozen=True, slots=True)
class Where:
    """`--where KEY=VALUE`: a span matches when its label KEY has VALUE (contains, for lists)."""

    key: str
    value: str

    def matches(self, applied: Applied | None) -> bool:
        if applied is None:
            return False
        value = applied.value
        if isinstance(value, Correction):
            value = value.value  # --where @ID=VALUE: what the evaluator's result was corrected to
        if isinstance(value, tuple):
            return self.value in value
        if isinstance(value, bool):
            return self.value == ("true" if value else "false")
        if isinstance(value, (int, float)):
            number = _number(self.value)
            return number is not None and number == value
        return self.value == value


@dataclass(frozen=True, slots=True)
class Export:
    """The dataset's bytes and what its manifest says."""

    data: bytes
    manifest: dict[str, object]
    rows: int


def _number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_where(texts: tuple[str, ...]) -> tuple[Where, ...]:
    found = []
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise OrqsyncError(
                f"--where {text}: expected KEY=VALUE",
                "for example --where rating=bad (repeat --where to require several)",
            )
        found.append(Where(key.strip(), value))
    return tuple(sorted(set(found), key=lambda w: (w.key, w.value)))


def _check_filters(
    keys: tuple[str, ...], where: tuple[Where, ...], state: State, definitions: Definitions
) -> None:
    """Catch a misspelled key or option before it silently exports nothing."""
    held = {key for span in state.spans.values() for key in span}
    for key in (*keys, *(w.key for w in where)):
        if key not in definitions and key not in held:
            known = ", ".join(sorted(set(definitions) | held)) or "none"
            raise OrqsyncError(
                f"no key {key} in the definitions or the state",
                f"known keys: {known}",
            )
    for condition in where:
        definition = definitions.get(condition.key)
        if definition is None:
            continue
        text = f"--where {condition.key}={condition.value}"
        if definition.is_select and condition.value not in definition.options:
            raise OrqsyncError(
                f'{text}: "{condition.value}" is not an option of {condition.key}',
                f"options: {', '.join(definition.options)}",
            )
        if definition.type == "range" and _number(condition.value) is None:
            raise OrqsyncError(f"{text}: {condition.key} is a range", "give a number")
        if definition.type == "boolean" and condition.value not in ("true", "false"):
            raise OrqsyncError(f"{text}: {condition.key} is a boolean", "give true or false")


Rows = list[tuple[SpanId, dict[str, Applied]]]
Reviewed = dict[SpanId, dict[str, Review]]


def select_rows(state: State, keys: tuple[str, ...], where: tuple[Where, ...]) -> Rows:
    """The spans that pass `where`, with only `keys` (all when empty), sorted by ids."""
    rows = []
    wanted = set(keys)
    for span, labels in sorted(state.spans.items()):
        if not all(condition.matches(labels.get(condition.key)) for condition in where):
            continue
        kept = {k: v for k, v in sorted(labels.items()) if not wanted or k in wanted}
        if kept:
            rows.append((span, kept))
    return rows


# Line separators other than \n, escaped so that no reader splitting lines (Python's
# str.splitlines, editors) cuts a row in two; they are only ever inside JSON strings.
_SEPARATORS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def _dumps(data: object) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.translate(_SEPARATORS)


def render_jsonl(rows: Rows, reviewed: Reviewed | None = None) -> str:
    """The rows as JSON lines; with `reviewed` (--votes), each row's "reviews" too."""
    lines = []
    for (trace_id, span_id), labels in rows:
        row: dict[str, object] = {
            "trace_id": trace_id,
            "span_id": span_id,
            "annotations": {k: value_json(a.value) for k, a in labels.items()},
            "metadata": {k: dict(a.metadata) for k, a in labels.items() if a.metadata},
            "provenance": {k: a.provenance.to_json() for k, a in labels.items()},
        }
        if reviewed is not None:
            held = reviewed.get((trace_id, span_id), {})
            row["reviews"] = {k: held[k].to_json() for k in labels if k in held}
        lines.append(_dumps(row) + "\n")
    return "".join(lines)


def _defused(text: str) -> str:
    """A text cell a spreadsheet cannot take for a formula: one that starts like one (or with
    the mark itself, so that reading strips exactly one) gets a leading '."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _cell(text: str) -> str:
    """RFC 4180 quoting, also for `#` so that readers skipping comments keep the cell whole."""
    if any(c in text for c in ',"\r\n#\x85\u2028\u2029') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, tuple, Correction)):
        return _dumps(value_json(value))
    return str(value)


def render_csv(rows: Rows, reviewed: Reviewed | None = None, raw: bool = False) -> str:
    """The rows as CSV; with `reviewed` (--votes), each key's `.rule` and `.votes` too.
    Unless `raw`, every cell but a number that starts like a spreadsheet formula gets a
    leading ' (the manifest says `"formulas": "neutralized"`; import strips it)."""
    keys = sorted({key for _, labels in rows for key in labels})
    columns = CSV_COLUMNS if reviewed is None else (*CSV_COLUMNS, *REVIEW_COLUMNS)
    header = ["trace_id", "span_id", *keys]
    header += [f"{key}.{column}" for key in keys for column in columns]
    defuse = (lambda text: text) if raw else _defused
    lines = [",".join(_cell(defuse(name)) for name in header)]
    no_reviews: dict[str, Review] = {}
    for (trace_id, span_id), labels in rows:
        cells = [trace_id, span_id]
        cells += [csv_value(labels[k].value) if k in labels else "" for k in keys]
        numbers = {
            2 + index
            for index, key in enumerate(keys)
            if key in labels and _is_number(labels[key].value)
        }
        held = no_reviews if reviewed is None else reviewed.get((trace_id, span_id), no_reviews)
        for key in keys:
            applied = labels.get(key)
            if applied is None:
                cells += [""] * len(columns)
                continue
            prov = applied.provenance
            info = [getattr(prov, column) for column in PROVENANCE_COLUMNS]
            # An empty text with no provenance and no metadata would leave every cell of the
            # key empty, which reads as no label: its metadata cell then says `{}`.
            present = applied.metadata or (applied.value == "" and not any(info))
            cells += [*info, _dumps(dict(applied.metadata)) if present else ""]
            if reviewed is not None:
                review = held.get(key)
                cells += [review.rule, _dumps(review.to_json()["votes"])] if review else ["", ""]
        lines.append(
            ",".join(
                _cell(cell if index in numbers else defuse(cell))
                for index, cell in enumerate(cells)
            )
        )
    return "".join(line + "\n" for line in lines)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_state_at(settings: Settings, rev: str) -> tuple[State, str]:
    root = gitrev.toplevel(os.path.dirname(settings.state_path))
    if root is None:
        raise OrqsyncError(
            f"--at {rev}: {settings.root} is not in a git repository",
            "--at reads the state as a commit recorded it; commit the state file to git",
        )
    rel = gitrev.relative(root, settings.state_path)
    sha = gitrev.resolve(root, rev)
    data = gitrev.show(root, sha, rel)
    if data is None:
        raise OrqsyncError(
            f"--at {rev}: {rel} does not exist in commit {sha[:7]}",
            f"pick a commit after the state was first committed (git log -- {rel})",
        )
    display = f"{rel} at {sha[:7]}"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise StateError(f"{display}: the state file is not UTF-8 text") from None
    return parse_state(text, display), sha


def read_state_working(settings: Settings) -> tuple[State, str]:
    """The working copy's state, and HEAD's sha when HEAD holds exactly that state ("" if not)."""
    files = StateFile.of(settings)
    if not files.exists():
        raise OrqsyncError(
            f"no state file at {files.display}: nothing has been applied yet",
            "run `orqsync apply` first (or pass -C DIR to point at the project)",
        )
    state = files.load()
    root = gitrev.toplevel(os.path.dirname(settings.state_path))
    if root is None:
        return state, ""
    sha = gitrev.head(root)
    if sha is None:
        return state, ""
    committed = gitrev.show(root, sha, gitrev.relative(root, settings.state_path))
    if committed is None:
        return state, ""
    with open(settings.state_path, "rb") as handle:
        if handle.read() == committed and not files.pending(state):
            return state, sha
    try:  # the same state written differently (line endings of a checkout): compare content
        same = parse_state(committed.decode("utf-8"), "HEAD") == state
    except (StateError, UnicodeDecodeError):
        same = False
    return state, sha if same else ""


def export(
    settings: Settings,
    *,
    fmt: str = "jsonl",
    keys: tuple[str, ...] = (),
    where: tuple[str, ...] = (),
    at: str | None = None,
    votes: bool = False,
    raw: bool = False,
) -> Export:
    """The dataset of the state in the working copy, or as of the git revision `at`; with
    `votes`, how each label resolved from reviewers' votes was resolved."""
    if fmt not in FORMATS:
        raise OrqsyncError(f"unknown export format {fmt}", "use jsonl or csv")
    state, commit = read_state_at(settings, at) if at else read_state_working(settings)
    conditions = parse_where(where)
    wanted = tuple(sorted(set(keys)))
    definitions, problems = load_definitions(
        settings.definitions_path, settings.display(settings.definitions_path)
    )
    # The filters are checked against definitions.yaml when it can be read; the export itself
    # needs only the state, so a broken definitions file does not block it.
    _check_filters(wanted, conditions, state, Definitions() if problems else definitions)
    rows = select_rows(state, wanted, conditions)
    reviewed = state.reviews if votes else None
    body = render_jsonl(rows, reviewed) if fmt == "jsonl" else render_csv(rows, reviewed, raw)
    data = body.encode("utf-8")
    manifest: dict[str, object] = {
        "format": FORMAT,
        "version": VERSION,
        "commit": commit,
        "dirty": not commit,
        "state_lineage": state.lineage,
        "state_serial": state.serial,
        "rows": len(rows),
        "content_sha256": hashlib.sha256(data).hexdigest(),
        "filters": {"keys": list(wanted), "where": [f"{w.key}={w.value}" for w in conditions]},
    }
    if votes:
        manifest["votes"] = True
    if fmt == "csv":
        manifest["formulas"] = "raw" if raw else NEUTRALIZED
    line = _dumps({"manifest": manifest})
    head = (line if fmt == "jsonl" else "# " + line) + "\n"
    return Export(head.encode("utf-8") + data, manifest, len(rows))
