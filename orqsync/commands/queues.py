"""`orqsync queue status`: review progress per annotation queue, read back from orq.ai.

The only read-back of review progress the API has is a queue item's `used_human_review_ids`
(docs/api-contract.md, sections 3.7 and 4.6): the definitions already used on the span, by id,
without values. Each queue's items are paged through with the API's cursors (`starting_after`
the last item's id, 200 a page) and compared with the spans the repository routes to it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from orqsync.commands.plan import read_queues
from orqsync.commands.state import write_edit
from orqsync.errors import ApiError, OrqsyncError
from orqsync.model import SpanId
from orqsync.planning.queues import match
from orqsync.remote.client import OrqClient
from orqsync.source.desired import DesiredReader
from orqsync.source.project import Settings
from orqsync.source.queues import DesiredQueue
from orqsync.state.files import StateFile
from orqsync.state.lock import state_lock
from orqsync.state.model import QueueRecord, sorted_spans
from orqsync.text import plural

PAGE = 200  # the most a list answers (docs/api-contract.md, section 2.7)
SHOWN_ITEMS = 20  # items a text status lists per queue; --format json has every one


@dataclass(frozen=True, slots=True)
class Item:
    id: str  # the item's id: the cursor that pages after it
    span: SpanId
    used: tuple[str, ...]  # definitions used on it: keys where definitions.yaml knows the id
    unknown: tuple[str, ...] = ()  # the ids of those definitions.yaml records for no key


@dataclass(slots=True)
class QueueStatus:
    name: str
    id: str  # "" for a queue not created yet
    display_name: str
    items: list[Item] = field(default_factory=list)
    declared: frozenset[SpanId] = frozenset()
    definitions: tuple[str, ...] = ()  # the keys reviewers use in the queue (its file's)
    pages: int = 0
    datapoints: int = 0  # items that are dataset datapoints, not spans (not compared)
    gone: bool = False  # orq.ai answered 404: the queue is not there
    unconfirmed: bool = False  # a create was sent; whether it made the queue is not known

    @property
    def reviewed(self) -> int:
        return sum(1 for item in self.items if item.used or item.unknown)

    @property
    def by_unknown_id(self) -> dict[str, int]:
        """Items reviewed with each definition that definitions.yaml gives no id."""
        return dict(sorted(Counter(i for item in self.items for i in item.unknown).items()))

    @property
    def by_definition(self) -> dict[str, int]:
        """Items reviewed with each definition: the queue's own, then any other used."""
        counts = Counter(key for item in self.items for key in item.used)
        ordered = {key: counts[key] for key in self.definitions}
        ordered.update(sorted(counts.items()))
        return ordered

    @property
    def missing(self) -> list[SpanId]:
        """Spans the repository routes to the queue that it does not hold."""
        held = {item.span for item in self.items}
        return sorted_spans(self.declared - held)

    @property
    def undeclared(self) -> list[SpanId]:
        """Spans in the queue that the repository does not route to it (added in orq.ai)."""
        return sorted_spans({item.span for item in self.items} - self.declared)


def queue_status(
    settings: Settings, client: OrqClient, name: str | None = None
) -> list[QueueStatus]:
    """The status of every declared queue (or the one named)."""
    reader = DesiredReader(settings)
    definitions = reader.definitions
    queues = read_queues(settings, definitions)
    # the labels matter only to queues that route spans by rule
    for path in reader.paths if queues.needs_labels else ():
        reader.add(path)
    desired = reader.result()
    chosen: tuple[DesiredQueue, ...] = queues.queues
    if name is not None:
        chosen = tuple(queue for queue in queues.queues if queue.name == name)
        if not chosen:
            known = ", ".join(queue.name for queue in queues.queues) or "none"
            raise OrqsyncError(
                f'no annotation queue is named "{name}" (declared: {known})',
                "name a queue as its file's `name:` says",
            )
    definitions_by_id = {d.id: key for key, d in definitions.items() if d.id}
    state = StateFile.of(settings).load()
    matched = match(chosen, state.queues)
    found = []
    for queue in chosen:
        held = matched[queue.name]
        queue_id = held[1].id if held is not None else queue.id
        unconfirmed = held is not None and held[1].unconfirmed
        status = QueueStatus(
            queue.name,
            queue_id,
            queue.display_name,
            declared=queue.members(desired.spans),
            definitions=queue.definitions,
            unconfirmed=unconfirmed,
        )
        if queue_id:
            try:
                _read_items(client, status, definitions_by_id)
            except ApiError as error:
                if error.status != 404:
                    raise
                status.gone = True
        found.append(status)
    return found


def _read_items(client: OrqClient, status: QueueStatus, keys: dict[str, str]) -> None:
    """Every item of the queue, page after page."""
    path = f"/v2/annotation-queues/{quote(status.id, safe='')}/items"
    after = ""
    while True:
        params = {"limit": str(PAGE)}
        if after:
            params["starting_after"] = after
        answer = client.get(path, params)
        status.pages += 1
        data, more = _page(answer, path)
        for raw in data:
            if isinstance(raw, dict) and raw.get("type") == "datapoint":
                status.datapoints += 1  # a dataset's row, not a span: nothing to compare
                continue
            status.items.append(_item(raw, path, keys))
        if not more or not data:
            return
        last = data[-1]
        after = str(last.get("_id", "")) if isinstance(last, dict) else ""
        if not after:
            raise OrqsyncError(
                f"GET {path}: the last item of a page has no _id to page after",
                "check api.base_url in orqsync.yaml: it should be orq.ai's API",
            )


def _page(answer: object, path: str) -> tuple[list[Any], bool]:
    if (
        not isinstance(answer, dict)
        or not isinstance(answer.get("data"), list)
        or not isinstance(answer.get("has_more", False), bool)
    ):
        raise OrqsyncError(
            f"GET {path}: the answer is not a list of queue items",
            "check api.base_url in orqsync.yaml: it should be orq.ai's API",
        )
    return answer["data"], bool(answer.get("has_more", False))


def _item(raw: object, path: str, keys: dict[str, str]) -> Item:
    try:
        if not isinstance(raw, dict):
            raise TypeError("not an object")
        ids = [str(i) for i in raw.get("used_human_review_ids") or []]
        used = tuple(keys[i] for i in ids if i in keys)
        unknown = tuple(i for i in ids if i not in keys)
        return Item(str(raw["_id"]), (str(raw["trace_id"]), str(raw["span_id"])), used, unknown)
    except (KeyError, TypeError):
        raise OrqsyncError(
            f"GET {path}: an item of the answer has no _id, trace_id or span_id",
            "check api.base_url in orqsync.yaml: it should be orq.ai's API",
        ) from None


def status_json(statuses: list[QueueStatus]) -> dict[str, object]:
    return {
        "queues": [
            {
                "name": status.name,
                "id": status.id or None,
                "display_name": status.display_name,
                "created": bool(status.id),
                "create_unconfirmed": status.unconfirmed,
                "gone": status.gone,
                "datapoints": status.datapoints,
                "items": [
                    {
                        "id": item.id,
                        "trace_id": item.span[0],
                        "span_id": item.span[1],
                        "reviewed_with": list(item.used),
                        "reviewed_with_unknown_ids": list(item.unknown),
                    }
                    for item in status.items
                ],
                "item_count": len(status.items),
                "reviewed": status.reviewed,
                "reviewed_by_definition": status.by_definition,
                "reviewed_by_unknown_id": status.by_unknown_id,
                "declared": len(status.declared),
                "missing": [list(span) for span in status.missing],
                "undeclared": [list(span) for span in status.undeclared],
                "pages": status.pages,
            }
            for status in statuses
        ]
    }


def status_text(statuses: list[QueueStatus]) -> str:
    if not statuses:
        return "No annotation queues are declared (orqsync.yaml `queues`, default queues/*.yaml).\n"
    out = []
    for status in statuses:
        if not status.id:
            what = (
                "its create is not confirmed (the next apply looks for the queue in orq.ai)"
                if status.unconfirmed
                else "not created yet"
            )
            out.append(
                f"{status.name}: {what} ({plural(len(status.declared), 'span')} routed to "
                "it); run `orqsync apply`\n"
            )
            continue
        if status.gone:
            out.append(
                f"{status.name} ({status.id}): orq.ai has no such queue (deleted there?); "
                f"`orqsync queue forget {status.name}` drops orqsync's record of it, and the "
                "next apply creates it again\n"
            )
            continue
        count = len(status.items)
        datapoints = f" and {plural(status.datapoints, 'datapoint')}" if status.datapoints else ""
        out.append(
            f'{status.name} ({status.id}, "{status.display_name}"): '
            f"{plural(count, 'span')}{datapoints}"
        )
        by = ", ".join(f"{key} {n:,}" for key, n in status.by_definition.items())
        out.append(f"  reviewed: {status.reviewed:,} of {count:,}" + (f" ({by})" if by else ""))
        unknown = status.by_unknown_id
        if unknown:
            listed = ", ".join(f"{review_id} {n:,}" for review_id, n in unknown.items())
            out.append(
                f"  with definitions definitions.yaml names no id of: {listed} (hint: record "
                "each id as its definition's `id:` to see it by key)"
            )
        for what, spans, hint in (
            ("routed here in git but not in the queue", status.missing, "run `orqsync apply`"),
            ("in the queue but not routed here in git", status.undeclared, "added in orq.ai"),
        ):
            if spans:
                out.append(f"  {what}: {len(spans):,} ({hint})")
                out.extend(f"    {t}/{s}" for t, s in spans[:SHOWN_ITEMS])
                if len(spans) > SHOWN_ITEMS:
                    out.append(f"    ... and {len(spans) - SHOWN_ITEMS:,} more (--format json)")
        if status.items:
            out.append(
                "  items (id, which pages after it as a cursor; TRACE/SPAN; definitions used):"
            )
            for item in status.items[:SHOWN_ITEMS]:
                used = ", ".join(item.used + item.unknown) or "-"
                out.append(f"    {item.id}  {item.span[0]}/{item.span[1]}  {used}")
            if count > SHOWN_ITEMS:
                out.append(f"    ... and {count - SHOWN_ITEMS:,} more (--format json)")
        out.append("")
    return "\n".join(out) + "\n"


def forget(settings: Settings, name: str, environ: Mapping[str, str] | None = None) -> QueueRecord:
    """`queue forget NAME`: drop the state's record of a queue without sending anything (for
    a queue deleted in orq.ai: the next apply creates it again, if a file declares it), and
    record who did it in the apply history. Returns the record."""
    files = StateFile.of(settings)
    with state_lock(settings.state_path, "queue forget", environ):
        current = files.load()
        record = current.queues.pop(name, None)
        if record is None:
            known = ", ".join(sorted(current.queues)) or "none"
            raise OrqsyncError(
                f'the state holds no annotation queue "{name}" (it holds: {known})',
                "see `orqsync queue status`",
            )
        detail = f"queue {name} ({record.id or 'create not confirmed'})"
        write_edit(settings, files, current, "queue forget", 0, detail, environ)
    return record
