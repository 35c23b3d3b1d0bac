// The OBS browser source. Query parameters:
//   channel=NAME   which channel (default "default")
//   theme=NAME     panel | row | minimal (default: none, plain text on transparent)
//   scale=N        0.25 .. 4 (default 1)
//   show=LIST      any of counts,rate,streak,recent (default counts,rate,streak)
//   recent=N       how many last results to show (default 5, max 20)
import { COUNT_KEYS, channelFromQuery, formatRate, letter, liveStatus, params } from "./common.js";

const q = params();
const root = document.getElementById("owc");
const channel = channelFromQuery();

const theme = (q.get("theme") || "").replace(/[^a-z0-9-]/gi, "");
if (theme) document.body.classList.add(`owc-theme-${theme}`);

const scale = Number.parseFloat(q.get("scale") || "1");
if (Number.isFinite(scale) && scale >= 0.25 && scale <= 4) {
  root.style.setProperty("--owc-scale", String(scale));
}

const show = new Set((q.get("show") || "counts,rate,streak").split(",").map((s) => s.trim()));
for (const part of root.querySelectorAll("[data-part]")) {
  part.classList.toggle("owc-hidden", !show.has(part.dataset.part));
}
const recentN = Math.max(1, Math.min(20, Number.parseInt(q.get("recent") || "5", 10) || 5));

function bump(el) {
  el.classList.remove("owc-bump");
  void el.offsetWidth; // restart the animation
  el.classList.add("owc-bump");
}

let first = true;
function render(status) {
  for (const key of Object.values(COUNT_KEYS)) {
    const el = root.querySelector(`[data-count="${key}"]`);
    const value = String(status[key]);
    if (el.textContent !== value) {
      el.textContent = value;
      if (!first) bump(el);
    }
  }
  document.getElementById("owc-rate").textContent = formatRate(status.win_rate);
  const streak = status.streak || {};
  const streakEl = root.querySelector(".owc-streak");
  streakEl.dataset.outcome = streak.outcome || "";
  document.getElementById("owc-streak").textContent =
    streak.outcome && streak.length ? `${streak.length}${letter(streak.outcome)}` : "–";
  const recent = document.getElementById("owc-recent");
  const items = (status.recent || []).slice(-recentN);
  recent.replaceChildren(
    ...items.map((o) => {
      const s = document.createElement("span");
      s.className = `r-${o}`;
      s.textContent = letter(o);
      return s;
    }),
  );
  root.dataset.lastEventId = status.last_event_id || "";
  first = false;
}

function connection(connected) {
  root.classList.toggle("owc-stale", !connected);
  root.dataset.connected = String(connected);
}

liveStatus(channel, render, connection);
