"""The dashboard's HTML: one shell (nav, assets) around a small static skeleton per page.

Pages carry no data; each page's script fetches it from the API with the session cookie. Values
that do go into HTML (tenant, run id) are escaped. Every asset is served from /ui/static.
"""
from __future__ import annotations

from html import escape

ASSET_VERSION = "2"

NAV = [
    ("fleet", "/ui", "Fleet"),
    ("runs", "/ui/runs", "Runs"),
    ("sessions", "/ui/sessions", "Sessions"),
    ("costs", "/ui/costs", "Costs"),
    ("compare", "/ui/compare", "Compare"),
    ("alerts", "/ui/alerts", "Alerts"),
    ("drift", "/ui/drift", "Drift"),
    ("policies", "/ui/policies", "Policies"),
]

# Scripts may come from this origin only; connect-src pins fetch/EventSource to the API itself.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")

SKELETONS: dict[str, str] = {
    "fleet": """
<h1>Fleet</h1>
<p class="sub">What every agent and version is doing now. Trend sparklines cover <span id="window">the recent window</span>.</p>
<div class="kpis" id="kpis"></div>
<div class="grid main-side">
  <section class="panel"><h2>Agents and versions</h2><div id="fleet-table" class="empty">loading…</div></section>
  <section class="panel"><h2><span class="live-dot" id="live-dot"></span>Live alerts</h2>
    <ul class="ticker" id="ticker"></ul>
    <p class="note"><a href="/ui/alerts">all alerts →</a></p></section>
</div>
<section class="panel" style="margin-top:16px"><h2>Consumer lag per pipeline stage</h2>
  <div id="lag" class="empty">loading…</div><p class="note" id="lag-note"></p></section>
""",
    "runs": """
<h1>Runs</h1>
<p class="sub">Newest first. Filters apply on the server; pages follow the API's cursor.</p>
<form class="filters" id="filters">
  <label>agent<select name="agent"><option value="">any</option></select></label>
  <label>version<select name="version"><option value="">any</option></select></label>
  <label>status<select name="status"><option value="">any</option><option>SUCCESS</option><option>FAILURE</option><option>PARTIAL</option><option>RUNNING</option></select></label>
  <label>environment<input name="environment" size="10"></label>
  <label>since<input name="since" type="datetime-local"></label>
  <label>until<input name="until" type="datetime-local"></label>
  <button type="submit">Apply</button>
</form>
<section class="panel"><div id="runs-table" class="empty">loading…</div>
  <div class="pager"><button type="button" class="secondary" id="first">⇤ newest</button>
  <button type="button" id="next">next page →</button><span class="note" id="page-info"></span></div></section>
""",
    "run": """
<p class="note"><a href="/ui/runs">← runs</a></p>
<h1>Run <span class="mono" id="run-title"></span></h1>
<p class="sub" id="run-sub"></p>
<div class="kpis" id="kpis"></div>
<section class="panel" id="enforcement-panel"><h2>Enforcement</h2><div id="enforcement" class="empty">loading…</div></section>
<div class="grid main-side" style="margin-top:16px">
  <section class="panel"><h2>Waterfall</h2><div class="legend" id="legend"></div><div id="waterfall" class="wf">loading…</div></section>
  <section class="panel"><h2>Details</h2><div id="detail" class="note">Click a bar or marker.</div></section>
</div>
<section class="panel" id="topology-panel" style="margin-top:16px"><h2>Agent topology</h2><div id="topology" class="empty">loading…</div></section>
""",
    "compare": """
<h1>Compare versions</h1>
<p class="sub">Two versions of one agent side by side; each difference comes with its significance.</p>
<form class="filters" id="cmp-form">
  <label>agent<select name="agent" required></select></label>
  <label>version A (baseline)<select name="a" required></select></label>
  <label>version B (candidate)<select name="b" required></select></label>
  <button type="submit">Compare</button>
</form>
<div id="cmp-summary"></div>
<div class="grid cols-2">
  <section class="panel"><h2>Failure rate</h2><div id="cmp-failure"></div></section>
  <section class="panel"><h2>Latency distribution (run duration by percentile)</h2><div id="cmp-latency" class="chart"></div></section>
  <section class="panel"><h2>Tool mix (share of tool calls)</h2><div id="cmp-tools"></div></section>
  <section class="panel"><h2>Cost per run (by percentile)</h2><div id="cmp-cost" class="chart"></div></section>
</div>
""",
    "alerts": """
<h1>Alerts</h1>
<p class="sub">Detector findings, newest first. Each links to its run or agent, with its evidence.</p>
<form class="filters" id="filters">
  <label>type<select name="alert_type"><option value="">any</option>
    <option>loop</option><option>budget_warning</option><option>budget_breach</option><option>drift</option>
    <option>redaction_quarantine</option><option>policy_violation</option><option>approval_violation</option>
    <option>handoff_loop</option><option>delegation_limit</option></select></label>
  <label>severity<select name="severity"><option value="">any</option><option>INFO</option><option>WARNING</option><option>CRITICAL</option></select></label>
  <label>agent<input name="agent_id" size="14"></label>
  <label>run<input name="run_id" size="14"></label>
  <label>state<select name="state"><option value="">any</option><option>open</option><option>acknowledged</option>
    <option>resolved</option></select></label>
  <button type="submit">Apply</button>
</form>
<section class="panel"><div id="alerts-table" class="empty">loading…</div>
  <div class="pager"><button type="button" class="secondary" id="first">⇤ newest</button>
  <button type="button" id="next">next page →</button></div></section>
<section class="panel" style="margin-top:16px"><h2>Silences</h2>
  <p class="note">A silence stops the forwarder from sending matching alerts until it expires; they still show here.</p>
  <form class="filters" id="silence-form">
    <label>type<input name="alert_type" size="12" placeholder="any"></label>
    <label>agent<input name="agent_id" size="12" placeholder="any"></label>
    <label>severity<select name="severity"><option value="">any</option><option>INFO</option><option>WARNING</option>
      <option>CRITICAL</option></select></label>
    <label>for<select name="duration_s"><option value="3600">1 hour</option><option value="14400">4 hours</option>
      <option value="86400">1 day</option><option value="604800">7 days</option></select></label>
    <label>comment<input name="comment" size="18"></label>
    <button type="submit">Silence</button>
  </form>
  <div id="silences" class="empty">loading…</div></section>
""",
    "sessions": """
<h1>Sessions</h1>
<p class="sub">Runs that share a session id (a conversation), most recently active first, with their totals.</p>
<form class="filters" id="filters">
  <label>agent<input name="agent" size="14"></label>
  <label>min cost (USD)<input name="min_cost_usd" size="6" inputmode="decimal"></label>
  <button type="submit">Apply</button>
</form>
<section class="panel"><div id="sessions-table" class="empty">loading…</div>
  <div class="pager"><button type="button" class="secondary" id="first">⇤ newest</button>
  <button type="button" id="next">next page →</button></div></section>
""",
    "session": """
<p class="note"><a href="/ui/sessions">← sessions</a></p>
<h1>Session <span class="mono" id="session-title"></span></h1>
<p class="sub" id="session-sub"></p>
<div class="kpis" id="kpis"></div>
<section class="panel"><h2>Runs in order</h2><div id="session-timeline" class="session-timeline"></div>
  <div id="session-runs" class="empty">loading…</div></section>
""",
    "costs": """
<h1>Costs</h1>
<p class="sub">LLM spend and tokens from the daily cost rollup. Tokens are split into input, output and
cached (input read from the provider's prompt cache).</p>
<form class="filters" id="filters">
  <label>period<select name="days"><option value="7">last 7 days</option><option value="30" selected>last 30 days</option>
    <option value="90">last 90 days</option></select></label>
  <label>stack by<select name="stack"><option value="model">model</option><option value="agent">agent</option>
    <option value="version">version</option><option value="provider">provider</option></select></label>
  <button type="submit">Apply</button>
</form>
<div class="kpis" id="kpis"></div>
<section class="panel"><h2>Cost per day (USD), stacked by <span id="stack-name">model</span></h2>
  <div class="legend" id="cost-legend"></div><div id="cost-chart" class="stacked">loading…</div></section>
<div class="grid cols-2">
  <section class="panel"><h2>By model</h2><div id="by-model" class="empty">loading…</div></section>
  <section class="panel"><h2>By agent and version</h2><div id="by-agent" class="empty">loading…</div></section>
</div>
""",
    "drift": """
<h1>Drift</h1>
<p class="sub">A version's metric over time against its baseline band; markers show where a drift alert fired.</p>
<form class="filters" id="drift-form">
  <label>agent<select name="agent" required></select></label>
  <label>version<select name="version"></select></label>
  <label>metric<select name="metric"></select></label>
  <button type="submit">Show</button>
</form>
<section class="panel"><h2 id="drift-title">Metric</h2><div id="drift-chart" class="chart"></div><p class="note" id="drift-note"></p></section>
<section class="panel"><h2>Drift alerts</h2><div id="drift-alerts" class="empty">loading…</div></section>
""",
    "diff": """
<h1>Diff two runs</h1>
<p class="sub">Steps aligned by kind, name and argument digest (a sequence alignment, not by position).</p>
<form class="filters" id="diff-form">
  <label>run A (baseline)<input name="a" size="28" required></label>
  <label>run B<input name="b" size="28" required></label>
  <button type="submit">Diff</button>
</form>
<div id="diff" class="empty">loading…</div>
""",
    "policies": """
<h1>Policies</h1>
<p class="sub">Budgets, loop thresholds, redaction and governance (tool rules, approvals, delegation) for
this tenant. Saving writes the policy to the policies topic through the API; every processor reads it from there.</p>
<div id="policy-status"></div>
<form id="policy-form" class="panel"><div id="policy-fields" class="empty">loading…</div>
  <button type="submit" id="save">Save policy</button> <span class="note" id="policy-version"></span></form>
""",
}


# Scripts a page loads after its own, for features kept in files of their own.
EXTRA_SCRIPTS: dict[str, tuple[str, ...]] = {"run": ("run_ops", "topology"), "alerts": ("alert_silences",),
                                              "runs": ("runs_export",)}


def shell(page: str, title: str, tenant: str | None, body: str, data: dict[str, str] | None = None) -> str:
    nav = "".join(
        f'<a href="{href}" class="{"active" if key == page or (page, key) in (("run", "runs"), ("session", "sessions")) else ""}">{label}</a>'
        for key, href, label in NAV
    ) if tenant else ""
    who = (f'<div class="who"><span>tenant <b>{escape(tenant)}</b></span>'
           '<form method="post" action="/ui/logout"><button type="submit">Log out</button></form></div>'
           if tenant else "")
    attrs = "".join(f' data-{escape(k)}="{escape(v)}"' for k, v in (data or {}).items())
    scripts = ""
    if page in SKELETONS:
        scripts = (f'<script src="/ui/static/vendor/uplot/uPlot.iife.min.js?v={ASSET_VERSION}"></script>'
                   f'<script src="/ui/static/js/common.js?v={ASSET_VERSION}"></script>'
                   f'<script src="/ui/static/js/{page}.js?v={ASSET_VERSION}"></script>')
        scripts += "".join(f'<script src="/ui/static/js/{extra}.js?v={ASSET_VERSION}"></script>'
                           for extra in EXTRA_SCRIPTS.get(page, ()))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · agentstream</title>
<link rel="icon" href="/ui/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/ui/static/vendor/uplot/uPlot.min.css?v={ASSET_VERSION}">
<link rel="stylesheet" href="/ui/static/css/dashboard.css?v={ASSET_VERSION}">
</head><body>
<header class="top"><div class="logo">agent<span>stream</span></div><nav>{nav}</nav>{who}</header>
<main data-page="{escape(page)}"{attrs}>{body}</main>
{scripts}
</body></html>"""


def page_html(page: str, title: str, tenant: str, data: dict[str, str] | None = None) -> str:
    return shell(page, title, tenant, SKELETONS[page], data)


def login_html(error: str | None = None, next_url: str = "/ui") -> str:
    err = f'<div class="error-banner" role="alert">{escape(error)}</div>' if error else ""
    body = f"""<div class="login"><div class="panel"><h1>Sign in</h1>
<p class="sub">Use one of your tenant's API keys (read scope). The key is checked once; the browser
keeps only a signed session cookie.</p>{err}
<form method="post" action="/ui/login"><input type="hidden" name="next" value="{escape(next_url)}">
<label for="api_key">API key</label><input id="api_key" name="api_key" type="password" autocomplete="off" required autofocus>
<button type="submit">Sign in</button></form></div></div>"""
    return shell("login", "Sign in", None, body)


def not_found_html(tenant: str | None, what: str) -> str:
    body = (f'<div class="panel" style="max-width:640px;margin:10vh auto"><h1>Not found</h1>'
            f'<p class="sub">{escape(what)} was not found for this tenant.</p>'
            '<p><a href="/ui">← back to the fleet</a></p></div>')
    return shell("notfound", "Not found", tenant, body)
