// One session: totals, a timeline of its runs (one bar per run, on the session's own clock) and
// the runs in start order, each linked to its waterfall.
AS.page(async function (main) {
  const el = AS.el, fmt = AS.fmt;
  const id = main.dataset.sessionId;
  AS.$("#session-title").textContent = id;
  const d = await AS.api("/v1/sessions/" + encodeURIComponent(id));
  const s = d.session;
  AS.$("#session-sub").textContent = s.agents.join(", ") + " · started " + fmt.time(s.started_us) +
    (d.truncated ? " · showing the first " + d.runs.length + " runs" : "");
  const kpi = (k, v) => el("div", { class: "kpi" }, el("div", { class: "v" }, v), el("div", { class: "k" }, k));
  AS.$("#kpis").append(
    kpi("status", s.status), kpi("runs", fmt.int(s.run_count)), kpi("failed runs", fmt.int(s.failed_runs)),
    kpi("failures", fmt.int(s.failure_count)), kpi("wall time", fmt.ms(s.duration_ms)),
    kpi("tokens (in / out)", fmt.tokens(s.input_tokens) + " / " + fmt.tokens(s.output_tokens)),
    kpi("cost", fmt.usd(s.cost_usd)));
  // Timeline: each run's span from its start to its last event, scaled to the session's span.
  const t0 = s.started_us, span = Math.max(1, s.last_us - s.started_us);
  const lane = AS.$("#session-timeline");
  d.runs.forEach((r) => {
    const left = (100 * (r.started_us - t0)) / span, width = Math.max(0.6, (100 * (r.last_us - r.started_us)) / span);
    lane.append(el("div", { class: "st-row" },
      el("span", { class: "st-label mono" }, r.run_id.slice(0, 14)),
      el("div", { class: "st-track" }, el("a", {
        href: "/ui/runs/" + encodeURIComponent(r.run_id), class: "st-bar " + r.status,
        title: r.run_id + " · " + r.status + " · " + fmt.ms(r.duration_ms),
        style: { left: left + "%", width: Math.min(width, 100 - left) + "%" } }))));
  });
  const columns = [
    { label: "#", num: true, render: (r) => String(d.runs.indexOf(r) + 1) },
    { label: "run", render: (r) => AS.runLink(r.run_id) },
    { label: "agent", render: (r) => r.agent_id + "@" + r.agent_version },
    { label: "status", render: (r) => AS.badge(r.status === "RUNNING" ? "live" : r.status, r.status === "RUNNING" ? "live" : r.status) },
    { label: "started", render: (r) => fmt.time(r.started_us) },
    { label: "duration", num: true, render: (r) => fmt.ms(r.duration_ms) },
    { label: "steps", num: true, render: (r) => fmt.int(r.step_count) },
    { label: "failures", num: true, render: (r) => fmt.int(r.failure_count) },
    { label: "tokens", num: true, render: (r) => fmt.tokens(r.input_tokens + r.output_tokens) },
    { label: "cost", num: true, render: (r) => fmt.usd(r.cost_usd) },
  ];
  const box = AS.clear(AS.$("#session-runs"));
  box.classList.remove("empty");
  box.append(AS.table(columns, d.runs, { empty: "no runs", rowAttrs: (r) => ({ dataset: { runId: r.run_id } }) }));
});
