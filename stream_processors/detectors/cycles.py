"""Cycles: a run going round the same block of 2 to 12 steps, too long for the repeat window.
Pure logic; ``runs.py`` feeds it each logical step that has a signature (retries and steps
without one never reach it, as they never reach the repeat rule's window), after the window.

Why: the repeat rule counts a signature within the last ``repeat_window`` steps (24), so a loop of
p steps shows it at most 24 / p times: from p = 5 up, a loop of 1,000 steps never got past 5.

The rule, at a step whose signature was last seen p steps back (2 <= p <= 12):
- the same signature ran every p steps for more than ``max_repeats`` laps (the repeat rule's
  threshold: a loop short enough for the window is found at the same step either way);
- and over those laps the block's *identical* calls (a position whose signature was the one p
  steps before it in every lap) outnumber its *new* ones (a position whose signature changed,
  unless it was an LLM request every lap). A changing LLM request counts for neither: its digest
  covers the whole history, which grows in a loop as much as in useful work, so it tells nothing.
  A pure cycle (every call identical) fires, and so does plan -> search(X) -> reflect ->
  fetch(url) -> write_note(new text) (2 identical to 1 new). A loop whose act or observe step
  takes new arguments every lap (fan-out, pagination, research over new URLs, plan/act/observe,
  a status poll beside real work) has at least as many new calls as identical ones: silent.

State (persisted with the run on every batch, so compact): one ASCII character per step for the
last ``history`` steps, saying only how far back the step's signature was last seen (1-12 steps,
or not: "fresh") and whether it is an LLM request: ~70 bytes. Which signatures those are is
read, when it matters, from the repeat rule's window (``win``, the last ``repeat_window`` full
signatures): the gap on a step the window has seen before (rare in a healthy run, so a fresh
step costs an append), the names and subjects when a cycle fires. Hence the rule runs only when
the window is on and shorter than ``history``: a longer window (or 0, the whole run) sees every
such loop as repeats; one shorter than 13 steps bounds the period below 12.

A signature seen twice within one lap (A B A C D) is not "identical every lap" at either of its
positions (its last sighting is 2 or 3 steps back, never 5); a block with at least one call
identical and once per lap is still found.

Not per worker: parallel workers under their own parent steps interleave at random in one run;
each one's loop would show in a sequence of its parent's steps (``parent_step_id``). The hot
path's field reader does not select that field (``event_reader.DETECTOR_FIELDS``; a test holds
the detectors to reading only what it selects), so the run is one sequence: workers in lock-step
are found (a round of all of them is one period), workers scheduled at random are not.
"""
from __future__ import annotations

from typing import NamedTuple

MAX_PERIOD = 12
HISTORY_CAP = 121   # steps kept: periods up to 12 at max_repeats <= 10, shorter ones above
_SLACK = 16         # the history is cut back every 16 steps, not on every one
# A step's character: "A" + gap for an LLM request, "a" + gap for anything else; gap 0 = fresh.
_LLM, _OTHER = ord("A"), ord("a")


class Cycle(NamedTuple):
    period: int
    laps: int
    same: tuple[bool, ...]  # per position of the last lap, oldest first: identical every lap

    def subjects(self, win: list[str]) -> list[str]:
        """The identical calls' signatures (the last lap's are ``win[-period:]``)."""
        return [sig for sig, same in zip(win[-self.period:], self.same) if same]

    def steps(self, win: list[str]) -> str:
        """The last lap by name, oldest first: ``llm:gpt-4o > search= > ...``, "=" marking the
        identical calls. Never a digest."""
        out = []
        for sig, same in zip(win[-self.period:], self.same):
            kind, _, rest = sig.partition("|")
            name = rest[:rest.rfind("|")][:40]
            label = f"llm:{name}" if kind == "LLM" else name
            out.append(label + "=" if same else label)
        return " > ".join(out)

    def reason(self, steps: str, allowed: int) -> str:
        return (f"{self.period} steps repeated {self.laps} times: {steps} ({sum(self.same)} of "
                f"{self.period} identical every lap; allowed {allowed} laps)")


def history(max_repeats: int) -> int:
    """Steps kept: ``max_repeats`` laps of the longest period and one step more."""
    return min(max(max_repeats, 1) * MAX_PERIOD + 1, HISTORY_CAP)


def observe(hist: str, sig: str, win: list[str], seen: int, keep: int, max_repeats: int,
            judge: bool) -> tuple[str, Cycle | None]:
    """``hist`` with the step added (``sig``, the last of ``win``, seen ``seen`` times in it), and
    with ``judge`` the cycle the step completes, if any (without: only remembered)."""
    base = _LLM if sig.startswith("LLM|") else _OTHER
    gap = 0
    if seen > 1:  # seen before within the window: how far back, if 12 steps or fewer
        back = win[-2:-2 - MAX_PERIOD:-1]
        if sig in back:
            gap = back.index(sig) + 1
    hist += chr(base + gap)
    if len(hist) > keep + _SLACK:
        hist = hist[-keep:]
    if gap < 2 or not judge:
        return hist, None
    return hist, _judge(hist, gap, max_repeats)


def _judge(hist: str, p: int, max_repeats: int) -> Cycle | None:
    """The cycle of period ``p`` ending at the last step (seen ``p`` steps before), if any."""
    last = len(hist) - 1
    k = max_repeats + 1 if max_repeats > 0 else 2  # laps over the threshold
    span = (k - 1) * p + 1  # from the signature's first lap to now
    if span > last + 1 or hist[last + 1 - span + p::p] != hist[last] * (k - 1):
        return None
    tail = hist[last + 1 - span:]
    same = []
    novel = 0
    llm_p, other_p = chr(_LLM + p), chr(_OTHER + p)
    for col in range(p):
        x = tail[col + p::p]  # the column's laps after its first: each should be its p-back
        if x and (x.count(llm_p) == len(x) or x.count(other_p) == len(x)):
            same.append(True)
        else:
            same.append(False)
            if x and max(tail[col::p]) >= "a":  # not an LLM request in every lap
                novel += 1
    if sum(same) <= novel:
        return None
    col0 = hist[last::-p]
    laps = len(col0) - len(col0.lstrip(hist[last])) + 1
    n = len(tail)
    return Cycle(p, laps, tuple(same[i % p] for i in range(n - p, n)))
