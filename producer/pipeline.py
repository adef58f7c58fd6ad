"""Background-thread work per event: sequence numbers, sampling buffers and encoding.

Runs only on the transport thread, so ``seq`` is assigned in queue order: gap-free and in the
order records are produced, whatever thread the agent emitted from.
"""
from __future__ import annotations

from typing import Any, Callable

from .wire import MAX_ATTRS, RunWire, attr_str

def clean_attributes(attrs: dict[str, Any]) -> dict[str, str]:
    """What the wire encoder makes of raw attributes (for callers that need the dict)."""
    return {str(k): attr_str(v) for k, v in list(attrs.items())[:MAX_ATTRS]}


class EventPipeline:
    def __init__(self, header: Callable[[], bytes], sdk_version: str, capture_mode: str,
                 policy_version: str, buffer_max: int) -> None:
        self._header_fn = header
        self._header: bytes | None = None
        self.sdk_version = sdk_version
        self.capture_mode = capture_mode
        self.policy_version = policy_version
        self.buffer_max = buffer_max
        self.sampled_out = 0

    def _wire(self, run: Any) -> RunWire:
        if self._header is None:
            self._header = self._header_fn()
        w = RunWire(header=self._header, tenant_id=run.tenant_id, agent_id=run.agent_id,
                    agent_version=run.agent_version, environment=run.environment,
                    run_id=run.run_id, session_id=run.session_id,
                    parent_run_id=run.parent_run_id, sdk_version=self.sdk_version,
                    capture_mode=self.capture_mode, policy_version=self.policy_version,
                    event_id_seed=run._event_seed)
        run._wire = w
        return w

    def process(self, item: tuple) -> list[tuple[bytes, bytes]]:
        run, kind, ts_us, parent_step_id, attrs, payload = item
        wire = run._wire or self._wire(run)
        if kind == "STEP":
            # The agent thread left raw numbers; make the wire tuple here, off its thread.
            sid = run._sid
            started = (payload[4] + run._clock_off) // 1000
            lat_ns = payload[5]
            ts_us = started + lat_ns // 1000
            payload = (sid + str(payload[0]), payload[1], payload[2], payload[3], started,
                       lat_ns / 1e6) + payload[6:]
            if parent_step_id is not None and parent_step_id.__class__ is int:
                parent_step_id = sid + str(parent_step_id)
        data = wire.encode(run._seq, ts_us, ts_us, parent_step_id, attrs, kind, payload)
        run._seq += 1
        if run._sampled:
            return [(run._key, data)]
        # Unsampled run: hold its records until RUN_END says whether it failed.
        buf = run._buf
        buf.append((run._key, data))
        if kind == "RUN_END":
            run._buf = []
            if payload["status"] != "SUCCESS" or run._had_failure:
                return buf
            self.sampled_out += len(buf)
            return []
        if kind == "FAILURE":
            run._had_failure = True
        if len(buf) >= self.buffer_max:  # too long to hold: keep the run rather than lose it
            run._sampled = True
            run._buf = []
            return buf
        return []
