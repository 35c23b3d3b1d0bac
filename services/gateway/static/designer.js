// The overlay designer on the admin page: pick a look, see it live, copy the URL for OBS.
// It only builds an /overlay URL (every option is a query parameter the overlay reads).
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
