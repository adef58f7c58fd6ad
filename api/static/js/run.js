// Run detail: a waterfall of the run's steps (nesting, retries linked to what they retry, waits and
// approvals, LLM model/tokens/cost, failures, decisions) and every enforcement that hit the run.
AS.page(async function (main) {
  const el = AS.el, fmt = AS.fmt;
  const runId = main.dataset.runId;
  const [d, timeline, alerts] = await Promise.all([
    AS.api("/v1/runs/" + encodeURIComponent(runId)),
    AS.api("/v1/runs/" + encodeURIComponent(runId) + "/timeline").catch(() => null),
    AS.api("/v1/alerts" + AS.qs({ run_id: runId, limit: 100 })).then((p) => p.items || []).catch(() => []),
  ]);
  const run = d.run;
  AS.$("#run-title").textContent = run.run_id;
  AS.$("#run-sub").append(
    el("a", { href: "/ui/runs" + AS.qs({ agent: run.agent_id }) }, run.agent_id), " @ ",
    el("a", { href: "/ui/runs" + AS.qs({ agent: run.agent_id, version: run.agent_version }) }, run.agent_version),
    " · ", run.environment, " · entrypoint ", el("code", {}, run.entrypoint || "–"),
    " · started ", fmt.time(run.started_us), run.session_id ? " · session " + run.session_id : "");
  const kpi = (k, v) => el("div", { class: "kpi" }, el("div", { class: "v" }, v), el("div", { class: "k" }, k));
  AS.$("#kpis").append(...[
    kpi("status", AS.badge(run.status, run.status)), kpi("outcome", run.outcome || "–"),
    kpi("duration", fmt.ms(run.duration_ms)), kpi("steps", fmt.int(run.step_count)),
    kpi("LLM calls", fmt.int(run.llm_calls)), kpi("tokens in / out", fmt.tokens(run.input_tokens) + " / " + fmt.tokens(run.output_tokens)),
    kpi("cost", fmt.usd(run.cost_usd)), kpi("retries · failures", run.retry_count + " · " + run.failure_count),
    timeline && timeline.wait_ms ? kpi("human wait", fmt.ms(timeline.wait_ms)) : null].filter(Boolean));

  // ---- enforcement: stops, commands and their acknowledgements, and the alerts on this run
  const enf = AS.clear(AS.$("#enforcement"));
  enf.classList.remove("empty");
  const items = [];
  const acks = d.other_events.filter((e) => e.kind === "COMMAND_ACK");
  for (const a of alerts) {
    items.push(el("li", { class: "enf-alert", dataset: { alertId: a.alert_id } }, AS.badge(a.severity, a.severity), " ",
      el("b", {}, a.alert_type), " — ", a.title, " ", el("span", { class: "note" }, fmt.time(a.detected_us || a.detected_ts)),
      evidence(a.evidence)));
  }
  for (const a of acks) {
    const x = a.details || {};
    items.push(el("li", { class: "enf-ack" }, AS.badge("command " + (x.command_type || ""), "warn"), " ",
      el("code", {}, x.command_id || ""), " acknowledged by the SDK: ", el("b", {}, x.status || ""),
      x.detail ? " — " + x.detail : "", " ", el("span", { class: "note" }, fmt.time(a.ts_us))));
  }
  for (const f of d.failures.filter((f) => ["BUDGET", "POLICY"].includes(f.failure_type))) {
    items.push(el("li", { class: "enf-failure" }, AS.badge(f.failure_type, "bad"), " ", el("code", {}, f.failure_code),
      (f.details && f.details.message) ? " — " + f.details.message : ""));
  }
  if (["budget_stopped", "no_progress_stopped", "stopped_by_command"].includes(run.outcome)) {
    items.push(el("li", { class: "enf-outcome" }, AS.badge("stopped", "bad"), " the run ended with outcome ", el("b", {}, run.outcome)));
  }
  if (items.length) enf.append(el("ul", { class: "enf" }, items));
  else { enf.append(el("p", { class: "note" }, "No budget stop, loop stop or command hit this run.")); }

  // ---- waterfall
  const steps = d.steps.slice();
  const ends = steps.map((s) => s.started_us + s.latency_ms * 1000);
  const t0 = Math.min(run.started_us, ...steps.map((s) => s.started_us));
  const t1 = Math.max(run.last_us, t0 + (run.duration_ms || 0) * 1000, ...ends, t0 + 1000);
  const pos = (us) => (100 * (us - t0)) / (t1 - t0);

  const byId = new Map(steps.map((s) => [s.step_id, s]));
  const children = new Map();
  const roots = [];
  for (const s of steps.sort((a, b) => a.started_us - b.started_us || a.seq - b.seq)) {
    if (s.parent_step_id && byId.has(s.parent_step_id)) {
      if (!children.has(s.parent_step_id)) children.set(s.parent_step_id, []);
      children.get(s.parent_step_id).push(s);
    } else roots.push(s);
  }
  const ordered = [];
  (function walk(list, depth) { for (const s of list) { ordered.push([s, depth]); walk(children.get(s.step_id) || [], depth + 1); } })(roots, 0);

  const onStep = new Map();
  const runLevel = [];
  const marker = (kind, ts, obj) => ({ kind, ts, obj });
  for (const f of d.failures) (f.step_id && byId.has(f.step_id) ? (onStep.get(f.step_id) || onStep.set(f.step_id, []).get(f.step_id)) : runLevel).push(marker("FAILURE", f.ts_us, f));
  for (const x of d.decisions) (x.step_id && byId.has(x.step_id) ? (onStep.get(x.step_id) || onStep.set(x.step_id, []).get(x.step_id)) : runLevel).push(marker("DECISION", x.ts_us, x));
  for (const x of d.signals) (x.step_id && byId.has(x.step_id) ? (onStep.get(x.step_id) || onStep.set(x.step_id, []).get(x.step_id)) : runLevel).push(marker("QUALITY_SIGNAL", x.ts_us, x));
  for (const x of d.other_events.filter((e) => e.kind === "COMMAND_ACK" || e.kind === "FEEDBACK")) runLevel.push(marker(x.kind, x.ts_us, x));

  const wf = AS.clear(AS.$("#waterfall"));
  const axis = el("div", { class: "wf-axis" });
  for (const f of [0, 0.25, 0.5, 0.75, 1]) axis.append(el("span", { style: { left: f * 100 + "%", transform: f === 1 ? "translateX(-100%)" : f === 0 ? "none" : "" } }, fmt.ms(((t1 - t0) * f) / 1000)));
  wf.append(axis);

  const detail = AS.$("#detail");
  let selected = null;
  function select(row, title, fields) {
    if (selected) selected.classList.remove("selected");
    selected = row; if (row) row.classList.add("selected");
    AS.clear(detail).classList.remove("note");
    detail.append(el("h2", {}, title), el("dl", { class: "detail" }, fields.filter((f) => f[1] !== undefined && f[1] !== null && f[1] !== "").map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])));
  }
  function markerEl(m, row) {
    const node = el("div", { class: "wf-marker " + m.kind, title: m.kind.toLowerCase(), style: { left: pos(m.ts) + "%" }, dataset: { kind: m.kind } });
    node.addEventListener("click", (ev) => { ev.stopPropagation(); select(row, m.kind.replace("_", " ").toLowerCase(), markerFields(m)); });
    return node;
  }
  function markerFields(m) {
    const o = m.obj;
    if (m.kind === "FAILURE") return [["type", o.failure_type], ["code", el("code", {}, o.failure_code)], ["step", o.step_id], ["message", (o.details || {}).message], ["retryable", String((o.details || {}).retryable ?? "")], ["at", fmt.time(o.ts_us)]];
    if (m.kind === "DECISION") return [["type", o.decision_type], ["selected", el("b", {}, o.selected)], ["candidates", o.candidates.join(", ")], ["reason", el("code", {}, o.reason_code)], ["confidence", o.confidence === null ? "" : fmt.num(o.confidence, 2)], ["at", fmt.time(o.ts_us)]];
    if (m.kind === "QUALITY_SIGNAL") return [["signal", o.signal_type], ["code", o.signal_code], ["value", String(o.value)], ["weight", o.weight], ["at", fmt.time(o.ts_us)]];
    return Object.entries(o.details || {}).map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : String(v)]).concat([["at", fmt.time(o.ts_us)]]);
  }

  // The run itself: one lane for events not tied to a step.
  const runTrack = el("div", { class: "wf-track" },
    el("div", { class: "wf-bar k-RUN_START", style: { left: "0%", width: pos(t0 + (run.duration_ms || 0) * 1000) + "%", opacity: 0.25 } }));
  const runRow = el("div", { class: "wf-row wf-run" }, el("div", { class: "wf-label" }, el("span", { class: "kind k-RUN_START" }, "RUN"), el("b", {}, run.entrypoint || "run")), runTrack);
  runLevel.forEach((m) => runTrack.append(markerEl(m, runRow)));
  runRow.addEventListener("click", () => select(runRow, "run", [["run", run.run_id], ["status", run.status], ["outcome", run.outcome], ["duration", fmt.ms(run.duration_ms)], ["events", run.event_count]]));
  wf.append(runRow);

  const rowOf = new Map();
  for (const [s, depth] of ordered) {
    const llm = s.llm, tool = s.tool, det = s.details || {};
    const isWait = !!det.approval || s.step_kind === "APPROVAL";
    const bar = el("div", {
      class: "wf-bar k-" + s.step_kind + " " + s.status + (isWait ? " wait" : ""),
      style: { left: pos(s.started_us) + "%", width: Math.max(0.3, (100 * s.latency_ms * 1000) / (t1 - t0)) + "%" },
      dataset: { stepId: s.step_id, retryOf: s.retry_of || "", kind: s.step_kind },
      title: s.name + " · " + fmt.ms(s.latency_ms),
    }, el("span", { class: "lbl" + (pos(s.started_us + s.latency_ms * 1000) > 62 ? " left" : "") }, fmt.ms(s.latency_ms) + (llm ? " · " + llm.request_model + " · " + fmt.tokens(llm.input_tokens + llm.output_tokens) + " tok · " + fmt.usd(llm.cost_usd) : "") + (isWait ? " · waiting for approval" : "")));
    const label = el("div", { class: "wf-label", style: { paddingLeft: depth * 16 + "px" } },
      el("span", { class: "kind k-" + s.step_kind }, s.step_kind), el("span", { title: s.name }, s.name),
      s.status !== "OK" ? AS.badge(s.status, s.status) : null,
      s.retry_of ? el("a", { href: "#", class: "wf-retry-link", dataset: { retryOf: s.retry_of }, title: "retry of " + s.retry_of }, "↻ attempt " + s.attempt) : null);
    const track = el("div", { class: "wf-track" }, bar);
    const row = el("div", { class: "wf-row", dataset: { stepId: s.step_id } }, label, track);
    (onStep.get(s.step_id) || []).forEach((m) => track.append(markerEl(m, row)));
    const fields = [["kind", s.step_kind], ["name", s.name], ["status", AS.badge(s.status, s.status)], ["step id", el("code", {}, s.step_id)],
      ["parent", s.parent_step_id ? (byId.get(s.parent_step_id) || {}).name || s.parent_step_id : ""],
      ["started", fmt.time(s.started_us)], ["latency", fmt.ms(s.latency_ms)], ["attempt", s.attempt],
      ["retry of", s.retry_of ? (byId.get(s.retry_of) ? byId.get(s.retry_of).name + " (" + s.retry_of + ")" : s.retry_of) : ""]];
    if (llm) fields.push(["provider", llm.provider], ["model", llm.request_model], ["input tokens", fmt.int(llm.input_tokens)], ["output tokens", fmt.int(llm.output_tokens)], ["cache read", fmt.int(llm.cache_read_tokens)], ["cost", fmt.usd(llm.cost_usd)]);
    if (tool) fields.push(["tool", tool.tool_name], ["args digest", el("code", {}, tool.args_digest || "")]);
    if (det.approval) fields.push(["approval", det.approval.decision], ["human wait", fmt.ms(det.approval.approval_latency_ms)]);
    if (det.handoff) fields.push(["handoff to", det.handoff.to_agent_id + (det.handoff.role ? " (" + det.handoff.role + ")" : "")]);
    if (det.fallback) fields.push(["fallback", det.fallback.source + " → " + det.fallback.target + " (" + det.fallback.reason + ")"]);
    for (const [k, v] of Object.entries(s.attributes || {})) fields.push(["attr " + k, v]);
    row.addEventListener("click", () => select(row, s.step_kind.toLowerCase() + " step", fields));
    rowOf.set(s.step_id, row);
    wf.append(row);
  }
  // Runs this one handed off to, from the API's timeline.
  for (const c of (timeline && timeline.child_runs) || []) {
    const start = run.started_us + c.start_ms * 1000;
    wf.append(el("div", { class: "wf-row wf-child" },
      el("div", { class: "wf-label" }, el("span", { class: "kind k-HANDOFF" }, "CHILD"), el("a", { href: "/ui/runs/" + encodeURIComponent(c.run_id) }, c.agent_id + " " + c.run_id.slice(0, 12)), AS.badge(c.status, c.status)),
      el("div", { class: "wf-track" }, el("div", { class: "wf-bar k-HANDOFF", style: { left: pos(start) + "%", width: Math.max(0.3, (100 * (c.duration_ms || 0) * 1000) / (t1 - t0)) + "%", opacity: 0.6 } }))));
  }
  wf.querySelectorAll(".wf-retry-link").forEach((a) => a.addEventListener("click", (ev) => {
    ev.preventDefault(); ev.stopPropagation();
    const target = rowOf.get(a.dataset.retryOf);
    if (target) { target.scrollIntoView({ block: "center" }); target.click(); }
  }));

  // Retry connectors: from the end of the attempt retried to the start of the retry.
  function drawLinks() {
    wf.querySelectorAll("svg.wf-links").forEach((n) => n.remove());
    const box = wf.getBoundingClientRect();
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "wf-links");
    svg.setAttribute("width", box.width); svg.setAttribute("height", box.height);
    for (const bar of wf.querySelectorAll(".wf-bar[data-retry-of]:not([data-retry-of=''])")) {
      const from = wf.querySelector('.wf-bar[data-step-id="' + CSS.escape(bar.dataset.retryOf) + '"]');
      if (!from) continue;
      const a = from.getBoundingClientRect(), b = bar.getBoundingClientRect();
      const x1 = a.right - box.left, y1 = a.top + a.height / 2 - box.top, x2 = b.left - box.left, y2 = b.top + b.height / 2 - box.top;
      const path = document.createElementNS(ns, "path");
      const mx = Math.max(x1, x2) + 12;
      path.setAttribute("d", `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`);
      path.setAttribute("fill", "none"); path.setAttribute("stroke", "#e8590c"); path.setAttribute("stroke-width", "1.5");
      path.setAttribute("stroke-dasharray", "4 3"); path.setAttribute("class", "wf-link");
      path.dataset.from = bar.dataset.retryOf; path.dataset.to = bar.dataset.stepId;
      svg.append(path);
    }
    wf.append(svg);
  }
  requestAnimationFrame(drawLinks);
  window.addEventListener("resize", drawLinks);

  const legend = AS.$("#legend");
  for (const k of ["PLAN", "RETRIEVAL", "TOOL", "LLM", "RESPOND", "APPROVAL", "HANDOFF", "GUARDRAIL", "CUSTOM"]) legend.append(el("span", {}, el("i", { class: "k-" + k }), k.toLowerCase()));
  legend.append(el("span", {}, el("i", { style: { background: "#ffe8cc", border: "1px dashed #f08c00" } }), "human wait"),
    el("span", {}, el("i", { style: { background: "#c92a2a", transform: "rotate(45deg)" } }), "failure"),
    el("span", {}, el("i", { style: { background: "#1971c2", transform: "rotate(45deg)" } }), "decision"),
    el("span", {}, el("i", { style: { background: "#2f9e44", transform: "rotate(45deg)" } }), "quality signal"),
    el("span", {}, el("i", { style: { background: "#e8590c", transform: "rotate(45deg)" } }), "command ack"),
    el("span", {}, el("i", { style: { borderTop: "2px dashed #e8590c", height: 0, borderRadius: 0 } }), "retry link"));

  // Start with the summary of failures and decisions in the side panel.
  AS.clear(detail).classList.remove("note");
  detail.append(el("p", { class: "note" }, "Click a bar or a marker for its details."));
  if (d.failures.length) detail.append(el("h2", {}, "Failures"), el("ul", {}, d.failures.map((f) => el("li", {}, el("b", {}, f.failure_type), " ", el("code", {}, f.failure_code), f.step_id && byId.get(f.step_id) ? " on " + byId.get(f.step_id).name : ""))));
  if (d.decisions.length) detail.append(el("h2", {}, "Decisions"), el("ul", {}, d.decisions.map((x) => el("li", {}, x.decision_type, ": ", el("b", {}, x.selected), " of ", x.candidates.join(", "), " — ", el("code", {}, x.reason_code), x.confidence !== null ? " (" + fmt.num(x.confidence, 2) + ")" : ""))));

  function evidence(ev) {
    const entries = Object.entries(ev || {});
    if (!entries.length) return null;
    return el("div", { class: "note" }, entries.map(([k, v]) => el("span", { style: { marginRight: "10px" } }, k + "=", el("code", {}, v))));
  }
});
