"""The faust-streaming app around the batch core in ``chain.py``.

Design for throughput (see docs/processors.md): the raw topic is NOT read through a faust stream;
faust's per-message path alone tops out at a few thousand records/s here. ``raw_loop.RawLoop``
(a service of this app) reads raw with confluent-kafka in batches, runs the whole chain on each
batch, produces through one confluent-kafka producer and commits only after every output is
acknowledged. Per-run detector state is kept per raw partition with its own compacted changelog.
faust keeps what is not per-event: the fleet agent (tenant spend windows, drift) over the small
per-batch fleet deltas, with its changelog-backed table; the web server. Policies are followed by
every worker from the policies topic (policy_follower.py).
"""
from __future__ import annotations

import logging
from typing import Any, Mapping, cast

import faust
from faust.tables.manager import TableManager

from agentstream.schemas import POLICY, Codec, make_resolver, topic_name

from . import changelog_tail
from .chain import Chain
from .emitter import Emitter
from .metrics import ProcessorMetrics
from .policies import PolicyBook
from .policy_follower import PolicyCopy, PolicyFollower
from .raw_loop import RawLoop
from .records import InRecord
from .redaction.engine import Redactor
from .settings import ProcessorsSettings

log = logging.getLogger("agentstream.processors")


def in_record(m: Any) -> InRecord:
    """A faust message as the chain's record: faust gives headers as a list or a mapping and the
    timestamp in seconds (a float), the record holds a list and milliseconds."""
    headers = m.headers
    if isinstance(headers, Mapping):
        headers = list(headers.items())
    ts = None if m.timestamp is None else int(m.timestamp * 1000)
    return InRecord(m.topic, m.partition, m.offset, m.key, m.value, headers, ts)


def _broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{h.strip()}" for h in bootstrap.split(",") if h.strip())


def raw_partitions(settings: ProcessorsSettings, timeout: float = 10.0) -> int:
    """Per-run tables must have exactly as many partitions as raw (their changelogs are
    co-partitioned with it), so the count is read from the broker rather than configured."""
    from confluent_kafka.admin import AdminClient

    name = topic_name("raw", settings.topic_prefix)
    md = AdminClient({"bootstrap.servers": settings.bootstrap_servers}).list_topics(name, timeout=timeout)
    t = md.topics.get(name)
    if t is None or t.error is not None or not t.partitions:
        raise RuntimeError(f"topic {name} does not exist on {settings.bootstrap_servers}; create the "
                           "catalog topics first (agentstream up does, or schemas.topics.create_topics)")
    return len(t.partitions)


def create_app(settings: ProcessorsSettings, partitions: int | None = None) -> faust.App:
    partitions = partitions or raw_partitions(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=_broker_url(settings.bootstrap_servers),
        store="memory://",  # state is rebuilt from the changelogs on start
        # Faust's check that a local store is not ahead of its changelog's high watermark guards
        # a RocksDB file that outlived its topic's data; an in-memory store holds only what this
        # process read from that topic. Against the embedded broker (whose watermark runs short,
        # changelog_tail.py) it misfired: a worker that had read a partition's tail, given the
        # partition again by a rebalance, crashed with ConsistencyError (6 > 5).
        recovery_consistency_check=False,
        datadir=str(settings.data_dir),
        topic_partitions=partitions,
        topic_replication_factor=settings.replication_factor,
        broker_session_timeout=settings.broker_session_timeout,
        broker_heartbeat_interval=min(3.0, settings.broker_session_timeout / 3),
        broker_max_poll_records=settings.batch_size * 2,
        stream_buffer_maxsize=settings.batch_size * 2,
        stream_wait_empty=False,
        consumer_auto_offset_reset="earliest",
        web_enabled=True,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        web_in_thread=False,
        table_cleanup_interval=60.0,
        # The fleet agent's offsets (faust's default is 2.8 s): a worker lost between writing a
        # tenant's fleet state and committing its deltas leaves them to be read again by the
        # next owner (chain.process_fleet skips what the state already holds); a short interval
        # keeps that window, and what is read again, small.
        broker_commit_interval=0.5,
    )
    codec = Codec(make_resolver(settings.schema_registry_url))
    prefix = settings.topic_prefix
    metrics = ProcessorMetrics()

    # Every worker follows the policies topic itself (policy_follower.py says why not a
    # GlobalTable): a policy written at run time applies on every worker's partitions.
    follower = PolicyFollower(settings.bootstrap_servers, topic_name("policies", prefix),
                              PolicyCopy(lambda b: codec.decode_as(POLICY, b)))
    app.add_dependency(follower)
    fleet_table = app.Table("fleet-state", key_type=bytes, value_type=bytes, partitions=partitions)
    changelog_tail.install(app, fleet_table, settings.bootstrap_servers)
    fleet_topic = app.topic(f"{prefix}{settings.app_id}-fleet", key_type=bytes, value_type=bytes,
                            key_serializer="raw", value_serializer="raw", partitions=partitions,
                            internal=True)

    policies = PolicyBook(follower.get, lambda b: codec.decode_as(POLICY, b))
    chain = Chain(settings, codec, Redactor(settings.hash_key_bytes()), policies, fleet_topic.get_topic_name())
    emitter = Emitter(settings.bootstrap_servers)
    raw_loop = RawLoop(settings, chain, metrics, partitions, tune_gc=True)  # this process is the worker
    app.add_dependency(raw_loop)
    app.agentstream_chain = chain  # type: ignore[attr-defined]
    app.agentstream_raw_loop = raw_loop  # type: ignore[attr-defined]
    app.agentstream_metrics = metrics  # type: ignore[attr-defined]

    def table_get(table: Any, partition: int, key: bytes) -> bytes | None:
        return table.data.get(key)

    def table_put(table: Any, partition: int, key: bytes, value: bytes | None) -> None:
        # Explicit partition: a batch mixes partitions, so faust's "current event" is not the
        # right one for every key.
        if value is None:
            table.data.pop(key, None)
            table.send_changelog(partition, key, None, value_serializer="raw")
        else:
            table.data[key] = value
            table.send_changelog(partition, key, value)

    @app.agent(fleet_topic, name="fleet")
    async def fleet_agent(stream: faust.StreamT) -> None:
        # take_events is on faust's Stream, not on the StreamT interface it is typed as
        async for events in cast(faust.Stream, stream).take_events(1000, within=0.2):
            await follower.wait_loaded()  # so that follower.get never blocks the event loop
            batch = [in_record(e.message) for e in events]
            out = chain.process_fleet(batch, lambda p, k: table_get(fleet_table, p, k),
                                      lambda p, k, v: table_put(fleet_table, p, k, v))
            await emitter.send_batch(out)
            metrics.observe_fleet(out)

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        # Fails once the raw loop crashed or is stuck (no commit for stuck_after_s while raw has
        # lag): a restart is the cure for both, and the body says which.
        h = raw_loop.health()
        return web.json({"status": "ok" if h["alive"] else "unhealthy", **h}, status=200 if h["alive"] else 503)

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        ready = (cast(TableManager, app.tables).recovery.completed.is_set() and bool(app.consumer.assignment())
                 and raw_loop.ready.is_set() and follower.loaded.is_set())
        return web.json({"ready": ready}, status=200 if ready else 503)

    @app.page("/metrics")
    async def metrics_view(web: Any, request: Any) -> Any:
        body, ctype = metrics.render()
        return web.bytes(body, content_type=ctype.split(";")[0])

    return app


def run_worker(settings: ProcessorsSettings) -> None:
    """Blocks: runs the worker until SIGINT/SIGTERM (what ``agentstream processors run`` calls)."""
    from .shutdown_guard import bounded_worker

    app = create_app(settings)
    worker = bounded_worker(settings.shutdown_grace_s)(
        app, loglevel=settings.log_level.upper(), quiet=True, redirect_stdouts=False,
        override_logging=True)
    worker.execute_from_commandline()
