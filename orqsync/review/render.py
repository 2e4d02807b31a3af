"""Plans, reports and problems as text and JSON. Pure: strings in, strings out."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from json.encoder import encode_basestring
from operator import attrgetter

from orqsync.errors import Problem
from orqsync.model import CORRECTION_MARK, Correction, Review, value_json
from orqsync.planning.plan import CREATE, DELETE, UPDATE, Change, Plan, QueueChange, Request
from orqsync.planning.planfile import summary
from orqsync.planning.reassert import Reassertion
from orqsync.planning.wire import method_and_path, request_body
from orqsync.remote.apply import Failure, Report
from orqsync.source.agreement import Agreement
from orqsync.source.resolve import ADJUDICATED
from orqsync.text import duration_text, plural

MAX_REQUEST_LINES = 100
# A text plan lists every change of this many spans (or feedback traces), then counts the
# rest per file: a terminal or a CI log cannot be read past that; JSON keeps every change.
MAX_SPAN_BLOCKS = 1000
SLOWEST_DOCUMENTED_RATE = (
    20  # requests a minute, orq.ai's Sandbox tier (docs/api-contract.md, section 2.5)
)
TEXT_PREVIEW = 80

_SIGN = {CREATE: "+", UPDATE: "~", DELETE: "-"}
_WORDS = ((CREATE, "add"), (UPDATE, "change"), (DELETE, "remove"))


_SHOWN: dict[tuple[type, object, int], str] = {}  # labels repeat: render each value once


def value_text(value: object, limit: int = TEXT_PREVIEW) -> str:
    """A value as JSON, shortened to `limit` characters."""
    if type(value) is str:  # most values, and mostly distinct: straight to the C encoder
        text = encode_basestring(value)
        return text if len(text) <= limit else _shorten(text, limit)
    key = (type(value), value, limit)  # the type keeps True and 1 apart
    shown = _SHOWN.get(key)
    if shown is None:
        if len(_SHOWN) > 100_000:
            _SHOWN.clear()
        shown = _SHOWN[key] = _value_text(value, limit)
    return shown


def _value_text(value: object, limit: int) -> str:
    if isinstance(value, Correction):
        text = value_text(value.value, limit)
        if value.explanation is None:
            return text
        return f"{text}, explanation {value_text(value.explanation, limit)}"
    text = json.dumps(value_json(value), ensure_ascii=False)
    return text if len(text) <= limit else _shorten(text, limit)


def key_text(key: str) -> str:
    """A key as people read it: a correction's names the evaluator result it corrects."""
    return key if key[:1] != CORRECTION_MARK else f"correction of {key[1:]}"


def _shorten(text: str, limit: int) -> str:
    return text[: limit - 2] + ('…"' if text.startswith('"') else "…")


def metadata_text(metadata: tuple[tuple[str, str], ...]) -> str:
    """`{reviewerId: alice, source: orqsync}`, as a YAML flow mapping reads."""
    return "{" + ", ".join(f"{k}: {v}" for k, v in metadata) + "}"


def change_line(change: Change) -> str:
    action = change.action
    key = key_text(change.key)
    if action == CREATE:
        return f"+ {key} = {value_text(change.new)}"
    if action == DELETE:
        return f"- {key} = {value_text(change.old)}"
    sign = _SIGN[action]
    if change.metadata_only:
        return (
            f"{sign} {key}: metadata {metadata_text(change.old_metadata)} -> "
            f"{metadata_text(change.new_metadata)}"
        )
    line = f"{sign} {key}: {value_text(change.old)} -> {value_text(change.new)}"
    return line + list_delta(change.old, change.new)


def list_delta(old: object, new: object, shown: Callable[[str], str] = str) -> str:
    """For a multi-select change, which options came and went: ' (+spelling, -grammatical)',
    each option as `shown` writes it."""
    if not isinstance(old, tuple) or not isinstance(new, tuple):
        return ""
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    parts = [f"+{shown(item)}" for item in added] + [f"-{shown(item)}" for item in removed]
    return f" ({', '.join(parts)})" if parts else ""


def summary_line(plan: Plan) -> str:
    counts = summary(plan)
    requests = counts["requests"]
    line = (
        f"Plan: {counts['create']} to add, {counts['update']} to change, "
        f"{counts['delete']} to remove; {plural(requests, 'request', grouped=False)}."
    )
    if plan.queues:
        line += "\n" + queues_line(plan.queues)
    return line


def queues_line(queues: tuple[QueueChange, ...]) -> str:
    """`Annotation queues: 1 to create, 1 to change; 50 spans enter, 50 leave.`"""
    actions = Counter(change.action for change in queues)
    parts = [
        f"{actions[action]} to {verb}"
        for action, verb in (
            ("create", "create"),
            ("adopt", "adopt"),
            ("update", "change"),
            ("delete", "delete"),
        )
        if actions[action]
    ]
    if actions["members"] and not parts:
        parts.append(f"{actions['members']} with new members")
    entering = sum(len(change.entering) for change in queues if change.action != "delete")
    leaving = sum(len(change.leaving) for change in queues)
    return (
        f"Annotation queues: {', '.join(parts)}; {_spans_move(entering, 'enter')}, "
        f"{leaving} {'leaves' if leaving == 1 else 'leave'}."
    )


def _spans_move(count: int, verb: str) -> str:
    """`1 span enters`, `50 spans enter`."""
    return f"{plural(count, 'span', grouped=False)} {verb + 's' if count == 1 else verb}"


def queue_lines(change: QueueChange) -> list[str]:
    """A queue's block of a text plan."""
    marks = {"create": "+", "adopt": "~", "update": "~", "members": "~", "delete": "-"}
    title = f"  annotation queue {change.name}"
    if change.id:
        title += f" ({change.id})"
    if change.path:
        title += f"  ({change.path})"
    lines = [title]
    what = {
        "create": "create",
        "adopt": f"adopt the existing queue {change.id}",
        "update": "update",
        "members": "members",
        "delete": "delete the queue and its items",
    }[change.action]
    if change.was:
        what += f', renamed from "{change.was}" (same queue, same id)'
    lines.append(f"      {marks[change.action]} {what}")
    for name, old, new in change.fields:
        if change.action in ("create", "adopt"):
            lines.append(f"        {name}: {_field_text(new)}")
        else:
            lines.append(f"        {name}: {_field_text(old)} -> {_field_text(new)}")
    moves = []
    if change.entering:
        moves.append(_spans_move(len(change.entering), "enter"))
    if change.leaving:
        moves.append(_spans_move(len(change.leaving), "leave"))
    if moves:
        lines.append("        " + ", ".join(moves))
    return lines


def unresolved_lines(plan: Plan) -> Iterator[str]:
    """The keys whose reviewers' votes do not resolve (reviews): not applied."""
    if not plan.unresolved and not plan.unresolved_left_out:
        return
    total = len(plan.unresolved) + plan.unresolved_left_out
    lines = [f"Not resolved, so not applied ({plural(total, 'key')}):"]
    for item in plan.unresolved:
        votes = ", ".join(f"{who} {value_text(value)}" for who, value in item.resolution.votes)
        lines.append(
            f"  {'/'.join(item.span)} {item.key}  ({item.path}:{item.line}): "
            f"{item.resolution.why}: {votes}"
        )
    if plan.unresolved_left_out:
        lines.append("  " + left_out_text(plan))
    yield "\n".join(lines) + "\n\n"


def agreement_lines(plan: Plan) -> Iterator[str]:
    """How the plan moves agreement between reviewers (plan --base): alpha per key."""
    moved = plan.agreement
    if moved is None or (not moved.keys and not moved.note):
        return
    lines = [f"Agreement between reviewers (Krippendorff's alpha), against {moved.base[:12]}:"]
    if moved.note:
        lines.append(f"  {moved.note}")

    def alpha(figures: Agreement | None) -> str:
        value = None if figures is None else figures.alpha
        return "-" if value is None else f"{value:.3f}"

    for key in moved.keys:
        lines.append(f"  {key.key}: {alpha(key.base)} -> {alpha(key.head)}")
    yield "\n".join(lines) + "\n\n"


def left_out_text(plan: Plan) -> str:
    """What an incremental plan says of the keys not resolved in the files it left out."""
    more = " more" if plan.unresolved else ""
    return (
        f"{plural(plan.unresolved_left_out, 'key')}{more} in files unchanged since the state "
        "was written, which this plan did not read (`orqsync validate` lists every one)"
    )


def _body_text(body: dict[str, object], shown: int = 2) -> str:
    """A body as JSON, a list of a queue's items cut to its first few (up to 1,000 spans a
    request: the JSON plan has every one)."""
    parts = []
    for name, value in body.items():
        text = json.dumps(value, ensure_ascii=False)
        if isinstance(value, list) and len(value) > shown + 1:
            head = ", ".join(json.dumps(item, ensure_ascii=False) for item in value[:shown])
            text = f"[{head}, ... {len(value) - shown:,} more]"
        parts.append(f"{json.dumps(name)}: {text}")
    return "{" + ", ".join(parts) + "}"


def _field_text(value: object) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _groups(changes: tuple[Change, ...], limit: int) -> tuple[list[list[Change]], int]:
    """The first `limit` runs of changes on one span (or one trace's feedback), in plan
    order, and where the changes not in them start."""
    groups: list[list[Change]] = []
    current: list[Change] = []
    trace_id = span_id = None
    feedback = False
    for index, change in enumerate(changes):
        if change.span_id != span_id or change.trace_id != trace_id or change.feedback != feedback:
            if len(groups) == limit:
                return groups, index
            trace_id, span_id, feedback = change.trace_id, change.span_id, change.feedback
            current = []
            groups.append(current)
        current.append(change)
    return groups, len(changes)


def _rest_by_file(changes: tuple[Change, ...]) -> list[str]:
    """Counts of the changes a text plan does not list, per file they come from."""
    counts, spans = _counts_by_file(changes)
    lines = []
    for source in sorted(counts):
        parts = [
            f"{counts[source][action]} to {word}"
            for action, word in _WORDS
            if counts[source].get(action)
        ]
        shown = source or "(removed from the repository)"
        on = plural(spans[source], "span", grouped=False)
        lines.append(f"  {shown}: {', '.join(parts)} on {on}")
    return lines


def _counts_by_file(
    changes: tuple[Change, ...],
) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """{path: {action: changes}} and {path: spans (or feedback traces) with changes}.

    A plan lists each span's changes together and the spans in order, so a span is counted
    where its run of changes starts (and again for each other file within the run). That is
    checked as it goes: runs out of order (a plan file edited by hand) are counted with a set.
    Half the time of the set alone, which holds a tuple for each of 100,000 spans."""
    counts: dict[str, dict[str, int]] = {}
    spans: dict[str, int] = {}
    run: tuple[bool, str, str] | None = None
    trace_id = span_id = path = None
    feedback = False
    actions: dict[str, int] = {}
    paths: set[str] = set()
    for change in changes:
        if (
            change.span_id is not span_id
            or change.trace_id is not trace_id
            or change.feedback is not feedback
        ):
            trace_id, span_id, feedback = change.trace_id, change.span_id, change.feedback
            previous, run = run, (feedback, trace_id, span_id)
            if previous is not None and run <= previous:
                return _counts_by_set(changes)
            paths = set()
            path = None
        if change.path is not path:
            path = change.path
            if path not in paths:
                paths.add(path)
                spans[path] = spans.get(path, 0) + 1
            actions = counts.setdefault(path, {})
        actions[change.action] = actions.get(change.action, 0) + 1
    return counts, spans


def _counts_by_set(
    changes: tuple[Change, ...],
) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """What _counts_by_file gives, for changes in any order."""
    counts: dict[str, dict[str, int]] = {}
    for (path, action), count in Counter(map(attrgetter("path", "action"), changes)).items():
        counts.setdefault(path, {})[action] = count
    runs = set(map(attrgetter("path", "feedback", "trace_id", "span_id"), changes))
    return counts, dict(Counter(path for path, _, _, _ in runs))


def render_plan_text(
    plan: Plan,
    *,
    metadata_style: str,
    requests_per_minute: float | None = None,
    max_removals: int | None = None,
) -> str:
    """A Terraform-like diff grouped by span, the requests, and a summary line."""
    return "".join(
        iter_plan_text(
            plan,
            metadata_style=metadata_style,
            requests_per_minute=requests_per_minute,
            max_removals=max_removals,
        )
    )


# orq.ai has no endpoint that reads annotations back: a plan compares with the state file.
NO_CHANGES = (
    "No changes. The repository matches the state file, the record of what orqsync applied "
    "(orq.ai itself is not read)."
)


def selection_text(left_out: tuple[int, int, int]) -> str:
    """What --target/--exclude left out of a plan: spans, feedback records, and annotation
    queues (which they never choose)."""
    spans, records, queues = left_out
    parts = [plural(spans, "span")] + ([plural(records, "feedback record")] if records else [])
    if queues:
        parts.append(plural(queues, "annotation queue"))
    return f"--target/--exclude left out {', '.join(parts)}: not compared, not changed.\n"


def iter_plan_text(
    plan: Plan,
    *,
    metadata_style: str,
    requests_per_minute: float | None = None,
    max_removals: int | None = None,
) -> Iterator[str]:
    """render_plan_text in pieces of about a span each, so that a plan of 400,000 changes is
    written as it is rendered instead of being held whole."""
    if plan.empty:
        yield NO_CHANGES + "\n"
        yield from unresolved_lines(plan)
        yield from agreement_lines(plan)
        return
    yield "orqsync will make these changes:\n\n"
    groups, rest = _groups(plan.changes, MAX_SPAN_BLOCKS)
    for items in groups:
        first = items[0]
        source = next((c.path for c in items if c.path), "")
        title = (
            f"  feedback on trace {first.trace_id}"
            if first.feedback
            else f"  span {first.trace_id}/{first.span_id}"
        )
        lines = [title + (f"  ({source})" if source else "")]
        lines.extend(["      " + change_line(change) for change in items])
        lines.append("\n")
        yield "\n".join(lines)
    for queue in plan.queues:
        yield "\n".join([*queue_lines(queue), "\n"])
    yield from unresolved_lines(plan)
    yield from agreement_lines(plan)
    out = []
    if rest < len(plan.changes):
        hidden_changes = plan.changes[rest:]
        out.append(
            f"... and {len(hidden_changes)} more changes, not listed here (every change is in "
            "`plan --format json` and in a plan saved with --out):"
        )
        out.extend(_rest_by_file(hidden_changes))
        out.append("")
    out.extend(_requests_text(plan, metadata_style))
    out.append("")
    out.append(summary_line(plan))
    if requests_per_minute:
        eta = len(plan.requests) / requests_per_minute * 60
        out.append(
            f"At {requests_per_minute:g} requests a minute, apply will take about "
            f"{duration_text(eta)}."
        )
    elif len(plan.requests) > SLOWEST_DOCUMENTED_RATE:
        eta = len(plan.requests) / SLOWEST_DOCUMENTED_RATE * 60
        out.append(
            f"The rate adapts to orq.ai's limits; at the lowest documented one "
            f"({SLOWEST_DOCUMENTED_RATE} requests a minute) apply would take about "
            f"{duration_text(eta)}."
        )
    if max_removals is not None and plan.removals > max_removals:
        out.append(
            f"Removal budget exceeded: {plan.removals} removals, policy.max_removals is "
            f"{max_removals}; apply needs --allow-removals."
        )
    yield "\n".join(out) + "\n"


def _requests_text(plan: Plan, metadata_style: str) -> list[str]:
    """The first requests; those on annotation queues (few, and easy to miss) always."""
    out = ["Requests, in order:"]

    def line(number: int, request: Request) -> str:
        method, path = method_and_path(request)
        body = request_body(request, metadata_style)
        shown = "" if body is None else " " + _body_text(body)
        return f"  {number:>4}. {method} {path}{shown}"

    for number, request in enumerate(plan.requests[:MAX_REQUEST_LINES], start=1):
        out.append(line(number, request))
    hidden = len(plan.requests) - MAX_REQUEST_LINES
    if hidden > 0:
        out.append(f"  ... and {hidden} more (every request is in `plan --format json`)")
        if plan.queues:  # they come after the labels' requests: from the end
            first = len(plan.requests)
            while first > MAX_REQUEST_LINES and plan.requests[first - 1].queue is not None:
                first -= 1
            later = enumerate(plan.requests[first:], start=first + 1)
            out.extend(line(number, request) for number, request in later)
    return out


def render_reassertion(reassertion: Reassertion, metadata_style: str) -> str:
    """A reassertion as a plan shows it: which spans, oldest first, when each was last
    asserted, and the requests. It changes no label, so it lists no changes."""
    if not reassertion.spans:
        return "Nothing to reassert: the state records no label orqsync owns.\n"
    out = [
        "orqsync will reassert these spans, oldest first: the labels the state records are "
        "sent again, and the keys orqsync removed are deleted again (orq.ai is not read; "
        "writes replace by key):",
        "",
    ]
    shown = zip(reassertion.spans[:MAX_SPAN_BLOCKS], reassertion.sizes, strict=False)
    for (trace_id, span_id), (sent, removed) in shown:
        when = reassertion.state.asserted.get((trace_id, span_id), "never")
        labels = plural(sent, "label")
        also = f", {plural(removed, 'removed key')}" if removed else ""
        out.append(f"  span {trace_id}/{span_id}  last asserted {when}: {labels}{also}")
    hidden = len(reassertion.spans) - MAX_SPAN_BLOCKS
    if hidden > 0:
        out.append(f"  ... and {plural(hidden, 'more span')}")
    out.append("")
    out.extend(_requests_text(reassertion.plan, metadata_style))
    out.append("")
    out.append(reassertion_line(reassertion))
    return "\n".join(out) + "\n"


def reassertion_line(reassertion: Reassertion) -> str:
    line = (
        f"Reassertion: {plural(len(reassertion.spans), 'span', grouped=False)}, "
        f"{plural(reassertion.labels, 'label', grouped=False)} sent again, "
        f"{plural(reassertion.removals, 'removed key', grouped=False)} deleted again; "
        f"{plural(len(reassertion.plan.requests), 'request', grouped=False)}."
    )
    if reassertion.left:
        line += (
            f" {plural(reassertion.left, 'span', grouped=False)} left for a later run "
            "(--max-requests): the oldest go first."
        )
    return line


SHOWN_PER_CAUSE = 3  # refused requests listed under each cause in an apply's summary

# why an apply stopped early, and how to finish
_HOW_TO_FINISH = {
    "max requests": ("--max-requests was reached; ", "run apply again to send the rest."),
    "max duration": ("--max-duration was reached; ", "run apply again to send the rest."),
    "interrupted": ("", "run apply again to send the rest."),
    "outage": ("", "run apply again later to send the rest."),
}


def render_report(report: Report, command: str = "apply") -> str:
    """An apply's summary: refusals grouped by cause with the first few of each, then one
    line that says what was done and how to finish (by running `command` again)."""
    lines = render_refusals(report.failures)
    if report.complete:
        lines.append(f"Apply complete: {plural(report.done, 'request')} sent.")
        return "\n".join(lines) + "\n"
    why = f" ({report.stopped})" if report.stopped else ""
    counts = f"{report.done:,} of {plural(report.total, 'request')} done"
    if report.failures:
        counts += f", {len(report.failures):,} refused"
    if report.left:
        counts += f", {report.left:,} left"
    if report.waiting:  # what the requests left were waiting out: a 429, a 5xx, no server
        counts += f"; requests were waiting to retry after: {report.waiting}"
    reason, finish = _HOW_TO_FINISH.get(report.stopped, ("", "run apply again to finish."))
    if report.failures:
        finish = "fix what was refused and " + finish
    finish = reason + finish.replace("run apply again", f"run {command} again")
    lines.append(f"Apply partial{why}: {counts}. The state is saved; {finish}")
    return "\n".join(lines) + "\n"


def halt_progress(report: Report) -> str:
    """What an apply that halted had done: the sentence that ends its one error message."""
    refused = f" ({len(report.failures):,} refused)" if report.failures else ""
    if not report.done:
        return f"None of the {plural(report.total, 'request')} succeeded{refused}"
    done = f"{report.done:,} of {plural(report.total, 'request')}"
    return f"Stopped after {done} succeeded{refused}; they are recorded in the state"


def render_refusals(failures: tuple[Failure, ...]) -> list[str]:
    """Refused requests grouped by cause, most frequent first, the first few of each."""
    if not failures:
        return []
    by_cause: dict[str, list[Failure]] = {}
    for failure in failures:
        by_cause.setdefault(failure.cause or failure.message, []).append(failure)
    lines = [f"Refused by orq.ai: {plural(len(failures), 'request')}"]
    for cause, group in sorted(by_cause.items(), key=lambda item: -len(item[1])):
        lines.append(f"  {plural(len(group), 'request')}: {cause}")
        for failure in sorted(group, key=lambda f: (f.path, f.line))[:SHOWN_PER_CAUSE]:
            method, path = method_and_path(failure.request)
            where = f"{failure.path}:{failure.line}: " if failure.path else ""
            lines.append(f"    {where}{method} {path}")
        if len(group) > SHOWN_PER_CAUSE:
            lines.append(f"    and {len(group) - SHOWN_PER_CAUSE:,} more")
        hints = dict.fromkeys(failure.hint for failure in group if failure.hint)
        lines.extend(f"    hint: {hint}" for hint in list(hints)[:SHOWN_PER_CAUSE])
    return lines


WARNINGS_PER_KIND = 5  # places listed for one warning; the rest are counted


def warnings_text(warnings: list[Problem]) -> str:
    """Warnings one per line, in file order; one warning in many places (a habit of spelling
    across the repository) lists its first WARNINGS_PER_KIND places and counts the rest."""
    kinds: dict[tuple[str, str], list[Problem]] = {}
    for warning in sorted(warnings, key=Problem.sort_key):
        kind = (warning.kind, "") if warning.kind else (warning.message, warning.hint)
        kinds.setdefault(kind, []).append(warning)
    lines: list[str] = []
    for places in kinds.values():
        lines.extend(warning.render() for warning in places[:WARNINGS_PER_KIND])
        rest = len(places) - WARNINGS_PER_KIND
        if rest > 0:
            lines.append(
                f"  ... and {plural(rest, 'more place')} with this warning "
                "(`orqsync validate --format json` lists every one)"
            )
    return "".join(line + "\n" for line in lines)


def problems_json(problems: list[Problem], warnings: list[Problem] | None = None) -> str:
    """`validate --format json`: errors under "problems", lenient readings under "warnings"."""

    def as_json(found: list[Problem]) -> list[dict[str, object]]:
        return [
            {
                "path": p.path,
                "line": p.line,
                "column": p.column,
                "message": p.message,
                "hint": p.hint,
            }
            for p in found
        ]

    data = {
        "valid": not problems,
        "problems": as_json(problems),
        "warnings": as_json(warnings or []),
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def review_text(review: Review) -> str:
    """`resolved by majority from 3 votes: alice "good", bob "good", carol "bad"`."""
    votes = ", ".join(f"{who} {value_text(value)}" for who, value in review.votes)
    if review.rule == ADJUDICATED:
        how = "settled by adjudication over"
    else:
        how = f"resolved by {review.rule} from"
    return f"{how} {plural(len(review.votes), 'vote', grouped=False)}: {votes}"
