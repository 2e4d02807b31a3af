"""The pull-request comment: golden files for small plans, the size budget, distribution math,
redaction and escaping. Regenerate the goldens with ORQSYNC_UPDATE_GOLDEN=1, then read them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from markdown_plans import (
    GOLDEN,
    GOLDENS,
    HINT,
    REVIEW,
    TEXT_KEYS,
    applied,
    declared,
    planned,
    ten_thousand_changes,
)

from orqsync.review.markdown import MARKER, Distribution, label_distribution, render_plan_markdown
from orqsync.source.desired import Feedback


@pytest.mark.parametrize("name", sorted(GOLDENS))
def test_small_plans_render_exactly_as_their_golden_file(name: str) -> None:
    text = GOLDENS[name]()
    path = GOLDEN / f"{name}.md"
    if os.environ.get("ORQSYNC_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")
    assert_well_formed(text)


# Structure checks -------------------------------------------------------------------------

PIPE = re.compile(r"(?<!\\)\|")


def outside_code(text: str) -> str:
    """The text with fenced blocks and code spans removed, as CommonMark would read them."""
    text = re.sub(r"^```diff\n.*?^```$", "", text, flags=re.S | re.M)
    out, at = [], 0
    for run in re.finditer(r"`+", text):
        if run.start() < at:
            continue
        close = re.compile(rf"(?<!`){run.group()}(?!`)").search(text, run.end())
        if close is None:
            continue
        out.append(text[at : run.start()])
        at = close.end()
    out.append(text[at:])
    return "".join(out)


# not empty, no %%: Mermaid's strings have a character, and it reads a comment from %%
CHART_STRING = r'"(?:[^"`<>#;%\n]|%(?!%))+"'
MERMAID_LINE = re.compile(
    "|".join(
        [
            "xychart-beta",
            rf"    title {CHART_STRING}",
            rf"    x-axis \[{CHART_STRING}(, {CHART_STRING})*\]",
            r'    y-axis "spans" 0 --> \d+',
            r"    (bar|line) \[\d+(, \d+)*\]",
        ]
    )
)


def assert_well_formed(text: str) -> None:
    lines = text.split("\n")
    assert lines[0] == MARKER
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert text.count("<details") == text.count("</details>")
    fences = [line for line in lines if line.startswith("```")]
    assert all(opening in ("```diff", "```mermaid") for opening in fences[::2])
    assert fences[1::2] == ["```"] * (len(fences) // 2) and len(fences) % 2 == 0
    columns = 0
    for line in lines:
        if line.startswith("|"):
            cells = len(PIPE.findall(line))
            columns = columns or cells
            assert cells == columns, line
        else:
            columns = 0
    inside = ""
    for line in lines:
        if line.startswith("```"):
            inside = "" if inside else line
        elif inside == "```diff":
            assert re.match(r"(@@ .* @@|[-+~] .*)$", line), line
        elif inside:
            assert MERMAID_LINE.fullmatch(line), line
    tags = re.findall(r"<[^>]*>", outside_code(text))
    allowed = {MARKER, "<details>", "<details open>", "</details>", "<summary>", "</summary>"}
    assert set(tags) <= allowed


# The size budget --------------------------------------------------------------------------


def test_a_ten_thousand_change_plan_fits_the_comment_budget() -> None:
    plan, state = ten_thousand_changes()
    assert len(plan.changes) == 10_000
    text = render_plan_markdown(plan, state, max_removals=100, full_plan_hint=HINT)
    assert len(text) <= 60_000
    assert_well_formed(text)
    assert (
        "**7,960 to add, 40 to change, 2,000 to remove** on 10,000 spans. "
        "`apply` will send 10,000 requests." in text
    )
    assert "> **Removal budget exceeded:** 2,000 removals, more than `policy.max_removals`" in text
    assert "| `rating` | 0 | 40 | 0 |" in text
    assert "| `defects` | 0 | 0 | 2,000 |" in text
    assert "| `approved` | 7,960 | 0 | 0 |" in text
    assert "| **total** | 7,960 | 40 | 2,000 |" in text
    assert "| `rating` | *labelled spans* | 5,000 | 5,000 | 0 |" in text
    assert "| | `bad` | 0 | 40 | +40 |" in text
    assert "| | `good` | 5,000 | 4,960 | -40 |" in text
    assert "| | `spelling` | 5,000 | 3,000 | -2,000 |" in text
    assert "| | `true` | 0 | 5,970 | +5,970 |" in text
    assert "| | `false` | 0 | 1,990 | +1,990 |" in text
    shown = sum(1 for line in text.split("\n") if re.match(r"[+~] |- defects", line))
    hidden = 10_000 - shown
    assert 0 < shown < 10_000
    assert text.rstrip("\n").endswith(
        f"**{hidden:,} of 10,000 changes are not shown here** (a comment holds at most "
        f"60,000 characters). {HINT}"
    )
    # Removals and flips come first, so they are the ones shown.
    assert '- rating = "good"\n+ rating = "bad"' in text
    assert "+ approved" not in text


@pytest.mark.parametrize("limit", [700, 1_000, 2_500, 8_000, 20_000])
def test_truncation_keeps_whole_entries_and_counts_the_rest(limit: int) -> None:
    desired = {
        (f"trace-{n:03}", "span-1"): {"rating": declared("good", line=n + 1)} for n in range(300)
    }
    plan, state = planned(desired)
    text = render_plan_markdown(plan, state, limit=limit)
    assert len(text) <= limit
    assert_well_formed(text)
    shown = text.count('\n+ rating = "good"\n')
    if shown < 300:
        assert f"**{300 - shown:,} of 300 changes are not shown here**" in text
    else:
        assert "not shown" not in text
    assert (shown == 300) == (limit == 20_000)


def test_every_limit_gives_a_well_formed_comment_that_fits() -> None:
    spans = {(f"gone-{n:02}", "s"): {"rating": applied("good")} for n in range(30)}
    spans |= {(f"flip-{n:02}", "s"): {"rating": applied("good")} for n in range(30)}
    desired = {
        (f"flip-{n:02}", "s"): {"rating": declared("bad", f"annotations/{n % 3}.yaml", n + 1)}
        for n in range(30)
    }
    desired |= {
        (f"new-{n:02}", "s"): {"rating": declared("good", f"annotations/{n % 2}.yaml", n + 1)}
        for n in range(30)
    }
    plan, state = planned(desired, spans)
    full = render_plan_markdown(plan, state)
    for limit in range(900, len(full) + 200, 97):
        text = render_plan_markdown(plan, state, limit=limit)
        assert len(text) <= limit
        assert_well_formed(text)
        assert "Removal budget" not in text
        shown = text.count('\n+ rating = "good"\n') + text.count("\n- rating")
        if limit >= len(full):
            assert text == full
        else:
            assert f"**{90 - shown:,} of 90 changes are not shown here**" in text
            assert len(text) > limit - 200  # cut at whole entries, not far below the limit


def test_a_limit_too_small_for_the_summary_is_an_error() -> None:
    plan, state = planned({("t", "s"): {"rating": declared("good")}})
    with pytest.raises(ValueError, match="cannot hold the plan's summary"):
        render_plan_markdown(plan, state, limit=100)


def test_a_key_with_thousands_of_distinct_values_keeps_the_distribution_small() -> None:
    desired = {(f"t-{n}", "s"): {"note": declared(f"value {n}")} for n in range(3_000)}
    plan, state = planned(desired)
    text = render_plan_markdown(plan, state)
    assert len(text) <= 60_000
    assert "| | *2,992 more values* | 0 | 2,992 | +2,992 |" in text
    assert_well_formed(text)


# Distribution math ------------------------------------------------------------------------


def test_distribution_counts_each_option_of_a_multi_select() -> None:
    plan, state = planned(
        {
            ("t", "a"): {"defects": declared(("spelling",))},
            ("t", "b"): {"defects": declared(("ambiguity", "grammatical", "spelling"))},
        },
        spans={
            ("t", "a"): {"defects": applied(("grammatical", "spelling"))},
            ("t", "c"): {"defects": applied(("grammatical",))},
        },
    )
    assert label_distribution(state, plan) == {
        "defects": Distribution(
            "defects",
            (2, 2),
            (("ambiguity", 0, 1), ("grammatical", 2, 1), ("spelling", 1, 2)),
        )
    }


def test_distribution_counts_booleans_as_true_and_false() -> None:
    plan, state = planned(
        {("t", "a"): {"approved": declared(False)}, ("t", "b"): {"approved": declared(True)}},
        spans={("t", "a"): {"approved": applied(True)}, ("t", "c"): {"approved": applied(True)}},
    )
    assert label_distribution(state, plan)["approved"] == Distribution(
        "approved", (2, 2), (("false", 0, 1), ("true", 2, 1))
    )


def test_distribution_counts_the_whole_state_and_removes_deleted_labels() -> None:
    untouched = {(f"t-{n}", "s"): {"rating": applied("good")} for n in range(5)}
    gone = {
        ("t-gone", "s"): {"rating": applied("bad")},
        ("t-too", "s"): {"rating": applied("good")},
    }
    desired = {span: {"rating": declared("good")} for span in untouched}
    desired[("t-new", "s")] = {"rating": declared("bad")}
    plan, state = planned(desired, {**untouched, **gone})
    assert label_distribution(state, plan) == {
        "rating": Distribution("rating", (7, 6), (("bad", 1, 1), ("good", 6, 5)))
    }


def test_distribution_gives_numbers_a_mean_and_text_only_a_span_count() -> None:
    plan, state = planned(
        {
            ("t", "a"): {"score": declared(0.5), "correction": declared("New words")},
            ("t", "b"): {"score": declared(1)},
        },
        spans={
            ("t", "a"): {"score": applied(0.25), "correction": applied("Old words")},
            ("t", "c"): {"score": applied(0.75), "correction": applied("Other words")},
        },
    )
    found = label_distribution(state, plan, text_keys=TEXT_KEYS)
    assert found["score"] == Distribution("score", (2, 2), (), (0.5, 0.75))
    assert found["correction"] == Distribution("correction", (2, 1), ())


def test_distribution_leaves_out_feedback_and_metadata_only_changes() -> None:
    plan, state = planned(
        {("t", "a"): {"rating": declared("good", metadata=(("reviewerId", "bob"),))}},
        spans={("t", "a"): {"rating": applied("good")}},
        feedback={"fb": Feedback("fb", "t", "deployments", "score", "bad", REVIEW, 1)},
    )
    assert len(plan.changes) == 2
    assert label_distribution(state, plan) == {}


# Redaction and escaping -------------------------------------------------------------------


def test_redacted_text_values_never_appear() -> None:
    secrets = ("Customer 4411 asked about the refund", "Jane Doe", "SLA", "refund")
    plan, state = planned(
        {
            ("t", "a"): {"correction": declared("Customer 4411 asked about the refund")},
            ("t", "b"): {"correction": declared("x" * 150 + " refund")},
        },
        spans={
            ("t", "b"): {"correction": applied("SLA")},
            ("t", "c"): {"correction": applied("Jane Doe")},
        },
    )
    text = render_plan_markdown(plan, state, text_keys=TEXT_KEYS, redact=True)
    for secret in secrets:
        assert secret not in text
    assert "+ correction = (redacted, 36 chars)" in text
    assert "- correction = (redacted, 8 chars)" in text
    shown = render_plan_markdown(plan, state, text_keys=TEXT_KEYS)
    assert "Customer 4411 asked about the refund" in shown


def test_long_values_are_shortened() -> None:
    plan, state = planned({("t", "a"): {"note": declared("word " * 100)}})
    text = render_plan_markdown(plan, state)
    line = next(line for line in text.split("\n") if line.startswith("+ note"))
    assert line == '+ note = "' + ("word " * 16)[:77] + '…"'


HOSTILE = "a|b `code` ``` <script>alert(1)</script> &amp;\n# heading\n- item | end"


def test_hostile_values_keys_and_paths_do_not_break_the_markup() -> None:
    path = "annotations/we|rd `name` <b>.yaml"
    plan, state = planned(
        {
            ("trace|<i>", "span`1`"): {
                "rating": declared(HOSTILE, path, 3),
                "ke|y`<b>": declared(("x|y", "`z`", "<u>"), path, 4),
            }
        },
        spans={("trace|<i>", "span`1`"): {"rating": applied("<img src=x>|")}},
    )
    text = render_plan_markdown(plan, state)
    assert_well_formed(text)
    assert "<script>" not in outside_code(text)
    assert "#### ``annotations/we|rd `name` <b>.yaml``" in text
    assert "| ``ke\\|y`<b>`` | *labelled spans* | 0 | 1 | +1 |" in text
    assert "| | `` `z` `` | 0 | 1 | +1 |" in text
    assert "| | `x\\|y` | 0 | 1 | +1 |" in text
    assert "| | `<img src=x>\\|` | 1 | 0 | -1 |" in text
    assert (
        '+ rating = "a|b `code` ``` <script>alert(1)</script> &amp;\\n# heading\\n- item | end"\n'
        in text
    )


def test_control_characters_become_visible_and_tabs_spaces() -> None:
    plan, state = planned({("t\r\n", "s\x00"): {"ra\tting": declared("x")}})
    text = render_plan_markdown(plan, state)
    assert "@@ span t⏎/s�, line 1 @@" in text
    assert "+ ra ting = " in text
    assert_well_formed(text)


def test_rendering_does_not_depend_on_the_hash_seed() -> None:
    """Sets and dicts of strings iterate in an order that changes with PYTHONHASHSEED: a
    comment built from one would change between two runs of the same plan. Render every
    golden plan and the big one under two seeds, in fresh interpreters, and compare."""
    script = (
        "import hashlib, sys\n"
        "import markdown_plans as m\n"
        "from orqsync.review.markdown import render_plan_markdown\n"
        "texts = [make() for _, make in sorted(m.GOLDENS.items())]\n"
        "texts.append(render_plan_markdown(*m.ten_thousand_changes()))\n"
        "print(hashlib.sha256('\\0'.join(texts).encode()).hexdigest())\n"
    )
    digests = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(Path(__file__).parent)}
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        digests.add(done.stdout.strip())
    assert len(digests) == 1, digests


# Charts ---------------------------------------------------------------------------------------


def test_a_plan_that_flips_forty_labels_charts_the_flip() -> None:
    spans = {(f"t{n:02}", "s"): {"rating": applied("good")} for n in range(60)}
    wanted = {
        span: {"rating": declared("bad" if n < 40 else "good")} for n, span in enumerate(spans)
    }
    plan, state = planned(wanted, spans=spans)
    text = render_plan_markdown(plan, state)
    assert_well_formed(text)
    assert (
        "### Label distribution, charted\n\n"
        "```mermaid\n"
        "xychart-beta\n"
        '    title "rating: bars after this plan, line before"\n'
        '    x-axis ["bad", "good"]\n'
        '    y-axis "spans" 0 --> 60\n'
        "    bar [40, 20]\n"
        "    line [0, 60]\n"
        "```\n"
    ) in text
    # the table stays, for screen readers and plain-text mail
    assert "| | `good` | 60 | 20 | -40 |" in text


def test_charts_hide_text_values_with_redact_and_keep_their_strings_inert() -> None:
    hostile = 'a"b `x` ``` <img src=x onerror=1> #1; ' + "long " * 20
    plan, state = planned({("t", "a"): {"correction": declared(hostile)}})
    shown = render_plan_markdown(plan, state)
    assert_well_formed(shown)  # the chart's lines match its grammar: no quote or fence inside
    chart = shown[shown.index("```mermaid") :]
    assert 'x-axis ["a\'b x  img src=x onerro…"]' in chart
    redacted = render_plan_markdown(plan, state, text_keys=TEXT_KEYS, redact=True)
    assert "```mermaid" not in redacted and "onerror" not in redacted


def test_a_label_cannot_make_a_mermaid_comment_or_directive() -> None:
    """Mermaid reads %% as a comment, and %%{...}%% as a directive, even inside a string: the
    chart failed to draw (found by tests/test_mermaid_browser.py)."""
    plan, state = planned({("t", "a"): {"note": declared("50%% %%{init: x}%%")}})
    text = render_plan_markdown(plan, state)
    assert_well_formed(text)
    assert 'x-axis ["50% %{init: x}%"]' in text


def test_a_label_of_characters_a_chart_leaves_out_is_not_an_empty_string() -> None:
    plan, state = planned(
        {("t", "a"): {"note": declared("```")}, ("t", "b"): {"note": declared("<>")}}
    )
    text = render_plan_markdown(plan, state)
    assert_well_formed(text)  # Mermaid cannot parse ""
    assert 'x-axis ["…", "… (2)"]' in text


def test_labels_that_read_the_same_in_a_chart_are_numbered() -> None:
    """Cut short or cleaned, two labels can read the same: Mermaid would draw their bars at
    one place (found by a review, drawn in tests/test_mermaid_browser.py)."""
    long = "The answer should emphasize "
    labels = [long + "scalability", long + "fault tolerance", "a;", "a", "<b>", "b"]
    wanted = {("t", f"s{n}"): {"note": declared(label)} for n, label in enumerate(labels)}
    plan, state = planned(wanted)
    text = render_plan_markdown(plan, state)
    assert_well_formed(text)
    (axis,) = re.findall(r"x-axis \[(.*)\]", text)
    names = re.findall(r'"([^"]*)"', axis)
    assert len(names) == 6 and len(set(names)) == 6, names
    assert {
        "a",
        "a (2)",
        "b",
        "b (2)",
        "The answer should empha…",
        "The answer should em (2)",
    } == set(names)


def test_at_most_ten_keys_are_charted() -> None:
    keys = [f"k{n:02}" for n in range(12)]
    plan, state = planned({("t", "a"): {key: declared("yes") for key in keys}})
    text = render_plan_markdown(plan, state)
    assert_well_formed(text)
    assert text.count("```mermaid") == 10
    assert "2 more keys not charted." in text
