"""``agentstream runs share``: one run as a single HTML file that anyone can open, with no account,
no server and no network: the dashboard's run page (waterfall, play control, plain account,
enforcement, topology) with the API's answers for that run carried inside it.

What makes the file safe to hand on, by construction:

- the data is what the API answers for the run, i.e. what the processors stored, already
  redacted; nothing else of the tenant is in it (other runs are not: their links lead nowhere);
- the answers are JSON inside a ``<script>``: ``<``, ``>``, ``&`` and the two JavaScript line
  separators are escaped, so a stored name cannot close the script or open another one, and the
  page renders every value as text (``AS.el``), never as markup;
- a Content-Security-Policy forbids every request (``default-src 'none'``, ``connect-src
  'none'``): opened anywhere, the page fetches nothing and sends nothing;
- it operates nothing: Stop, Throttle and Diff are not rendered (``AS.shared``), and ``AS.api``
  refuses any method but GET.
"""
from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any
from urllib.parse import quote

# What the run page loads, in its order (api/dashboard/pages.py: the "run" page and its extras).
SCRIPTS = ("common", "run", "run_ops", "topology")
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
       "connect-src 'none'; form-action 'none'; base-uri 'none'")
ALERTS_LIMIT = 100  # run.js asks for the run's first 100 alerts


def encode_uri_component(s: str) -> str:
    """JavaScript's encodeURIComponent."""
    return quote(s, safe="-_.!~*'()")


def form_urlencode(params: list[tuple[str, str]]) -> str:
    """What URLSearchParams.toString() gives (the WHATWG form encoding: space as ``+``)."""
    def enc(s: str) -> str:
        # Python's quote never escapes "~"; the form encoding does
        return quote(s, safe="*-._ ").replace("~", "%7E").replace(" ", "+")
    return "&".join(f"{enc(k)}={enc(v)}" for k, v in params)


def requests(run_id: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """What the run page's scripts ask for: the path exactly as they spell it (the key its answer
    is found under) -> the route and parameters to read it from."""
    run = "/v1/runs/" + encode_uri_component(run_id)
    out: dict[str, tuple[str, dict[str, Any]]] = {run + tail: (run + tail, {}) for tail in
                                                  ("", "/timeline", "/explain", "/topology")}
    alerts = [("run_id", run_id), ("limit", str(ALERTS_LIMIT))]
    out["/v1/alerts?" + form_urlencode(alerts)] = ("/v1/alerts", dict(alerts))
    return out


def script_json(doc: Any) -> str:
    """JSON that can stand inside a <script> element: nothing in it can end the element, start a
    comment or break a JavaScript line."""
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def _asset(rel: str) -> str:
    text = (resources.files("agentstream.api") / "static" / rel).read_text(encoding="utf-8")
    if "</script" in text.lower() or "</style" in text.lower():  # would end its own element early
        raise ValueError(f"static asset {rel} cannot be inlined")
    return text


def share_html(run_id: str, answers: dict[str, Any], tenant: str, taken_at: str) -> str:
    """The page: the run page's skeleton, styles and scripts inline, and ``answers`` (API path ->
    the JSON it answered) for its scripts to read instead of the network."""
    from agentstream.api.dashboard.pages import SKELETONS

    embed = {"answers": answers, "tenant": tenant, "taken_at": taken_at, "run_id": run_id}
    scripts = "".join(f"<script>{_asset(f'js/{name}.js')}</script>\n" for name in SCRIPTS)
    title = html.escape(f"Run {run_id} · agentstream (shared)")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<style>{_asset('css/dashboard.css')}</style>
</head><body>
<header class="top"><div class="logo">agent<span>stream</span></div></header>
<main data-page="run" data-run-id="{html.escape(run_id, quote=True)}" data-shared="1">{SKELETONS["run"]}</main>
<script>window.AGENTSTREAM_SHARED = {script_json(embed)};</script>
{scripts}</body></html>
"""
