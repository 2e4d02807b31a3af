"""orqsync.yaml -> frozen Settings."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from orqsync.errors import OrqsyncError, Problem, ProblemsError
from orqsync.source.ids import DEFAULT_ID_FORMAT
from orqsync.source.schema import check
from orqsync.source.yamlfile import Document, load, mapping_items, node_at, position, to_python

PROJECT_FILE = "orqsync.yaml"
EMBEDDED = "embedded"
METADATA_FIELDS = ("identityId", "source", "reviewerId")


@dataclass(frozen=True, slots=True)
class Reviews:
    """orqsync.yaml `reviews`: several reviewers per span, and how their votes resolve
    (source/resolve.py)."""

    rule: str = "majority"
    priority: tuple[str, ...] = ()
    keys: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    adjudication: tuple[str, ...] = ()  # glob patterns of the adjudication files

    def rule_of(self, key: str) -> str:
        return self.keys.get(key, self.rule)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything orqsync.yaml says, with defaults filled and paths made absolute."""

    root: str
    workspace: str = ""
    base_url: str = "https://api.orq.ai"
    api_key_env: str = "ORQ_API_KEY"
    string_limit: int = 200
    metadata_style: str = "documented"
    parallelism: int = 8
    requests_per_minute: float | None = None
    timeout_seconds: float = 30.0
    max_attempts: int = 10
    unreachable_timeout_seconds: float = 60.0
    outage_timeout_seconds: float = 300.0
    emulator_evaluations: str = ""  # base_url embedded: the evaluator results it holds
    definitions: str = "definitions.yaml"
    sources: tuple[str, ...] = ("annotations/**/*.yaml",)
    queues: tuple[str, ...] = ("queues/*.yaml",)  # the annotation queue files (source/queues.py)
    project_id: str = ""  # the orq.ai project of queues whose files name none
    reviews: Reviews | None = None  # several reviewers per span, when orqsync.yaml says so
    state: str = ".orqsync/state.json"
    metadata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    max_removals: int = 100
    owned_keys: tuple[str, ...] = ("*",)
    id_format: str = DEFAULT_ID_FORMAT  # source/ids.py: "opentelemetry" or "any"
    # where each top-level field of orqsync.yaml is (line, column), for messages about it
    locations: Mapping[str, tuple[int | None, int | None]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def where(self, name: str) -> tuple[int | None, int | None]:
        return self.locations.get(name, (None, None))

    def path(self, relative: str) -> str:
        """A project-relative path made absolute."""
        return os.path.normpath(os.path.join(self.root, relative))

    def display(self, absolute: str) -> str:
        """A path as the user should read it: relative to the project when inside it."""
        relative = os.path.relpath(absolute, self.root)
        return absolute if relative.startswith("..") else relative

    @property
    def embedded(self) -> bool:
        return self.base_url == EMBEDDED

    @property
    def state_path(self) -> str:
        return self.path(self.state)

    @property
    def definitions_path(self) -> str:
        return self.path(self.definitions)


def normalize_metadata(raw: Mapping[str, object]) -> dict[str, str]:
    """Metadata in its documented names; `identity_id` is accepted as `identityId`."""
    result = {}
    for name, value in raw.items():
        result["identityId" if name == "identity_id" else name] = str(value)
    return result


def _outside(doc: Document, data: dict[str, Any]) -> list[Problem]:
    """Patterns of files that reach outside the project: absolute, or through `..`."""
    reviews = data.get("reviews") or {}
    lists = [
        (("sources",), data.get("sources", ()), "annotations/**/*.yaml"),
        (("queues",), data.get("queues", ()), "queues/*.yaml"),
        (("reviews", "adjudication"), reviews.get("adjudication", ()), "adjudication/*.yaml"),
    ]
    problems = []
    for where, patterns, example in lists:
        for index, pattern in enumerate(patterns):
            parts = pattern.replace("\\", "/").split("/")
            if os.path.isabs(pattern) or pattern.startswith("~") or ".." in parts:
                line, column = position(node_at(doc.root, (*where, index)))
                problems.append(
                    Problem(
                        PROJECT_FILE,
                        line,
                        column,
                        f'{".".join(where)}: "{pattern}" reaches outside the project',
                        "write patterns relative to the folder of orqsync.yaml, without .. or "
                        f"a leading /, e.g. {example}",
                    )
                )
    return problems


def _reviews(data: dict[str, Any]) -> Reviews:
    return Reviews(
        rule=data.get("rule", "majority"),
        priority=tuple(data.get("priority", ())),
        keys=MappingProxyType(dict(data.get("keys", {}))),
        adjudication=tuple(data.get("adjudication", ())),
    )


def find_project(directory: str) -> str:
    """The folder of the project that `directory` is in, as git finds its repository: the
    nearest folder holding orqsync.yaml, `directory` itself or one above it, up to the root of
    the filesystem. Every path the project names is relative to that folder (Settings.root)."""
    try:
        start = os.path.abspath(directory)
    except OSError:  # the current folder was removed under us
        raise OrqsyncError(
            "the current folder no longer exists",
            "cd into the project, or pass -C DIR to point at it",
        ) from None
    if not os.path.isdir(start):
        named = directory if os.path.isabs(directory) else f"{directory} ({start})"
        if os.path.exists(start):
            raise OrqsyncError(
                f"{named} is not a folder", "pass -C the folder that holds orqsync.yaml"
            )
        raise OrqsyncError(
            f"the folder {named} does not exist",
            "pass -C the folder that holds orqsync.yaml, or create a project there with "
            f"`orqsync -C {shlex.quote(directory)} init`",
        )
    folder = nearest_project(start)
    if folder is None:
        raise OrqsyncError(
            f"no {PROJECT_FILE} in {start} or any folder above it",
            "run `orqsync init` to create a project, or pass -C DIR to point at one",
        )
    return folder


def nearest_project(start: str) -> str | None:
    """The nearest folder holding orqsync.yaml: `start` (an absolute path) or one above it,
    up to the root of the filesystem; None when there is none."""
    folder = start
    while not os.path.isfile(os.path.join(folder, PROJECT_FILE)):
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent
    return folder


def load_project(directory: str) -> Settings:
    """Read the `orqsync.yaml` of the project `directory` is in (find_project); every problem
    is reported at once."""
    root = find_project(directory)
    path = os.path.join(root, PROJECT_FILE)
    doc = load(path, PROJECT_FILE)
    data = to_python(doc, doc.root)
    problems: list[Problem] = list(doc.problems)
    if doc.root is not None and not problems:
        if not isinstance(data, dict):
            problems.append(
                Problem(
                    PROJECT_FILE,
                    1,
                    1,
                    "the project file must be a mapping",
                    "start with `version: 1`",
                )
            )
        else:
            problems.extend(check(doc, data, "orqsync") or _outside(doc, data))
    elif doc.root is None and not problems:
        problems.append(Problem(PROJECT_FILE, 1, 1, "the file is empty", "start with `version: 1`"))
    if problems:
        raise ProblemsError(problems)
    assert isinstance(data, dict)
    api = data.get("api", {})
    policy = data.get("policy", {})
    defaults = Settings(root=root)
    return Settings(
        root=root,
        workspace=data.get("workspace", ""),
        base_url=str(api.get("base_url", defaults.base_url)).rstrip("/"),
        api_key_env=api.get("api_key_env", defaults.api_key_env),
        string_limit=api.get("string_limit", defaults.string_limit),
        metadata_style=api.get("metadata_style", defaults.metadata_style),
        parallelism=api.get("parallelism", defaults.parallelism),
        requests_per_minute=api.get("requests_per_minute", defaults.requests_per_minute),
        timeout_seconds=float(api.get("timeout_seconds", defaults.timeout_seconds)),
        max_attempts=api.get("max_attempts", defaults.max_attempts),
        unreachable_timeout_seconds=float(
            api.get("unreachable_timeout_seconds", defaults.unreachable_timeout_seconds)
        ),
        outage_timeout_seconds=float(
            api.get("outage_timeout_seconds", defaults.outage_timeout_seconds)
        ),
        emulator_evaluations=api.get("emulator_evaluations", ""),
        definitions=data.get("definitions", defaults.definitions),
        sources=tuple(data.get("sources", defaults.sources)),
        queues=tuple(data.get("queues", defaults.queues)),
        project_id=data.get("project_id", ""),
        reviews=_reviews(data["reviews"]) if "reviews" in data else None,
        state=data.get("state", defaults.state),
        metadata=MappingProxyType(normalize_metadata(data.get("metadata", {}))),
        max_removals=policy.get("max_removals", defaults.max_removals),
        owned_keys=tuple(policy.get("owned_keys", defaults.owned_keys)),
        id_format=data.get("id_format", defaults.id_format),
        locations=MappingProxyType(_locations(doc)),
    )


def _locations(doc: Document) -> dict[str, tuple[int | None, int | None]]:
    """Where each setting's value is: top-level names, and `reviews.NAME` and
    `reviews.keys.KEY` (the key's name) inside `reviews`."""
    found = {}
    for name, _, value in mapping_items(doc, doc.root):
        found[name] = position(value)
        if name != "reviews":
            continue
        for inner, _, setting in mapping_items(doc, value):
            found[f"reviews.{inner}"] = position(setting)
            if inner == "keys":
                for key, key_node, _ in mapping_items(doc, setting):
                    found[f"reviews.keys.{key}"] = position(key_node)
    return found
