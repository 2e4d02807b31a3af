"""The pull-request comment's charts drawn by Mermaid, the library GitHub draws ```mermaid blocks
with, in headless Chromium: every chart of the golden comments and of plans with hostile labels
parses, and draws a bar per label, the line of before, the labels on its axis and its title,
with no console error. The bundle is the npm registry's mermaid at the version
.ci/fetch_mermaid.py pins (checked by its sha512); `.ci/run` fetches it into its virtualenv.
Without it, or without chromium, the test skips (fails under CI)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import browser
from markdown_plans import TEXT_KEYS, applied, declared, planned

from orqsync.review.markdown import LABELS_PER_KEY, render_plan_markdown

GOLDEN = Path(__file__).parent / "golden" / "markdown"
CHART = re.compile(r"```mermaid\n(.*?)```", re.S)

# Labels a reviewer could write that mean something to Mermaid or to markdown: quotes, the
# fence, brackets and commas of the axis list, a directive (%%{init: ...}%%), a comment (%%),
# an arrow, HTML, entities, line breaks, emoji and right-to-left text.
HOSTILE = [
    'say "hi"',
    "```",
    "a], [b",
    "x, y",
    '%%{init: {"theme": "dark"}}%%',
    "%% not a comment",
    "50% off",
    "0 --> 9",
    "<b>bold</b>",
    "&amp; &#35;",
    "line\nbreak",
    "tab\there",
    "👍 ok",
    "שלום",
    "back\\slash",
    "{curly}",
    ":colon;",
    # alike once cleaned or cut short: numbered, or their bars would be drawn at one place
    "a;",
    "a",
    "The answer should emphasize scalability",
    "The answer should emphasize fault tolerance",
]


def mermaid_bundle() -> Path:
    given = os.environ.get("ORQSYNC_MERMAID_JS")
    found = (
        [Path(given)]
        if given
        else sorted((Path(sys.prefix) / "share" / "orqsync-tests").glob("mermaid-*.min.js"))
    )
    if not found or not found[-1].is_file():
        browser.missing(
            "the Mermaid bundle is not fetched (python3 .ci/fetch_mermaid.py DEST, and "
            "ORQSYNC_MERMAID_JS=DEST/mermaid-VERSION.min.js)",
            ".ci/run fetches it",
        )
    return found[-1]


def charts() -> list[tuple[str, str]]:
    """(where, chart source) of every chart to draw."""
    found = [
        (f"{path.name} #{n}", chart)
        for path in sorted(GOLDEN.glob("*.md"))
        for n, chart in enumerate(CHART.findall(path.read_text(encoding="utf-8")))
    ]
    flips = {(f"t{n:02}", "s"): {"rating": applied("good")} for n in range(60)}
    wanted = {
        span: {"rating": declared("bad" if n < 40 else "good")} for n, span in enumerate(flips)
    }
    plan, state = planned(wanted, spans=flips)
    found += [("40 flips", chart) for chart in CHART.findall(render_plan_markdown(plan, state))]
    for start in range(0, len(HOSTILE), LABELS_PER_KEY):  # a chart shows as many
        labels = HOSTILE[start : start + LABELS_PER_KEY]
        hostile = {("t", f"s{n}"): {"correction": declared(x)} for n, x in enumerate(labels)}
        plan, state = planned(hostile)
        (chart,) = CHART.findall(render_plan_markdown(plan, state))
        assert chart.count('", "') == len(labels) - 1  # each label of the chunk on the axis
        found.append((f"hostile labels {labels}", chart))
        redacted = render_plan_markdown(plan, state, text_keys=TEXT_KEYS, redact=True)
        assert "```mermaid" not in redacted
    return found


DRAW = """async ([id, text]) => {
  try { await mermaid.parse(text); } catch (error) { return {error: String(error)}; }
  const {svg} = await mermaid.render(id, text);
  const holder = document.createElement('div');
  holder.innerHTML = svg;
  document.body.append(holder);
  const box = holder.querySelector('svg').getBoundingClientRect();
  const texts = (selector) => [...holder.querySelectorAll(selector)].map((t) => t.textContent);
  return {
    width: box.width,
    height: box.height,
    bars: [...holder.querySelectorAll('g.bar-plot-0 rect')].map((r) => r.getBBox().x),
    lines: holder.querySelectorAll('g[class^="line-plot"] path').length,
    ticks: texts('g.bottom-axis g.label text'),
    title: texts('g.chart-title text').join(''),
  };
}"""


def expected(chart: str) -> tuple[str, list[str]]:
    """The title and the x-axis labels a chart's source names."""
    title = re.search(r'^    title "(.*)"$', chart, re.M)
    axis = re.search(r"^    x-axis \[(.*)\]$", chart, re.M)
    assert title and axis, chart
    return title[1], re.findall(r'"([^"]*)"', axis[1])


def test_every_chart_of_the_comments_draws_in_mermaid() -> None:
    bundle = mermaid_bundle()
    executable = browser.chromium()
    from playwright.sync_api import sync_playwright

    drawn = charts()
    assert len(drawn) >= 11
    errors: list[str] = []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=browser.LAUNCH_ARGS)
        try:
            page = chromium.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.set_content("<!doctype html><html><body></body></html>")
            page.add_script_tag(path=str(bundle))
            page.evaluate("mermaid.initialize({startOnLoad: false, securityLevel: 'strict'})")
            for number, (where, chart) in enumerate(drawn):
                assert "%%" not in chart, where  # Mermaid reads %% as a directive or comment
                result = page.evaluate(DRAW, [f"chart{number}", chart])
                assert "error" not in result, (where, chart, result)
                title, labels = expected(chart)
                assert result["title"] == title, where
                assert result["ticks"] == labels, where
                assert len(result["bars"]) == len(labels) and result["lines"] == 1, where
                assert len(set(result["bars"])) == len(labels), where  # each bar in its place
                assert result["width"] > 100 and result["height"] > 100, where
        finally:
            chromium.close()
    assert errors == []
