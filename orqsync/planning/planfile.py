"""Saved plans: versioned JSON that pins the state it was made against.

A saved plan holds the base state's lineage, serial and hash, the hashes of the desired files
and the definitions, the summary, the changes and every request in order. No secrets: the API
key is never part of a request object. `apply FILE` runs exactly those requests, or refuses the
plan as stale when the state or the definitions moved on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any

from orqsync import __version__
from orqsync.errors import OrqsyncError, StalePlanError
from orqsync.model import (
    Correction,
    Operation,
    QueueRef,
    Review,
    Value,
    correction_key,
    value_from_json,
    value_json,
)
from orqsync.planning.plan import (
    ANNOTATE,
    CREATE,
    DELETE,
    REMOVE,
    UPDATE,
    Change,
    Plan,
    QueueChange,
    Request,
)
from orqsync.planning.wire import method_and_path, request_body
from orqsync.source.agreement import Agreement
from orqsync.source.resolve import Resolution
from orqsync.source.reviews import Moved, Movement, Unresolved
from orqsync.state.model import InSync, State, feedback_pairs
from orqsync.text import plural

FORMAT = "orqsync-plan"
FORMAT_VERSION = 2  # 2: base.project, the hash of orqsync.yaml


@dataclass(frozen=True, slots=True)
class Base:
    """What a plan was made against."""

    lineage: str
    serial: int
    state_hash: str
    definitions_hash: str
    files: dict[str, str]
    project: str = ""  # the hash of orqsync.yaml: which project, configured how


@dataclass(frozen=True, slots=True)
class SavedPlan:
    plan: Plan
    base: Base
    plan_id: str
    metadata_style: str
    in_sync: InSync | None = None  # what a complete apply records in the state


def request_json(request: Request, metadata_style: str) -> dict[str, object]:
    method, path = method_and_path(request)
    data: dict[str, object] = {
        "kind": request.kind,
        "method": method,
        "path": path,
        "body": request_body(request, metadata_style),
    }
    ref = request.queue
    if ref is not None:
        # the queue's name (what a create's id is recorded under) and, for a rename, the one
        # the state knew; a removal's body has span ids only: the spans are kept beside it
        queue: dict[str, object] = {"name": ref.name, "id": ref.id}
        if ref.was:
            queue["was"] = ref.was
        if ref.adopting:
            # what the state records, which an adopting update's body does not all carry
            queue["adopting"] = True
            queue["fields"] = {name: _listed(value) for name, value in ref.fields}
        data["queue"] = queue
        if request.kind == Operation.QUEUE_REMOVE:
            data["spans"] = [list(span) for span in ref.spans]
        return data
    data["trace_id"] = request.trace_id
    if request.span_id:
        data["span_id"] = request.span_id
    if request.metadata:
        data["metadata"] = dict(request.metadata)
    if request.reviews:  # what the state records; not sent
        data["reviews"] = {key: review.to_json() for key, review in request.reviews}
    return data


def change_json(change: Change) -> dict[str, object]:
    data: dict[str, object] = {
        "action": change.action,
        "trace_id": change.trace_id,
        "key": change.key,
    }
    if change.feedback:
        data["feedback"] = True
    else:
        data["span_id"] = change.span_id
    if change.old is not None:
        data["old"] = value_json(change.old)
    if change.new is not None:
        data["new"] = value_json(change.new)
    if change.old_metadata != change.new_metadata and change.action != "delete":
        data["old_metadata"] = dict(change.old_metadata)
        data["new_metadata"] = dict(change.new_metadata)
    if change.path:
        data["source"] = f"{change.path}:{change.line}"
    return data


def summary(plan: Plan) -> dict[str, int]:
    return {
        "create": plan.count(CREATE),
        "update": plan.count(UPDATE),
        "delete": plan.count(DELETE),
        "requests": len(plan.requests),
        **({"queues": len(plan.queues)} if plan.queues else {}),
    }


def plan_id(base: Base, requests: list[dict[str, object]]) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([base.lineage, base.serial, base.state_hash]).encode())
    digest.update(json.dumps(requests, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _in_sync_from_json(data: dict[str, Any] | None, base: Base) -> InSync | None:
    """The record a saved plan carries; only files at the content the plan was made from."""
    if data is None:
        return None
    record = InSync.from_json(data)
    same = [name for name, (digest, _) in record.files.items() if base.files.get(name) == digest]
    return replace(record.only(same), spans=None)


def plan_document(
    plan: Plan, base: Base, metadata_style: str, in_sync: InSync | None = None
) -> dict[str, object]:
    """The JSON form of a plan (`plan --format json` and `plan --out`)."""
    requests = [request_json(request, metadata_style) for request in plan.requests]
    document: dict[str, object] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "orqsync_version": __version__,
        "plan_id": plan_id(base, requests),
        "metadata_style": metadata_style,
        "base": {
            "lineage": base.lineage,
            "serial": base.serial,
            "state_hash": base.state_hash,
            "definitions_hash": base.definitions_hash,
            "files": base.files,
            "project": base.project,
        },
        "summary": summary(plan),
        "changes": [change_json(change) for change in plan.changes],
        "requests": requests,
    }
    if plan.queues:
        document["queues"] = [queue_change_json(change) for change in plan.queues]
    if plan.unresolved:
        document["unresolved"] = [unresolved_json(item) for item in plan.unresolved]
    if plan.unresolved_left_out:
        document["unresolved_left_out"] = plan.unresolved_left_out
    if plan.agreement is not None:
        document["agreement"] = movement_json(plan.agreement)
    if in_sync is not None:
        document["in_sync"] = {"context": in_sync.context, "files": in_sync.files_json()}
    return document


def _request_from_json(data: dict[str, Any]) -> Request:
    kind = Operation(data["kind"])
    body = data["body"]
    if kind.is_queue:
        queue = data["queue"]
        fields: tuple[tuple[str, object], ...] = ()
        spans: tuple[tuple[str, str], ...] = ()
        if kind in (Operation.QUEUE_CREATE, Operation.QUEUE_UPDATE):
            fields = tuple(
                (name, tuple(map(str, v)) if isinstance(v, list) else str(v))
                for name, v in queue.get("fields", body).items()
            )
        elif kind == Operation.QUEUE_ADD:
            spans = tuple((str(i["trace_id"]), str(i["span_id"])) for i in body["items"])
        elif kind == Operation.QUEUE_REMOVE:
            spans = tuple((str(t), str(s)) for t, s in data["spans"])
        ref = QueueRef(
            str(queue["name"]),
            str(queue["id"]),
            fields,
            spans,
            str(queue.get("was", "")),
            bool(queue.get("adopting", False)),
        )
        return Request(kind, "", queue=ref)
    if kind == ANNOTATE:
        items = tuple(_item_from_json(item) for item in body["annotations"])
        metadata = tuple(sorted(data.get("metadata", {}).items()))
        reviews = tuple(
            (str(key), Review.from_json(review)) for key, review in data.get("reviews", {}).items()
        )
        return Request(
            kind, data["trace_id"], data["span_id"], items=items, metadata=metadata, reviews=reviews
        )
    if kind == REMOVE:
        parents = body.get("parent_annotation_ids", [])
        keys = tuple(body.get("keys", [])) + tuple(correction_key(p) for p in parents)
        return Request(kind, data["trace_id"], data["span_id"], keys=keys)
    return Request(kind, data["trace_id"], feedback=feedback_pairs(body))


def _item_from_json(item: dict[str, Any]) -> tuple[str, Value]:
    """An item of a create as wire.request_body writes it (either shape)."""
    if "parent_annotation_id" in item:
        label = value_from_json(item["value"])
        explanation = item.get("explanation")
        if isinstance(label, Correction) or not (
            explanation is None or isinstance(explanation, str)
        ):
            raise ValueError("not a correction orqsync writes")
        return correction_key(str(item["parent_annotation_id"])), Correction(label, explanation)
    return str(item["key"]), value_from_json(item["value"])


def unresolved_json(item: Unresolved) -> dict[str, object]:
    """A key whose votes do not resolve, with every vote."""
    return {
        "trace_id": item.span[0],
        "span_id": item.span[1],
        "key": item.key,
        "rule": item.resolution.rule,
        "why": item.resolution.why,
        "votes": {who: value_json(value) for who, value in item.resolution.votes},
        "source": f"{item.path}:{item.line}",
    }


def unresolved_from_json(data: dict[str, Any]) -> Unresolved:
    path, _, line = str(data["source"]).rpartition(":")
    votes = tuple((str(who), value_from_json(v)) for who, v in data["votes"].items())
    resolution = Resolution(None, str(data["rule"]), votes, str(data["why"]))  # type: ignore[arg-type]
    return Unresolved(
        (str(data["trace_id"]), str(data["span_id"])),
        str(data["key"]),
        resolution,
        path,
        int(line) if line.isdigit() else 0,
    )


def movement_json(moved: Movement) -> dict[str, object]:
    """How the plan moves agreement: each key's figures at the base and with the changes."""

    def figures(item: Agreement | None) -> dict[str, object] | None:
        return None if item is None else item.to_json()

    data: dict[str, object] = {
        "base": moved.base,
        "keys": [
            {"key": key.key, "base": figures(key.base), "head": figures(key.head)}
            for key in moved.keys
        ],
    }
    if moved.note:
        data["note"] = moved.note
    return data


def _movement_from_json(data: dict[str, Any]) -> Movement:
    def figures(item: dict[str, Any] | None) -> Agreement | None:
        return None if item is None else Agreement.from_json(item)

    keys = tuple(
        Moved(str(key["key"]), figures(key["base"]), figures(key["head"])) for key in data["keys"]
    )
    return Movement(str(data["base"]), keys, str(data.get("note", "")))


def queue_change_json(change: QueueChange) -> dict[str, object]:
    data: dict[str, object] = {"action": change.action, "name": change.name}
    if change.id:
        data["id"] = change.id
    if change.was:
        data["renamed_from"] = change.was
    if change.fields:
        data["fields"] = {
            name: {"old": _listed(old), "new": _listed(new)} for name, old, new in change.fields
        }
    data["entering"] = [list(span) for span in change.entering]
    data["leaving"] = [list(span) for span in change.leaving]
    if change.path:
        data["source"] = f"{change.path}:{change.line}"
    return data


def _listed(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def _queue_change_from_json(data: dict[str, Any]) -> QueueChange:
    path, _, line = str(data.get("source", "")).rpartition(":")

    def tupled(value: object) -> object:
        return tuple(value) if isinstance(value, list) else value

    def spans(name: str) -> tuple[tuple[str, str], ...]:
        return tuple((str(t), str(s)) for t, s in data.get(name, []))

    return QueueChange(
        str(data["action"]),
        str(data["name"]),
        str(data.get("id", "")),
        tuple(
            (name, tupled(item["old"]), tupled(item["new"]))
            for name, item in data.get("fields", {}).items()
        ),
        spans("entering"),
        spans("leaving"),
        str(data.get("renamed_from", "")),
        path,
        int(line) if line.isdigit() else 0,
    )


def _change_from_json(data: dict[str, Any]) -> Change:
    source = data.get("source", "")
    path, _, line = source.rpartition(":")

    def value(name: str) -> object:
        return value_from_json(data.get(name))

    return Change(
        data["action"],
        data["trace_id"],
        data.get("span_id", ""),
        data["key"],
        old=value("old"),  # type: ignore[arg-type]
        new=value("new"),  # type: ignore[arg-type]
        old_metadata=tuple(sorted(data.get("old_metadata", {}).items())),
        new_metadata=tuple(sorted(data.get("new_metadata", {}).items())),
        path=path,
        line=int(line) if line.isdigit() else 0,
        feedback=bool(data.get("feedback")),
    )


def load_plan(path: str) -> SavedPlan:
    """Read a saved plan; a file that is not one is an error naming what is wrong."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise OrqsyncError(
            f"{path}: plan file not found", "save one with `orqsync plan --out FILE`"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise OrqsyncError(
            f"{path}: not a saved plan ({exc})", "save one with `orqsync plan --out FILE`"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise OrqsyncError(
            f"{path}: not an orqsync plan", "save one with `orqsync plan --out FILE`"
        )
    if data.get("format_version") != FORMAT_VERSION:
        raise OrqsyncError(
            f"{path}: plan format version {data.get('format_version')} is not supported",
            "make the plan again with this orqsync",
        )
    try:
        base_data = data["base"]
        plan = Plan(
            tuple(_change_from_json(item) for item in data["changes"]),
            tuple(_request_from_json(item) for item in data["requests"]),
            tuple(_queue_change_from_json(item) for item in data.get("queues", [])),
            tuple(unresolved_from_json(item) for item in data.get("unresolved", [])),
            int(data.get("unresolved_left_out", 0)),
            _movement_from_json(data["agreement"]) if "agreement" in data else None,
        )
        base = Base(
            base_data["lineage"],
            int(base_data["serial"]),
            base_data["state_hash"],
            base_data["definitions_hash"],
            dict(base_data["files"]),
            str(base_data["project"]),
        )
        return SavedPlan(
            plan,
            base,
            str(data["plan_id"]),
            str(data["metadata_style"]),
            _in_sync_from_json(data.get("in_sync"), base),
        )
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise OrqsyncError(
            f"{path}: the plan file is damaged (field {exc})", "make the plan again"
        ) from None


def check_same_project(saved: SavedPlan, project: str, files: dict[str, str], path: str) -> None:
    """Refuse a saved plan made for another project, or from other files (exit 4): its
    orqsync.yaml and its annotation files must be the ones here, byte for byte."""
    reasons = []
    if saved.base.project != project:
        reasons.append("orqsync.yaml differs (the plan is another project's, or it was edited)")
    made_from = saved.base.files
    changed = sorted(n for n in made_from.keys() | files.keys() if made_from.get(n) != files.get(n))
    if changed:
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3:,} more" if changed[3:] else "")
        verb = "differs" if len(changed) == 1 else "differ"
        reasons.append(f"{plural(len(changed), 'file')} (annotations or queues) {verb}: {shown}")
    if reasons:
        raise StalePlanError(
            f"{path} was not made from this project as it is: " + "; ".join(reasons),
            "run `orqsync plan --out FILE` here and apply that plan",
        )


def check_fresh(
    saved: SavedPlan, state: State, content_hash: str, definitions_hash: str, path: str
) -> None:
    """Refuse a plan made against another state or other definitions (exit 4)."""
    base = saved.base
    reasons = []
    if not base.lineage and state.lineage:
        reasons.append(
            f"the plan was made with no state; the state was written since (serial {state.serial})"
        )
    elif base.lineage != state.lineage:
        reasons.append(
            f"the state is another one (lineage {state.lineage}, plan has {base.lineage})"
        )
    elif base.serial != state.serial:
        reasons.append(f"the state was written since (serial {base.serial} -> {state.serial})")
    elif base.state_hash != content_hash:
        reasons.append("the state changed since (an interrupted apply, or an edit)")
    if base.definitions_hash != definitions_hash:
        reasons.append("definitions.yaml changed since")
    if reasons:
        raise StalePlanError(
            f"{path} is stale: " + "; ".join(reasons),
            "run `orqsync plan --out FILE` again and apply the new plan",
        )
