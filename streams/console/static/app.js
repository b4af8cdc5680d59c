// driftline console: plain DOM, no framework, no build step. Every value from the API is inserted as text
// (createTextNode / textContent), never as markup, so a payload such as "<script>" is shown, not run.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const main = document.getElementById("main");
const PAGE = { "/": "overview", "/lineage": "lineage", "/drift": "drift", "/deadletters": "deadletters",
               "/actions": "actions" }[location.pathname] || "overview";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children.flat()) node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function fmt(v, digits) {
  if (v === null || v === undefined || v === "") return "-";
  if (typeof v === "number") return Number.isInteger(v) ? v.toLocaleString("en") : v.toFixed(digits ?? 4);
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function when(ms) {
  if (!ms) return "-";
  const d = new Date(Number(ms));
  return d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

function ago(ms) {
  if (!ms) return "-";
  const s = Math.max(0, (Date.now() - Number(ms)) / 1000);
  return s < 90 ? `${s.toFixed(0)} s ago` : s < 5400 ? `${(s / 60).toFixed(0)} min ago` : `${(s / 3600).toFixed(1)} h ago`;
}

function table(id, head, rows) {
  return el("table", { id },
    el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
}

function card(label, value, id, cls) {
  return el("div", { class: "card" }, el("div", { class: "label" }, label),
    el("div", { class: "value " + (cls || ""), id }, value));
}

async function api(path, options) {
  const res = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw Object.assign(new Error(body.error || res.statusText), { status: res.status, body });
  return body;
}

function replace(node) {
  main.replaceChildren(node);
}

// Redraw only when the data changed: a redraw resets scrolling and selection, and the stream ticks every 2 s.
let shown = "";
function isNew(data) {
  const text = JSON.stringify(data);
  if (text === shown) return false;
  shown = text;
  return true;
}

// -- live updates ------------------------------------------------------------------------------------------------
const live = document.getElementById("live");
let lastTail = -1;
const listeners = [];

function startLive() {
  const source = new EventSource("/api/events");
  source.addEventListener("update", (ev) => {
    const data = JSON.parse(ev.data);
    live.textContent = "live " + new Date().toISOString().slice(11, 19);
    live.className = "live on";
    const changed = data.tail !== lastTail;
    lastTail = data.tail;
    for (const fn of listeners) fn(data, changed);
  });
  source.onerror = () => { live.textContent = "reconnecting"; live.className = "live off"; };
}

// -- overview ----------------------------------------------------------------------------------------------------
function renderOverview(o) {
  if (!o || !o.status) return;
  const st = o.status.stack;
  const rates = o.rates || {};
  // Records per second where the console counts records (training, dead letters: with their total); end offsets
  // per second elsewhere, named so (a transaction's commit marker takes an offset too).
  const rate = (n) => {
    const r = rates[n];
    if (!r || r.per_s === null) return "-";
    return r.counts === "records" ? `${fmt(r.total)} (${r.per_s.toFixed(1)}/s)` : `${r.per_s.toFixed(1)} offsets/s`;
  };
  const t = o.trainer;
  // A join store key holding junk of the wrong type: named as `driftline status` names it, not shown as unknown.
  const joinCard = (label, value, id, suffix) => {
    const bad = (o.joins_damaged || []).find((d) => d.key.endsWith(":" + suffix));
    return bad
      ? card(label, `DAMAGED: ${bad.key} holds a ${bad.type}, expected a ${bad.expected} (the scorers replace it at `
        + `their next batch; or redis-cli DEL ${bad.key})`, id, "bad")
      : card(label, fmt(value), id);
  };
  const root = el("div", {},
    el("h1", {}, `Overview: prefix ${o.status.topic_prefix}, model ${o.model}`),
    el("div", { class: "cards" },
      // stack_state: in the words of `driftline status` (REFUSED: ... for credentials a Redis refuses)
      card("Kafka " + st.kafka.address, o.stack_state.kafka, "kafka-state", st.kafka.up ? "ok" : "bad"),
      card("Redis " + st.redis.address, o.stack_state.redis, "redis-state", st.redis.up ? "ok" : "bad"),
      card("served version", (o.served_version === null || o.served_version === undefined ? "none" : "v" + o.served_version)
        + ((o.refused || []).length ? ` (v${o.refused[0].version} REFUSED by ${o.refused[0].scorers} scorer(s): ${o.refused[0].reason})` : ""),
        "served-version", (o.refused || []).length ? "bad" : ""),
      card("learning", t ? (t.paused ? "PAUSED" : "on") : "-", "learning-state", t && t.paused ? "warn" : ""),
      card("n_learned", t ? fmt(t.n_learned) : "-", "n-learned"),
      card("trainer's last batch", t ? ago(t.updated_at) : "no trainer", "trainer-heartbeat"),
      card("drift alarms (last hour)", fmt(o.status.drift_last_hour ? o.status.drift_last_hour.total : null), "drift-last-hour"),
      card("features in", rate("features"), "rate-features"),
      card("predictions out", rate("predictions"), "rate-predictions"),
      card("training examples", rate("training"), "rate-training"),
      card("dead letters", rate("deadletter"), "rate-deadletter", rates.deadletter && rates.deadletter.per_s > 0 ? "bad" : ""),
      joinCard("pending joins", o.pending_joins, "pending-joins", "pending"),
      joinCard("labels parked", o.parked_labels, "parked-labels", "parked"),
      card("held candidate", t ? (o.held_candidate ? "yes: see Actions" : "none") : "-", "held", o.held_candidate ? "warn" : ""),
      // As `driftline status` says it: releases the scorers could not load (or no record could carry) stay unmade.
      card("withheld releases", o.withheld || (t ? "none" : "-"), "withheld", o.withheld ? "bad" : "")),
    el("h2", {}, "Workers (consumer groups)"),
    table("workers", ["role", "group", "state", "members (heartbeating)", "lag per topic", "total lag"],
      (o.workers || []).map((w) => el("tr", { "data-role": w.role },
        el("td", {}, w.role), el("td", {}, w.group), el("td", { class: w.state === "stable" ? "ok" : "warn" }, w.state),
        el("td", {}, w.members.length ? w.members.join(", ") : "none"),
        el("td", {}, Object.entries(w.lag).map(([k, v]) => `${k.slice(o.status.topic_prefix.length)} ${v}`).join(", ") || "-"),
        el("td", { class: "num" }, fmt(w.total_lag))))),
    el("h2", {}, "Served version on the newest prediction of each partition"),
    table("scorers", ["predictions partition", "version", "scored"],
      (o.scorers || []).map((s) => el("tr", {}, el("td", {}, s.partition), el("td", { class: "scorer-version" }, "v" + s.version),
        el("td", {}, ago(s.scored_at))))),
    el("p", { class: "muted" }, `updated ${when(o.generated_at)}`));
  replace(root);
}

async function overviewPage() {
  replace(el("p", {}, "loading..."));
  renderOverview(await api("/api/overview"));
  listeners.push((data) => renderOverview(data.overview));
}

// -- lineage -----------------------------------------------------------------------------------------------------
const REASON_COLOR = { initial: "#d0e2ff", incremental: "#e4f1dc", challenger: "#ffe4b3", manual: "#e6d5f5",
                       rollback: "#f8d0d0" };

function evidenceText(d) {
  if (!d || !d.outcome) return "-";
  const ev = Object.entries(d.evidence || {}).map(([k, v]) => `${k}=${fmt(v)}`).join(", ");
  const checks = Object.entries(d.checks || {}).map(([k, v]) => `${k}:${v === true ? "passed" : v === false ? "FAILED" : v}`).join(", ");
  return [`${d.outcome} (${d.reason || ""}, ${d.candidate || ""})`, ev, checks].filter(Boolean).join(" | ");
}

function lineageGraph(nodes) {
  // Lanes: a child continues its parent's lane if the parent is still that lane's tip, else opens a new one.
  const lanes = [], pos = {};
  const W = 120, H = 60, X0 = 20, Y0 = 20;
  nodes.forEach((n, i) => {
    let lane = lanes.findIndex((tip) => tip === n.parent);
    if (lane < 0) { lane = lanes.length; lanes.push(n.version); } else lanes[lane] = n.version;
    pos[n.version] = { x: X0 + i * W, y: Y0 + lane * H };
  });
  const width = X0 * 2 + Math.max(1, nodes.length) * W, height = Y0 * 2 + Math.max(1, lanes.length) * H;
  const g = svg("svg", { id: "lineage-graph", width, height, viewBox: `0 0 ${width} ${height}` },
    svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto" },
      svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#888" }))));
  for (const n of nodes) {
    const p = pos[n.parent];
    if (p) g.appendChild(svg("path", { class: "edge", d: `M ${p.x + 90} ${p.y + 18} C ${p.x + 105} ${p.y + 18}, ${pos[n.version].x - 15} ${pos[n.version].y + 18}, ${pos[n.version].x} ${pos[n.version].y + 18}` }));
  }
  for (const n of nodes) {
    const { x, y } = pos[n.version];
    g.appendChild(svg("g", { class: "node" + (n.current ? " current" : ""), "data-version": n.version, transform: `translate(${x},${y})` },
      svg("title", {}, `v${n.version} ${n.reason}: ${evidenceText(n.decision)}`),
      svg("rect", { width: 90, height: 36, fill: REASON_COLOR[n.reason] || "#eee" }),
      svg("text", { x: 8, y: 15 }, `v${n.version}${n.current ? " *" : ""}${(n.refused_by_scorers || []).length ? " REFUSED" : ""}`),
      svg("text", { x: 8, y: 30, fill: "#555" }, n.reason)));
  }
  return g;
}

// What the scorers report of a release (streams/serving.py): serving it, or refused it (a signed release they
// could not load: the previous version still answers events, so it must not read as served).
function refusedBanner(data) {
  const current = data.releases.find((n) => n.current);
  if (!current || !(current.refused_by_scorers || []).length || current.served_by_scorers) return null;
  const served = data.scorers && data.scorers.served_version !== null ? `v${data.scorers.served_version}` : "no version";
  const r = current.refused_by_scorers[0];
  return el("p", { class: "bad", id: "refused-banner" },
    `v${current.version} is the newest release but the scorers REFUSED it (${r.reason}: ${r.message}); they serve ${served}.`);
}

function servedText(n) {
  const refused = n.refused_by_scorers || [];
  if (refused.length) {
    const count = Math.max(...refused.map((r) => r.scorers));
    const why = [...new Set(refused.map((r) => r.reason))].join(", ");
    return ` (${n.current ? "current release, " : ""}NOT SERVED: refused by ${count} scorer(s): ${why})`;
  }
  if (n.served_by_scorers) return ` (serving: ${n.served_by_scorers} scorer(s))`;
  return n.current ? " (current release)" : "";
}

async function lineagePage() {
  const render = async () => {
    const data = await api("/api/lineage");
    if (!isNew(data)) return;
    const nodes = data.releases;
    replace(el("div", {},
      el("h1", {}, `Model lineage: ${data.model} (${nodes.length} releases)`),
      el("div", { class: "legend" }, Object.entries(REASON_COLOR).map(([k, c]) => el("span", {}, el("b", { style: `background:${c}` }, "\u00a0\u00a0\u00a0"), " " + k)),
        el("span", {}, "* current release (newest verified)")),
      refusedBanner(data),
      el("div", { class: "graph" }, lineageGraph(nodes)),
      el("h2", {}, "Releases"),
      table("lineage-table", ["version", "parent", "reason", "created", "guard decision and evidence", "what changed", "metrics", "size", "signature", "promoted by"],
        nodes.slice().reverse().map((n) => el("tr", { "data-version": n.version, class: n.current ? "current" : null },
          el("td", { class: (n.refused_by_scorers || []).length ? "bad" : null }, `v${n.version}${servedText(n)}`), el("td", {}, n.parent === null ? "-" : "v" + n.parent),
          el("td", {}, n.reason), el("td", {}, when(n.created_at)),
          el("td", { class: "detail" }, evidenceText(n.decision), n.decision && n.decision.text ? el("div", { class: "muted" }, n.decision.text) : null),
          el("td", { class: "detail what-changed" }, n.what_changed ? n.what_changed.changes : "-",
            n.what_changed ? el("div", { class: "muted" }, `learned from ${n.what_changed.learned_from}`) : null),
          el("td", { class: "detail" }, Object.entries(n.metrics).filter(([k]) => !k.startsWith("guard.")).map(([k, v]) => `${k}=${fmt(v)}`).join(", ")),
          el("td", { class: "num" }, n.size_bytes !== null ? `${fmt(n.size_bytes)} B` : `ref ${n.artifact_ref}`),
          el("td", { class: n.signature.startsWith("valid") ? "ok" : n.signature.startsWith("INVALID") ? "bad" : "muted" }, n.signature),
          el("td", {}, n.promoted_by)))),
      data.unverified.length ? el("h2", { class: "bad" }, "Records on the models topic that failed verification (ignored by scorers and the trainer)") : null,
      data.unverified.length ? table("unverified", ["version claimed", "reason", "created", "check", "error"],
        data.unverified.map((u) => el("tr", {}, el("td", {}, u.version), el("td", {}, u.reason), el("td", {}, when(u.created_at)),
          el("td", { class: "bad" }, u.rejected), el("td", { class: "detail" }, u.error)))) : null,
      el("h2", {}, "Candidates the guard rejected or held (from the audit log)"),
      // Consecutive identical decisions (a held challenger is evaluated again at every check) are one row.
      table("candidates", ["when", "evaluations", "outcome", "reason", "candidate", "evidence and checks (the last)", "text (the last)"],
        data.candidate_runs.slice().reverse().map((c) => el("tr", { class: c.outcome === "hold" ? "warn" : "", "data-count": c.count },
          el("td", {}, c.count > 1 ? `${when(c.first_ts)} to ${when(c.last_ts)}` : when(c.ts)),
          el("td", { class: "num" }, c.count > 1 ? `${fmt(c.count)} (examples ${fmt(c.first_index)} to ${fmt(c.last_index)})` : "1"),
          el("td", {}, c.outcome), el("td", {}, c.reason), el("td", {}, c.candidate),
          el("td", { class: "detail" }, evidenceText(c)), el("td", { class: "detail" }, c.text))))));
  };
  await render();
  listeners.push((data, changed) => { if (changed) render(); });
}

// -- drift and quality -------------------------------------------------------------------------------------------
function qualityChart(q) {
  const W = 1000, H = 300, L = 50, R = 10, T = 10, B = 30;
  const pts = q.series;
  const n = Math.max(q.n, 1);
  const vals = pts.map((p) => p.value);
  const lo = q.metric === "accuracy" ? 0 : 0, hi = q.metric === "accuracy" ? 1 : Math.max(1e-9, ...vals) * 1.1;
  // The axis is the model's own example index (q.first: the first example read), where the trainer files its
  // alarms and decisions; marks from before the examples read are left off the chart (they are counted above).
  const first = q.first || 0, inside = (i) => i >= first && i <= first + n;
  const x = (i) => L + ((i - first) / n) * (W - L - R), y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  const chart = svg("svg", { id: "quality-chart", width: W, height: H, viewBox: `0 0 ${W} ${H}` },
    svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999" }),
    svg("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#999" }),
    svg("text", { x: 4, y: T + 10, "font-size": 11 }, fmt(hi, 2)), svg("text", { x: 4, y: H - B, "font-size": 11 }, fmt(lo, 2)),
    svg("text", { x: W / 2, y: H - 6, "font-size": 11 }, `labelled examples (rolling ${q.metric} over ${q.window})`));
  for (const a of q.alarms.filter((m) => inside(m.i))) chart.appendChild(svg("line", { class: "alarm", x1: x(a.i), x2: x(a.i), y1: T, y2: H - B, stroke: "#c62828", "stroke-dasharray": "3,3" },
    svg("title", {}, `drift ${a.detector}/${a.signal} ${when(a.ts)}`)));
  for (const r of q.releases.filter((m) => inside(m.i))) {
    const color = r.reason === "rollback" ? "#7b1fa2" : r.reason === "manual" ? "#b26a00" : "#1a7f37";
    chart.appendChild(svg("line", { class: "release-mark", "data-reason": r.reason, x1: x(r.i), x2: x(r.i), y1: T, y2: H - B, stroke: color, "stroke-width": r.reason === "incremental" ? 0.6 : 2 },
      svg("title", {}, `v${r.version} ${r.reason}`)));
  }
  if (pts.length) chart.appendChild(svg("polyline", { fill: "none", stroke: "#2557a7", "stroke-width": 1.5,
    points: pts.map((p) => `${x(p.i).toFixed(1)},${y(p.value).toFixed(1)}`).join(" ") }));
  return chart;
}

async function driftPage() {
  const render = async () => {
    const q = await api("/api/quality");
    if (!isNew(q)) return;
    const last = q.series.length ? q.series[q.series.length - 1].value : null;
    const segs = Object.entries(q.segments);
    replace(el("div", {},
      el("h1", {}, `Drift and quality: ${q.model}`),
      el("div", { class: "cards" },
        card(`rolling ${q.metric} (last ${q.window})`, fmt(last), "rolling-metric"),
        card("labelled examples read", fmt(q.n), "quality-n"),
        card("drift alarms", fmt(q.alarms.length), "alarm-count", q.alarms.length ? "warn" : ""),
        card("releases (not rollbacks)", fmt(q.releases.filter((r) => r.reason !== "rollback").length), "promotion-count"),
        card("rollbacks", fmt(q.releases.filter((r) => r.reason === "rollback").length), "rollback-count")),
      el("div", { class: "legend" }, el("span", { style: "color:#2557a7" }, "\u2014 served model"), el("span", { style: "color:#c62828" }, "- - drift alarm"),
        el("span", { style: "color:#1a7f37" }, "| release"), el("span", { style: "color:#b26a00" }, "| manual"), el("span", { style: "color:#7b1fa2" }, "| rollback")),
      qualityChart(q),
      el("h2", {}, "Per-feature drift"),
      table("feature-drift", ["feature", "alarms", "last", "detector", "details"],
        q.features.map((f) => el("tr", {}, el("td", {}, f.feature), el("td", { class: "num" }, f.alarms), el("td", {}, when(f.last_ts)),
          el("td", {}, f.detector), el("td", { class: "detail" }, fmt(f.details))))),
      el("h2", {}, `Segments${q.segment_feature ? " by " + q.segment_feature : " (set model.segment_feature to see them)"}`),
      table("segments", ["segment", "metrics"], segs.map(([s, m]) => el("tr", {}, el("td", {}, s),
        el("td", {}, Object.entries(m).map(([k, v]) => `${k}=${fmt(v)}`).join(", "))))),
      el("h2", {}, "Trainer's live metrics"),
      table("live-metrics", ["metric", "value"], Object.entries(q.live_metrics).sort().map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", { class: "num" }, fmt(v)))))));
  };
  await render();
  listeners.push((data, changed) => { if (changed) render(); });
}

// -- dead letters ------------------------------------------------------------------------------------------------
async function deadlettersPage() {
  const params = new URLSearchParams(location.search);
  const render = async () => {
    const d = await api("/api/deadletters?" + params.toString());
    if (!isNew(d)) return;
    const select = (name, counts) => el("select", { id: "filter-" + name, onchange: (ev) => {
        if (ev.target.value) params.set(name, ev.target.value); else params.delete(name);
        history.replaceState(null, "", "?" + params.toString()); render(); } },
      el("option", { value: "" }, `all (${d.total})`),
      Object.entries(counts).map(([k, v]) => { const o = el("option", { value: k }, `${k} (${v})`); if (params.get(name) === k) o.selected = true; return o; }));
    replace(el("div", {},
      el("h1", {}, `Dead letters (${d.total} most recent read)`),
      d.error ? el("p", { class: "error", id: "tail-error" }, d.error) : null,
      el("div", { class: "filters" }, "reason", select("reason", d.by_reason), "source topic", select("source", d.by_source)),
      table("deadletters", ["dead-letter offset", "source (topic / partition / offset)", "reason", "error", "key", "payload (as text)", "when"],
        d.items.map((i) => el("tr", { class: "deadletter" },
          el("td", { class: "num" }, `${i.dlq_partition}/${i.dlq_offset}`),
          el("td", { class: "source" }, `${i.source_topic} / ${fmt(i.source_partition)} / ${fmt(i.source_offset)}`),
          el("td", {}, i.reason), el("td", { class: "detail" }, i.error), el("td", {}, i.key),
          el("td", {}, el("pre", { class: "payload" }, i.value_preview), el("span", { class: "muted" }, `${i.value_bytes} bytes`)),
          el("td", {}, when(i.ts))))),
      el("p", { class: "muted" }, "To replay after a fix, publish the source records again from the offsets shown (e.g. with kcat -o OFFSET).")));
  };
  await render();
  listeners.push((data, changed) => { if (changed) render(); });
}

// -- actions -----------------------------------------------------------------------------------------------------
function token() { return sessionStorage.getItem("driftline-token") || ""; }

async function send(body, out) {
  out.className = "muted"; out.textContent = "sending...";
  try {
    const res = await api("/api/actions", { method: "POST", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", Authorization: "Bearer " + token() } });
    const id = res.sent.id;
    out.className = ""; out.textContent = `sent ${res.sent.command} (id ${id}); waiting for the trainer...`;
    for (let k = 0; k < 30; k++) {
      await new Promise((r) => setTimeout(r, 1000));
      let o;
      try {
        o = await api("/api/actions/" + encodeURIComponent(id));
      } catch (err) {  // sent, but the answer cannot be read (Redis down: 503 naming its address)
        out.className = "error";
        out.textContent = `sent ${res.sent.command} (id ${id}); cannot read the trainer's answer (${err.status || "?"}): ${err.message}`;
        return;
      }
      if (o.answered) {
        out.className = o.outcome === "ok" ? "ok" : "bad";
        out.textContent = `${res.sent.command} (id ${id}): ${o.outcome}`;
        return;
      }
    }
    out.textContent = `sent ${res.sent.command} (id ${id}); no answer from the trainer yet`;
  } catch (err) {
    out.className = "error";
    out.textContent = `refused (${err.status || "?"}): ${err.message}`;
  }
}

async function actionsPage() {
  const out = el("div", { id: "action-result" });
  const tokenInput = el("input", { id: "token", type: "password", autocomplete: "off", value: token(), size: 40 });
  const target = el("input", { id: "promote-target", value: "held", size: 8 });
  const key = el("input", { id: "set-key", placeholder: "guard.alpha", size: 18 });
  const value = el("input", { id: "set-value", placeholder: "0.01", size: 8 });
  // Roll back and promote change the model that answers every event: asked once more, as a typed command is not
  // a stray click (adv46: one click sent them at once).
  const asks = { rollback: (b) => "Roll back: the model before the served one answers every event from now on. Send?",
    promote: (b) => `Promote ${b.target || "held"}: it answers every event from now on. Send?` };
  const button = (id, text, body) => el("button", { id, class: "primary", onclick: () => {
    const b = typeof body === "function" ? body() : body;
    if (asks[b.action] && !window.confirm(asks[b.action](b))) { out.className = "muted"; out.textContent = `${b.action} not sent`; return; }
    send(b, out);
  } }, text);
  const auditBody = el("tbody", {});
  const verdict = el("p", { id: "audit-verified" }, "");
  const renderAudit = async () => {
    const a = await api("/api/audit");
    const v = a.verified || {};
    const problems = (v.checks || []).flatMap((c) => (c.problems || []).map((p) => `${c.source}: ${p.text}`));
    verdict.className = v.ok === true ? "ok" : "bad";
    verdict.textContent = v.ok === true ? "audit chain verified (file and topic, as 'driftline audit verify')"
      : v.ok === false ? `audit chain FAILS verification: ${problems.join("; ") || v.error || ""}`
      : `audit chain not verified: ${v.error || "unknown"}`;
    auditBody.replaceChildren(...a.entries.slice(0, 100).map((e) => el("tr", { "data-id": e.id || "", "data-kind": e.kind },
      el("td", {}, when(e.ts)), el("td", {}, e.kind), el("td", {}, e.command || e.outcome || e.reason || ""),
      el("td", { class: "detail", title: fmt(e.args || e.evidence || e.metrics || "") }, fmt(e.args || e.evidence || e.metrics || "").slice(0, 240)),
      el("td", {}, e.id || ""),
      el("td", {}, e.outcome || e.remote || ""))));
  };
  replace(el("div", {},
    el("h1", {}, "Actions"),
    el("p", {}, "Actions go to the control topic exactly as 'driftline models ...' sends them and are recorded in the audit log. ",
      "They need the console token (printed when the console starts, or DRIFTLINE_CONSOLE_TOKEN)."),
    el("p", {}, el("label", {}, "Token ", tokenInput), " ",
      el("button", { id: "save-token", onclick: () => { sessionStorage.setItem("driftline-token", tokenInput.value); out.textContent = "token kept for this tab"; } }, "Use token")),
    el("div", { class: "actions-grid" },
      el("div", { class: "card" }, el("div", { class: "label" }, "learning"), button("act-pause", "Pause learning", { action: "pause" }), " ",
        button("act-resume", "Resume learning", { action: "resume" })),
      el("div", { class: "card" }, el("div", { class: "label" }, "serving"), button("act-rollback", "Roll back", { action: "rollback" })),
      el("div", { class: "card" }, el("div", { class: "label" }, "promote (held, challenger or a version)"), target, " ",
        button("act-promote", "Promote", () => ({ action: "promote", target: target.value }))),
      el("div", { class: "card" }, el("div", { class: "label" }, "set a live setting"), key, " = ", value, " ",
        button("act-set", "Set", () => ({ action: "set", key: key.value, value: value.value })))),
    el("h2", {}, "Result"), out,
    el("h2", {}, "Audit log (newest first)"), verdict,
    el("table", { id: "audit" }, el("thead", {}, el("tr", {}, ["when", "kind", "what", "details", "id", "outcome / from"].map((h) => el("th", {}, h)))), auditBody)));
  await renderAudit();
  listeners.push(() => renderAudit());
}

// -- start -------------------------------------------------------------------------------------------------------
for (const a of document.querySelectorAll("nav a")) if (a.dataset.page === PAGE) a.classList.add("active");
const pages = { overview: overviewPage, lineage: lineagePage, drift: driftPage, deadletters: deadlettersPage, actions: actionsPage };
pages[PAGE]().catch((err) => replace(el("p", { class: "error", id: "page-error" }, `cannot load: ${err.message}`)));
startLive();
document.body.dataset.page = PAGE;
