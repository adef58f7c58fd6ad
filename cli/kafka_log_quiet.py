"""Keeps librdkafka from flooding the terminal of a client command (`alerts tail`, `policy set`):
when the broker goes away, its C threads write a "Connect ... failed: Connection refused" line to
stderr every few hundred milliseconds for as long as the command runs (273 lines in 15 s).

librdkafka writes to file descriptor 2 directly, past Python's sys.stderr, so the descriptor is
pointed at a pipe and a thread passes the lines on: every line that is not librdkafka's goes
through unchanged; a librdkafka message is shown the first time, its repeats (same facility and
text once timings and counts are taken out) are counted, and the count is said once at exit.
"""
from __future__ import annotations

import atexit
import os
import re
import threading

# %<level>|<timestamp>|<facility>|<client>| <message>
_RDKAFKA = re.compile(rb"^%(\d)\|[\d.]+\|([A-Z_]+)\|[^|]*\|\s*(.*)$")
# what varies between repeats of one message: durations, counts, thread names and ports
_VARIES = re.compile(rb"\(after \d+ms.*\)\s*$|\[thrd:[^\]]*\]|\d+")


# which of the client's broker threads says it ("GroupCoordinator: h:p: ", "h:p/bootstrap: ",
# "h:p/1: "): one broker going away is one message, whichever thread notices first
_WHO = re.compile(rb"^(?:#: )?(?:GroupCoordinator: )?[^\s:]*:#(?:/[^\s:]+)?: ")


def message_key(line: bytes) -> bytes | None:
    """The identity of a librdkafka log line (None for any other line)."""
    m = _RDKAFKA.match(line.rstrip(b"\n"))
    if m is None:
        return None
    return m.group(2) + b"|" + _WHO.sub(b"", _VARIES.sub(b"#", m.group(3)))


class QuietKafkaLog:
    def __init__(self, fd: int = 2) -> None:
        self.fd = fd
        self.seen: set[bytes] = set()
        self.suppressed = 0
        self._out = -1
        self._thread: threading.Thread | None = None

    def filter_line(self, line: bytes) -> bytes | None:
        key = message_key(line)
        if key is None:
            return line
        if key in self.seen:
            self.suppressed += 1
            return None
        self.seen.add(key)
        return line

    def start(self) -> "QuietKafkaLog":
        read_end, write_end = os.pipe()
        self._out = os.dup(self.fd)
        os.dup2(write_end, self.fd)
        os.close(write_end)
        self._thread = threading.Thread(target=self._pump, args=(read_end,), daemon=True,
                                        name="kafka-log-quiet")
        self._thread.start()
        atexit.register(self.stop)
        return self

    def _pump(self, read_end: int) -> None:
        with os.fdopen(read_end, "rb", buffering=0) as src:
            pending = b""
            while chunk := src.read(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    shown = self.filter_line(line + b"\n")
                    if shown is not None:
                        os.write(self._out, shown)
            if pending:
                os.write(self._out, pending)

    def stop(self) -> None:
        if self._thread is None:
            return
        import sys

        sys.stderr.flush()
        os.dup2(self._out, self.fd)  # closes the pipe's last write end: the pump drains and ends
        self._thread.join(2)
        self._thread = None
        if self.suppressed:
            os.write(self._out, f"agentstream: {self.suppressed} repeated Kafka client messages "
                                "were not shown\n".encode())
