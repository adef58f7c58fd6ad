// Alerts: history with filters, newest first, each linked to its run or agent, with its evidence.
AS.page(async function (main) {
  const el = AS.el, fmt = AS.fmt;
  const form = AS.$("#filters");
  const params = new URLSearchParams(location.search);
  for (const name of ["alert_type", "severity", "agent_id", "run_id", "state"]) if (params.get(name)) form.elements[name].value = params.get(name);
  const filters = () => ({
    alert_type: form.elements.alert_type.value, severity: form.elements.severity.value,
    agent_id: form.elements.agent_id.value.trim(), run_id: form.elements.run_id.value.trim(),
    state: form.elements.state.value,
  });
  form.addEventListener("submit", (ev) => { ev.preventDefault(); location.search = AS.qs(filters()); });

  const f = filters();
  const cursor = params.get("cursor");
  // The API names the agent filter ``agent``; the page keeps ``agent_id`` in its own URL.
  const page = await AS.api("/v1/alerts" + AS.qs({ alert_type: f.alert_type, severity: f.severity, agent: f.agent_id,
    run_id: f.run_id, state: f.state, limit: 50, cursor }));
  const ACTIONS = { open: [["acknowledge", "ack"], ["resolve", "resolve"]],
    acknowledged: [["resolve", "resolve"], ["reopen", "reopen"]], resolved: [["reopen", "reopen"]] };
  const columns = [
    { label: "detected", render: (a) => el("span", { title: fmt.time(a.detected_us) }, fmt.time(a.detected_us)) },
    { label: "severity", render: (a) => AS.badge(a.severity, a.severity) },
    { label: "type", render: (a) => el("b", {}, a.alert_type) },
    { label: "title", render: (a) => a.title },
    { label: "run / agent", render: (a) => a.run_id ? AS.runLink(a.run_id)
      : a.agent_id ? el("a", { href: "/ui/runs" + AS.qs({ agent: a.agent_id, version: a.agent_version || "" }) }, a.agent_id + (a.agent_version ? "@" + a.agent_version : "")) : "–" },
    { label: "evidence", render: (a) => el("div", { class: "evidence" }, Object.entries(a.evidence || {}).map(([k, v]) =>
      el("span", { class: "ev" }, k + "=", el("code", {}, v)))) },
    // Lifecycle: state (null when the API has no broker to keep it), its actions, active silence.
    { label: "state", render: (a) => a.state === null || a.state === undefined ? "–" : el("div", { class: "alert-state" },
      AS.badge(a.state, a.state === "open" ? "warn" : a.state === "acknowledged" ? "INFO" : "ok"),
      a.silenced_by ? el("span", { class: "note", title: a.silenced_by }, " silenced") : "",
      ...(ACTIONS[a.state] || []).map(([verb, label]) => el("button", { type: "button", class: "secondary small", dataset: { action: verb },
          title: a.state_by ? a.state + " by " + a.state_by + (a.state_note ? ": " + a.state_note : "") : "",
          onclick: async (ev) => {
            ev.target.disabled = true;
            try { await AS.api("/v1/alerts/" + encodeURIComponent(a.alert_id) + "/" + verb, { method: "POST", body: {} }); location.reload(); }
            catch (err) { ev.target.disabled = false; AS.showError(AS.$("#alerts-table"), err); }
          } }, label))) },
    { label: "", render: (a) => a.alert_type === "drift" && a.agent_id
      ? el("a", { href: "/ui/drift" + AS.qs({ agent: a.agent_id, version: a.agent_version || "", metric: (a.evidence || {}).metric || "" }) }, "drift →") : "" },
  ];
  const box = AS.clear(AS.$("#alerts-table"));
  box.classList.remove("empty");
  box.append(AS.table(columns, page.items, { empty: "no alerts match", rowAttrs: (a) => ({ dataset: { alertId: a.alert_id, type: a.alert_type } }) }));
  AS.pager(page.next_cursor, cursor, filters);
});
