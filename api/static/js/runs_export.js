// Runs page: export the filtered runs, or the worst N of them, as a file (GET /v1/export with the
// session cookie; streamed by the server, saved by the browser). The filters are the page's own.
AS.page(function (main) {
  const el = AS.el;
  const params = new URLSearchParams(location.search);
  const toIso = (v) => (v ? new Date(v).toISOString() : "");
  const filters = {};
  for (const k of ["agent", "version", "status", "environment"]) if (params.get(k)) filters[k] = params.get(k);
  for (const k of ["since", "until"]) if (params.get(k)) filters[k] = toIso(params.get(k));

  const format = el("select", { id: "export-format", "aria-label": "format" },
    el("option", { value: "jsonl" }, "JSONL (run records)"), el("option", { value: "otlp" }, "OTLP JSON (traces)"));
  const all = el("a", { id: "export-all", class: "button secondary", download: "" }, "Export these runs");
  const worst = el("input", { id: "sample-n", type: "number", min: 1, max: 100000, value: 50, style: { width: "6em" } });
  const by = el("select", { id: "sample-by", "aria-label": "rank by" },
    ["cost", "latency", "failures", "retries"].map((b) => el("option", { value: b }, b)));
  const sample = el("a", { id: "sample-worst", class: "button secondary", download: "" }, "Download the worst");
  function update() {
    const f = format.value;
    all.href = "/v1/export" + AS.qs(Object.assign({}, filters, { format: f }));
    all.setAttribute("download", "agentstream-export." + f + ".jsonl");
    const n = Math.max(1, Math.min(100000, Number(worst.value) || 50));
    sample.href = "/v1/export" + AS.qs(Object.assign({}, filters, { format: f, worst: n, by: by.value }));
    sample.setAttribute("download", "agentstream-worst-" + n + "-by-" + by.value + "." + f + ".jsonl");
  }
  [format, worst, by].forEach((x) => x.addEventListener("change", update));
  worst.addEventListener("input", update);
  update();
  AS.$("#runs-table").closest("section").after(el("section", { class: "panel", id: "export-panel", style: { marginTop: "16px" } },
    el("h2", {}, "Export"),
    el("div", { style: { display: "flex", gap: "10px", alignItems: "center", flexWrap: "wrap" } },
      format, all, el("span", { class: "note" }, "or the"), worst, el("span", { class: "note" }, "worst by"), by, sample),
    el("p", { class: "note" }, "Uses this page's filters. Anonymised exports need a pseudonym key: `agentstream runs export --anonymize`.")));
});
