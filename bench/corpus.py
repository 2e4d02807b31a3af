"""The synthetic repository of the benchmark: definitions, annotation files, projects.

Deterministic: the same (files, spans, keys, seed) always gives byte-identical files. The
content is meant to look like what a support team writes by hand:

- definitions of every type orqsync knows (single_select, multi_select, range, text, boolean),
  including select options that YAML 1.1 would read as booleans (`"no"`, `"yes"`);
- 32-hex trace ids and 16-hex span ids, several spans per trace; an id that YAML would read as
  a number (all digits, or digits with one `e` such as `1234e567...`) is quoted, every other id
  is plain, as a careful user writes them;
- review text of one to three sentences of varying length, some with commas, apostrophes,
  colons, `#` or double quotes; a text is quoted only when YAML needs it;
- a `metadata: {reviewerId: ...}` per file and, on some spans, metadata of their own;
- K keys per span picked from the definitions, written in the definitions' order.

For scenario 10 (several reviewers), `generate_panel` writes the same files once per reviewer
of a panel of three: alice's values are the corpus's, bob and carol each give another value
on a seeded ~10% of the span's keys.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field

import yaml

GENERATOR_VERSION = 1  # bump when the output changes, so cached corpora are rebuilt

# (key, type, options or (min, max))
BASE_DEFINITIONS: list[tuple[str, str, object]] = [
    ("rating", "single_select", ["good", "bad"]),
    ("tone", "single_select", ["no", "yes", "neutral"]),
    (
        "defects",
        "multi_select",
        [
            "grammatical",
            "spelling",
            "hallucination",
            "repetition",
            "inappropriate",
            "off_topic",
            "incompleteness",
            "ambiguity",
        ],
    ),
    (
        "topics",
        "multi_select",
        ["billing", "refunds", "onboarding", "security", "api", "performance", "account"],
    ),
    ("confidence_score", "range", (0, 1)),
    ("helpfulness", "range", (1, 5)),
    ("correction", "text", None),
    ("reviewer_note", "text", None),
    ("approved", "boolean", None),
    ("escalate", "boolean", None),
]

QUEUES = ["billing", "refunds", "onboarding", "security", "api-support"]
REVIEWERS = ["alice", "bob", "carmen", "dmitri", "eun-ji", "farah", "gustavo", "hana"]

_SUBJECTS = [
    "The answer",
    "The assistant",
    "This reply",
    "The summary",
    "The model",
    "The bot",
    "The response",
    "The agent's draft",
]
_CLAIMS = [
    "should emphasize scalability and fault tolerance",
    "missed that the customer had already been refunded",
    "confuses the annual plan with the monthly one",
    "quotes the wrong invoice number",
    "is correct but far too long for a chat reply",
    "doesn't mention the 30-day cancellation window",
    "invents a discount code that never existed",
    "handles the escalation well",
    "ignores the user's question about data retention",
    "gives the right steps, in the wrong order",
    "is polite, accurate and to the point",
    "repeats the same sentence twice",
    "should link to the API keys page instead of describing it",
    "answers in English although the user wrote in Spanish",
    "mixes up EUR and USD amounts",
    "promises a callback we can't offer",
]
_EXTRAS = [
    "Otherwise fine.",
    "Good tone overall.",
    "See the style guide, section 4.",
    "Customer's account was already closed.",
    "We don't support SSO on the starter plan.",
    "Fix before the next release, please.",
    "Low priority.",
    "The café example in the docs is outdated.",
    "Escalated to tier 2 — waiting on billing.",
    "Naïve retry logic is suggested; recommend backoff instead.",
]
# Sentences that need quoting in YAML (": ", " #", a leading quote) or look like other types.
_TRICKY = [
    "Note: the user asked for a refund, not a credit.",
    'Suggested reply: "Your invoice is attached, let us know if anything is missing."',
    "Ticket #4521 describes the same issue.",
    "Reason: hallucinated a feature (bulk export) that we don't have.",
    '"Thank you for waiting" sounds robotic here.',
    "Steps: 1) open Settings, 2) choose Billing, 3) download the PDF.",
    "Should say 'within 5 business days', not 'immediately'.",
    "TODO: check with legal before approving.",
]
_WHOLE = ["yes", "no", "n/a", "ok", "1.5", "2024-05-01", "null", "true"]

_YAML12_NUMBER = re.compile(
    r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+|[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?"
)
_PLAIN_START_FORBIDDEN = set("-?:,[]{}#&*!|>'\"%@`")
_RESOLVER = yaml.resolver.Resolver()


def needs_quotes(text: str) -> bool:
    """Would a plain scalar not read back as exactly this string, under YAML 1.1 or 1.2?"""
    if not text or text != text.strip() or text[0] in _PLAIN_START_FORBIDDEN:
        return True
    if ": " in text or " #" in text or text.endswith(":") or "\t" in text or "\n" in text:
        return True
    if _YAML12_NUMBER.fullmatch(text):
        return True
    tag = _RESOLVER.resolve(yaml.ScalarNode, text, (True, False))
    return tag != "tag:yaml.org,2002:str"


def scalar(text: str) -> str:
    """A string as a careful user writes it: plain when that is safe, else double-quoted."""
    return json.dumps(text, ensure_ascii=False) if needs_quotes(text) else text


@dataclass
class Span:
    trace_id: str
    span_id: str
    annotations: dict[str, object]
    metadata: dict[str, str] | None = None
    style: dict[str, str] = field(default_factory=dict)  # per key: "block" list, "list" select


@dataclass
class AnnotationFile:
    relpath: str
    reviewer: str
    spans: list[Span]


@dataclass(frozen=True)
class Corpus:
    files: int
    spans: int
    keys: int
    seed: int = 1

    @property
    def annotations(self) -> int:
        return self.files * self.spans * self.keys

    def definitions(self) -> list[tuple[str, str, object]]:
        found = list(BASE_DEFINITIONS)
        for extra in range(max(0, self.keys - len(found))):
            found.append((f"note_{extra + 1}", "text", None))
        return found

    def relpath(self, index: int) -> str:
        queue = QUEUES[index % len(QUEUES)]
        return f"annotations/{queue}/reviews-{index:04d}.yaml"

    def make_file(self, index: int) -> AnnotationFile:
        """File `index` alone (each file has its own seeded generator)."""
        rng = random.Random(f"orqsync-bench/{self.seed}/{index}")
        definitions = self.definitions()
        spans: list[Span] = []
        while len(spans) < self.spans:
            trace_id = f"{rng.getrandbits(128):032x}"
            for _ in range(min(rng.randint(1, 6), self.spans - len(spans))):
                spans.append(make_span(rng, trace_id, definitions, self.keys))
        reviewer = REVIEWERS[index % len(REVIEWERS)]
        return AnnotationFile(self.relpath(index), reviewer, spans)


def make_span(
    rng: random.Random, trace_id: str, definitions: list[tuple[str, str, object]], keys: int
) -> Span:
    chosen = sorted(rng.sample(range(len(definitions)), keys))
    annotations: dict[str, object] = {}
    style: dict[str, str] = {}
    for position in chosen:
        key, kind, spec = definitions[position]
        annotations[key] = make_value(rng, kind, spec)
        if kind == "multi_select" and rng.random() < 0.1:
            style[key] = "block"
        elif kind == "single_select" and rng.random() < 0.02:
            style[key] = "list"
    metadata = None
    if rng.random() < 0.1:
        metadata = {"identityId": f"user-{rng.randint(100, 99999)}"}
    return Span(trace_id, f"{rng.getrandbits(64):016x}", annotations, metadata, style)


def make_value(rng: random.Random, kind: str, spec: object) -> object:
    if kind == "single_select":
        assert isinstance(spec, list)
        return rng.choice(spec)
    if kind == "multi_select":
        assert isinstance(spec, list)
        return rng.sample(spec, rng.choice((1, 1, 1, 2, 2, 3)))
    if kind == "range":
        assert isinstance(spec, tuple)
        low, high = spec
        if isinstance(low, int) and high - low > 1:
            return rng.randint(low, high)
        return round(rng.uniform(low, high), 2)
    if kind == "boolean":
        return rng.random() < 0.7
    return make_text(rng)


def make_text(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.02:
        return rng.choice(_WHOLE)
    parts = []
    if roll < 0.15:
        parts.append(rng.choice(_TRICKY))
    else:
        parts.append(f"{rng.choice(_SUBJECTS)} {rng.choice(_CLAIMS)}.")
    for _ in range(rng.choice((0, 0, 1, 1, 2))):
        parts.append(rng.choice(_EXTRAS))
    text = " ".join(parts)
    return text[:200].rstrip()


def _number(value: float | int) -> str:
    return repr(value)


def render_value(value: object, style: str | None) -> str | list[str]:
    """The YAML text of a value: a string for one line, a list of lines for a block list."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, list):
        if style == "block":
            return [scalar(str(item)) for item in value]
        return "[" + ", ".join(scalar(str(item)) for item in value) + "]"
    assert isinstance(value, str)
    if style == "list":
        return f"[{scalar(value)}]"
    return scalar(value)


def render_file(data: AnnotationFile) -> str:
    out = [
        "# yaml-language-server: $schema=https://orqsync.dev/schemas/annotations.schema.json",
        "version: 1",
        f"metadata: {{reviewerId: {data.reviewer}}}",
        "spans:",
    ]
    for span in data.spans:
        out.append(f"  - trace_id: {scalar(span.trace_id)}")
        out.append(f"    span_id: {scalar(span.span_id)}")
        if span.metadata:
            inner = ", ".join(f"{k}: {scalar(v)}" for k, v in span.metadata.items())
            out.append(f"    metadata: {{{inner}}}")
        out.append("    annotations:")
        for key, value in span.annotations.items():
            text = render_value(value, span.style.get(key))
            if isinstance(text, list):
                out.append(f"      {key}:")
                out.extend(f"        - {item}" for item in text)
            else:
                out.append(f"      {key}: {text}")
    return "\n".join(out) + "\n"


def expected_data(data: AnnotationFile) -> dict[str, object]:
    """What a YAML loader must read back from render_file(data)."""
    spans = []
    for span in data.spans:
        entry: dict[str, object] = {"trace_id": span.trace_id, "span_id": span.span_id}
        if span.metadata:
            entry["metadata"] = dict(span.metadata)
        annotations: dict[str, object] = {}
        for key, value in span.annotations.items():
            annotations[key] = [value] if span.style.get(key) == "list" else value
        entry["annotations"] = annotations
        spans.append(entry)
    return {"version": 1, "metadata": {"reviewerId": data.reviewer}, "spans": spans}


def render_definitions(corpus: Corpus) -> str:
    out = [
        "# yaml-language-server: $schema=https://orqsync.dev/schemas/definitions.schema.json",
        "version: 1",
        "definitions:",
    ]
    for key, kind, spec in corpus.definitions():
        if kind in ("single_select", "multi_select"):
            assert isinstance(spec, list)
            options = ", ".join(scalar(option) for option in spec)
            out.append(f"  {key}: {{type: {kind}, options: [{options}]}}")
        elif kind == "range":
            assert isinstance(spec, tuple)
            out.append(f"  {key}: {{type: range, min: {spec[0]}, max: {spec[1]}}}")
        else:
            out.append(f"  {key}: {{type: {kind}}}")
    return "\n".join(out) + "\n"


def project_yaml(
    base_url: str,
    api_key_env: str = "ORQ_API_KEY",
    parallelism: int = 8,
    sources: str = "annotations/**/*.yaml",
    reviews: str | None = None,
) -> str:
    """The project's orqsync.yaml; with `reviews`, the votes resolve by that rule."""
    extra = ["reviews:", f"  rule: {reviews}"] if reviews else []
    return "\n".join(
        [
            "version: 1",
            "workspace: bench-workspace",
            "api:",
            f"  base_url: {base_url}",
            f"  api_key_env: {api_key_env}",
            "  string_limit: 200",
            "  metadata_style: documented",
            f"  parallelism: {parallelism}",
            "  requests_per_minute: null",
            "definitions: definitions.yaml",
            f'sources: ["{sources}"]',
            "state: .orqsync/state.json",
            "metadata: {source: orqsync}",
            "policy:",
            "  max_removals: 10000000",
            '  owned_keys: ["*"]',
            *extra,
            "",
        ]
    )


def write_text(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


@dataclass
class Written:
    directory: str
    files: list[str]  # relative paths of the annotation files
    size: int  # bytes of annotation YAML
    quoted_ids: int  # ids written quoted because YAML would read them as numbers
    quoted_texts: int


def generate(corpus: Corpus, directory: str, check: bool = True) -> Written:
    """Write definitions.yaml and every annotation file under `directory`.

    With `check`, every file is read back with PyYAML (YAML 1.1) and compared with what was
    meant, so that quoting mistakes cannot slip into the benchmark.
    """
    if os.path.isdir(directory):
        shutil.rmtree(directory)
    os.makedirs(directory)
    write_text(os.path.join(directory, "definitions.yaml"), render_definitions(corpus))
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    relpaths: list[str] = []
    size = quoted_ids = quoted_texts = 0
    for index in range(corpus.files):
        data = corpus.make_file(index)
        text = render_file(data)
        write_text(os.path.join(directory, data.relpath), text)
        relpaths.append(data.relpath)
        size += len(text.encode("utf-8"))
        for span in data.spans:
            quoted_ids += needs_quotes(span.trace_id) + needs_quotes(span.span_id)
            quoted_texts += sum(
                isinstance(value, str) and needs_quotes(value)
                for value in span.annotations.values()
            )
        if check:
            loaded = yaml.load(text, Loader=loader)
            if loaded != expected_data(data):
                raise AssertionError(f"{data.relpath}: does not read back as generated")
    return Written(directory, relpaths, size, quoted_ids, quoted_texts)


# The pull-request change of scenario 2 --------------------------------------------------------


@dataclass
class PullRequestChange:
    relpath: str
    text: str
    flipped: int  # rating changed: one set request each
    dropped: int  # one key removed: one remove request each
    added_spans: int  # new spans: one set request each (K <= 10)
    added_keys: int

    @property
    def expected(self) -> dict[str, int]:
        return {
            "create": self.added_keys,
            "update": self.flipped,
            "delete": self.dropped,
            "requests": self.flipped + self.dropped + self.added_spans,
        }


def pull_request_change(corpus: Corpus) -> PullRequestChange:
    """One file of the corpus edited as in a typical review pull request.

    Ten spans get their rating flipped, five other spans lose one key, one new span is added.
    """
    index = corpus.files // 2
    data = corpus.make_file(index)
    rng = random.Random(f"orqsync-bench/{corpus.seed}/pull-request")
    rated = [span for span in data.spans if isinstance(span.annotations.get("rating"), str)]
    flip = rng.sample(rated, min(10, len(rated)))
    for span in flip:
        span.annotations["rating"] = "bad" if span.annotations["rating"] == "good" else "good"
        span.style.pop("rating", None)
    others = [span for span in data.spans if span not in flip and len(span.annotations) > 1]
    drop = rng.sample(others, min(5, len(others)))
    for span in drop:
        span.annotations.pop(rng.choice(sorted(span.annotations)))
    new = make_span(rng, data.spans[-1].trace_id, corpus.definitions(), corpus.keys)
    data.spans.append(new)
    return PullRequestChange(
        data.relpath, render_file(data), len(flip), len(drop), 1, len(new.annotations)
    )


# The panel of scenario 10: three reviewers on every span ---------------------------------------

PANEL = ("alice", "bob", "carol")  # alice writes the corpus's values
PANEL_SOURCES = "reviewers/**/*.yaml"
DISSENT = 0.1  # the share of a span's keys on which bob, and carol, give another value


def other_value(rng: random.Random, kind: str, spec: object, value: object) -> object:
    """Another valid value of the definition than `value` (a multi select: another set of
    options, written in the definition's order)."""
    if kind == "single_select":
        assert isinstance(spec, list)
        return rng.choice([option for option in spec if option != value])
    if kind == "boolean":
        return not value
    if kind == "range":
        assert isinstance(spec, tuple)
        low, high = spec
        if isinstance(low, int) and high - low > 1:
            return rng.choice([n for n in range(low, high + 1) if n != value])
    while True:
        found = make_value(rng, kind, spec)
        if isinstance(found, list):
            assert isinstance(spec, list)
            found.sort(key=spec.index)
        if canonical(found) != canonical(value):
            return found


def canonical(value: object) -> object:
    """A value as orqsync compares votes: a multi select as its sorted options."""
    return tuple(sorted(value)) if isinstance(value, list) else value


def majority(votes: list[object]) -> object | None:
    """The value most votes give, None on a tie (orqsync's rule `majority`)."""
    tally: dict[object, int] = {}
    for vote in votes:
        tally[canonical(vote)] = tally.get(canonical(vote), 0) + 1
    most = max(tally.values())
    leaders = [value for value, count in tally.items() if count == most]
    return leaders[0] if len(leaders) == 1 else None


def panel_files(corpus: Corpus, index: int) -> list[AnnotationFile]:
    """File `index` as each reviewer of the panel writes it, under reviewers/<name>/."""
    definitions = {key: (kind, spec) for key, kind, spec in corpus.definitions()}
    files = []
    for reviewer in PANEL:
        data = corpus.make_file(index)
        if reviewer != PANEL[0]:
            rng = random.Random(f"orqsync-bench/{corpus.seed}/{index}/{reviewer}")
            for span in data.spans:
                for key, value in span.annotations.items():
                    if rng.random() < DISSENT:
                        kind, spec = definitions[key]
                        span.annotations[key] = other_value(rng, kind, spec, value)
        files.append(AnnotationFile(f"reviewers/{reviewer}/{data.relpath}", reviewer, data.spans))
    return files


@dataclass
class Tally:
    """What the panel's votes come to, as a plan with no state must find it."""

    unresolved: int = 0  # span keys with a three-way tie: not planned
    resolved: int = 0  # span keys planned
    requests: int = 0  # one per span with a resolved key (per 10 such keys)

    def count(self, files: list[AnnotationFile]) -> None:
        for spans in zip(*(data.spans for data in files), strict=True):
            planned = 0
            for key, value in spans[0].annotations.items():
                votes = [value, *(span.annotations[key] for span in spans[1:])]
                if majority(votes) is None:
                    self.unresolved += 1
                else:
                    planned += 1
            self.resolved += planned
            self.requests += -(-planned // 10)


@dataclass
class PanelWritten:
    directory: str
    files: list[str]
    size: int
    tally: Tally


def generate_panel(corpus: Corpus, directory: str, check: bool = True) -> PanelWritten:
    """Write reviewers/<name>/annotations/... for each reviewer of the panel under
    `directory` (definitions.yaml is the corpus's), and count what the votes come to."""
    if os.path.isdir(directory):
        shutil.rmtree(directory)
    os.makedirs(directory)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    relpaths: list[str] = []
    size = 0
    tally = Tally()
    for index in range(corpus.files):
        files = panel_files(corpus, index)
        tally.count(files)
        for data in files:
            text = render_file(data)
            write_text(os.path.join(directory, data.relpath), text)
            relpaths.append(data.relpath)
            size += len(text.encode("utf-8"))
            if check and yaml.load(text, Loader=loader) != expected_data(data):
                raise AssertionError(f"{data.relpath}: does not read back as generated")
    return PanelWritten(directory, relpaths, size, tally)


@dataclass
class PanelChange:
    relpath: str
    text: str
    moved: int  # bob now sides with carol against alice: the resolved value changes
    outvoted: int  # bob leaves alice and carol, who agree: nothing changes

    @property
    def expected(self) -> dict[str, int]:
        return {"create": 0, "update": self.moved, "delete": 0, "requests": self.moved}


def panel_change(corpus: Corpus) -> PanelChange:
    """Bob's file of scenario 2's index edited in a pull request: on five spans he changes
    his vote to carol's where she alone differed from alice (the value planned changes), on
    five others he leaves a value all three gave (alice and carol still carry it)."""
    index = corpus.files // 2
    alice, bob, carol = panel_files(corpus, index)
    rng = random.Random(f"orqsync-bench/{corpus.seed}/panel-pull-request")
    spans = list(zip(alice.spans, bob.spans, carol.spans, strict=True))

    def keys_where(test: Callable[[object, object, object], bool]) -> list[tuple[int, str]]:
        found = []
        for number, (a, b, c) in enumerate(spans):
            for key in a.annotations:
                if test(*(canonical(s.annotations[key]) for s in (a, b, c))):
                    found.append((number, key))
        return found

    def one_per_span(
        pairs: list[tuple[int, str]], count: int, taken: set[int]
    ) -> list[tuple[int, str]]:
        chosen: list[tuple[int, str]] = []
        for number, key in rng.sample(pairs, len(pairs)):
            if number not in taken and len(chosen) < count:
                taken.add(number)
                chosen.append((number, key))
        return chosen

    taken: set[int] = set()
    moved = one_per_span(keys_where(lambda a, b, c: a == b != c), 5, taken)
    outvoted = one_per_span(keys_where(lambda a, b, c: a == b == c), 5, taken)
    definitions = {key: (kind, spec) for key, kind, spec in corpus.definitions()}
    for number, key in moved:
        bob.spans[number].annotations[key] = carol.spans[number].annotations[key]
    for number, key in outvoted:
        kind, spec = definitions[key]
        span = bob.spans[number]
        span.annotations[key] = other_value(rng, kind, spec, span.annotations[key])
    return PanelChange(bob.relpath, render_file(bob), len(moved), len(outvoted))
