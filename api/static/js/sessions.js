// Sessions: the tenant's sessions (runs sharing a session id), most recently active first, with
// totals; filters and the cursor live in the URL.
AS.page(async function (main) {
  const el = AS.el, fmt = AS.fmt;
  const form = AS.$("#filters");
  const params = new URLSearchParams(location.search);
  for (const name of ["agent", "min_cost_usd"]) if (params.get(name)) form.elements[name].value = params.get(name);
  const filters = () => ({ agent: form.elements.agent.value.trim(), min_cost_usd: form.elements.min_cost_usd.value.trim() });
  form.addEventListener("submit", (ev) => { ev.preventDefault(); location.search = AS.qs(filters()); });
  const cursor = params.get("cursor");
  const page = await AS.api("/v1/sessions" + AS.qs(Object.assign(filters(), { limit: 50, cursor })));
  const columns = [
    { label: "session", render: (s) => el("a", { href: "/ui/sessions/" + encodeURIComponent(s.session_id), class: "mono" },
      s.session_id.length > 28 ? s.session_id.slice(0, 27) + "…" : s.session_id) },
    { label: "status", render: (s) => AS.badge(s.status === "RUNNING" ? "live" : s.status, s.status === "RUNNING" ? "live" : s.status) },
    { label: "last active", render: (s) => el("span", { title: fmt.time(s.last_us) }, fmt.ago(s.last_us)) },
    { label: "agents", render: (s) => s.agents.join(", ") },
    { label: "runs", num: true, render: (s) => fmt.int(s.run_count) },
    { label: "failed runs", num: true, render: (s) => fmt.int(s.failed_runs) },
    { label: "duration", num: true, render: (s) => fmt.ms(s.duration_ms) },
    { label: "tokens", num: true, render: (s) => fmt.tokens(s.total_tokens) },
    { label: "cost", num: true, render: (s) => fmt.usd(s.cost_usd) },
  ];
  const box = AS.clear(AS.$("#sessions-table"));
  box.classList.remove("empty");
  box.append(AS.table(columns, page.items, { empty: "no sessions match", rowAttrs: (s) => ({ dataset: { sessionId: s.session_id } }) }));
  AS.pager(page.next_cursor, cursor, filters);
});
