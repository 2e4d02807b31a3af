"""The CLI against the emulator served on 127.0.0.1 over real TCP, as a user would run it."""

from __future__ import annotations

import json

import httpx
import pytest

from orqsync.emulator import Emulator, EmulatorConfig, EmulatorServer

KEY = "sk-orq-test-0000-loopbacksecret"

FILE = """\
version: 1
metadata: {identityId: user-1}
spans:
  - trace_id: cb2289e8eae4e587f8bba591734cc831
    span_id: 274c568b4fffdfc5
    annotations:
      rating: good
      defects: [grammatical]
  - trace_id: cb2289e8eae4e587f8bba591734cc831
    span_id: 0000000000000002
    annotations:
      ghost: boo
      rating: bad
  - trace_id: cb2289e8eae4e587f8bba591734cc831
    span_id: 0000000000000003
    annotations:
      rating: bad
"""


@pytest.fixture
def server():
    # The served orq.ai knows only its default definitions (rating, defects): no `ghost`.
    emulator = Emulator(EmulatorConfig(api_keys=(KEY,)))
    with EmulatorServer(emulator) as running:
        yield running
    emulator.close()


@pytest.fixture
def project(make_project, server):
    definitions = (
        "version: 1\ndefinitions:\n"
        "  rating: {type: single_select, options: [good, bad]}\n"
        "  defects: {type: multi_select, options: [grammatical, spelling]}\n"
        "  ghost: {type: text}\n"
    )
    return make_project(
        base_url=server.url, definitions=definitions, **{"annotations/a.yaml": FILE}
    )


def inspect(server, path: str) -> dict:
    return httpx.get(server.url + path).json()


def test_apply_over_tcp_writes_what_orq_accepts_and_reports_what_it_refuses(project, server):
    result = project.run("apply", "--auto-approve", env={"ORQ_API_KEY": KEY})
    assert result.exit_code == 3
    assert (
        "annotations/a.yaml:12: refused: POST /v2/traces/cb2289e8eae4e587f8bba591734cc831/spans/"
        '0000000000000002/annotation: HTTP 404: The human review with key "ghost" for workspace '
        "emulator-workspace was not found."
    ) in result.stdout
    assert "Apply partial: 2 of 3 requests done, 1 refused, 0 left." in result.stdout
    rows = inspect(server, "/_emulator/annotations")["annotations"]
    assert {(r["span_id"], r["key"]): r["value"] for r in rows} == {
        ("274c568b4fffdfc5", "rating"): "good",
        ("274c568b4fffdfc5", "defects"): ["grammatical"],
        ("0000000000000003", "rating"): "bad",
    }
    assert rows[0]["metadata"] == {"identityId": "user-1", "source": "orqsync"}
    state = json.loads((project.root / ".orqsync" / "state.json").read_text())
    assert sorted(span["span_id"] for span in state["spans"]) == [
        "0000000000000003",
        "274c568b4fffdfc5",
    ]
    # the refused span stays pending: fix the definition in orq.ai and the next run finishes
    plan = project.run("plan", "--detailed-exitcode")
    assert plan.exit_code == 2
    assert "Plan: 2 to add, 0 to change, 0 to remove; 1 request." in plan.stdout


def test_a_wrong_key_is_refused_without_retrying_and_never_shown(project, server):
    wrong = "sk-orq-wrong-key-1234567890"
    result = project.run("apply", "--auto-approve", env={"ORQ_API_KEY": wrong})
    assert result.exit_code == 3
    assert "HTTP 401: Authorization token is invalid" in result.output
    assert wrong not in result.output
    assert inspect(server, "/_emulator/requests")["count"] == 3  # one each, no retries


def test_a_missing_key_stops_before_anything_is_sent(project, server):
    result = project.run("apply", "--auto-approve", env={})
    assert result.exit_code == 1
    assert "error: the API key is not set: $ORQ_API_KEY is empty" in result.stderr
    assert inspect(server, "/_emulator/requests")["count"] == 0


def test_the_key_appears_in_no_output_plan_or_state(project, server, tmp_path):
    env = {"ORQ_API_KEY": KEY}
    outputs = [
        project.run("plan", "--out", str(tmp_path / "plan.json"), env=env).output,
        project.run("plan", "--format", "json", env=env).output,
        project.run("apply", "--auto-approve", env=env).output,
    ]
    files = [
        (tmp_path / "plan.json").read_text(),
        (project.root / ".orqsync" / "state.json").read_text(),
    ]
    for text in outputs + files:
        assert KEY not in text


def test_current_metadata_style_sends_identity_id(make_project, server):
    project = make_project(
        base_url=server.url,
        **{
            "annotations/a.yaml": """\
        version: 1
        spans:
          - trace_id: t
            span_id: s
            metadata: {identityId: user-9}
            annotations: {rating: good}
        """
        },
    )
    settings = (project.root / "orqsync.yaml").read_text()
    project.write(
        "orqsync.yaml",
        settings.replace("parallelism: 4", "parallelism: 4\n  metadata_style: current"),
    )
    assert project.run("apply", "--auto-approve", env={"ORQ_API_KEY": KEY}).exit_code == 0
    rows = inspect(server, "/_emulator/annotations")["annotations"]
    assert rows[0]["metadata"] == {"identity_id": "user-9"}
