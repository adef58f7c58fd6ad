"""``agentstream alerts forward``: alerts → webhook, Slack or PagerDuty, by the tenant's routing
rules, minus what its silences cover, each alert at most once per destination.

- **Rules and silences** are the alerting records of the compacted policies topic
  (schemas/alerting.py), followed live: read to the end before the first alert, then polled
  between alert batches, so a silence written through the API applies to the next batch.
- **Silences** cover an alert when active at its detection time or at forwarding time: a backlog
  replayed after an outage stays silent if it was raised during the silence.
- **Once per destination**: a delivery ledger (``--ledger``, one JSON line per delivered
  (destination, alert) pair, fsynced before the offset is committed) is consulted before each
  post, so a restart after a partial fan-out, a redelivered record or a re-emitted alert id
  never posts twice to a destination that already accepted it. Every post also carries an
  ``Idempotency-Key`` header (and PagerDuty's ``dedup_key``) for the one window no client can
  close: a crash between the receiver's 2xx and the ledger write.
- **Offsets** are committed after every destination of the alert settled (accepted or rejected
  for good); when one stays unavailable after the retries the forwarder stops uncommitted, and
  a restart resumes at that alert without re-posting to the destinations already in the ledger.

The consumer is a chain of steps (decode -> route -> post -> commit, forward_steps.py) driven by
``schemas.step_driver.ChainDriver`` and rebuilt on each assignment; this module holds what
outlives a chain: the ledger, the rules follower and the counts. With ``forwarder_probe_port``
set it answers ``/healthz`` (its loop turns), ``/readyz`` (rules read, in its group, no
destination being retried) and ``/metrics`` (schemas/consumer_probes.py).

Several workers produce alerts into one partition at once, and on the embedded broker a fetch
can then skip a batch (schemas/offset_gaps.py): a skipped alert would be a missed page. Both
the alerts consumer and the rules follower read through an ``OffsetGapGuard``, which seeks a
partition back over a jump and reads it again; ``agentstream_alerts_forwarder_offset_gaps_total``
counts the alerts topic's jumps recovered and accepted (``…_policies_offset_gaps_total`` the rules').
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from agentstream.schemas import Codec, make_resolver, topic_name
from agentstream.schemas.alerting import AlertingBook, Destination, is_alerting_key
from agentstream.schemas.consumer_errors import DlqRatioGuard
from agentstream.schemas.consumer_probes import ConsumerProbes
from agentstream.schemas.offset_gaps import (GuardedConsumer, OffsetGapGuard, consumer_seek, guard_rebalance,
                                             process_gap_counts, start_positions)
from agentstream.schemas.step_driver import ChainDriver

from .alerts_io import _consumer
from .forward_steps import ForwardChain, ForwardIO, ForwardStats, WebhookUnavailable, build_forward_chain
from .settings import ProcessorsSettings

__all__ = ["AlertingFollower", "DeliveryLedger", "ForwardStats", "WebhookUnavailable", "forward"]

log = logging.getLogger("agentstream.alerts.forward")
LEDGER_DAYS = 35  # longer than the alerts topic keeps a record (30 days)

# One count per topic for the process: forward() and the follower are built more than once in a
# process (the CLI's helpers, tests). The rules' topic is compacted: on Kafka its compaction gaps
# (settled at every start) are no lost alert, so they are counted apart.
GAP_COUNTS = process_gap_counts("agentstream_alerts_forwarder")
RULES_GAP_COUNTS = process_gap_counts("agentstream_alerts_forwarder_policies")


class DeliveryLedger:
    """(destination id, alert id) pairs already accepted; append-only file, pruned on open."""

    def __init__(self, path: str | os.PathLike | None) -> None:
        self.path = Path(path) if path else None
        self.sent: dict[tuple[str, str], int] = {}
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        horizon = time.time() - LEDGER_DAYS * 86_400
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    d, a, t = json.loads(line)
                except (ValueError, TypeError):
                    continue  # a torn last line after a crash: that pair was never confirmed
                if t >= horizon:
                    self.sent[(d, a)] = t
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(json.dumps([d, a, t]) + "\n" for (d, a), t in self.sent.items()))
            os.replace(tmp, self.path)
        self._fh = open(self.path, "a", encoding="utf-8")  # closed in close()

    def __contains__(self, pair: tuple[str, str]) -> bool:
        return pair in self.sent

    def add(self, dest_id: str, alert_id: str) -> None:
        now = int(time.time())
        self.sent[(dest_id, alert_id)] = now
        if self.path is not None:
            self._fh.write(json.dumps([dest_id, alert_id, now]) + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self.path is not None:
            self._fh.close()


class AlertingFollower:
    """Folds the policies topic's alerting records into an ``AlertingBook``, from the start."""

    def __init__(self, settings: ProcessorsSettings) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.book = AlertingBook()
        name = topic_name("policies", settings.topic_prefix)
        self.consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers,
                                  "group.id": "agentstream-alerts-forward-rules",  # never committed
                                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        md = self.consumer.list_topics(name, timeout=10)
        parts = sorted(md.topics[name].partitions) if name in md.topics else [0]
        self.consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in parts])
        # Policies are written by the API and the CLI at once: a skipped rule or silence would
        # route or page wrongly until the next restart.
        self.gaps = OffsetGapGuard.from_settings(settings, RULES_GAP_COUNTS)
        self.gaps.assign(start_positions(self.consumer, [TopicPartition(name, p) for p in parts]))
        self._seek = consumer_seek(self.consumer)

    def catch_up(self, idle_s: float = 1.0, timeout_s: float = 30.0) -> None:
        """Reads until a poll of ``idle_s`` finds nothing (never to the high watermark: the
        embedded broker reports it short)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.poll(idle_s):
            pass

    def poll(self, timeout_s: float = 0.0) -> int:
        n = 0
        msgs = self.consumer.consume(500, timeout_s)
        admitted = self.gaps.admit(msgs, self._seek)
        for m in admitted:
            key = m.key()
            if m.error() is None and key is not None and is_alerting_key(key):
                if not self.book.apply(key, m.value()):
                    log.warning("skipping malformed alerting record at offset %s", m.offset())
                n += 1
            elif m.error() is None:
                n += 1
        # A batch held back for a re-read is no idle poll: catch_up reads on.
        return n + (len(msgs) - len(admitted))

    def close(self) -> None:
        self.consumer.close()


def forward(settings: ProcessorsSettings, *, static: Destination | None = None, tenant: str | None = None,
            max_retries: int = 6, group: str | None = None, stop_after: int = 0, client: Any = None,
            base_s: float = 0.5, ledger: str | os.PathLike[str] | None = None,
            idle_timeout: float | None = None) -> ForwardStats:
    """Forwards until ``stop_after`` deliveries (0: forever), ``idle_timeout`` seconds without an
    alert, or Ctrl-C. ``static``: one destination for every alert (``--webhook``) instead of the
    tenants' routing rules; silences apply either way. Raises ``WebhookUnavailable`` (a
    ``RuntimeError``) when a destination stays down, ``ConsumerCrash`` on a bug or a mostly
    undecodable topic; nothing from the failing alert on is committed."""
    stats = ForwardStats()
    probes = ConsumerProbes(settings.stuck_after_s,
                            lambda: {k: v for k, v in vars(stats).items() if isinstance(v, int)})
    if settings.forwarder_probe_port:
        # up before the rules are read: alive while catching up, ready only once consuming
        probes.serve(settings.forwarder_probe_host, settings.forwarder_probe_port)
    try:
        return _forward(settings, probes, stats, static, tenant, max_retries, group, stop_after, client,
                        base_s, ledger, idle_timeout)
    except Exception as exc:
        probes.failed = type(exc).__name__  # its text is in the log
        raise
    finally:
        probes.close()


def _forward(settings: ProcessorsSettings, probes: ConsumerProbes, stats: ForwardStats,
             static: Destination | None, tenant: str | None, max_retries: int, group: str | None,
             stop_after: int, client: Any, base_s: float, ledger: str | os.PathLike[str] | None,
             idle_timeout: float | None) -> ForwardStats:
    import httpx

    codec = Codec(make_resolver(settings.schema_registry_url))
    follower = AlertingFollower(settings)
    follower.catch_up()
    http = client or httpx.Client()
    book_ledger = DeliveryLedger(ledger)
    guard = DlqRatioGuard(settings.dlq_max_ratio, settings.dlq_window_records, settings.dlq_min_records)

    def build() -> ForwardChain:
        return build_forward_chain(ForwardIO(codec, follower.book, static, tenant, http, book_ledger, stats, guard,
                                             commit, driver.give_up, max_retries=max_retries, base_s=base_s))

    driver = ChainDriver(build, batch_size=50, wait_s=0.5, revoke_join_s=settings.broker_session_timeout / 2)
    gaps = OffsetGapGuard.from_settings(settings, GAP_COUNTS)
    on_assign, on_revoke = guard_rebalance(gaps, driver.on_assign, driver.on_revoke)
    c = _consumer(settings, group or f"{settings.app_id}-alerts-forwarder", True,
                  on_assign=on_assign, on_revoke=on_revoke)
    driver.consumer = GuardedConsumer(c, gaps)
    probes.driver = driver

    def commit(topic: str, partition: int, offset: int) -> None:
        from confluent_kafka import TopicPartition

        c.commit(offsets=[TopicPartition(topic, partition, offset + 1)], asynchronous=False)

    try:
        while not stop_after or stats.delivered < stop_after:
            follower.poll()  # a silence or rule written meanwhile applies to the next alerts
            # idle: nothing read for idle_timeout since the last alert or assignment (a slow
            # group join is not mistaken for an empty topic)
            if not driver.turn() and idle_timeout is not None and driver.idle_for() > idle_timeout:
                break
        driver.finish(join=True)  # what was read is forwarded and committed, as it would have been
    except KeyboardInterrupt:
        pass
    finally:
        driver.stopping = True
        driver.finish(join=False)  # after a failure or Ctrl-C: what was not committed is dropped
        log.info("forwarder stopped: %s; %.1fs blocked, %.1fs paused by backpressure or retries", stats,
                 driver.blocked_seconds, driver.paused_seconds)
        c.close()
        follower.close()
        book_ledger.close()
        if client is None:
            http.close()
    return stats
