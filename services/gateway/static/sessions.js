// Sessions at a glance on the admin page: a list of sessions (date, W-L-D, win rate, best streak,
// length, export) and a chart of the chosen one (wins/losses/draws and the win rate over time),
// drawn with the vendored uPlot (static/vendor/uplot, see scripts/vendor-uplot.sh).
import { apiBase, channelFromQuery, formatRate } from "./common.js";

const $ = (id) => document.getElementById(id);
const base = apiBase(channelFromQuery());
let chart = null;
let selected = null;

function fmtDuration(ms) {
  if (ms === null || ms === undefined || ms < 0) return "";
  const m = Math.round(ms / 60000);
  return m < 60 ? `${m} min` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

// events of one session (JSON Lines export) -> time series of the counts after each change
export function seriesOf(events) {
  const t = [];
  const w = [];
  const l = [];
  const d = [];
  const rate = [];
  for (const e of events) {
    t.push(e.ts / 1000);
    w.push(e.victories);
    l.push(e.defeats);
    d.push(e.draws);
    const total = e.victories + e.defeats + e.draws;
    rate.push(total ? Math.round((1000 * e.victories) / total) / 10 : null);
  }
  return [t, w, l, d, rate];
}

// The time axis: ticks at whole seconds, minutes or hours (never milliseconds), labelled as a clock.
const TICKS_S = [1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
function timeLabels(splits, stepS) {
  const withSeconds = stepS < 60;
  const labels = splits.map((t) =>
    new Date(t * 1000).toLocaleTimeString([], withSeconds
      ? { hour: "2-digit", minute: "2-digit", second: "2-digit" }
      : { hour: "2-digit", minute: "2-digit" }),
  );
  $("chart").dataset.ticks = labels.join("|"); // (what the canvas shows, for the browser tests)
  return labels;
}

// No chart for nothing: a short line instead of an empty frame.
function empty(text) {
  if (chart) chart.destroy();
  chart = null;
  const el = $("chart");
  el.replaceChildren();
  el.classList.add("hidden");
  el.dataset.points = "0";
  $("chart-title").textContent = text;
}

async function draw(session) {
  const res = await fetch(`${base}/export?format=jsonl&session=${encodeURIComponent(session.id)}`);
  if (!res.ok) return;
  const text = await res.text();
  const events = text.split("\n").filter(Boolean).map((line) => JSON.parse(line));
  const data = seriesOf(events);
  const el = $("chart");
  if (!events.some((e) => e.victories + e.defeats + e.draws > 0)) {
    empty(`session ${session.id}: ${session.victories}-${session.defeats}-${session.draws} — ` +
      "nothing to chart yet: the chart grows with each counted match.");
    el.dataset.session = session.id;
    return;
  }
  el.classList.remove("hidden");
  const width = Math.max(280, el.clientWidth || 600);
  const opts = {
    width,
    height: 220,
    series: [
      {},
      { label: "Wins", stroke: "#5ee07a", width: 2 },
      { label: "Losses", stroke: "#ff5a5a", width: 2 },
      { label: "Draws", stroke: "#f2c94c", width: 2 },
      { label: "Win rate %", stroke: "#4ea1ff", dash: [6, 4], scale: "%" },
    ],
    scales: { "%": { range: [0, 100] } },
    axes: [
      {
        stroke: "#93a0b4",
        grid: { stroke: "#2a3344" },
        incrs: TICKS_S,
        values: (_u, splits, _axis, _space, stepS) => timeLabels(splits, stepS),
      },
      { stroke: "#93a0b4", grid: { stroke: "#2a3344" } },
      { side: 1, scale: "%", stroke: "#4ea1ff", grid: { show: false } },
    ],
  };
  if (chart) chart.destroy();
  chart = new window.uPlot(opts, data, el);
  el.dataset.points = String(data[0].length);
  el.dataset.session = session.id;
  $("chart-title").textContent = `session ${session.id}: ${session.victories}-${session.defeats}-${session.draws}`;
}

function row(s) {
  const tr = document.createElement("tr");
  tr.dataset.session = s.id;
  const best = s.summary && s.summary.longest_win_streak ? `${s.summary.longest_win_streak}W` : "–";
  const end = s.ended_at || (s.current ? Date.now() : null);
  const cells = [
    s.started_at ? new Date(s.started_at).toLocaleString() : s.id,
    `${s.victories}-${s.defeats}-${s.draws}`,
    formatRate(s.win_rate),
    best,
    (s.current ? "running, " : "") + fmtDuration(end && s.started_at ? end - s.started_at : null),
  ];
  for (const text of cells) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  const td = document.createElement("td");
  const a = document.createElement("a");
  a.href = `${base}/export?format=csv&session=${encodeURIComponent(s.id)}`;
  a.textContent = "CSV";
  a.addEventListener("click", (ev) => ev.stopPropagation());
  td.append(a);
  tr.append(td);
  tr.addEventListener("click", () => select(s));
  return tr;
}

function select(s) {
  selected = s.id;
  for (const tr of $("sessions").querySelectorAll("tr")) tr.classList.toggle("selected", tr.dataset.session === s.id);
  draw(s);
}

export async function refreshSessions() {
  const res = await fetch(`${base}/sessions`);
  if (!res.ok) return;
  const { sessions } = await res.json();
  $("sessions").replaceChildren(...sessions.map(row));
  const chosen = sessions.find((s) => s.id === selected) || sessions.find((s) => s.current) || sessions[0];
  if (chosen) select(chosen);
  else empty("No sessions yet: the first counted match (or a change on this page) starts one.");
}

refreshSessions();
// admin.js re-renders #history after every change: refresh then (one summary call, one export)
let timer = null;
new MutationObserver(() => {
  clearTimeout(timer);
  timer = setTimeout(refreshSessions, 500);
}).observe($("history"), { childList: true });
