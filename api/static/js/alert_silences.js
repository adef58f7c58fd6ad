// Alerts page, lifecycle part: the tenant's silences (create with a matcher and an expiry, expire
// now). Acknowledge / resolve / reopen buttons are in alerts.js's state column.
AS.page(async function (main) {
  const el = AS.el, fmt = AS.fmt;
  const box = AS.$("#silences");
  async function load() {
    let list;
    try {
      list = await AS.api("/v1/alerts/silences?include_expired=true");
    } catch (err) {
      AS.clear(box).append(el("p", { class: "note" }, "silences unavailable: " + err.message));
      return;
    }
    const columns = [
      { label: "", render: (s) => AS.badge(s.active ? "active" : "expired", s.active ? "warn" : "CANCELLED") },
      { label: "matches", render: (s) => Object.keys(s.matcher).length
        ? Object.entries(s.matcher).map(([k, v]) => k + "=" + v).join(" · ") : "every alert" },
      { label: "until", render: (s) => fmt.time(s.expires_us) },
      { label: "by", render: (s) => s.created_by },
      { label: "comment", render: (s) => s.comment },
      { label: "", render: (s) => s.active ? el("button", { type: "button", class: "secondary", dataset: { expire: s.silence_id },
        onclick: async () => { await AS.api("/v1/alerts/silences/" + encodeURIComponent(s.silence_id), { method: "DELETE" }); load(); } }, "expire now") : "" },
    ];
    AS.clear(box).classList.remove("empty");
    box.append(AS.table(columns, list, { empty: "no silences", rowAttrs: (s) => ({ dataset: { silenceId: s.silence_id } }) }));
  }
  const form = AS.$("#silence-form");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = form.elements;
    const matcher = {};
    for (const k of ["alert_type", "agent_id", "severity"]) if (f[k].value.trim()) matcher[k] = f[k].value.trim();
    try {
      await AS.api("/v1/alerts/silences", { method: "POST", body: { matcher, duration_s: Number(f.duration_s.value), comment: f.comment.value } });
      form.reset();
      location.reload();  // the alerts table shows which alerts the new silence covers
    } catch (err) { AS.showError(box, err); }
  });
  await load();
});
