// Polls the local host once a second and draws per-source figures and an events/s chart.
"use strict";
const HISTORY = 60;
const history = {};
const fmt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US", { maximumFractionDigits: 1 }));

function figure(id, label, value, bad) {
  const shown = typeof value === "string" ? value : fmt(value);
  return `<div class="figure${bad ? " bad" : ""}"><b data-figure="${id}">${shown}</b><span>${label}</span></div>`;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function sparkline(points) {
  const max = Math.max(1, ...points);
  const step = 100 / Math.max(1, HISTORY - 1);
  const coords = points.map((v, i) => `${(i * step).toFixed(1)},${(58 - (v / max) * 54).toFixed(1)}`).join(" ");
  return `<svg viewBox="0 0 100 60" preserveAspectRatio="none"><polyline points="${coords}"/></svg>`;
}

function render(stats) {
  const container = document.getElementById("sources");
  const names = Object.keys(stats.sources).filter((n) => n !== "?").sort();
  container.innerHTML = names.map((name) => {
    const s = stats.sources[name];
    const series = (history[name] = (history[name] || []).concat([s.events_per_s || 0]).slice(-HISTORY));
    const waiting = Object.entries(s.waiting || {});
    const stalled = waiting.map(([p, b]) => `<p class="stalled" data-stalled="${name}-${p}">partition ${p} waiting: offsets ${b.first_offset}–${b.last_offset}, ${b.attempts} attempts, ${escapeHtml(b.cause)}</p>`).join("");
    return `<article class="card${waiting.length ? " waiting" : ""}" data-source="${name}">
      <h2>${name}<span class="muted">${waiting.length ? "WAITING · " : ""}${fmt(s.events_per_s)} ev/s</span></h2>
      ${stalled}
      <div class="figures">
        ${figure(`${name}-received`, "received", s.received)}
        ${figure(`${name}-landed`, "landed", s.landed)}
        ${figure(`${name}-dead_letters`, "dead letters", s.dead_letters, s.dead_letters > 0)}
        ${figure(`${name}-files`, "files landed", s.files)}
        ${figure(`${name}-lag`, "lag", s.lag, waiting.length > 0)}
        ${figure(`${name}-p50`, "p50 / p99 ms", s.latency_p50_ms === null ? null : `${fmt(s.latency_p50_ms)} / ${fmt(s.latency_p99_ms)}`)}
      </div>
      ${sparkline(series)}
    </article>`;
  }).join("") || `<p class="muted">No batches processed yet.</p>`;
  document.getElementById("status").textContent = `up ${fmt(stats.uptime_s)} s · updated ${new Date(stats.now * 1000).toLocaleTimeString()}`;
}

async function poll() {
  try {
    const response = await fetch("/dashboard/api/stats", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
  } catch (error) {
    document.getElementById("status").textContent = `disconnected: ${error.message}`;
  } finally {
    setTimeout(poll, 1000);
  }
}

document.getElementById("lookup").addEventListener("submit", async (event) => {
  event.preventDefault();
  const source = document.getElementById("lookup-source").value;
  const key = document.getElementById("lookup-key").value.trim();
  const out = document.getElementById("lookup-result");
  const response = await fetch(`/api/state/${encodeURIComponent(source)}?key=${encodeURIComponent(key)}`);
  const text = await response.text();
  try { out.textContent = `${response.status} ${JSON.stringify(JSON.parse(text), null, 2)}`; }
  catch { out.textContent = `${response.status} ${text}`; }
});

poll();
