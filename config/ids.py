"""Random ids for every request and decision, without a system call each.

Each execute call takes two ids (the request id, the execution id); `uuid.uuid4()` reads
16 bytes with its own `getrandom` system call each time, which was about 2 % of the CPU of a
call. The same kernel randomness is read here 4 KiB at a time and handed out 16 bytes at a
time, so a process makes one system call per 256 ids. A forked child starts with an empty
pool: it must never hand out the bytes its parent will also hand out.
"""

from __future__ import annotations

import os
import threading

_CHUNK = 4096
_ID_BYTES = 16


class _RandomPool:
    """16-byte values of kernel randomness (os.urandom), read in chunks; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._offset = 0

    def take(self) -> bytes:
        """The next 16 random bytes, never handed out before (in this process)."""
        with self._lock:
            if self._offset >= len(self._buffer):
                self._buffer = os.urandom(_CHUNK)
                self._offset = 0
            start = self._offset
            self._offset = start + _ID_BYTES
        return self._buffer[start : start + _ID_BYTES]

    def forget(self) -> None:
        """Drop what is left (in a forked child: the parent hands those bytes out too)."""
        self._lock = threading.Lock()
        self._buffer = b""
        self._offset = 0


_pool = _RandomPool()
os.register_at_fork(after_in_child=_pool.forget)


def _random_v4() -> str:
    """16 random bytes marked as a version 4, RFC 4122 UUID, as 32 hex digits."""
    raw = bytearray(_pool.take())
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


def new_uuid() -> str:
    """A random (version 4) UUID in its canonical text form, as `str(uuid.uuid4())`."""
    text = _random_v4()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def new_hex_id() -> str:
    """32 random hex digits, as `uuid.uuid4().hex` (a request id)."""
    return _random_v4()
