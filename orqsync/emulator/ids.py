"""Ids the emulator makes: fresh ULIDs for new objects and stable ULID-shaped ids derived from a
name, for the objects that need an id the files do not give (definitions, stored annotations)."""

from __future__ import annotations

import hashlib
import os
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_ulid() -> str:
    """A ULID: 48 bits of milliseconds and 80 random bits in Crockford base32 (26 chars)."""
    return _encode((int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big"))


def stable_ulid(*parts: str) -> str:
    """A ULID-shaped id (26 Crockford base32 characters, the first one 0-7) that depends only on
    `parts`: the first 128 bits of their SHA-256. The same parts give the same id in every run."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return _encode(int.from_bytes(digest[:16], "big"))


def _encode(number: int) -> str:
    # 26 characters hold 130 bits; a 128-bit number leaves the top two at 0, so the first
    # character is 0-7 like every valid ULID.
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[number & 31])
        number >>= 5
    return "".join(reversed(chars))
