"""The raw loop's per-run detector state: a dict per owned raw partition, backed by a compacted
changelog with the same partition numbers as raw, restored on assignment.

Keys are ``schemas.run_keys.run_key(tenant, run)`` (``Chain.detect`` builds them; nothing else
does): run ids are the client's choice (OTLP: the trace id) and two tenants may share one, so a
state keyed by the run id alone let one tenant's events count in, end, or mask another's run.

Upgrade from the run-id-only keys an older version wrote: such a key has no ``SEP`` byte (0xFF,
which UTF-8 never contains, while every current key does), and its state cannot be given to a
tenant (nothing in it says whose it is; handing it to the first tenant to send that run id again
would be the same leak). So ``restore`` deletes it (a tombstone in the changelog, sent with the
next batch's outputs) and lists it in ``legacy``: the raw loop hands those to the eviction
bookkeeping as dropped states, so a run in flight across the upgrade goes on with a fresh
state marked as begun mid-run (``run_eviction.py``: its loop and budget counts start from zero,
an approval it got before the upgrade is not demanded of its next tool call).
"""
from __future__ import annotations

import time
import uuid

from agentstream.schemas.run_keys import SEP

from .emitter import Emitter
from .records import OutRecord
from .settings import ProcessorsSettings


class RunStateStore:
    def __init__(self, settings: ProcessorsSettings, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self.parts: dict[int, dict[bytes, bytes]] = {}
        self.pending: list[OutRecord] = []
        # partition -> run-id-only keys the last restore found and deleted (the raw loop takes them)
        self.legacy: dict[int, list[bytes]] = {}

    def get(self, partition: int, key: bytes) -> bytes | None:
        d = self.parts.get(partition)
        return None if d is None else d.get(key)

    def put(self, partition: int, key: bytes, value: bytes | None) -> None:
        d = self.parts.setdefault(partition, {})
        if value is None:
            d.pop(key, None)
        else:
            d[key] = value
        self.pending.append(OutRecord(self.topic, key, value, partition=partition))

    def drain(self) -> list[OutRecord]:
        out, self.pending = self.pending, []
        return out

    def drop(self, partitions: list[int]) -> None:
        for p in partitions:
            self.parts.pop(p, None)
            self.legacy.pop(p, None)

    def forget_legacy(self, partitions: list[int]) -> int:
        """Deletes the restored states of ``partitions`` kept under the run id alone (see the
        module's note); returns how many."""
        n = 0
        for p in partitions:
            old = [k for k in self.parts.get(p, ()) if SEP not in k]
            for k in old:
                self.put(p, k, None)
            if old:
                self.legacy.setdefault(p, []).extend(old)
            n += len(old)
        return n

    def restore(self, emitter: Emitter, partitions: list[int], timeout: float = 120.0) -> int:
        """Loads the given partitions from the changelog; returns how many records were read."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        if not partitions:
            return 0
        marker = b"\x00restore-marker-" + uuid.uuid4().hex.encode()
        emitter.produce_all(OutRecord(self.topic, marker, None, partition=p) for p in partitions)
        emitter.flush_sync(30.0)
        c = Consumer({"bootstrap.servers": self.settings.bootstrap_servers,
                      "group.id": f"{self.settings.app_id}-restore-{uuid.uuid4().hex[:8]}",
                      "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        pending = set(partitions)
        n = 0
        try:
            c.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
            deadline = time.monotonic() + timeout
            while pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"run-state restore of partitions {sorted(pending)} did not reach "
                                       f"its marker in {timeout}s")
                for m in c.consume(5000, 0.5):
                    p, key, value = m.partition(), m.key(), m.value()
                    if m.error() is not None or p not in pending or key is None:
                        continue  # every record this store writes has a key
                    if key == marker:
                        pending.discard(p)
                        continue
                    n += 1
                    d = self.parts.setdefault(p, {})
                    if value is None:
                        d.pop(key, None)
                    else:
                        d[key] = value
        finally:
            c.close()
        self.forget_legacy(partitions)
        return n
