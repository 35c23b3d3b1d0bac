// The admin page's mode picker: the channel's current mode (matches count in it from now on, new
// sessions keep it) and this session's counts per mode. The same command path as the +/− buttons.
import { command } from "./admin.js";
import { apiBase, channelFromQuery, formatRate, modeLabel, normalizeMode } from "./common.js";

const $ = (id) => document.getElementById(id);
const base = apiBase(channelFromQuery());
const CUSTOM = "*custom"; // not a valid mode name: no custom mode can be mistaken for it
const select = $("mode-select");
const custom = $("mode-custom");
let current = null;

function chosen() {
  return select.value === CUSTOM ? custom.value.trim() : select.value;
}

function send(mode) {
  const stored = normalizeMode(mode);
  if (stored === current) return;
  command(`${base}/mode`, { mode: stored }, stored ? `mode: ${modeLabel(stored)}` : "no mode");
}

function showCustom(on) {
  custom.classList.toggle("hidden", !on);
  custom.required = on;
}

function overlayLink(mode) {
  const u = new URL("/overlay", window.location.origin);
  const ch = channelFromQuery();
  if (ch !== "default") u.searchParams.set("channel", ch);
  u.searchParams.set("mode", mode);
  const a = document.createElement("a");
  a.href = u.href;
  a.target = "_blank";
  a.rel = "noopener";
  a.textContent = "overlay";
  a.title = `the overlay with this mode's counts: ${u.href}`;
  return a;
}

function renderModes(status) {
  const mode = status.mode || "";
  if (mode !== current) {
    current = mode;
    const builtin = [...select.options].some((o) => o.value === mode && o.value !== CUSTOM);
    if (document.activeElement !== custom) {
      select.value = builtin ? mode : CUSTOM;
      if (!builtin) custom.value = mode;
      showCustom(!builtin);
    }
  }
  // "Playing Competitive · by mode: Competitive 3-1-0 75% (overlay) · Quick Play 0-2-0 0% (overlay)"
  const parts = [document.createTextNode("Playing "), Object.assign(document.createElement("b"), {
    textContent: modeLabel(mode),
  })];
  const byMode = Object.entries(status.by_mode || {});
  // one row for "no mode" only would repeat the totals above
  const split = byMode.length > 1 || (byMode.length === 1 && byMode[0][0] !== "");
  if (split) parts.push(document.createTextNode(" · by mode:"));
  for (const [i, [name, c]] of (split ? byMode : []).entries()) {
    const item = document.createElement("span");
    item.className = "mode-counts";
    item.dataset.mode = name;
    item.textContent = `${i ? " · " : " "}${modeLabel(name)} ${c.victories}-${c.defeats}-${c.draws} ${formatRate(c.win_rate)} `;
    parts.push(item);
    if (name) item.append("(", overlayLink(name), ")");
  }
  $("mode-summary").replaceChildren(...parts);
}

document.addEventListener("owc:status", (ev) => renderModes(ev.detail));
select.addEventListener("change", () => {
  if (select.value === CUSTOM) {
    showCustom(true);
    custom.focus();
  } else {
    showCustom(false);
    send(select.value);
  }
});
$("mode-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  send(chosen());
});
