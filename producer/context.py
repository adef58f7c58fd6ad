"""The current run and step, in contextvars: per asyncio task, and per thread when carried.

asyncio tasks copy the context when they are created, so a step opened in a task nests under
the run that spawned it. Plain threads start with an empty context; ``propagate(fn)`` (or
``Tracer.wrap``) carries the caller's context into a thread or executor.
"""
from __future__ import annotations

import contextvars
import functools
from typing import TYPE_CHECKING, Any, Callable, TypeVar, cast

if TYPE_CHECKING:
    from .run import Run
    from .step import Step

# Any: the C step core and the instrumentations set and read them as plain objects; the
# getters below are the typed public face.
current_run: contextvars.ContextVar[Any] = contextvars.ContextVar("agentstream_run", default=None)
current_step: contextvars.ContextVar[Any] = contextvars.ContextVar("agentstream_step",
                                                                   default=None)

F = TypeVar("F", bound=Callable[..., Any])


def propagate(fn: F) -> F:
    """``fn`` bound to a copy of the caller's context, for ``Thread(target=...)`` or executors."""
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def run_in_context(*args: Any, **kwargs: Any) -> Any:
        return ctx.copy().run(fn, *args, **kwargs)

    return cast(F, run_in_context)  # called as fn is: a TypeVar cannot say "same signature"


def get_current_run() -> Run | None:
    return current_run.get()


def get_current_step() -> Step | None:
    return current_step.get()
