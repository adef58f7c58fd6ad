"""Length bounds on the text an event carries, applied on the transport thread before encoding.

A name is metadata, not content: a 12 MB tool name used to become a 12 MB record that no broker
takes (librdkafka's ``message.max.bytes`` is 1 MB, so is the gateway's ``max_record_bytes``), and
the whole event was lost. Bounds, each cut counted in ``stats()["truncated"]``:

- ids (run, session, parent run, step, call, retry-of, handoff target run): ``ID_MAX`` = 256
  characters, the id format the gateway and the processors accept (``schemas/id_format.py``);
- names and other text (step, tool, agent and run names, roles, handoff target agent, payload
  codes and messages, attribute keys): ``NAME_MAX`` = 1024 characters, as attribute values
  (``wire.MAX_ATTR_LEN``). The gateway bounds only the whole record; 1 KB keeps any event far
  below it.

The common case costs a length test per field: a copy is made only for an event that needs a cut.
"""
from __future__ import annotations

from typing import Any

ID_MAX = 256
NAME_MAX = 1024

# STEP sections: which of their fields are ids (the rest of their text is names)
_SECTION_IDS = {"tool": ("call_id",), "handoff": ("to_run_id",), "fallback": ()}
# non-STEP payload fields that hold ids
_PAYLOAD_IDS = frozenset({"step_id", "command_id"})


def _over(v: Any, limit: int) -> bool:
    return v.__class__ is str and len(v) > limit


def _longest(rec: dict[str, Any]) -> int:
    """The longest text among a section's values (0 for none)."""
    n = 0
    for v in rec.values():
        if v.__class__ is str and len(v) > n:
            n = len(v)
    return n


def _longest_key(attrs: dict[Any, Any]) -> int:
    try:
        return max(map(len, attrs))
    except TypeError:  # a key without a length (not text): judged one by one
        return max((len(k) for k in attrs if k.__class__ is str), default=0)


class Bounds:
    """Cuts over-long text in place of the event's own objects (the agent's thread no longer
    holds them: a closed step, a queued payload) and counts each cut in ``counter.truncated``."""

    def __init__(self, counter: Any) -> None:
        self.counter = counter

    def _cut(self, v: str, limit: int) -> str:
        self.counter.truncated += 1
        return v[:limit]

    def text(self, v: Any, limit: int = NAME_MAX) -> Any:
        return self._cut(v, limit) if v.__class__ is str and len(v) > limit else v

    def step(self, s: Any) -> None:
        """A closed step's name, retry link, explicit parent and its sections' text. Runs for
        every step on the transport thread: the common step (nothing over ``ID_MAX``) costs a
        length test per field, no call per section (a loop over the sections by name cost
        ~2.3 µs a step, a fifth of the transport's CPU per event)."""
        if _over(s.name, NAME_MAX):
            s.name = self._cut(s.name, NAME_MAX)
        if _over(s.retry_of, ID_MAX):
            s.retry_of = self._cut(s.retry_of, ID_MAX)
        if _over(s._parent, ID_MAX):
            s._parent = self._cut(s._parent, ID_MAX)
        tool, handoff, fallback = s.tool, s.handoff, s.fallback
        if tool is not None and _longest(tool) > ID_MAX:
            self._section(tool, _SECTION_IDS["tool"])
        if handoff is not None and _longest(handoff) > ID_MAX:
            self._section(handoff, _SECTION_IDS["handoff"])
        if fallback is not None and _longest(fallback) > ID_MAX:
            self._section(fallback, _SECTION_IDS["fallback"])
        attrs = s.attrs
        if attrs and _longest_key(attrs) > NAME_MAX:
            s.attrs = self.attributes(attrs)

    def _section(self, rec: dict[str, Any], ids: tuple[str, ...]) -> None:
        for k, v in rec.items():
            if v.__class__ is str:
                limit = ID_MAX if k in ids else NAME_MAX
                if len(v) > limit:
                    rec[k] = self._cut(v, limit)

    def attributes(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Attribute keys (values are bounded by the encoder)."""
        return {self.text(k): v for k, v in attrs.items()}

    def payload(self, payload: Any) -> Any:
        """A RUN_START/FAILURE/DECISION/... payload: its text fields, and lists of text."""
        if payload.__class__ is not dict:
            return payload
        out = None
        for k, v in payload.items():
            limit = ID_MAX if k in _PAYLOAD_IDS else NAME_MAX
            if v.__class__ is str:
                if len(v) <= limit:
                    continue
                new: Any = self._cut(v, limit)
            elif v.__class__ in (list, tuple) and any(_over(i, limit) for i in v):
                new = [self.text(i, limit) for i in v]
            else:
                continue
            if out is None:
                out = dict(payload)  # the caller's dict stays as it was
            out[k] = new
        return payload if out is None else out
