"""The repeat rule of loop detection: one definition for the SDK and the processors.

The processors judge a run's steps as they arrive (``stream_processors/detectors/runs.py``); the
SDK refuses the step that would break the same rule before it runs (``max_repeated_fingerprints``,
``producer/gate.py``). When the two disagree, an agent is stopped for a loop no alert shows, or a
loop alert fires where the SDK let the agent go on. Found by a probe: the SDK counted every
attempt of a retried call, and counted over the whole run, so a retried call and a lookup used
every 25 steps were stopped as loops that the processors rightly did not see.

- A step's *signature* is (kind, name, digest): the tool's ``args_digest``, the LLM call's
  ``request_digest`` or an ``agentstream.args_digest`` attribute (``step_signature``). A step
  without one has unknown arguments: it is never a repeat, and takes no place in the window.
- A retry (``attempt`` > 1 or ``retry_of`` set: ``is_retry``) is another attempt of the same
  logical call. It lengthens that call's retry chain, which is judged by its length; it is not
  a repeat, and takes no place in the window either.
- A *repeat* is a signature seen more often than allowed within the last ``window`` logical
  steps that have a signature (``count_in_window``; ``REPEAT_WINDOW`` unless a tenant sets
  ``repeat_window``; 0 counts over the whole run, remembering at most ``MAX_SIGNATURES``).

Pure functions over the processors' persisted state layout (``win``: the window's signatures,
oldest first; ``cnt``: signature -> count), so the processors' run state reads the same.
"""
from __future__ import annotations

from typing import Any, Mapping

DIGEST_ATTR = "agentstream.args_digest"
REPEAT_WINDOW = 24      # logical steps with a signature; the processors' default repeat_window
MAX_SIGNATURES = 2048   # whole-run counting (window 0) keeps at most this many signatures


def step_signature(step_kind: Any, name: Any, tool: Mapping[str, Any] | None,
                   llm: Mapping[str, Any] | None,
                   attributes: Mapping[str, Any] | None) -> str | None:
    """(kind, name, digest) of a step as ``kind|name|digest``, or None when its arguments are
    unknown. ``tool``/``llm`` are the STEP payload's sections (a tool's name and a model call's
    request model name it when given)."""
    digest = None
    if tool:
        digest = tool.get("args_digest")
        name = tool.get("tool_name") or name
    elif llm:
        digest = llm.get("request_digest")
        name = llm.get("request_model") or name
    if not digest and attributes:
        digest = attributes.get(DIGEST_ATTR)
    if not digest:
        return None
    return f"{step_kind}|{name}|{digest}"


def is_retry(attempt: Any, retry_of: Any) -> bool:
    """Whether a step is a retry of an earlier attempt (the processors' chain length > 1)."""
    return bool(retry_of) or bool(attempt) and int(attempt) > 1


def count_in_window(win: list[str], cnt: dict[str, int], sig: str, window: int) -> int:
    """Counts one more logical step with signature ``sig``; returns how often ``sig`` is in the
    window now, this step included. ``win`` and ``cnt`` are updated in place."""
    n = cnt.get(sig, 0) + 1
    cnt[sig] = n
    if window > 0:
        win.append(sig)
        while len(win) > window:
            old = win.pop(0)
            left = cnt[old] - 1
            if left:
                cnt[old] = left
            else:
                del cnt[old]
    elif len(cnt) > MAX_SIGNATURES:
        # Bounded whole-run memory: forget a quarter of the signatures seen once, oldest first
        # (in bulk, so the cost per step stays constant).
        for k in [k for k, v in cnt.items() if v == 1 and k != sig][: MAX_SIGNATURES // 4]:
            del cnt[k]
    return cnt.get(sig, 0)
