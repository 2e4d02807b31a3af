"""The state lock: one writer at a time, and a name for whoever holds it.

The lock is a file beside the state (`state.json.lock`), created only if it does not exist
and whole from the start, holding who took it, where, for what and when. A second writer
fails at once with those details. A lock left by a process that died is released by
`orqsync unlock LOCK_ID`, never silently broken.
"""

from __future__ import annotations

import datetime
import getpass
import json
import os
import socket
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from orqsync.errors import OrqsyncError, StateError
from orqsync.state.provenance import ci_run_url


@dataclass(frozen=True, slots=True)
class LockInfo:
    id: str
    operation: str
    who: str
    host: str
    pid: int
    created: str
    ci_run: str = ""

    def describe(self) -> str:
        ci = f", CI run {self.ci_run}" if self.ci_run else ""
        return (
            f"{self.who} on {self.host} (pid {self.pid}{ci}) holds it for `{self.operation}` "
            f"since {self.created}; lock id {self.id}"
        )


def lock_path(state_path: str) -> str:
    return state_path + ".lock"


def _who() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def read_lock(state_path: str) -> LockInfo | None:
    """Who holds the lock, or None when nobody does."""
    try:
        with open(lock_path(state_path), encoding="utf-8") as handle:
            data = json.load(handle)
        return LockInfo(**data)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):
        return LockInfo("unreadable", "?", "?", "?", 0, "?")


@contextmanager
def state_lock(
    state_path: str, operation: str, environ: Mapping[str, str] | None = None
) -> Iterator[LockInfo]:
    """Hold the state lock for the duration of the block; fail fast if it is taken."""
    env = os.environ if environ is None else environ
    info = LockInfo(
        id=str(uuid.uuid4()),
        operation=operation,
        who=env.get("GITHUB_ACTOR", "") or _who(),
        host=socket.gethostname(),
        pid=os.getpid(),
        created=datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        ci_run=ci_run_url(env),
    )
    path = lock_path(state_path)
    content = json.dumps(asdict(info)).encode("utf-8")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    try:
        _create(path, content)
    except FileExistsError:
        holder = read_lock(state_path)
        if holder is None or not _died_here(holder):
            held_by = holder.describe() if holder else "another process"
            raise StateError(
                f"the state is locked: {held_by}",
                "wait for that run to finish; if it died, release the lock with "
                f"`orqsync unlock {holder.id if holder else 'LOCK_ID'}`",
            ) from None
        # The holder was a process on this machine that no longer runs (killed, crashed):
        # its lock protects nothing. Take it over; its journal is finished by this run.
        os.unlink(path)
        _create(path, content)
    try:
        yield info
    finally:
        current = read_lock(state_path)
        if current is not None and current.id == info.id:
            os.unlink(path)


def _create(path: str, content: bytes) -> None:
    """Create the lock file `path` holding `content`, whole from the first moment: the content
    goes to a temporary file, which is then hard-linked to the lock's name (failing with
    FileExistsError when the lock exists). A lock created empty and then written would, for a
    moment, name no holder to a second run reading it. Where the file system has no hard
    links, the lock is created empty and written at once."""
    directory = os.path.dirname(path) or "."
    fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        _write(fd, content)
        os.chmod(temporary, 0o644)
        try:
            os.link(temporary, path)
            return
        except FileExistsError:
            raise
        except OSError:
            pass  # no hard links on this file system
    finally:
        os.unlink(temporary)
    _write(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), content)


def _write(fd: int, content: bytes) -> None:
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())


def _died_here(holder: LockInfo) -> bool:
    """True when the holder ran on this host and its process is gone."""
    if holder.host != socket.gethostname() or holder.pid <= 0 or holder.pid == os.getpid():
        return False
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    return False


def unlock(state_path: str, lock_id: str) -> LockInfo:
    """Release a stuck lock, only when `lock_id` names it."""
    holder = read_lock(state_path)
    if holder is None:
        raise OrqsyncError("the state is not locked", "nothing to do")
    if holder.id != lock_id:
        raise OrqsyncError(
            f"lock id {lock_id} does not match the lock: {holder.describe()}",
            "pass the lock id shown in the error of the blocked command",
        )
    os.unlink(lock_path(state_path))
    return holder
