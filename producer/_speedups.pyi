# Types of the C extension built from _speedups.c (see step.py): the open/close path of a step
# and the common case of Run.step. Same behaviour as the pure-Python reference in step.py.
from contextvars import ContextVar, Token
from typing import Any, Callable, Literal

from .run import Run
from .step import Step

class StepCore:
    run: Run
    kind: int
    name: str
    attrs: dict[str, Any] | None
    _parent: Step | str | None
    _token: Token[Any] | None
    _n: int | None
    _t0: int | None
    _lat: int | None
    def __init__(self, run: Run, kind: int, name: str, attrs: dict[str, Any] | None, /) -> None: ...
    def __enter__(self) -> Step: ...
    def __exit__(self, et: Any, ev: Any, tb: Any, /) -> Literal[False]: ...
    def _taken(self) -> None: ...

class RunCore:
    # the common case in C; every other call goes on to Run.step with the same arguments
    def step(self, kind: str, name: str, attributes: dict[str, Any] | None = None, /, *,
             attempt: int | None = None, retry_of: Step | str | None = None,
             **attrs: Any) -> Step: ...

def configure(current_step: ContextVar[Any], step_type: type[Step], kinds: dict[str, int],
              llm_kind: int, slow_step: Callable[..., Step], /) -> None: ...
