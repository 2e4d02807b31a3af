"""The fast reader and the strict reader give the same results on every input.

The fast reader (orqsync/source/fastpath.py) takes only files it fully understands and finds valid;
everything else goes to the strict reader. Here both paths read the whole bad-input corpus,
the examples and generated files full of YAML's traps, and must agree exactly: the same
desired state (values, metadata, lines) or the same problems, word for word.
"""

from __future__ import annotations

import gc
import shutil
import tempfile
import weakref
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Project
from corpus_cases import CASES, project_of
from hypothesis import HealthCheck, example, find, given, settings
from hypothesis import strategies as st

from orqsync.commands.init import DEFINITIONS
from orqsync.errors import ProblemsError
from orqsync.source.desired import DesiredReader, load_desired
from orqsync.source.project import load_project

EXAMPLES = Path(__file__).parent.parent / "examples"
TRACE, SPAN = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"  # W3C trace context's
PROJECT = """\
version: 1
workspace: test
api: {base_url: embedded}
metadata: {source: orqsync}
"""


def outcome(root: Path, fast: bool) -> tuple[object, ...]:
    """What reading the project gives: the desired state, or the problems as printed.

    The fast reader is run both ways it is used: with each file's text only (validate), and
    with its bytes too, read beforehand to hash them (plan); the two must agree."""
    if fast:
        with_text = _outcome(root, fast=True, bytes_first=False)
        with_bytes = _outcome(root, fast=True, bytes_first=True)
        assert with_text == with_bytes
        return with_text
    return _outcome(root, fast=False, bytes_first=False)


def _outcome(root: Path, fast: bool, bytes_first: bool) -> tuple[object, ...]:
    try:
        settings = load_project(str(root))
        if bytes_first:
            reader = DesiredReader(settings, fast=fast)
            reader.hashes()  # as commands/plan.py does: the reader keeps the bytes it hashed
            for path in reader.paths:
                reader.add(path)
            desired = reader.result()
        else:
            desired = load_desired(settings, fast=fast)
    except ProblemsError as error:
        found = error.problems + error.warnings
        return ("problems", [problem.render() for problem in found])
    warnings = [warning.render() for warning in desired.warnings]
    return (
        "desired",
        desired.spans,
        desired.feedback,
        desired.files,
        desired.definitions_hash,
        warnings,
        desired.votes,
        desired.reviewed,
        desired.unresolved,
    )


def fast_files(root: Path) -> int:
    return load_desired(load_project(str(root))).fast_files


@pytest.mark.parametrize("case", CASES)
def test_both_readers_report_the_same_problems_on_the_corpus(
    case: str, make_project: Callable[..., Project]
) -> None:
    root = project_of(case, make_project).root
    assert outcome(root, fast=True) == outcome(root, fast=False)


@pytest.mark.parametrize("name", ["quickstart", "support-evals", "three-reviewers"])
def test_both_readers_read_the_examples_alike(tmp_path: Path, name: str) -> None:
    root = tmp_path / name
    shutil.copytree(EXAMPLES / name, root, ignore=shutil.ignore_patterns(".orqsync"))
    assert outcome(root, fast=True) == outcome(root, fast=False)


REVIEWED = """\
version: 1
metadata: {{reviewerId: {who}}}
spans:
  - trace_id: {trace}
    span_id: {span}
    annotations: {{rating: {value}, tags: [a, b]}}
"""
REVIEW_DEFINITIONS = """\
version: 1
definitions:
  rating: {type: single_select, options: [good, bad]}
  tags: {type: multi_select, options: [a, b, c]}
"""


def reviewed(who: str, value: str = "good", span: str = SPAN) -> str:
    return REVIEWED.format(who=who, trace=TRACE, span=span, value=value)


@pytest.mark.parametrize(
    "files",
    [
        {"a.yaml": reviewed("alice"), "b.yaml": reviewed("bob", "bad")},  # a tie
        {"a.yaml": reviewed("alice"), "b.yaml": reviewed("bob"), "c.yaml": reviewed("carol")},
        {"a.yaml": reviewed("alice"), "b.yaml": reviewed("alice", "bad")},  # twice by alice
        {"a.yaml": reviewed("alice"), "b.yaml": reviewed("'@adjudication'")},  # a spoof
        {"a.yaml": reviewed("alice"), "b.yaml": reviewed("''")},  # no reviewer
        {"a.yaml": reviewed("alice"), "b.yaml": reviewed("bob").replace("reviewerId", "source")},
        {  # the same span twice in one file, and a span per reviewer apart
            "a.yaml": reviewed("alice") + reviewed("alice", "bad").split("spans:\n")[1],
            "b.yaml": reviewed("bob", span="c" * 16),
        },
        {"a.yaml": reviewed("alice"), "judged/x.yaml": reviewed("lead", "bad")},
        {  # two adjudications of one key
            "a.yaml": reviewed("alice"),
            "judged/x.yaml": reviewed("lead", "bad"),
            "judged/y.yaml": reviewed("lead"),
        },
    ],
    ids=[
        "tie",
        "three",
        "twice",
        "spoof",
        "empty",
        "none",
        "repeat",
        "adjudicated",
        "adjudicated-twice",
    ],
)
def test_both_readers_read_reviewers_votes_alike(tmp_path: Path, files: dict[str, str]) -> None:
    root = tmp_path / "reviews"
    (root / "annotations" / "judged").mkdir(parents=True)
    (root / "orqsync.yaml").write_text(
        PROJECT
        + "sources: [annotations/*.yaml]\n"
        + "reviews: {rule: majority, keys: {tags: option_majority}, "
        + "adjudication: [annotations/judged/*.yaml]}\n"
    )
    (root / "definitions.yaml").write_text(REVIEW_DEFINITIONS)
    for name, text in files.items():
        (root / "annotations" / name).write_text(text)
    assert outcome(root, fast=True) == outcome(root, fast=False)


def test_the_fast_reader_takes_reviewers_files(tmp_path: Path) -> None:
    root = tmp_path / "three-reviewers"
    shutil.copytree(EXAMPLES / "three-reviewers", root, ignore=shutil.ignore_patterns(".orqsync"))
    assert fast_files(root) == 4  # three reviewers' files and the adjudication


def test_the_fast_reader_takes_the_quickstart_example(tmp_path: Path) -> None:
    """Not vacuous: the common layout really goes the fast way."""
    root = tmp_path / "quickstart"
    shutil.copytree(EXAMPLES / "quickstart", root, ignore=shutil.ignore_patterns(".orqsync"))
    assert fast_files(root) == 1


def test_the_fast_reader_leaves_block_scalars_and_feedback_to_the_strict_reader(
    tmp_path: Path,
) -> None:
    root = tmp_path / "support-evals"
    shutil.copytree(EXAMPLES / "support-evals", root, ignore=shutil.ignore_patterns(".orqsync"))
    assert ">-" in (root / "annotations/billing/refunds.yaml").read_text()
    assert "feedback:" in (root / "annotations/onboarding/first-week.yaml").read_text()
    desired = load_desired(load_project(str(root)))
    assert len(desired.files) == 3
    assert desired.fast_files == 1  # invoices.yaml, whose span_id line ends in a comment


# Pools of the pieces of an annotation file, each with traps for a hand-written reader.
BLOCK = "\n- "  # in a value: a block list, its items on the lines below the key
IDS = (
    "cb2289e8eae4e587f8bba591734cc831",
    "274c568b4fffdfc5",
    "1234567890123456",
    "1234e567",
    "0x1F",
    "'quoted id'",
    '"double"',
    '" padded "',
    "true",
    "~",
    "null",
    "",
    "[a]",
    "id # comment",
    "a: b",
    "-dash",
    "<<",
)
VALUES = {
    "rating": (
        "good",
        "bad",
        '"good"',
        "'bad'",
        "[good]",
        "[good, bad]",
        "good # ok",
        "goo",
        BLOCK + "good",
        BLOCK + "good" + BLOCK + "bad",
        '["bad"]',
    ),
    "defects": (
        "[grammatical, spelling]",
        "[spelling, spelling]",
        "[\"spelling\", 'grammatical']",
        BLOCK + "spelling" + BLOCK + "grammatical",
        BLOCK + '"spelling"',
        BLOCK + "spelling # c" + BLOCK + "'ambiguity'",
        BLOCK + "spelling" + BLOCK + "",
        BLOCK + "- spelling",
        BLOCK + "spelling: x",
        BLOCK + "[spelling]",
        BLOCK + "~",
        '["spel\\"ling"]',
        "[spelling, ]",
        "[spelling,]",
        '["spelling",ambiguity]',
        "['it''s']",
        "[grammatical, ]",
        "[ , spelling]",
        "[]",
        "spelling",
        "[hallucination,ambiguity]",
        '["spelling"]',
        "[spelling] # c",
        "[spelling",
    ),
    "confidence_score": (
        "0.5",
        "1",
        "1.0",
        "0",
        "-0",
        ".5",
        "1e-1",
        "2",
        "-0.1",
        ".inf",
        ".nan",
        '"0.5"',
        "0x1",
        "0o1",
        "+1",
        "1_0",
    ),
    "correction": (
        "The answer was fine.",
        "it's fine",
        'say "hi"',
        "a#b",
        "text # comment",
        "a: b",
        "ends:",
        "- item",
        "&anchor x",
        "*alias",
        "!!str tagged",
        "|",
        ">-",
        "'it''s'",
        '"quo\\"ted"',
        '"\\"Thank you\\" sounds robotic: fix"',
        '"back\\\\slash \\/ slash"',
        '"tab\\tescape"',
        '"unicode \\u00e9"',
        '"dangling \\"',
        '""',
        "''",
        "yes",
        "no",
        "null",
        "~",
        "{a: b}",
        "[a, b]",
        "%pct",
        "@at",
        "`tick`",
        "unicode é ✓ 漢字",
        "x" * 201,
        "x" * 200,
        "tab\there",
        "nbsp\u00a0here",
        "ls\u2028here",
        "nel\x85here",
        "c1\x9fhere",
        "bom\ufeffhere",
        "nonchar\ufffehere",
        "ps\u2029here",
        "  spaced  ",
        "?q",
        ":colon",
        "<<",
        "<<x",
        "a, b",
        "100",
        "trailing space ",
        "NULL",
        "Null",
        "2nd try",
        "élan",
        "½ right",
        "a\x7fb",
    ),
    "approved": ("true", "false", "True", "FALSE", "yes", "on", '"true"', "1", "tRue"),
    "unknown_key": ("x",),
}
SPAN_METADATA = (
    None,
    "{identityId: user-1}",
    "{identity_id: 42}",
    "{reviewerId: bob, source: ui}",
    "{reviewerId: }",
    "{nope: x}",
    "{reviewerId: yes}",
    "{reviewerId: 'q'}",
    "{}",
    "{reviewerId: a, reviewerId: b}",
    "[x]",
    "{reviewerId: <<}",
)
HEADS = (
    "version: 1\n",
    "# yaml-language-server: $schema=../schemas/annotations.schema.json\nversion: 1\n",
    "version: 1\nmetadata: {reviewerId: alice}\n",
    "version: 1\nmetadata:\n  reviewerId: alice\n  identity_id: u-9\n",
    "metadata: {reviewerId: alice}\nversion: 1\n",
    "version: 2\n",
    "version: '1'\n",
    "version: 1\nversion: 1\n",
    "version: 1\nmetadata: {reviewerId: &a x}\n",
    "version: 1\nextra: field\n",
    "---\nversion: 1\n",
    "",
    "version: 1\n...\n",
    "{version: 1}\n",
    "  version: 1\n",
    "version: 1\nmetadata: {reviewerId: <<}\n",
    "version: 1\nspans: []\n",
)
SPANS_LINES = ("spans:\n", "spans: # the reviewed spans\n", "spans:  \n", "spans:#c\n")
ANNOTATIONS_LINES = ("annotations:\n", "annotations: # c\n", "annotations:#c\n")
TAILS = ("", "# done\n", "\n\n", "feedback: []\n", "spans: []\n", "version: 1\n")
NOISE = ("", "# a comment\n", "\n", "    # indented comment\n", "      # note: a comment\n")


def mostly(pool: tuple, clean: int, wild: bool = True) -> st.SearchStrategy:
    """One of the first `clean` (valid) entries of `pool`; in a wild file, sometimes any. A
    file is wild one time in four (see annotation_files): most files stay valid, so that the
    fast reader's results are compared, not only its refusals."""
    valid = st.sampled_from(pool[:clean])
    return st.one_of(*[valid] * 9, st.sampled_from(pool)) if wild else valid


# Mostly ids of the OpenTelemetry form the project checks by default (ids.py), sometimes the
# odd ones above: both readers must accept and refuse the same.
HEX = "0123456789abcdef"
TRACE_IDS = st.text(HEX, min_size=31, max_size=31).map(lambda rest: "a" + rest)
SPAN_IDS = st.text(HEX, min_size=15, max_size=15).map(lambda rest: "b" + rest)


def ids(valid: st.SearchStrategy[str], wild: bool) -> st.SearchStrategy[str]:
    return st.one_of(*[valid] * 9, st.sampled_from(IDS)) if wild else valid


@st.composite
def annotation_lines(draw: st.DrawFn, indent: str, wild: bool) -> str:
    keys = draw(
        st.lists(
            mostly(tuple(sorted(VALUES)), len(VALUES) - 1, wild),
            min_size=1,
            max_size=5,
            unique=not wild,
        )
    )
    lines = []
    for key in keys:
        value = draw(mostly(VALUES[key], 2, wild))
        if value.startswith(BLOCK):
            deeper = indent + draw(st.sampled_from(("", "  ", "    ", " ")))
            items = value[len(BLOCK) :].split(BLOCK)
            lines.append(f"{indent}{key}:\n" + "".join(f"{deeper}- {i}\n" for i in items))
        else:
            lines.append(f"{indent}{key}: {value}\n")
        lines.append(draw(mostly(NOISE, 1, wild)))
    return "".join(lines)


@st.composite
def span_blocks(draw: st.DrawFn, wild: bool) -> str:
    ind = draw(st.sampled_from(("  ", "", "    ")))
    deeper = draw(st.sampled_from(("    ", "      ", "   ")))
    lines = [
        draw(mostly(NOISE, 1, wild)),
        f"{ind}- trace_id: {draw(ids(TRACE_IDS, wild))}\n",
        f"{ind}  span_id: {draw(ids(SPAN_IDS, wild))}\n",
    ]
    metadata = draw(mostly(SPAN_METADATA, 4, wild))
    if metadata is not None:
        lines.append(f"{ind}  metadata: {metadata}\n")
    lines.append(f"{ind}  {draw(mostly(ANNOTATIONS_LINES, 2, wild))}")
    lines.append(draw(annotation_lines(ind + deeper, wild)))
    return "".join(lines)


@st.composite
def annotation_files(draw: st.DrawFn) -> str:
    wild = draw(st.integers(0, 3)) == 0
    spans = draw(
        st.lists(span_blocks(wild), min_size=0 if wild and draw(st.booleans()) else 1, max_size=4)
    )
    text = draw(mostly(HEADS, 4, wild)) + draw(mostly(SPANS_LINES, 3, wild)) + "".join(spans)
    text += draw(mostly(TAILS, 3, wild))
    if draw(st.booleans()):
        text = text.rstrip("\n")  # no newline at the end of the file
    return text


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(first=annotation_files(), second=annotation_files())
# A plain "<<" value: PyYAML tags it as a merge key, the fast reader reads text; both read text.
@example(
    first="version: 1\nmetadata: {reviewerId: <<}\nspans:\n"
    "  - trace_id: 0af7651916cd43dd8448eb211c80319c\n    span_id: b7ad6b7169203331\n"
    "    annotations:\n      approved: true\n",
    second="version: 1\nspans:\n",
)
def test_both_readers_agree_on_generated_files(first: str, second: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        (root / "orqsync.yaml").write_text(PROJECT, encoding="utf-8")
        (root / "definitions.yaml").write_text(DEFINITIONS, encoding="utf-8")
        (root / "annotations").mkdir()
        (root / "annotations" / "a.yaml").write_text(first, encoding="utf-8")
        (root / "annotations" / "b.yaml").write_text(second, encoding="utf-8")
        assert outcome(root, fast=True) == outcome(root, fast=False)


def fast_reader_takes(text: str) -> bool:
    """Whether the fast reader takes `text` as the one annotation file of a project."""
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        (root / "orqsync.yaml").write_text(PROJECT, encoding="utf-8")
        (root / "definitions.yaml").write_text(DEFINITIONS, encoding="utf-8")
        (root / "annotations").mkdir()
        (root / "annotations" / "a.yaml").write_text(text, encoding="utf-8")
        try:
            return fast_files(root) == 1
        except ProblemsError:
            return False


def test_the_generator_makes_files_the_fast_reader_takes() -> None:
    """The differential test above is not vacuous: its generator makes files with several
    spans that the fast reader takes (about a third of them, measured when this was written)."""
    found = find(
        annotation_files(),
        lambda text: text.count("trace_id") >= 2 and fast_reader_takes(text),
        settings=settings(max_examples=500, database=None, deadline=None),
    )
    assert fast_reader_takes(found)


def test_a_file_in_the_fast_layout_reads_the_same_both_ways() -> None:
    text = (
        f"version: 1\nmetadata: {{reviewerId: alice}}\nspans:\n"
        f"  - trace_id: {TRACE}\n    span_id: '{SPAN}'\n"
        "    metadata: {identity_id: 42}\n    annotations:\n"
        "      rating: good # fine\n      defects: [spelling, grammatical]\n"
        "      # a comment\n\n      confidence_score: -0\n      correction: it's ok: no\n"
    )
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        (root / "orqsync.yaml").write_text(PROJECT, encoding="utf-8")
        (root / "definitions.yaml").write_text(DEFINITIONS, encoding="utf-8")
        (root / "annotations").mkdir()
        (root / "annotations" / "a.yaml").write_text(text, encoding="utf-8")
        assert outcome(root, fast=True)[0] == "problems"  # "it's ok: no" is not valid YAML
        (root / "annotations" / "a.yaml").write_text(
            text.replace("it's ok: no", "it's ok"), encoding="utf-8"
        )
        assert fast_files(root) == 1
        assert outcome(root, fast=True) == outcome(root, fast=False)
        _, spans, *_ = outcome(root, fast=True)
        annotations = spans[(TRACE, SPAN)]
        assert annotations["defects"].value == ("grammatical", "spelling")
        assert annotations["confidence_score"].value == 0
        assert annotations["correction"].line == 13
        assert annotations["rating"].metadata == (
            ("identityId", "42"),
            ("reviewerId", "alice"),
            ("source", "orqsync"),
        )


EVERY_VALUE = [(key, value) for key, values in sorted(VALUES.items()) for value in values]


@pytest.mark.parametrize(("key", "value"), EVERY_VALUE, ids=[repr(v) for _, v in EVERY_VALUE])
def test_both_readers_agree_on_each_value_alone(tmp_path: Path, key: str, value: str) -> None:
    if value.startswith(BLOCK):
        items = value[len(BLOCK) :].split(BLOCK)
        entry = f"      {key}:\n" + "".join(f"        - {item}\n" for item in items)
    else:
        entry = f"      {key}: {value}\n"
    text = f"version: 1\nspans:\n  - trace_id: {TRACE}\n    span_id: {SPAN}\n    annotations:\n" + (
        f"      rating: good\n{entry}" if key != "rating" else entry
    )
    (tmp_path / "orqsync.yaml").write_text(PROJECT, encoding="utf-8")
    (tmp_path / "definitions.yaml").write_text(DEFINITIONS, encoding="utf-8")
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "a.yaml").write_text(text, encoding="utf-8")
    assert outcome(tmp_path, fast=True) == outcome(tmp_path, fast=False)


def test_a_file_emptied_to_spans_with_nothing_under_it_is_refused_not_planned_as_removals(
    make_project: Callable[..., Project],
) -> None:
    """A file whose spans were all moved away, left as `spans:` and a comment, is invalid
    (the strict reader's word); it must never become a plan that removes every label."""
    project = make_project(
        **{
            "annotations/a.yaml": f"version: 1\nspans:\n  - trace_id: {TRACE}\n"
            f"    span_id: {SPAN}\n    annotations:\n      rating: good\n"
        }
    )
    assert project.run("apply", "--auto-approve").exit_code == 0
    project.write("annotations/a.yaml", "version: 1\nspans:\n  # all moved to other files\n")
    for command in (("validate",), ("plan",)):
        result = project.run(*command)
        assert result.exit_code == 1, result.output
        assert "annotations/a.yaml:2:7: spans: expected a list, got an empty value" in (
            result.stderr
        )


def test_nothing_keeps_the_annotations_alive_once_the_reader_is_dropped(tmp_path: Path) -> None:
    """The CLI runs with the cycle collector off: a reference cycle through the reader would
    keep every annotation until the interpreter's last collection, which walks them all."""
    root = tmp_path / "quickstart"
    shutil.copytree(EXAMPLES / "quickstart", root, ignore=shutil.ignore_patterns(".orqsync"))
    enabled = gc.isenabled()
    gc.disable()
    try:
        reader = DesiredReader(load_project(str(root)))
        for path in reader.paths:
            reader.add(path)
        builder = weakref.ref(reader.builder)
        del reader
        assert builder() is None
    finally:
        if enabled:
            gc.enable()


def test_a_comment_with_a_colon_among_the_annotations_is_read_the_fast_way(tmp_path: Path) -> None:
    text = (
        f"version: 1\nspans:\n  - trace_id: {TRACE}\n    span_id: {SPAN}\n    annotations:\n"
        "      rating: good\n      # note: checked twice\n      correction: Fine as it is\n"
    )
    (tmp_path / "orqsync.yaml").write_text(PROJECT, encoding="utf-8")
    (tmp_path / "definitions.yaml").write_text(DEFINITIONS, encoding="utf-8")
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "a.yaml").write_text(text, encoding="utf-8")
    assert fast_files(tmp_path) == 1
    assert outcome(tmp_path, fast=True) == outcome(tmp_path, fast=False)
    _, spans, *_ = outcome(tmp_path, fast=True)
    assert spans[(TRACE, SPAN)]["correction"].line == 8


def test_lenient_spellings_are_read_the_fast_way_with_the_same_warnings(tmp_path: Path) -> None:
    """A one-item list for a single select and one option for a multi select: common habits
    that the fast reader takes, warning where the strict reader does (a repository full of
    them must not fall back to the strict reader, ten times slower)."""
    (tmp_path / "orqsync.yaml").write_text(PROJECT, encoding="utf-8")
    (tmp_path / "definitions.yaml").write_text(DEFINITIONS, encoding="utf-8")
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "a.yaml").write_text(
        f"version: 1\nspans:\n  - trace_id: {TRACE}\n    span_id: {SPAN}\n"
        "    annotations:\n      rating: [good]\n      defects: spelling\n"
        f"  - trace_id: {TRACE}\n    span_id: 00f067aa0ba902b7\n"
        "    annotations:\n      rating: ['bad']\n",
        encoding="utf-8",
    )
    assert fast_files(tmp_path) == 1
    fast, strict = outcome(tmp_path, fast=True), outcome(tmp_path, fast=False)
    assert fast == strict
    single = (
        '"rating" is a single select: a list of one option is read as that option '
        "(hint: write the option without brackets)"
    )
    assert fast[5] == [
        f"annotations/a.yaml:6:15: warning: {single}",
        'annotations/a.yaml:7:16: warning: "defects" is a multi select: one option is read as '
        "a list of it (hint: write it as a list: [spelling])",
        f"annotations/a.yaml:11:15: warning: {single}",
    ]
