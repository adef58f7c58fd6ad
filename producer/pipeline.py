"""Background-thread work per event: ids, times, sequence numbers, sampling buffers and
encoding.

Runs only on the transport thread, so ``seq`` is assigned in queue order: gap-free and in the
order records are produced, whatever thread the agent emitted from. A closed ``Step`` arrives
as itself (the agent thread did no more than queue it); everything else arrives as a tuple
``(run, kind, ts_us, parent_step_id, attrs, payload)``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from .bounds import Bounds
from .capture import allowed_attributes
from .step import Step
from .wire import MAX_ATTRS, RunWire, attr_str

if TYPE_CHECKING:
    from .run import Run


def clean_attributes(attrs: dict[str, Any]) -> dict[str, str]:
    """What the wire encoder makes of raw attributes (for callers that need the dict)."""
    return {str(k): attr_str(v) for k, v in list(attrs.items())[:MAX_ATTRS]}


class EventPipeline:
    def __init__(self, header: Callable[[], bytes], sdk_version: str, capture_mode: str,
                 policy_version: str, buffer_max: int, speedups: bool = True,
                 counter: Any = None) -> None:
        self._header_fn = header
        self._header: bytes | None = None
        self.sdk_version = sdk_version
        self.capture_mode = capture_mode
        self.policy_version = policy_version
        self.buffer_max = buffer_max
        self.sampled_out = 0
        self.speedups = speedups  # the C encoder (_wirecore.c) for the shapes it handles
        # over-long names and ids are cut before encoding, counted on ``counter.truncated``
        self.bounds = Bounds(counter if counter is not None else self)
        self.truncated = 0  # (the count when no counter is given)

    def _wire(self, run: Run) -> RunWire:
        if self._header is None:
            self._header = self._header_fn()
        w = RunWire(header=self._header, tenant_id=run.tenant_id, agent_id=run.agent_id,
                    agent_version=run.agent_version, environment=run.environment,
                    run_id=run.run_id, session_id=run.session_id,
                    parent_run_id=run.parent_run_id, sdk_version=self.sdk_version,
                    capture_mode=self.capture_mode, policy_version=self.policy_version,
                    event_id_seed=run._event_seed, end_user_id=run.end_user_id,
                    speedups=self.speedups)
        run._wire = w
        return w

    def process(self, item: Any) -> list[tuple[bytes, bytes]]:
        if item.__class__ is not tuple:  # a closed Step (either core)
            return self._step(item)
        run, kind, ts_us, parent_step_id, attrs, payload = item
        wire = run._wire or self._wire(run)
        payload = self.bounds.payload(payload)
        data = wire.encode(run._seq, ts_us, ts_us, parent_step_id, allowed_attributes(attrs, self.capture_mode),
                           kind, payload)
        run._seq += 1
        if run._sampled:
            return [(run._key, data)]
        return self._hold(run, kind, payload, data)

    def _step(self, s: Step) -> list[tuple[bytes, bytes]]:
        # The agent thread left raw numbers and references; make ids and wall times here.
        s._taken()
        self.bounds.step(s)
        run = s.run
        wire = run._wire or self._wire(run)
        sid = run._sid
        t0, lat_ns = s._t0, s._lat
        assert t0 is not None and lat_ns is not None, "only a closed step is queued"
        started = (t0 + run._clock_off) // 1000
        ts_us = started + lat_ns // 1000
        n = s._n
        if n is None:
            n = run._number(s)
        p = s._parent
        if p is None or isinstance(p, str):
            psid = p
        elif p.run is run:
            pn = p._n
            psid = sid + str(run._number(p) if pn is None else pn)
        else:
            psid = None
        kind = s.kind
        attrs = allowed_attributes(s.attrs, self.capture_mode)
        data = wire.encode(run._seq, ts_us, ts_us, psid, attrs, "STEP", (
            sid + str(n), kind, s.name, s.status, started, lat_ns / 1e6, s.attempt,
            s.retry_of, s.llm, s.tool, s.handoff, s.approval, s.fallback, s.content))
        run._seq += 1
        if run._sampled:
            return [(run._key, data)]
        return self._hold(run, "STEP", None, data)

    def _hold(self, run: Run, kind: str, payload: Any, data: bytes) -> list[tuple[bytes, bytes]]:
        """Unsampled run: hold its records until RUN_END says whether it failed."""
        buf = run._buf
        if buf is None:  # (made by Run for every unsampled run; a run made otherwise gets one)
            buf = run._buf = []
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
