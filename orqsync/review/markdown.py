"""Plans as a pull-request comment (`plan --format markdown`). Pure: strings in, strings out.

The comment opens with a hidden marker so that CI can update one sticky comment. Summary first
(counts, removal budget, how each key's labels move), then removals and value flips, then
additions, grouped per file and span in `diff` blocks. It is never longer than `limit`: when the
changes do not fit, they are cut at whole entries with every block closed, and a footer says how
many are not shown and where the full plan is.

User content (keys, values, paths, ids, metadata) goes only into code spans and code blocks, made
one line, so that it cannot break a table or inject markup.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from itertools import groupby

from orqsync.model import Correction, Metadata, parent_id
from orqsync.planning.plan import CREATE, DELETE, UPDATE, Change, Plan
from orqsync.review.render import (
    NO_CHANGES,
    key_text,
    left_out_text,
    list_delta,
    metadata_text,
    value_text,
)
from orqsync.state.model import State
from orqsync.text import plural

__all__ = ["MARKER", "Distribution", "label_distribution", "render_plan_markdown"]

MARKER = "<!-- orqsync-plan -->"
LIMIT = 60_000  # GitHub refuses comments over 65,536 characters
FULL_PLAN_HINT = "Run `orqsync plan --format json` for the full plan."
VALUE_PREVIEW = 80
NAME_PREVIEW = 60
SUMMARY_KEYS = 40
LABELS_PER_KEY = 8
DISTRIBUTION_ROWS = 150
OPEN_SECTION = 50  # a section with more changes starts collapsed

FLIPS = "Removals and value flips"
ADDITIONS = "Additions"
_NO_FILE = {0: "Removed from the repository", 2: "Source not recorded"}

_CONTROL = re.compile(r"\r\n|[\x00-\x1f\x7f]")
_SHOWN = {"\r\n": "⏎", "\r": "⏎", "\n": "⏎", "\t": " "}
_CLOSE = "```\n\n</details>\n\n"  # after any entry, a diff block and a section are open


@dataclass(frozen=True, slots=True)
class Distribution:
    """How one key's labels move over all spans of the state: (before, after) counts.

    `labels` are options, `true`/`false`, or text values, each with its counts, sorted by label;
    each option of a multi-select value counts. Numbers and text keys have no labels; numbers
    have a mean. `spans` counts the spans that carry the key at all.
    """

    key: str
    spans: tuple[int, int]
    labels: tuple[tuple[str, int, int], ...]
    mean: tuple[float | None, float | None] = (None, None)


class _Tally:
    def __init__(self) -> None:
        self.spans = 0
        self.labels: Counter[str] = Counter()
        self.total = Fraction(0)
        self.numbers = 0

    def add(self, value: object, sign: int, text: bool) -> None:
        self.spans += sign
        if isinstance(value, bool):
            self.labels["true" if value else "false"] += sign
        elif isinstance(value, tuple):
            for item in value:
                self.labels[str(item)] += sign
        elif isinstance(value, (int, float)):
            self.total += sign * Fraction(value)
            self.numbers += sign
        elif not text:
            self.labels[str(value)] += sign

    def copy(self) -> _Tally:
        other = _Tally()
        other.spans, other.total, other.numbers = self.spans, self.total, self.numbers
        other.labels = self.labels.copy()
        return other

    @property
    def mean(self) -> float | None:
        return float(self.total / self.numbers) if self.numbers else None


def label_distribution(
    state: State, plan: Plan, *, text_keys: frozenset[str] = frozenset()
) -> dict[str, Distribution]:
    """Per key whose values the plan changes (sorted), its labels before and after the plan.

    Feedback records are not annotations and are left out, and so are corrections (each one
    corrects one evaluator result: there is nothing to count across spans).
    """
    keys = {
        c.key
        for c in plan.changes
        if not c.feedback and not c.metadata_only and parent_id(c.key) is None
    }
    before = {key: _Tally() for key in keys}
    for span in state.spans.values():
        for key, applied in span.items():
            if key in before:
                before[key].add(applied.value, 1, key in text_keys)
    after = {key: tally.copy() for key, tally in before.items()}
    for change in plan.changes:
        if change.key not in after or change.feedback:
            continue
        text = change.key in text_keys
        if change.old is not None:
            after[change.key].add(change.old, -1, text)
        if change.new is not None:
            after[change.key].add(change.new, 1, text)
    found: dict[str, Distribution] = {}
    for key in sorted(keys):
        old, new = before[key], after[key]
        labels = sorted(set(old.labels) | set(new.labels))
        found[key] = Distribution(
            key,
            (old.spans, new.spans),
            tuple((label, old.labels[label], new.labels[label]) for label in labels),
            (old.mean, new.mean),
        )
    return found


def render_plan_markdown(
    plan: Plan,
    state: State,
    *,
    text_keys: frozenset[str] = frozenset(),
    redact: bool = False,
    max_removals: int | None = None,
    limit: int = LIMIT,
    full_plan_hint: str = FULL_PLAN_HINT,
) -> str:
    """The plan as a review comment of at most `limit` characters.

    `text_keys` are the keys of text definitions: with `redact`, their values are never shown.
    Raises ValueError when `limit` cannot hold even the summary line.
    """
    if plan.empty:
        text = f"{MARKER}\n## orqsync plan\n\n{NO_CHANGES}\n"
        for table in (
            _unresolved_table(plan, text_keys if redact else frozenset()),
            _agreement_table(plan),
        ):
            if table and len(text) + 1 + len(table) <= limit:
                text += "\n" + table.rstrip("\n") + "\n"
        return _checked(text, limit)
    head = _head(plan, max_removals)
    tables = [
        _summary_table(plan),
        _unresolved_table(plan, text_keys if redact else frozenset()),
        _agreement_table(plan),
        _queue_table(plan),
        _distribution_table(distributions := label_distribution(state, plan, text_keys=text_keys)),
        _distribution_charts(distributions),
    ]
    # Corrections hide their explanation and any text value: free text, like a text key's.
    corrections = {c.key for c in plan.changes if parent_id(c.key) is not None}
    entries, openers = _entries(plan, text_keys | corrections if redact else frozenset())
    full = head + "".join(tables) + _body(entries, openers)
    if len(full.rstrip("\n")) + 1 <= limit:
        return full.rstrip("\n") + "\n"
    total = len(plan.changes)
    reserve = len(_footer(total, total, limit, full_plan_hint))
    if len(head) + reserve > limit:
        raise ValueError(f"a limit of {limit} characters cannot hold the plan's summary")
    text = head
    for table in tables:
        if len(text) + len(table) + reserve <= limit:
            text += table
    shown = _fit(entries, openers, limit - len(text) - reserve)
    text += _body(shown, openers) + _footer(total - len(shown), total, limit, full_plan_hint)
    return _checked(text, limit)


def _checked(text: str, limit: int) -> str:
    if len(text) > limit:
        raise ValueError(f"a limit of {limit} characters cannot hold the plan's summary")
    return text


def _footer(hidden: int, total: int, limit: int, hint: str) -> str:
    return (
        f"**{hidden:,} of {total:,} changes are not shown here** (a comment holds at most "
        f"{limit:,} characters). {hint}\n"
    )


def _where(changes: Iterable[Change]) -> str:
    spans: set[tuple[str, str]] = set()
    records = 0
    for change in changes:
        if change.feedback:
            records += 1
        else:
            spans.add((change.trace_id, change.span_id))
    parts = [plural(len(spans), "span")] if spans else []
    if records:
        parts.append(plural(records, "feedback record"))
    return " and ".join(parts)


def _head(plan: Plan, max_removals: int | None) -> str:
    updates = plan.count(UPDATE)
    metadata_only = sum(1 for c in plan.changes if c.action == UPDATE and c.metadata_only)
    only = f" ({metadata_only:,} metadata only)" if metadata_only else ""
    lines = [
        MARKER,
        "## orqsync plan",
        "",
        f"**{plan.count(CREATE):,} to add, {updates:,} to change{only}, "
        f"{plan.count(DELETE):,} to remove**"
        + (f" on {_where(plan.changes)}" if plan.changes else "")
        + (f"; {_queues_summary(plan)}" if plan.queues else "")
        + f". `apply` will send {plural(len(plan.requests), 'request')}.",
        "",
    ]
    if max_removals is not None and plan.removals > max_removals:
        lines += [
            "> [!CAUTION]",
            f"> **Removal budget exceeded:** {plural(plan.removals, 'removal')}, more than "
            f"`policy.max_removals` ({max_removals:,}). `apply` refuses this plan unless run "
            "with `--allow-removals`.",
            "",
        ]
    elif max_removals is not None:
        lines += [
            f"Removal budget: {plan.removals:,} of {max_removals:,} (`policy.max_removals`).",
            "",
        ]
    return "\n".join(lines) + "\n"


def _summary_table(plan: Plan) -> str:
    counts: dict[tuple[bool, str], Counter[str]] = {}
    for change in plan.changes:
        # One row for every correction: each names its own evaluator result.
        row_key = "" if parent_id(change.key) is not None else change.key
        counts.setdefault((change.feedback, row_key), Counter())[change.action] += 1
    lines = ["| key | add | change | remove |", "|---|--:|--:|--:|"]
    rows = sorted(counts.items())
    for (feedback, key), row in rows[:SUMMARY_KEYS]:
        name = _code(key, table=True) + (" (feedback)" if feedback else "")
        if not key and not feedback:
            name = "*corrections of evaluator results*"
        lines.append(_counts_row(name, row))
    rest: Counter[str] = Counter()
    for _, row in rows[SUMMARY_KEYS:]:
        rest.update(row)
    if rest:
        lines.append(_counts_row(f"*{plural(len(rows) - SUMMARY_KEYS, 'more key')}*", rest))
    lines.append(_counts_row("**total**", plan.counts))
    return "\n".join(lines) + "\n\n"


UNRESOLVED_ROWS = 20  # keys listed; the JSON plan has every one


def _unresolved_table(plan: Plan, hidden: frozenset[str]) -> str:
    """The keys whose reviewers' votes do not resolve (not applied), with every vote; a
    text key's votes are hidden with --redact."""
    if not plan.unresolved and not plan.unresolved_left_out:
        return ""
    total = len(plan.unresolved) + plan.unresolved_left_out
    lines = [f"### Not resolved: {plural(total, 'key')} (not applied)", ""]
    if plan.unresolved_left_out:
        lines += [left_out_text(plan) + ".", ""]
    if plan.unresolved:
        lines += ["| span | key | votes | why |", "|---|---|---|---|"]
    for item in plan.unresolved[:UNRESOLVED_ROWS]:
        votes = ", ".join(
            f"{_code(who)} {_code(_value(value, item.key in hidden))}"
            for who, value in item.resolution.votes
        )
        span = "/".join(item.span)
        cells = [votes, _plain(item.resolution.why)]
        votes_cell, why_cell = (cell.replace("|", "\\|") for cell in cells)
        lines.append(
            f"| {_code(span, table=True)} | {_code(item.key, table=True)} | {votes_cell} | "
            f"{why_cell} |"
        )
    if len(plan.unresolved) > UNRESOLVED_ROWS:
        lines.append(f"| *{len(plan.unresolved) - UNRESOLVED_ROWS:,} more* | | | |")
    lines += [""] if plan.unresolved else []
    lines.append("An adjudication file (`reviews.adjudication`) settles a key.")
    return "\n".join(lines) + "\n\n"


AGREEMENT_ROWS = 20  # keys listed; the JSON plan has every one


def _agreement_table(plan: Plan) -> str:
    """How the pull request moves agreement between reviewers (plan --base REV), per key:
    Krippendorff's alpha and observed agreement at the base and with the changes."""
    moved = plan.agreement
    if moved is None or (not moved.keys and not moved.note):
        return ""
    lines = [f"### Agreement between reviewers, against {_code(moved.base[:12])}", ""]
    if moved.note:
        lines += [f"*{_plain(moved.note, 300)}*", ""]
    if moved.keys:
        lines += [
            "| key | metric | items | Krippendorff's alpha | observed agreement |",
            "|---|---|---|---|---|",
        ]
    for key in moved.keys[:AGREEMENT_ROWS]:
        either = key.head or key.base
        assert either is not None  # a key is listed because one side has votes on it
        base, head = key.base, key.head
        items = _moving(
            None if base is None else base.items,
            None if head is None else head.items,
            lambda n: f"{n:,.0f}",
        )
        alpha = _moving(
            None if base is None else base.alpha,
            None if head is None else head.alpha,
            lambda a: f"{a:.3f}",
        )
        observed = _moving(
            None if base is None else base.observed,
            None if head is None else head.observed,
            lambda a: f"{a:.3f}",
        )
        lines.append(
            f"| {_code(key.key, table=True)} | {either.metric} | {items} | {alpha} | {observed} |"
        )
    if len(moved.keys) > AGREEMENT_ROWS:
        lines.append(f"| *{len(moved.keys) - AGREEMENT_ROWS:,} more* | | | | |")
    return "\n".join(lines) + "\n\n"


def _moving(before: float | None, after: float | None, shown: Callable[[float], str]) -> str:
    """`0.227 → 0.310 (+0.083)`, `0.227` when unchanged, `–` for no figure."""
    old = "–" if before is None else shown(before)
    new = "–" if after is None else shown(after)
    if old == new:
        return new
    if before is None or after is None:
        return f"{old} → {new}"
    return f"{old} → {new} ({'+' if after >= before else '−'}{shown(abs(after - before))})"


def _queues_summary(plan: Plan) -> str:
    entering = sum(len(q.entering) for q in plan.queues if q.action != DELETE)
    leaving = sum(len(q.leaving) for q in plan.queues)
    verb = "changes" if len(plan.queues) == 1 else "change"
    return (
        f"**{plural(len(plan.queues), 'annotation queue')} {verb}**, "
        f"{plural(entering, 'span')} entering and {leaving:,} leaving"
    )


_QUEUE_ACTIONS = {
    "create": "create",
    "adopt": "adopt",
    "update": "update",
    "members": "members",
    "delete": "**delete**",
}


def _queue_table(plan: Plan) -> str:
    """Each queue that changes: what happens to it, and how many spans enter and leave."""
    if not plan.queues:
        return ""
    lines = [
        "### Annotation queues",
        "",
        "| queue | change | spans entering | spans leaving |",
        "|---|---|--:|--:|",
    ]
    for queue in plan.queues[:SUMMARY_KEYS]:
        name = _code(queue.name, table=True)
        if queue.was:
            name += f" (renamed from {_code(queue.was, table=True)})"
        what = _QUEUE_ACTIONS[queue.action]
        fields = [field for field, _, _ in queue.fields]
        if fields and queue.action not in ("create", "adopt"):
            what += ": " + ", ".join(fields)
        entering = 0 if queue.action == DELETE else len(queue.entering)
        lines.append(f"| {name} | {what} | {entering:,} | {len(queue.leaving):,} |")
    hidden = plan.queues[SUMMARY_KEYS:]
    if hidden:
        lines.append(
            f"| *{plural(len(hidden), 'more queue')}* | | "
            f"{sum(len(q.entering) for q in hidden if q.action != DELETE):,} | "
            f"{sum(len(q.leaving) for q in hidden):,} |"
        )
    return "\n".join(lines) + "\n\n"


def _counts_row(name: str, row: Counter[str]) -> str:
    return f"| {name} | {row[CREATE]:,} | {row[UPDATE]:,} | {row[DELETE]:,} |"


def _distribution_table(distributions: dict[str, Distribution]) -> str:
    if not distributions:
        return ""
    rows: list[str] = []
    left = 0
    for index, distribution in enumerate(distributions.values()):
        key_rows = _key_rows(distribution)
        if len(rows) + len(key_rows) > DISTRIBUTION_ROWS:
            left = len(distributions) - index
            break
        rows += key_rows
    lines = [
        "### Label distribution",
        "",
        "Labels on all spans in the state, before and after this plan.",
        "",
        "| key | value | before | after | change |",
        "|---|---|--:|--:|--:|",
        *rows,
    ]
    if left:
        lines += ["", f"{plural(left, 'more key')} not shown."]
    return "\n".join(lines) + "\n\n"


CHARTS = 10  # keys charted; the table above has them all
CHART_TEXT = 24  # characters of a label in a chart


def _distribution_charts(distributions: dict[str, Distribution]) -> str:
    """The distribution table as Mermaid bar charts (GitHub draws ```mermaid blocks): per key
    with labels, the spans carrying each label after the plan as bars and before it as a
    line, for the labels the table lists. Keys of numbers (no labels) get no chart."""
    charts: list[str] = []
    left = 0
    for distribution in distributions.values():
        labels = _top_labels(distribution)
        if not labels:
            continue
        if len(charts) == CHARTS:
            left += 1
            continue
        names = ", ".join(f'"{name}"' for name in _chart_names([label for label, _, _ in labels]))
        top = max(max(old, new) for _, old, new in labels) or 1
        charts.append(
            "\n".join(
                [
                    "```mermaid",
                    "xychart-beta",
                    f'    title "{_chart_text(distribution.key)}: bars after this plan, '
                    'line before"',
                    f"    x-axis [{names}]",
                    f'    y-axis "spans" 0 --> {top}',
                    f"    bar [{', '.join(str(new) for _, _, new in labels)}]",
                    f"    line [{', '.join(str(old) for _, old, _ in labels)}]",
                    "```",
                ]
            )
        )
    if not charts:
        return ""
    lines = ["### Label distribution, charted", "", "\n\n".join(charts)]
    if left:
        lines += ["", f"{plural(left, 'more key')} not charted."]
    return "\n".join(lines) + "\n\n"


def _chart_names(labels: list[str]) -> list[str]:
    """The labels' chart texts, each different: labels that read the same once cleaned and
    cut short get a number (Mermaid would draw their bars at one place, one over the other)."""
    names: list[str] = []
    for label in labels:
        name = text = _chart_text(label)
        number = 1
        while name in names:
            number += 1
            suffix = f" ({number})"
            name = text[: CHART_TEXT - len(suffix)].rstrip() + suffix
        names.append(name)
    return names


def _chart_text(text: str) -> str:
    """A label as a Mermaid string can hold it: no quote, backtick, angle bracket, # or ;
    (none can end the string or the fence, or be read as markup), no %% (Mermaid reads a
    comment or a directive from it even inside a string), on one line, cut short; never
    empty (Mermaid's strings are not), "…" if nothing is left."""
    kept = "".join(
        " " if not c.isprintable() else "'" if c == '"' else "" if c in "`<>#;" else c for c in text
    )
    kept = re.sub("%%+", "%", kept).strip() or "…"
    return kept if len(kept) <= CHART_TEXT else kept[: CHART_TEXT - 1].rstrip() + "…"


def _top_labels(distribution: Distribution) -> list[tuple[str, int, int]]:
    """The labels the table lists: those that move most first, then by name."""
    labels = sorted(distribution.labels, key=lambda item: (-abs(item[2] - item[1]), item[0]))
    return labels[:LABELS_PER_KEY]


def _key_rows(distribution: Distribution) -> list[str]:
    before, after = distribution.spans
    rows = [_row(_code(distribution.key, table=True), "*labelled spans*", before, after)]
    top = _top_labels(distribution)
    for label, old, new in top:
        rows.append(_row("", _code(label, table=True), old, new))
    rest = [item for item in distribution.labels if item not in top]
    if rest:
        old = sum(item[1] for item in rest)
        new = sum(item[2] for item in rest)
        rows.append(_row("", f"*{plural(len(rest), 'more value')}*", old, new))
    old_mean, new_mean = distribution.mean
    if old_mean is not None or new_mean is not None:
        change = (
            _signed_number(new_mean - old_mean)
            if old_mean is not None and new_mean is not None
            else ""
        )
        rows.append(_cells("", "*mean*", _number(old_mean), _number(new_mean), change))
    return rows


def _row(key: str, label: str, before: int, after: int) -> str:
    change = after - before
    delta = f"{change:+,}" if change else "0"
    return _cells(key, label, f"{before:,}", f"{after:,}", delta)


def _cells(*cells: str) -> str:
    return "|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|"


def _number(number: float | None) -> str:
    if number is None:
        return "–"
    text = f"{number:,.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _signed_number(number: float) -> str:
    text = _number(number)
    return text if text == "0" or text.startswith("-") else "+" + text


@dataclass(frozen=True, slots=True)
class _Entry:
    """One change as lines of a diff block, and where it sits: section, file, span."""

    section: str
    group: str
    hunk: str
    text: str


def _entries(plan: Plan, redacted: frozenset[str]) -> tuple[list[_Entry], dict[str, str]]:
    entries: list[_Entry] = []
    openers: dict[str, str] = {}
    flips = [c for c in plan.changes if c.action != CREATE]
    additions = [c for c in plan.changes if c.action == CREATE]
    for section, changes in ((FLIPS, flips), (ADDITIONS, additions)):
        if not changes:
            continue
        shown = " open" if len(changes) <= OPEN_SECTION else ""
        openers[section] = (
            f"### {section}\n\n<details{shown}><summary>{plural(len(changes), 'change')} on "
            f"{_where(changes)}</summary>\n\n"
        )
        # Stable: within a span, the planner's order (removes first, then keys sorted).
        ordered = sorted(changes, key=lambda c: (_group(c), c.feedback, c.trace_id, c.span_id))
        for group, in_group in groupby(ordered, key=_group):
            heading = "#### " + (_code(_path(group[1])) if group[1] else _NO_FILE[group[0]])
            for _, in_span in groupby(in_group, key=lambda c: (c.feedback, c.trace_id, c.span_id)):
                items = list(in_span)
                hunk = _hunk(items)
                for change in items:
                    entries.append(_Entry(section, heading, hunk, _diff(change, redacted)))
    return entries, openers


def _group(change: Change) -> tuple[int, str]:
    """Removals first (they have no file), then each file; a rank, so no path can collide."""
    if change.path:
        return (1, change.path)
    return (0, "") if change.action == DELETE else (2, "")


def _hunk(changes: list[Change]) -> str:
    first = changes[0]
    if first.feedback:
        where = f"feedback on trace {_plain(first.trace_id)}"
    else:
        where = f"span {_plain(first.trace_id)}/{_plain(first.span_id)}"
    lines = [c.line for c in changes if c.line]
    return f"@@ {where}{f', line {min(lines)}' if lines else ''} @@"


def _body(entries: list[_Entry], openers: dict[str, str]) -> str:
    """The detail sections: a <details> block per section, a diff block per file."""
    out: list[str] = []
    section = group = hunk = ""
    for entry in entries:
        if entry.section != section:
            out.append((_CLOSE if section else "") + openers[entry.section])
            section, group, hunk = entry.section, "", ""
        if entry.group != group:
            out.append(("```\n\n" if group else "") + f"{entry.group}\n\n```diff\n")
            group, hunk = entry.group, ""
        if entry.hunk != hunk:
            out.append(entry.hunk + "\n")
            hunk = entry.hunk
        out.append(entry.text)
    if entries:
        out.append(_CLOSE)
    return "".join(out)


def _fit(entries: list[_Entry], openers: dict[str, str], room: int) -> list[_Entry]:
    """The entries whose `_body` fits in `room`, each file's cut at a whole entry.

    Sections in order; within a section the files take turns, one entry each, so that a large
    removal cannot hide every value flip.
    """
    files: dict[tuple[str, str], list[int]] = {}
    for index, entry in enumerate(entries):
        files.setdefault((entry.section, entry.group), []).append(index)
    chosen: set[int] = set()
    size = 0
    for section, opener in openers.items():
        queues = [queue for (name, _), queue in files.items() if name == section]
        taken = [0] * len(queues)
        opened = False
        turn = list(range(len(queues)))
        while turn:
            still = []
            for number in turn:
                queue, done = queues[number], taken[number]
                entry = entries[queue[done]]
                cost = len(entry.text)
                if not done or entries[queue[done - 1]].hunk != entry.hunk:
                    cost += len(entry.hunk) + 1
                if not done:
                    cost += len(f"{entry.group}\n\n```diff\n```\n\n")
                if not opened:
                    cost += len(opener) + len("</details>\n\n")
                if size + cost > room:
                    continue  # this file is cut here
                size += cost
                opened = True
                chosen.add(queue[done])
                taken[number] += 1
                if taken[number] < len(queue):
                    still.append(number)
            turn = still
    return [entry for index, entry in enumerate(entries) if index in chosen]


def _diff(change: Change, redacted: frozenset[str]) -> str:
    key = _plain(key_text(change.key))
    hide = not change.feedback and change.key in redacted
    if change.action == CREATE:
        return f"+ {key} = {_value(change.new, hide)}\n"
    if change.action == DELETE:
        return f"- {key} = {_value(change.old, hide)}\n"
    if change.metadata_only:
        return (
            f"~ {key}: metadata only, {_metadata(change.old_metadata)} -> "
            f"{_metadata(change.new_metadata)}\n"
        )
    return (
        f"- {key} = {_value(change.old, hide)}\n"
        f"+ {key} = {_value(change.new, hide)}{list_delta(change.old, change.new, _plain)}\n"
    )


def _value(value: object, hide: bool) -> str:
    if hide and isinstance(value, str):
        return f"(redacted, {plural(len(value), 'char')})"
    if hide and isinstance(value, tuple):  # a correction's list of text
        return f"(redacted, {plural(len(value), 'item')})"
    if isinstance(value, Correction):
        shown = _value(value.value, hide)
        if value.explanation is None:
            return shown
        return f"{shown}, explanation {_value(value.explanation, hide)}"
    return _plain(value_text(value, VALUE_PREVIEW), VALUE_PREVIEW)


def _metadata(metadata: Metadata) -> str:
    return _plain(metadata_text(metadata), VALUE_PREVIEW)


def _plain(text: str, limit: int = NAME_PREVIEW) -> str:
    """User text on one line, shortened; line breaks and control characters made visible."""
    text = _CONTROL.sub(lambda match: _SHOWN.get(match.group(), "�"), text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _path(path: str) -> str:
    """A long path keeps its end: the file name says more than the folders."""
    return path if len(path) <= NAME_PREVIEW else "…" + path[-(NAME_PREVIEW - 1) :]


def _code(text: str, *, table: bool = False) -> str:
    """User text as an inline code span, which no markup inside it can escape."""
    text = _plain(text)
    if not text:
        return "*(empty)*"
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    # A code span drops one space at each end, and cannot start or end with its fence.
    if text[0] == "`" or text[-1] == "`" or (text[0] == text[-1] == " " and text.strip()):
        text = f" {text} "
    if table:
        text = text.replace("|", "\\|")  # GFM splits cells before it reads code spans
    return f"{fence}{text}{fence}"
