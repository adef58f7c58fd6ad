// Fleet: per agent and version, runs / failure rate / p95 / tokens / cost with trend sparklines,
// a live alert ticker (server-sent events) and consumer lag per pipeline stage.
AS.page(async function (main) {
  const el = AS.el, fmt = AS.fmt;

  // The ticker first: it must be live even while the slower queries load.
  let initial = [];
  try { initial = (await AS.api("/v1/alerts?limit=20")).items || []; } catch (e) { console.warn("alerts:", e.message); }
  AS.ticker(AS.$("#ticker"), AS.$("#live-dot"), { initial, url: "/v1/alerts/stream" });

  const [stats, series] = await Promise.all([
    AS.api("/v1/stats?limit=500"),
    AS.api("/ui/api/fleet/series"),
  ]);
  const rows = stats.items || [];
  const byKey = new Map((series.series || []).map((s) => [s.agent_id + "\u0000" + s.agent_version, s]));
  if (series.bucket_s) {
    AS.$("#window").textContent = "the last " + fmt.ms((series.until_us - series.since_us) / 1000) +
      " in " + fmt.ms(series.bucket_s * 1000) + " buckets";
  }

  const total = rows.reduce((a, r) => ({
    runs: a.runs + r.runs, failures: a.failures + r.failures, finished: a.finished + r.finished_runs,
    tokens: a.tokens + r.total_tokens, cost: a.cost + r.cost_usd,
  }), { runs: 0, failures: 0, finished: 0, tokens: 0, cost: 0 });
  const kpi = (k, v) => el("div", { class: "kpi" }, el("div", { class: "v" }, v), el("div", { class: "k" }, k));
  AS.$("#kpis").append(
    kpi("agents · versions", new Set(rows.map((r) => r.agent_id)).size + " · " + rows.length),
    kpi("runs", fmt.int(total.runs)),
    kpi("failure rate", total.finished ? fmt.pct(total.failures / total.finished) : "–"),
    kpi("tokens", fmt.tokens(total.tokens)),
    kpi("cost", fmt.usd(total.cost)));

  const sparks = [];
  const cell = (r, key, valueText, color) => {
    const s = byKey.get(r.agent_id + "\u0000" + r.agent_version);
    const box = el("div", { class: "spark", dataset: { metric: key } });
    if (s && series.x) sparks.push(() => AS.sparkline(box, series.x, s[key], { color }));
    return el("div", { class: "spark-cell" }, box, el("span", { class: "val" }, valueText));
  };
  const columns = [
    { label: "agent", render: (r) => el("a", { href: "/ui/runs" + AS.qs({ agent: r.agent_id }) }, r.agent_id) },
    { label: "version", render: (r) => [el("a", { href: "/ui/runs" + AS.qs({ agent: r.agent_id, version: r.agent_version }) }, r.agent_version), " ",
      el("a", { href: "/ui/compare" + AS.qs({ agent: r.agent_id, b: r.agent_version }), class: "note", title: "compare with another version" }, "⇄")] },
    { label: "runs", num: true, render: (r) => cell(r, "runs", fmt.int(r.runs), "#3b5bdb") },
    { label: "failure rate", num: true, render: (r) => cell(r, "failure_rate", fmt.pct(r.failure_rate), "#c92a2a") },
    { label: "p95 latency (quantileExact)", num: true, render: (r) => cell(r, "p95_ms", fmt.ms(r.latency_p95_ms), "#e8590c") },
    { label: "tokens", num: true, render: (r) => cell(r, "tokens", fmt.tokens(r.total_tokens), "#7048e8") },
    { label: "cost", num: true, render: (r) => cell(r, "cost_usd", fmt.usd(r.cost_usd), "#2f9e44") },
  ];
  const box = AS.clear(AS.$("#fleet-table"));
  box.classList.remove("empty");
  box.append(AS.table(columns, rows, { empty: "no runs yet", rowAttrs: (r) => ({ dataset: { agent: r.agent_id, version: r.agent_version } }) }));
  sparks.forEach((f) => f());

  async function loadLag() {
    const box = AS.$("#lag");
    try {
      const lag = await AS.api("/ui/api/lag");
      AS.clear(box).classList.remove("empty");
      AS.$("#lag-note").textContent = lag.caveat || "";
      if (!lag.available || !lag.stages.length) {
        box.append(el("p", { class: "empty" }, lag.note || "no consumer group has committed offsets yet"));
        return;
      }
      box.append(AS.table([
        { label: "stage", render: (s) => s.stage },
        { label: "state", render: (s) => el("span", { class: s.behind ? "badge warn" : "badge ok" }, s.behind ? "behind" : "caught up") },
        { label: "lag (records, ≥)", render: (s) => el("span", {}, s.lag, s.exact ? "" : el("span", { class: "badge warn", title: "the broker reported an end offset below the committed offset: its end offsets are short, so the real lag is unknown (at least this)" }, " end offset under-reported")) },
      ], lag.stages));
    } catch (e) {
      AS.clear(box).append(el("p", { class: "empty" }, "lag unavailable: " + e.message));
    }
  }
  await loadLag();
  setInterval(loadLag, 5000);
});
