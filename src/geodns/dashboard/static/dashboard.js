// The live health dashboard: polls /api/dashboard and redraws in place (no reload).
// The map is equirectangular in the page's own SVG: x = lon + 180, y = 90 - lat.
"use strict";

const POLL_MS = 1000;
const TOKEN_KEY = "geocdn-admin-token";
const SVG = "http://www.w3.org/2000/svg";
const PALETTE = ["#4e9af1", "#f1a34e", "#7bd389", "#e86a92", "#b48ef0", "#e3d16a",
                 "#5fd0d0", "#f08a5d", "#9aa5b1"];

const $ = (id) => document.getElementById(id);
const memberOrder = new Map();  // member name -> its place in the pools
let lastDoc = null;

function el(tag, attrs = {}, text) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

const pct = (x) => (x === null || x === undefined ? "–" : `${Math.round(x * 100)}%`);
const num = (x, digits = 1) => (x === null || x === undefined ? "–" : x.toFixed(digits));

function ago(t) {
  if (!t) return "–";
  const s = Math.max(0, Date.now() / 1000 - t);
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${(s / 3600).toFixed(1)} h ago`;
}

function clock(t) {
  return new Date(t * 1000).toLocaleTimeString([], { hour12: false });
}

// -- the map -------------------------------------------------------------------------

async function drawLand() {
  const resp = await fetch("/dashboard/static/land.json");
  const land = await resp.json();
  $("land").setAttribute("d", land.path);
  const grid = $("graticule");
  for (let lon = -150; lon <= 150; lon += 30) {
    grid.appendChild(el("svg:line", { x1: lon + 180, x2: lon + 180, y1: 0, y2: 180 }));
  }
  for (let lat = -60; lat <= 60; lat += 30) {
    grid.appendChild(el("svg:line", { x1: 0, x2: 360, y1: 90 - lat, y2: 90 - lat }));
  }
}

// Labels go east of a marker, or west when the marker is near the map's east edge or
// has a neighbour close to its east (London and Frankfurt would otherwise collide).
function labelsWest(members) {
  const west = new Set();
  for (const a of members) {
    const crowded = members.some((b) => b !== a && b.lon > a.lon && b.lon - a.lon < 25 &&
                                        Math.abs(b.lat - a.lat) < 8);
    if (crowded || a.lon > 120) west.add(a.member);
  }
  return west;
}

function drawMarkers(members) {
  const layer = $("markers");
  const placed = members.filter((m) => m.lat !== null && m.lon !== null);
  const west = labelsWest(placed);
  const seen = new Set();
  for (const m of placed) {
    const id = `edge-${m.pool}-${m.member}`;
    seen.add(id);
    let g = document.getElementById(id);
    if (!g) {
      g = el("svg:g", { id, class: "edge", "data-member": m.member, "data-pool": m.pool });
      const x = m.lon + 180, y = 90 - m.lat;
      const side = west.has(m.member) ? { dx: -4.2, anchor: "end" } : { dx: 4.2, anchor: "start" };
      g.appendChild(el("svg:circle", { class: "ring", cx: x, cy: y, r: 3 }));
      g.appendChild(el("svg:circle", { class: "core", cx: x, cy: y, r: 1.6 }));
      g.appendChild(el("svg:text", { class: "name", x: x + side.dx, y: y - 0.4,
                                     "text-anchor": side.anchor }));
      g.appendChild(el("svg:text", { class: "sub", x: x + side.dx, y: y + 4.6,
                                     "text-anchor": side.anchor }));
      g.appendChild(el("svg:title"));
      layer.appendChild(g);
    }
    g.setAttribute("data-status", m.status);
    const rps = m.rps || 0;
    g.querySelector("circle.ring").setAttribute("r", (2.4 + Math.min(6, Math.sqrt(rps) / 2)).toFixed(2));
    g.querySelector("text.name").textContent = `${m.member} · ${m.status}`;
    g.querySelector("text.sub").textContent =
      `load ${pct(m.load)} · hit ${pct(m.hit_rate)} · ${num(m.rps)} req/s`;
    g.querySelector("title").textContent =
      `${m.member} (${m.address || "?"})\n${m.status}: ${m.reason || ""}\n` +
      `load ${pct(m.load)}, hit rate ${pct(m.hit_rate)}, ${num(m.rps)} req/s, ` +
      `${num(m.answers_per_s)} DNS answers/s`;
  }
  for (const g of [...layer.children]) if (!seen.has(g.id)) g.remove();
}

// -- the pools table -----------------------------------------------------------------

function actionButton(m) {
  const draining = m.override && m.override.state === "draining";
  const forced = m.override && !draining;
  const b = el("button", { type: "button", "data-action": draining || forced ? "undrain" : "drain" },
               draining ? "Undrain" : forced ? "Clear override" : "Drain");
  b.addEventListener("click", () => setDrain(m, b.dataset.action === "drain"));
  return b;
}

function drawPools(members) {
  const host = $("pools");
  const pools = {};
  for (const m of members) (pools[`${m.zone} / ${m.pool}`] ||= []).push(m);
  host.replaceChildren();
  for (const [title, list] of Object.entries(pools)) {
    const up = list.filter((m) => m.status === "up").length;
    const h = el("div", { class: "pool-title" }, title + " ");
    h.appendChild(el("small", {}, `${up}/${list.length} up`));
    host.appendChild(h);
    const table = el("table");
    const head = el("tr");
    for (const [label, cls] of [["member", ""], ["state", ""], ["since", ""], ["reason", ""],
                                 ["load", "num"], ["hit", "num"], ["req/s", "num"],
                                 ["answers/s", "num"], ["", ""]]) {
      head.appendChild(el("th", cls ? { class: cls } : {}, label));
    }
    table.appendChild(head);
    for (const m of list) {
      const tr = el("tr", { "data-member": m.member, "data-status": m.status });
      tr.appendChild(el("td", {}, m.member));
      const state = el("td");
      state.appendChild(el("span", { class: `pill ${m.status}` }, m.status));
      tr.appendChild(state);
      const since = el("td", { title: m.since ? new Date(m.since * 1000).toISOString() : "" },
                       ago(m.since));
      tr.appendChild(since);
      tr.appendChild(el("td", { class: "reason" }, m.reason || ""));
      tr.appendChild(el("td", { class: "num" }, pct(m.load)));
      tr.appendChild(el("td", { class: "num" }, pct(m.hit_rate)));
      tr.appendChild(el("td", { class: "num" }, num(m.rps)));
      tr.appendChild(el("td", { class: "num" }, num(m.answers_per_s)));
      const act = el("td");
      act.appendChild(actionButton(m));
      tr.appendChild(act);
      table.appendChild(tr);
    }
    host.appendChild(table);
  }
}

// -- queries per region, recent changes ------------------------------------------------

// A member's colour comes from its place in the pools (the zone file's order), so it is
// the same on every load whatever answers arrive first; a name the pools no longer hold
// gets one from its letters.
function colorMembers(members) {
  memberOrder.clear();
  for (const m of members) if (!memberOrder.has(m.member)) memberOrder.set(m.member, memberOrder.size);
}

function colorOf(member) {
  let index = memberOrder.get(member);
  if (index === undefined) {
    index = 0;
    for (const ch of member) index = (index * 31 + ch.codePointAt(0)) % 9973;
  }
  return PALETTE[index % PALETTE.length];
}

// One bar per client region: its length is the region's share of all steered answers
// so far, split by the members that got them; the figure on the right is the rate now.
function drawRegions(queries) {
  const host = $("regions");
  host.replaceChildren();
  const regions = queries.regions || [];
  if (!regions.length) {
    host.appendChild(el("p", { class: "note" }, "no steered answers yet"));
    return;
  }
  const top = Math.max(...regions.map((r) => r.total), 1);
  for (const r of regions) {
    const parts = Object.entries(r.member_totals).filter(([, v]) => v > 0);
    const row = el("div", {
      class: "bar", "data-region": r.region,
      title: parts.map(([m, v]) => `${m}: ${Math.round(v)} answers`).join("\n"),
    });
    row.appendChild(el("span", { class: "label" }, r.region));
    const track = el("div", { class: "track" });
    for (const [member, v] of parts) {
      track.appendChild(el("div", {
        class: "seg", "data-member": member,
        style: `width:${(100 * v / top).toFixed(1)}%;background:${colorOf(member)}`,
      }));
    }
    row.appendChild(track);
    row.appendChild(el("span", { class: "num" }, `${Math.round(r.total)} · ${r.per_s.toFixed(1)}/s`));
    host.appendChild(row);
  }
  const legend = el("div", { class: "legend" });
  const shown = new Set(regions.flatMap((r) => Object.keys(r.member_totals)));
  for (const member of [...shown].sort()) {
    // dot and name in one box, so that wrapping never parts them
    const item = el("span", { class: "item", "data-member": member });
    const dot = el("span", { class: "dot" });
    dot.style.background = colorOf(member);
    item.appendChild(dot);
    item.appendChild(document.createTextNode(member));
    legend.appendChild(item);
  }
  host.appendChild(legend);
}

function drawChanges(changes) {
  const host = $("changes");
  host.replaceChildren();
  if (!changes.length) host.appendChild(el("li", { class: "note" }, "none since the page's server started"));
  for (const c of changes.slice(0, 30)) {
    const li = el("li", { "data-member": c.member, "data-to": c.to });
    li.appendChild(el("time", {}, clock(c.time) + " "));
    li.appendChild(document.createTextNode(`${c.pool}/${c.member}: ${c.from} → `));
    li.appendChild(el("span", { class: `pill ${c.to}` }, c.to));
    li.appendChild(el("span", { class: "reason" }, ` ${c.reason || ""}`));
    host.appendChild(li);
  }
}

// -- drain / undrain -----------------------------------------------------------------

async function setDrain(m, drain) {
  const msg = $("admin-msg");
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    msg.textContent = "Enter the admin token (printed by `cdn up`) at the top first.";
    return;
  }
  const url = lastDoc.admin.override_url
    .replace("{pool}", encodeURIComponent(m.pool))
    .replace("{member}", encodeURIComponent(m.member)) + `?zone=${encodeURIComponent(m.zone)}`;
  const init = { method: drain ? "PUT" : "DELETE", headers: { Authorization: `Bearer ${token}` } };
  if (drain) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify({ state: "draining", zone: m.zone, reason: "drained from the dashboard" });
  }
  try {
    const resp = await fetch(url, init);
    const body = await resp.json().catch(() => ({}));
    msg.textContent = resp.ok ? `${drain ? "Drained" : "Undrained"} ${m.member}.`
                              : `${m.member}: HTTP ${resp.status} ${body.error || ""}`;
  } catch (err) {
    msg.textContent = `${m.member}: ${err}`;
  }
  refresh();
}

function setupToken() {
  const input = $("token");
  input.value = sessionStorage.getItem(TOKEN_KEY) || "";
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    $("admin-msg").textContent = "Admin token kept for this tab.";
  });
  $("token-forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    input.value = "";
    $("admin-msg").textContent = "Admin token forgotten.";
  });
}

// -- the loop ------------------------------------------------------------------------

async function refresh() {
  try {
    const resp = await fetch("/api/dashboard", { cache: "no-store" });
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    const doc = await resp.json();
    lastDoc = doc;
    colorMembers(doc.members);
    drawMarkers(doc.members);
    drawPools(doc.members);
    drawRegions(doc.queries);
    drawChanges(doc.changes);
    $("qps").textContent = doc.queries.per_s.toFixed(1);
    const up = doc.members.filter((m) => m.status === "up").length;
    $("up-count").textContent = `${up}/${doc.members.length}`;
    $("updated").textContent = `updated ${clock(doc.time)}`;
    document.body.dataset.updated = String(doc.time);
  } catch (err) {
    $("updated").textContent = `server unreachable (${err.message}); retrying…`;
  }
}

// -- measured latency (geodns serve --latency-redis) ----------------------------------

async function refreshLatency() {
  const resp = await fetch("/admin/latency", { cache: "no-store" }).catch(() => null);
  const panel = $("latency-panel");
  if (!resp || !resp.ok) { panel.hidden = true; return; }
  const doc = await resp.json();
  const nets = Object.keys(doc.figures);
  panel.hidden = false;
  if (!nets.length) { $("latency").textContent = "No figures yet."; return; }
  const edges = [...new Set(nets.flatMap((n) => Object.keys(doc.figures[n])))].sort();
  const table = document.createElement("table");
  table.className = "latency";
  const head = table.insertRow();
  for (const name of ["region", "network", ...edges]) {
    const th = document.createElement("th");
    th.textContent = name;
    head.appendChild(th);
  }
  nets.sort((a, b) => (doc.regions[a] || a).localeCompare(doc.regions[b] || b));
  for (const net of nets) {
    const figs = doc.figures[net];
    const best = Math.min(...Object.values(figs).map((f) => f.ms));
    const row = table.insertRow();
    row.insertCell().textContent = doc.regions[net] || "?";
    row.insertCell().textContent = net;
    for (const e of edges) {
      const cell = row.insertCell();
      const f = figs[e];
      cell.textContent = f ? `${f.ms.toFixed(1)} · ${f.samples}` : "–";
      if (f && f.ms === best) cell.className = "best";
    }
  }
  $("latency").replaceChildren(table);
}

setupToken();
drawLand();
refresh();
setInterval(refresh, POLL_MS);
refreshLatency();
setInterval(refreshLatency, POLL_MS);
