// Drift: a version's metric over time against its baseline band, marking where drift alerts fired,
// with the API's window-vs-baseline tests underneath.
AS.page(async function (main) {
  const el = AS.el, fmt = AS.fmt;
  const METRICS = {
    failure_rate: ["failure rate", (v) => fmt.pct(v)],
    latency_p95_ms: ["p95 latency", fmt.ms],
    latency_p50_ms: ["p50 latency", fmt.ms],
    cost_per_run_usd: ["cost per run", fmt.usd],
    tokens_per_run: ["tokens per run", (v) => fmt.num(v, 0)],
    retries_per_run: ["retries per run", (v) => fmt.num(v, 2)],
    tool_calls_per_run: ["tool calls per run", (v) => fmt.num(v, 2)],
  };
  const form = AS.$("#drift-form"), f = form.elements;
  const params = new URLSearchParams(location.search);
  const [stats, driftAlerts] = await Promise.all([
    AS.api("/v1/stats?limit=500").then((p) => p.items),
    AS.api("/v1/alerts?alert_type=drift&limit=200").then((p) => p.items || []).catch(() => []),
  ]);
  const agents = [...new Set(stats.map((r) => r.agent_id))].sort();
  agents.forEach((a) => f.agent.append(el("option", {}, a)));
  Object.entries(METRICS).forEach(([k, [label]]) => f.metric.append(el("option", { value: k }, label)));
  const firstAlert = driftAlerts.find((a) => a.agent_id);
  f.agent.value = params.get("agent") || (firstAlert && firstAlert.agent_id) || agents[0] || "";
  function fillVersions(pref) {
    AS.clear(f.version).append(el("option", { value: "" }, "all versions"));
    stats.filter((r) => r.agent_id === f.agent.value).map((r) => r.agent_version)
      .sort((x, y) => x.localeCompare(y, undefined, { numeric: true }))
      .forEach((v) => f.version.append(el("option", { selected: v === pref }, v)));
  }
  fillVersions(params.get("version") !== null ? params.get("version") : firstAlert && firstAlert.agent_id === f.agent.value ? firstAlert.agent_version : "");
  f.agent.addEventListener("change", () => fillVersions(""));
  const alertMetric = firstAlert && firstAlert.evidence && firstAlert.evidence.metric;
  f.metric.value = params.get("metric") && METRICS[params.get("metric")] ? params.get("metric") : alertMetric && METRICS[alertMetric] ? alertMetric : "failure_rate";
  form.addEventListener("submit", (ev) => { ev.preventDefault(); location.search = AS.qs({ agent: f.agent.value, version: f.version.value, metric: f.metric.value }); });
  if (!f.agent.value) { AS.$("#drift-alerts").textContent = "no agents yet"; return; }

  const metric = f.metric.value, [label, vfmt] = METRICS[metric];
  const q = { agent: f.agent.value, version: f.version.value, metric };
  const [series, drift] = await Promise.all([
    AS.api("/ui/api/drift/series" + AS.qs(q)),
    AS.api("/v1/drift" + AS.qs({ agent: f.agent.value, version: f.version.value, window_hours: 1, baseline_hours: 24 * 7 })).catch(() => ({ items: [] })),
  ]);
  const mine = driftAlerts.filter((a) => a.agent_id === f.agent.value && (!f.version.value || a.agent_version === f.version.value));
  AS.$("#drift-title").textContent = label + " of " + f.agent.value + (f.version.value ? " " + f.version.value : " (all versions)") +
    (series.bucket_s ? " · " + fmt.ms(series.bucket_s * 1000) + " buckets" : "");

  const chartBox = AS.$("#drift-chart");
  if (!series.x.length) { chartBox.append(el("p", { class: "empty" }, "no runs in the window")); }
  else {
    const band = series.band;
    const hi = series.x.map(() => (band ? band.hi : null)), lo = series.x.map(() => (band ? band.lo : null));
    const mean = series.x.map(() => (band ? band.mean : null));
    const alertTimes = mine.map((a) => AS.toSec(a.detected_us !== undefined ? a.detected_us : a.detected_ts)).filter((t) => t !== null);
    const markPlugin = {
      hooks: {
        draw: [(u) => {
          const ctx = u.ctx, top = u.bbox.top, h = u.bbox.height;
          ctx.save();
          if (band) { // the baseline period
            const x0 = u.valToPos(series.x[0], "x", true), x1 = u.valToPos(band.until_s, "x", true);
            ctx.fillStyle = "rgba(47,158,68,0.06)"; ctx.fillRect(x0, top, x1 - x0, h);
          }
          ctx.strokeStyle = "#c92a2a"; ctx.lineWidth = 2 * devicePixelRatio; ctx.setLineDash([6, 4]);
          ctx.fillStyle = "#c92a2a"; ctx.font = 11 * devicePixelRatio + "px system-ui";
          for (const t of alertTimes) {
            const x = u.valToPos(t, "x", true);
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
            ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + h); ctx.stroke();
            ctx.fillText("drift alert", x + 4, top + 12 * devicePixelRatio);
          }
          ctx.restore();
        }],
      },
    };
    AS.lineChart(chartBox, series.x, [
      { label, values: series.y, value: (u, v) => (v === null ? "–" : vfmt(v)), width: 2.5 },
      { label: "band high", values: hi, stroke: "#2f9e44", width: 1, dash: [4, 4], points: { show: false }, value: (u, v) => (v === null ? "–" : vfmt(v)) },
      { label: "band low", values: lo, stroke: "#2f9e44", width: 1, dash: [4, 4], points: { show: false }, value: (u, v) => (v === null ? "–" : vfmt(v)) },
      { label: "baseline mean", values: mean, stroke: "#2f9e4488", width: 1, points: { show: false }, value: (u, v) => (v === null ? "–" : vfmt(v)) },
    ], { height: 300, yfmt: vfmt, bands: band ? [{ series: [2, 3], fill: "rgba(47,158,68,0.12)" }] : [], plugins: [markPlugin] });
    AS.$("#drift-note").textContent = band
      ? "Band: baseline mean ± " + band.k + "σ of the first " + band.baseline_buckets + " buckets (shaded). Dashed red lines: drift alerts."
      : "Too few buckets for a baseline band yet.";
  }

  const box = AS.clear(AS.$("#drift-alerts"));
  box.classList.remove("empty");
  box.append(AS.table([
    { label: "detected", render: (a) => fmt.time(a.detected_us !== undefined ? a.detected_us : a.detected_ts) },
    { label: "severity", render: (a) => AS.badge(a.severity, a.severity) },
    { label: "version", render: (a) => a.agent_version || "–" },
    { label: "title", render: (a) => a.title },
    { label: "evidence", render: (a) => el("div", { class: "evidence" }, Object.entries(a.evidence || {}).map(([k, v]) => el("span", {}, k + "=", el("code", {}, v)))) },
  ], mine, { empty: "no drift alert for this selection", rowAttrs: (a) => ({ dataset: { alertId: a.alert_id } }) }));
  if (drift.items && drift.items.length) {
    box.append(el("h2", { style: { marginTop: "16px" } }, "Last hour against the week before (API /v1/drift)"),
      AS.table([
        { label: "version", render: (r) => r.agent_version },
        { label: "failure rate (baseline → window)", render: (r) => fmt.pct(r.baseline.failure_rate) + " → " + fmt.pct(r.window.failure_rate) },
        { label: "p95 (baseline → window)", render: (r) => fmt.ms(r.baseline.latency_p95_ms) + " → " + fmt.ms(r.window.latency_p95_ms) },
        { label: "cost/run (baseline → window)", render: (r) => fmt.usd(r.baseline.cost_per_run_usd) + " → " + fmt.usd(r.window.cost_per_run_usd) },
        { label: "drifted on", render: (r) => r.drifted ? el("span", { class: "sig yes" }, r.drifted_on.join(", ")) : el("span", { class: "sig no" }, "nothing significant") },
      ], drift.items));
  }
});
