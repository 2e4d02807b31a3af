"""Several reviewers per span (orqsync.yaml `reviews`): votes, resolution, ties, adjudication,
and `orqsync agreement` against the krippendorff package, on examples/three-reviewers."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import Project

from orqsync.cli import cli
from orqsync.review.render import NO_CHANGES

MakeProject = Callable[..., Project]
EXAMPLE = Path(__file__).parent.parent / "examples" / "three-reviewers"
TIED = ("1ed0a191ac80f1034c186fd49c0c9731", "34caa08d10f6242e")  # alice good, bob bad


def run(root: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["-C", str(root), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def copy_example(tmp_path: Path) -> Path:
    """examples/three-reviewers, copied without its state, to work on."""
    root = tmp_path / "three-reviewers"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".orqsync"))
    return root


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return copy_example(tmp_path)


def applied_labels(root: Path) -> dict[tuple[str, str], dict[str, object]]:
    state = json.loads((root / ".orqsync" / "state.json").read_text())
    return {
        (line["trace_id"], line["span_id"]): {k: v["value"] for k, v in line["annotations"].items()}
        for line in state["spans"]
    }


def votes_of(root: Path) -> dict[str, dict[tuple[str, str], dict[str, object]]]:
    """key -> span -> reviewer -> value, read straight from the reviewers' files."""
    found: dict[str, dict[tuple[str, str], dict[str, object]]] = {}
    for path in sorted((root / "annotations").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        reviewer = data["metadata"]["reviewerId"]
        for span in data["spans"]:
            for key, value in span["annotations"].items():
                found.setdefault(key, {}).setdefault((span["trace_id"], span["span_id"]), {})[
                    reviewer
                ] = value
    return found


def test_the_example_applies_resolved_values_and_lists_the_tie(example: Path) -> None:
    code, out, err = run(example, "validate")
    assert code == 0
    assert (
        f'warning: "rating" of span {TIED[0]}/{TIED[1]} is not resolved by majority (a tie: '
        '2 values have 1 vote): alice "good", bob "bad"'
    ) in err
    code, out, err = run(example, "apply", "--auto-approve")
    assert code == 0, out + err
    labels = applied_labels(example)
    assert len(labels) == 30
    assert "rating" not in labels[TIED]  # a tie is not applied
    assert set(labels[TIED]) == {"confidence", "defects"}
    votes = votes_of(example)
    for span, by in votes["rating"].items():
        values = list(by.values())
        if span == TIED:
            continue
        winner = max(set(values), key=values.count)
        if values.count(winner) * 2 > len(values):
            assert labels[span]["rating"] == winner
    # confidence: the median of the three (or two) votes
    some = next(iter(votes["confidence"]))
    ordered = sorted(votes["confidence"][some].values())  # type: ignore[type-var]
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2  # type: ignore[operator]
    assert labels[some]["confidence"] == pytest.approx(median)
    listed = (
        "Not resolved, so not applied (1 key):\n"
        f"  {TIED[0]}/{TIED[1]} rating  (annotations/alice.yaml:171): a tie: 2 values have "
        '1 vote: alice "good", bob "bad"\n\n'
    )
    code, out, _ = run(example, "plan", "--detailed-exitcode")
    assert code == 0  # the tie is counted, not planned: the apply vouched for every file
    assert out == NO_CHANGES + "\n" + (
        "Not resolved, so not applied (1 key):\n"
        "  1 key in files unchanged since the state was written, which this plan did not read "
        "(`orqsync validate` lists every one)\n\n"
    )
    code, out, err = run(example, "validate")
    assert code == 0
    assert f'"rating" of span {TIED[0]}/{TIED[1]} is not resolved by majority' in err
    # a file read again (bob's, edited) lists the tie it shares in a plan again
    bob = example / "annotations" / "bob.yaml"
    bob.write_text(bob.read_text() + "\n")
    code, out, _ = run(example, "plan", "--detailed-exitcode")
    assert code == 0 and out == NO_CHANGES + "\n" + listed
    # and the plan cache keeps it: the next plan, which leaves the file out, lists it too
    assert run(example, "plan")[1] == NO_CHANGES + "\n" + listed


def test_an_adjudication_settles_a_tie(example: Path) -> None:
    adjudication = yaml.safe_load((example / "adjudication" / "ties.yaml").read_text())
    span = adjudication["spans"][0]
    settled = (span["trace_id"], span["span_id"])
    assert len(set(votes_of(example)["rating"][settled].values())) == 2  # alice and bob split
    assert run(example, "apply", "--auto-approve")[0] == 0
    assert applied_labels(example)[settled]["rating"] == "bad"
    # and the tie that is listed: settled the same way, it applies
    (example / "adjudication" / "more.yaml").write_text(
        "version: 1\nmetadata: {reviewerId: lead}\nspans:\n"
        f"  - trace_id: {TIED[0]}\n    span_id: {TIED[1]}\n    annotations: {{rating: good}}\n"
    )
    code, out, err = run(example, "apply", "--auto-approve")
    assert code == 0, out + err
    assert "not resolved" not in err
    assert applied_labels(example)[TIED]["rating"] == "good"


def test_a_tie_leaves_an_applied_value_as_it_is(example: Path) -> None:
    bob = example / "annotations" / "bob.yaml"
    text = bob.read_text()
    bob.write_text("version: 1\nmetadata: {reviewerId: bob}\nspans: []\n")
    assert run(example, "apply", "--auto-approve")[0] == 0
    assert applied_labels(example)[TIED]["rating"] == "good"  # alice's alone
    bob.write_text(text)  # bob disagrees: a tie now
    code, out, err = run(example, "plan", "--format", "json")
    assert code == 0
    changes = json.loads(out)["changes"]
    assert not [
        c for c in changes if (c["trace_id"], c["span_id"]) == TIED and c["key"] == "rating"
    ]
    assert "is not resolved by majority" in err


def test_agreement_matches_the_krippendorff_package(example: Path) -> None:
    krippendorff = pytest.importorskip("krippendorff")
    numpy = pytest.importorskip("numpy")
    code, out, _ = run(example, "agreement", "--format", "json")
    assert code == 0
    figures = {item["key"]: item for item in json.loads(out)["keys"]}
    votes = votes_of(example)
    reviewers = ["alice", "bob", "carol"]
    for key, level, code_of in (
        ("rating", "nominal", {"good": 0, "bad": 1}.__getitem__),
        ("confidence", "interval", float),
    ):
        spans = sorted(votes[key])
        matrix = numpy.full((3, len(spans)), numpy.nan)
        for column, span in enumerate(spans):
            for row, reviewer in enumerate(reviewers):
                if reviewer in votes[key][span]:
                    matrix[row, column] = code_of(votes[key][span][reviewer])
        expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement=level)
        assert figures[key]["krippendorff_alpha"] == pytest.approx(expected, abs=1e-9)
        assert figures[key]["metric"] == level
        assert (figures[key]["items"], figures[key]["reviewers"]) == (30, 3)
    assert figures["defects"]["metric"] == "masi"
    code, text, _ = run(example, "agreement", "--key", "rating")
    assert code == 0 and text.splitlines()[1].startswith("rating")


DEFINITIONS = """\
version: 1
definitions:
  rating: {type: single_select, options: [good, bad]}
  score: {type: range, min: 0, max: 1}
"""


def with_reviews(make_project: MakeProject, reviews: str, **files: str) -> Project:
    project = make_project(definitions=DEFINITIONS, **files)
    config = project.root / "orqsync.yaml"
    config.write_text(config.read_text() + reviews)
    return project


def span_file(reviewer: str | None, value: str = "good") -> str:
    metadata = f"metadata: {{reviewerId: {reviewer}}}\n" if reviewer else ""
    return (
        f"version: 1\n{metadata}spans:\n  - trace_id: t1\n    span_id: s1\n"
        f"    annotations: {{rating: {value}}}\n"
    )


def test_one_reviewer_twice_and_a_vote_without_reviewer_are_refused_where_they_are(
    make_project: MakeProject,
) -> None:
    project = with_reviews(
        make_project,
        "reviews: {rule: majority}\n",
        **{
            "annotations/a.yaml": span_file("alice"),
            "annotations/b.yaml": span_file("alice", "bad"),
            "annotations/c.yaml": span_file(None),
        },
    )
    code, _, err = run(project.root, "validate")
    assert code == 1
    assert (
        'annotations/b.yaml:6:19: "rating" of span t1/s1 is declared twice by reviewer alice '
        "(also at annotations/a.yaml:6)"
    ) in err
    assert 'annotations/c.yaml:5:19: "rating" of span t1/s1 names no reviewer' in err


@pytest.mark.parametrize(
    ("reviews", "expected"),
    [
        ("reviews: {keys: {rating: median}}\n", "reviews.keys: median does not resolve rating"),
        ("reviews: {rule: priority}\n", "the priority rule needs reviews.priority"),
        ("reviews: {keys: {ratings: majority}}\n", 'reviews.keys: "ratings" is not a key'),
        ("reviews: {rule: average}\n", "reviews.rule"),
    ],
)
def test_a_reviews_setting_that_cannot_work_is_refused(
    make_project: MakeProject, reviews: str, expected: str
) -> None:
    project = with_reviews(make_project, reviews, **{"annotations/a.yaml": span_file("alice")})
    code, _, err = run(project.root, "validate")
    assert code == 1
    assert expected in err


def test_a_reviews_problem_points_at_its_entry(make_project: MakeProject) -> None:
    reviews = "reviews:\n  rule: priority\n  keys:\n    rating: median\n    ratings: majority\n"
    project = with_reviews(make_project, reviews, **{"annotations/a.yaml": span_file("alice")})
    first = (project.root / "orqsync.yaml").read_text().splitlines().index("reviews:") + 1
    code, _, err = run(project.root, "validate")
    assert code == 1
    assert f"orqsync.yaml:{first + 1}:9: reviews: the priority rule needs reviews.priority" in err
    assert f"orqsync.yaml:{first + 3}:5: reviews.keys: median does not resolve rating" in err
    assert f'orqsync.yaml:{first + 4}:5: reviews.keys: "ratings" is not a key' in err


def test_priority_takes_the_first_listed_reviewer(make_project: MakeProject) -> None:
    project = with_reviews(
        make_project,
        "reviews: {rule: priority, priority: [bob, alice]}\n",
        **{"annotations/a.yaml": span_file("alice"), "annotations/b.yaml": span_file("bob", "bad")},
    )
    code, out, err = run(project.root, "apply", "--auto-approve")
    assert code == 0, out + err
    assert applied_labels(project.root)[("t1", "s1")]["rating"] == "bad"


def test_the_pull_request_comment_lists_the_keys_not_resolved_from_a_saved_plan(
    example: Path, tmp_path: Path
) -> None:
    saved = tmp_path / "plan.json"
    assert run(example, "plan", "--out", str(saved))[0] == 0
    (item,) = json.loads(saved.read_text())["unresolved"]
    assert item == {
        "trace_id": TIED[0],
        "span_id": TIED[1],
        "key": "rating",
        "rule": "majority",
        "why": "a tie: 2 values have 1 vote",
        "votes": {"alice": "good", "bob": "bad"},
        "source": "annotations/alice.yaml:171",
    }
    code, out, _ = run(example, "show", str(saved), "--format", "markdown")
    assert code == 0
    assert "### Not resolved: 1 key (not applied)" in out
    assert (
        f'| `{TIED[0]}/{TIED[1]}` | `rating` | `alice` `"good"`, `bob` `"bad"` | '
        "a tie: 2 values have 1 vote |"
    ) in out
    # applied, the plan is empty but for the tie: the comment still lists it
    assert run(example, "apply", "--auto-approve")[0] == 0
    code, out, _ = run(example, "plan", "--format", "markdown")
    assert "No changes." in out and "### Not resolved: 1 key" in out


def test_votes_and_their_metadata_edge_cases(make_project: MakeProject, tmp_path: Path) -> None:
    def file(reviewer: str, value: str, extra: str = "") -> str:
        return (
            f"version: 1\nmetadata: {{reviewerId: '{reviewer}'{extra}}}\nspans:\n"
            f"  - trace_id: t1\n    span_id: s1\n    annotations: {{rating: {value}}}\n"
        )

    # a reviewerId that would pass for the adjudication is refused
    project = with_reviews(
        make_project,
        "reviews: {rule: majority}\n",
        **{"annotations/a.yaml": file("@adjudication", "bad")},
    )
    code, _, err = run(project.root, "validate")
    assert code == 1 and 'reviewerId "@adjudication" starts with @' in err
    # what every vote's metadata shares is sent; no one reviewer's id
    project.write("annotations/a.yaml", file("alice", "good", ", identityId: u-42"))
    project.write("annotations/b.yaml", file("bob", "good", ", identityId: u-42"))
    code, out, _ = run(project.root, "plan", "--format", "json")
    (request,) = json.loads(out)["requests"]
    assert request["body"]["metadata"] == {"identityId": "u-42", "source": "orqsync"}
    # an adjudication file outside `sources` is read all the same
    config = project.root / "orqsync.yaml"
    config.write_text(
        config.read_text().replace("{rule: majority}", "{adjudication: [judge/*.yaml]}")
    )
    project.write("annotations/b.yaml", file("bob", "bad"))
    project.write("judge/j.yaml", file("lead", "bad"))
    code, out, err = run(project.root, "plan", "--format", "json")
    assert code == 0 and "not resolved" not in err
    (request,) = json.loads(out)["requests"]
    assert request["body"]["annotations"] == [{"key": "rating", "value": "bad"}]
    assert request["body"]["metadata"]["reviewerId"] == "lead"  # the adjudicator's own


def test_text_votes_stay_inert_in_the_comment(make_project: MakeProject) -> None:
    hostile = "'[Approve](https://evil.example) @acme/admins <img src=x>'"
    definitions = DEFINITIONS + "  note: {type: text}\n"
    project = make_project(
        definitions=definitions,
        **{
            "annotations/a.yaml": "version: 1\nmetadata: {reviewerId: alice}\nspans:\n"
            f"  - trace_id: t1\n    span_id: s1\n    annotations: {{note: {hostile}}}\n",
            "annotations/b.yaml": "version: 1\nmetadata: {reviewerId: bob}\nspans:\n"
            "  - trace_id: t1\n    span_id: s1\n    annotations: {note: fine}\n",
        },
    )
    config = project.root / "orqsync.yaml"
    config.write_text(config.read_text() + "reviews: {rule: majority}\n")
    code, out, _ = run(project.root, "plan", "--format", "markdown")
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("| `t1/s1`"))
    assert '`"[Approve](https://evil.example) @acme/admins <img src=x>"`' in row
    code, out, err = run(project.root, "plan", "--format", "markdown", "--redact")
    assert code == 0  # the file is left out on the plan cache's word: the cache lists it
    assert "evil.example" not in out and "(redacted, 56 chars)" in out
    assert "evil.example" not in err  # nor in the job's log
    assert (
        "is not resolved by majority (a tie: 2 values have 1 vote): "
        "alice (redacted, 56 chars), bob (redacted, 4 chars)" in err
    )
    cache = (project.root / ".orqsync" / "state.json.cache").read_text()
    assert "evil.example" in cache  # it holds votes as the files do (never committed)


def test_kappa_holds_for_two_reviewers_whatever_a_third_labels_alone() -> None:
    from orqsync.source.agreement import agreement

    ratings = {
        1: {"alice": "good", "bob": "good"},
        2: {"alice": "bad", "bob": "good"},
        3: {"alice": "bad", "bob": "bad"},
        4: {"carol": "good"},  # alone: not pairable
    }
    figures = agreement(ratings)
    assert figures.reviewers == 2 and figures.kappa is not None


def test_targets_list_only_their_spans_unresolved_keys(example: Path) -> None:
    code, out, _ = run(example, "plan", "--target", "ffe6*", "--format", "json")
    assert code == 0
    assert "unresolved" not in json.loads(out)  # (the files' warnings still say it)


def test_a_change_to_one_reviewers_file_reads_only_the_files_voting_on_its_spans(
    make_project: MakeProject,
) -> None:
    """Two batches of spans, each voted on by alice and bob in a file each: after an apply,
    an edit of bob's first batch reads the two files of that batch, in a fresh clone (the
    state's record) and with the plan cache alike."""
    from orqsync.commands import plan as plan_command
    from orqsync.planning.cache import cache_path
    from orqsync.source.project import load_project

    def batch(reviewer: str, spans: str, value: str = "good", score: float = 0.5) -> str:
        body = "".join(
            f"  - trace_id: t1\n    span_id: {span}\n"
            f"    annotations: {{rating: {value}, score: {score}}}\n"
            for span in spans.split()
        )
        return f"version: 1\nmetadata: {{reviewerId: {reviewer}}}\nspans:\n{body}"

    project = with_reviews(
        make_project,
        "reviews: {rule: unanimous}\n",
        **{
            "annotations/alice-1.yaml": batch("alice", "s1 s2"),
            "annotations/bob-1.yaml": batch("bob", "s1 s2"),
            "annotations/alice-2.yaml": batch("alice", "s3 s4"),
            # bob disagrees on the scores: not resolved, the ratings applied
            "annotations/bob-2.yaml": batch("bob", "s3 s4", score=0.7),
        },
    )
    code, out, err = run(project.root, "apply", "--auto-approve")
    assert code == 0, out + err
    state = (project.root / ".orqsync" / "state.json").read_text()
    record = json.loads(state)["in_sync"]["files"]
    assert record["annotations/bob-1.yaml"]["group"] == "annotations/alice-1.yaml"
    # the keys not resolved are counted on the file that names them (the first to vote)
    assert record["annotations/alice-2.yaml"]["unresolved"] == "2"
    project.write("annotations/bob-1.yaml", batch("bob", "s1 s2", "bad"))  # now unresolved
    settings = load_project(str(project.root))
    Path(cache_path(settings)).unlink(missing_ok=True)  # as in a fresh clone
    planned = plan_command.plan(settings)
    assert planned.files_read == 2
    assert planned.plan.changes == ()  # unanimous: a disagreement keeps what is applied
    assert [item.span for item in planned.plan.unresolved] == [("t1", "s1"), ("t1", "s2")]
    assert planned.plan.unresolved_left_out == 2  # batch 2's, counted by the state's record
    full = plan_command.plan(settings, incremental=False)
    assert full.files_read == 4 and len(full.plan.unresolved) == 4
    # the plan cache: the next plan reads nothing, and lists batch 1's keys from the cache
    again = plan_command.plan(settings)
    assert again.files_read == 0
    assert [item.span for item in again.plan.unresolved] == [("t1", "s1"), ("t1", "s2")]
    assert again.plan.unresolved_left_out == 2


def test_many_keys_not_resolved_are_counted_past_the_first_few_on_stderr(
    make_project: MakeProject,
) -> None:
    spans = "".join(
        f"  - trace_id: t1\n    span_id: s{n}\n    annotations: {{rating: VALUE}}\n"
        for n in range(12)
    )
    project = with_reviews(
        make_project,
        "reviews: {rule: majority}\n",
        **{
            "annotations/a.yaml": "version: 1\nmetadata: {reviewerId: alice}\nspans:\n"
            + spans.replace("VALUE", "good"),
            "annotations/b.yaml": "version: 1\nmetadata: {reviewerId: bob}\nspans:\n"
            + spans.replace("VALUE", "bad"),
        },
    )
    code, _, err = run(project.root, "validate")
    assert code == 0
    lines = err.splitlines()
    assert sum("is not resolved by majority" in line for line in lines) == 5
    assert (
        "  ... and 7 more places with this warning (`orqsync validate --format json` lists "
        "every one)" in lines
    )
