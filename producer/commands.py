"""Remote enforcement: reads the commands topic for this process's live runs.

No consumer group per agent: the listener assigns every partition of the commands topic
directly, starting at the end, and keeps no committed offsets. Commands are keyed by run_id;
a command for a run this process does not have live is ignored. Because Tansu may report a
short end offset, old commands can be re-read at start: they are ignored the same way.
The command is applied by the run at its next step (``Run._gate_check``).

Processors workers and the API both write commands, and on the embedded broker a fetch can skip
a batch when two producers write one partition at once (schemas/offset_gaps.py): a skipped STOP
leaves a runaway run running. Every message is read through an ``OffsetGapGuard``, which seeks
a partition back over a jump and reads it again (``CommandListener.gaps.counts``).
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any, Callable, Self

from agentstream.schemas.offset_gaps import OffsetGapGuard, consumer_seek

log = logging.getLogger("agentstream.producer")


def assign_only_conf(bootstrap_servers: str, what: str, offset_reset: str, session_timeout_ms: int,
                     client_conf: dict[str, str] | None = None) -> dict[str, Any]:
    """The librdkafka conf of the SDK's own readers (commands, policies): they assign partitions
    and commit nothing."""
    return {
        "bootstrap.servers": bootstrap_servers,
        # Required by the client even though no group is joined (assign, never subscribe).
        "group.id": f"agentstream-sdk-{what}-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "session.timeout.ms": session_timeout_ms,
        "auto.offset.reset": offset_reset,
        "logger": logging.getLogger("agentstream.producer.kafka"),
        "client.id": f"agentstream-sdk-{what}",
        **(client_conf or {}),
    }


class ReaderThread:
    """A daemon thread reading a topic with its own consumer (``_read``) until ``stop()``: the
    SDK's own readers. Nothing in it ever raises into the agent: a consumer that cannot be made,
    or a bug while reading, is logged and ends the reading."""

    def __init__(self, name: str, what: str, conf: dict[str, Any], gap_window_s: float = 0.5,
                 gap_rechecks: int = 2) -> None:
        self._what, self._conf = what, conf
        self.gaps = OffsetGapGuard(gap_window_s, gap_rechecks)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        from confluent_kafka import Consumer

        try:
            consumer = Consumer(self._conf)
        except Exception:
            log.exception("agentstream: %s could not start", self._what)
            return
        try:
            self._read(consumer)
        except Exception:  # a bug, not a broker outage: stop reading, loudly, not in a loop
            log.exception("agentstream: %s stopped", self._what)
        finally:
            try:
                consumer.close()
            except Exception:  # noqa: BLE001 - closing at shutdown: nothing left to report to
                pass

    def _read(self, consumer: Any) -> None:
        raise NotImplementedError

    def _poll(self, consumer: Any, timeout: float) -> list[Any]:
        """``consumer.poll`` read through the offset-gap guard: the message in a list, or nothing
        when none came or it came past offsets of its partition not read yet (the partition is
        sought back to read them first)."""
        msg = consumer.poll(timeout)
        return [] if msg is None else self.gaps.admit([msg], consumer_seek(consumer))


class CommandListener(ReaderThread):
    def __init__(self, bootstrap_servers: str, topic: str, tenant_id: str,
                 live: dict[str, Any], decode: Callable[[bytes], dict[str, Any]],
                 session_timeout_ms: int, client_conf: dict[str, str] | None = None, gap_window_s: float = 0.5,
                 gap_rechecks: int = 2) -> None:
        self.topic = topic
        self.tenant_id = tenant_id
        self.live = live
        self.decode = decode
        self.received = 0
        self.applied = 0
        self.ignored = 0
        self.errors = 0
        self.ready = threading.Event()
        super().__init__("agentstream-commands", "command listener", assign_only_conf(
            bootstrap_servers, "commands", "latest", session_timeout_ms, client_conf), gap_window_s, gap_rechecks)

    def _assign(self, consumer: Any) -> bool:
        from confluent_kafka import OFFSET_END, TopicPartition

        md = consumer.list_topics(self.topic, timeout=2.0)
        t = md.topics.get(self.topic)
        if t is None or t.error is not None or not t.partitions:
            return False
        consumer.assign([TopicPartition(self.topic, p, OFFSET_END) for p in t.partitions])
        self.gaps.assign((self.topic, p, None) for p in t.partitions)  # the end: not known yet
        return True

    def _read(self, consumer: Any) -> None:
        from confluent_kafka import KafkaException

        while not self._stop.is_set() and not self.ready.is_set():
            try:
                if self._assign(consumer):
                    self._wait_positions(consumer)
                    self.ready.set()
            except KafkaException:  # broker or topic not there yet: retry
                self._stop.wait(1.0)
        while not self._stop.is_set():
            for msg in self._poll(consumer, 0.2):
                if msg.error() is None:
                    self._handle(msg.key(), msg.value())

    def _wait_positions(self, consumer: Any) -> None:
        # OFFSET_END is resolved on the first fetch; until every partition has a concrete
        # position, a command produced now could land before the resolved end and be skipped.
        deadline = time.monotonic() + 10.0
        while not self._stop.is_set() and time.monotonic() < deadline:
            for msg in self._poll(consumer, 0.1):
                if msg.error() is None:
                    self._handle(msg.key(), msg.value())
            if all(tp.offset >= 0 for tp in consumer.position(consumer.assignment())):
                return

    def _handle(self, key: bytes | None, value: bytes | None) -> None:
        self.received += 1
        run_id = key.decode("utf-8", "replace") if key else None
        if run_id is None or run_id not in self.live:
            self.ignored += 1
            return
        try:
            if value is None:
                raise ValueError("a command without a value")
            cmd = self.decode(value)
        except Exception:  # noqa: BLE001 - undecodable command: not ours to DLQ, just skip it
            self.errors += 1
            return
        rid = cmd.get("run_id")
        run = self.live.get(rid) if isinstance(rid, str) else None
        if run is None or cmd.get("tenant_id") != self.tenant_id:
            self.ignored += 1
            return
        run.apply_command(cmd)
        self.applied += 1
