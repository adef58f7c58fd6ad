"""Shared by the step tests: a tracer with no transport thread, and its queue decoded."""
from __future__ import annotations

from agentstream.producer import Tracer
from agentstream.schemas import Codec


def make_tracer(tmp_path, speedups: bool, **kw) -> Tracer:
    """``speedups``: the C step core (True) or the pure-Python one (False)."""
    t = Tracer("acme", "agent", "1.0", "test", bootstrap_servers="127.0.0.1:1",
               spool_dir=str(tmp_path / f"spool-{speedups}"), commands_enabled=False,
               speedups=speedups, **kw)
    t._transport.needs_start = False  # no background thread: the test drains the queue itself
    return t


def drain(tracer) -> list[dict]:
    """Everything queued so far, through the pipeline's own encoder, decoded."""
    codec, out = Codec(), []
    q = tracer._transport.q
    while q:
        for _key, value in tracer._pipeline.process(q.popleft()):
            out.append(codec.decode(value)[1])
    return out
