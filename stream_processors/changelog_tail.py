"""Finishes faust's recovery of a table: reads each active changelog partition on from where
faust stopped until a fetch stays empty.

Faust recovers a table by reading its changelog up to the partition's high watermark. The
embedded broker (Tansu 0.6) reports that watermark as the last batch's base offset + 1, so
faust stopped after the first record of the last batch. The fleet agent writes every tenant a
batch touched at once, so a worker that took over a partition lost the newest state of all but
one of those tenants: a tenant $0.10 short of its daily budget started again from an older
spend, and the breach was never alerted. On Kafka the watermark is exact and the tail is empty;
reading it costs one idle wait per rebalance.

Runs on ``app.on_rebalance_complete``, which faust sends after recovery and before it resumes
the stream partitions, so the fleet agent never sees a partition before its tail is applied.
Anything faust fetched but had not applied yet is applied first (it is older than the tail),
and its recovery offsets are moved past the tail so a record it still holds is not applied
twice, out of order.
"""
from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace
from typing import Any, Mapping

from confluent_kafka import Consumer, KafkaError, TopicPartition

log = logging.getLogger(__name__)

# (topic, partition) -> first offset to read
Starts = Mapping[tuple[str, int], int]
TailRecord = tuple[str, int, int, bytes | None, bytes | None]  # topic, partition, offset, key, value


class TailReadError(RuntimeError):
    """The changelog tail could not be read within the timeout."""


def read_tail(bootstrap_servers: str, starts: Starts, idle_s: float = 0.5, timeout_s: float = 60.0
              ) -> list[TailRecord]:
    """Every record from each start offset until a poll of ``idle_s`` finds nothing, in offset
    order per partition. The idle wait starts once the consumer has been assigned and has had
    one fetch round; a broker that does not answer within ``timeout_s`` raises."""
    if not starts:
        return []
    c = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": "agentstream-changelog-tail",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 50, "enable.partition.eof": True,
                  # a start past what the broker calls the end is re-read from the start (what
                  # faust applied is skipped by offset), never skipped to the end
                  "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(t, p, max(o, 0)) for (t, p), o in starts.items()])
        out: list[TailRecord] = []
        pending_eof = set(starts)
        deadline = time.monotonic() + timeout_s
        idle_since = None
        while True:
            msgs = c.consume(500, 0.1)
            got = False
            for m in msgs:
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending_eof.discard((m.topic(), m.partition()))
                        continue
                    log.warning("changelog tail: %s", err)
                    continue
                got = True
                out.append((str(m.topic()), int(m.partition() or 0), int(m.offset() or 0), m.key(), m.value()))
            now = time.monotonic()
            if got or pending_eof:
                idle_since = None
                if now > deadline:
                    raise TailReadError(f"changelog tail not read within {timeout_s:.0f} s "
                                        f"(no answer for {sorted(pending_eof)})")
                continue
            # EOF is reported at the (short) watermark, so it only proves the fetcher has run;
            # the end is a quiet poll after it.
            idle_since = idle_since or now
            if now - idle_since >= idle_s:
                return out
    finally:
        c.close()


def apply_tail(table: Any, recovery: Any, records: list[TailRecord]) -> int:
    """Applies ``records`` through faust's own changelog path and moves its offsets past them;
    returns how many were applied (a record at or below faust's offset it had applied itself)."""
    offsets = recovery.active_offsets
    batch = []
    for topic, partition, offset, key, value in records:
        tp = _tp_for(recovery, table, topic, partition)
        seen = offsets.get(tp) if tp is not None else None
        if tp is None or (seen is not None and offset <= seen):
            continue
        # what apply_changelog_batch reads of an event: key, value, message.value/.partition
        batch.append(SimpleNamespace(key=key, value=value, message=SimpleNamespace(value=value, partition=partition)))
        offsets[tp] = offset
    if batch:
        table.apply_changelog_batch(batch)
    return len(batch)


def _tp_for(recovery: Any, table: Any, topic: str, partition: int) -> Any:
    for tp in recovery.actives_for_table.get(table, ()):
        if tp.topic == topic and tp.partition == partition:
            return tp
    return None


def install(app: Any, table: Any, bootstrap_servers: str, idle_s: float = 0.5) -> None:
    """Reads ``table``'s changelog tail on every rebalance, before the streams resume."""
    recovery = app.tables.recovery

    async def finish_recovery(sender: Any, **_: Any) -> None:
        tps = sorted(recovery.actives_for_table.get(table, ()))
        if not tps:
            return
        held = recovery.buffers.get(table) or []
        n_held = len(held)
        if held:
            table.apply_changelog_batch(list(held))
            held.clear()
        seen = recovery.active_offsets
        starts = {(tp.topic, tp.partition): 0 if seen.get(tp) is None else seen[tp] + 1 for tp in tps}
        loop = asyncio.get_running_loop()
        records = await loop.run_in_executor(None, read_tail, bootstrap_servers, starts, idle_s)
        n = apply_tail(table, recovery, records)
        if n_held or n:
            log.info("%s: changelog records past the reported watermark applied: %d fetched but not applied "
                     "by faust's recovery, %d more read", table.name, n_held, n)

    app.on_rebalance_complete.connect(finish_recovery)
