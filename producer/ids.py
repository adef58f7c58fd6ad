"""Random (version 4) UUID strings for run ids and event-id seeds, without a syscall per id.

``uuid.uuid4()`` reads 16 bytes with one ``getrandom`` call, and CPython releases the GIL
around it. With the transport threads of a few tracers waiting for the GIL, each release
handed it away and the agent's thread waited to get it back: two ids per run were ~30 % of the
agent thread's wall time in bench/e2e_sdk.py with 12 tracers. Here one ``os.urandom`` read
makes ``_BATCH`` ids at once (the same CSPRNG, the same 122 random bits per id; ids need
uniqueness and unpredictability, nothing else).

Fork: a child must never hand out ids its parent may also hand out, so the child drops the
pool it inherited (``os.register_at_fork``, as the transport does for its producer).
"""
from __future__ import annotations

import os
import threading

_BATCH = 256  # ids per os.urandom read (4 KiB)

_pool: list[str] = []
_lock = threading.Lock()


def format_uuid4(raw: bytes) -> list[str]:
    """Formats ``raw`` (a multiple of 16 bytes) as RFC 4122 version-4 UUID strings."""
    b = bytearray(raw)
    b[6::16] = bytes(x & 0x0F | 0x40 for x in b[6::16])  # version 4
    b[8::16] = bytes(x & 0x3F | 0x80 for x in b[8::16])  # variant 10xx
    # hex in dash-separated groups of 4 digits, 40 characters per id: "g0-g1-g2-...-g7-";
    # the UUID is g0g1-g2-g3-g4-g5g6g7 (four slices, ~35 % cheaper than five and an f-string)
    h = b.hex("-", 2)
    return [h[i:i + 4] + h[i + 5:i + 29] + h[i + 30:i + 34] + h[i + 35:i + 39]
            for i in range(0, len(h), 40)]


def uuid4_str() -> str:
    """``str(uuid.uuid4())``, from the pool. Thread-safe: ``list.pop`` is atomic, and an id
    leaves the pool exactly once."""
    while True:
        try:
            return _pool.pop()
        except IndexError:
            with _lock:
                if not _pool:
                    _pool.extend(format_uuid4(os.urandom(16 * _BATCH)))


def _after_fork_in_child() -> None:
    global _lock
    _pool.clear()
    _lock = threading.Lock()  # another thread may have held it at the fork


os.register_at_fork(after_in_child=_after_fork_in_child)
