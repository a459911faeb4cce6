// The overview's live counts: refreshes the counts and owners tables, and the plugins'
// concurrency in use, from /api/overview every two seconds, and the panels (warnings,
// charts, schedules, limits, actions: rendered by the server) from /overview/panels.
const STATUSES = ["pending", "in-progress", "completed", "aborted"];
function cell(text, numeric) {
  const td = document.createElement("td");
  td.textContent = text;
  if (numeric) td.className = "n";
  return td;
}
// As pages.rs writes it: "3 of 3 in the store, 1 of 2 on this node", or "no limit".
function concurrencyText(c) {
  const parts = [];
  if (c.limit !== null) parts.push(`${c.in_progress} of ${c.limit} in the store`);
  if (c.node_limit !== null) parts.push(`${c.node_held} of ${c.node_limit} on this node`);
  return parts.length ? parts.join(", ") : "no limit";
}
async function refresh() {
  try {
    const overview = await (await fetch("/api/overview")).json();
    const rows = new Map();
    for (const c of overview.summary.counts) {
      if (!rows.has(c.action)) rows.set(c.action, [0, 0, 0, 0]);
      const column = STATUSES.indexOf(c.status_code);
      if (column >= 0) rows.get(c.action)[column] += c.count;
    }
    const counts = document.querySelector("#counts tbody");
    counts.replaceChildren(...[...rows.keys()].sort().map(action => {
      const tr = document.createElement("tr");
      tr.append(cell(action, false));
      rows.get(action).forEach((n, i) => {
        const td = cell(String(n), true);
        td.dataset.action = action;
        td.dataset.status = STATUSES[i];
        tr.append(td);
      });
      return tr;
    }));
    const owners = document.querySelector("#owners tbody");
    owners.replaceChildren(...overview.summary.owners.map(o => {
      const tr = document.createElement("tr");
      tr.append(cell(o.actor_id, false), cell(String(o.in_progress), true));
      return tr;
    }));
    for (const p of overview.plugins) {
      const td = [...document.querySelectorAll("#plugins td.concurrency")]
        .find(td => td.dataset.plugin === p.name);
      if (td) td.textContent = concurrencyText(p.concurrency);
    }
    const panels = await fetch("/overview/panels");
    if (panels.ok) document.getElementById("panels").innerHTML = await panels.text();
    document.body.dataset.refreshed = String(Date.now());
  } catch (e) {
    console.error("refresh failed", e);
  }
}
// operator.js refreshes at once after a button's answer.
window.paradeRefresh = refresh;
refresh();
setInterval(refresh, 2000);
