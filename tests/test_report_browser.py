"""`orqsync report`: the page's content, and the page opened in a real browser (Debian's
chromium, driven by Playwright with that executable): every chart drawn with a size, no
console error, a screenshot kept as a test artifact (in $ORQSYNC_TEST_ARTIFACTS when set,
else the test's folder). Without chromium or Playwright the browser test skips and says why;
under CI (CI=true) it fails instead: `.ci/run` installs chromium."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import browser
import gitrepo
import pytest
from click.testing import CliRunner

from orqsync.cli import cli

EXAMPLES = Path(__file__).parent.parent / "examples"


def run(root: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["-C", str(root), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def applied_twice(tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example in a git repository, applied, then a label changed and applied again,
    each state committed as the apply workflow does."""
    gitrepo.isolate(monkeypatch)
    root = tmp_path / name
    shutil.copytree(EXAMPLES / name, root, ignore=shutil.ignore_patterns(".orqsync"))
    gitrepo.init(root)
    gitrepo.commit(root, "labels")
    assert run(root, "apply", "--auto-approve")[0] == 0
    gitrepo.commit(root, "orqsync apply", gitrepo.BOT)
    first = sorted((root / "annotations").rglob("*.yaml"))[0]
    text = first.read_text(encoding="utf-8")
    for old, new in (("good", "bad"), ("bad", "good"), ("true", "false")):
        if f": {old}" in text:
            first.write_text(text.replace(f": {old}", f": {new}", 1), encoding="utf-8")
            break
    gitrepo.commit(root, "relabel")
    assert run(root, "apply", "--auto-approve")[0] == 0
    gitrepo.commit(root, "orqsync apply", gitrepo.BOT)
    return root


def test_the_report_shows_every_key_the_history_and_the_growth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = applied_twice(tmp_path, "support-evals", monkeypatch)
    code, _, err = run(root, "report", "--out", str(tmp_path / "report"))
    assert code == 0, err
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert "<script" not in page and "http" not in page.split("</head>")[0]  # self-contained
    state = (root / ".orqsync" / "state.json").read_text(encoding="utf-8")
    keys = sorted(set(re.findall(r'"([a-z_]+)":\{"by":', state)))
    for key in keys:
        assert f"<strong>{key}</strong>" in page
    applies = re.compile(r"<tr><td>\d{4}-\d\d-\d\dT[^<]*</td><td>apply</td>")
    assert len(applies.findall(page)) == 2  # two applies in the history table
    growth = re.findall(r"<tr><td>([0-9a-f]{7}) \d{4}-\d\d-\d\d</td>", page)
    assert len(growth) == 2  # two state commits
    # --at: the report as of the first apply's commit has one apply and one commit
    first = gitrepo.git(root, "rev-list", "--max-count=1", "HEAD~2")
    code, _, err = run(root, "report", "--out", str(tmp_path / "then"), "--at", first)
    assert code == 0, err
    then = (tmp_path / "then" / "index.html").read_text(encoding="utf-8")
    assert len(applies.findall(then)) == 1
    assert len(re.findall(r"<tr><td>([0-9a-f]{7}) \d{4}-\d\d-\d\d</td>", then)) == 1


def test_a_report_with_reviewers_shows_their_votes_and_agreement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = applied_twice(tmp_path, "three-reviewers", monkeypatch)
    assert run(root, "report", "--out", str(tmp_path / "r"))[0] == 0
    page = (tmp_path / "r" / "index.html").read_text(encoding="utf-8")
    assert "<h2>Reviewers</h2>" in page
    for reviewer in ("alice", "bob", "carol"):
        assert re.search(rf"<tr><td>{reviewer}</td><td class=n>\d+</td></tr>", page)
    assert "Krippendorff's alpha" in page


def test_values_are_escaped_in_the_page(tmp_path: Path, make_project) -> None:
    project = make_project(
        definitions="version: 1\ndefinitions:\n  note: {type: text}\n",
        **{
            "annotations/a.yaml": "version: 1\nspans:\n  - trace_id: t1\n    span_id: s1\n"
            "    annotations: {note: '<img src=x onerror=alert(1)>'}\n"
        },
    )
    assert project.run("apply", "--auto-approve").exit_code == 0
    assert project.run("report", "--out", str(tmp_path / "x")).exit_code == 0
    page = (tmp_path / "x" / "index.html").read_text(encoding="utf-8")
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_the_report_renders_every_chart_in_headless_chromium(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    executable = browser.chromium()
    from playwright.sync_api import sync_playwright

    root = applied_twice(tmp_path, "support-evals", monkeypatch)
    out = tmp_path / "report"
    assert run(root, "report", "--out", str(out))[0] == 0
    page_file = out / "index.html"
    charts_in_page = page_file.read_text(encoding="utf-8").count('<svg class="chart"')
    artifacts = Path(os.environ.get("ORQSYNC_TEST_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=browser.LAUNCH_ARGS)
        try:
            page = chromium.new_page(viewport={"width": 1100, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_file.as_uri())
            page.wait_for_load_state("load")
            charts = page.locator("svg.chart")
            assert charts.count() == charts_in_page >= 6
            for index in range(charts.count()):
                chart = charts.nth(index)
                box = chart.bounding_box()
                assert box is not None and box["width"] > 100 and box["height"] > 20, index
                marks = chart.locator("rect, polyline, circle")
                assert marks.count() > 0, index
                drawn = [marks.nth(i).bounding_box() for i in range(marks.count())]
                assert any(b is not None and b["width"] > 0 and b["height"] > 0 for b in drawn)
            page.screenshot(path=str(artifacts / "report.png"), full_page=True)
        finally:
            chromium.close()
    assert errors == []
    assert (artifacts / "report.png").stat().st_size > 10_000


def test_report_out_that_cannot_be_written_is_an_error_not_a_traceback(
    tmp_path: Path, make_project
) -> None:
    project = make_project(
        **{
            "annotations/a.yaml": "version: 1\nspans:\n"
            "  - {trace_id: t, span_id: s, annotations: {rating: good}}\n"
        }
    )
    assert project.run("apply", "--auto-approve").exit_code == 0
    (tmp_path / "taken").write_text("a file, not a folder\n")
    result = project.run("report", "--out", str(tmp_path / "taken" / "report"))
    assert result.exit_code == 1
    assert f"error: cannot write {tmp_path / 'taken'}" in result.stderr
    assert "hint: pass --out a folder that can be created or written to" in result.stderr
