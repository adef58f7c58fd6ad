"""The batch core every worker runs: redaction, then every per-run detector in one pass over the
batch, plus per-tenant fleet deltas for the fleet detectors.

Pure with respect to Kafka: records in, records out. State goes through ``get_state`` /
``put_state`` callables so faust tables (or a dict, in the bench and unit tests) back it; each
touched run's state is read once and written once per batch.

A run's state is keyed by (tenant, run): ``run_keys.run_key``, built here and nowhere else in
the processors. Run ids are the client's choice (OTLP: the trace id, which ``traceparent`` sets)
and two tenants may share one; under the run id alone one tenant's events counted in another's
loops and budgets, ended its run (RUN_END deletes the state) or masked its events as copies
(tests/unit/stream_processors/test_run_state_tenants.py). The raw topic stays keyed by run id:
both tenants' runs then share a partition, each with its own state.
"""
from __future__ import annotations

import hashlib
import time
from typing import Any, Callable

import orjson

from agentstream.schemas import ALERT, COMMAND, Codec, topic_name
from agentstream.schemas.run_keys import run_key

from .detectors import fleet, governance, governance_topology, redelivery, run_eviction, runs
from .policies import PolicyBook, TenantPolicy
from .records import InRecord, OutRecord, Redacted
from .redaction.engine import Redactor
from .redaction_stage import RedactionStage
from .settings import ProcessorsSettings

GetState = Callable[[int, bytes], "bytes | None"]
PutState = Callable[[int, bytes, "bytes | None"], None]
ISSUER = "agentstream-processors"
# In a tenant's fleet state: [partition, offset] of the last fleet delta it holds.
FLEET_APPLIED = "applied"


def _id(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def _stop_reason(alert_type: str, title: str) -> str:
    """A STOP's reason: the alert's type and title, the type once ("loop: repeat", not "loop:
    loop: repeat", whose title already starts with it)."""
    return title if title.startswith(alert_type + ":") else f"{alert_type}: {title}"


class BatchPolicies(PolicyBook):
    """The tenants' policies as of the start of a batch: each looked up once per batch.

    Why: on the worker a lookup goes through faust's table (a Mapping over its store), ~3 µs,
    and the stage and the detectors asked twice per event: ~10% of the raw thread's time. A
    policy written meanwhile applies from the next lookup (the stage's and the detectors' of a
    batch are one each); it arrives from another thread at no defined point between two events
    anyway. Only the raw path (one thread) uses the view."""

    def __init__(self, book: PolicyBook) -> None:  # a view over ``book``: PolicyBook's own state unused
        self.book = book
        self._batch: dict[str, TenantPolicy] = {}

    def new_batch(self) -> None:
        self._batch.clear()

    def set(self, policy: TenantPolicy) -> None:
        self.book.set(policy)
        self._batch.pop(policy.tenant_id, None)

    def get(self, tenant_id: str) -> TenantPolicy:
        p = self._batch.get(tenant_id)
        if p is None:
            p = self._batch[tenant_id] = self.book.get(tenant_id)
        return p


class Chain:
    """Redaction, then every detector, over one batch of raw records: records in, records out.

    Guarantees: no Kafka or I/O inside (state only through ``get_state``/``put_state``, each
    touched run's state read once and written once per batch); every output is produced from
    redacted events, and a raw record that fails decoding or redaction becomes a DLQ record
    with its reason, never an event; alert and STOP command ids are derived from their inputs,
    so reprocessing a batch yields the same ids (the sink and the SDK deduplicate on them).
    """

    def __init__(self, settings: ProcessorsSettings, codec: Codec, redactor: Redactor,
                 policies: PolicyBook, fleet_topic: str) -> None:
        self.settings = settings
        self.codec = codec
        self.policies = BatchPolicies(policies)
        self.redaction = RedactionStage(codec, redactor, self.policies, settings.topic_prefix,
                                        settings.max_event_ahead_s)
        self.fleet_topic = fleet_topic
        self.alerts_topic = topic_name("alerts", settings.topic_prefix)
        self.commands_topic = topic_name("commands", settings.topic_prefix)
        # Runs that never end are not kept forever (detectors/run_eviction.py). The raw loop
        # tells it which partitions' states were restored and which moved away.
        self.idle = run_eviction.IdleRuns(settings.run_state_idle_s, settings.run_state_max_runs)

    # ---- hot path: raw -> events + per-run detectors --------------------------------------

    def process(self, batch: list[InRecord], get_state: GetState, put_state: PutState) -> list[OutRecord]:
        out: list[OutRecord] = []
        self.policies.new_batch()
        passed = self.redaction.process(batch, out)
        out += self.detect(passed, get_state, put_state)
        return out

    def detect(self, passed: list[Redacted], get_state: GetState, put_state: PutState) -> list[OutRecord]:
        """The per-run detectors and the fleet deltas over events that passed redaction
        (decoded dicts with their source record): alerts, STOP commands and fleet records.
        Policies are looked up afresh (once per tenant): called on its own (replays, the
        record-by-record isolation) it sees the book as it is now."""
        self.policies.new_batch()
        out: list[OutRecord] = []
        # (tenant, run_id) -> [partition, state, ended, stored before, state key]
        states: dict[tuple[str, str], list[Any]] = {}
        deltas: dict[str, fleet.DeltaBuilder] = {}
        # Each tenant's thresholds read out of its policy once per call, not once per event.
        limits: dict[str, tuple[runs.Limits, governance.Compiled]] = {}
        fleet_kinds = fleet.FLEET_KINDS
        observe_run, observe_gov = runs.observe_with, governance.observe_compiled
        for r in passed:
            e = r.event
            run_id, tenant = e["run_id"], e["tenant_id"]
            src = r.source
            entry = states.get((tenant, run_id))
            if entry is None:
                key = run_key(tenant, run_id)
                raw = get_state(src.partition, key)
                entry = states[(tenant, run_id)] = [src.partition, orjson.loads(raw) if raw else runs.new_state(),
                                                    False, raw is not None, key]
                # its earlier state was dropped (or kept by an older version under the run id
                # alone, run_state_store.py): what came before is unknown
                if raw is None and self.idle.gone and (self.idle.resumed(src.partition, key)
                                                       or self.idle.resumed(src.partition, run_id.encode())):
                    entry[1]["mid"] = 1
            st = entry[1]
            offset = src.offset
            if st.get("_o", -1) >= offset:
                # Redelivered after a crash between flush and commit: already in this state (and
                # in the fleet deltas flushed with it); the event itself is re-emitted, not recounted.
                continue
            st["_o"] = offset
            if not redelivery.first_delivery(st, e):
                # The same event at another offset (the SDK re-sent it after a lost ack): the
                # run, governance and tenant spend counted it the first time.
                continue
            lim = limits.get(tenant)
            if lim is None:
                policy = self.policies.get(tenant)
                lim = limits[tenant] = (runs.Limits(policy.loops, policy.budgets),
                                        governance.compiled(policy.governance))
            kind = e["kind"]
            findings = observe_run(st, e, lim[0])
            if kind == "STEP":
                gst = st.get("gov")
                if gst is None:
                    gst = st["gov"] = governance.new_state(mid="mid" in st)
                findings += observe_gov(gst, e, lim[1])
            for f in findings:
                alert_id = _id(tenant, run_id, f.key or f.alert_type)
                out.append(self._alert(alert_id, f.alert_type, f.severity, f.title, f.evidence, tenant,
                                       e.get("agent_id"), e.get("agent_version"), run_id, [src]))
                if f.stop:
                    out.append(self._command(tenant, run_id, _stop_reason(f.alert_type, f.title), alert_id))
            if kind == "RUN_END":
                entry[2] = True
            if kind in fleet_kinds:
                d = deltas.get(tenant)
                if d is None:
                    d = deltas[tenant] = fleet.DeltaBuilder(tenant)
                d.add(e, src.topic, src.partition, offset, st.get("wait_us", 0) if kind == "RUN_END" else 0)
        for partition, st, ended, stored, key in states.values():
            if not ended:
                put_state(partition, key, orjson.dumps(st))
            elif stored:  # a run that started and ended within the batch leaves nothing to delete
                put_state(partition, key, None)
        if self.idle.enabled:
            self._evict(states, get_state, put_state)
        for tenant, d in deltas.items():
            out.append(OutRecord(self.fleet_topic, tenant.encode(), orjson.dumps(d.finish())))
        return out

    def _evict(self, states: dict[tuple[str, str], list[Any]], get_state: GetState, put_state: PutState) -> None:
        """Compacts or drops the states of runs gone quiet (detectors/run_eviction.py)."""
        idle = self.idle
        touched: dict[int, list[Any]] = {}  # partition -> [newest event time, runs with events]
        for partition, st, ended, stored, key in states.values():
            t = touched.get(partition)
            if t is None:
                t = touched[partition] = [0, []]
            last = st.get("last_us") or 0
            if last > t[0]:
                t[0] = last
            if not ended:
                t[1].append(key)
            elif stored:
                idle.ended(partition, key)
        for partition, (event_us, keys) in touched.items():
            for key, action in idle.touch(partition, event_us, keys):
                if action == run_eviction.DROP:
                    put_state(partition, key, None)
                    continue
                raw = get_state(partition, key)
                left = runs.residue(orjson.loads(raw)) if raw else None
                if left is not None:
                    put_state(partition, key, orjson.dumps(left))

    # ---- fleet path: per-tenant deltas -> budgets, drift -------------------------------------

    def process_fleet(self, batch: list[InRecord], get_state: GetState, put_state: PutState) -> list[OutRecord]:
        out: list[OutRecord] = []
        states: dict[bytes, tuple[int, dict[str, Any]]] = {}
        for rec in batch:
            if not rec.key or not rec.value:
                continue
            delta = orjson.loads(rec.value)
            tenant = delta["tenant"]
            entry = states.get(rec.key)
            if entry is None:
                raw = get_state(rec.partition, rec.key)
                entry = states[rec.key] = (rec.partition, orjson.loads(raw) if raw else fleet.new_state())
            # The state names the last delta it holds: a delta read again (its offset not committed
            # before a crash or a rebalance, while the state it went into was) is not counted twice.
            last = entry[1].get(FLEET_APPLIED)
            if last is not None and last[0] == rec.partition and rec.offset <= last[1]:
                continue
            policy = self.policies.book.get(tenant)  # another thread's path: not the raw batch's view
            sources = []
            for k, off in (delta.get("src") or {}).items():
                topic, part = k.rsplit("|", 1)
                sources.append(InRecord(topic, int(part), off, None, None))
            findings: list[tuple[fleet.FleetFinding, str | None]] = [
                (f, None) for f in fleet.apply(entry[1], delta, policy.budgets)]
            if delta.get("links") or ("topo" in entry[1] and delta.get("ended")):
                topo = entry[1].setdefault("topo", governance_topology.new_state())
                findings += [(f, f.evidence.get("run_id"))
                             for f in governance_topology.apply(topo, delta.get("links") or [], policy.governance)]
                governance_topology.forget_ended(topo, delta.get("ended") or [])
            entry[1][FLEET_APPLIED] = [rec.partition, rec.offset]
            for f, run in findings:
                alert_id = _id(tenant, f.key)
                if f.alert:
                    out.append(self._alert(alert_id, f.alert_type, f.severity, f.title, f.evidence, tenant,
                                           f.agent_id, f.agent_version, run, sources))
                for run_id in f.stop_runs:
                    out.append(self._command(tenant, run_id, _stop_reason(f.alert_type, f.title), alert_id))
        for key, (partition, st) in states.items():
            put_state(partition, key, orjson.dumps(st))
        return out

    # ---- output records ------------------------------------------------------------------

    def _alert(self, alert_id: str, alert_type: str, severity: str, title: str, evidence: dict[str, str],
               tenant: str, agent: str | None, version: str | None, run_id: str | None,
               sources: list[InRecord]) -> OutRecord:
        rec = {"alert_id": alert_id, "alert_type": alert_type, "severity": severity, "tenant_id": tenant,
               "agent_id": agent, "agent_version": version, "run_id": run_id, "title": title,
               "evidence": evidence, "detected_us": int(time.time() * 1_000_000),
               "source_offsets": [{"topic": s.topic, "partition": s.partition, "offset": s.offset} for s in sources]}
        return OutRecord(self.alerts_topic, tenant.encode(), self.codec.encode(ALERT, rec))

    def _command(self, tenant: str, run_id: str, reason: str, alert_id: str) -> OutRecord:
        rec = {"command_id": _id("stop", alert_id, run_id), "tenant_id": tenant, "run_id": run_id,
               "command_type": "STOP", "reason": reason[:500], "issued_by": ISSUER,
               "issued_us": int(time.time() * 1_000_000), "alert_id": alert_id}
        return OutRecord(self.commands_topic, run_id.encode(), self.codec.encode(COMMAND, rec))
