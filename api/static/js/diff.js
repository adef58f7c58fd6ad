// Diff of two runs: GET /v1/runs/{a}/diff/{b}. Totals side by side, then the aligned steps
// (same / changed / inserted / removed) with per-step deltas; the first divergence is marked.
AS.page(async function (main) {
  const el = AS.el, fmt = AS.fmt;
  const form = AS.$("#diff-form");
  const params = new URLSearchParams(location.search);
  form.a.value = params.get("a") || "";
  form.b.value = params.get("b") || "";
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.search = AS.qs({ a: form.a.value.trim(), b: form.b.value.trim() }).slice(1);
  });
  const out = AS.clear(AS.$("#diff"));
  if (!form.a.value || !form.b.value) { out.append(el("p", { class: "note" }, "Give two run ids.")); return; }
  let d;
  try {
    d = await AS.api("/v1/runs/" + encodeURIComponent(form.a.value) + "/diff/" + encodeURIComponent(form.b.value));
  } catch (err) { AS.showError(out, err); return; }

  const signed = (v, f) => (v === null || v === undefined ? "–" : (v > 0 ? "+" : v < 0 ? "−" : "") + f(Math.abs(v)));
  const rows = [
    ["run", AS.runLink(d.a.run_id), AS.runLink(d.b.run_id), ""],
    ["version", d.a.agent_version, d.b.agent_version, ""],
    ["status", AS.badge(d.a.status, d.a.status), AS.badge(d.b.status, d.b.status), d.total_delta.status_changed ? "changed" : ""],
    ["duration", fmt.ms(d.a.duration_ms), fmt.ms(d.b.duration_ms), signed(d.total_delta.duration_ms, fmt.ms)],
    ["steps", d.a.steps, d.b.steps, signed(d.total_delta.steps, String)],
    ["failures", d.a.failures, d.b.failures, signed(d.total_delta.failures, String)],
    ["retries", d.a.retries, d.b.retries, signed(d.total_delta.retries, String)],
    ["tokens", fmt.tokens(d.a.tokens), fmt.tokens(d.b.tokens), signed(d.total_delta.tokens, fmt.tokens)],
    ["cost", fmt.usd(d.a.cost_usd), fmt.usd(d.b.cost_usd), signed(d.total_delta.cost_usd, fmt.usd)],
  ];
  const c = d.counts;
  out.append(
    el("section", { class: "panel", id: "diff-totals" }, el("h2", {}, "Totals"),
      AS.table([{ label: "" }, { label: "A (baseline)" }, { label: "B" }, { label: "B − A", num: true }].map((col, i) => ({ ...col, render: (r) => r[i] })), rows)),
    el("p", { class: "sub", id: "diff-summary" }, c.same + " same · " + c.changed + " changed · " + c.inserted + " inserted · " + c.removed + " removed — ",
      d.identical ? "the runs took the same steps" : "first divergence at step " + (d.first_divergence + 1)));

  const COLORS = { same: "", changed: "#fff4e6", inserted: "#ebfbee", removed: "#fff0f0" };
  const MARK = { same: "", changed: "~", inserted: "+", removed: "−" };
  const kindStyle = { color: "#fff", padding: "1px 5px", borderRadius: "4px", fontSize: "11px", fontWeight: "600" };
  const stepCell = (s) => (s ? [el("span", { class: "kind k-" + s.step_kind, style: kindStyle }, s.step_kind), " ", s.name, s.status !== "OK" ? [" ", AS.badge(s.status, s.status)] : null] : "");
  const table = AS.table([
    { label: "", render: (o) => el("b", {}, MARK[o.op]) },
    { label: "A #", render: (o) => (o.a ? o.a.seq : "") },
    { label: "A step", render: (o) => stepCell(o.a) },
    { label: "B #", render: (o) => (o.b ? o.b.seq : "") },
    { label: "B step", render: (o) => stepCell(o.b) },
    { label: "what changed", render: (o) => o.changes.join(", ") },
    { label: "Δ latency", num: true, render: (o) => signed(o.delta.latency_ms, fmt.ms) },
    { label: "Δ tokens", num: true, render: (o) => signed(o.delta.tokens, fmt.tokens) },
    { label: "Δ cost", num: true, render: (o) => signed(o.delta.cost_usd, fmt.usd) },
  ], d.ops, {
    rowAttrs: (o) => ({ class: "op-" + o.op + (o.index === d.first_divergence ? " first-divergence" : ""),
      dataset: { op: o.op }, style: { background: COLORS[o.op], outline: o.index === d.first_divergence ? "2px solid #e8590c" : "" } }),
  });
  out.append(el("section", { class: "panel", id: "diff-steps" }, el("h2", {}, "Aligned steps (by kind, name and argument digest)"), table));
});
