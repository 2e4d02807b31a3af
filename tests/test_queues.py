"""Annotation queues as code: files, plan, apply, rename, adoption, deletion and status."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from orqsync.cli import cli
from orqsync.emulator import Emulator, EmulatorConfig, EmulatorTransport
from orqsync.remote.client import EMBEDDED_KEY
from orqsync.review.render import NO_CHANGES

EXAMPLE = Path(__file__).parent.parent / "examples" / "review-queues"


def run(root: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["-C", str(root), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "review-queues"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".orqsync"))
    return root


def emulator_of(root: Path) -> Emulator:
    """The embedded emulator's database, opened as the next command would open it."""
    (root / ".orqsync").mkdir(exist_ok=True)
    return Emulator(
        EmulatorConfig(
            api_keys=(EMBEDDED_KEY,),
            definitions_path=str(root / "definitions.yaml"),
            db_path=str(root / ".orqsync" / "emulator.db"),
        )
    )


@pytest.fixture
def applied(project: Path) -> Path:
    code, out, err = run(project, "apply", "--auto-approve")
    assert code == 0, out + err
    return project


def state_queues(root: Path) -> dict[str, dict[str, object]]:
    state = json.loads((root / ".orqsync" / "state.json").read_text())
    return {queue["name"]: queue for queue in state.get("queues", [])}


def members(emulator: Emulator, queue_id: str) -> set[tuple[str, str]]:
    return {(str(i["trace_id"]), str(i["span_id"])) for i in emulator.queue_items(queue_id)}


def plan_json(root: Path) -> dict[str, object]:
    code, out, err = run(root, "plan", "--format", "json")
    assert code == 0, err
    return dict(json.loads(out))


def queue_requests(plan: dict[str, object]) -> list[dict[str, object]]:
    return [r for r in plan["requests"] if str(r["kind"]).startswith("queue_")]  # type: ignore[attr-defined]


def rate_triaged(root: Path, count: int, value: str = "bad") -> list[tuple[str, str]]:
    """Give the first `count` spans of annotations/triage.yaml a rating; their ids."""
    path = root / "annotations" / "triage.yaml"
    out, rated, trace, span = [], [], "", ""
    for line in path.read_text().splitlines(keepends=True):
        out.append(line)
        if line.startswith("  - trace_id: "):
            trace = line.split(": ")[1].strip()
        elif line.startswith("    span_id: "):
            span = line.split(": ")[1].strip()
        elif line.startswith("      defects:") and len(rated) < count:
            out.append(f"      rating: {value}\n")
            rated.append((trace, span))
    path.write_text("".join(out))
    return rated


def test_the_example_declares_two_queues_applies_and_replans_empty(applied: Path) -> None:
    code, out, _ = run(applied, "plan", "--detailed-exitcode")
    assert (code, out) == (0, NO_CHANGES + "\n")
    held = state_queues(applied)
    assert sorted(held) == ["needs-second-look", "unrated"]
    with emulator_of(applied) as emulator:
        queues = {q["_id"]: q for q in emulator.queues()}
        assert set(queues) == {held[name]["id"] for name in held}
        second = queues[str(held["needs-second-look"]["id"])]
        assert second["display_name"] == "Needs a second look"
        assert second["project_id"] == "01JQ3M2Z8K4N6P7R9S0T1V2W3X"
        # the definitions reviewers use, by the ids definitions.yaml gives them
        assert second["human_review_ids"] == [
            "01JQ3M30A1B2C3D4E5F6G7H8J9",
            "01JQ3M30K1M2N3P4Q5R6S7T8V9",
        ]
        bad = members(emulator, str(second["_id"]))
        unrated = members(emulator, str(held["unrated"]["id"]))
    assert len(bad) == 20  # every third of the 60 rated spans is rated bad
    assert len(unrated) == 61  # the 60 triaged spans, and the one listed by id
    assert ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331") in unrated
    assert not bad & unrated


def test_moving_50_spans_between_queues_takes_two_requests(applied: Path) -> None:
    moved = rate_triaged(applied, 50)
    assert len(moved) == 50
    plan = plan_json(applied)
    requests = queue_requests(plan)
    # one request takes the 50 out of one queue, one puts them in the other
    assert [(r["kind"], r["method"]) for r in requests] == [
        ("queue_add", "POST"),
        ("queue_remove", "POST"),
    ]
    held = state_queues(applied)
    add, remove = requests
    assert add["path"] == f"/v2/annotation-queues/{held['needs-second-look']['id']}/items"
    assert len(add["body"]["items"]) == 50  # type: ignore[index]
    assert remove["path"] == f"/v2/annotation-queues/{held['unrated']['id']}/items/remove"
    assert sorted(remove["body"]["span_ids"]) == sorted(s for _, s in moved)  # type: ignore[index]
    by_name = {q["name"]: q for q in plan["queues"]}  # type: ignore[attr-defined]
    assert (len(by_name["needs-second-look"]["entering"]), len(by_name["unrated"]["leaving"])) == (
        50,
        50,
    )
    code, out, err = run(applied, "apply", "--auto-approve")
    assert code == 0, out + err
    with emulator_of(applied) as emulator:
        assert set(moved) <= members(emulator, str(held["needs-second-look"]["id"]))
        assert not set(moved) & members(emulator, str(held["unrated"]["id"]))
    code, out, _ = run(applied, "plan", "--detailed-exitcode")
    assert (code, out) == (0, NO_CHANGES + "\n")


def test_the_pull_request_comment_counts_spans_entering_and_leaving(applied: Path) -> None:
    rate_triaged(applied, 50)
    code, out, _ = run(applied, "plan", "--format", "markdown")
    assert code == 0
    assert "### Annotation queues" in out
    assert "| `needs-second-look` | members | 50 | 0 |" in out
    assert "| `unrated` | members | 0 | 50 |" in out
    assert "**2 annotation queues change**, 50 spans entering and 50 leaving" in out


def test_a_renamed_queue_keeps_its_id(applied: Path) -> None:
    before = state_queues(applied)["unrated"]["id"]
    path = applied / "queues" / "unrated.yaml"
    path.write_text(
        path.read_text()
        .replace("name: unrated", "name: awaiting-rating\nrenamed_from: unrated")
        .replace("display_name: Not yet rated", "display_name: Awaiting a rating")
    )
    plan = plan_json(applied)
    assert [(r["kind"], r["path"], r["body"]) for r in queue_requests(plan)] == [
        ("queue_update", f"/v2/annotation-queues/{before}", {"display_name": "Awaiting a rating"})
    ]
    (change,) = plan["queues"]  # type: ignore[misc]
    assert (change["action"], change["renamed_from"]) == ("update", "unrated")
    code, out, err = run(applied, "apply", "--auto-approve")
    assert code == 0, out + err
    held = state_queues(applied)
    assert "unrated" not in held and held["awaiting-rating"]["id"] == before
    with emulator_of(applied) as emulator:
        assert len(emulator.queues()) == 2  # renamed, not deleted and created
        (queue,) = [q for q in emulator.queues() if q["_id"] == before]
        assert queue["display_name"] == "Awaiting a rating"
        assert len(members(emulator, str(before))) == 61
    code, out, _ = run(applied, "plan", "--detailed-exitcode")
    assert (code, out) == (0, NO_CHANGES + "\n")


def test_a_rename_in_the_repository_alone_still_moves_the_record(applied: Path) -> None:
    before = state_queues(applied)["unrated"]["id"]
    path = applied / "queues" / "unrated.yaml"
    path.write_text(path.read_text().replace("name: unrated", "name: later\nrenamed_from: unrated"))
    requests = queue_requests(plan_json(applied))
    assert [(r["kind"], r["body"]) for r in requests] == [
        ("queue_update", {"display_name": "Not yet rated"})
    ]
    assert run(applied, "apply", "--auto-approve")[0] == 0
    assert state_queues(applied)["later"]["id"] == before
    # renamed_from may stay in the file: the state already knows the new name
    assert run(applied, "plan", "--detailed-exitcode")[0] == 0


def test_a_deleted_queue_file_deletes_the_queue_within_the_removal_budget(applied: Path) -> None:
    gone = state_queues(applied)["unrated"]["id"]
    (applied / "queues" / "unrated.yaml").unlink()
    config = applied / "orqsync.yaml"
    config.write_text(config.read_text() + "policy: {max_removals: 0}\n")
    plan = plan_json(applied)
    assert [(r["kind"], r["method"], r["path"], r["body"]) for r in queue_requests(plan)] == [
        ("queue_delete", "DELETE", f"/v2/annotation-queues/{gone}", None)
    ]
    code, out, err = run(applied, "apply", "--auto-approve")
    assert code == 5, out + err  # refused by the removal budget: a deletion counts
    assert "removal" in err
    code, out, err = run(applied, "apply", "--auto-approve", "--allow-removals")
    assert code == 0, out + err
    assert "unrated" not in state_queues(applied)
    with emulator_of(applied) as emulator:
        assert [q["_id"] for q in emulator.queues()] != [] and gone not in {
            q["_id"] for q in emulator.queues()
        }


def _serve(root: Path) -> Iterator[httpx.Client]:
    emulator = emulator_of(root)
    with httpx.Client(
        transport=EmulatorTransport(emulator, owns_emulator=True),
        base_url="http://emulator.invalid",
        headers={"Authorization": f"Bearer {EMBEDDED_KEY}"},
    ) as client:
        yield client


def test_a_queue_is_adopted_by_its_id_without_a_create(project: Path) -> None:
    for client in _serve(project):
        answer = client.post(
            "/v2/annotation-queues",
            json={"display_name": "Made in orq.ai", "description": "", "project_id": "p"},
        )
        assert answer.status_code == 200
        existing = answer.json()["_id"]
    path = project / "queues" / "unrated.yaml"
    path.write_text(path.read_text() + f"id: {existing}\n")
    requests = queue_requests(plan_json(project))
    unrated = [r for r in requests if existing in str(r["path"])]
    assert [r["kind"] for r in unrated] == ["queue_update", "queue_update", "queue_add"]
    # not project_id: in an update it would clear the definitions the queue has
    assert unrated[0]["body"] == {
        "display_name": "Not yet rated",
        "description": "Spans triaged with a defect tag that nobody has rated yet.",
    }
    assert sum(r["kind"] == "queue_create" for r in requests) == 1  # the other queue's
    code, out, err = run(project, "apply", "--auto-approve")
    assert code == 0, out + err
    assert state_queues(project)["unrated"]["id"] == existing
    with emulator_of(project) as emulator:
        assert len(emulator.queues()) == 2
        assert len(members(emulator, existing)) == 61


def test_queue_status_reports_review_progress_and_differences(applied: Path) -> None:
    held = state_queues(applied)
    unrated = str(held["unrated"]["id"])
    items = []
    for client in _serve(applied):
        items = client.get(f"/v2/annotation-queues/{unrated}/items", params={"limit": 3}).json()[
            "data"
        ]
        # a reviewer rates two spans of the queue in orq.ai, and someone adds a span by hand
        for item in items[:2]:
            answer = client.post(
                f"/v2/traces/{item['trace_id']}/spans/{item['span_id']}/annotation",
                json={"annotations": [{"key": "rating", "value": "good"}]},
            )
            assert answer.status_code == 200, answer.text
        client.post(
            f"/v2/annotation-queues/{unrated}/items",
            json={"items": [{"trace_id": "f" * 32, "span_id": "e" * 16}]},
        )
        client.post(
            f"/v2/annotation-queues/{unrated}/items/remove",
            json={"span_ids": [items[2]["span_id"]]},
        )
    code, out, err = run(applied, "queue", "status", "unrated", "--format", "json")
    assert code == 0, err
    (status,) = json.loads(out)["queues"]
    assert status["id"] == unrated and status["item_count"] == 61
    # the 60 triaged spans carry defects (orqsync applied them); two were rated since
    assert status["reviewed_by_definition"] == {"rating": 2, "defects": 59}
    assert status["reviewed"] == 59  # the span listed by id and the one added carry nothing
    assert status["undeclared"] == [["f" * 32, "e" * 16]]
    assert status["missing"] == [[items[2]["trace_id"], items[2]["span_id"]]]
    assert status["pages"] == 1
    ids = [item["id"] for item in status["items"]]
    assert len(set(ids)) == 61
    code, text, _ = run(applied, "queue", "status")
    assert code == 0
    assert "unrated (" + unrated + ', "Not yet rated"): 61 spans' in text
    assert "reviewed: 59 of 61 (rating 2, defects 59)" in text
    assert "routed here in git but not in the queue: 1 (run `orqsync apply`)" in text
    assert "in the queue but not routed here in git: 1 (added in orq.ai)" in text
    assert "needs-second-look (" in text


def test_queue_status_pages_with_cursors(applied: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orqsync.commands import queues as status_module

    held = state_queues(applied)
    monkeypatch.setattr(status_module, "PAGE", 7)
    code, out, _ = run(applied, "queue", "status", "unrated", "--format", "json")
    assert code == 0
    (status,) = json.loads(out)["queues"]
    assert status["pages"] == 9  # 61 items, 7 a page
    assert len({item["id"] for item in status["items"]}) == 61
    assert status["missing"] == [] and status["undeclared"] == []
    assert status["id"] == held["unrated"]["id"]


def test_queue_status_names_an_unknown_queue_and_a_queue_not_created(project: Path) -> None:
    code, _, err = run(project, "queue", "status", "nope")
    assert code == 1
    assert 'no annotation queue is named "nope" (declared: needs-second-look, unrated)' in err
    code, out, _ = run(project, "queue", "status")
    assert code == 0
    assert "unrated: not created yet (61 spans routed to it); run `orqsync apply`" in out


def test_a_saved_plan_with_queues_applies_exactly(project: Path, tmp_path: Path) -> None:
    saved = tmp_path / "plan.json"
    code, _, err = run(project, "plan", "--out", str(saved))
    assert code == 0, err
    code, out, _ = run(project, "show", str(saved))
    assert "annotation queue unrated" in out
    assert "POST /v2/annotation-queues/{id of new queue unrated}/items" in out
    code, out, err = run(project, "apply", str(saved), "--auto-approve")
    assert code == 0, out + err
    assert sorted(state_queues(project)) == ["needs-second-look", "unrated"]
    assert run(project, "plan", "--detailed-exitcode")[0] == 0


def test_a_saved_plan_is_stale_once_a_queue_file_changes(project: Path, tmp_path: Path) -> None:
    saved = tmp_path / "plan.json"
    assert run(project, "plan", "--out", str(saved))[0] == 0
    path = project / "queues" / "unrated.yaml"
    path.write_text(path.read_text().replace("Not yet rated", "Unrated"))
    code, _, err = run(project, "apply", str(saved), "--auto-approve")
    assert code == 4
    assert "queues/unrated.yaml" in err


def test_queue_patterns_that_match_nothing_delete_nothing(applied: Path) -> None:
    config = applied / "orqsync.yaml"
    config.write_text(config.read_text().replace('["queues/*.yaml"]', '["queue/*.yaml"]'))
    code, _, err = run(applied, "plan")
    assert code == 1
    assert (
        "orqsync.yaml:9:9: queues (queue/*.yaml) match no queue files, but the state holds 2 "
        "annotation queues (needs-second-look, unrated)"
    ) in err
    assert "write `queues: []`" in err
    # said on purpose: every queue goes, within the removal budget
    config.write_text(config.read_text().replace('["queue/*.yaml"]', "[]"))
    requests = queue_requests(plan_json(applied))
    assert [r["kind"] for r in requests] == ["queue_delete", "queue_delete"]


def test_a_queue_deleted_in_orq_ai_is_reported_and_forgotten_on_request(applied: Path) -> None:
    held = state_queues(applied)
    gone = str(held["unrated"]["id"])
    for client in _serve(applied):
        assert client.delete(f"/v2/annotation-queues/{gone}").status_code == 204
    code, out, _ = run(applied, "queue", "status")
    assert code == 0
    assert f"unrated ({gone}): orq.ai has no such queue (deleted there?)" in out
    assert "needs-second-look (" in out  # the others are still reported
    rate_triaged(applied, 1)
    code, out, err = run(applied, "apply", "--auto-approve")
    assert code == 3
    assert f"hint: orq.ai has no queue {gone} (deleted there?): `orqsync queue forget unrated`" in (
        out
    )
    code, out, _ = run(applied, "queue", "forget", "unrated")
    assert (code, out) == (0, f"Forgot the annotation queue unrated ({gone}); nothing was sent.\n")
    history = run(applied, "state", "history")[1]
    assert "queue forget" in history
    code, out, err = run(applied, "apply", "--auto-approve")
    assert code == 0, out + err
    renewed = state_queues(applied)["unrated"]["id"]
    assert renewed != gone
    code, _, err = run(applied, "queue", "forget", "nope")
    assert code == 1
    assert 'the state holds no annotation queue "nope"' in err


def test_a_queue_no_file_declares_is_deleted_even_when_orq_ai_deleted_it_first(
    applied: Path,
) -> None:
    gone = str(state_queues(applied)["unrated"]["id"])
    for client in _serve(applied):
        client.delete(f"/v2/annotation-queues/{gone}")
    (applied / "queues" / "unrated.yaml").unlink()
    code, out, err = run(applied, "apply", "--auto-approve")
    assert code == 0, out + err  # a 404 to a delete: gone already, as asked
    assert "unrated" not in state_queues(applied)


def test_targets_say_the_queues_are_left_out(applied: Path) -> None:
    rate_triaged(applied, 1)
    code, out, _ = run(applied, "plan", "--target", "0*")
    assert code == 0
    assert "annotation queues: not compared, not changed." in out
    assert "2 annotation queues" in out
