// Compare: two versions of one agent side by side: failure rate, latency distribution, tool mix
// and cost per run, each difference with the API's significance test.
AS.page(async function (main) {
  const el = AS.el, fmt = AS.fmt;
  const form = AS.$("#cmp-form");
  const params = new URLSearchParams(location.search);
  const stats = (await AS.api("/v1/stats?limit=500")).items;
  const versionsOf = (agent) => stats.filter((r) => r.agent_id === agent).map((r) => r.agent_version)
    .sort((x, y) => x.localeCompare(y, undefined, { numeric: true }));
  const agents = [...new Set(stats.map((r) => r.agent_id))].sort();
  const multi = agents.filter((a) => versionsOf(a).length >= 2);
  const f = form.elements;
  agents.forEach((a) => f.agent.append(el("option", {}, a)));
  f.agent.value = params.get("agent") || multi[0] || agents[0] || "";
  function fillVersions() {
    const vs = versionsOf(f.agent.value);
    for (const sel of [f.a, f.b]) { AS.clear(sel); vs.forEach((v) => sel.append(el("option", {}, v))); }
    const b = params.get("b") && vs.includes(params.get("b")) ? params.get("b") : vs[vs.length - 1];
    const a = params.get("a") && vs.includes(params.get("a")) ? params.get("a") : vs.filter((v) => v !== b).pop() || b;
    f.a.value = a; f.b.value = b;
  }
  fillVersions();
  f.agent.addEventListener("change", () => { params.delete("a"); params.delete("b"); fillVersions(); });
  form.addEventListener("submit", (ev) => { ev.preventDefault(); location.search = AS.qs({ agent: f.agent.value, a: f.a.value, b: f.b.value }); });
  if (!f.agent.value || !f.a.value || !f.b.value) return;
  if (f.a.value === f.b.value) {
    AS.$("#cmp-summary").append(el("p", { class: "note" }, "This agent has one version: pick two to compare."));
    return;
  }

  const q = { agent: f.agent.value, a: f.a.value, b: f.b.value };
  const [cmp, dist] = await Promise.all([AS.api("/v1/compare" + AS.qs(q)), AS.api("/ui/api/compare/distributions" + AS.qs(q))]);
  const A = cmp.a, B = cmp.b, T = cmp.tests;
  const sig = (t, worse) => {
    if (!t || t.p_value === null || t.p_value === undefined) return el("span", { class: "sig no" }, "too little data");
    const p = t.p_value < 0.001 ? "p < 0.001" : "p = " + t.p_value.toFixed(3);
    if (!t.significant) return el("span", { class: "sig no", title: t.test }, "not significant (" + p + ")");
    return el("span", { class: "sig " + (worse === false ? "better" : "yes"), title: t.test }, "significant (" + p + ")" + (worse === undefined ? "" : worse ? " · worse" : " · better"));
  };
  const delta = (a, b, f) => (a === null || b === null || a === undefined || b === undefined ? "–" : (b - a >= 0 ? "+" : "") + f(b - a));
  const rows = [
    ["runs", fmt.int(A.runs), fmt.int(B.runs), "", null],
    ["failure rate", fmt.pct(A.failure_rate), fmt.pct(B.failure_rate), delta(A.failure_rate, B.failure_rate, (x) => fmt.pct(x)), sig(T.failure_rate, B.failure_rate > A.failure_rate)],
    ["latency p50", fmt.ms(A.latency_p50_ms), fmt.ms(B.latency_p50_ms), delta(A.latency_p50_ms, B.latency_p50_ms, fmt.ms), sig(T.latency_mann_whitney, B.latency_p50_ms > A.latency_p50_ms)],
    ["latency p95", fmt.ms(A.latency_p95_ms), fmt.ms(B.latency_p95_ms), delta(A.latency_p95_ms, B.latency_p95_ms, fmt.ms), sig(T.latency_ks)],
    ["latency p99", fmt.ms(A.latency_p99_ms), fmt.ms(B.latency_p99_ms), delta(A.latency_p99_ms, B.latency_p99_ms, fmt.ms), ""],
    ["cost per run", fmt.usd(A.cost_per_run_usd), fmt.usd(B.cost_per_run_usd), delta(A.cost_per_run_usd, B.cost_per_run_usd, fmt.usd), sig(T.cost_mann_whitney, B.cost_per_run_usd > A.cost_per_run_usd)],
    ["tokens per run", fmt.num(A.tokens_per_run, 0), fmt.num(B.tokens_per_run, 0), delta(A.tokens_per_run, B.tokens_per_run, (x) => fmt.num(x, 0)), ""],
    ["tool mix", "", "", "", sig(T.tool_mix_chi_square)],
  ];
  AS.$("#cmp-summary").append(el("section", { class: "panel", style: { marginBottom: "16px" } },
    el("h2", {}, cmp.agent + ": " + A.version + " (A) vs " + B.version + " (B)"),
    el("table", { class: "data", id: "cmp-table" },
      el("thead", {}, el("tr", {}, ["metric", "A · " + A.version, "B · " + B.version, "B − A", "significance (α = " + cmp.alpha + ")"].map((h, i) => el("th", { class: i && i < 4 ? "num" : "" }, h)))),
      el("tbody", {}, rows.map((r) => el("tr", {}, el("td", {}, r[0]), el("td", { class: "num" }, r[1]), el("td", { class: "num" }, r[2]), el("td", { class: "num" }, r[3]), el("td", {}, r[4] || ""))))),
    el("p", { class: "note" }, "Tests: failure rate — " + T.failure_rate.test + "; latency — " + T.latency_mann_whitney.test + " and " + T.latency_ks.test +
      "; cost — " + T.cost_mann_whitney.test + "; tool mix — " + T.tool_mix_chi_square.test + ".")));

  AS.hbars(AS.$("#cmp-failure"), ["failure rate"], [
    { label: "A · " + A.version, values: [A.failure_rate || 0] },
    { label: "B · " + B.version, values: [B.failure_rate || 0] },
  ], { fmt: (v) => fmt.pct(v) });
  AS.$("#cmp-failure").append(el("p", { class: "note" }, A.failures + " of " + A.finished_runs + " finished runs failed for A, " + B.failures + " of " + B.finished_runs + " for B. ", sig(T.failure_rate, B.failure_rate > A.failure_rate)));

  const codesA = (dist.versions[A.version] || {}).failure_codes || {}, codesB = (dist.versions[B.version] || {}).failure_codes || {};
  const codes = [...new Set(Object.keys(codesA).concat(Object.keys(codesB)))]
    .sort((x, y) => ((codesB[y] || 0) + (codesA[y] || 0)) - ((codesB[x] || 0) + (codesA[x] || 0))).slice(0, 8);
  if (codes.length) {
    const perRun = (c, n) => (n ? (c || 0) / n : 0);
    const box = AS.$("#cmp-failure");
    box.append(el("h2", { style: { marginTop: "14px" } }, "Failure events per run, by type:code"));
    AS.hbars(box, codes, [
      { label: "A · " + A.version, values: codes.map((c) => perRun(codesA[c], A.runs)) },
      { label: "B · " + B.version, values: codes.map((c) => perRun(codesB[c], B.runs)) },
    ], { fmt: (v) => fmt.num(v, 2) });
    box.append(el("p", { class: "note" }, "Includes failures a retry recovered from, so a run can count more than one."));
  }

  const da = dist.versions[A.version] || { latency_ms: [], cost_usd: [], levels: [] };
  const db = dist.versions[B.version] || { latency_ms: [], cost_usd: [], levels: [] };
  const levels = (da.levels.length ? da.levels : db.levels).map((x) => x * 100);
  const pad = (arr) => (arr.length ? arr : levels.map(() => null));
  const quantileChart = (node, ka, kb, yfmt) => AS.lineChart(node, levels, [
    { label: "A · " + A.version, values: pad(da[ka]), value: (u, v) => yfmt(v) },
    { label: "B · " + B.version, values: pad(db[kb]), value: (u, v) => yfmt(v) },
  ], { time: false, yfmt, height: 230, points: false, xseries: { label: "percentile", value: (u, v) => (v === null ? "–" : "p" + Math.round(v)) } });
  if (levels.length) {
    quantileChart(AS.$("#cmp-latency"), "latency_ms", "latency_ms", fmt.ms);
    quantileChart(AS.$("#cmp-cost"), "cost_usd", "cost_usd", fmt.usd);
    for (const id of ["#cmp-latency", "#cmp-cost"]) AS.$(id).append(el("p", { class: "note" }, "x: percentile of runs; y: value at that percentile. A curve above the other is slower / costlier at that percentile."));
  }
  AS.$("#cmp-latency").append(el("p", { class: "note" }, sig(T.latency_mann_whitney, B.latency_p50_ms > A.latency_p50_ms), " · ", sig(T.latency_ks)));
  AS.$("#cmp-cost").append(el("p", { class: "note" }, sig(T.cost_mann_whitney, B.cost_per_run_usd > A.cost_per_run_usd)));

  const tools = cmp.tool_mix.slice().sort((x, y) => (y.a_calls + y.b_calls) - (x.a_calls + x.b_calls));
  AS.hbars(AS.$("#cmp-tools"), tools.map((t) => t.tool), [
    { label: "A · " + A.version, values: tools.map((t) => t.a_share || 0) },
    { label: "B · " + B.version, values: tools.map((t) => t.b_share || 0) },
  ], { fmt: (v) => fmt.pct(v) });
  AS.$("#cmp-tools").append(el("p", { class: "note" }, sig(T.tool_mix_chi_square)));
});
