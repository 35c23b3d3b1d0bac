// The OBS browser source. Query parameters:
//   channel=NAME   which channel (default "default")
//   theme=NAME     panel | row | minimal | ow (default: none, plain text on transparent)
//   scale=N        0.25 .. 4 (default 1); the overlay also shrinks itself to fit the source
//   show=LIST      any of counts,rate,streak,recent,goal (default counts,rate,streak)
//   recent=N       how many last results to show (default 5, max 20)
//   goal=N         session goal in wins, e.g. 10 ("3 / 10 wins"; shown with show=…,goal or goal alone)
//   flash=0|1      the result moment when a match is counted (default 1)
//   sound=0|1      a short chime with the flash (default 0; OBS: tick "Control audio via OBS")
//   volume=N       0 .. 1 (default 0.4)
//   victory=HEX, defeat=HEX, draw=HEX, text=HEX   colours without '#', e.g. victory=00e0ff
//   size=N         font size of the counts in px, 16 .. 200 (default 56; the rest follows)
//   mode=NAME      show only that mode's counts, streak and last results this session (competitive,
//                  quickplay, arcade or a custom name), with a small mode label
//   preset=NAME    a named preset saved in the designer: its parameters, with any other parameter of the
//                  URL winning over the preset's; an unknown preset shows the defaults (console warning)
// The admin page's overlay designer writes these for you.
import {
  COUNT_KEYS,
  channelFromQuery,
  formatRate,
  letter,
  liveStatus,
  modeCounts,
  modeKey,
  modeLabel,
  normalizeMode,
  params,
} from "./common.js";

// ?preset=NAME: the preset's parameters under the URL's own (an explicit parameter wins). Whatever goes
// wrong, the overlay still shows, with the URL's parameters and the defaults.
async function withPreset(query) {
  const name = query.get("preset");
  if (name === null) return { query, preset: "" };
  query.delete("preset");
  if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(name)) {
    console.warn(`owc overlay: ${JSON.stringify(name)} is not a preset name; showing the defaults`);
    return { query, preset: "" };
  }
  try {
    const res = await fetch(`/api/v1/overlay/presets/${name}`);
    if (!res.ok) throw new Error(res.status === 404 ? "no such preset" : `HTTP ${res.status}`);
    const merged = new URLSearchParams((await res.json()).query || {});
    for (const [key, value] of query) merged.set(key, value);
    return { query: merged, preset: name };
  } catch (err) {
    console.warn(`owc overlay: preset ${JSON.stringify(name)} not loaded (${err.message}); showing the defaults`);
    return { query, preset: "" };
  }
}

const { query: q, preset } = await withPreset(params());
const root = document.getElementById("owc");
root.dataset.preset = preset; // the preset applied ("" = none)
const flashEl = document.getElementById("owc-flash");
const channel = channelFromQuery();

const theme = (q.get("theme") || "").replace(/[^a-z0-9-]/gi, "");
if (theme) document.body.classList.add(`owc-theme-${theme}`);

// colours and size straight from the URL, no CSS needed (they win over custom.css for these variables)
for (const [param, variable] of [["victory", "--owc-victory"], ["defeat", "--owc-defeat"], ["draw", "--owc-draw"],
  ["text", "--owc-text"]]) {
  const hex = (q.get(param) || "").replace(/^#/, "");
  if (/^[0-9a-f]{3}([0-9a-f]{3})?$/i.test(hex)) document.documentElement.style.setProperty(variable, `#${hex}`);
}
const size = Number.parseInt(q.get("size") || "", 10);
if (size >= 16 && size <= 200) {
  document.documentElement.style.setProperty("--owc-font-size", `${size}px`);
  document.documentElement.style.setProperty("--owc-small-size", `${Math.round((size * 24) / 56)}px`);
}

const scale = Number.parseFloat(q.get("scale") || "1");
if (Number.isFinite(scale) && scale >= 0.25 && scale <= 4) {
  root.style.setProperty("--owc-scale", String(scale));
}

const goal = Math.max(0, Math.min(1000, Number.parseInt(q.get("goal") || "0", 10) || 0));
const show = new Set((q.get("show") || "counts,rate,streak").split(",").map((s) => s.trim()));
if (goal && !q.get("show")) show.add("goal");
for (const part of root.querySelectorAll("[data-part]")) {
  part.classList.toggle("owc-hidden", !show.has(part.dataset.part) || (part.dataset.part === "goal" && !goal));
}
const recentN = Math.max(1, Math.min(20, Number.parseInt(q.get("recent") || "5", 10) || 5));
const flashOn = q.get("flash") !== "0";
const soundOn = q.get("sound") === "1";
const volume = Math.max(0, Math.min(1, Number.parseFloat(q.get("volume") || "0.4") || 0));
// ?mode=NAME: that mode's counts only (the overlay's own view; the channel's current mode is set in the admin)
const mode = normalizeMode((q.get("mode") || "").slice(0, 40));
const modeEl = document.getElementById("owc-mode");
if (mode) {
  modeEl.textContent = modeLabel(mode);
  modeEl.classList.remove("owc-hidden");
  root.dataset.mode = mode;
}

// Auto-fit: whatever the scale, theme and number of recent results, the overlay never leaves the
// browser source. It measures itself at fit 1 and shrinks (never grows) to the window.
function fit() {
  root.style.setProperty("--owc-fit", "1");
  const rect = root.getBoundingClientRect();
  const w = Math.max(1, rect.right);
  const h = Math.max(1, rect.bottom);
  const f = Math.min(1, window.innerWidth / w, window.innerHeight / h);
  root.style.setProperty("--owc-fit", String(Math.floor(f * 1000) / 1000));
  root.dataset.fit = String(Math.floor(f * 1000) / 1000);
}
window.addEventListener("resize", fit);
document.fonts.ready.then(fit);

function bump(el) {
  el.classList.remove("owc-bump");
  void el.offsetWidth; // restart the animation
  el.classList.add("owc-bump");
}

const WORDS = { victory: "VICTORY!", defeat: "DEFEAT", draw: "DRAW" };
let audio = null;

function chime(outcome) {
  if (!soundOn || volume <= 0) return;
  try {
    audio = audio || new AudioContext();
    const notes = { victory: [523, 659, 784], defeat: [392, 330, 262], draw: [440, 440] }[outcome] || [440];
    const t0 = audio.currentTime;
    notes.forEach((hz, i) => {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.type = "triangle";
      osc.frequency.value = hz;
      gain.gain.setValueAtTime(0, t0 + i * 0.14);
      gain.gain.linearRampToValueAtTime(volume, t0 + i * 0.14 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t0 + i * 0.14 + 0.35);
      osc.connect(gain).connect(audio.destination);
      osc.start(t0 + i * 0.14);
      osc.stop(t0 + i * 0.14 + 0.4);
    });
  } catch {
    /* no audio in this browser source: the flash is enough */
  }
}

// The result moment: a match was counted (a detection, or +1 from the admin page or chat).
function resultMoment(event) {
  if (!event || !event.outcome || !(event.delta > 0) || !["detected", "adjusted"].includes(event.type)) return;
  if (mode && (event.mode || "").toLowerCase() !== mode.toLowerCase()) return; // counted in another mode
  if (Math.abs(Date.now() - event.ts) > 30000) return; // caught up after a reconnect: old news
  if (flashOn) {
    flashEl.dataset.outcome = event.outcome;
    document.getElementById("owc-flash-text").textContent = WORDS[event.outcome] || event.outcome;
    flashEl.classList.remove("owc-flash-on");
    void flashEl.offsetWidth;
    flashEl.classList.add("owc-flash-on");
    flashEl.dataset.count = String(Number(flashEl.dataset.count || "0") + 1);
  }
  chime(event.outcome);
}
flashEl.addEventListener("animationend", () => flashEl.classList.remove("owc-flash-on"));
// the admin page's designer previews the flash (same origin only; no count changes)
window.addEventListener("message", (ev) => {
  if (ev.origin !== window.location.origin || !ev.data || !ev.data.owcPreviewFlash) return;
  const outcome = String(ev.data.owcPreviewFlash);
  if (["victory", "defeat", "draw"].includes(outcome)) {
    resultMoment({ type: "detected", outcome, delta: 1, ts: Date.now() });
  }
});

let first = true;
function render(status, isEvent) {
  const counts = mode ? modeCounts(status, mode) : status;
  if (mode) modeEl.textContent = modeLabel(modeKey(status, mode)); // the name as the streamer typed it
  for (const key of Object.values(COUNT_KEYS)) {
    const el = root.querySelector(`[data-count="${key}"]`);
    const value = String(counts[key]);
    if (el.textContent !== value) {
      el.textContent = value;
      if (!first) bump(el);
    }
  }
  document.getElementById("owc-rate").textContent = formatRate(counts.win_rate);
  const streak = (mode ? counts.streak : status.streak) || {}; // ?mode=: that mode's own streak and results
  const streakEl = root.querySelector(".owc-streak");
  streakEl.dataset.outcome = streak.outcome || "";
  document.getElementById("owc-streak").textContent =
    streak.outcome && streak.length ? `${streak.length}${letter(streak.outcome)}` : "–";
  const recent = document.getElementById("owc-recent");
  const items = ((mode ? counts.recent : status.recent) || []).slice(-recentN);
  recent.replaceChildren(
    ...items.map((o) => {
      const s = document.createElement("span");
      s.className = `r-${o}`;
      s.textContent = letter(o);
      return s;
    }),
  );
  if (goal) {
    const goalEl = root.querySelector(".owc-goal");
    goalEl.dataset.reached = String(counts.victories >= goal);
    document.getElementById("owc-goal").textContent = `${Math.min(counts.victories, goal)} / ${goal} wins`;
  }
  root.dataset.lastEventId = status.last_event_id || "";
  if (isEvent && !first) resultMoment(status.event);
  first = false;
  fit();
}

function connection(connected) {
  root.classList.toggle("owc-stale", !connected);
  root.dataset.connected = String(connected);
}

liveStatus(channel, render, connection);
