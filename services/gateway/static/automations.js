// The admin page's Automations panel: what each action (webhook, Discord, Streamer.bot, chat bot,
// OBS) did last, what it gave up on, and two buttons: send the dead letters again, send a test
// event. Reads GET /api/v1/actions (polled); the buttons are JSON POSTs like every other change.
import { post, say } from "./admin.js";
import { channelFromQuery } from "./common.js";

const $ = (id) => document.getElementById(id);
const API = "/api/v1/actions";
const channel = channelFromQuery();
const EVENT_WORDS = {
  detected: "detected",
  adjusted: "changed by hand",
  set: "counts set",
  undone: "undo",
  session_started: "new session",
};
let timer = null;
let busy = false;
const openLists = new Set(); // actions whose dead-letter list is unfolded (kept across refreshes)

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  node.append(...children);
  return node;
}

function clock(ms) {
  if (!ms) return "";
  const d = new Date(ms);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : `${d.toLocaleDateString()} ${d.toLocaleTimeString()}`;
}

// "VICTORY (detected)" / "a new session" / "a test VICTORY"
function what(e) {
  const kind = EVENT_WORDS[e.event_type] || e.event_type || "event";
  const outcome = e.outcome ? e.outcome.toUpperCase() : "";
  const text = outcome ? `${outcome} (${kind})` : kind;
  return e.test ? `test ${text}` : text;
}

function lastLine(a) {
  const last = a.last;
  if (!last) return el("p", { className: "auto-last", textContent: "Nothing sent yet." });
  const text = last.ok
    ? `Last: ✓ sent ${what(last)} at ${clock(last.at)} — ${last.result}`
    : `Last: ✗ failed ${what(last)} at ${clock(last.at)} — ${last.result}`;
  return el("p", { className: `auto-last ${last.ok ? "victory" : "defeat"}`, textContent: text });
}

function deadList(a) {
  if (!a.dead_letters) return null;
  const n = a.dead_letters;
  const details = el("details", { className: "auto-dead" });
  details.dataset.testid = `auto-dead-${a.name}`;
  details.open = openLists.has(a.name);
  details.addEventListener("toggle", () => {
    if (details.open) openLists.add(a.name);
    else openLists.delete(a.name);
  });
  const summary = el("summary", {
    className: "defeat",
    textContent: `${n} failed ${n === 1 ? "delivery" : "deliveries"} waiting (dead letters)`,
  });
  const items = a.recent_dead_letters.map((d) =>
    el("li", { textContent: `${clock(d.at)}: ${what(d)} — ${d.error}` }),
  );
  if (n > items.length) items.push(el("li", { textContent: `… and ${n - items.length} older` }));
  details.append(summary, el("ul", {}, ...items));
  return details;
}

function row(a) {
  const div = el("div", { className: "auto-row" });
  div.dataset.action = a.name;
  div.dataset.testid = `auto-${a.name}`;
  div.append(el("div", {}, el("b", { textContent: a.name }), " ", el("span", { className: "auto-desc", textContent: a.description })));
  div.append(lastLine(a));
  const dead = deadList(a);
  if (dead) div.append(dead);
  if (a.queued) {
    div.append(el("p", { className: "hint", textContent: `${a.queued} queued, waiting for the actions service…` }));
  }
  const retry = el("button", { type: "button", textContent: "Retry dead letters", disabled: busy || !a.dead_letters });
  retry.dataset.testid = `auto-retry-${a.name}`;
  retry.addEventListener("click", () => act(a.name, "retry", {}));
  const test = el("button", { type: "button", textContent: "Send a test event", disabled: busy });
  test.dataset.testid = `auto-test-${a.name}`;
  test.title = `Sends a made-up VICTORY, marked as a test, through ${a.name}`;
  test.addEventListener("click", () => act(a.name, "test", { channel }));
  div.append(el("div", { className: "actions" }, retry, test));
  return div;
}

function chatLine(chat) {
  const line = $("auto-chat");
  line.classList.toggle("hidden", !chat);
  if (!chat) return;
  const where = chat.channel || "the channel";
  const texts = {
    connected: [`Twitch chat bot: connected to ${where}`, "victory"],
    auth_failed: ["Twitch chat bot: Twitch refused the bot's token. Get a new one and set actions.chat.token " +
      "(docs/actions.md, the chat bot recipe).", "defeat"],
    stopped: ["Twitch chat bot: stopped", "defeat"],
  };
  const [text, cls] = texts[chat.state] || [`Twitch chat bot: connecting to ${where}…`, "draw"];
  line.textContent = text;
  line.className = cls;
  line.dataset.state = chat.state;
}

// Twitch: the sign-in (red when refused or missing a scope), the markers, the current prediction
// with Cancel / Open buttons (GET /api/v1/actions/twitch; POST …/twitch/prediction/cancel|open).
const PREDICTION_WORDS = {
  opening: ["opening…", "draw"],
  open: ["open: viewers are predicting", "victory"],
  locked: ["locked: waiting for the result", "draw"],
  resolved: ["resolved", "victory"],
  cancelled: ["cancelled (points refunded)", "draw"],
  failed: ["not opened", "defeat"],
};

function twitchBlock(t) {
  let box = $("auto-twitch");
  if (!box) {
    box = el("div", { id: "auto-twitch", className: "auto-row" });
    box.dataset.testid = "auto-twitch";
    $("auto-list").before(box);
  }
  box.classList.toggle("hidden", !t || !t.enabled);
  if (!t || !t.enabled) return;
  const token = t.token;
  const signed = token.ok
    ? [`Twitch: signed in as ${token.login}`, "victory"]
    : token.state === "unknown"
      ? ["Twitch: the actions service has not checked the sign-in yet", "draw"]
      : [`Twitch: ${token.message || "not signed in"} (owc actions twitch-login)`, "defeat"];
  const tokenLine = el("p", { className: signed[1], textContent: signed[0] });
  tokenLine.dataset.testid = "auto-twitch-token";
  tokenLine.dataset.state = token.state;
  const parts = [tokenLine];
  if (t.markers === "offline") {
    parts.push(el("p", { className: "draw", textContent: `Stream markers: ${t.markers_message}` }));
  }
  const p = t.prediction;
  const active = p && ["opening", "open", "locked"].includes(p.status);
  const line = el("p", {});
  line.dataset.testid = "auto-twitch-prediction";
  if (p) {
    const status = p.status;
    const [words, cls] = PREDICTION_WORDS[status] || [status, "draw"];
    let text = `Prediction “${p.title}”: ${words}`;
    if (status === "open") text += ` until ${clock(p.locks_at)}`;
    if (status === "resolved") text += `: ${p.winner || p.result}`;
    if ((status === "cancelled" || status === "failed") && p.result) text += ` — ${p.result}`;
    line.textContent = text;
    line.className = cls;
    line.dataset.status = status;
  } else {
    line.textContent = "No prediction yet: one opens when the counter re-arms for the next match.";
    line.className = "hint";
  }
  parts.push(line);
  const cancel = el("button", { type: "button", textContent: "Cancel prediction", disabled: busy || !active });
  cancel.dataset.testid = "auto-twitch-cancel";
  cancel.title = "Ends it on Twitch: everyone gets their points back";
  cancel.addEventListener("click", () => twitchAct("cancel"));
  const open = el("button", { type: "button", textContent: "Open a prediction", disabled: busy || !!active });
  open.dataset.testid = "auto-twitch-open";
  open.addEventListener("click", () => twitchAct("open"));
  parts.push(el("div", { className: "actions" }, cancel, open));
  box.replaceChildren(...parts);
}

async function twitchAct(op) {
  if (busy) return;
  busy = true;
  try {
    const data = await post(`${API}/twitch/prediction/${op}`, {});
    say(data.detail, data.service_running ? "ok" : "error");
  } catch (err) {
    say(err.message, "error");
  } finally {
    busy = false;
    refresh();
  }
}

function render(data) {
  const none = data.actions.length === 0;
  $("auto-none").classList.toggle("hidden", !none);
  const service = $("auto-service");
  service.classList.toggle("hidden", none);
  service.textContent = data.service.running
    ? "Actions service: running"
    : "Actions service: not running. Nothing is sent until it starts (owc actions, or the actions container).";
  service.className = none ? "hidden" : data.service.running ? "victory" : "defeat";
  service.dataset.running = String(data.service.running);
  chatLine(data.chat);
  $("auto-list").replaceChildren(...data.actions.map(row));
  return data.actions.some((a) => a.queued);
}

async function refresh() {
  clearTimeout(timer);
  let waiting = false;
  try {
    const [res, tw] = await Promise.all([fetch(API), fetch(`${API}/twitch`)]);
    if (res.ok) waiting = render(await res.json());
    if (tw.ok) twitchBlock(await tw.json());
  } catch {
    /* the connection pill already says offline */
  }
  timer = setTimeout(refresh, waiting ? 1000 : 3000); // faster while something is on its way
}

async function act(name, verb, body) {
  if (busy) return;
  busy = true;
  for (const b of document.querySelectorAll("#auto-list button")) b.disabled = true;
  try {
    const data = await post(`${API}/${encodeURIComponent(name)}/${verb}`, body);
    say(data.detail, data.service_running || !data.queued ? "ok" : "error");
  } catch (err) {
    say(err.message, "error");
  } finally {
    busy = false;
    refresh();
  }
}

refresh();
