// The notification centre (the bell in the header): the user's notifications from
// `GET /api/v1/notifications`, asked every half minute and soon after the live stream
// says a task changed; unread ones counted on the bell, read when the panel is opened.
// With the user's permission, a notification that arrives while the page is open also
// shows as a desktop notification (the Notification API; its `tag` is the notification's
// id, so two tabs show it once).

import { api } from "./api.js";
import { $, el, formatDateTime, parseDate } from "./dom.js";
import { pathOf } from "./ticket.js";

const REFRESH_MS = 30_000;
const SOON_MS = 1_500;

let known = null; // ids already shown (null until the first load: those are not new)
let refreshTimer = null;
let soonTimer = null;
let loading = null;
let unread = [];

function supported() {
  return typeof window.Notification === "function";
}

function render(list) {
  const count = list.unread;
  $("notify-count").textContent = count > 0 ? String(count) : "";
  $("notify-count").hidden = count === 0;
  $("notify-toggle").setAttribute(
    "aria-label",
    count > 0 ? `Notifications, ${count} unread` : "Notifications",
  );
  $("notify-empty").hidden = list.items.length > 0;
  $("notify-list").replaceChildren(
    ...list.items.map((n) => {
      const when = parseDate(n.created_at);
      const text = n.task_id
        ? el("a", { href: pathOf(n.task_id), "data-task": n.task_id }, n.title)
        : el("a", { href: "/settings", "data-view": "settings" }, n.title);
      return el(
        "li",
        { class: `notify-item${n.read ? "" : " notify-unread"}`, "data-kind": n.kind },
        text,
        when ? el("time", { datetime: n.created_at, class: "muted" }, formatDateTime(when)) : "",
      );
    }),
  );
  $("notify-permission").hidden = !supported() || Notification.permission !== "default";
}

function tellDesktop(fresh) {
  if (!supported() || Notification.permission !== "granted") return;
  for (const n of fresh) {
    const shown = new Notification("Syntaskio", { body: n.title, tag: n.id });
    shown.onclick = () => {
      window.focus();
      if (n.task_id) window.location.assign(pathOf(n.task_id));
    };
  }
}

export async function loadNotifications() {
  if (loading) return loading;
  loading = (async () => {
    try {
      const list = await api("/notifications");
      const fresh = known === null ? [] : list.items.filter((n) => !n.read && !known.has(n.id));
      known = new Set(list.items.map((n) => n.id));
      unread = list.items.filter((n) => !n.read).map((n) => n.id);
      render(list);
      tellDesktop(fresh);
    } catch {
      // Shown again at the next refresh; the bell keeps what it had.
    } finally {
      loading = null;
    }
  })();
  return loading;
}

/** Something changed on the dashboard: look for news shortly (changes come in bursts). */
export function notificationsSoon() {
  if (soonTimer) return;
  soonTimer = setTimeout(() => {
    soonTimer = null;
    loadNotifications();
  }, SOON_MS);
}

function schedule() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(async () => {
    if (!document.hidden) await loadNotifications();
    schedule();
  }, REFRESH_MS);
}

export function startNotifications() {
  known = null;
  $("notify").hidden = false;
  loadNotifications();
  schedule();
}

export function resetNotifications() {
  clearTimeout(refreshTimer);
  clearTimeout(soonTimer);
  soonTimer = null;
  known = null;
  unread = [];
  $("notify").hidden = true;
  $("notify-panel").hidden = true;
  $("notify-list").replaceChildren();
}

async function markAllRead() {
  if (unread.length === 0) return;
  try {
    await api("/notifications/read", { method: "POST", body: { all: true } });
  } finally {
    await loadNotifications();
  }
}

function toggle(open = $("notify-panel").hidden) {
  $("notify-panel").hidden = !open;
  $("notify-toggle").setAttribute("aria-expanded", String(open));
  if (open) loadNotifications();
}

export function initNotifications() {
  $("notify-toggle").addEventListener("click", () => toggle());
  $("notify-read").addEventListener("click", markAllRead);
  $("notify-permission").addEventListener("click", async () => {
    await Notification.requestPermission();
    $("notify-permission").hidden = Notification.permission !== "default";
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !$("notify-panel").hidden) {
      toggle(false);
      $("notify-toggle").focus();
    }
  });
  // Following a notification's link closes the panel.
  $("notify-list").addEventListener("click", (event) => {
    if (event.target.closest("a")) toggle(false);
  });
}
