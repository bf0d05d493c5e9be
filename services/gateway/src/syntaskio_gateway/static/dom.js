// Small DOM and formatting helpers shared by the dashboard and the settings view.

export const $ = (id) => document.getElementById(id);

/**
 * Creates an element. `attrs`: "class", "text", `on<event>` handlers, booleans as
 * properties (hidden, disabled, checked…), anything else as an attribute.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (typeof value === "boolean") {
      if (key in node) node[key] = value;
      else if (value) node.setAttribute(key, "");
    } else node.setAttribute(key, value);
  }
  for (const child of children) if (child != null && child !== false) node.append(child);
  return node;
}

/** Web links only (never javascript: and the like); null otherwise. */
export function safeHref(url) {
  if (!url) return null;
  try {
    const parsed = new URL(url, window.location.origin);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
  } catch {
    return null;
  }
}

/** Sets a live region's text so that screen readers announce it even when repeated. */
export function announce(node, text) {
  node.textContent = "";
  if (text) requestAnimationFrame(() => { node.textContent = text; });
}

const dateFormat = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short" });
const dateYearFormat = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", year: "numeric" });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

export function formatDay(date) {
  const now = new Date();
  const farAway = Math.abs(date - now) > 180 * 24 * 3600 * 1000;
  return (farAway ? dateYearFormat : dateFormat).format(date);
}

export function formatDateTime(date) {
  return dateTimeFormat.format(date);
}

const STEPS = [
  ["year", 365 * 24 * 3600], ["month", 30 * 24 * 3600], ["week", 7 * 24 * 3600],
  ["day", 24 * 3600], ["hour", 3600], ["minute", 60], ["second", 1],
];

/** "3 minutes ago", "in 20 seconds", "now". */
export function fromNow(date) {
  const seconds = Math.round((date - Date.now()) / 1000);
  if (Math.abs(seconds) < 5) return seconds > 0 ? "in a moment" : "just now";
  for (const [unit, size] of STEPS) {
    if (Math.abs(seconds) >= size || unit === "second") {
      return relative.format(Math.trunc(seconds / size), unit);
    }
  }
  return "";
}

/** Whole local days from today to `date` (0 today, -1 yesterday, 1 tomorrow). */
export function daysFromToday(date) {
  const start = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate());
  return Math.round((start(date) - start(new Date())) / (24 * 3600 * 1000));
}

export function formatDuration(ms) {
  if (ms == null) return "—";
  if (ms < 1000) return `${ms} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

export function parseDate(value) {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}
