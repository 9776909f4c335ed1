// geard's dashboard: fetch api/status every 2 seconds and redraw.
// Every value from the server is put in the page with textContent, never
// parsed as HTML: function names and client ids come from any peer.
"use strict";

const REFRESH_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";
const pages = { fpage: 1, cpage: 1 };
let timer = null;

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function fmtNumber(value) {
  if (typeof value !== "number") return "";
  return Number.isInteger(value) ? value.toLocaleString("en") : value.toFixed(2);
}

function fmtDuration(seconds) {
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  if (d) return d + "d " + h + "h";
  if (h) return h + "h " + m + "m";
  if (m) return m + "m " + (s % 60) + "s";
  return s + "s";
}

// A small line chart of values (oldest first) as inline SVG; the newest
// point is at the right edge and the width is the whole history (slots).
function chart(values, slots, cls, label) {
  const width = 180, height = 36, pad = 2;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("viewBox", "0 0 " + width + " " + height);
  svg.setAttribute("role", "img");
  const top = Math.max(1, ...values);
  const title = document.createElementNS(SVG, "title");
  title.textContent = label + ": now " + fmtNumber(values.length ? values[values.length - 1] : 0) +
    ", most " + fmtNumber(Math.max(0, ...values));
  svg.appendChild(title);
  const axis = document.createElementNS(SVG, "line");
  axis.setAttribute("class", "axis");
  axis.setAttribute("x1", String(pad));
  axis.setAttribute("x2", String(width - pad));
  axis.setAttribute("y1", String(height - pad));
  axis.setAttribute("y2", String(height - pad));
  svg.appendChild(axis);
  if (values.length > 1) {
    const step = (width - 2 * pad) / Math.max(1, Math.max(slots, values.length) - 1);
    const right = width - pad, last = values.length - 1;
    const points = values.map((v, i) =>
      (right - (last - i) * step).toFixed(1) + "," + (height - pad - (v / top) * (height - 2 * pad - 8)).toFixed(1));
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("class", cls);
    line.setAttribute("points", points.join(" "));
    svg.appendChild(line);
  }
  const peak = document.createElementNS(SVG, "text");
  peak.setAttribute("x", "2");
  peak.setAttribute("y", "8");
  peak.textContent = fmtNumber(top);
  svg.appendChild(peak);
  return svg;
}

function overview(status) {
  const items = [
    ["version", status.version],
    ["uptime", fmtDuration(status.uptime)],
    ["loop", status.loop + (status.compiled ? ", compiled" : "")],
    ["store", status.store.kind + (status.store.path ? " " + status.store.path : "")],
    ["jobs", fmtNumber(status.totals.jobs)],
    ["running", fmtNumber(status.totals.running)],
    ["connections", fmtNumber(status.totals.connections)],
    ["workers", fmtNumber(status.totals.workers)],
    ["pid", status.pid],
  ];
  const dl = document.getElementById("overview");
  dl.replaceChildren(...items.map(([name, value]) => {
    const div = el("div");
    div.append(el("dt", name), el("dd", value));
    return div;
  }));
  const badge = document.getElementById("health");
  badge.textContent = status.health;
  badge.className = "badge " + (status.healthy ? "ok" : "bad");
}

function cluster(status) {
  const section = document.getElementById("cluster-section");
  const nodes = status.cluster && Array.isArray(status.cluster.nodes) ? status.cluster.nodes.slice(0, 50) : [];
  section.hidden = nodes.length === 0;
  if (!nodes.length) return;
  const keys = [...new Set(nodes.flatMap((n) => Object.keys(n)))].slice(0, 8);
  const table = document.getElementById("cluster");
  const head = el("tr");
  head.append(...keys.map((k) => el("th", k)));
  table.tHead.replaceChildren(head);
  table.tBodies[0].replaceChildren(...nodes.map((node) => {
    const tr = el("tr");
    tr.append(...keys.map((k) => el("td", typeof node[k] === "object" ? JSON.stringify(node[k]) : node[k])));
    return tr;
  }));
}

function functions(status) {
  const rows = status.functions.map((f) => {
    const tr = el("tr");
    tr.dataset.function = f.name;
    const q = f.queued;
    const total = q.high + q.normal + q.low;
    const queued = el("td", fmtNumber(total) + " (" + q.high + " / " + q.normal + " / " + q.low + ")", "num queued");
    queued.dataset.total = String(total);
    tr.append(el("td", f.name, "name"), queued, el("td", fmtNumber(f.scheduled), "num"),
      el("td", fmtNumber(f.running), "num running"), el("td", fmtNumber(f.workers), "num workers"),
      el("td", fmtNumber(f.submitted_per_s), "num"), el("td", fmtNumber(f.finished_per_s), "num"));
    const depth = el("td"), done = el("td");
    if (f.history) {
      depth.append(chart(f.history.queued, f.history.points, "queue", "queued"));
      done.append(chart(f.history.finished_per_s, f.history.points, "done", "finished/s"));
    } else {
      depth.textContent = done.textContent = "\u2014";
    }
    tr.append(depth, done);
    return tr;
  });
  if (!rows.length) {
    const tr = el("tr");
    const td = el("td", "no functions yet", "empty");
    td.colSpan = 9;
    tr.append(td);
    rows.push(tr);
  }
  document.querySelector("#functions tbody").replaceChildren(...rows);
  document.getElementById("functions-count").textContent = "(" + status.totals.functions + ")";
  pager("functions-pager", "fpage", status.totals.functions, status.functions_per_page);
}

function connections(status) {
  const rows = status.connections.map((c) => {
    const tr = el("tr");
    tr.dataset.role = c.role;
    let names = c.functions.join(", ");
    if (c.functions_total > c.functions.length) names += " and " + (c.functions_total - c.functions.length) + " more";
    tr.append(el("td", c.client_id || "\u2014", "name client-id"), el("td", c.address), el("td", c.role),
      el("td", c.state), el("td", names, "name functions"), el("td", fmtNumber(c.running), "num"),
      el("td", fmtNumber(c.waiting_for), "num"));
    return tr;
  });
  document.querySelector("#connections tbody").replaceChildren(...rows);
  document.getElementById("connections-count").textContent = "(" + status.totals.connections + ")";
  pager("connections-pager", "cpage", status.totals.connections, status.connections_per_page);
}

function pager(id, key, total, perPage) {
  const nav = document.getElementById(id);
  const last = Math.max(1, Math.ceil(total / perPage));
  if (pages[key] > last) pages[key] = last;
  if (last === 1) { nav.replaceChildren(); return; }
  const prev = el("button", "\u2190 previous"), next = el("button", "next \u2192");
  prev.disabled = pages[key] <= 1;
  next.disabled = pages[key] >= last;
  prev.addEventListener("click", () => { pages[key] -= 1; refresh(); });
  next.addEventListener("click", () => { pages[key] += 1; refresh(); });
  nav.replaceChildren(prev, el("span", "page " + pages[key] + " of " + last), next);
}

async function refresh() {
  clearTimeout(timer);
  try {
    const response = await fetch("api/status?fpage=" + pages.fpage + "&cpage=" + pages.cpage, { cache: "no-store" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    const status = await response.json();
    overview(status);
    cluster(status);
    functions(status);
    connections(status);
    document.body.classList.remove("stale");
    document.getElementById("updated").textContent = "Updated " + new Date().toLocaleTimeString("en-GB") + ".";
  } catch (error) {
    document.body.classList.add("stale");
    document.getElementById("updated").textContent = "Not updated: " + error.message;
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

refresh();
