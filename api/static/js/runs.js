// Runs: a filterable, cursor-paged table. Filters and the cursor live in the URL, so a page of
// results can be linked and the back button works.
AS.page(async function (main) {
  const el = AS.el, fmt = AS.fmt;
  const form = AS.$("#filters");
  const params = new URLSearchParams(location.search);

  // Agent and version choices come from the fleet stats (the tenant's own agents only).
  const stats = await AS.api("/v1/stats?limit=500");
  const agents = [...new Set(stats.items.map((r) => r.agent_id))].sort();
  const agentSel = form.elements.agent, versionSel = form.elements.version;
  agents.forEach((a) => agentSel.append(el("option", {}, a)));
  function fillVersions() {
    const keep = versionSel.value || params.get("version") || "";
    AS.clear(versionSel).append(el("option", { value: "" }, "any"));
    stats.items.filter((r) => !agentSel.value || r.agent_id === agentSel.value)
      .map((r) => r.agent_version).filter((v, i, a) => a.indexOf(v) === i).sort()
      .forEach((v) => versionSel.append(el("option", { selected: v === keep }, v)));
  }
  for (const name of ["agent", "status", "environment"]) if (params.get(name)) form.elements[name].value = params.get(name);
  for (const name of ["since", "until"]) if (params.get(name)) form.elements[name].value = params.get(name).slice(0, 16);
  fillVersions();
  agentSel.addEventListener("change", fillVersions);

  const toIso = (v) => (v ? new Date(v).toISOString() : "");
  function filters() {
    const f = form.elements;
    return { agent: f.agent.value, version: f.version.value, status: f.status.value,
      environment: f.environment.value.trim(), since: f.since.value, until: f.until.value };
  }
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.search = AS.qs(filters());
  });

  const columns = [
    { label: "run", render: (r) => AS.runLink(r.run_id) },
    { label: "started", render: (r) => el("span", { title: fmt.time(r.started_us) }, fmt.ago(r.started_us)) },
    { label: "agent", render: (r) => r.agent_id },
    { label: "version", render: (r) => r.agent_version },
    { label: "status", render: (r) => AS.badge(r.status, r.status) },
    { label: "outcome", render: (r) => el("span", { class: "note" }, r.outcome || "") },
    { label: "duration", num: true, render: (r) => fmt.ms(r.duration_ms) },
    { label: "steps", num: true, render: (r) => fmt.int(r.step_count) },
    { label: "retries", num: true, render: (r) => fmt.int(r.retry_count) },
    { label: "failures", num: true, render: (r) => fmt.int(r.failure_count) },
    { label: "tokens", num: true, render: (r) => fmt.tokens(r.input_tokens + r.output_tokens) },
    { label: "cost", num: true, render: (r) => fmt.usd(r.cost_usd) },
  ];

  const cursor = params.get("cursor");
  const f = filters();
  const query = Object.assign({}, f, { since: toIso(f.since), until: toIso(f.until), limit: 50, cursor });
  const box = AS.clear(AS.$("#runs-table"));
  box.classList.remove("empty");
  let page;
  try {
    page = await AS.api("/v1/runs" + AS.qs(query));
  } catch (e) {
    box.append(el("p", { class: "error-banner" }, e.message));
    return;
  }
  box.append(AS.table(columns, page.items, { empty: "no runs match", rowAttrs: (r) => ({ dataset: { runId: r.run_id } }) }));
  AS.$("#page-info").textContent = page.items.length + " runs on this page" + (cursor ? " (not the first page)" : "");
  const next = AS.$("#next");
  next.disabled = !page.next_cursor;
  next.addEventListener("click", () => { location.search = AS.qs(Object.assign(filters(), { cursor: page.next_cursor })); });
  const first = AS.$("#first");
  first.disabled = !cursor;
  first.addEventListener("click", () => { location.search = AS.qs(filters()); });
});
