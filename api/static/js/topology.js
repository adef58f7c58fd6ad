// Run page: the run's multi-agent topology (GET /v1/runs/{id}/topology) as a graph of runs,
// agents and handoffs: one column per delegation level, one box per run (agent, status, short
// id), an arrow per handoff; a run whose agent reappears in its own ancestry (a handoff loop)
// is drawn red. Built with createElementNS and textContent only: no agent-supplied markup.
AS.page(async function (main) {
  const el = AS.el;
  const runId = main.dataset.runId;
  const box = AS.$("#topology");
  if (!box) return;
  let t;
  try {
    t = await AS.api("/v1/runs/" + encodeURIComponent(runId) + "/topology");
  } catch (e) {
    AS.clear(box).append(el("p", { class: "note" }, "Topology unavailable: " + e.message));
    return;
  }
  AS.clear(box).classList.remove("empty");
  if (t.nodes.length <= 1) {
    box.append(el("p", { class: "note", id: "topology-single" }, "A single-agent run: no handoffs to or from other runs."));
    return;
  }
  const NS = "http://www.w3.org/2000/svg";
  const svg = (tag, attrs, text) => {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
    if (text !== undefined) n.textContent = text;
    return n;
  };
  const W = 160, H = 46, GX = 44, GY = 18, PAD = 12;
  const cols = new Map();
  for (const n of t.nodes) {
    if (!cols.has(n.depth)) cols.set(n.depth, []);
    cols.get(n.depth).push(n);
  }
  const pos = new Map();
  let maxRows = 0;
  for (const [d, list] of cols) {
    list.forEach((n, i) => pos.set(n.run_id, { x: PAD + d * (W + GX), y: PAD + i * (H + GY) }));
    maxRows = Math.max(maxRows, list.length);
  }
  const width = PAD * 2 + cols.size * (W + GX) - GX, height = PAD * 2 + maxRows * (H + GY) - GY;
  const g = svg("svg", { id: "topology-graph", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `topology of ${t.nodes.length} runs` });
  const defs = svg("defs");
  const marker = svg("marker", { id: "topo-arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
  marker.append(svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#868e96" }));
  defs.append(marker);
  g.append(defs);
  const looping = new Set(t.loops.map((l) => l.run_id));
  for (const e of t.edges) {
    const a = pos.get(e.from_run_id), b = pos.get(e.to_run_id);
    if (!a || !b) continue;
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
    const mid = (x1 + x2) / 2;
    const path = svg("path", { d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2 - 2},${y2}`, fill: "none",
      stroke: looping.has(e.to_run_id) ? "#c92a2a" : "#868e96", "stroke-width": 1.6,
      "stroke-dasharray": e.via === "handoff" ? "" : "4 3", "marker-end": "url(#topo-arrow)", class: "topo-edge" });
    path.append(svg("title", {}, `handoff ${e.from_run_id} → ${e.to_run_id}` + (e.seq !== null ? ` (step #${e.seq})` : " (parent link only)")));
    g.append(path);
  }
  const colour = { SUCCESS: "#2b8a3e", FAILURE: "#c92a2a", PARTIAL: "#e67700", RUNNING: "#1971c2", NOT_STORED: "#868e96" };
  for (const n of t.nodes) {
    const p = pos.get(n.run_id);
    const link = svg("a", { href: n.stored ? "/ui/runs/" + encodeURIComponent(n.run_id) : "#", class: "topo-node",
      "data-run-id": n.run_id });
    const me = n.run_id === t.run_id;
    link.append(svg("rect", { x: p.x, y: p.y, width: W, height: H, rx: 6,
      fill: looping.has(n.run_id) ? "#fff5f5" : me ? "#e7f5ff" : "#fff",
      stroke: looping.has(n.run_id) ? "#c92a2a" : me ? "#1971c2" : "#ced4da", "stroke-width": me ? 2 : 1,
      "stroke-dasharray": n.stored ? "" : "4 3" }));
    link.append(svg("circle", { cx: p.x + 12, cy: p.y + 15, r: 5, fill: colour[n.status] || "#868e96" }));
    link.append(svg("text", { x: p.x + 22, y: p.y + 19, "font-size": 13, "font-weight": 600 }, n.agent_id || "?"));
    link.append(svg("text", { x: p.x + 10, y: p.y + 37, "font-size": 11, fill: "#495057", "font-family": "monospace" },
      n.run_id.slice(0, 14) + (n.stored ? "" : " · not stored")));
    link.append(svg("title", {}, `${n.agent_id} · ${n.status} · depth ${n.depth} · ${n.step_count} steps · $${n.cost_usd.toFixed(4)}`));
    g.append(link);
  }
  const agents = t.agents.map((a) => `${a.agent_id || "?"}: ${a.runs} run${a.runs === 1 ? "" : "s"}, ${a.handoffs_out} handoff${a.handoffs_out === 1 ? "" : "s"} out`).join(" · ");
  box.append(
    el("p", { class: "note", id: "topology-summary" }, `${t.nodes.length} runs from root `,
      el("a", { href: "/ui/runs/" + encodeURIComponent(t.root_run_id), class: "mono" }, t.root_run_id.slice(0, 14)),
      " · " + agents + (t.truncated ? " · truncated (over 500 runs or 32 levels)" : "")),
    el("div", { class: "topology-scroll", style: { overflowX: "auto" } }, g));
  if (t.loops.length) {
    box.append(el("ul", { id: "topology-loops", class: "error-list" }, t.loops.map((l) =>
      el("li", {}, AS.badge("handoff loop", "CRITICAL"), " ", l.path, " (", el("span", { class: "mono" }, l.run_id.slice(0, 14)), ")"))));
  }
});
