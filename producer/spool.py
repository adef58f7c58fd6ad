"""A bounded, append-only disk spool of framed records, replayed in order.

Layout: ``<spool_dir>/<pid>-<rand>/seg-<first w>.log`` plus a ``.pos`` sidecar holding the byte
offset already replayed. ``w`` is the transport's monotonically increasing record number, so
records that failed in flight (older) and records spooled while offline (newer) can sit in
different segments and still be replayed in their original order by a merge on ``w``.

Each process owns its own directory (held with ``flock``) so forked or concurrent agents never
interleave writes; a directory whose owner died is adopted and drained first.
"""
from __future__ import annotations

import fcntl
import heapq
import os
import struct
import uuid
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO

_REC = struct.Struct(">IIQH")  # body length, crc32(body), w, key length; body = key + value
_POS = struct.Struct(">Q")


@dataclass
class _Segment:
    path: str
    first_w: int
    last_w: int
    size: int
    pos: int = 0
    buf: list[tuple[int, int, bytes, bytes]] = field(default_factory=list)  # (w, end, key, val)

    @property
    def pos_path(self) -> str:
        return self.path + ".pos"


class SpoolDir:
    """One directory's segments; not thread-safe (the transport thread owns it)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.segments: list[_Segment] = []
        for name in sorted(os.listdir(path)):
            if name.startswith("seg-") and name.endswith(".log"):
                self._load(os.path.join(path, name))

    def _load(self, path: str) -> None:
        pos = 0
        if os.path.exists(path + ".pos"):
            with open(path + ".pos", "rb") as f:
                data = f.read(8)
                pos = _POS.unpack(data)[0] if len(data) == 8 else 0
        size = os.path.getsize(path)
        first = int(os.path.basename(path)[4:-4])
        seg = _Segment(path, first, first, size, pos)
        if pos >= size:
            self._drop(seg)
            return
        self.segments.append(seg)

    def bytes_used(self) -> int:
        return sum(s.size - s.pos for s in self.segments)

    def empty(self) -> bool:
        return not self.segments

    def _fill(self, seg: _Segment, want: int) -> None:
        if len(seg.buf) >= want:
            return
        start = seg.buf[-1][1] if seg.buf else seg.pos
        with open(seg.path, "rb") as f:
            f.seek(start)
            while len(seg.buf) < want:
                head = f.read(_REC.size)
                if len(head) < _REC.size:
                    break
                n, crc, w, klen = _REC.unpack(head)
                body = f.read(n)
                if len(body) < n or zlib.crc32(body) != crc:
                    break  # torn tail from a crash: everything before it is intact
                start += _REC.size + n
                seg.buf.append((w, start, body[:klen], body[klen:]))

    def peek(self, limit: int) -> list[tuple[int, bytes, bytes, _Segment, int]]:
        """The next ``limit`` records in ``w`` order across segments (not yet committed)."""
        for s in self.segments:
            self._fill(s, limit)
        heads = [(s.buf[0][0], i, 0) for i, s in enumerate(self.segments) if s.buf]
        heapq.heapify(heads)
        out: list[tuple[int, bytes, bytes, _Segment, int]] = []
        while heads and len(out) < limit:
            w, i, j = heapq.heappop(heads)
            s = self.segments[i]
            _, end, key, val = s.buf[j]
            out.append((w, key, val, s, end))
            if j + 1 < len(s.buf):
                heapq.heappush(heads, (s.buf[j + 1][0], i, j + 1))
        return out

    def commit(self, taken: list[tuple[int, bytes, bytes, _Segment, int]]) -> None:
        """Marks records returned by ``peek`` as replayed (a prefix of each segment)."""
        ends: dict[int, tuple[_Segment, int, int]] = {}
        for _, _, _, seg, end in taken:
            prev = ends.get(id(seg))
            ends[id(seg)] = (seg, end, (prev[2] if prev else 0) + 1)
        for seg, end, count in ends.values():
            seg.pos = end
            del seg.buf[:count]
            if seg.pos >= seg.size:
                self._drop(seg)
            else:
                with open(seg.pos_path + ".tmp", "wb") as f:
                    f.write(_POS.pack(seg.pos))
                os.replace(seg.pos_path + ".tmp", seg.pos_path)
        self.segments = [s for s in self.segments if s.pos < s.size]

    def _tail(self) -> _Segment | None:
        return self.segments[-1] if self.segments else None

    def _drop(self, seg: _Segment) -> None:
        for p in (seg.path, seg.pos_path):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


class Spool:
    """The process's own spool directory plus any orphaned ones it adopted."""

    def __init__(self, root: str, max_bytes: int, segment_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        os.makedirs(root, exist_ok=True)
        self.own_path = os.path.join(root, f"{os.getpid()}-{uuid.uuid4().hex[:8]}")
        os.makedirs(self.own_path)
        self._lock_fd = os.open(os.path.join(self.own_path, "lock"), os.O_CREAT | os.O_RDWR)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.own = SpoolDir(self.own_path)
        self.adopted: list[tuple[SpoolDir, int]] = []
        self._adopt_orphans()
        self._used = self.own.bytes_used() + sum(d.bytes_used() for d, _ in self.adopted)
        self._wfile: BinaryIO | None = None

    def _adopt_orphans(self) -> None:
        for name in sorted(os.listdir(self.root)):
            path = os.path.join(self.root, name)
            if path == self.own_path or not os.path.isdir(path):
                continue
            fd = os.open(os.path.join(path, "lock"), os.O_CREAT | os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)  # its owner is alive
                continue
            d = SpoolDir(path)
            if d.empty():
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
                _remove_dir(path)
            else:
                self.adopted.append((d, fd))

    def bytes_used(self) -> int:
        return self._used

    def empty(self) -> bool:
        return self.own.empty() and all(d.empty() for d, _ in self.adopted)

    def append(self, records: list[tuple[int, bytes, bytes]]) -> int:
        """Appends records (ascending ``w``); returns how many fit under ``max_bytes``."""
        written = 0
        tail = self.own._tail()
        for w, key, value in records:
            n = _REC.size + len(key) + len(value)
            if self._used + n > self.max_bytes:
                break
            if tail is None or tail.size >= self.segment_bytes or w <= tail.last_w:
                tail = self._new_segment(w)
            body = key + value
            if self._wfile is None or self._wfile.name != tail.path:
                self._close_writer()
                self._wfile = open(tail.path, "ab")
            self._wfile.write(_REC.pack(len(body), zlib.crc32(body), w, len(key)))
            self._wfile.write(body)
            tail.size += n
            tail.last_w = w
            self._used += n
            written += 1
        if self._wfile is not None:
            self._wfile.flush()
        return written

    def _new_segment(self, w: int) -> _Segment:
        path = os.path.join(self.own_path, f"seg-{w:020d}.log")
        seg = _Segment(path, w, w, 0)
        open(path, "ab").close()
        self.own.segments.append(seg)
        return seg

    def _close_writer(self) -> None:
        if self._wfile is not None:
            self._wfile.close()
            self._wfile = None

    def peek(self, limit: int):
        """The oldest records: adopted directories first (older processes), then our own."""
        self._close_writer_if_drained()
        while self.adopted:
            d, fd = self.adopted[0]
            recs = d.peek(limit)
            if recs:
                return d, recs
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            _remove_dir(d.path)
            self.adopted.pop(0)
        if self._wfile is not None:
            self._wfile.flush()
        return self.own, self.own.peek(limit)

    def commit(self, d: SpoolDir, taken) -> None:
        before = d.bytes_used()
        if d is self.own and self._wfile is not None and any(
                seg.path == self._wfile.name and end >= seg.size for *_, seg, end in taken):
            self._close_writer()
        d.commit(taken)
        self._used -= before - d.bytes_used()

    def _close_writer_if_drained(self) -> None:
        if self._wfile is not None and not os.path.exists(self._wfile.name):
            self._close_writer()

    def close(self, remove_if_empty: bool = True) -> None:
        self._close_writer()
        for _d, fd in self.adopted:
            os.close(fd)
        if remove_if_empty and self.own.empty():
            _remove_dir(self.own_path)
        try:
            os.close(self._lock_fd)
        except OSError:
            pass


def _remove_dir(path: str) -> None:
    for name in os.listdir(path):
        try:
            os.unlink(os.path.join(path, name))
        except OSError:
            pass
    try:
        os.rmdir(path)
    except OSError:
        pass
