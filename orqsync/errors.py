"""The one family of errors a user can see.

    OrqsyncError               exit 1 unless a subclass says otherwise
    ├── ProblemsError          one or more located problems in the user's files (exit 1)
    ├── ApiError               a request orq.ai refused or that never got an answer (exit 1)
    │   └── ApiHaltError       no request can succeed now: a rejected key (exit 1), an
    │                          unreachable server (exit 1), a lasting outage (exit 3)
    ├── InterruptedTwiceError  a second Ctrl-C while an apply finished its requests (exit 3)
    ├── StalePlanError         a saved plan no longer matches the state (exit 4)
    ├── RemovalBudgetError     the plan removes more than policy.max_removals (exit 5)
    └── StateError             a missing, corrupt, locked or newer-format state file (exit 1)

Everything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

from orqsync.text import plural

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_PARTIAL = 3
EXIT_STALE = 4
EXIT_BUDGET = 5


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a user's file, with where it is and what to do."""

    path: str
    line: int | None  # 1-based
    column: int | None  # 1-based
    message: str
    hint: str = ""
    severity: str = "error"  # or "warning": read as written down in the hint, and said
    # Warnings of one kind are counted past the first few (review/render.py warnings_text)
    # though their messages differ; "" groups them by message and hint.
    kind: str = ""

    def render(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        label = "warning: " if self.severity == "warning" else ""
        text = f"{where}: {label}{self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.path, self.line or 0, self.column or 0, self.message)


class OrqsyncError(Exception):
    """An error the user can act on; `hint` says what to do next."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class ProblemsError(OrqsyncError):
    """Problems found in the user's files; all of them, not the first."""

    def __init__(self, problems: list[Problem], warnings: list[Problem] | None = None) -> None:
        self.problems = sorted(problems, key=Problem.sort_key)
        self.warnings = sorted(warnings or [], key=Problem.sort_key)
        count = len(self.problems)
        super().__init__(f"{plural(count, 'problem', grouped=False)} found; nothing was sent")

    def render(self) -> str:
        found = sorted(self.problems + self.warnings, key=Problem.sort_key)
        lines = [p.render() for p in found]
        lines.append(f"error: {self.message}")
        return "\n".join(lines)


class ApiError(OrqsyncError):
    """orq.ai refused a request, or it never got an answer."""

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        path: str = "",
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        hint: str = "",
        cause: str = "",
    ) -> None:
        super().__init__(message, hint)
        self.method = method
        self.path = path
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        # what went wrong without the request's path ("HTTP 404: ..."), to group refusals by
        self.cause = cause or message


class ApiHaltError(ApiError):
    """No request can succeed now, so an apply stops sending at once.

    `reason` is what the apply history and the report call the stop: "unauthorized",
    "unreachable" or "outage". An outage leaves work that a later run finishes (exit 3).
    """

    def __init__(self, reason: str, message: str, *, hint: str = "", cause: str = "") -> None:
        super().__init__(message, hint=hint, cause=cause)
        self.reason = reason
        self.exit_code = EXIT_PARTIAL if reason == "outage" else EXIT_ERROR


class DeadlineReached(Exception):
    """A request not sent because its turn came after the apply's deadline (--max-duration):
    not a failure, the next apply sends it. `waiting`: the failure it was to be retried after
    (unreachable, throttled, a 5xx), when it was."""

    def __init__(self, waiting: str = "") -> None:
        super().__init__(waiting)
        self.waiting = waiting


class InterruptedTwiceError(OrqsyncError):
    """Ctrl-C during an apply's wait for the requests in flight: it stops at once (exit 3)."""

    exit_code = EXIT_PARTIAL


class StalePlanError(OrqsyncError):
    exit_code = EXIT_STALE


class RemovalBudgetError(OrqsyncError):
    exit_code = EXIT_BUDGET


class StateError(OrqsyncError):
    """The state file cannot be used as it is."""
