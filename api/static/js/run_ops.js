// Run page operations, next to run.js: Stop / Throttle by hand (with a confirmation that asks
// why), the run explained in plain words, a link to diff it with another run, and a play control
// that re-plays the waterfall run.js drew (rows appear as their steps start, bars grow as they run).
AS.page(async function (main) {
  const el = AS.el, fmt = AS.fmt;
  const runId = main.dataset.runId;
  const path = "/v1/runs/" + encodeURIComponent(runId);
  // The key's scopes decide whether Stop and Throttle are offered. A failed read is tried
  // again before the buttons are disabled, and then they say it was the read that failed, not
  // the key (a busy server must not pass for a key without the write scope).
  async function whoami() {
    for (const wait of [250, 1000, 0]) {
      try { return await AS.api("/ui/api/whoami"); } catch (err) {
        if (!wait) return { scopes: [], failed: err.message || String(err) };
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }
  const [run, who, explained] = await Promise.all([
    AS.api(path).then((d) => d.run),
    AS.shared ? { scopes: [] } : whoami(),
    AS.api(path + "/explain").catch(() => null),
  ]);
  const canWrite = (who.scopes || []).includes("write");

  // ---- the operations bar, under the run's title
  const result = el("div", { id: "ops-result", role: "status" });
  const stopBtn = el("button", { type: "button", id: "stop-run", class: "danger",
    style: { background: "#c92a2a", borderColor: "#c92a2a" } }, "■ Stop run");
  const throttleBtn = el("button", { type: "button", id: "throttle-run", class: "secondary" }, "Throttle…");
  const running = run.status === "RUNNING";
  for (const b of [stopBtn, throttleBtn]) {
    b.disabled = !running || !canWrite;
    b.title = !running ? "the run already ended (" + run.status + ")"
      : who.failed ? "could not read this key's permissions (" + who.failed + "); reload to try again"
      : !canWrite ? "needs an API key with the write scope" : "";
  }
  const other = el("input", { id: "diff-other", placeholder: "another run id", size: 24, "aria-label": "run to compare with" });
  const diffForm = el("form", { id: "diff-form", class: "inline", style: { display: "inline-flex", gap: "6px", marginLeft: "12px" } },
    other, el("button", { type: "submit", class: "secondary" }, "Diff with…"));
  diffForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (other.value.trim()) location.href = "/ui/diff" + AS.qs({ a: runId, b: other.value.trim() });
  });
  const bar = el("div", { class: "ops-bar", style: { display: "flex", gap: "8px", alignItems: "center", margin: "8px 0 12px" } },
    stopBtn, throttleBtn, diffForm,
    running ? null : el("span", { class: "note" }, "stop and throttle apply to running runs only"));
  // A shared snapshot operates nothing: it says what it is instead.
  if (AS.shared) {
    const meta = window.AGENTSTREAM_SHARED;
    AS.$("#run-sub").after(el("div", { id: "shared-banner", class: "note", style: { background: "#f1f3f5", padding: "8px 12px", borderRadius: "8px", margin: "8px 0 12px" } },
      "Shared snapshot of this run as stored at " + meta.taken_at + " (tenant " + meta.tenant + "): read-only, no data is fetched; links to other pages do not work here."));
  } else {
    AS.$("#run-sub").after(bar, result);
  }

  // ---- confirmation dialog: a reason is required, it is stored with the action
  function confirmDialog(kind) {
    const reason = el("textarea", { id: "op-reason", rows: 3, cols: 48, required: true, maxlength: 500,
      placeholder: "why (stored with the " + kind + ")" });
    const actor = el("input", { id: "op-actor", maxlength: 128, placeholder: "your name (optional)" });
    const delay = el("input", { id: "op-delay", type: "number", min: 1, max: 600000, value: 1000 });
    const confirm = el("button", { type: "submit", id: "op-confirm",
      style: kind === "stop" ? { background: "#c92a2a", borderColor: "#c92a2a" } : {} },
      kind === "stop" ? "Stop this run" : "Throttle this run");
    const cancel = el("button", { type: "button", class: "secondary", id: "op-cancel" }, "Cancel");
    const error = el("div", { class: "op-error" });
    const form = el("form", { method: "dialog" },
      el("h2", {}, kind === "stop" ? "Stop run " + runId + "?" : "Throttle run " + runId + "?"),
      el("p", { class: "note" }, kind === "stop"
        ? "The agent raises RunStopped before its next step. This cannot be undone."
        : "The agent waits this long before each further step."),
      el("label", {}, "Reason", el("br"), reason), el("br"),
      el("label", {}, "Actor", el("br"), actor), el("br"),
      kind === "throttle" ? el("label", {}, "Delay per step (ms) ", delay) : null,
      error, el("div", { style: { display: "flex", gap: "8px", marginTop: "12px" } }, confirm, cancel));
    const dlg = el("dialog", { id: "op-dialog", style: { borderRadius: "10px", border: "1px solid #ccd", padding: "18px", maxWidth: "520px" } }, form);
    document.body.append(dlg);
    cancel.addEventListener("click", () => { dlg.close(); dlg.remove(); });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!reason.value.trim()) { AS.showError(AS.clear(error), "a reason is required"); return; }
      confirm.disabled = true;
      const body = { reason: reason.value.trim() };
      if (actor.value.trim()) body.actor = actor.value.trim();
      if (kind === "throttle") body.throttle_ms = Number(delay.value);
      try {
        const r = await AS.api(path + "/" + kind, { method: "POST", body });
        dlg.close(); dlg.remove();
        AS.clear(result).append(el("div", { class: "ok-banner", id: "op-sent",
          style: { background: "#ebfbee", border: "1px solid #b2f2bb", padding: "8px 12px", borderRadius: "8px" } },
          (kind === "stop" ? "Stop" : "Throttle") + " sent by " + r.issued_by + " (command ", el("code", {}, r.command_id),
          "). The agent applies it before its next step; its acknowledgement appears under Enforcement."));
        if (kind === "stop") { stopBtn.disabled = throttleBtn.disabled = true; waitForEnd(); }
      } catch (err) {
        confirm.disabled = false;
        AS.showError(AS.clear(error), err);
      }
    });
    dlg.showModal();
    reason.focus();
  }
  stopBtn.addEventListener("click", () => confirmDialog("stop"));
  throttleBtn.addEventListener("click", () => confirmDialog("throttle"));

  async function waitForEnd() {
    for (let i = 0; i < 60; i++) {
      await new Promise((r) => setTimeout(r, 2000));
      const now = await AS.api(path).then((d) => d.run).catch(() => null);
      if (now && now.status !== "RUNNING") { location.reload(); return; }
    }
  }

  // ---- explanation: the API's deterministic account
  if (explained) {
    const panel = el("section", { class: "panel", id: "explain-panel", style: { marginBottom: "16px" } },
      el("h2", {}, "What happened"), el("ul", { id: "explain" }, explained.summary.map((s) => el("li", {}, s))));
    AS.$("#enforcement-panel").before(panel);
  }

  // ---- play control over run.js's waterfall
  const wf = AS.$("#waterfall");
  await new Promise((resolve) => {
    if (wf.querySelector(".wf-row")) return resolve();
    new MutationObserver((_, obs) => { if (wf.querySelector(".wf-row")) { obs.disconnect(); resolve(); } })
      .observe(wf, { childList: true });
  });
  const bars = Array.from(wf.querySelectorAll(".wf-row[data-step-id] .wf-bar")).map((b) => ({
    bar: b, row: b.closest(".wf-row"), left: parseFloat(b.style.left) || 0, width: parseFloat(b.style.width) || 0,
  }));
  const moments = Array.from(new Set(bars.flatMap((b) => [b.left, b.left + b.width]).concat([100]))).sort((a, b) => a - b);
  const head = el("div", { class: "wf-playhead", style: { position: "absolute", top: 0, bottom: 0, width: "2px", background: "#e8590c", display: "none", pointerEvents: "none" } });
  const clock = el("span", { class: "note", id: "play-clock" });
  const speed = el("select", { id: "play-speed", "aria-label": "speed" }, ["1", "10", "100"].map((s) => el("option", { value: s, selected: s === "10" }, s + "×")));
  const play = el("button", { type: "button", id: "play", class: "secondary" }, "▶ Play");
  const step = el("button", { type: "button", id: "play-step", class: "secondary" }, "Step ›");
  const reset = el("button", { type: "button", id: "play-reset", class: "secondary" }, "⟲ All");
  const controls = el("div", { class: "play-controls", style: { display: "flex", gap: "6px", alignItems: "center", margin: "4px 0 8px" } }, play, step, reset, speed, clock);
  wf.before(controls);
  const totalMs = (run.duration_ms || Math.max(1, (run.last_us - run.started_us) / 1000));
  let at = 100, timer = null, last = 0;

  function show(pct) {
    at = Math.min(100, Math.max(0, pct));
    for (const b of bars) {
      const started = b.left <= at;
      b.row.style.display = started ? "" : "none";
      b.bar.style.width = Math.max(0.3, Math.min(b.width, at - b.left)) + "%";
      b.bar.classList.toggle("playing", started && at < b.left + b.width);
    }
    const track = wf.querySelector(".wf-track");
    if (track && !head.parentNode) { wf.style.position = "relative"; wf.append(head); }
    if (track) {
      const box = wf.getBoundingClientRect(), tb = track.getBoundingClientRect();
      head.style.left = (tb.left - box.left + (tb.width * at) / 100) + "px";
      head.style.display = at >= 100 ? "none" : "";
    }
    clock.textContent = fmt.ms((totalMs * at) / 100) + " / " + fmt.ms(totalMs);
    wf.dataset.playAt = String(at);
    wf.querySelectorAll("svg.wf-links").forEach((n) => (n.style.display = at >= 100 ? "" : "none"));
  }
  function pause() { if (timer) cancelAnimationFrame(timer); timer = null; play.textContent = "▶ Play"; }
  function tick(now) {
    const dt = last ? now - last : 0;
    last = now;
    show(at + (100 * dt * Number(speed.value)) / totalMs);
    if (at >= 100) { pause(); return; }
    timer = requestAnimationFrame(tick);
  }
  play.addEventListener("click", () => {
    if (timer) return pause();
    if (at >= 100) show(0);
    last = 0; play.textContent = "❚❚ Pause"; timer = requestAnimationFrame(tick);
  });
  step.addEventListener("click", () => { pause(); if (at >= 100) show(0); else show(moments.find((m) => m > at + 1e-9) ?? 100); });
  reset.addEventListener("click", () => { pause(); show(100); });
  show(100);
});
