"""``agentstream runs replay``: a run's waterfall, re-played in the terminal as it happened.

``frames`` and ``render`` are pure (a timeline from GET /v1/runs/{id}/timeline in, moments and
a picture at a moment out). ``play`` drives them: on a terminal, a live-updating waterfall with
keys (space pause/resume, n or → step to the next moment, + and - speed, q quit); otherwise (a
pipe, CI), one line per moment as it happens, so the output is a readable log.
"""
from __future__ import annotations

import os
import select
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, TextIO

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from .runs_render import STATUS_STYLE

BAR = 40


@dataclass(frozen=True)
class Moment:
    at_ms: float
    what: str  # start, end, marker
    label: str
    item: dict[str, Any]


def parse_speed(text: str) -> float:
    """'10x', '10', '0.5x' → a factor; 'max' → infinity (no waiting)."""
    t = text.strip().lower()
    if t in ("max", "inf", "instant"):
        return float("inf")
    t = t.removesuffix("x")
    try:
        v = float(t)
    except ValueError:
        raise ValueError(f"speed must look like 10x, 0.5x or max, not {text!r}") from None
    if not 0 < v <= 1e6:
        raise ValueError("speed must be above 0")
    return v


def frames(timeline: dict[str, Any]) -> list[Moment]:
    out = []
    for s in timeline["spans"]:
        label = f"{s['kind'].lower()} {s['name']}"
        out.append(Moment(s["start_ms"], "start", label, s))
        out.append(Moment(s["end_ms"], "end", label, s))
    for m in timeline["markers"]:
        out.append(Moment(m["at_ms"], "marker", f"{m['kind'].lower()} {m['label']}", m))
    order = {"end": 0, "marker": 1, "start": 2}
    out.sort(key=lambda m: (m.at_ms, order[m.what], m.item.get("seq", 0)))
    return out


def log_line(m: Moment) -> str:
    at = f"[+{m.at_ms / 1000:9.3f} s]"
    if m.what == "start":
        return f"{at} {'  ' * m.item['depth']}▶ {m.label}" + (
            f" (attempt {m.item['attempt']})" if m.item["attempt"] > 1 else "")
    if m.what == "end":
        wait = f", waited {m.item['wait_ms']:.0f} ms for a human" if m.item.get("wait_ms") else ""
        return f"{at} {'  ' * m.item['depth']}■ {m.label} {m.item['status']} {m.item['duration_ms']:.0f} ms{wait}"
    return f"{at} ◆ {m.label}"


def render(timeline: dict[str, Any], now_ms: float, state: str = "") -> Group:
    total = max(timeline["duration_ms"], max((s["end_ms"] for s in timeline["spans"]), default=0), 1e-9)
    table = Table(show_header=True, header_style="bold", expand=False, box=None)
    table.add_column("step", no_wrap=True, max_width=48)
    table.add_column("waterfall", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("ms", justify="right")
    for s in timeline["spans"]:
        if s["start_ms"] > now_ms:
            continue
        done = s["end_ms"] <= now_ms
        lo = int(BAR * s["start_ms"] / total)
        hi = max(lo + 1, int(BAR * min(s["end_ms"], now_ms) / total))
        style = STATUS_STYLE.get(s["status"], "") if done else "cyan"
        bar = Text(" " * lo) + Text("█" * (hi - lo), style=style if not s["is_wait"] else "magenta")
        shown = s["duration_ms"] if done else now_ms - s["start_ms"]
        table.add_row("  " * s["depth"] + f"{s['kind'].lower()} {s['name']}", bar,
                      Text(s["status"] if done else "running", style=style), f"{shown:.0f}")
    marks = [m for m in timeline["markers"] if m["at_ms"] <= now_ms]
    foot = Text(f"{timeline['run_id']}  {now_ms / 1000:.3f} / {total / 1000:.3f} s  {state}", style="bold")
    lines = [Text(f"◆ +{m['at_ms'] / 1000:.3f} s {m['kind'].lower()} {m['label']}") for m in marks[-5:]]
    return Group(table, *lines, foot, Text("space pause · n step · +/- speed · q quit", style="dim"))


def play_log(timeline: dict[str, Any], speed: float, out: TextIO,
             sleep: Callable[[float], None] = time.sleep) -> int:
    """Non-interactive: prints each moment, waiting the (scaled) time between them."""
    last = 0.0
    n = 0
    for m in frames(timeline):
        gap = (m.at_ms - last) / 1000 / speed
        if gap > 0 and speed != float("inf"):
            sleep(min(gap, 5.0))  # a long idle stretch is capped, not re-lived
        last = m.at_ms
        print(log_line(m), file=out, flush=True)
        n += 1
    print(f"replayed {n} moments of run {timeline['run_id']} ({timeline['status']}, "
          f"{timeline['duration_ms']:.0f} ms)", file=out, flush=True)
    return n


def split_keys(chunk: str) -> list[str]:
    """Every key in one read: keys typed fast (or sent by a script) arrive together, and each
    counts. The right arrow (ESC [ C) is ``n``; other escape sequences are dropped whole."""
    keys, i = [], 0
    while i < len(chunk):
        if chunk[i] == "\x1b":
            seq = chunk[i:i + 3]
            if seq == "\x1b[C":
                keys.append("n")
            i += 3 if seq.startswith("\x1b[") else 1
            continue
        keys.append(chunk[i])
        i += 1
    return keys


def _read_keys(timeout: float) -> list[str]:
    ready, _, _ = select.select([sys.stdin], [], [], max(0.0, timeout))
    if not ready:
        return []
    return split_keys(os.read(sys.stdin.fileno(), 64).decode(errors="ignore"))


def play_live(timeline: dict[str, Any], speed: float, console: Console) -> None:
    """Interactive: a live waterfall, driven by the clock and the keys."""
    import termios
    import tty

    from rich.live import Live

    moments = frames(timeline)
    end_ms = max([timeline["duration_ms"]] + [m.at_ms for m in moments])
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    paused, now_ms = False, 0.0
    speed = 1e9 if speed == float("inf") else speed
    try:
        tty.setcbreak(fd)
        with Live(render(timeline, 0.0), console=console, auto_refresh=False) as live:
            last = time.monotonic()
            while True:
                keys = _read_keys(0.05)
                tick = time.monotonic()
                if not paused:
                    now_ms = min(end_ms, now_ms + (tick - last) * 1000 * speed)
                last = tick
                if "q" in keys:
                    break
                for key in keys:
                    if key == " ":
                        paused = not paused
                    elif key == "n":
                        paused = True
                        now_ms = next((m.at_ms for m in moments if m.at_ms > now_ms), end_ms)
                    elif key in ("+", "="):
                        speed *= 2
                    elif key == "-":
                        speed /= 2
                done = now_ms >= end_ms
                state = "done (q to quit)" if done else ("paused" if paused else f"{speed:g}x")
                live.update(render(timeline, now_ms, state), refresh=True)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
