"""Files written so that a crash leaves the old content or the new, never half of either."""

from __future__ import annotations

import os
import tempfile


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def atomic_write(path: str, data: bytes) -> None:
    """Replace `path` with `data` in one step (temp file, fsync, rename): readers see the old
    file or the new one, never a part."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def fsync_dir(directory: str) -> None:
    """Make a new file's directory entry durable (best effort: some systems refuse)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
