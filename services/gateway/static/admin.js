// The admin page. Everything it shows comes from the same API as everyone
// else's; every change is a JSON POST (same-origin, with the admin token).
import {
  COUNT_KEYS,
  OUTCOMES,
  apiBase,
  channelFromQuery,
  copyInput,
  formatRate,
  letter,
  liveStatus,
  modeLabel,
  params,
} from "./common.js";

const TOKEN_KEY = "owc.adminToken";
const $ = (id) => document.getElementById(id);

// The counter: a row per outcome with its name, −1, the count and +1 (the buttons are wired further down).
$("outcome-rows").outerHTML = OUTCOMES.map((o) => `<div class="row" data-outcome="${o}">
  <span class="name ${o}">${COUNT_KEYS[o][0].toUpperCase()}${COUNT_KEYS[o].slice(1)}</span>
  <button data-testid="minus-${o}" data-outcome="${o}" data-delta="-1" aria-label="${o} minus one">−</button>
  <span class="value" data-count="${COUNT_KEYS[o]}">0</span>
  <button data-testid="plus-${o}" data-outcome="${o}" data-delta="1" aria-label="${o} plus one">+</button>
</div>`).join("\n");

// The token arrives once in the URL (?token=…): keep it in localStorage and
// take it out of the address bar (and so out of history and screenshots).
// A token already saved here is never replaced silently: any page can link to /admin?token=junk,
// so a different one is saved only when the streamer confirms it.
(function takeTokenFromUrl() {
  const q = params();
  const token = q.get("token");
  if (token === null) return;
  q.delete("token");
  const rest = q.toString();
  history.replaceState(null, "", window.location.pathname + (rest ? `?${rest}` : "") + window.location.hash);
  const saved = localStorage.getItem(TOKEN_KEY);
  if (!token || token === saved) return;
  const replace = saved === null || window.confirm(
    "This link carries an admin token that differs from the one saved in this browser.\n\n" +
      "Replace the saved token? Choose Cancel if you did not open this link yourself.",
  );
  if (replace) localStorage.setItem(TOKEN_KEY, token);
})();

const channel = channelFromQuery();
const base = apiBase(channel);
let busy = false;

export function say(text, kind = "") {
  const el = $("message");
  el.textContent = text;
  el.className = kind;
}

export async function post(path, body = {}) {
  const headers = { "Content-Type": "application/json" };
  const token = localStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(path, { method: "POST", headers, body: JSON.stringify(body) });
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (res.status === 401) $("token-box").classList.remove("hidden");
  if (!res.ok) throw new Error((data && data.detail) || `HTTP ${res.status}`);
  return data;
}

export async function command(path, body, okText) {
  if (busy) return;
  busy = true;
  // only the buttons enabled now come back enabled (a Retry with nothing to retry stays greyed)
  const paused = [...document.querySelectorAll("main button")].filter((b) => !b.disabled);
  for (const b of paused) b.disabled = true;
  try {
    const data = await post(path, body);
    render(data.status);
    say(okText, "ok");
    refreshHistory();
  } catch (err) {
    say(err.message, "error");
  } finally {
    busy = false;
    for (const b of paused) b.disabled = false;
  }
}

function render(status) {
  for (const key of Object.values(COUNT_KEYS)) {
    document.querySelector(`[data-count="${key}"]`).textContent = String(status[key]);
    document.querySelector(`#set-form input[name="${key}"]`).placeholder = String(status[key]);
  }
  $("rate").textContent = formatRate(status.win_rate);
  const s = status.streak || {};
  $("streak").textContent = s.outcome && s.length ? `${s.length}${letter(s.outcome)}` : "–";
  renderPhase(status);
  $("session").textContent = status.session && status.session.id ? `session ${status.session.id}` : "";
  if (status.health) renderHealth(status.health);
  renderNearMiss(status);
  document.dispatchEvent(new CustomEvent("owc:status", { detail: status })); // (mode.js: the mode picker)
}

// A near miss: the reader saw an outcome word but not clearly enough to count it. The streamer
// can count it with the normal adjust command; its frame then becomes a labelled sample for
// `owc collect`. Hidden once handled, and when a match was counted after it (same banner).
const HANDLED_KEY = `owc.nearMissHandled.${channel}`;
function renderNearMiss(status) {
  const box = $("near-miss");
  const n = status && status.health ? status.health.near_miss : null;
  const handled = Number(localStorage.getItem(HANDLED_KEY) || -1);
  const last = status ? status.last_event : null;
  const countedAfter =
    last && last.type === "detected" && last.captured_at !== null && n && last.captured_at >= n.captured_at - 120000;
  if (!n || n.frame_seq <= handled || countedAfter) {
    box.classList.add("hidden");
    return;
  }
  const word = n.outcome.toUpperCase();
  $("near-miss-text").textContent =
    `Saw ${word} at ${(n.confidence * 100).toFixed(0)}% — not counted (${fmtTime(n.captured_at)}${n.text ? `, read "${n.text}"` : ""}).`;
  $("near-miss-img").src = `${base}/detframe/${n.frame_seq}.jpg`;
  $("near-miss-link").href = $("near-miss-img").src;
  $("near-miss-count").textContent = `Count it as a ${n.outcome}`;
  box.dataset.seq = String(n.frame_seq);
  box.dataset.outcome = n.outcome;
  box.classList.remove("hidden");
}

// phase and health change without events (cooldown ends, frames arrive): also polled
function renderPhase(status) {
  let phase = status.phase || "–";
  if (status.phase === "cooldown" && status.cooldown_remaining_s > 0) {
    phase += ` (${Math.ceil(status.cooldown_remaining_s)} s)`;
  }
  $("phase").textContent = phase;
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  if (seconds < 1) return "just now";
  if (seconds < 120) return `${Math.round(seconds)} s ago`;
  return `${Math.round(seconds / 60)} min ago`;
}

// The header's badge: this page's live link to the gateway, and whether OBS feeds the counter
// (a green "live" while OBS is gone would promise counting that does not happen).
let live = false;
let feed = null; // the last health record
function renderConn() {
  const el = $("conn");
  el.dataset.connected = String(live);
  let text = "offline";
  let kind = "bad";
  let title = "this page has lost its connection to the counter (the gateway); it reconnects by itself";
  if (live) {
    const replay = feed && (feed.capture_source || "").startsWith("replay:");
    if (!feed || replay || feed.obs_connected) {
      [text, kind, title] = ["live", "ok", "connected to the counter; OBS (or a replay) feeds it"];
      if (replay) text = "live (replay)";
    } else if (feed.obs_connected === false) {
      [text, kind, title] = ["OBS disconnected", "bad", "connected to the counter, but it sees no OBS: nothing is counted"];
    } else {
      [text, kind, title] = ["no capture", "warn", "connected to the counter, but no capture (owc capture) is running"];
    }
  }
  el.textContent = text;
  el.className = `pill ${kind}`;
  el.dataset.feed = kind;
  el.title = title;
}

function renderHealth(h) {
  feed = h;
  renderConn();
  // a replay needs no OBS: say what feeds the counter instead of a red "disconnected"
  const replay = (h.capture_source || "").startsWith("replay:");
  const clip = replay ? h.capture_source.slice("replay:".length) : "";
  $("h-obs").textContent = replay
    ? `not needed: ${h.capture_state === "finished" ? `the replay of ${clip} has finished` : `replaying ${clip}`}`
    : h.obs_connected === null ? "no capture running" : h.obs_connected ? "connected" : `disconnected${h.capture_error ? ` (${h.capture_error})` : ""}`;
  $("h-obs").className = replay || h.obs_connected ? "victory" : "defeat";
  const held = h.capture_held_back_s !== null && h.capture_held_back_s !== undefined
    ? ` — capture waiting ${Math.round(h.capture_held_back_s)} s for inference to catch up` : "";
  $("h-frame").textContent = (h.last_frame_at ? `${age(h.last_frame_age_s)} (#${h.last_seq ?? "?"})` : "none yet") + held;
  $("h-label").textContent = h.last_label
    ? `${h.last_label}${h.last_confidence !== null ? ` (${(h.last_confidence * 100).toFixed(1)}%)` : ""}`
    : "–";
  $("h-model").textContent = h.model || "–";
  $("h-workers").textContent = String(h.workers);
  $("h-state").textContent = h.state_alive ? "running" : "not reporting";
  $("h-state").className = h.state_alive ? "victory" : "defeat";
  const writeError = h.redis_write_error;
  $("h-redis").textContent = writeError ? `cannot write: ${writeError}; counting paused, nothing lost` : "ok";
  $("h-redis").className = writeError ? "defeat" : "victory";
}

function fmtTime(ms) {
  const d = new Date(ms);
  return `${d.toLocaleDateString()} ${d.toLocaleTimeString()}`;
}

let nextBefore = null;

// The reader's verdict in words: which banner the frame looks most like and whether that was clear
// enough to count (its scores are log-likelihoods: 0 is certain, the threshold is `accept`).
function readerVerdict(r) {
  const ranked = Object.entries(r.scores || {}).sort((a, b) => b[1] - a[1]);
  if (!ranked.length) return "no banner word";
  const [best, score] = ranked[0];
  return score >= r.accept
    ? `looks like ${best.toUpperCase()}, clear enough to count`
    : `looks most like ${best.toUpperCase()}, not clear enough to count`;
}

// What each stage saw on a detection frame, in one line ('gate 0.98 · read "DEERT" · looks most like DEFEAT, …').
async function explain(seq) {
  try {
    const res = await fetch(`${base}/detections/${seq}`);
    if (!res.ok) return "";
    const d = await res.json();
    const parts = [];
    if (d.stages.gate && d.stages.gate.score !== undefined) parts.push(`gate ${d.stages.gate.score.toFixed(2)}`);
    const r = d.stages.reader;
    if (r) {
      parts.push(`read "${r.text}"`, readerVerdict(r));
    }
    return parts.join(" · ");
  } catch {
    return "";
  }
}

function historyRow(e) {
  const tr = document.createElement("tr");
  tr.dataset.eventId = e.id;
  const cells = [
    fmtTime(e.ts),
    e.type + (e.note ? ` — ${e.note}` : ""),
    e.outcome ? `${e.outcome}${e.delta && e.type !== "detected" ? ` ${e.delta > 0 ? "+" : ""}${e.delta}` : ""}` : "",
    `${e.victories}-${e.defeats}-${e.draws}`,
    e.confidence === null ? "" : `${(e.confidence * 100).toFixed(1)}%`,
    e.source,
  ];
  for (const text of cells) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  if (e.mode) {
    const tag = document.createElement("span"); // the mode the event happened in (mode_changed: the new one)
    tag.className = "mode-tag";
    tag.textContent = modeLabel(e.mode);
    tr.children[1].append(" ", tag);
  }
  const td = document.createElement("td");
  if (e.source === "auto" && e.frame_seq !== null) {
    const img = document.createElement("img");
    img.className = "thumb";
    img.alt = `frame ${e.frame_seq}`;
    img.loading = "lazy";
    img.src = `${base}/detframe/${e.frame_seq}.jpg`;
    img.onerror = () => {
      img.replaceWith(document.createTextNode("expired"));
    };
    const a = document.createElement("a");
    a.href = img.src;
    a.target = "_blank";
    a.rel = "noopener";
    a.append(img);
    td.append(a);
    explain(e.frame_seq).then((text) => {
      if (!text) return;
      const why = document.createElement("div");
      why.className = "why";
      why.textContent = text;
      td.append(why);
    });
  }
  tr.append(td);
  if (e.outcome) tr.classList.add(e.outcome);
  return tr;
}

async function loadHistory(before) {
  const url = new URL(`${base}/history`, window.location.origin);
  url.searchParams.set("limit", "50");
  if (before) url.searchParams.set("before", before);
  const res = await fetch(url);
  if (!res.ok) throw new Error(`history: HTTP ${res.status}`);
  return res.json();
}

let historyTimer = null;
function refreshHistory() {
  clearTimeout(historyTimer);
  historyTimer = setTimeout(async () => {
    try {
      const data = await loadHistory(null);
      $("history").replaceChildren(...data.events.map(historyRow));
      nextBefore = data.next_before;
      $("more").classList.toggle("hidden", !nextBefore);
    } catch (err) {
      say(err.message, "error");
    }
  }, 100);
}

$("more").addEventListener("click", async () => {
  if (!nextBefore) return;
  const data = await loadHistory(nextBefore);
  $("history").append(...data.events.map(historyRow));
  nextBefore = data.next_before;
  $("more").classList.toggle("hidden", !nextBefore);
});

for (const btn of document.querySelectorAll("button[data-outcome]")) {
  btn.addEventListener("click", () => {
    const delta = Number(btn.dataset.delta);
    command(`${base}/adjust`, { outcome: btn.dataset.outcome, delta }, `${btn.dataset.outcome} ${delta > 0 ? "+1" : "−1"}`);
  });
}
$("undo").addEventListener("click", () => command(`${base}/undo`, {}, "last change undone"));
$("near-miss-count").addEventListener("click", async () => {
  const box = $("near-miss");
  const seq = Number(box.dataset.seq);
  const outcome = box.dataset.outcome;
  localStorage.setItem(HANDLED_KEY, String(seq));
  box.classList.add("hidden");
  await command(
    `${base}/adjust`,
    { outcome, delta: 1, frame_seq: seq, note: `near miss (frame ${seq}) counted by hand` },
    `${outcome} +1 (near miss counted)`,
  );
});
$("near-miss-dismiss").addEventListener("click", () => {
  localStorage.setItem(HANDLED_KEY, $("near-miss").dataset.seq || "-1");
  $("near-miss").classList.add("hidden");
});
$("new-session").addEventListener("click", () => {
  if (window.confirm("Start a new session? The counts go back to 0 (the history is kept).")) {
    command(`${base}/sessions`, {}, "new session started");
  }
});
$("set-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const body = {
    victories: Number(f.get("victories")),
    defeats: Number(f.get("defeats")),
    draws: Number(f.get("draws")),
  };
  command(`${base}/set`, body, "counts set");
});
$("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const value = $("token-input").value.trim();
  if (value) localStorage.setItem(TOKEN_KEY, value);
  $("token-input").value = "";
  $("token-box").classList.add("hidden");
  say("token saved", "ok");
});

// overlay URL and exports
const overlayUrl = new URL("/overlay", window.location.origin);
if (channel !== "default") overlayUrl.searchParams.set("channel", channel);
$("overlay-url").value = overlayUrl.href;
$("copy").addEventListener("click", async () => {
  await copyInput($("overlay-url"));
  say("overlay URL copied", "ok");
});
$("export-csv").href = `${base}/export?format=csv`;
$("export-jsonl").href = `${base}/export?format=jsonl`;

// channel picker
(async () => {
  const res = await fetch("/api/v1/channels");
  if (!res.ok) return;
  const { channels } = await res.json();
  const select = $("channel");
  select.replaceChildren(
    ...channels.map((c) => {
      const o = document.createElement("option");
      o.value = c;
      o.textContent = c;
      o.selected = c === channel;
      return o;
    }),
  );
  select.addEventListener("change", () => {
    const u = new URL(window.location.href);
    u.searchParams.set("channel", select.value);
    window.location.href = u.href;
  });
})();

// live counts over SSE; health polled (it changes without events)
liveStatus(
  channel,
  (status, isEvent) => {
    render(status);
    if (isEvent) refreshHistory();
  },
  (connected) => {
    live = connected;
    renderConn();
  },
);
setInterval(async () => {
  try {
    const res = await fetch(`${base}/status`);
    if (res.ok) {
      const status = await res.json();
      renderHealth(status.health);
      renderPhase(status);
      renderNearMiss(status);
    }
  } catch {
    /* the SSE indicator already says offline */
  }
}, 3000);
refreshHistory();
