// The worker dashboard: polls GET /api/status and runs view queries.
//
// It runs under Content-Security-Policy: default-src 'self' (no inline
// script or style, no event handler attributes, no eval), and catches every
// error of a fetch so that a stopped worker shows a banner, not an exception.
"use strict";

const POLL_MS = 2000;      // between two polls of /api/status
const TIMEOUT_MS = 10000;  // a request that takes longer counts as failed

const $ = (id) => document.getElementById(id);

// api fetches a same-origin path. Every request of the page goes through it,
// so that credentials (a cookie, or a header later) apply to all of them.
function api(path) {
  return fetch(path, {
    credentials: "same-origin",
    headers: { "Accept": "application/json" },
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
}

function message(err) {
  if (err && err.name === "TimeoutError") return "no answer in " + TIMEOUT_MS / 1000 + " s";
  return (err && err.message) || String(err);
}

// fill replaces the rows of a table. A row is an array of cells, or
// {cells, cls} for a row with a class; a cell is a string or {text, cls}.
function fill(table, rows) {
  const body = $(table).tBodies[0];
  body.replaceChildren(...rows.map((row) => {
    const tr = document.createElement("tr");
    const cells = Array.isArray(row) ? row : row.cells;
    if (!Array.isArray(row) && row.cls) tr.className = row.cls;
    for (const c of cells) {
      const td = document.createElement("td");
      if (c !== null && typeof c === "object") {
        td.textContent = c.text;
        if (c.cls) td.className = c.cls;
      } else {
        td.textContent = c;
      }
      tr.appendChild(td);
    }
    return tr;
  }));
}

// stateClass is the class of a group's row: none when it runs, amber while
// it starts, red otherwise (restarting, stopped, or a state this page does
// not know).
function stateClass(state) {
  switch (state) {
    case "running": return "";
    case "starting": return "warn";
    default: return "bad";
  }
}

// ago shows an RFC 3339 time to the second, and how long ago it was.
function ago(iso) {
  const t = Date.parse(iso);
  if (!iso || Number.isNaN(t)) return iso || "";
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  const d = s < 120 ? s + " s" : s < 7200 ? Math.round(s / 60) + " min" : Math.round(s / 3600) + " h";
  return iso.replace(/\.\d+(?=Z$|[+-]\d\d:\d\d$)/, "") + " (" + d + " ago)";
}

let viewsLoaded = false;

function render(s) {
  $("app").textContent = s.app || "";
  const ready = $("ready");
  ready.textContent = s.ready ? "ready" : "not ready" + (s.reason ? ": " + s.reason : "");
  ready.className = s.ready ? "ok" : "bad";

  const groups = Array.isArray(s.groups) ? s.groups : [];
  const stateOf = new Map(groups.map((g) => [g.name, g.state]));
  fill("groups", groups.map((g) => ({
    cls: stateClass(g.state),
    cells: [g.name, g.kind || "", g.state || "unknown", String(g.restarts || 0),
      { text: g.lastError || "", cls: "err" }, ago(g.since)],
  })));

  const timers = s.timers || {};
  fill("entities", Object.entries(s.entities || {}).sort().map(([n, c]) => {
    const t = timers[n] || { pending: 0, overdue: 0 };
    const cells = [n, (c || []).join(", ") || "(consumer)", String(t.pending), String(t.overdue)];
    return t.overdue > 0 ? { cls: "warn", cells } : cells;
  }));
  // Workflows: counts by status, and the instances that have not
  // completed (failed ones marked).
  const wfs = Array.isArray(s.workflows) ? s.workflows : [];
  fill("workflows", wfs.map((w) => [w.name, Object.entries(w.counts || {})
    .filter(([, n]) => n > 0).map(([st, n]) => st + " " + n).join(", ") || "none"]));
  fill("instances", wfs.flatMap((w) => (w.active || []).map((i) => {
    const cells = [w.name, i.id, i.status, i.step || ""];
    return i.status === "failed" ? { cls: "bad", cells } : i.status === "compensated" || i.status === "compensating" ? { cls: "warn", cells } : cells;
  })));
  fill("views", (s.views || []).map((v) => [v.name, (v.indexes || []).join(", "),
    String((v.lag || []).reduce((a, l) => a + l.Gap, 0)),
    ((v.lag || []).reduce((a, l) => Math.max(a, l.Age), 0) / 1e9).toFixed(1) + " s"]));
  // A group that is not running keeps its partitions listed, not recovered:
  // they are stale until it runs again.
  fill("partitions", (s.partitions || []).map((p) => {
    const state = stateOf.get(p.Group);
    const stale = !p.Recovered && state !== undefined && state !== "running" && state !== "starting";
    const cells = [p.Group, String(p.Partition), p.Recovered ? "yes" : stale ? "no (group " + state + ")" : "no",
      p.Restored + " / " + p.Total, String(p.Lag)];
    return stale ? { cls: "stale", cells } : cells;
  }));
  fill("dead", (s.deadLetters || []).slice().reverse().map((d) => [d.time, d.group, d.key, d.type || "", d.reason]));

  if (!viewsLoaded) {
    viewsLoaded = true;
    const sel = $("view");
    for (const v of s.views || []) { const o = document.createElement("option"); o.textContent = v.name; sel.appendChild(o); }
    prefillAndRun();
  }
}

let lastOK = null;     // when /api/status last answered
let downSince = null;  // when it first failed since then

// unreachable shows the red banner and greys the last data.
function unreachable(err) {
  let banner = $("unreachable");
  if (!banner) {
    downSince = new Date();
    banner = document.createElement("div");
    banner.id = "unreachable";
    banner.setAttribute("role", "alert");
    $("status").before(banner);
  }
  banner.textContent = "worker unreachable since " + downSince.toLocaleTimeString() + ": " + message(err) +
    (lastOK ? " (showing the data of " + lastOK.toLocaleTimeString() + ")" : "");
  document.body.classList.add("stale");
}

function reachable() {
  lastOK = new Date();
  const banner = $("unreachable");
  if (banner) banner.remove();
  document.body.classList.remove("stale");
}

async function poll() {
  let s;
  try {
    const res = await api("/api/status");
    if (!res.ok) throw new Error("HTTP " + res.status + (res.statusText ? " " + res.statusText : ""));
    s = await res.json();
    if (s === null || typeof s !== "object") throw new Error("/api/status is not a JSON object");
  } catch (err) {
    unreachable(err);
    return;
  }
  reachable();
  try {
    render(s);
  } catch (err) {
    console.error("dashboard: cannot show /api/status:", err);
  }
}

// loop polls, then polls again POLL_MS after the answer (or the failure), so
// that a slow worker never has two polls in flight.
function loop() {
  poll().catch((err) => console.error("dashboard:", err)).then(() => setTimeout(loop, POLL_MS));
}

let querySeq = 0;

async function runQuery() {
  const seq = ++querySeq;
  const status = $("query-status");
  const show = (text, bad, rows) => {
    if (seq !== querySeq) return; // a newer query was submitted
    status.textContent = text;
    status.className = bad ? "bad" : "";
    fill("rows", rows);
  };
  const f = new FormData($("query"));
  const params = new URLSearchParams();
  for (const [k, v] of f.entries()) if (k !== "view" && v !== "") params.set(k, v);
  const view = f.get("view");
  if (!view) { show("no view to query", true, []); return; }
  let res, body;
  try {
    res = await api("/views/" + encodeURIComponent(view) + "?" + params);
    const text = await res.text();
    try { body = JSON.parse(text); } catch { body = undefined; }
    if (!res.ok) {
      const why = body && body.error && body.error.message;
      show("error: " + (why || "HTTP " + res.status + " " + text.trim()), true, []);
      return;
    }
    if (!body || !Array.isArray(body.rows)) throw new Error("the answer has no rows");
  } catch (err) {
    show("error: " + message(err), true, []);
    return;
  }
  show(body.rows.length + " rows" + (body.next ? " (more)" : ""), false,
    body.rows.map((r) => [r.id, JSON.stringify(r.row)]));
}

// /?view=carts&index=checkedOut&eq=false fills the form and runs the query.
function prefillAndRun() {
  const p = new URLSearchParams(location.search);
  if (!p.has("view")) return;
  for (const [k, v] of p.entries()) { const el = $("query").elements[k]; if (el) el.value = v; }
  runQuery().catch((err) => console.error("dashboard:", err));
}

$("query").addEventListener("submit", (e) => {
  e.preventDefault();
  runQuery().catch((err) => console.error("dashboard:", err));
});
loop();
