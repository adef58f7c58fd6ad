"""Terminal views of the ``agentstream runs`` answers (rich). The --json output bypasses these."""
from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

STATUS_STYLE = {"SUCCESS": "green", "OK": "green", "FAILURE": "red", "ERROR": "red",
                "TIMEOUT": "red", "PARTIAL": "yellow", "CANCELLED": "yellow", "RUNNING": "cyan"}
OP_STYLE = {"same": "dim", "changed": "yellow", "inserted": "green", "removed": "red"}
OP_MARK = {"same": " ", "changed": "~", "inserted": "+", "removed": "-"}


def _status(s: str) -> Text:
    return Text(s, style=STATUS_STYLE.get(s, ""))


def _signed(x: float | int | None, fmt: str = "{:+.0f}") -> str:
    if x is None:
        return ""
    return fmt.format(x) if x else "0"


def explain_view(doc: dict[str, Any]) -> Group:
    parts: list[Any] = [Panel("\n".join(doc["summary"]), title=f"run {doc['run_id']}",
                              border_style=STATUS_STYLE.get(doc["outcome"]["status"], "white"))]
    t = doc["time"]
    if t["by_kind"]:
        table = Table(title="agent time by step kind (own time, no human waits)", title_justify="left")
        table.add_column("kind")
        table.add_column("ms", justify="right")
        table.add_column("share", justify="right")
        for k in t["by_kind"]:
            table.add_row(k["step_kind"], f"{k['ms']:.1f}", f"{100 * k['share']:.0f}%")
        table.caption = (f"wall {t['wall_ms']:.0f} ms · agent {t['agent_ms']:.0f} ms · human wait "
                         f"{t['human_wait_ms']:.0f} ms · outside steps {t['untracked_ms']:.0f} ms")
        parts.append(table)
    chain = doc["failure"]["chain"]
    if chain:
        table = Table(title="failure chain (root first)", title_justify="left")
        for col in ("#", "step", "status", "failures"):
            table.add_column(col)
        for c in chain:
            table.add_row(str(c["seq"]), f"{c['step_kind'].lower()} {c['name']}", _status(c["status"]),
                          ", ".join(c["failures"]))
        parts.append(table)
    if doc["retries"]:
        table = Table(title="retries", title_justify="left")
        for col in ("step", "attempts", "statuses", "recovered", "retried ms", "after"):
            table.add_column(col)
        for r in doc["retries"]:
            table.add_row(f"{r['step_kind'].lower()} {r['name']}", str(r["attempts"]),
                          " → ".join(r["statuses"]), "yes" if r["recovered"] else "no",
                          f"{r['retried_ms']:.0f}", ", ".join(r["failure_codes"]))
        parts.append(table)
    return Group(*parts)


def diff_view(doc: dict[str, Any]) -> Group:
    a, b, d = doc["a"], doc["b"], doc["total_delta"]
    head = Table.grid(padding=(0, 2))
    for _ in range(4):
        head.add_column()
    head.add_row("", Text("a", style="bold"), Text("b", style="bold"), Text("b - a", style="bold"))
    head.add_row("run", a["run_id"], b["run_id"], "")
    head.add_row("version", a["agent_version"], b["agent_version"], "")
    head.add_row("status", _status(a["status"]), _status(b["status"]),
                 "changed" if d["status_changed"] else "")
    for k, fmt in (("duration_ms", "{:+.1f}"), ("steps", "{:+d}"), ("failures", "{:+d}"),
                   ("retries", "{:+d}"), ("tokens", "{:+d}"), ("cost_usd", "{:+.6f}")):
        head.add_row(k, str(a[k]), str(b[k]), _signed(d[k], fmt))
    c = doc["counts"]
    first = doc["first_divergence"]
    summary = Text(f"{c['same']} same, {c['changed']} changed, {c['inserted']} inserted, "
                   f"{c['removed']} removed; " + ("identical" if doc["identical"] else
                                                  f"first divergence at position {first}"))
    table = Table(title="aligned steps", title_justify="left")
    for col in ("", "a #", "a step", "a status", "b #", "b step", "b status", "Δ ms", "Δ tokens",
                "Δ cost", "changed"):
        table.add_column(col, justify="right" if col.startswith("Δ") else "left")
    for op in doc["ops"]:
        x, y = op["a"] or {}, op["b"] or {}
        style = OP_STYLE[op["op"]] + (" bold" if op["index"] == first else "")
        table.add_row(
            OP_MARK[op["op"]], str(x.get("seq", "")),
            f"{x['step_kind'].lower()} {x['name']}" if x else "", x.get("status", ""),
            str(y.get("seq", "")), f"{y['step_kind'].lower()} {y['name']}" if y else "",
            y.get("status", ""), f"{op['delta']['latency_ms']:+.1f}", f"{op['delta']['tokens']:+d}",
            f"{op['delta']['cost_usd']:+.6f}", ", ".join(op["changes"]), style=style)
    return Group(head, summary, table)


def issued_view(doc: dict[str, Any]) -> Text:
    what = doc["command_type"].lower() + (f" ({doc['throttle_ms']} ms/step)" if doc.get("throttle_ms") else "")
    return Text(f"sent {what} to run {doc['run_id']}: command {doc['command_id']}, by {doc['issued_by']}, "
                f"reason: {doc['reason']}. The agent applies it before its next step and "
                "acknowledges it in the run's timeline.")
