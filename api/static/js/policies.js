// Policies: view and edit the tenant's budgets, loop thresholds, redaction modes and governance. Saving PUTs
// the policy to the API, which writes it to the compacted policies topic the processors read.
AS.page(async function (main) {
  const el = AS.el;
  const status = AS.$("#policy-status");
  const box = AS.$("#policy-fields");
  const form = AS.$("#policy-form");
  const LOOPS = [["max_repeats", "repeated identical calls before a loop"], ["max_ping_pong", "A↔B alternations (ping-pong)"],
    ["max_no_progress", "steps without progress"], ["max_retries", "retries of one step"],
    ["repeat_window", "repeat window in steps (0 = whole run)"]];
  // Governance lists are comma separated; tool names are fnmatch patterns (fs_*).
  const GOV_LISTS = [["tool_allow", "allowed tools (empty = any not denied)"], ["tool_deny", "denied tools"],
    ["require_approval", "tools that need an approval of their exact arguments"],
    ["durable_tools", "durable action classes (SDK fails closed)"], ["forbidden_arg_digests", "forbidden argument digests"]];
  const GOV_RULES = ["tool_denied", "tool_not_allowed", "max_tool_calls", "forbidden_args"];
  const BUDGETS = [["run_max_steps", "steps per run", "int"], ["run_max_tokens", "tokens per run", "int"],
    ["run_max_cost_usd", "USD per run", "float"], ["run_max_wall_s", "wall seconds per run", "float"],
    ["tenant_usd_per_hour", "tenant USD per hour", "float"], ["tenant_usd_per_day", "tenant USD per day", "float"],
    ["agent_usd_per_day", "USD per agent per day", "float"]];
  const ACTIONS = ["mask", "hash", "drop"];
  // The redaction processor's rule categories (kept in step with it by tests/browser/test_policies.py).
  // A category left on "default" is omitted from the policy, so the processor's default (mask) applies.
  const CATEGORIES = ["api_key", "bearer_token", "credential_assignment", "email", "iban", "ip_address", "jwt",
    "national_id", "payment_card", "phone", "private_key", "url_credentials"];
  const MODES = ["METADATA_ONLY", "REDACTED", "SECURE_REFERENCE"];

  let policy = await AS.api("/v1/policies");
  const num = (name, value, step, placeholder) => el("input", { type: "number", name, value: value === null || value === undefined ? "" : value, step: step || "any", min: "0", placeholder: placeholder || "" });

  function render(p) {
    AS.clear(box).classList.remove("empty");
    const loops = p.loops || {}, budgets = p.budgets || {}, actions = p.redaction_actions || {}, gov = p.governance || {};
    box.append(
      el("fieldset", {}, el("legend", {}, "Capture and retention"), el("div", { class: "form-grid" },
        el("label", {}, "capture mode", el("select", { name: "capture_mode" }, MODES.map((m) => el("option", { selected: m === p.capture_mode }, m)))),
        el("label", {}, "retention (days)", num("retention_days", p.retention_days, "1")),
        el("label", {}, "policy version", el("input", { name: "version", value: p.version || "", maxlength: "64" })))),
      el("fieldset", {}, el("legend", {}, "Budgets (empty = no limit)"), el("div", { class: "form-grid" },
        BUDGETS.map(([k, label, kind]) => el("label", {}, label, num("budgets." + k, budgets[k], kind === "int" ? "1" : "any", "no limit"))),
        el("label", {}, "warn at share of budget (0 = never)", el("input", { type: "number", name: "budgets.warn_fraction", value: budgets.warn_fraction ?? 0.8, step: "any", min: "0", max: "1" })),
        el("label", { class: "check" }, el("input", { type: "checkbox", name: "budgets.hard_limit", checked: !!budgets.hard_limit }), "hard limit: stop runs on breach"))),
      el("fieldset", {}, el("legend", {}, "Loop detection"), el("div", { class: "form-grid" },
        LOOPS.map(([k, label]) => el("label", {}, label, num("loops." + k, loops[k], "1"))),
        el("label", { class: "check" }, el("input", { type: "checkbox", name: "loops.stop_on_loop", checked: loops.stop_on_loop !== false }), "stop the run when a loop is found"))),
      el("fieldset", { id: "governance" }, el("legend", {}, "Governance: tools, approvals, delegation"), el("div", { class: "form-grid" },
        GOV_LISTS.map(([k, label]) => el("label", {}, label, el("input", { name: "governance." + k, "data-kind": "list", size: "28",
          value: (gov[k] || []).join(", "), placeholder: "none" }))),
        el("label", {}, "max calls per tool per run (tool:n, …)", el("input", { name: "governance.max_calls_per_tool", "data-kind": "map", size: "28",
          value: Object.entries(gov.max_calls_per_tool || {}).map(([t, n]) => t + ":" + n).join(", "), placeholder: "search:20, *:100" })),
        el("label", {}, "max delegation depth", num("governance.max_delegation_depth", gov.max_delegation_depth, "1", "no limit")),
        el("label", {}, "max fan-out (child runs per run)", num("governance.max_fan_out", gov.max_fan_out, "1", "no limit")),
        el("label", {}, "handoff loop: reappearances allowed (0 = off)", num("governance.max_handoff_cycles", gov.max_handoff_cycles ?? 1, "1")),
        el("label", { class: "check" }, el("input", { type: "checkbox", name: "governance.stop_on_multi_agent", checked: gov.stop_on_multi_agent !== false }), "stop runs on a handoff loop or delegation limit"),
        el("div", { class: "checks" }, el("span", {}, "stop the run on: "), GOV_RULES.map((r) => el("label", { class: "check" },
          el("input", { type: "checkbox", name: "governance.stop_on", "data-kind": "stopon", value: r, checked: (gov.stop_on || []).includes(r) }), r))),
        el("p", { class: "note" }, "Approval violations (a changed, rejected or missing approval) always stop the run."))),
      el("fieldset", {}, el("legend", {}, "Redaction action per category"), el("div", { class: "form-grid", id: "redaction-grid" },
        [...new Set(CATEGORIES.concat(Object.keys(actions)))].sort().map((cat) => el("label", {}, cat,
          el("select", { name: "redaction_actions." + cat },
            el("option", { value: "" }, "default (mask)"),
            ACTIONS.map((a) => el("option", { selected: a === actions[cat] }, a))))))));
    AS.$("#policy-version").textContent = "version " + (p.version || "default") + (p.updated_us ? " · updated " + AS.fmt.time(p.updated_us) : "");
  }
  render(policy);

  function collect() {
    const out = JSON.parse(JSON.stringify(policy));
    out.loops = out.loops || {}; out.budgets = out.budgets || {}; out.redaction_actions = out.redaction_actions || {};
    out.governance = out.governance || {};
    out.governance.stop_on = [];
    for (const input of form.querySelectorAll("input[name], select[name]")) {
      const path = input.name.split(".");
      const kind = input.dataset.kind;
      if (kind === "stopon") { if (input.checked) out.governance.stop_on.push(input.value); continue; }
      if (kind === "list") { out.governance[path[1]] = input.value.split(",").map((x) => x.trim()).filter(Boolean); continue; }
      if (kind === "map") {
        const m = {};
        for (const part of input.value.split(",").map((x) => x.trim()).filter(Boolean)) {
          const i = part.lastIndexOf(":");
          m[i > 0 ? part.slice(0, i).trim() : part] = i > 0 ? Math.round(Number(part.slice(i + 1))) : NaN;
        }
        out.governance.max_calls_per_tool = m;  // a malformed entry is sent as is: the API names it in a 422
        continue;
      }
      let v;
      if (input.type === "checkbox") v = input.checked;
      else if (input.type === "number") v = input.value === "" ? null : Number(input.value);
      else v = input.value;
      if (path[0] === "redaction_actions" && v === "") { delete out.redaction_actions[path[1]]; continue; }
      if (path.length === 1) out[path[0]] = v; else out[path[0]][path[1]] = v;
    }
    for (const k of ["max_repeats", "max_ping_pong", "max_no_progress", "max_retries", "repeat_window"]) if (out.loops[k] !== null) out.loops[k] = Math.round(out.loops[k]);
    for (const k of ["max_delegation_depth", "max_fan_out", "max_handoff_cycles"]) if (out.governance[k] !== null && out.governance[k] !== undefined) out.governance[k] = Math.round(out.governance[k]);
    if (out.governance.max_handoff_cycles === null) out.governance.max_handoff_cycles = 0;
    if (out.budgets.warn_fraction === null) out.budgets.warn_fraction = 0;
    for (const k of ["run_max_steps", "run_max_tokens"]) if (out.budgets[k] !== null) out.budgets[k] = Math.round(out.budgets[k]);
    if (out.retention_days !== null) out.retention_days = Math.round(out.retention_days);
    delete out.tenant_id; delete out.updated_us; delete out.source;
    return out;
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    AS.clear(status);
    const save = AS.$("#save");
    save.disabled = true;
    try {
      const body = collect();
      const saved = await AS.api("/v1/policies", { method: "PUT", body });
      policy = saved && saved.policy ? saved.policy : saved || body;
      render(policy);
      status.append(el("div", { class: "ok-banner", role: "status", id: "policy-saved" },
        "Saved: version " + (policy.version || "") + " was written to the policies topic; the processors pick it up from there."));
    } catch (e) {
      status.append(el("div", { class: "error-banner", role: "alert" }, "Not saved: " + e.message +
        (e.body && e.body.error && e.body.error.details ? " — " + JSON.stringify(e.body.error.details) : "")));
    } finally {
      save.disabled = false;
    }
  });
});
