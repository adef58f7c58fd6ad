"""Steps from a framework's own start/end callbacks (LangChain runs, OpenAI Agents spans).

Frameworks report a tree: each node has an id and its parent's id, and starts and ends in
separate callbacks, sometimes on other threads or tasks. ``StepTree`` keeps the open steps by
the framework's id, links a step to its parent's step, and owns the agentstream runs it had to
start for a root that arrived outside any run. Steps open with ``begin()``, so a budget or a
remote STOP raises ``EnforcementError`` there, before the framework does the work; every other
fault is logged and counted, never raised into the agent.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from ..context import current_run
from ..errors import EnforcementError

log = logging.getLogger("agentstream.producer")


class StepTree:
    def __init__(self, tracer: Any = None) -> None:
        self.tracer = tracer
        self._steps: dict[Any, Any] = {}
        self._runs: dict[Any, tuple[Any, bool]] = {}  # root id -> (run, owned by us)
        self._root_of: dict[Any, Any] = {}
        self._lock = threading.Lock()

    # ---- runs ---------------------------------------------------------------------------
    def start_root(self, root_id: Any, name: str, **attrs: Any) -> Any:
        """The run for a new root: the agent's current run if there is one, else a run of
        our own (needs a tracer), else None (the tree is not recorded)."""
        run = current_run.get()
        owned = False
        if run is None or run.ended:
            if self.tracer is None:
                return None
            run = self.tracer.run(name, **attrs)
            run.start()
            owned = True
        with self._lock:
            self._runs[root_id] = (run, owned)
            self._root_of[root_id] = root_id
        return run

    def owns(self, root_id: Any) -> bool:
        with self._lock:
            return self._runs.get(root_id, (None, False))[1]

    def run_of(self, node_id: Any, parent_id: Any = None) -> Any:
        with self._lock:
            root = self._root_of.get(parent_id) if parent_id is not None else None
            root = root if root is not None else self._root_of.get(node_id)
            if root is None:
                return None
            if node_id is not None:
                self._root_of[node_id] = root
            entry = self._runs.get(root)
        return entry[0] if entry else None

    def end_root(self, root_id: Any, exc: BaseException | None = None,
                 status: str | None = None) -> None:
        with self._lock:
            run, owned = self._runs.pop(root_id, (None, False))
            for k in [k for k, r in self._root_of.items() if r == root_id]:
                self._root_of.pop(k, None)
        if run is None:
            return
        if status is not None:
            run.set_status(status)
        if owned and not run.ended:
            # a run stopped by enforcement ends with that outcome even when the framework
            # reports the end without the exception (the Agents SDK's trace end)
            run.end(exc if exc is not None else run._stop_exc)

    # ---- steps --------------------------------------------------------------------------
    def open(self, node_id: Any, parent_id: Any, kind: str, name: str,
             make: Callable[[Any], Any] | None = None, **attrs: Any) -> Any:
        """Opens a step for ``node_id`` (``make(run)`` builds special steps: tool, llm).
        Raises only ``EnforcementError``."""
        run = self.run_of(node_id, parent_id)
        if run is None or run.ended:
            return None
        try:
            step = make(run) if make is not None else run.step(kind, name, attrs or None)
            if make is not None and attrs:
                step.set_attributes(**attrs)
        except Exception:
            log.warning("agentstream: instrumentation failed", exc_info=True)
            return None
        step.begin()  # enforcement: may raise before the framework does the work
        with self._lock:
            parent = self._steps.get(parent_id)
            self._steps[node_id] = step
        if parent is not None and parent.run is run:
            step._parent = parent.step_id
        return step

    def get(self, node_id: Any) -> Any:
        with self._lock:
            return self._steps.get(node_id)

    def close(self, node_id: Any, error: BaseException | str | None = None,
              fail: tuple[str, str] | None = None, status: str | None = None) -> Any:
        """Ends the step of ``node_id``. ``error`` (an exception or its type name) marks it
        failed; ``fail`` (type, code) records the FAILURE event linked to it."""
        with self._lock:
            step = self._steps.pop(node_id, None)
        if step is None:
            return None
        try:
            if fail is not None:
                step.fail(*fail)
            if error is not None:
                etype = error if isinstance(error, str) else type(error).__name__
                step.set_attribute("error.type", etype[:128])
                if fail is None:
                    step.set_status("ERROR")
            if status is not None:
                step.set_status(status)
            step.end()
        except Exception:
            log.warning("agentstream: instrumentation failed", exc_info=True)
        return step


def guarded(fn: Callable) -> Callable:
    """Wraps a framework callback: enforcement propagates, anything else is logged."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EnforcementError:
            raise
        except Exception:
            log.warning("agentstream: instrumentation failed", exc_info=True)
            return None

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper
