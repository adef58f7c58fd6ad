"""The state a run's mixins share, declared once for the type checker.

``Run`` is assembled from ``RunGate`` (enforcement, ``gate.py``) and ``RunRecords`` (one-shot
records, ``records.py``); both read and write state that ``Run.__init__`` sets and call
methods ``Run`` defines. ``RunState`` is their common base and states that contract. It holds
annotations only, no values: nothing here exists at run time, so attribute lookups on the step
hot path are unchanged.
"""
from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from .capture import CapturePolicy
    from .enforcement import RunBudget
    from .errors import EnforcementError
    from .step import Step
    from .tracer import Tracer
    from .transport import Transport


class RunState:
    """What ``RunGate`` and ``RunRecords`` rely on; ``Run`` provides all of it."""

    tracer: Tracer
    _t: Transport
    _q: deque[Any]
    _qmax: int
    _policy: CapturePolicy
    run_id: str
    _sid: str  # the run's step-id prefix
    _counter: Iterator[int]  # step numbers
    budget: RunBudget | None
    _gate: bool  # anything to check before a step: a budget, a throttle or a pending command
    _stop_exc: EnforcementError | None  # raised again by every step once the run is stopped
    _commands: list[dict[str, Any]] | tuple[()]  # () until the first command
    _throttle_s: float
    failures: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    approval_wait_ms: float

    if TYPE_CHECKING:  # defined by ``Run`` (run.py)
        def _emit(self, kind: str, payload: Any, attrs: dict[str, Any] | None = None,
                  parent_step_id: str | None = None, ts_us: int | None = None) -> None: ...

        def _count_failure(self, what: str) -> None: ...

        def _close_step(self, step: Step, status: int, lat_ns: int) -> None: ...

        def _current_step_id(self) -> str | None: ...

        # defined by ``RunGate`` (gate.py), used by ``RunRecords``
        def _judge_record(self, step: Step) -> EnforcementError | None: ...

        def _enforce_recorded(self, step: Step, breach: EnforcementError | None) -> None: ...

        def step(self, kind: str, name: str, attributes: dict[str, Any] | None = None, /, *,
                 attempt: int | None = None, retry_of: Step | str | None = None,
                 **attrs: Any) -> Step: ...

        def llm_step(self, provider: str, model: str, name: str | None = None, *,
                     estimated_tokens: int = 0, estimated_cost_usd: float = 0.0,
                     retry_of: Step | str | None = None, **attrs: Any) -> Step: ...
