// Shared by the overlay and the admin page: live status over SSE with
// resume, and JSON calls to the API. Plain ES module, no dependencies.

export const OUTCOMES = ["victory", "defeat", "draw"];
export const COUNT_KEYS = { victory: "victories", defeat: "defeats", draw: "draws" };

export function params() {
  return new URLSearchParams(window.location.search);
}

export function channelFromQuery() {
  const ch = params().get("channel") || "default";
  return /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(ch) ? ch : "default";
}

export function apiBase(channel) {
  return `/api/v1/channels/${encodeURIComponent(channel)}`;
}

// Live status of a channel. `onStatus(status, isEvent)` gets every message;
// `onConnection(connected)` flips when the stream opens or breaks. The
// browser's EventSource resumes by itself with Last-Event-ID; when it gives
// up (HTTP error, e.g. the gateway restarting), we open a new one and pass
// the last id in the query so nothing is missed.
export function liveStatus(channel, onStatus, onConnection) {
  let source = null;
  let lastId = null;
  let retryMs = 500;
  let stopped = false;
  let timer = null;

  function open() {
    const url = new URL(`${apiBase(channel)}/events`, window.location.origin);
    if (lastId) url.searchParams.set("lastEventId", lastId);
    source = new EventSource(url);
    source.onopen = () => {
      retryMs = 500;
      onConnection(true);
    };
    source.onmessage = (ev) => {
      if (ev.lastEventId) lastId = ev.lastEventId;
      let data;
      try {
        data = JSON.parse(ev.data);
      } catch {
        return;
      }
      onConnection(true);
      onStatus(data, Boolean(data.event));
    };
    source.onerror = () => {
      onConnection(false);
      if (source.readyState === EventSource.CLOSED && !stopped) {
        clearTimeout(timer);
        timer = setTimeout(open, retryMs);
        retryMs = Math.min(retryMs * 2, 5000);
      }
    };
  }

  open();
  return {
    close() {
      stopped = true;
      clearTimeout(timer);
      if (source) source.close();
    },
  };
}

export function formatRate(rate) {
  return rate === null || rate === undefined ? "–" : `${Math.round(rate * 100)}%`;
}

export function letter(outcome) {
  return { victory: "W", defeat: "L", draw: "D" }[outcome] || "?";
}

// Copy an input's text (the Clipboard API needs a secure context; 127.0.0.1 is one, a LAN address is not).
export async function copyInput(input) {
  try {
    await navigator.clipboard.writeText(input.value);
  } catch {
    input.select();
    document.execCommand("copy");
  }
}

// Game modes, as services/common/contracts/modes.py has them: the built-ins are stored in lower case whatever
// their spelling ("Quick Play" -> "quickplay"); custom names as typed; "" = no mode.
export const BUILTIN_MODES = { competitive: "Competitive", quickplay: "Quick Play", arcade: "Arcade" };

export function normalizeMode(name) {
  const text = String(name || "").trim();
  const squashed = text.replace(/[ _-]/g, "").toLowerCase();
  return Object.hasOwn(BUILTIN_MODES, squashed) ? squashed : text;
}

// (own properties only: a custom mode may be called "constructor" or "__proto__")
export function modeLabel(mode) {
  if (!mode) return "No mode";
  return Object.hasOwn(BUILTIN_MODES, mode) ? BUILTIN_MODES[mode] : String(mode);
}

// The name a status uses for `mode` (a custom name may be typed in another case), else `mode`.
export function modeKey(status, mode) {
  const names = Object.keys(status.by_mode || {});
  if (status.mode) names.push(status.mode);
  return names.includes(mode) ? mode : names.find((k) => k.toLowerCase() === mode.toLowerCase()) ?? mode;
}

// A mode's counts, streak and last results in a status (`by_mode`), none when nothing was counted in it
// this session.
export function modeCounts(status, mode) {
  const byMode = status.by_mode || {};
  const key = modeKey(status, mode);
  return Object.hasOwn(byMode, key)
    ? byMode[key]
    : { victories: 0, defeats: 0, draws: 0, total: 0, win_rate: null, streak: { outcome: null, length: 0 }, recent: [] };
}
