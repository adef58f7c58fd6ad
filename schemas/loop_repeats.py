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
- A changed result is progress. A step may carry a keyed digest of its result
  (``RESULT_DIGEST_ATTR``; the SDK's ``Step.record_result``, never the result itself). A call
  counts among the calls of its signature *since the signature's result last changed*: it is
  counted under ``call_key`` (the signature, and how often its result changed), and its own
  result is noted after (``note_result``), since the SDK counts a call before it runs. So
  ``max_repeats`` is how many calls in a row may go without a new result: polling a job's
  status until it is done is not a loop, the same call returning the same result is, and a call
  whose result is unknown (no digest) is judged as before. A retry's result is its call's. LLM
  calls are not judged by their result: a sampled reply that differs is not new evidence.
- New work between two calls is progress too (``count_repeat``): a call whose signature reports
  no result (its result would decide) counts as a repeat only
  when the steps since its previous call hold no more *new* non-LLM calls (a call key not in the
  window before) than *identical* ones (a key already there; a call whose result changed counts
  as new). Otherwise its count starts afresh. Found by a probe: ``screenshot()`` before each of 6
  different clicks, 6 handed-off agents each reading ``get_ticket(123)`` once, a ``wait(10)``
  between polls of a job whose status moves, all stopped as ``repeat`` loops. A call repeated
  with only LLM turns between (the agent re-planning: its requests change every time, so they
  are not counted either way) or beside other repeated calls still counts; so the loops in
  which every lap repeats stay loops (ping-pong and cycles are judged on the window as before).

Pure functions over the processors' persisted state layout (``win``: the window's call keys,
oldest first; ``cnt``: call key -> count; ``res``: signature -> [changes, result digest's first
``RESULT_CHARS`` characters], only for signatures that returned a result; ``nov``: the novelty
balance, see ``count_repeat``), so the processors' run state reads the same.
"""
from __future__ import annotations

from typing import Any, Mapping

DIGEST_ATTR = "agentstream.args_digest"
# A step's result digest. Not "…result…": the processors' byte prefilter reads content words
# (result, output, args…) in attribute keys as a content key and takes every such event down the
# full decode-and-redact path (~25 µs more each); this key is metadata and passes as bytes.
RESULT_DIGEST_ATTR = "agentstream.return_digest"
RESULT_CHARS = 16       # of a result digest kept per signature (64 bits tell two results apart)
MAX_RESULTS = 32        # signatures' results kept before those out of the window are forgotten
GEN_SEP = "\x1e"        # between a signature and its result changes in a call key
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


BALANCE = ""  # the novelty map's running balance (no call key is empty)


def count_repeat(win: list[str], cnt: dict[str, int], nov: dict[str, Any], key: str, window: int,
                 llm: bool, by_result: bool = False) -> tuple[int, int]:
    """``count_in_window`` for a logical step counted under ``key``, then the novelty test.
    Returns (how often ``key`` is in the window now, how many of those calls count as repeats:
    the calls since the last one with more new than identical non-LLM calls before it).
    ``by_result``: the call's signature reports results (``res`` has it), and they decide: the
    same result again is no progress, whatever new work went on around it (a status poll stuck
    on one value beside new searches is still a loop), so every call in the window counts.

    Why a balance: the test is O(1) per step. ``nov[BALANCE]`` is (new - identical) non-LLM
    calls so far; ``nov[key]`` is [the balance just after ``key``'s last call, its repeat count
    then]. The steps between two calls of ``key`` held more new than identical calls iff the
    balance rose in between. The calls that count as repeats and the calls in the window are
    both the latest of ``key``'s calls, so the repeats in the window are the smaller number."""
    seen = count_in_window(win, cnt, key, window)
    bal = nov.get(BALANCE, 0)
    last = nov.get(key)
    if by_result:
        run = seen
    else:
        run = last[1] + 1 if seen > 1 and last is not None and bal <= last[0] else 1
    if not llm:
        bal += 1 if seen == 1 else -1
        nov[BALANCE] = bal
    if last is None:
        nov[key] = [bal, run]
        if len(nov) > 2 * len(cnt) + 64:  # bounded as the window is (amortised: rarely)
            for k in [k for k in nov if k not in cnt and k != BALANCE]:
                del nov[k]
    else:
        last[0], last[1] = bal, run  # in place: no list per step
    return seen, run if run < seen else seen


def call_key(sig: str, res: Mapping[str, list[Any]] | None) -> str:
    """What a call with signature ``sig`` counts under in the window: ``sig`` until its result
    first changes, then ``sig`` + ``GEN_SEP`` + how often it changed."""
    r = res.get(sig) if res else None
    return f"{sig}{GEN_SEP}{r[0]}" if r is not None and r[0] else sig


def note_result(res: dict[str, list[Any]], sig: str, digest: Any, win: list[str],
                cnt: Mapping[str, int], nov: dict[str, Any] | None = None) -> None:
    """After a call with signature ``sig`` (not an LLM call's) returned a result whose digest is
    ``digest``: a result unlike the last one noted for ``sig`` is progress, so its next calls
    count afresh, and (``nov``) the call counts as a new one in the novelty balance. Bounded:
    past ``MAX_RESULTS`` signatures, those with no call left in the window are forgotten (their
    count starts afresh anyway)."""
    if not digest or digest.__class__ is not str:
        return
    d = digest[:RESULT_CHARS]
    r = res.get(sig)
    if r is None:
        res[sig] = [0, d]
        if len(res) > MAX_RESULTS:
            live = {k.split(GEN_SEP, 1)[0] for k in (win or cnt)}
            for k in [k for k in res if k not in live and k != sig]:
                del res[k]
            while len(res) > MAX_SIGNATURES:  # whole-run counting: as bounded as its counts
                del res[next(iter(res))]
    elif r[1] != d:
        if nov is not None and cnt.get(f"{sig}{GEN_SEP}{r[0]}" if r[0] else sig, 0) > 1:
            # counted as identical (its key was in the window already), it brought something
            # new: -1 becomes +1 (one counted as new already stays as it is)
            nov[BALANCE] = nov.get(BALANCE, 0) + 2
        r[0] += 1
        r[1] = d
