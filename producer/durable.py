"""Durable actions: a high-risk tool runs only once Kafka has acknowledged its audit record.

The SDK's ordinary transport is fire-and-forget by design (an agent never waits on telemetry,
and an outage spools to disk). A durable action turns that around for one call: its audit
record goes through a small producer of its own (``acks=all``, idempotent) and the call waits,
for at most ``timeout_s``, for the broker's acknowledgement. No acknowledgement in time (broker
down, topic missing, record refused) raises ``AuditUnavailable`` and the action does not run;
the unsent record is purged so an action that never ran is not reported later as audited. The
first durable call of a tracer also connects this producer (metadata, idempotent producer id), so
a bound well under a second can refuse it on a slow network: the default is 5 s.

The audit record is an Event on the raw topic, keyed by run_id like every event of the run:
kind DECISION, ``decision_type`` ``durable_action``, ``selected`` the tool name,
``reason_code`` ``audit_before_run``, ``step_id`` the TOOL step it guards, the keyed args digest
in the ``agentstream.args_digest`` attribute. It is written by this second producer before the
step's own event, so it carries a sequence number from ``AUDIT_SEQ_BASE`` up, outside the
gap-free sequence the transport gives the run's other events.
"""
from __future__ import annotations

import threading
import time
import uuid
from fnmatch import fnmatchcase
from typing import Any, Callable, Iterable

from agentstream.schemas import EVENT, PARTITIONER, Codec

from .errors import AuditUnavailable

AUDIT_SEQ_BASE = 3_000_000_000
DEFAULT_TIMEOUT_S = 5.0


def is_durable(tool_name: str, action_class: str | None, patterns: Iterable[str]) -> bool:
    """A policy-named action class (``governance.durable_tools``) covers the tool by its class
    or its name (fnmatch patterns)."""
    names = [n for n in (action_class, tool_name) if n]
    return any(fnmatchcase(n, p) for p in patterns for n in names)


class AuditWriter:
    """One per tracer, created on the first durable call."""

    def __init__(self, bootstrap_servers: str, topic: str, client_conf: dict[str, Any] | None = None,
                 codec: Codec | None = None,
                 producer_factory: Callable[[dict[str, Any]], Any] | None = None) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self.codec = codec or Codec()
        conf = {**(client_conf or {}), "bootstrap.servers": bootstrap_servers, "acks": "all",
                "enable.idempotence": True, "partitioner": PARTITIONER, "linger.ms": 0}
        # the tracer's own factory (InMemoryTransport in agent teams' tests), else librdkafka
        self._p = (producer_factory or Producer)(conf)
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def _seq(self, run_id: str) -> int:
        with self._lock:
            if len(self._counts) > 10_000:
                self._counts.clear()
            n = self._counts.get(run_id, 0)
            self._counts[run_id] = n + 1
            return AUDIT_SEQ_BASE + n

    def record(self, run: Any, step_id: str, tool_name: str, args_digest: str | None,
               action_class: str | None) -> dict[str, Any]:
        from .tracer import SDK_VERSION

        now = time.time_ns() // 1000
        # Its own progress fingerprint, unique per step: processors before the fix that stopped
        # reading a DECISION's type/selected/reason as one (docs/processors.md, no_progress) still
        # do, and the same durable tool called four times is not a run that stopped progressing
        # (real repeats are judged on the TOOL steps themselves). Harmless to the current ones.
        attrs = {"agentstream.durable": "true", "agentstream.progress_fingerprint": f"durable:{step_id}"}
        if args_digest:
            attrs["agentstream.args_digest"] = args_digest
        if action_class:
            attrs["agentstream.action_class"] = action_class
        return {
            "event_id": str(uuid.uuid4()), "tenant_id": run.tenant_id, "agent_id": run.agent_id,
            "agent_version": run.agent_version, "environment": run.environment, "run_id": run.run_id,
            "session_id": run.session_id, "parent_run_id": run.parent_run_id, "parent_step_id": step_id,
            "seq": self._seq(run.run_id), "ts_us": now, "emitted_us": now, "sdk_version": SDK_VERSION,
            "capture_mode": run._policy.wire_mode, "policy_version": run._policy.policy_version,
            "attributes": attrs, "redaction": None, "kind": "DECISION",
            "payload": {"decision_type": "durable_action", "selected": tool_name, "candidates": [],
                        "reason_code": "audit_before_run", "confidence": None, "step_id": step_id},
            "end_user_id": run.end_user_id,
        }

    def confirm(self, record: dict[str, Any], timeout_s: float) -> None:
        """Returns once the broker acknowledged ``record`` (acks=all); raises
        ``AuditUnavailable`` after ``timeout_s`` or on a delivery error."""
        done = threading.Event()
        outcome: list[Any] = []

        def delivered(err: Any, _msg: Any) -> None:
            outcome.append(err)
            done.set()

        try:
            value = self.codec.encode(EVENT, record)
            self._p.produce(self.topic, value, record["run_id"].encode(), on_delivery=delivered)
        except Exception as exc:  # encoding or a full local queue: not audited
            raise AuditUnavailable(f"audit record not sent: {exc}", record["run_id"]) from exc
        deadline = time.monotonic() + timeout_s
        while not done.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._p.poll(min(left, 0.05))
        if not done.is_set():
            # Not acknowledged in time: withdraw it, so an action that did not run is never
            # reported as audited. (A batch already on the wire may still land; its step then
            # shows the action failed with AuditUnavailable.)
            self._p.purge(in_queue=True, in_flight=False)
            self._p.poll(0)
            raise AuditUnavailable(f"Kafka did not acknowledge the audit record within {timeout_s:g} s",
                                   record["run_id"])
        if outcome and outcome[0] is not None:
            raise AuditUnavailable(f"Kafka refused the audit record: {outcome[0]}", record["run_id"])

    def close(self, timeout_s: float = 5.0) -> None:
        self._p.flush(timeout_s)


def refuse(step: Any, exc: AuditUnavailable) -> None:
    """Closes an open step as a durable action that did not run."""
    step.set_attribute("agentstream.durable", "audit_unavailable")
    step.__exit__(type(exc), exc, exc.__traceback__)


def confirm_begun(step: Any, writer: Callable[[], AuditWriter], tool_name: str, action_class: str | None,
                  timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """The fail-closed wait for a step already opened with ``begin`` (the MCP proxy's, which
    forwards the call only after this returns). No acknowledgement: the step is closed as
    refused and ``AuditUnavailable`` raised."""
    try:
        DurableStep(step, writer(), tool_name, action_class, timeout_s)._audit()
    except AuditUnavailable as exc:
        refuse(step, exc)
        raise
    step.set_attribute("agentstream.durable", "acknowledged")


class DurableStep:
    """A TOOL step whose audit record is acknowledged before the tool's body runs. Wraps the
    step's own context manager: enforcement (budgets, STOP) is checked first, as for any step."""

    def __init__(self, step: Any, writer: AuditWriter, tool_name: str, action_class: str | None,
                 timeout_s: float) -> None:
        self.step, self.writer, self.tool_name = step, writer, tool_name
        self.action_class, self.timeout_s = action_class, timeout_s

    def _audit(self) -> None:
        tool = self.step.tool or {}
        rec = self.writer.record(self.step.run, self.step.step_id, self.tool_name, tool.get("args_digest"),
                                 self.action_class)
        self.writer.confirm(rec, self.timeout_s)

    def _refuse(self, exc: AuditUnavailable) -> None:
        refuse(self.step, exc)

    def __enter__(self) -> Any:
        s = self.step.__enter__()
        try:
            self._audit()
        except AuditUnavailable as exc:
            self._refuse(exc)
            raise
        s.set_attribute("agentstream.durable", "acknowledged")
        return s

    def __exit__(self, et: Any, ev: Any, tb: Any) -> bool:
        return self.step.__exit__(et, ev, tb)

    async def __aenter__(self) -> Any:
        import asyncio

        s = await self.step.__aenter__()
        try:
            await asyncio.to_thread(self._audit)  # the bounded wait never blocks the event loop
        except AuditUnavailable as exc:
            self._refuse(exc)
            raise
        s.set_attribute("agentstream.durable", "acknowledged")
        return s

    async def __aexit__(self, et: Any, ev: Any, tb: Any) -> bool:
        return await self.step.__aexit__(et, ev, tb)
