// The overlay designer on the admin page: pick a look, see it live, copy the URL for OBS.
// It builds an /overlay URL (every option is a query parameter the overlay reads), and saves a look
// as a named preset on the gateway (/overlay?preset=NAME: a short URL that follows later changes).
import { channelFromQuery, copyInput, normalizeMode } from "./common.js";

const $ = (id) => document.getElementById(id);
const form = $("designer-form");
const channel = channelFromQuery();
const DEFAULTS = { recent: "5", goal: "0", size: "56", scale: "1",
  victory: "#5ee07a", defeat: "#ff5a5a", draw: "#f2c94c", text: "#ffffff" };

export function designedUrl(data, origin = window.location.origin) {
  const url = new URL("/overlay", origin);
  if (channel !== "default") url.searchParams.set("channel", channel);
  const theme = data.get("theme");
  if (theme) url.searchParams.set("theme", theme);
  const show = data.getAll("show");
  if (show.join(",") !== "counts,rate,streak") url.searchParams.set("show", show.join(",") || "counts");
  for (const key of ["recent", "goal", "size", "scale"]) {
    const value = String(data.get(key) || "");
    if (value && value !== DEFAULTS[key]) url.searchParams.set(key, value);
  }
  for (const key of ["victory", "defeat", "draw", "text"]) {
    const value = String(data.get(key) || "").toLowerCase();
    if (value && value !== DEFAULTS[key]) url.searchParams.set(key, value.replace("#", ""));
  }
  if (!data.get("flash")) url.searchParams.set("flash", "0");
  if (data.get("sound")) url.searchParams.set("sound", "1");
  const mode = normalizeMode(data.get("mode"));
  if (mode) url.searchParams.set("mode", mode);
  return url;
}

let timer = null;
function update() {
  const url = designedUrl(new FormData(form));
  $("designer-url").value = url.href;
  clearTimeout(timer);
  timer = setTimeout(() => {
    // the preview never plays sound
    const preview = new URL(url.href);
    preview.searchParams.delete("sound");
    $("designer-preview").src = preview.href;
  }, 150);
}

form.addEventListener("input", update);
form.addEventListener("change", update);
$("designer-copy").addEventListener("click", () => copyInput($("designer-url")));
// show the result moment in the preview without touching the counts
$("designer-flash").addEventListener("click", () => {
  const frame = $("designer-preview").contentWindow;
  if (frame) frame.postMessage({ owcPreviewFlash: "victory" }, window.location.origin);
});
update();

// ---------------------------------------------------------------- named presets
// PUT/DELETE are changes like the admin's commands: JSON, same origin, the admin token (kept by admin.js).
const PRESETS = "/api/v1/overlay/presets";
const TOKEN_KEY = "owc.adminToken";
const NAME_RE = /^[a-z0-9][a-z0-9-]{0,31}$/;
const presetName = $("preset-name");
const presetList = $("preset-list");

function presetSay(text, kind = "") {
  const el = $("preset-status");
  el.textContent = text;
  el.className = `hint ${kind}`;
}

async function presetRequest(method, path, body) {
  const options = { method, headers: {} };
  if (method !== "GET") {
    options.headers["Content-Type"] = "application/json";
    const token = localStorage.getItem(TOKEN_KEY);
    if (token) options.headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) options.body = JSON.stringify(body);
  }
  const res = await fetch(path, options);
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (res.status === 401) $("token-box").classList.remove("hidden");
  if (!res.ok) throw new Error((data && data.detail) || `HTTP ${res.status}`);
  return data;
}

// The designed URL's parameters, typed as the API takes them (the preset is exactly what the preview shows).
export function presetParams(url) {
  const out = {};
  for (const [key, value] of url.searchParams) {
    if (key === "channel") continue; // a preset is a look; the URL says which channel
    if (["recent", "goal", "size"].includes(key)) out[key] = Number.parseInt(value, 10);
    else if (["scale", "volume"].includes(key)) out[key] = Number.parseFloat(value);
    else if (["flash", "sound"].includes(key)) out[key] = value === "1";
    else if (key === "show") out.show = value.split(",");
    else out[key] = value;
  }
  return out;
}

function shortUrl(name) {
  const url = new URL("/overlay", window.location.origin);
  url.searchParams.set("preset", name);
  if (channel !== "default") url.searchParams.set("channel", channel);
  return url;
}

function showShortUrl(name) {
  $("preset-url").value = name ? shortUrl(name).href : "";
}

let listed = 0; // only the latest listing is shown (an older answer may arrive after a newer one)
async function refreshPresets(selected) {
  const mine = ++listed;
  try {
    const data = await presetRequest("GET", PRESETS);
    if (mine !== listed) return;
    presetList.replaceChildren(...data.presets.map((p) => new Option(p.name, p.name)));
    if (selected) presetList.value = selected;
    $("preset-load").disabled = $("preset-delete").disabled = !data.presets.length;
  } catch (err) {
    presetSay(`presets: ${err.message}`, "error");
  }
}

// Put a preset's parameters into the form (absent ones: the form's defaults).
function fillForm(params) {
  form.reset();
  const hex = (v) => `#${v.length === 3 ? [...v].map((c) => c + c).join("") : v}`.toLowerCase();
  const field = (name) => form.elements.namedItem(name);
  if (params.theme !== undefined && params.theme !== null) field("theme").value = params.theme;
  if (params.show) {
    for (const box of form.querySelectorAll('input[name="show"]')) box.checked = params.show.includes(box.value);
  }
  for (const key of ["recent", "goal", "size", "scale"]) {
    if (params[key] !== undefined && params[key] !== null) field(key).value = String(params[key]);
  }
  for (const key of ["victory", "defeat", "draw", "text"]) if (params[key]) field(key).value = hex(params[key]);
  if (params.flash !== undefined && params.flash !== null) field("flash").checked = params.flash;
  if (params.sound !== undefined && params.sound !== null) field("sound").checked = params.sound;
  field("mode").value = params.mode || "";
  update();
}

// Run one preset request; say what it did (its answer) or what went wrong.
async function presetTry(act) {
  try {
    presetSay(await act(), "ok");
  } catch (err) {
    presetSay(err.message, "error");
  }
}

$("preset-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const name = presetName.value.trim();
  if (!NAME_RE.test(name)) {
    presetSay("a preset name is 1-32 lower-case letters, digits or '-' (e.g. main, comp-night)", "error");
    return;
  }
  await presetTry(async () => {
    await presetRequest("PUT", `${PRESETS}/${name}`, { params: presetParams(designedUrl(new FormData(form))) });
    showShortUrl(name);
    await refreshPresets(name);
    return `saved preset ${name}`;
  });
});

$("preset-load").addEventListener("click", async () => {
  const name = presetList.value;
  if (!name) return;
  await presetTry(async () => {
    const preset = await presetRequest("GET", `${PRESETS}/${name}`);
    fillForm(preset.params);
    presetName.value = name;
    showShortUrl(name);
    return `loaded preset ${name}`;
  });
});

$("preset-delete").addEventListener("click", async () => {
  const name = presetList.value;
  if (!name) return;
  await presetTry(async () => {
    await presetRequest("DELETE", `${PRESETS}/${name}`);
    if ($("preset-url").value === shortUrl(name).href) showShortUrl("");
    await refreshPresets();
    return `deleted preset ${name}`;
  });
});

$("preset-copy").addEventListener("click", () => copyInput($("preset-url")));
refreshPresets();
