"""The audit of values resolved from several reviewers' votes: the state records each value's
rule and votes (through saved plans and the journal), `state show` and `state blame` show
them, and `export --votes` writes them, in a form `import` reads back."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import gitrepo
import pytest
from conftest import Project
from test_reviews import TIED, copy_example, run

from orqsync.errors import StateError
from orqsync.model import Operation, Review
from orqsync.planning.plan import Request
from orqsync.remote.apply import journal_entry
from orqsync.state.codec import parse_state, render_state
from orqsync.state.model import Provenance, State

MakeProject = Callable[..., Project]
ADJUDICATED = ("0e0b6ff8b45aedfe29856bf8a5e0cadd", "9214e01cd5376a07")  # adjudication/ties.yaml


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return copy_example(tmp_path)


def state_lines(root: Path) -> dict[tuple[str, str], dict[str, object]]:
    state = json.loads((root / ".orqsync" / "state.json").read_text())
    return {(line["trace_id"], line["span_id"]): line for line in state["spans"]}


def test_the_state_records_the_rule_and_votes_of_each_resolved_value(
    example: Path, tmp_path: Path
) -> None:
    saved = tmp_path / "plan.json"
    assert run(example, "plan", "--out", str(saved))[0] == 0
    requests = json.loads(saved.read_text())["requests"]
    carried = [r for r in requests if "reviews" in r]
    assert len(carried) == len(requests) == 31  # every value comes from votes
    for request in carried:  # what the state records; never sent
        assert "reviews" not in request["body"]
        keys = {item["key"] for item in request["body"]["annotations"]}
        assert set(request["reviews"]) == keys
    code, out, err = run(example, "apply", str(saved), "--auto-approve")
    assert code == 0, out + err
    lines = state_lines(example)
    tied = lines[TIED]
    assert set(tied["annotations"]) == set(tied["reviews"]) == {"confidence", "defects"}
    assert lines[ADJUDICATED]["reviews"]["rating"] == {
        "rule": "adjudicated",
        "votes": {"alice": "good", "bob": "bad"},
    }
    assert lines[ADJUDICATED]["reviews"]["confidence"] == {
        "rule": "median",
        "votes": {"alice": 0.79, "bob": 0.82},
    }
    # a state with reviews reads back to the same state, and plans nothing
    text = (example / ".orqsync" / "state.json").read_text()
    state = parse_state(text, "state.json")
    assert parse_state(render_state(state), "again") == state
    assert text.startswith(render_state(state).removesuffix("\n}\n"))
    assert run(example, "plan", "--detailed-exitcode")[0] == 0
    code, out, _ = run(example, "state", "show", "/".join(ADJUDICATED))
    assert code == 0
    assert '    review: settled by adjudication over 2 votes: alice "good", bob "bad"\n' in out
    assert "    review: resolved by median from 2 votes: alice 0.79, bob 0.82\n" in out


FILES = {
    "alice": "good",
    "bob": "good",
    "carol": "bad",
}


def reviewer_file(reviewer: str, value: str) -> str:
    return (
        f"version: 1\nmetadata: {{reviewerId: {reviewer}}}\nspans:\n"
        "  - trace_id: t1\n    span_id: s1\n    annotations: {rating: %s}\n" % value
    )


def three_reviewers(make_project: MakeProject) -> Project:
    project = make_project(
        **{f"annotations/{who}.yaml": reviewer_file(who, value) for who, value in FILES.items()}
    )
    config = project.root / "orqsync.yaml"
    config.write_text(config.read_text() + "reviews: {rule: majority}\n")
    return project


def test_blame_shows_the_votes_behind_each_version(
    make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    gitrepo.isolate(monkeypatch)
    project = three_reviewers(make_project)
    gitrepo.init(project.root)
    gitrepo.commit(project.root, "three reviewers")
    gitrepo.apply_and_commit(project)
    project.write("annotations/bob.yaml", reviewer_file("bob", "bad"))  # bob changes his mind
    gitrepo.commit(project.root, "bob: bad", gitrepo.BOB)
    gitrepo.apply_and_commit(project)
    code, out, err = run(project.root, "state", "blame", "t1/s1", "rating", "--format", "json")
    assert code == 0, err
    versions = json.loads(out)["keys"]["rating"]
    assert [(v["value"], v["review"]) for v in versions] == [
        ("bad", {"rule": "majority", "votes": {"alice": "good", "bob": "bad", "carol": "bad"}}),
        ("good", {"rule": "majority", "votes": {"alice": "good", "bob": "good", "carol": "bad"}}),
    ]
    code, out, _ = run(project.root, "state", "blame", "t1/s1")
    assert out.count("resolved by majority from 3 votes: ") == 2
    assert 'alice "good", bob "bad", carol "bad"' in out
    # the value comes back to "good" without reviews: the state keeps no votes for it
    config = project.root / "orqsync.yaml"
    config.write_text(config.read_text().replace("reviews: {rule: majority}\n", ""))
    for who in ("bob", "carol"):
        (project.root / "annotations" / f"{who}.yaml").unlink()
    project.write("annotations/alice.yaml", reviewer_file("alice", "good"))
    code, out, err = run(project.root, "apply", "--auto-approve")
    assert code == 0, out + err
    assert "reviews" not in state_lines(project.root)[("t1", "s1")]
    code, out, _ = run(project.root, "state", "show", "t1/s1")
    assert "review:" not in out


def test_export_with_votes_writes_each_rule_and_vote_and_import_reads_it_back(
    example: Path,
) -> None:
    assert run(example, "apply", "--auto-approve")[0] == 0
    code, plain, _ = run(example, "export")
    assert code == 0 and '"reviews"' not in plain and '"votes"' not in plain
    code, out, _ = run(example, "export", "--votes")
    assert code == 0
    manifest, *rows = (json.loads(line) for line in out.splitlines())
    assert manifest["manifest"]["votes"] is True
    by_span = {(row["trace_id"], row["span_id"]): row for row in rows}
    assert by_span[ADJUDICATED]["reviews"]["rating"] == {
        "rule": "adjudicated",
        "votes": {"alice": "good", "bob": "bad"},
    }
    assert set(by_span[TIED]["reviews"]) == {"confidence", "defects"}  # the tie: no rating
    for row in rows:
        assert set(row["reviews"]) <= set(row["annotations"])
        # without --votes, the same rows less their reviews
    assert [{k: v for k, v in row.items() if k != "reviews"} for row in rows] == [
        json.loads(line) for line in plain.splitlines()[1:]
    ]
    code, csv_text, _ = run(example, "export", "--votes", "--format", "csv")
    assert code == 0
    header = csv_text.splitlines()[1].split(",")
    assert header[-2:] == ["rating.rule", "rating.votes"]
    assert "confidence.rule" in header and "defects.votes" in header
    adjudicated_line = next(line for line in csv_text.splitlines() if ADJUDICATED[1] in line)
    assert adjudicated_line.endswith(',adjudicated,"{""alice"":""good"",""bob"":""bad""}"')
    (example / "votes.jsonl").write_text(out)
    (example / "votes.csv").write_text(csv_text)

    def values() -> dict[tuple[str, str], dict[str, object]]:
        return {
            span: {key: label["value"] for key, label in line["annotations"].items()}
            for span, line in state_lines(example).items()
        }

    before = values()  # import adopts the values, not the votes: into a project without reviews
    for name in ("votes.jsonl", "votes.csv"):
        shutil.rmtree(example / ".orqsync")
        shutil.rmtree(example / "annotations")
        shutil.rmtree(example / "adjudication", ignore_errors=True)
        (example / "annotations").mkdir()
        config = example / "orqsync.yaml"
        config.write_text(config.read_text().split("reviews:")[0])
        code, out, err = run(example, "import", str(example / name))
        assert code == 0, out + err
        assert values() == before
        assert "reviews" not in (example / ".orqsync" / "state.json").read_text()


def set_request(reviews: tuple[tuple[str, Review], ...]) -> Request:
    return Request(
        Operation.ANNOTATE,
        "t1",
        "s1",
        items=(("rating", "good"), ("score", 0.5)),
        reviews=reviews,
    )


MAJORITY = Review("majority", (("alice", "good"), ("bob", "good"), ("carol", "bad")))


def test_the_journal_carries_reviews_and_a_later_set_or_removal_drops_them() -> None:
    provenance = Provenance(author="a")
    state = State("lineage")
    state.fold(journal_entry(set_request((("rating", MAJORITY),)), provenance))
    assert state.reviews == {("t1", "s1"): {"rating": MAJORITY}}
    assert parse_state(render_state(state), "s").reviews == state.reviews
    state.fold(journal_entry(set_request(()), provenance))  # set again, not from votes
    assert state.reviews == {}
    state.fold(journal_entry(set_request((("rating", MAJORITY),)), provenance))
    state.fold({"op": "remove", "trace_id": "t1", "span_id": "s1", "keys": ["rating"]})
    assert state.reviews == {}
    state.fold(journal_entry(set_request((("score", Review("median", ())),)), provenance))
    state.forget(("t1", "s1"))
    assert state.reviews == {}


@pytest.mark.parametrize(
    "reviews",
    [
        '{"rating":{"rule":"majority","votes":["good"]}}',
        '{"rating":{"votes":{"alice":"good"}}}',
        '{"other":{"rule":"majority","votes":{"alice":"good"}}}',  # a key the span lacks
        '{"rating":{"rule":"majority","votes":{"alice":{"value":"good"}}}}',
    ],
)
def test_a_damaged_review_record_is_refused(reviews: str) -> None:
    state = State("lineage")
    state.fold(journal_entry(set_request((("rating", MAJORITY),)), Provenance()))
    good = render_state(state)
    text = good.replace(
        '"reviews":{"rating":{"rule":"majority","votes":{"alice":"good","bob":"good","carol":"bad"}}}',
        f'"reviews":{reviews}',
    )
    assert text != good
    with pytest.raises(StateError, match="the state file is damaged"):
        parse_state(text, "state.json")


def test_the_comment_shows_how_a_pull_request_moves_agreement(
    example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gitrepo.isolate(monkeypatch)
    gitrepo.init(example)
    base = gitrepo.commit(example, "three reviewers")
    carol = example / "annotations" / "carol.yaml"
    text = carol.read_text()
    assert text.count("rating: bad") > 1
    carol.write_text(text.replace("rating: bad", "rating: good", 1))  # one vote moves
    gitrepo.commit(example, "carol changes a vote")
    saved = tmp_path / "plan.json"
    code, _, err = run(example, "plan", "--base", "HEAD^1", "--out", str(saved))
    assert code == 0, err
    moved = json.loads(saved.read_text())["agreement"]
    assert moved["base"] == base
    by_key = {item["key"]: item for item in moved["keys"]}
    assert set(by_key) == {"confidence", "defects", "rating"}
    assert by_key["confidence"]["base"] == by_key["confidence"]["head"]  # untouched
    rating = by_key["rating"]
    assert rating["head"]["krippendorff_alpha"] != rating["base"]["krippendorff_alpha"]
    # each side is what `orqsync agreement` says of the files at that commit
    code, now, _ = run(example, "agreement", "--format", "json")
    assert {i["key"]: i for i in json.loads(now)["keys"]}["rating"] == {
        "key": "rating",
        **rating["head"],
    }
    gitrepo.git(example, "stash", "-q", "--include-untracked")
    gitrepo.git(example, "checkout", "-q", base)
    code, then, _ = run(example, "agreement", "--format", "json")
    assert {i["key"]: i for i in json.loads(then)["keys"]}["rating"] == {
        "key": "rating",
        **rating["base"],
    }
    gitrepo.git(example, "checkout", "-q", "main")
    code, out, _ = run(example, "show", str(saved), "--format", "markdown")
    assert code == 0
    assert f"### Agreement between reviewers, against `{base[:12]}`" in out
    before, after = rating["base"]["krippendorff_alpha"], rating["head"]["krippendorff_alpha"]
    sign = "+" if after >= before else "−"
    change = f"{before:.3f} → {after:.3f} ({sign}{abs(after - before):.3f})"
    assert f"| `rating` | nominal | 30 | {change} |" in out
    confidence = by_key["confidence"]["head"]
    assert f"| `confidence` | interval | 30 | {confidence['krippendorff_alpha']:.3f} |" in out


def test_a_base_without_reviews_or_with_problems_gives_a_note_and_a_bad_rev_an_error(
    example: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gitrepo.isolate(monkeypatch)
    gitrepo.init(example)
    config = example / "orqsync.yaml"
    with_reviews = config.read_text()
    config.write_text(with_reviews.split("reviews:")[0])
    (example / "adjudication" / "ties.yaml").unlink()
    for name in ("bob", "carol"):
        (example / "annotations" / f"{name}.yaml").rename(example / f"{name}.yaml.off")
    gitrepo.commit(example, "one reviewer")
    config.write_text(with_reviews)
    for name in ("bob", "carol"):
        (example / f"{name}.yaml.off").rename(example / "annotations" / f"{name}.yaml")
    gitrepo.commit(example, "reviews")
    code, out, err = run(example, "plan", "--base", "HEAD^1", "--format", "json")
    assert code == 0, err
    moved = json.loads(out)["agreement"]
    assert moved["note"] == f"orqsync.yaml at {moved['base'][:7]} has no `reviews`"
    assert all(item["base"] is None and item["head"] for item in moved["keys"])
    code, out, _ = run(example, "plan", "--base", "HEAD^1", "--format", "markdown")
    assert "| `rating` | nominal | – → 30 | – → " in out
    (example / "annotations" / "bob.yaml").write_text("version: 1\nspans: [oops]\n")
    gitrepo.commit(example, "a broken file")
    (example / "annotations" / "bob.yaml").write_text(
        "version: 1\nmetadata: {reviewerId: bob}\nspans: []\n"
    )
    code, out, err = run(example, "plan", "--base", "HEAD", "--format", "json")
    assert code == 0, err
    note = json.loads(out)["agreement"]["note"]
    assert note.startswith("the annotation files at ") and note.endswith(
        ": no figures for the base"
    )
    code, _, err = run(example, "plan", "--base", "no-such-branch")
    assert code == 1
    assert "unknown revision 'no-such-branch'" in err
    # without reviews, --base reads nothing (a workflow passes it whatever the project)
    config.write_text(with_reviews.split("reviews:")[0])
    shutil.rmtree(example / "adjudication")
    for name in ("bob", "carol"):
        (example / "annotations" / f"{name}.yaml").unlink()
    code, out, err = run(example, "plan", "--base", "no-such-branch", "--format", "json")
    assert code == 0, err
    assert "agreement" not in json.loads(out)


def test_import_into_a_project_with_reviews_goes_to_an_adjudication_file(
    example: Path, tmp_path: Path
) -> None:
    assert run(example, "apply", "--auto-approve")[0] == 0
    exported = tmp_path / "labels.jsonl"
    assert run(example, "export", "--out", str(exported))[0] == 0
    shutil.rmtree(example / ".orqsync")
    for folder in ("annotations", "adjudication"):
        shutil.rmtree(example / folder)
        (example / folder).mkdir()
    code, _, err = run(example, "import", str(exported))
    assert code == 1
    assert err == (
        "error: --out annotations/imported.yaml: orqsync.yaml has `reviews`, which read each "
        "annotation file as one reviewer's votes, and the imported labels are no reviewer's\n"
        "  hint: import them into an adjudication file (--out FILE where reviews.adjudication "
        "looks): what orq.ai holds then settles those keys until you remove it\n"
    )
    assert not (example / "annotations" / "imported.yaml").exists()  # rolled back
    assert not (example / ".orqsync" / "state.json").exists()
    code, out, err = run(example, "import", str(exported), "--out", "adjudication/imported.yaml")
    assert code == 0, out + err
    assert run(example, "plan", "--detailed-exitcode")[0] == 0


def test_a_vote_on_a_span_whose_votes_never_resolved_reads_the_others_in_a_fresh_clone(
    make_project: MakeProject,
) -> None:
    """A span whose only key is tied has no state line; a new reviewer's vote on it must
    not resolve it alone (the state's record does not vouch for files voting on it)."""
    from orqsync.commands import plan as plan_command
    from orqsync.planning.cache import cache_path
    from orqsync.source.project import load_project

    def votes(who: str, values: str) -> str:
        body = "".join(
            f"  - trace_id: t1\n    span_id: s{n}\n    annotations: {{rating: {value}}}\n"
            for n, value in enumerate(values.split(), start=1)
        )
        return f"version: 1\nmetadata: {{reviewerId: {who}}}\nspans:\n{body}"

    project = make_project(
        **{
            "annotations/alice.yaml": votes("alice", "good good good"),
            "annotations/bob.yaml": votes("bob", "good bad good"),
        }
    )
    config = project.root / "orqsync.yaml"
    config.write_text(config.read_text() + "reviews: {rule: unanimous}\n")
    assert run(project.root, "apply", "--auto-approve")[0] == 0
    project.write(  # dave votes on s2 only
        "annotations/dave.yaml",
        "version: 1\nmetadata: {reviewerId: dave}\nspans:\n"
        "  - trace_id: t1\n    span_id: s2\n    annotations: {rating: good}\n",
    )
    settings = load_project(str(project.root))
    Path(cache_path(settings)).unlink(missing_ok=True)  # a fresh clone
    fresh = plan_command.plan(settings)
    full = plan_command.plan(settings, incremental=False)
    assert fresh.plan.changes == full.plan.changes == ()  # s2 stays unresolved
    assert [item.span for item in fresh.plan.unresolved] == [("t1", "s2")]


def test_a_targeted_apply_records_the_reviews_of_what_it_sends(example: Path) -> None:
    code, out, err = run(example, "apply", "--auto-approve", "--target", ADJUDICATED[0])
    assert code == 0, out + err
    assert state_lines(example)[ADJUDICATED]["reviews"]["rating"]["rule"] == "adjudicated"


def test_a_base_without_the_project_gives_a_note_not_a_project_found_above(
    example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gitrepo.isolate(monkeypatch)
    repo = tmp_path / "repo"
    repo.mkdir()
    gitrepo.init(repo)
    (repo / "README.md").write_text("labels\n")
    gitrepo.commit(repo, "nothing yet")
    shutil.move(str(example), str(repo / "proj"))
    gitrepo.commit(repo, "the project")
    planted = tmp_path / "tmp"  # an orqsync.yaml above the folder the base is read into
    planted.mkdir()
    (planted / "orqsync.yaml").write_text("version: 1\nworkspace: planted\n")
    monkeypatch.setattr("tempfile.tempdir", str(planted))
    code, out, err = run(repo / "proj", "plan", "--base", "HEAD^1", "--format", "json")
    assert code == 0, err
    moved = json.loads(out)["agreement"]
    assert moved["note"] == f"proj is not in {moved['base'][:7]}: no figures for the base"
    (repo / "proj" / "orqsync.yaml").rename(repo / "orqsync.yaml.off")
    gitrepo.commit(repo, "no project file")
    (repo / "orqsync.yaml.off").rename(repo / "proj" / "orqsync.yaml")
    code, out, err = run(repo / "proj", "plan", "--base", "HEAD", "--format", "json")
    assert code == 0, err
    moved = json.loads(out)["agreement"]
    assert moved["note"] == f"orqsync.yaml is not in {moved['base'][:7]}"
    assert all(item["base"] is None for item in moved["keys"])
    code, out, _ = run(repo / "proj", "plan", "--base", "HEAD")  # the text plan says it too
    assert (
        f"Agreement between reviewers (Krippendorff's alpha), against {moved['base'][:12]}:" in out
    )


def test_the_base_tree_gives_regular_files_inside_the_folder_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`plan --base` reads the base from the commit's tree: a link in it (to a file outside
    the repository, or a folder) is not followed and writes nothing outside the folder."""
    import os

    from orqsync.audit import gitrev

    gitrepo.isolate(monkeypatch)
    repo = tmp_path / "repo"
    (repo / "proj" / "annotations").mkdir(parents=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("outside\n")
    (repo / "proj" / "annotations" / "a.yaml").write_text("version: 1\nspans: []\n")
    os.symlink(secret, repo / "proj" / "annotations" / "link.yaml")
    os.symlink("..", repo / "proj" / "up")
    gitrepo.init(repo)
    sha = gitrepo.commit(repo, "links")
    out = tmp_path / "out"
    out.mkdir()
    assert gitrev.extract(str(repo), sha, "proj", str(out)) == 1
    found = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    assert found == ["proj", "proj/annotations", "proj/annotations/a.yaml"]
    assert not gitrev.holds(str(repo), sha, "elsewhere")


def test_the_base_tree_is_the_commits_whatever_gitattributes_say(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`git archive` would leave out an export-ignore file and rewrite $Format:%H$ in an
    export-subst one; the base is read from the tree, byte for byte."""
    from orqsync.audit import gitrev

    gitrepo.isolate(monkeypatch)
    repo = tmp_path / "repo"
    (repo / "annotations").mkdir(parents=True)
    (repo / ".gitattributes").write_text("annotations/b.yaml export-ignore\n*.yaml export-subst\n")
    (repo / "annotations" / "a.yaml").write_text("version: 1  # $Format:%H$\nspans: []\n")
    (repo / "annotations" / "b.yaml").write_text("version: 1\nspans: []\n")
    gitrepo.init(repo)
    sha = gitrepo.commit(repo, "attributes")
    out = tmp_path / "out"
    out.mkdir()
    assert gitrev.extract(str(repo), sha, "annotations", str(out)) == 2
    for name in ("a.yaml", "b.yaml"):
        assert (out / "annotations" / name).read_bytes() == (
            repo / "annotations" / name
        ).read_bytes()
    tracked = gitrepo.git(repo, "ls-files").split()
    assert gitrev.extract(str(repo), sha, "", str(tmp_path / "all")) == len(tracked) >= 3


def test_the_base_folder_is_a_path_not_a_pattern(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project folder named ":x" is that folder, not git's pathspec magic for "x"."""
    from orqsync.audit import gitrev

    gitrepo.isolate(monkeypatch)
    repo = tmp_path / "repo"
    for folder in (":x", "x"):
        (repo / folder).mkdir(parents=True)
        (repo / folder / "a.yaml").write_text(f"# {folder}\n")
    gitrepo.init(repo)
    sha = gitrepo.commit(repo, "two folders")
    out = tmp_path / "out"
    out.mkdir()
    assert gitrev.extract(str(repo), sha, ":x", str(out)) == 1
    assert (out / ":x" / "a.yaml").read_text() == "# :x\n" and not (out / "x").exists()
