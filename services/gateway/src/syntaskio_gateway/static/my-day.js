// My day (`/my-day`): the user's tasks grouped for planning — Overdue, Today, This week,
// Later, No date — and those set aside (snoozed, or hidden until they change in
// ConnectWise). Tasks are pinned to today, snoozed, hidden and brought back here, and
// today's tasks put in an order of the user's own (move up / move down). The plan is
// kept by the gateway per user (nothing of it reaches ConnectWise), so it survives a
// reload; "today" is this browser's day (its time zone goes with every request).

import { api } from "./api.js";
import { $, announce, el, formatDateTime, formatDay, parseDate, safeHref } from "./dom.js";

const GROUPS = [
  { name: "overdue", title: "Overdue", empty: "" },
  { name: "today", title: "Today", empty: "Nothing planned yet: pin tasks to today." },
  { name: "this_week", title: "This week", empty: "" },
  { name: "later", title: "Later", empty: "" },
  { name: "no_date", title: "No date", empty: "" },
  { name: "set_aside", title: "Snoozed & hidden", empty: "" },
];
const WRITABLE = new Set(["service_ticket", "project_ticket"]); // tickets have a detail here
const MORNING_HOUR = 8; // a snooze ends at this hour of the chosen day
const LIVE_DELAY_MS = 500; // a burst of changes (a sync) reloads once

let shown = false;
let day = null; // the last answer of GET /my-day
let generation = 0; // grows with each load: older answers are dropped
let liveTimer = null;

function timeZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

function dayPath(path) {
  return `${path}?tz=${encodeURIComponent(timeZone())}`;
}

/** The view came forward: load the day. */
export function showMyDay() {
  shown = true;
  return load();
}

export function hideMyDay() {
  shown = false;
}

/** A task changed (the live feed): load again soon, if on screen. */
export function liveChange() {
  if (!shown) return;
  clearTimeout(liveTimer);
  liveTimer = setTimeout(() => load(), LIVE_DELAY_MS);
}

export function resetMyDay() {
  shown = false;
  day = null;
  generation += 1;
  clearTimeout(liveTimer);
  $("my-day-groups").replaceChildren();
}

/** Loads the day; `focus` ({ taskId, action }): the button to focus afterwards, in the
 * task's row wherever it now is (so keyboard users stay with the task they changed). */
async function load(focus = null) {
  const mine = ++generation;
  $("my-day-loading").hidden = day !== null;
  $("my-day-groups").setAttribute("aria-busy", "true");
  try {
    const loaded = await api(dayPath("/my-day"));
    if (mine !== generation) return;
    $("my-day-error").hidden = true;
    render(loaded, focus);
  } catch (error) {
    if (mine !== generation) return;
    $("my-day-error").hidden = false;
    $("my-day-error-text").textContent = `Could not load your day. ${error.message}`;
  } finally {
    if (mine === generation) {
      $("my-day-loading").hidden = true;
      $("my-day-groups").setAttribute("aria-busy", "false");
    }
  }
}

function render(loaded, focus = null) {
  day = loaded;
  const date = new Date(`${loaded.day}T12:00:00`);
  $("my-day-date").textContent = formatDay(date);
  const sections = GROUPS.map((group) => groupSection(group, loaded[group.name]))
    .filter(Boolean);
  $("my-day-groups").replaceChildren(...sections);
  $("my-day-truncated").hidden = !loaded.truncated;
  if (focus) {
    const row = document.querySelector(`#my-day-groups li[data-task-id="${CSS.escape(focus.taskId)}"]`);
    const button = row?.querySelector(`button[data-action="${focus.action}"]:not(:disabled)`)
      || row?.querySelector("button");
    button?.focus();
  }
}

function groupSection({ name, title, empty }, tasks) {
  if (tasks.length === 0 && !empty) return null;
  const titleId = `day-${name}-title`;
  return el("section", { class: "day-group", "data-group": name, "aria-labelledby": titleId },
    el("h2", { id: titleId, class: "section-title" },
      title, " ", el("span", { class: "count" }, `(${tasks.length})`)),
    tasks.length
      ? el("ul", { class: "tasks day-tasks", "aria-labelledby": titleId },
        ...tasks.map((task, index) => taskRow(task, name, index, tasks.length)))
      : el("p", { class: "muted day-empty" }, empty));
}

function taskRow(task, group, index, count) {
  const titleId = `day-task-${task.id}`;
  const href = safeHref(task.url);
  const title = WRITABLE.has(task.source_type)
    ? el("a", { href: `/tasks/${encodeURIComponent(task.id)}`, "data-task": task.id }, task.title)
    : href ? el("a", { href, target: "_blank", rel: "noopener noreferrer" }, task.title)
      : el("span", {}, task.title);
  const status = el("p", { class: "task-feedback", role: "status" });
  const li = el("li", {
    class: "task day-task",
    "data-task-id": task.id,
    "data-external-id": task.external_id,
    "data-pinned": String(task.plan.pinned),
  },
  el("div", { class: "task-row" },
    el("div", { class: "task-summary" },
      el("div", { class: "task-head" },
        el("span", { class: `badge badge-${task.source}` }, "ConnectWise"),
        el("span", { class: "task-number" }, el("span", { class: "sr-only" }, "Ticket "), `#${task.external_id}`),
        ...planBadges(task)),
      el("h3", { class: "task-title", id: titleId }, title),
      el("dl", { class: "task-meta" }, ...metaItems(task))),
    el("div", { class: "task-actions day-actions" }, ...actions(task, group, index, count, titleId, status))),
  status);
  return li;
}

function planBadges(task) {
  const badges = [];
  if (task.plan.pinned) badges.push(el("span", { class: "plan-badge", "data-plan": "pinned" }, "Pinned to today"));
  const until = parseDate(task.plan.snoozed_until);
  if (until) {
    badges.push(el("span", { class: "plan-badge", "data-plan": "snoozed", title: formatDateTime(until) },
      `Snoozed until ${formatDay(until)} ${until.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`));
  }
  if (task.plan.hidden) badges.push(el("span", { class: "plan-badge", "data-plan": "hidden" }, "Hidden until it changes"));
  return badges;
}

function metaItems(task) {
  const items = [];
  const item = (term, value) => el("div", { class: "meta-item", "data-meta": term.toLowerCase() },
    el("dt", { class: "sr-only" }, term), el("dd", {}, value));
  items.push(item("Priority", el("span", { class: `priority priority-${task.priority}` }, task.source_priority || task.priority)));
  const due = parseDate(task.due_at);
  if (due) items.push(item("Due", el("span", { title: formatDateTime(due) }, `Due ${formatDay(due)} ${due.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`)));
  const company = task.source_data?.company;
  if (company?.name || company?.identifier) items.push(item("Company", company.name || company.identifier));
  if (task.source_status) items.push(item("Status", task.source_status));
  return items;
}

function actions(task, group, index, count, titleId, status) {
  const button = (text, action, onclick, extra = {}) => el("button", {
    type: "button", class: "button-secondary button-small", "aria-describedby": titleId,
    "data-action": action, onclick, ...extra,
  }, text);
  if (group === "set_aside") {
    return [button("Bring back", "bring-back", () => change(task, {}, status, "Brought back"))];
  }
  const list = [];
  if (group === "today") {
    list.push(
      button("Move up", "up", () => move(task, -1, status), { disabled: index === 0 }),
      button("Move down", "down", () => move(task, 1, status), { disabled: index === count - 1 }),
    );
  }
  list.push(task.plan.pinned
    ? button("Unpin", "unpin", () => change(task, { pinned: false }, status, "Unpinned"))
    : button("Pin to today", "pin", () => change(task, { pinned: true }, status, "Pinned to today")));
  list.push(snoozeMenu(task, titleId, status));
  list.push(button("Hide until it changes", "hide", () => change(task, { hidden: true }, status, "Hidden until it changes")));
  return list;
}

/** "Snooze": tomorrow morning, next Monday morning, or a date picked. */
function snoozeMenu(task, titleId, status) {
  const panelId = `snooze-${task.id}`;
  const toggle = el("button", {
    type: "button", class: "button-secondary button-small", "aria-expanded": "false",
    "aria-controls": panelId, "aria-describedby": titleId, "data-action": "snooze",
  }, "Snooze");
  const dateInput = el("input", { type: "date", min: isoDay(addDays(new Date(), 1)), "aria-label": "Snooze until (date)", required: true });
  const snoozeTo = (date, words) => change(task, { snoozed_until: morningOf(date).toISOString() }, status, `Snoozed until ${words}`);
  const picked = el("form", { class: "snooze-pick" }, dateInput,
    el("button", { type: "submit", class: "button-secondary button-small" }, "Snooze until then"));
  picked.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!dateInput.value) return;
    const [y, m, d] = dateInput.value.split("-").map(Number);
    const date = new Date(y, m - 1, d);
    snoozeTo(date, formatDay(date));
  });
  const panel = el("div", { class: "snooze-panel", id: panelId, hidden: true },
    el("button", { type: "button", class: "button-ghost button-small", "data-action": "snooze-tomorrow", onclick: () => snoozeTo(addDays(new Date(), 1), "tomorrow morning") }, "Tomorrow morning"),
    el("button", { type: "button", class: "button-ghost button-small", "data-action": "snooze-next-week", onclick: () => snoozeTo(nextMonday(), "next week") }, "Next week"),
    picked);
  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", String(open));
    panel.hidden = !open;
    if (open) panel.querySelector("button").focus();
  });
  panel.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    toggle.setAttribute("aria-expanded", "false");
    panel.hidden = true;
    toggle.focus();
  });
  return el("div", { class: "snooze" }, toggle, panel);
}

function addDays(date, days) {
  return new Date(date.getFullYear(), date.getMonth(), date.getDate() + days);
}

function nextMonday() {
  const today = new Date();
  return addDays(today, ((8 - today.getDay()) % 7) || 7);
}

function morningOf(date) {
  return new Date(date.getFullYear(), date.getMonth(), date.getDate(), MORNING_HOUR);
}

function isoDay(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** PUT the task's plan (the same request twice is the same plan), then the day again. */
async function change(task, plan, status, done) {
  try {
    await api(dayPath(`/tasks/${encodeURIComponent(task.id)}/plan`), { method: "PUT", body: plan });
  } catch (error) {
    announce(status, `Could not change the plan: ${error.message}`);
    return;
  }
  announce($("my-day-status"), `${task.title}: ${done}`);
  await load({ taskId: task.id, action: plan.pinned ? "unpin" : "pin" });
}

/** One place up or down in today's order: the whole order is sent. */
async function move(task, step, status) {
  const order = day.today.map((t) => t.id);
  const from = order.indexOf(task.id);
  const to = from + step;
  if (from < 0 || to < 0 || to >= order.length) return;
  [order[from], order[to]] = [order[to], order[from]];
  try {
    const next = await api(dayPath("/my-day/order"), { method: "PUT", body: { task_ids: order } });
    generation += 1; // an older load must not draw over this
    render(next, { taskId: task.id, action: step < 0 ? "up" : "down" });
    announce($("my-day-status"), `${task.title}: moved to place ${to + 1} of ${order.length}`);
  } catch (error) {
    announce(status, `Could not move it: ${error.message}`);
  }
}

export function initMyDay() {
  $("my-day-refresh").addEventListener("click", () => load());
  $("my-day-retry").addEventListener("click", () => load());
}
