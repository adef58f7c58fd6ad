// agentstream dashboard: shared helpers. No framework; DOM is built with AS.el (never innerHTML
// with data), so nothing a tenant's agents emit can inject markup into the page.
(function () {
  "use strict";
  const AS = (window.AS = {});

  AS.el = function (tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "style" && typeof v === "object") Object.assign(node.style, v);
      else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  };
  const el = AS.el;

  AS.$ = (sel, root) => (root || document).querySelector(sel);
  AS.clear = (node) => { while (node.firstChild) node.removeChild(node.firstChild); return node; };

  // A shared snapshot (`agentstream runs share`) carries the API's answers in the page itself and
  // makes no request at all (its Content-Security-Policy forbids them too): a path it does not
  // carry is a 404, and nothing can be changed from it.
  const shared = window.AGENTSTREAM_SHARED;
  AS.shared = Boolean(shared);

  // Every call carries the session cookie; unsafe methods also carry the header that proves the
  // request came from this page's script (a cross-site form cannot set it).
  AS.api = async function (path, opts) {
    opts = opts || {};
    const method = (opts.method || "GET").toUpperCase();
    if (shared) {
      const hit = method === "GET" ? shared.answers[path] : undefined;
      if (hit === undefined) {
        const err = new Error(method === "GET" ? "not in this shared snapshot" : "a shared snapshot is read-only");
        err.status = method === "GET" ? 404 : 405;
        throw err;
      }
      return JSON.parse(JSON.stringify(hit));
    }
    const headers = Object.assign({ Accept: "application/json" }, opts.headers || {});
    if (method !== "GET") headers["X-AgentStream-CSRF"] = "1";
    let body = opts.body;
    if (body !== undefined && typeof body !== "string") {
      body = JSON.stringify(body);
      headers["Content-Type"] = "application/json";
    }
    const r = await fetch(path, { method, headers, body, credentials: "same-origin" });
    if (r.status === 401) {
      window.location.href = "/ui/login?next=" + encodeURIComponent(location.pathname + location.search);
      throw new Error("session expired");
    }
    let data = null;
    const text = await r.text();
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = { raw: text }; }
    if (!r.ok) {
      const msg = data && data.error ? data.error.message : "HTTP " + r.status;
      const err = new Error(msg);
      err.status = r.status;
      err.body = data;
      throw err;
    }
    return data;
  };

  AS.qs = function (params) {
    const u = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== "") u.set(k, v);
    const s = u.toString();
    return s ? "?" + s : "";
  };

  AS.showError = function (container, err) {
    const box = el("div", { class: "error-banner", role: "alert" }, String(err && err.message ? err.message : err));
    container.prepend(box);
    return box;
  };

  // ---- formatting
  const nf = (d) => new Intl.NumberFormat("en-US", { maximumFractionDigits: d, minimumFractionDigits: 0 });
  AS.fmt = {
    int: (v) => (v === null || v === undefined ? "–" : nf(0).format(v)),
    num: (v, d = 2) => (v === null || v === undefined || Number.isNaN(v) ? "–" : nf(d).format(v)),
    pct: (v, d = 1) => (v === null || v === undefined ? "–" : nf(d).format(100 * v) + "%"),
    usd: (v) => (v === null || v === undefined ? "–" : (v < 0 ? "-$" : "$") + (Math.abs(v) < 1 ? Math.abs(v).toFixed(4) : nf(2).format(Math.abs(v)))),
    ms: function (v) {
      if (v === null || v === undefined || Number.isNaN(v)) return "–";
      if (v < 1) return v.toFixed(2) + " ms";
      if (v < 1000) return Math.round(v) + " ms";
      if (v < 60000) return (v / 1000).toFixed(v < 10000 ? 2 : 1) + " s";
      return (v / 60000).toFixed(1) + " min";
    },
    tokens: (v) => (v === null || v === undefined ? "–" : v >= 1e6 ? (v / 1e6).toFixed(2) + "M" : v >= 1e4 ? (v / 1e3).toFixed(1) + "k" : nf(0).format(v)),
    time: function (v) {
      const d = AS.toDate(v);
      return d ? d.toISOString().replace("T", " ").slice(0, 19) + "Z" : "–";
    },
    ago: function (v) {
      const d = AS.toDate(v);
      if (!d) return "–";
      const s = Math.round((Date.now() - d.getTime()) / 1000);
      if (s < 60) return s + "s ago";
      if (s < 3600) return Math.round(s / 60) + "m ago";
      if (s < 86400) return Math.round(s / 3600) + "h ago";
      return Math.round(s / 86400) + "d ago";
    },
  };

  // The API returns times as ISO strings or µs integers depending on the field; accept both.
  AS.toDate = function (v) {
    if (v === null || v === undefined || v === "") return null;
    if (typeof v === "number") return new Date(v > 1e14 ? v / 1000 : v > 1e11 ? v : v * 1000);
    let s = String(v);
    if (/^\d{4}-\d\d-\d\d \d/.test(s)) s = s.replace(" ", "T");
    if (!/[zZ]|[+-]\d\d:?\d\d$/.test(s)) s += "Z";
    const d = new Date(s);
    return Number.isNaN(d.getTime()) ? null : d;
  };
  AS.toSec = (v) => { const d = AS.toDate(v); return d ? d.getTime() / 1000 : null; };

  AS.badge = (text, cls) => el("span", { class: "badge " + (cls || text || "") }, text || "live");

  AS.table = function (columns, rows, opts) {
    opts = opts || {};
    const thead = el("thead", {}, el("tr", {}, columns.map((c) => el("th", { class: c.num ? "num" : "" }, c.label))));
    const tbody = el("tbody");
    for (const row of rows) {
      const tr = el("tr", opts.rowAttrs ? opts.rowAttrs(row) : {});
      for (const c of columns) {
        const v = c.render ? c.render(row) : row[c.key];
        tr.append(el("td", { class: (c.num ? "num " : "") + (c.cls || "") }, v));
      }
      tbody.append(tr);
    }
    if (!rows.length) tbody.append(el("tr", {}, el("td", { colspan: columns.length, class: "empty" }, opts.empty || "nothing here yet")));
    return el("table", { class: "data" }, thead, tbody);
  };

  AS.runLink = (runId) => el("a", { href: "/ui/runs/" + encodeURIComponent(runId), class: "mono" }, runId.length > 24 ? runId.slice(0, 23) + "…" : runId);

  // ---- charts (uPlot, vendored in /ui/static/vendor/uplot)
  AS.palette = ["#3b5bdb", "#e8590c", "#2f9e44", "#ae3ec9", "#1098ad", "#f08c00", "#c92a2a", "#5c940d"];

  AS.sparkline = function (container, xs, ys, opts) {
    opts = opts || {};
    const data = [xs, ys.map((v) => (v === null || v === undefined ? null : v))];
    const u = new uPlot({
      width: opts.width || 84, height: opts.height || 26, padding: [3, 1, 3, 1],
      cursor: { show: false }, legend: { show: false }, select: { show: false },
      scales: { x: { time: false }, y: { range: (u, lo, hi) => [Math.min(0, lo), hi > Math.min(0, lo) ? hi : Math.min(0, lo) + 1] } },
      axes: [{ show: false }, { show: false }],
      series: [{}, { stroke: opts.color || "#3b5bdb", width: 1.5, fill: (opts.color || "#3b5bdb") + "22", spanGaps: true, points: { show: false } }],
    }, data, container);
    return u;
  };

  AS.chartWidth = (node) => Math.max(260, Math.floor(node.getBoundingClientRect().width) - 4);

  // Paired horizontal bars in plain HTML: categories down, one bar per series, scaled to the max.
  AS.hbars = function (container, categories, series, opts) {
    opts = opts || {};
    const fmt = opts.fmt || ((v) => v);
    let max = 0;
    for (const s of series) for (const v of s.values) if (v > max) max = v;
    const rows = categories.map((c, ci) => el("div", { class: "hb-row" },
      el("div", { class: "hb-cat", title: c }, c),
      el("div", { class: "hb-bars" }, series.map((s, si) => el("div", { class: "hb-line" },
        el("div", { class: "hb-bar", style: { width: (max > 0 ? (100 * (s.values[ci] || 0)) / max : 0) + "%", background: AS.palette[si % AS.palette.length] } }),
        el("span", { class: "hb-val" }, fmt(s.values[ci] || 0)))))));
    const legend = el("div", { class: "legend" }, series.map((s, si) => el("span", {}, el("i", { style: { background: AS.palette[si % AS.palette.length] } }), s.label)));
    container.append(legend, el("div", { class: "hbars" }, rows));
  };

  AS.lineChart = function (container, xs, series, opts) {
    opts = opts || {};
    const u = new uPlot({
      width: AS.chartWidth(container), height: opts.height || 240,
      scales: { x: { time: opts.time !== false }, y: opts.yrange ? { range: opts.yrange } : { auto: true } },
      axes: [{}, { values: (u, ticks) => ticks.map(opts.yfmt || ((v) => v)), size: 76 }],
      bands: opts.bands || [],
      series: [opts.xseries || {}].concat(series.map((s, i) => {
        const { values, ...rest } = s;
        return Object.assign({
          stroke: s.color || AS.palette[i % AS.palette.length], width: s.width || 2, spanGaps: true,
          points: { show: opts.points !== undefined ? opts.points : xs.length < 60 },
        }, rest);
      })),
      hooks: opts.hooks || {},
      plugins: opts.plugins || [],
    }, [xs].concat(series.map((s) => s.values)), container);
    return u;
  };

  // ---- live alert ticker (server-sent events)
  AS.alertItem = function (a, fresh) {
    const target = a.run_id
      ? el("a", { href: "/ui/runs/" + encodeURIComponent(a.run_id) }, "run " + a.run_id.slice(0, 12))
      : a.agent_id ? el("a", { href: "/ui/alerts" + AS.qs({ agent_id: a.agent_id }) }, a.agent_id + (a.agent_version ? "@" + a.agent_version : "")) : "";
    return el("li", { class: fresh ? "fresh" : "", dataset: { alertId: a.alert_id || "" } },
      AS.badge(a.severity, a.severity),
      el("span", {}, el("b", {}, a.alert_type), " ", a.title || ""),
      el("span", { class: "t" }, AS.fmt.time(a.detected_ts || a.detected_us), " · ", target));
  };

  AS.ticker = function (list, dot, opts) {
    opts = opts || {};
    const seen = new Set();
    function add(a, fresh) {
      if (!a || !a.alert_id || seen.has(a.alert_id)) return;
      seen.add(a.alert_id);
      const empty = list.querySelector(".empty");
      if (empty) empty.remove();
      list.prepend(AS.alertItem(a, fresh));
      while (list.children.length > (opts.max || 50)) list.lastChild.remove();
    }
    (opts.initial || []).slice().reverse().forEach((a) => add(a, false));
    if (!list.children.length) list.append(el("li", { class: "empty" }, "no alerts yet"));
    const es = new EventSource(opts.url || "/ui/api/alerts/stream");
    es.addEventListener("open", () => dot.classList.add("on"));
    es.addEventListener("error", () => dot.classList.remove("on"));
    const onMsg = (ev) => {
      try { add(JSON.parse(ev.data), true); } catch (e) { /* keep-alives and non-JSON frames */ }
    };
    es.addEventListener("message", onMsg);
    es.addEventListener("alert", onMsg);
    window.addEventListener("beforeunload", () => es.close());
    return es;
  };

  // The cursor pager under a listing (#next, #first): "next page" follows the API's next_cursor,
  // "newest" drops it; both keep the page's filters in the URL.
  AS.pager = function (nextCursor, cursor, filters) {
    const next = AS.$("#next"), first = AS.$("#first");
    next.disabled = !nextCursor;
    next.addEventListener("click", () => { location.search = AS.qs(Object.assign(filters(), { cursor: nextCursor })); });
    first.disabled = !cursor;
    first.addEventListener("click", () => { location.search = AS.qs(filters()); });
  };

  // Pages register a start function; it runs once the DOM is ready.
  AS.page = function (fn) {
    const run = () => {
      const main = document.querySelector("main");
      Promise.resolve().then(() => fn(main)).catch((err) => { console.warn(err); AS.showError(main, err); });
    };
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", run);
    else run();
  };
})();
