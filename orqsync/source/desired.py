"""Annotation files + definitions -> DesiredState, strictly, with every problem located."""

from __future__ import annotations

import fnmatch
import functools
import glob
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from yaml.nodes import Node, ScalarNode, SequenceNode

from orqsync.errors import Problem, ProblemsError
from orqsync.model import (
    CORRECTION_MARK,
    Annotation,
    Correction,
    Metadata,
    Review,
    SpanId,
    Value,
    correction_key,
    parent_id,
)
from orqsync.source.definitions import Definitions, load_definitions
from orqsync.source.fastpath import FastFile, FastReader
from orqsync.source.ids import correction_id_problem, id_problem
from orqsync.source.project import PROJECT_FILE, Settings, normalize_metadata
from orqsync.source.reviews import ADJUDICATOR, Ballot, Unresolved, check_reviews, warnings_of
from orqsync.source.schema import check
from orqsync.source.values import (
    Invalid,
    Lenient,
    canonical_number,
    check_value,
    read_correction,
)
from orqsync.source.yamlfile import (
    Document,
    decode_text,
    mapping_items,
    parse,
    position,
    read_text,
    resolve_scalar,
    scalar_text,
    to_python,
)


@dataclass(frozen=True, slots=True)
class Feedback:
    """One legacy Feedback API record, identified by `id`."""

    id: str
    trace_id: str
    product: str
    property: str
    value: str | int | float | tuple[str, ...]
    path: str
    line: int

    def body(self) -> dict[str, object]:
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {
            "property": self.property,
            "value": value,
            "trace_id": self.trace_id,
            "id": self.id,
            "product": self.product,
        }


@dataclass(frozen=True, slots=True)
class DesiredState:
    """What the repository declares; `files` maps each file read to its content hash."""

    spans: dict[SpanId, dict[str, Annotation]]
    feedback: dict[str, Feedback]
    files: dict[str, str] = field(default_factory=dict)
    definitions_hash: str = ""
    fast_files: int = 0  # files the fast reader took (the rest went to the strict reader)
    warnings: list[Problem] = field(default_factory=list)  # values read leniently, and where
    correction_count: int = 0  # of the keys of the spans, how many are corrections
    # With reviews (orqsync.yaml): the keys whose votes do not resolve (not planned), and
    # every vote: span -> key -> reviewer (reviews.ADJUDICATOR for an adjudication) -> vote
    unresolved: list[Unresolved] = field(default_factory=list)
    votes: dict[SpanId, dict[str, dict[str, Annotation]]] = field(default_factory=dict)
    # and how each resolved key of `spans` was resolved: span -> key -> review
    reviewed: dict[SpanId, dict[str, Review]] = field(default_factory=dict)

    @property
    def annotation_count(self) -> int:
        """Annotations and corrections: every key of every span."""
        return sum(len(keys) for keys in self.spans.values())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def definitions_hash(settings: Settings) -> str:
    """The content hash of definitions.yaml ("" when it is gone: no plan saw that)."""
    try:
        with open(settings.definitions_path, "rb") as handle:
            return sha256(handle.read())
    except OSError:
        return ""


def glob_files(settings: Settings, patterns: tuple[str, ...]) -> set[str]:
    """Absolute paths of the files the project-relative glob patterns match."""
    found: set[str] = set()
    for pattern in patterns:
        for match in glob.glob(pattern, root_dir=settings.root, recursive=True):
            full = settings.path(match)
            if os.path.isfile(full):
                found.add(full)
    return found


def find_sources(settings: Settings) -> list[str]:
    """Absolute paths of the annotation files, sorted, the project's own files (definitions,
    orqsync.yaml, the queue files) left out."""
    skip = {settings.definitions_path, settings.path(PROJECT_FILE)}
    found = glob_files(settings, settings.sources) - skip
    if settings.reviews is not None:  # adjudication files are annotation files too
        found |= glob_files(settings, settings.reviews.adjudication) - skip
    if found and settings.queues:
        found -= glob_files(settings, settings.queues)
    return sorted(found)


@functools.lru_cache(maxsize=4096)
def owned(key: str, patterns: tuple[str, ...]) -> bool:
    """Whether `policy.owned_keys` lets orqsync write (and remove) `key`."""
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns)


def key_problem(
    key: str,
    definitions: Definitions,
    settings: Settings,
    owned_key: bool,
    *,
    define: str,
    or_else: str,
) -> tuple[str, str] | None:
    """What stops orqsync from writing `key` (message and hint), or None: the key has no
    definition (`define`: where it has to be added besides definitions.yaml), or
    `policy.owned_keys` does not let orqsync write it (`owned_key`, which the caller knows,
    often from a memo; `or_else`: what to do about the place that names it)."""
    if key not in definitions:
        known = ", ".join(sorted(definitions)) or "none"
        return (
            f'unknown annotation key "{key}": no such definition in {settings.definitions}',
            f"known keys: {known}; add it to {define}{settings.definitions} first",
        )
    if not owned_key:
        return (
            f'key "{key}" is not in policy.owned_keys',
            f"add it to policy.owned_keys in orqsync.yaml, or {or_else}",
        )
    return None


def _metadata_merger() -> Callable[[Metadata, dict[str, str]], Metadata]:
    """merge(base, raw): the metadata `base` with `raw` over it, one tuple for each distinct
    result (the planner compares metadata by identity first)."""
    known: dict[Metadata, Metadata] = {}

    def merge(base: Metadata, raw: dict[str, str]) -> Metadata:
        merged = dict(base)
        merged.update(normalize_metadata(raw))
        key = tuple(sorted(merged.items()))
        return known.setdefault(key, key)

    return merge


def load_desired(settings: Settings, *, fast: bool = True) -> DesiredState:
    """Read definitions and every annotation file; raise ProblemsError listing all problems.

    `fast=False` reads every file with the strict reader only (the differential tests).
    """
    reader = DesiredReader(settings, fast=fast)
    for path in reader.paths:
        reader.add(path)
    return reader.result()


class DesiredReader:
    """The annotation files of a project: every one hashed, those asked for read.

    The incremental planner reads only the files that changed; `load_desired` reads all.
    """

    def __init__(self, settings: Settings, *, fast: bool = True) -> None:
        definitions, problems = load_definitions(
            settings.definitions_path, settings.display(settings.definitions_path)
        )
        if problems:
            raise ProblemsError(problems)
        problems = check_reviews(settings, definitions)
        if problems:
            raise ProblemsError(problems)
        self.definitions_hash = definitions_hash(settings)
        self.definitions = definitions
        self.settings = settings
        self.builder = _Builder(settings, definitions, fast=fast)
        self.paths = find_sources(settings)
        if not self.paths:
            patterns = ", ".join(settings.sources)
            raise ProblemsError(
                [
                    Problem(
                        PROJECT_FILE,
                        *settings.where("sources"),
                        f"sources ({patterns}) match no annotation files",
                        "check `sources` in orqsync.yaml; to remove every label keep one file "
                        "with `spans: []`",
                    )
                ]
            )
        self.read: set[str] = set()
        self._raw: dict[str, bytes | None] = {}
        self._digests: dict[str, str] = {}  # the hashes of the bytes in _raw

    def display(self, path: str) -> str:
        return self.settings.display(path)

    def hashes(self) -> dict[str, str]:
        """Every annotation file's content hash, by its display path."""
        found = {}
        for path in self.paths:
            raw = self._bytes(path)
            if raw is not None:
                found[self.display(path)] = self._digests[path] = sha256(raw)
        return found

    def _bytes(self, path: str) -> bytes | None:
        if path not in self._raw:
            try:
                with open(path, "rb") as handle:
                    self._raw[path] = handle.read()
            except OSError:
                self._raw[path] = None  # add() reports it
        return self._raw[path]

    def add(self, path: str) -> None:
        """Read one file into the desired state (once)."""
        if path in self.read:
            return
        self.read.add(path)
        raw = self._raw.pop(path, None)
        self.builder.add_file(path, raw, self._digests.pop(path, None))

    def result(self) -> DesiredState:
        """What the files read so far declare; ProblemsError if anything is wrong."""
        builder = self.builder
        if builder.problems:
            raise ProblemsError(builder.problems, builder.warnings)
        unresolved: list[Unresolved] = []
        reviewed: dict[SpanId, dict[str, Review]] = {}
        if builder.ballot is not None:
            unresolved, reviewed = builder.ballot.resolve(builder.spans, builder.defaults)
            builder.warnings.extend(warnings_of(unresolved))
        return DesiredState(
            builder.spans,
            builder.feedback,
            builder.files,
            self.definitions_hash,
            builder.fast_files,
            sorted(builder.warnings, key=Problem.sort_key),
            builder.corrections,
            unresolved,
            builder.ballot.votes if builder.ballot is not None else {},
            reviewed,
        )


class _Builder:
    """Accumulates spans and feedback across files, remembering where each was declared."""

    def __init__(self, settings: Settings, definitions: Definitions, fast: bool = True) -> None:
        self.settings = settings
        self.definitions = definitions
        self.defaults = tuple(sorted(settings.metadata.items()))
        self.spans: dict[SpanId, dict[str, Annotation]] = {}
        self.feedback: dict[str, Feedback] = {}
        self.files: dict[str, str] = {}
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self._merge_metadata = _metadata_merger()
        self._owned_keys: dict[str, bool] = {}
        # The fast reader gets no bound method of the builder: that cycle would keep every
        # annotation alive until the interpreter's last collection (main() turns the collector
        # off), which then has to walk them all at exit.
        self.fast = FastReader(
            definitions,
            settings.string_limit,
            functools.partial(owned, patterns=settings.owned_keys),
            self._merge_metadata,
            settings.id_format,
        )
        self.ballot: Ballot | None = None
        if settings.reviews is not None:
            judged = glob_files(settings, settings.reviews.adjudication)
            self.ballot = Ballot(settings.reviews, frozenset(map(settings.display, judged)))
        self.use_fast = fast
        self._reviewers: dict[Metadata, str] = {}  # reviewerId of each metadata (reviews)
        self.fast_files = 0  # how many files the fast reader took (for tests and benchmarks)
        self.corrections = 0  # corrections declared (the strict reader reads them all)

    def add_file(self, path: str, raw: bytes | None = None, digest: str | None = None) -> None:
        """Read one file: from disk, or from its bytes `raw` (and their hash `digest`)."""
        display = self.settings.display(path)
        text, problems = read_text(path, display) if raw is None else decode_text(raw, display)
        if text is None:
            self.problems.extend(problems)
            return
        if digest is None:
            digest = sha256(raw if raw is not None else text.encode("utf-8"))
        self.files[display] = digest
        fast = self.fast.read(text, display, self._file_metadata, raw) if self.use_fast else None
        if fast is not None and (
            self._add_fast(fast) if self.ballot is None else self._add_votes(fast, display)
        ):
            self.fast_files += 1
            return
        doc = parse(text, display)
        if doc.root is None:
            if not doc.problems:
                doc.problem(None, "the file is empty", "start with `version: 1`")
            self.problems.extend(doc.problems)
            return
        data = to_python(doc, doc.root)
        if not doc.problems:
            if isinstance(data, dict):
                doc.problems.extend(check(doc, data, "annotations"))
            else:
                doc.problem(
                    doc.root,
                    "an annotation file must be a mapping",
                    "start with `version: 1` and a `spans:` list",
                )
        if not doc.problems:
            self._walk(doc)
        self.problems.extend(doc.problems)

    def _walk(self, doc: Document) -> None:
        """The file passed its schema: read ids, metadata and values in detail."""
        fields = {name: value for name, _, value in mapping_items(doc, doc.root)}
        file_meta = self._read_metadata(doc, fields.get("metadata"), self.defaults)
        spans = fields.get("spans")
        in_this_file: dict[SpanId, tuple[int | None, Metadata]] = {}
        for span_node in spans.value if spans is not None else ():
            self._span(doc, span_node, file_meta, in_this_file)
        records = fields.get("feedback")
        for record_node in records.value if records is not None else ():
            self._feedback(doc, record_node)

    def _add_fast(self, fast: FastFile) -> bool:
        """Take a file the fast reader vouched for; False (nothing taken) when one of its
        annotations is declared twice, so that the strict reader reports where."""
        spans = self.spans
        declared_once = dict(fast.spans)
        if len(declared_once) != len(fast.spans):
            return False  # a span written twice in the file: the strict reader warns
        if spans.keys().isdisjoint(declared_once):
            spans.update(declared_once)  # the common case: each span once, in one file
            self.warnings.extend(fast.warnings)
            return True
        pending: dict[SpanId, dict[str, Annotation]] = {}
        for span_id, declared in fast.spans:
            before = pending.get(span_id)
            taken = spans.get(span_id)
            if taken is not None and not taken.keys().isdisjoint(declared):
                return False
            if before is None:
                pending[span_id] = declared
            elif not before.keys().isdisjoint(declared):
                return False
            else:
                pending[span_id] = {**before, **declared}
        for span_id, declared in pending.items():
            existing = spans.get(span_id)
            if existing is None:
                spans[span_id] = declared
            else:
                existing.update(declared)
        self.warnings.extend(fast.warnings)
        return True

    def _add_votes(self, fast: FastFile, display: str) -> bool:
        """Take a file the fast reader vouched for as votes (reviews): what _vote does with
        each annotation. False (nothing taken) when one would be a problem (no reviewer, a
        reviewer's second vote...), so that the strict reader reports where."""
        assert self.ballot is not None
        if len(dict(fast.spans)) != len(fast.spans):
            return False  # a span written twice in the file: the strict reader warns
        votes = self.ballot.votes
        judged = display in self.ballot.adjudication
        # Who voted, by each annotation's metadata: a file's annotations mostly share one.
        last: Metadata | None = None
        reviewer = ADJUDICATOR if judged else ""
        held_by_span: list[dict[str, dict[str, Annotation]] | None] = []
        for span, declared in fast.spans:  # first check every vote: all or nothing is taken
            held = votes.get(span)
            for key, vote in declared.items():
                if not judged and vote.metadata is not last:
                    last = vote.metadata
                    reviewer = self._reviewer_of(last)
                    if not reviewer or reviewer.startswith("@"):
                        return False
                if held is not None and reviewer in held.get(key, ()):
                    return False
            held_by_span.append(held)
        spans = self.spans
        last = None
        for (span, declared), held in zip(fast.spans, held_by_span, strict=True):
            if held is None:
                held = votes[span] = {}
                if span not in spans:
                    spans[span] = {}  # as the strict reader leaves a span whose keys are votes
            for key, vote in declared.items():
                if not judged and vote.metadata is not last:
                    last = vote.metadata
                    reviewer = self._reviewer_of(last)
                by = held.get(key)
                if by is None:
                    held[key] = {reviewer: vote}
                else:
                    by[reviewer] = vote
        self.warnings.extend(fast.warnings)
        return True

    def _reviewer_of(self, metadata: Metadata) -> str:
        reviewer = self._reviewers.get(metadata)
        if reviewer is None:
            reviewer = self._reviewers[metadata] = dict(metadata).get("reviewerId", "")
        return reviewer

    def _file_metadata(self, doc: Document, node: Node | None) -> Metadata:
        return self._read_metadata(doc, node, self.defaults)

    def _read_metadata(self, doc: Document, node: Node | None, base: Metadata) -> Metadata:
        if node is None:
            return base
        raw = {name: scalar_text(value) or "" for name, _, value in mapping_items(doc, node)}
        return self._merge_metadata(base, raw)

    def _owned(self, key: str) -> bool:
        known = self._owned_keys.get(key)
        if known is None:
            known = self._owned_keys[key] = owned(key, self.settings.owned_keys)
        return known

    def _id(self, doc: Document, node: Node, what: str) -> str | None:
        text = scalar_text(node)
        if not text or not text.strip():
            doc.problem(node, f"{what} is empty", f"write the {what}")
            return None
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
            doc.problem(node, f"{what} holds a control character", "remove it")
            return None
        if text != text.strip():
            doc.problem(node, f"{what} has leading or trailing spaces", "remove the spaces")
            return None
        return text

    def _span_part(self, doc: Document, node: Node, what: str) -> str | None:
        """A trace_id or span_id: an id, and of the project's id_format (ids.py)."""
        text = self._id(doc, node, what)
        if text is None:
            return None
        wrong = id_problem(text, what, self.settings.id_format)
        if wrong is not None:
            doc.problem(node, *wrong)
            return None
        return text

    def _warn(self, doc: Document, node: Node, message: str, hint: str) -> None:
        line, column = position(node)
        self.warnings.append(Problem(doc.path, line, column, message, hint, "warning"))

    def _span(
        self,
        doc: Document,
        node: Node,
        file_meta: Metadata,
        in_this_file: dict[SpanId, tuple[int | None, Metadata]],
    ) -> None:
        fields = {name: value for name, _, value in mapping_items(doc, node)}
        trace_id = self._span_part(doc, fields["trace_id"], "trace_id")
        span_id = self._span_part(doc, fields["span_id"], "span_id")
        metadata = self._read_metadata(doc, fields.get("metadata"), file_meta)
        if trace_id is None or span_id is None:
            return
        # A span written again with other metadata gives its keys other metadata (import
        # writes such files): only a repeat with the same metadata is worth a warning.
        first = in_this_file.setdefault((trace_id, span_id), (position(node)[0], metadata))
        repeated = first[1] == metadata and first[0] != position(node)[0]
        keys = self.spans.setdefault((trace_id, span_id), {})
        redeclared = False  # a key declared twice says more than "the span is written twice"
        declared = self._annotations(doc, fields.get("annotations"))
        declared += self._corrections(doc, fields.get("corrections"))
        ballot = self.ballot
        for key, key_node, value in declared:
            line, _ = position(key_node)
            assert line is not None
            if ballot is not None and type(value) is not Correction:
                self._vote(
                    doc,
                    key_node,
                    (trace_id, span_id),
                    key,
                    Annotation(value, metadata, doc.path, line),
                )
                continue
            previous = keys.get(key)
            if previous is not None:
                shown = f"correction of {parent}" if (parent := parent_id(key)) else f'"{key}"'
                doc.problem(
                    key_node,
                    f"{shown} of span {trace_id}/{span_id} is declared twice "
                    f"(also at {previous.path}:{previous.line})",
                    "keep one of the two declarations",
                )
                redeclared = True
                continue
            keys[key] = Annotation(value, metadata, doc.path, line)
            if type(value) is Correction:
                self.corrections += 1  # the fast reader reads none (it leaves such files here)
        if repeated and not redeclared:
            self._warn(
                doc,
                node,
                f"span {trace_id}/{span_id} is written twice in this file (first on line "
                f"{first[0]}); its annotations are read together",
                "write the span once, with all its annotations",
            )

    def _vote(self, doc: Document, node: Node, span: SpanId, key: str, vote: Annotation) -> None:
        """A reviewer's vote on a span's key (reviews in orqsync.yaml)."""
        assert self.ballot is not None
        trace_id, span_id = span
        if doc.path in self.ballot.adjudication:
            reviewer = ADJUDICATOR
        else:
            reviewer = dict(vote.metadata).get("reviewerId", "")
            if reviewer.startswith("@"):
                doc.problem(
                    node,
                    f'reviewerId "{reviewer}" starts with @, which orqsync keeps for the '
                    "adjudication files",
                    "name the reviewer without @; a file that settles votes goes in "
                    "reviews.adjudication",
                )
                return
        if not reviewer:
            doc.problem(
                node,
                f'"{key}" of span {trace_id}/{span_id} names no reviewer, and reviews '
                "(orqsync.yaml) resolve votes by reviewer",
                "give the file or the span `metadata: {reviewerId: NAME}`",
            )
            return
        earlier = self.ballot.cast(span, key, reviewer, vote)
        if earlier is not None:
            who = "the adjudication" if reviewer == ADJUDICATOR else f"reviewer {reviewer}"
            doc.problem(
                node,
                f'"{key}" of span {trace_id}/{span_id} is declared twice by {who} '
                f"(also at {earlier.path}:{earlier.line})",
                "keep one of the two declarations",
            )

    def _annotations(self, doc: Document, node: Node | None) -> list[tuple[str, Node, Value]]:
        """The (key, key node, canonical value) of a span's `annotations:` that are good."""
        found: list[tuple[str, Node, Value]] = []
        for key, key_node, value_node in mapping_items(doc, node):
            definition = self.definitions.get(key)
            if definition is None or not self._owned(key):
                refused = key_problem(
                    key,
                    self.definitions,
                    self.settings,
                    definition is not None and self._owned(key),
                    define="orq.ai and to ",
                    or_else="remove it here",
                )
                assert refused is not None
                doc.problem(key_node, *refused)
                continue
            lenient: list[Lenient] = []
            value = check_value(definition, value_node, self.settings.string_limit, lenient)
            if isinstance(value, Invalid):
                doc.problem(value.node or value_node, value.message, value.hint)
                continue
            for note in lenient:
                self._warn(doc, note.node, note.message, note.hint)
            found.append((key, key_node, value))
        return found

    def _corrections(self, doc: Document, node: Node | None) -> list[tuple[str, Node, Value]]:
        """The (key, id node, Correction) of a span's `corrections:` that are good: each keyed
        by the evaluator result's id, with its value alone or `{value, explanation,
        evaluator}` (the schema has checked the fields)."""
        found: list[tuple[str, Node, Value]] = []
        for parent, id_node, body in mapping_items(doc, node):
            what = f"correction of {parent}"
            wrong = correction_id_problem(parent)
            if wrong is not None:
                doc.problem(id_node, *wrong)
                continue
            key = correction_key(parent)
            if not self._owned(key):
                doc.problem(
                    id_node,
                    f"{what}: corrections are not in policy.owned_keys",
                    f'add "{CORRECTION_MARK}*" (every correction) to policy.owned_keys in '
                    "orqsync.yaml, or remove it here",
                )
                continue
            correction = read_correction(
                what, body, self.definitions.evaluators, self.settings.string_limit
            )
            if isinstance(correction, Invalid):
                doc.problem(correction.node or body, correction.message, correction.hint)
                continue
            found.append((key, id_node, correction))
        return found

    def _feedback(self, doc: Document, node: Node) -> None:
        fields = {name: value for name, _, value in mapping_items(doc, node)}
        record_id = self._id(doc, fields["id"], "id")
        trace_id = self._id(doc, fields["trace_id"], "trace_id")
        prop = scalar_text(fields["property"]) or ""
        product_node = fields.get("product")
        product = scalar_text(product_node) if product_node is not None else "deployments"
        value = _feedback_value(doc, fields["value"], self.settings.string_limit)
        if record_id is None or trace_id is None or value is None:
            return
        line, _ = position(node)
        assert line is not None
        previous = self.feedback.get(record_id)
        if previous is not None:
            doc.problem(
                fields["id"],
                f'feedback id "{record_id}" is declared twice '
                f"(also at {previous.path}:{previous.line})",
                "feedback ids must be unique; keep one of the two records",
            )
            return
        self.feedback[record_id] = Feedback(
            record_id, trace_id, product or "deployments", prop, value, doc.path, line
        )


def _feedback_value(
    doc: Document, node: Node, limit: int
) -> str | int | float | tuple[str, ...] | None:
    """Feedback values: text, a number, or a list of text (kept in order, as the API takes)."""
    if isinstance(node, SequenceNode):
        if not node.value or not all(isinstance(item, ScalarNode) for item in node.value):
            doc.problem(
                node,
                "feedback value: a list must hold one or more texts",
                "write a list like [good]",
            )
            return None
        items = tuple(scalar_text(item) or "" for item in node.value)
        too_long = [item for item in items if len(item) > limit]
        if too_long:
            doc.problem(node, f"feedback value exceeds maximum length of {limit} characters")
            return None
        return items
    if not isinstance(node, ScalarNode):
        doc.problem(
            node,
            "feedback value: expected text, a number or a list of text, got a mapping",
            "write a single value or a list",
        )
        return None
    resolved = resolve_scalar(node)
    if isinstance(resolved, (int, float)) and not isinstance(resolved, bool):
        return canonical_number(resolved)
    text = scalar_text(node)
    if text is None:
        doc.problem(node, "feedback value is empty", "write a value or delete the record")
        return None
    if len(text) > limit:
        doc.problem(node, f"feedback value exceeds maximum length of {limit} characters")
        return None
    return text
