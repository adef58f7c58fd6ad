// Costs: spend per day stacked by model (or agent, version, provider), and tables by model and
// by agent/version with tokens split into input, output and cached. All from /v1/costs.
AS.page(async function (main) {
  const el = AS.el, fmt = AS.fmt;
  const form = AS.$("#filters");
  const params = new URLSearchParams(location.search);
  for (const name of ["days", "stack"]) if (params.get(name)) form.elements[name].value = params.get(name);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.search = AS.qs({ days: form.elements.days.value, stack: form.elements.stack.value });
  });
  const days = Number(form.elements.days.value) || 30, stack = form.elements.stack.value || "model";
  AS.$("#stack-name").textContent = stack;
  const since = new Date(Date.now() - days * 86400e3);
  since.setUTCHours(0, 0, 0, 0);
  const range = { since: since.toISOString() };
  const [perDay, byModel, byAgent] = await Promise.all([
    AS.api("/v1/costs" + AS.qs(Object.assign({ group_by: "day," + stack, limit: 10000 }, range))),
    AS.api("/v1/costs" + AS.qs(Object.assign({ group_by: "model" }, range))),
    AS.api("/v1/costs" + AS.qs(Object.assign({ group_by: "agent,version" }, range))),
  ]);
  const t = perDay.totals;
  const kpi = (k, v) => el("div", { class: "kpi" }, el("div", { class: "v" }, v), el("div", { class: "k" }, k));
  AS.$("#kpis").append(kpi("cost", fmt.usd(t.cost_usd)), kpi("LLM calls", fmt.int(t.calls)),
    kpi("input tokens", fmt.tokens(t.input_tokens)), kpi("output tokens", fmt.tokens(t.output_tokens)),
    kpi("cached tokens", fmt.tokens(t.cached_tokens) + (t.input_tokens ? " (" + fmt.pct(t.cached_tokens / t.input_tokens) + ")" : "")));

  // Stacked columns in plain HTML: one column per day of the period, one segment per series.
  const dayList = [];
  for (let d = new Date(since); d <= new Date(); d = new Date(d.getTime() + 86400e3)) dayList.push(d.toISOString().slice(0, 10));
  const totalsBy = {};
  perDay.items.forEach((r) => { totalsBy[r.group[stack]] = (totalsBy[r.group[stack]] || 0) + r.cost_usd; });
  const series = Object.keys(totalsBy).sort((a, b) => totalsBy[b] - totalsBy[a]);
  const color = (name) => AS.palette[series.indexOf(name) % AS.palette.length];
  const cell = {};
  perDay.items.forEach((r) => { cell[r.group.day + "\u0000" + r.group[stack]] = r; });
  const dayTotal = (d) => series.reduce((acc, s) => acc + ((cell[d + "\u0000" + s] || {}).cost_usd || 0), 0);
  const max = Math.max(1e-9, ...dayList.map(dayTotal));
  const chart = AS.clear(AS.$("#cost-chart"));
  AS.$("#cost-legend").append(...series.map((s) => el("span", {}, el("i", { style: { background: color(s) } }), s || "(none)")));
  if (!perDay.items.length) { chart.textContent = "no LLM cost in this period"; chart.classList.add("empty"); }
  const cols = el("div", { class: "stacked-cols" }, dayList.map((d) => {
    const segs = series.map((s) => {
      const r = cell[d + "\u0000" + s];
      return r ? el("div", { class: "seg", title: d + " · " + s + " · " + fmt.usd(r.cost_usd) + " · " + fmt.int(r.calls) + " calls",
        style: { height: (100 * r.cost_usd) / max + "%", background: color(s) } }) : null;
    }).filter(Boolean);
    return el("div", { class: "col", title: d + ": " + fmt.usd(dayTotal(d)), dataset: { day: d } },
      el("div", { class: "bar" }, segs), el("div", { class: "lbl" }, d.slice(5)));
  }));
  chart.append(el("div", { class: "stacked-axis" }, fmt.usd(max)), cols);

  const tokenCols = [
    { label: "calls", num: true, render: (r) => fmt.int(r.calls) },
    { label: "input", num: true, render: (r) => fmt.tokens(r.input_tokens) },
    { label: "output", num: true, render: (r) => fmt.tokens(r.output_tokens) },
    { label: "cached", num: true, render: (r) => fmt.tokens(r.cached_tokens) },
    { label: "cost", num: true, render: (r) => fmt.usd(r.cost_usd) },
  ];
  const put = (id, cols, rows) => { const b = AS.clear(AS.$(id)); b.classList.remove("empty"); b.append(AS.table(cols, rows, { empty: "no LLM calls" })); };
  put("#by-model", [{ label: "model", render: (r) => el("b", {}, r.group.model || "(none)") }].concat(tokenCols), byModel.items);
  put("#by-agent", [{ label: "agent", render: (r) => el("a", { href: "/ui/runs" + AS.qs({ agent: r.group.agent, version: r.group.version }) }, r.group.agent + "@" + r.group.version) }].concat(tokenCols), byAgent.items);
});
