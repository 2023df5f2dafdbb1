// romancy-trio viewer: plain JS, no build step. Pages by location hash:
// #/ (instances), #/i/<id> (one instance), #/channels. Live updates: EventSource api/stream.
"use strict";
const main = document.getElementById("main");
const live = document.getElementById("live");
const COLORS = {activity: "#3b6fd8", compensation: "#e08a1e", failed: "#c62828",
                event: "#8e44ad", message: "#138a72", wait: "#9aa3b5"};
let current = null;          // what the page shows: {page, id}
const statusById = new Map();

function esc(s) {
  return String(s).replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;",
    '"': "&quot;", "'": "&#39;"}[c]));
}
function badge(status) { return `<span class="status ${esc(status)}">${esc(status)}</span>`; }
async function api(path, options) {
  const r = await fetch("api/" + path, Object.assign({credentials: "same-origin"}, options));
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.status);
  return body;
}

// -- the instance list --------------------------------------------------------------------
async function listPage(params) {
  const q = new URLSearchParams(params);
  const rows = (await api("instances?" + q)).instances;
  main.innerHTML = `<h2>Instances</h2>
  <form class="filters" id="filters">
    <select name="status"><option value="">any status</option>${
      ["pending", "running", "waiting", "completed", "failed", "cancelled"].map(s =>
        `<option ${params.status === s ? "selected" : ""}>${s}</option>`).join("")}</select>
    <input name="workflow" placeholder="workflow" value="${esc(params.workflow || "")}">
    <input name="search" placeholder="instance id contains" value="${esc(params.search || "")}">
    <button>Filter</button></form>
  <table id="instances"><thead><tr><th>instance</th><th>workflow</th><th>status</th>
    <th>run</th><th>created</th><th>updated</th></tr></thead><tbody>${rows.map(r => `
    <tr data-id="${esc(r.instance_id)}"><td><a href="#/i/${encodeURIComponent(r.instance_id)}">${
      esc(r.instance_id)}</a></td><td>${esc(r.workflow)}</td><td class="st">${badge(r.status)}</td>
      <td>${r.run_no}</td><td>${esc(r.created_at)}</td><td class="up">${esc(r.updated_at)}</td></tr>`
  ).join("")}</tbody></table>`;
  document.getElementById("filters").onsubmit = (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    const p = new URLSearchParams([...f].filter(([, v]) => v));
    location.hash = "#/?" + p;
  };
}

// -- one instance -------------------------------------------------------------------------
function timelineSvg(steps) {
  const width = 900, left = 190, row = 22, top = 24;
  const end = Math.max(0.001, ...steps.map(s => s.end));
  const x = t => left + (width - left - 20) * (t / end);
  const parts = [];
  for (let k = 0; k <= 4; k++) {
    const t = end * k / 4;
    parts.push(`<line x1="${x(t)}" x2="${x(t)}" y1="${top - 6}" y2="${top + row * steps.length}"
      stroke="#eef1f8"/><text class="axis" x="${x(t) - 8}" y="12">${
      end < 2 ? (t * 1000).toFixed(0) + " ms" : t.toFixed(2) + " s"}</text>`);
  }
  steps.forEach((s, i) => {
    const y = top + i * row;
    const color = !s.ok ? COLORS.failed : COLORS[s.kind] || COLORS.activity;
    parts.push(`<text class="label" x="4" y="${y + 14}">${esc(s.kind)} ${esc(s.key).slice(0, 26)}</text>`);
    if (s.kind === "activity" || s.kind === "compensation") {
      const w = Math.max(2, x(s.end) - x(s.start));
      parts.push(`<rect class="bar ${s.kind}${s.ok ? "" : " failed"}" x="${x(s.start)}" y="${y + 4}"
        width="${w}" height="13" rx="2" fill="${color}"><title>${esc(s.key)}: ${
        (s.end - s.start).toFixed(3)}s${s.error ? " " + esc(s.error) : ""}</title></rect>`);
      for (const a of s.attempts) {   // failed attempts: red ticks inside the bar
        parts.push(`<rect class="attempt" x="${x(a) - 1}" y="${y + 1}" width="3" height="19"
          fill="${COLORS.failed}"><title>failed attempt at ${a.toFixed(3)}s</title></rect>`);
      }
      if (s.kind === "compensation") {
        parts.push(`<text x="${x(s.end) + 4}" y="${y + 15}" fill="${color}">&#8630;</text>`);
      }
    } else if (s.kind === "wait") {   // a wait is a gap: a dashed line, no bar
      parts.push(`<line class="gap" x1="${x(s.start)}" x2="${x(s.end)}" y1="${y + 10}" y2="${y + 10}"
        stroke="${color}" stroke-dasharray="4 3" stroke-width="2"><title>${esc(s.key)}</title></line>`);
    } else {                          // events and messages: a diamond where they arrived
      const cx = x(s.end), cy = y + 10;
      parts.push(`<line class="gap" x1="${x(s.start)}" x2="${cx}" y1="${cy}" y2="${cy}"
        stroke="${COLORS.wait}" stroke-dasharray="4 3"/><path class="mark ${s.kind}"
        d="M${cx} ${cy - 7} L${cx + 7} ${cy} L${cx} ${cy + 7} L${cx - 7} ${cy} Z"
        fill="${color}"><title>${esc(s.kind)} ${esc(s.key)}</title></path>`);
    }
  });
  const h = top + row * Math.max(1, steps.length) + 8;
  return `<svg class="timeline" id="timeline" viewBox="0 0 ${width} ${h}" height="${h}"
    xmlns="http://www.w3.org/2000/svg">${parts.join("")}</svg>`;
}

async function instancePage(id) {
  const d = await api("instances/" + encodeURIComponent(id));
  statusById.set(d.instance_id, d.status);
  const ended = ["completed", "failed", "cancelled"].includes(d.status);
  const err = d.error ? `<h3>Error</h3><pre id="error">${esc(d.error.type)}: ${esc(d.error.message)}
${esc(d.error.traceback || "")}</pre>` : "";
  main.innerHTML = `<h2>${esc(d.instance_id)} ${badge(d.status)}</h2>
  <p>workflow <b>${esc(d.workflow)}</b> &middot; run ${d.run_no} (lineage ${
    d.runs.map(r => r.run_no).join(" &rarr; ")}) &middot; lease ${esc(d.lease_holder || "none")}
    &middot; updated ${esc(d.updated_at)}</p>
  <p><button class="danger" id="cancel" ${ended ? "disabled" : ""}>Cancel</button>
     <button id="resume" ${d.status === "failed" ? "" : "disabled"}>Resume from failed activity</button>
     <span id="message"></span></p>
  <h3>Timeline</h3>
  <div class="legend"><span><i style="background:${COLORS.activity}"></i>activity</span>
    <span><i style="background:${COLORS.failed}"></i>failed / attempt</span>
    <span><i style="background:${COLORS.compensation}"></i>compensation</span>
    <span><i style="background:${COLORS.event}"></i>event</span>
    <span><i style="background:${COLORS.message}"></i>message</span>
    <span><i style="background:${COLORS.wait}"></i>wait (gap)</span></div>
  ${d.timeline.length ? timelineSvg(d.timeline) : "<p id='timeline-empty'>no recorded steps yet</p>"}
  <div class="grid"><div><h3>Input</h3><pre id="input">${esc(JSON.stringify(d.input, null, 2))}</pre></div>
  <div><h3>Result</h3><pre id="result">${esc(JSON.stringify(d.result, null, 2))}</pre></div></div>
  ${err}`;
  for (const action of ["cancel", "resume"]) {
    document.getElementById(action).onclick = async () => {
      try {
        await api("instances/" + encodeURIComponent(id) + "/" + action, {method: "POST"});
        document.getElementById("message").textContent = action + " requested";
      } catch (e) { document.getElementById("message").textContent = e.message; }
    };
  }
}

// -- channels -----------------------------------------------------------------------------
async function channelsPage() {
  const c = await api("channels");
  main.innerHTML = `<h2>Channels</h2><p>runnable instances ${c.runnable} &middot; waiting ${c.waiting}</p>
  <table id="channels"><thead><tr><th>channel</th><th>depth</th><th>subscribers</th></tr></thead>
  <tbody>${c.channels.map(ch => `<tr><td>${esc(ch.channel)}</td><td>${ch.depth}</td><td>${
    ch.subscribers.map(s => `<a href="#/i/${encodeURIComponent(s)}">${esc(s)}</a>`).join(", ")
  }</td></tr>`).join("")}</tbody></table>`;
}

// -- routing and live updates -------------------------------------------------------------
async function route() {
  const hash = location.hash.slice(1) || "/";
  try {
    if (hash.startsWith("/i/")) {
      current = {page: "instance", id: decodeURIComponent(hash.slice(3))};
      await instancePage(current.id);
    } else if (hash.startsWith("/channels")) {
      current = {page: "channels"};
      await channelsPage();
    } else {
      const params = Object.fromEntries(new URLSearchParams(hash.split("?")[1] || ""));
      current = {page: "list", params};
      await listPage(params);
    }
  } catch (e) {
    main.innerHTML = `<p id="message">${esc(e.message)}</p>`;
  }
}

function onChanges(rows) {
  for (const r of rows) {
    const before = statusById.get(r.instance_id);
    statusById.set(r.instance_id, r.status);
    if (current && current.page === "list") {
      const tr = document.querySelector(`#instances tr[data-id="${CSS.escape(r.instance_id)}"]`);
      if (tr) {
        tr.querySelector(".st").innerHTML = badge(r.status);
        tr.querySelector(".up").textContent = r.updated_at;
      } else if (before === undefined) {
        listPage(current.params);  // a new instance: draw the list again
      }
    } else if (current && current.page === "instance" && r.instance_id === current.id) {
      instancePage(current.id);
    }
  }
}

function connect() {
  const source = new EventSource("api/stream");
  source.onopen = () => live.classList.add("on");
  source.onmessage = (e) => onChanges(JSON.parse(e.data).instances);
  source.onerror = () => live.classList.remove("on");  // EventSource reconnects by itself
}

window.addEventListener("hashchange", route);
route().then(connect);
