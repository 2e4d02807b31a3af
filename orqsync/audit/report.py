"""`orqsync report`: the applied label set as one static, self-contained HTML page.

What it shows, all from the state and its history (never from orq.ai): per key, how its labels
are distributed (options, true/false; ranges in ten bins); with reviews, how many votes each
reviewer gave and how far they agree (the votes the state recorded for the applied values);
the apply history as a timeline; and how the label set grew over the state's commits. Charts
are inline SVG drawn here (no script, no network at view time), each with its table below it
for screen readers. `--at REV` renders it as of a git revision.
"""

from __future__ import annotations

import datetime
import html
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from orqsync.audit import gitrev
from orqsync.audit.export import read_state_at, read_state_working
from orqsync.audit.history import Entry, history_path, load_history, parse_history, short_sha
from orqsync.model import Correction
from orqsync.source.agreement import Agreement
from orqsync.source.definitions import Definitions, load_definitions
from orqsync.source.project import Settings
from orqsync.source.reviews import Ratings, agreements
from orqsync.state import codec
from orqsync.state.model import State

GROWTH_COMMITS = 30  # state commits sampled for the growth chart
BINS = 10  # bins of a range key's histogram
BARS = 12  # labels charted per key (the rest summed as "other")


@dataclass(frozen=True, slots=True)
class Report:
    """What the page shows, worked out before it is drawn."""

    commit: str  # the state's commit ("" for a working copy that differs from HEAD)
    labels: int
    spans: int
    keys: dict[str, list[tuple[str, int]]]  # key -> (label, spans), in the order shown
    reviewers: dict[str, int]  # votes per reviewer, from the state's reviews
    agreement: dict[str, Agreement]
    history: tuple[Entry, ...]
    growth: list[tuple[str, str, int]]  # (short sha, date, labels) per state commit, oldest first


def build(settings: Settings, at: str | None = None) -> Report:
    """The report of the state in the working copy, or as of the git revision `at`."""
    state, commit = read_state_at(settings, at) if at else read_state_working(settings)
    definitions, problems = load_definitions(
        settings.definitions_path, settings.display(settings.definitions_path)
    )
    known = Definitions() if problems else definitions
    history = _history(settings, commit if at else None)
    return Report(
        commit,
        state.annotation_count,
        len(state.spans),
        _distributions(state, known),
        _reviewers(state),
        _agreement(state, known),
        history,
        _growth(settings, commit if at else None),
    )


def _distributions(state: State, definitions: Definitions) -> dict[str, list[tuple[str, int]]]:
    values: dict[str, list[object]] = {}
    for labels in state.spans.values():
        for key, applied in labels.items():
            held = applied.value
            # a correction counts as the value it sets, in a histogram as in a bar chart
            values.setdefault(key, []).append(held.value if isinstance(held, Correction) else held)
    found = {}
    for key in sorted(values):
        definition = definitions.get(key)
        numbers = [
            v for v in values[key] if isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
        if definition is not None and definition.type == "range" and numbers:
            found[key] = _bins(numbers)
            continue
        counts: Counter[str] = Counter()
        for value in values[key]:
            if isinstance(value, tuple):
                counts.update(str(option) for option in value)
            elif isinstance(value, bool):
                counts["true" if value else "false"] += 1
            else:
                counts[str(value)] += 1
        ordered = counts.most_common()
        if len(ordered) > BARS:
            rest = sum(count for _, count in ordered[BARS - 1 :])
            ordered = [*ordered[: BARS - 1], ("other", rest)]
        found[key] = ordered
    return found


def _bins(numbers: list[int | float]) -> list[tuple[str, int]]:
    low, high = min(numbers), max(numbers)
    if low == high:
        return [(_number(low), len(numbers))]
    width = (high - low) / BINS
    counts = [0] * BINS
    for number in numbers:
        counts[min(int((number - low) / width), BINS - 1)] += 1
    return [
        (f"{_number(low + i * width)}-{_number(low + (i + 1) * width)}", counts[i])
        for i in range(BINS)
    ]


def _number(value: float) -> str:
    return f"{value:.3g}"


def _reviewers(state: State) -> dict[str, int]:
    votes: Counter[str] = Counter()
    for keys in state.reviews.values():
        for review in keys.values():
            votes.update(who for who, _ in review.votes)
    return dict(sorted(votes.items()))


def _agreement(state: State, definitions: Definitions) -> dict[str, Agreement]:
    ratings: Ratings = {}
    for span, keys in state.reviews.items():
        for key, review in keys.items():
            if review.votes:  # a value an adjudication alone decided is no vote
                ratings.setdefault(key, {})[span] = dict(review.votes)
    return agreements(ratings, definitions)


def _history(settings: Settings, sha: str | None) -> tuple[Entry, ...]:
    path = history_path(settings.state_path)
    if sha is None:
        return load_history(path).entries
    root = gitrev.toplevel(os.path.dirname(settings.state_path))
    data = gitrev.show(root, sha, gitrev.relative(root, path)) if root else None
    if data is None:
        return ()
    return parse_history(data.decode("utf-8", "replace").splitlines()).entries


def _growth(settings: Settings, sha: str | None) -> list[tuple[str, str, int]]:
    """Labels in the state at its commits (up to GROWTH_COMMITS of them, evenly spread,
    always the first and the last), oldest first; none outside git."""
    root = gitrev.toplevel(os.path.dirname(settings.state_path))
    if root is None:
        return []
    rel = gitrev.relative(root, settings.state_path)
    commits = list(reversed(gitrev.log_path(root, rel, sha or "HEAD")))  # oldest first
    if len(commits) > GROWTH_COMMITS:
        step = (len(commits) - 1) / (GROWTH_COMMITS - 1)
        commits = [commits[round(i * step)] for i in range(GROWTH_COMMITS)]
    by_sha = {commit.sha: commit for commit in commits}
    found = []
    for revision, data in gitrev.iter_show(root, list(by_sha), rel):
        commit = by_sha[revision]
        found.append((commit.short, commit.date[:10], _label_count(data) if data else 0))
    return found


def _label_count(data: bytes) -> int:
    """The labels a state file records: the annotations of its spans' lines, counted in the
    text render_state writes (each `"KEY":{"by":...}`), or by parsing it when it is not."""
    head, open_, close = codec.HEAD.encode(), codec.SPANS_OPEN.encode(), codec.SPANS_CLOSE.encode()
    start = data.find(open_) if data.startswith(head) else -1
    end = data.find(close, start) if start >= 0 else -1
    if start >= 0 and end >= 0:
        return data.count(b':{"by":"', start, end)
    try:
        return codec.parse_state(data.decode("utf-8"), "state").annotation_count
    except (ValueError, UnicodeDecodeError):
        return 0


# Drawing ----------------------------------------------------------------------------------

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:62rem;color:#1f2328;
padding:0 1rem}
h1{font-size:1.6rem}h2{margin-top:2.2rem;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;margin:.6rem 0 1.4rem}
td,th{border:1px solid #d0d7de;padding:.2rem .6rem}
td.n{text-align:right}figure{margin:1rem 0}svg.chart{display:block;max-width:100%;height:auto}
.muted{color:#59636e}
"""
BAR = "#0969da"


def render_html(report: Report, project: str, at: str | None = None) -> str:
    """The page: self-contained, no script, every value escaped."""
    when = f" as of {html.escape(at)} ({short_sha(report.commit)})" if at else ""
    state = f"commit {html.escape(short_sha(report.commit))}" if report.commit else "not committed"
    title = f"orqsync report: {html.escape(project)}{when}"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{title}</h1>",
        f'<p class="muted">{report.labels:,} labels on {report.spans:,} spans; state {state}.</p>',
        "<h2>Labels per key</h2>",
    ]
    for key, bars in report.keys.items():
        parts.append(_figure(f"{key}", bars, "spans"))
    if report.reviewers:
        parts.append("<h2>Reviewers</h2>")
        parts.append(_figure("votes per reviewer", list(report.reviewers.items()), "votes"))
        parts.append(_agreement_table(report.agreement))
    parts.append("<h2>Apply history</h2>")
    parts.append(_timeline(report.history))
    parts.append("<h2>Growth over the state's commits</h2>")
    if report.growth:
        points = [(f"{sha} {date}", count) for sha, date, count in report.growth]
        parts.append(_line_figure("labels in the state", points))
    else:
        parts.append('<p class="muted">The state has no git history here.</p>')
    parts.append(
        f'<p class="muted">Made by orqsync on '
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.</p></body></html>"
    )
    return "\n".join(parts) + "\n"


def _figure(title: str, bars: Sequence[tuple[str, int]], unit: str) -> str:
    return (
        f"<figure><figcaption><strong>{html.escape(title)}</strong></figcaption>"
        f"{_bars_svg(title, bars)}{_table(bars, unit)}</figure>"
    )


def _bars_svg(title: str, bars: Sequence[tuple[str, int]]) -> str:
    """Horizontal bars: one row a label, its count at the bar's end."""
    width, label_width, row = 720, 200, 26
    height = max(1, len(bars)) * row + 10
    top = max((count for _, count in bars), default=0) or 1
    shapes = []
    for index, (label, count) in enumerate(bars):
        y = 5 + index * row
        length = (width - label_width - 80) * count / top
        shown = label if len(label) <= 24 else label[:23] + "…"
        shapes.append(
            f'<text x="{label_width - 8}" y="{y + 17}" text-anchor="end">'
            f"{html.escape(shown)}</text>"
            f'<rect x="{label_width}" y="{y + 3}" width="{max(length, 1):.1f}" height="{row - 8}" '
            f'fill="{BAR}"><title>{html.escape(label)}: {count:,}</title></rect>'
            f'<text x="{label_width + length + 6:.1f}" y="{y + 17}">{count:,}</text>'
        )
    return (
        f'<svg class="chart" role="img" aria-label="{html.escape(title)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-size="13">{"".join(shapes)}</svg>'
    )


def _line_figure(title: str, points: Sequence[tuple[str, int]]) -> str:
    width, height, pad = 720, 240, 40
    top = max((value for _, value in points), default=0) or 1
    step = (width - 2 * pad) / max(len(points) - 1, 1)
    xy = [
        (pad + i * step, height - pad - (height - 2 * pad) * value / top)
        for i, (_, value) in enumerate(points)
    ]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{BAR}"><title>{html.escape(label)}: '
        f"{value:,}</title></circle>"
        for (x, y), (label, value) in zip(xy, points, strict=True)
    )
    axis = (
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        'stroke="#8c959f"/>'
        f'<text x="{pad}" y="{pad - 12}">{top:,}</text>'
    )
    svg = (
        f'<svg class="chart" role="img" aria-label="{html.escape(title)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-size="13">{axis}'
        f'<polyline points="{line}" fill="none" stroke="{BAR}" stroke-width="2"/>{dots}</svg>'
    )
    return (
        f"<figure><figcaption><strong>{html.escape(title)}</strong></figcaption>{svg}"
        f"{_table(points, 'count')}</figure>"
    )


def _timeline(entries: Sequence[Entry]) -> str:
    if not entries:
        return '<p class="muted">Nothing applied yet.</p>'
    points = [
        (
            f"{entry.time[:16]} {entry.operation} {entry.outcome}",
            entry.counts.done or entry.counts.requests,
        )
        for entry in entries
    ]
    rows = "".join(
        f"<tr><td>{html.escape(e.time)}</td><td>{html.escape(e.operation)}</td>"
        f"<td>{html.escape(e.outcome)}</td><td>{html.escape(e.who)}</td>"
        f"<td>{html.escape(short_sha(e.commit))}</td><td class=n>{e.counts.create:,}</td>"
        f"<td class=n>{e.counts.update:,}</td><td class=n>{e.counts.delete:,}</td></tr>"
        for e in entries
    )
    table = (
        "<table><tr><th>time (UTC)</th><th>operation</th><th>outcome</th><th>who</th>"
        f"<th>commit</th><th>added</th><th>changed</th><th>removed</th></tr>{rows}</table>"
    )
    return _line_figure("requests per apply, over time", points).replace(
        "</figure>", table + "</figure>", 1
    )


def _table(rows: Sequence[tuple[str, int]], unit: str) -> str:
    body = "".join(
        f"<tr><td>{html.escape(label)}</td><td class=n>{count:,}</td></tr>" for label, count in rows
    )
    return f"<table><tr><th>value</th><th>{html.escape(unit)}</th></tr>{body}</table>"


def _agreement_table(figures: dict[str, Agreement]) -> str:
    def number(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}"

    rows = "".join(
        f"<tr><td>{html.escape(key)}</td><td>{item.metric}</td><td class=n>{item.items:,}</td>"
        f"<td class=n>{item.reviewers}</td><td class=n>{number(item.observed)}</td>"
        f"<td class=n>{number(item.alpha)}</td></tr>"
        for key, item in figures.items()
    )
    return (
        "<p>Agreement over the votes the applied values were resolved from (keys not "
        "resolved are not applied, so not counted here; <code>orqsync agreement</code> "
        "reads every vote in the files).</p>"
        "<table><tr><th>key</th><th>metric</th><th>items</th><th>reviewers</th>"
        f"<th>observed</th><th>Krippendorff's alpha</th></tr>{rows}</table>"
    )
