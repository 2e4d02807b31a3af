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
        "Refused by orq.ai: 1 request\n"
        '  1 request: HTTP 404: The human review with key "ghost" for workspace '
        "emulator-workspace was not found.\n"
        "    annotations/a.yaml:12: POST /v2/traces/cb2289e8eae4e587f8bba591734cc831/spans/"
        "0000000000000002/annotation\n"
        "    hint: check that the key exists in orq.ai and in definitions.yaml, and the span id\n"
        "Apply partial: 2 of 3 requests done, 1 refused. The state is saved; fix what was "
        "refused and run apply again to finish.\n"
    ) in result.stdout
    assert "refused" not in result.stderr.replace("1 refused", "")  # listed once, in stdout
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


def many_spans(count: int) -> str:
    spans = "".join(
        f"  - {{trace_id: {'a' * 32}, span_id: {n:016x}, annotations: {{rating: good}}}}\n"
        for n in range(1, count + 1)
    )
    return "version: 1\nspans:\n" + spans


def test_a_wrong_key_stops_the_apply_at_once_with_one_message(make_project, server):
    wrong = "sk-orq-wrong-key-1234567890"
    project = make_project(base_url=server.url, **{"annotations/a.yaml": many_spans(200)})
    result = project.run("apply", "--auto-approve", env={"ORQ_API_KEY": wrong})
    assert result.exit_code == 1
    assert result.stderr.count("error:") == 1
    assert (
        f"error: orq.ai refused $ORQ_API_KEY at {server.url}: "
        "HTTP 401: Authorization token is invalid. "
        "None of the 200 requests succeeded\n"
        "  hint: set ORQ_API_KEY to a valid API key of this workspace (orq.ai: Settings, API Keys)"
    ) in result.stderr
    assert "refused" not in result.stdout  # not a refusal of each span, one stop
    assert wrong not in result.output
    assert inspect(server, "/_emulator/requests")["count"] <= 4  # api.parallelism, in flight
    history = (project.root / ".orqsync" / "state.history.jsonl").read_text()
    assert json.loads(history.splitlines()[-1])["stopped"] == "unauthorized"


def test_a_port_with_nothing_listening_stops_the_apply_with_one_message(make_project):
    project = make_project(base_url="http://127.0.0.1:1", **{"annotations/a.yaml": many_spans(50)})
    settings = (project.root / "orqsync.yaml").read_text()
    project.write(
        "orqsync.yaml",
        settings.replace(
            "  parallelism: 4\n", "  parallelism: 4\n  unreachable_timeout_seconds: 1\n"
        ),
    )
    result = project.run("apply", "--auto-approve", env={"ORQ_API_KEY": KEY})
    assert result.exit_code == 1
    assert result.stderr.count("error:") == 1
    assert "error: cannot reach http://127.0.0.1:1: " in result.stderr
    assert "None of the 50 requests succeeded" in result.stderr
    assert "api.unreachable_timeout_seconds" in result.stderr
    assert "Refused by orq.ai" not in result.stdout


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


QUEUE_DEFINITIONS = (
    "version: 1\ndefinitions:\n"
    "  rating: {type: single_select, options: [good, bad], id: 01JQ3M30A1B2C3D4E5F6G7H8J9}\n"
    "  defects: {type: multi_select, options: [grammatical, spelling]}\n"
)


def test_queues_over_tcp_converge_through_429s_and_5xx_without_a_second_queue(
    make_project, tmp_path
):
    """A flaky, rate-limited orq.ai (30% 5xx, 20% 429): the applies finish (a create that met a
    5xx would stop its queue until the next run: test_queue_units.py), and orq.ai holds each
    queue once, with its definitions and members."""
    from orqsync.emulator import FaultConfig

    faults = FaultConfig(seed=7, error_rate=0.3, burst_429_rate=0.2)
    known = tmp_path / "orq-definitions.yaml"  # what the served orq.ai knows, ids included
    known.write_text(QUEUE_DEFINITIONS)
    config = EmulatorConfig(api_keys=(KEY,), faults=faults, definitions_path=str(known))
    emulator = Emulator(config)
    spans = "".join(
        f"  - trace_id: {n:032x}\n    span_id: {n:016x}\n    annotations: {{rating: "
        f"{'bad' if n % 2 else 'good'}}}\n"
        for n in range(1, 41)
    )
    with EmulatorServer(emulator) as served:
        project = make_project(
            base_url=served.url,
            definitions=QUEUE_DEFINITIONS,
            **{"annotations/a.yaml": "version: 1\nspans:\n" + spans},
        )
        for name, rule in (("bad", "{where: {rating: bad}}"), ("good", "{where: {rating: good}}")):
            project.write(
                f"queues/{name}.yaml",
                f"version: 1\nname: {name}\nproject_id: p\ndefinitions: [rating]\n"
                f"select: [{rule}]\n",
            )
        env = {"ORQ_API_KEY": KEY}
        runs = [project.run("apply", "--auto-approve", env=env) for _ in range(3)]
        codes = [run.exit_code for run in runs]
        assert codes[-1] == 0 and set(codes) <= {0, 3}, runs[-1].output
        assert project.run("plan", "--detailed-exitcode", env=env).exit_code == 0
        queues = inspect(served, "/_emulator/queues")["queues"]
    emulator.close()
    # a create that got a 5xx was not applied by the emulator (its faults answer first)
    assert sorted(q["display_name"] for q in queues) == ["bad", "good"]
    by_name = {q["display_name"]: q for q in queues}
    assert len(by_name["bad"]["items"]) == len(by_name["good"]["items"]) == 20
    assert by_name["bad"]["human_review_ids"] == ["01JQ3M30A1B2C3D4E5F6G7H8J9"]


def test_queue_status_with_a_wrong_key_stops_with_one_message(make_project, server):
    project = make_project(
        base_url=server.url,
        definitions=QUEUE_DEFINITIONS,
        **{"annotations/a.yaml": FILE.replace("      ghost: boo\n", "")},
    )
    project.write("queues/q.yaml", "version: 1\nname: q\nproject_id: p\nspans: []\n")
    assert project.run("apply", "--auto-approve", env={"ORQ_API_KEY": KEY}).exit_code == 0
    result = project.run("queue", "status", env={"ORQ_API_KEY": "sk-wrong"})
    assert result.exit_code == 1
    assert "sk-wrong" not in result.output
    assert result.stderr.startswith("error: orq.ai refused $ORQ_API_KEY at " + server.url)
    status = project.run("queue", "status", "--format", "json", env={"ORQ_API_KEY": KEY})
    assert json.loads(status.stdout)["queues"][0]["item_count"] == 0


def test_a_create_whose_answer_is_lost_makes_one_queue_over_two_applies(make_project, tmp_path):
    """The create reaches orq.ai, which makes the queue, but the answer is a 502 (a proxy
    that lost it). The apply records a queue whose create is not confirmed; the next apply
    finds that queue instead of making a second."""
    from orqsync.emulator.response import json_response

    class LosingEmulator(Emulator):
        lose = 1

        def handle(self, method, path, headers, body):
            response = super().handle(method, path, headers, body)
            if method == "POST" and path == "/v2/annotation-queues" and self.lose:
                self.lose -= 1
                return json_response(502, {"message": "Bad gateway"})
            return response

    known = tmp_path / "orq-definitions.yaml"
    known.write_text(QUEUE_DEFINITIONS)
    emulator = LosingEmulator(EmulatorConfig(api_keys=(KEY,), definitions_path=str(known)))
    env = {"ORQ_API_KEY": KEY}
    with EmulatorServer(emulator) as served:
        project = make_project(
            base_url=served.url,
            definitions=QUEUE_DEFINITIONS,
            **{"annotations/a.yaml": FILE.replace("      ghost: boo\n", "")},
        )
        assert project.run("apply", "--auto-approve", env=env).exit_code == 0
        # a queue added to a repository in sync: its create is the apply's only new request
        project.write(
            "queues/q.yaml",
            "version: 1\nname: q\ndisplay_name: Queue One\nproject_id: p\n"
            "select: [{where: {rating: bad}}]\n",
        )
        first = project.run("apply", "--auto-approve", env=env)
        assert first.exit_code == 3, first.output
        assert "the next apply looks for it in orq.ai before it creates one" in first.stdout
        status = project.run("queue", "status", env=env)
        assert "its create is not confirmed" in status.stdout
        second = project.run("apply", "--auto-approve", env=env)
        assert second.exit_code == 0, second.output
        assert project.run("plan", "--detailed-exitcode", env=env).exit_code == 0
        queues = inspect(served, "/_emulator/queues")["queues"]
    emulator.close()
    assert [q["display_name"] for q in queues] == ["Queue One"]
    assert len(queues[0]["items"]) == 2  # the two spans rated bad


def test_the_key_is_in_no_file_an_apply_or_a_saved_plan_writes(project, server, tmp_path):
    """State, journal, history, plan cache and a saved plan: none holds the key, after an
    apply that succeeded in part and one refused for a wrong key."""
    saved = tmp_path / "plan.json"
    assert project.run("plan", "--out", str(saved), env={"ORQ_API_KEY": KEY}).exit_code in (0, 2)
    project.run("apply", "--auto-approve", env={"ORQ_API_KEY": KEY})
    wrong = "sk-orq-wrong-key-0987654321"
    (project.root / ".orqsync" / "state.json").unlink()
    project.run("apply", "--auto-approve", env={"ORQ_API_KEY": wrong})
    written = [path for path in project.root.rglob("*") if path.is_file()] + [saved]
    assert any(path.name == "state.history.jsonl" for path in written)
    for path in written:
        data = path.read_bytes()
        assert KEY.encode() not in data and wrong.encode() not in data, path
