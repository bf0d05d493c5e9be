// The dashboard: the user's tasks with filters, search, sort and paging (all kept in the
// URL so a view can be bookmarked) and live updates; each ticket's write-back actions are
// in task-actions.js.

import { api } from "./api.js";
import { slaWarningMinutes } from "./company-settings.js";
import {
  $, announce, daysFromToday, el, formatDateTime, formatDay, fromNow, parseDate, safeHref,
} from "./dom.js";
import { addActions } from "./task-actions.js";

const PAGE_SIZE = 50;
const MAX_PAGE = 500; // the API's largest page
const SEARCH_DELAY_MS = 350;
const LIVE_DELAY_MS = 300; // a burst of changes (a sync) reloads once…
const LIVE_MAX_DELAY_MS = 1500; // …but a steady stream still shows up

const STATUS_NAMES = new Map([
  ["pending", "Not started"], ["in_progress", "In progress"], ["completed", "Completed"],
]);
const PRIORITY_NAMES = new Map([
  ["urgent", "Urgent"], ["high", "High"], ["medium", "Medium"], ["low", "Low"],
]);
const SOURCE_NAMES = new Map([["connectwise", "ConnectWise"]]);
const KIND_NAMES = new Map([
  ["service_ticket", "Service ticket"], ["project_ticket", "Project ticket"],
  ["project_phase", "Project phase"],
]);
const SLA_NAMES = new Map([
  ["breached", "Breached"], ["at_risk", "Due soon"], ["on_track", "On track"], ["none", "No SLA"],
]);
const SLA_STAGES = new Map([["respond", "Respond"], ["plan", "Plan"], ["resolve", "Resolve"]]);
const SLA_REFRESH_MS = 30_000; // countdowns move on
const DUE_NAMES = new Map([
  ["overdue", "Overdue"], ["today", "Due today"], ["week", "Due this week"], ["none", "No due date"],
]);
// The facets of GET /tasks/facets, in the order the filter bar shows them. `names`: fixed
// values and their words (in this order); the others come with a label from the API.
const FACETS = [
  { name: "source", label: "Source", names: SOURCE_NAMES },
  { name: "status", label: "Status", names: STATUS_NAMES },
  { name: "priority", label: "Priority", names: PRIORITY_NAMES },
  { name: "board", label: "Board", numeric: true },
  { name: "project", label: "Project", numeric: true },
  { name: "company", label: "Company", numeric: true },
  { name: "sla", label: "SLA", names: SLA_NAMES },
];
const SORTS = new Set(["updated", "due", "priority", "sla"]);
// Write-back works on tickets; a project phase has no notes or status to change.
const WRITABLE = new Set(["service_ticket", "project_ticket"]);

// ---- the view: what the user asked to see, mirrored in the URL ----------------------

function emptyView() {
  return {
    q: "",
    sort: "updated",
    due: "",
    facets: Object.fromEntries(FACETS.map((f) => [f.name, []])),
  };
}

let view = emptyView();

/** The view a query string asks for; values the API would refuse are dropped. */
export function readView(search) {
  const params = new URLSearchParams(search);
  const next = emptyView();
  next.q = (params.get("q") || "").slice(0, 200);
  if (SORTS.has(params.get("sort"))) next.sort = params.get("sort");
  if (DUE_NAMES.has(params.get("due"))) next.due = params.get("due");
  for (const facet of FACETS) {
    const valid = facet.numeric ? (v) => /^[1-9]\d{0,15}$/.test(v) : (v) => facet.names.has(v);
    next.facets[facet.name] = [...new Set(params.getAll(facet.name))].filter(valid).slice(0, 50);
  }
  return next;
}

/** The filter parameters (GET /tasks and /tasks/facets share them). */
function filterParams() {
  const params = new URLSearchParams();
  if (view.q.trim()) params.set("q", view.q.trim());
  for (const facet of FACETS) {
    for (const value of view.facets[facet.name]) params.append(facet.name, value);
  }
  if (view.due) params.set("due", view.due);
  if (view.due === "today" || view.due === "week") {
    params.set("tz", Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC");
  }
  params.set("sla_margin", String(slaWarningMinutes())); // what "due soon" means here
  return params;
}

/** The dashboard's query string for the current view ("" when it is the default). */
export function dashboardSearch() {
  const params = new URLSearchParams();
  if (view.q.trim()) params.set("q", view.q.trim());
  for (const facet of FACETS) {
    for (const value of view.facets[facet.name]) params.append(facet.name, value);
  }
  if (view.due) params.set("due", view.due);
  if (view.sort !== "updated") params.set("sort", view.sort);
  const text = params.toString();
  return text ? `?${text}` : "";
}

function filtersActive() {
  return Boolean(view.q.trim() || view.due || FACETS.some((f) => view.facets[f.name].length));
}

function writeUrl(push) {
  if (window.location.pathname !== "/") return;
  const url = `/${dashboardSearch()}`;
  if (url === `${window.location.pathname}${window.location.search}`) return;
  history[push ? "pushState" : "replaceState"]({ view: "tasks" }, "", url);
}

// ---- loading: one job at a time; a new view cancels what the old one was doing --------

let generation = 0; // grows with each view change: older answers are dropped
let controller = null;
let chain = Promise.resolve();
let nextCursor = null;
let shownFromServer = 0;
let loadedOnce = false;
let failed = null; // the last load's error, while it stands
let integrations = null; // the user's integrations, for the empty state
let companyMapping = null; // the user's mapping under the company's connection, if any

function enqueue(job, before = () => {}) {
  const gen = generation;
  const run = chain.then(() => {
    before();
    return gen === generation ? job(gen) : undefined;
  });
  chain = run.catch(() => {});
  return run;
}

function changeView(change, { push = true } = {}) {
  change(view);
  generation += 1;
  controller?.abort();
  writeUrl(push);
  syncControls();
  loadView({ fresh: true });
}

/** Loads the view from the URL (page load, back/forward). */
export function showView(search) {
  view = readView(search);
  generation += 1;
  controller?.abort();
  syncControls();
  loadView({ fresh: true });
}

/** Reloads in place (live updates, refresh): keeps as many tasks as are shown. */
export function reload() {
  return loadView({ fresh: false });
}

let reloadQueued = false;
function loadView({ fresh }) {
  if (!fresh) {
    if (reloadQueued) return chain;
    reloadQueued = true;
  }
  return enqueue(async (gen) => {
    const ctrl = new AbortController();
    controller = ctrl;
    const limit = fresh ? PAGE_SIZE : Math.min(MAX_PAGE, Math.max(PAGE_SIZE, shownFromServer));
    const list = new URLSearchParams(filterParams());
    list.set("sort", view.sort);
    list.set("limit", String(limit));
    setBusy(true, fresh);
    try {
      const [page, facets] = await Promise.all([
        api(`/tasks?${list}`, { signal: ctrl.signal }),
        api(`/tasks/facets?${filterParams()}`, { signal: ctrl.signal }),
      ]);
      if (gen !== generation) return;
      failed = null;
      loadedOnce = true;
      renderFacets(facets);
      renderRows(page.items);
      shownFromServer = page.items.length;
      nextCursor = page.next_cursor;
      renderCount(facets);
      if (fresh) {
        const more = total > rows.size ? ` Showing ${rows.size}.` : "";
        announce($("tasks-status"), rows.size ? `${total} tasks.${more}` : "No tasks to show.");
      }
    } catch (error) {
      if (error.name === "AbortError" || gen !== generation) return;
      failed = error;
    } finally {
      if (controller === ctrl) {
        controller = null;
        if (gen === generation) setBusy(false);
      }
      if (gen === generation) renderStates();
    }
  }, () => { if (!fresh) reloadQueued = false; });
}

function loadMore() {
  const button = $("load-more");
  const hadFocus = document.activeElement === button; // disabling it takes the focus away
  button.disabled = true;
  button.textContent = "Loading…";
  enqueue(async (gen) => {
    if (!nextCursor) return;
    const ctrl = new AbortController();
    controller = ctrl;
    const params = new URLSearchParams(filterParams());
    params.set("sort", view.sort);
    params.set("limit", String(PAGE_SIZE));
    params.set("cursor", nextCursor);
    try {
      const page = await api(`/tasks?${params}`, { signal: ctrl.signal });
      if (gen !== generation) return;
      const firstNew = appendRows(page.items);
      shownFromServer += page.items.length;
      nextCursor = page.next_cursor;
      announce($("tasks-status"), `${page.items.length} more tasks loaded.`);
      // Keyboard users continue where the new tasks start.
      if (firstNew && hadFocus) {
        (firstNew.querySelector(".task-title a") || firstNew.querySelector("button"))?.focus();
      }
    } catch (error) {
      if (error.name === "AbortError" || gen !== generation) return;
      failed = error;
    } finally {
      if (controller === ctrl) controller = null;
    }
  }).finally(() => {
    button.disabled = false;
    button.textContent = "Load more";
    renderStates();
  });
}

let liveTimer = null;
let liveFirst = 0;
/** A task changed (or changes were missed): reload soon, once per burst. */
export function liveChange() {
  const now = Date.now();
  if (!liveTimer) liveFirst = now;
  clearTimeout(liveTimer);
  const wait = Math.max(0, Math.min(LIVE_DELAY_MS, liveFirst + LIVE_MAX_DELAY_MS - now));
  liveTimer = setTimeout(() => {
    liveTimer = null;
    reload();
  }, wait);
}

/** The user's integrations (from the settings view), for the empty and attention states. */
export function setIntegrations(list) {
  integrations = list;
  const attention = list.filter((i) => i.state === "expired" || i.state === "error");
  const box = $("attention");
  if (attention.length) {
    const first = attention[0];
    $("attention-text").textContent = first.state === "expired"
      ? `Your ConnectWise connection (${first.site}) has expired. Reconnect it to keep your tasks up to date.`
      : `Your ConnectWise connection (${first.site}) has a problem: ${first.state_reason || "the last sync failed"}.`;
    box.hidden = false;
  } else {
    box.hidden = true;
  }
  renderStates();
}

/** The company's connection as the user sees it (null: the company has none), so that a
 * technician mapped under it is not asked to connect ConnectWise themselves. */
export function setCompanyConnection(view) {
  companyMapping = view?.status === "disconnected" ? null : view?.mapping || null;
  renderStates();
}

let busyTimer = null;
function setBusy(busy, fresh) {
  const list = $("tasks");
  list.setAttribute("aria-busy", String(busy));
  clearTimeout(busyTimer);
  if (!busy) {
    list.classList.remove("is-updating");
    $("tasks-loading").hidden = true;
    return;
  }
  if (!loadedOnce) {
    $("tasks-loading").hidden = false;
    return;
  }
  // Only a slow reload dims the list; quick ones would just flicker.
  if (fresh) busyTimer = setTimeout(() => list.classList.add("is-updating"), 200);
}

// ---- rows -----------------------------------------------------------------------------

const rows = new Map(); // task id → row (its element, its task, its actions' state)

function renderRows(items) {
  const list = $("tasks");
  const wanted = new Set(items.map((t) => t.id));
  const order = [...list.children];
  const desired = items.map((task) => upsertRow(task).li);
  for (const [id, row] of rows) {
    if (wanted.has(id)) continue;
    if (row.busy) {
      // Still waiting for its action's outcome: stays (where it was) until then.
      row.gone = true;
      desired.splice(Math.max(0, Math.min(order.indexOf(row.li), desired.length)), 0, row.li);
    } else {
      removeRow(row);
    }
  }
  placeInOrder(list, desired);
}

function appendRows(items) {
  const list = $("tasks");
  let first = null;
  for (const task of items) {
    if (rows.has(task.id)) continue; // changed while paging: already shown
    const row = upsertRow(task);
    list.append(row.li);
    first ??= row.li;
  }
  return first;
}

/** Moves only the rows that are out of place, so focus and open forms stay put. */
function placeInOrder(list, desired) {
  desired.forEach((node, index) => {
    const current = list.children[index];
    if (current !== node) list.insertBefore(node, current || null);
  });
  while (list.children.length > desired.length) list.lastElementChild.remove();
}

function removeRow(row) {
  const hadFocus = row.li.contains(document.activeElement);
  const next = row.li.nextElementSibling || row.li.previousElementSibling;
  row.li.remove();
  rows.delete(row.task.id);
  if (hadFocus) {
    const target = next?.querySelector(".task-title a") || $("tasks-title");
    target.focus();
  }
}

function upsertRow(task) {
  let row = rows.get(task.id);
  const json = JSON.stringify(task);
  if (!row) {
    row = createRow(task);
    rows.set(task.id, row);
  } else if (row.json !== json) {
    row.task = task;
    fillSummary(row);
  }
  row.task = task;
  row.json = json;
  row.gone = false;
  row.li.classList.toggle("is-completed", task.status === "completed" || row.completed === true);
  return row;
}

function createRow(task) {
  const id = task.id;
  const li = el("li", {
    class: "task", "data-task-id": id, "data-source-type": task.source_type,
    "data-external-id": task.external_id,
  });
  const row = {
    li,
    task,
    json: "",
    busy: 0,
    gone: false,
    completed: false,
    summary: el("div", { class: "task-summary" }),
    actions: el("div", { class: "task-actions" }),
    feedback: el("p", { class: "task-feedback", role: "status" }),
    alert: el("p", { class: "task-error", role: "alert" }),
    panel: el("div", { class: "task-panel", id: `panel-${id}`, hidden: true }),
  };
  li.append(
    el("div", { class: "task-row" }, row.summary, row.actions),
    row.feedback, row.alert, row.panel);
  fillSummary(row);
  if (WRITABLE.has(task.source_type)) addActions(row, settled);
  return row;
}

/** A row's action is over: if the row left the list meanwhile, it goes now (after a
 * moment to read its outcome). */
function settled(row) {
  if (row.busy > 0 || !row.gone) return;
  setTimeout(() => {
    if (row.gone && row.busy === 0 && rows.get(row.task.id) === row) removeRow(row);
    renderStates();
  }, 2500);
}

function fillSummary(row) {
  const task = row.task;
  const data = task.source_data || {};
  const titleId = `task-title-${task.id}`;
  const href = safeHref(task.url);
  const inSource = href
    ? el("a", { href, target: "_blank", rel: "noopener noreferrer" },
      task.title, el("span", { class: "sr-only" }, " (opens in ConnectWise, new tab)"))
    : el("span", {}, task.title);
  // A ticket opens its detail here; a phase (no detail) opens in ConnectWise.
  const title = WRITABLE.has(task.source_type)
    ? el("a", { href: `/tasks/${encodeURIComponent(task.id)}`, "data-task": task.id }, task.title)
    : inSource;
  const sourceLink = WRITABLE.has(task.source_type) && href
    ? el("a", { class: "task-source-link", href, target: "_blank", rel: "noopener noreferrer" },
      "ConnectWise", el("span", { class: "sr-only" }, ` ticket #${task.external_id} (new tab)`))
    : null;
  const source = SOURCE_NAMES.get(task.source) || task.source;
  row.li.dataset.status = task.status;
  row.summary.replaceChildren(
    el("div", { class: "task-head" },
      el("span", { class: `badge badge-${task.source}` }, source),
      el("span", { class: "task-kind" }, KIND_NAMES.get(task.source_type) || task.source_type),
      el("span", { class: "task-number" },
        el("span", { class: "sr-only" }, "Ticket "), `#${task.external_id}`),
      sourceLink),
    el("h2", { class: "task-title", id: titleId }, title),
    el("dl", { class: "task-meta" }, ...metaItems(task, data)));
}

function meta(term, value, attrs = {}, hideTerm = true) {
  return el("div", { class: "meta-item", "data-meta": term.toLowerCase(), ...attrs },
    el("dt", { class: hideTerm ? "sr-only" : "" }, term), el("dd", {}, value));
}

function metaItems(task, data) {
  const items = [];
  const statusWords = task.source_status || STATUS_NAMES.get(task.status) || task.status;
  items.push(meta("Status", el("span", {
    class: `status-pill status-${task.status}`,
    title: STATUS_NAMES.get(task.status) || task.status,
  }, statusWords)));
  items.push(meta("Priority", el("span", {
    class: `priority priority-${task.priority}`,
    title: task.source_priority || "",
  }, PRIORITY_NAMES.get(task.priority) || task.priority)));
  const due = dueItem(task);
  if (due) items.push(due);
  const sla = slaItem(task);
  if (sla) items.push(sla);
  if (data.company?.name || data.company?.identifier) {
    items.push(meta("Company", data.company.name || data.company.identifier, { class: "meta-item meta-company" }));
  }
  if (task.source_type === "service_ticket") {
    if (data.board?.name) items.push(meta("Board", data.board.name, {}, false));
  } else {
    if (data.project?.name) items.push(meta("Project", data.project.name, {}, false));
    if (task.source_type === "project_ticket" && data.phase?.name) {
      items.push(meta("Phase", data.phase.name, {}, false));
    }
  }
  return items;
}

/** The next SLA target, with a countdown: flagged when it is within the company's
 * margin, marked when it has passed. */
function slaItem(task) {
  const due = parseDate(task.sla?.due_at);
  if (!due || task.status === "completed") return null;
  const span = el("span", { class: "sla", "data-sla-due": task.sla.due_at, "data-sla-stage": task.sla.stage });
  fillSla(span);
  return meta("SLA", span);
}

function fillSla(span) {
  const due = parseDate(span.dataset.slaDue);
  const stage = SLA_STAGES.get(span.dataset.slaStage) || "Respond";
  const left = due - Date.now();
  const state = left < 0 ? "breached" : left < slaWarningMinutes() * 60_000 ? "at_risk" : "on_track";
  span.dataset.state = state;
  span.title = `${stage} by ${formatDateTime(due)}`;
  const words = state === "breached"
    ? `SLA: ${stage.toLowerCase()} overdue, ${fromNow(due)}`
    : `${stage} by ${formatDay(due)} ${due.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })} · ${fromNow(due)}`;
  span.replaceChildren(state === "on_track" ? "" : el("span", { class: "due-icon", "aria-hidden": "true" }, "!"), words);
}

function refreshSlas() {
  for (const span of document.querySelectorAll("#tasks .sla[data-sla-due]")) fillSla(span);
}

function dueItem(task) {
  const due = parseDate(task.due_at);
  if (!due) return null;
  const days = daysFromToday(due);
  const overdue = due < new Date() && task.status !== "completed";
  let text;
  let kind = "due";
  if (overdue) {
    text = `Overdue · ${days === 0 ? "today" : formatDay(due)}`;
    kind = "due due-overdue";
  } else if (days === 0) {
    text = "Due today";
    kind = "due due-soon";
  } else if (days === 1) {
    text = "Due tomorrow";
    kind = "due due-soon";
  } else {
    text = `Due ${formatDay(due)}`;
  }
  return meta("Due", el("span", { class: kind, title: due.toLocaleString() },
    overdue ? el("span", { class: "due-icon", "aria-hidden": "true" }, "!") : null, text));
}

// ---- filter bar ----------------------------------------------------------------------------

const facetParts = new Map(); // facet name → its <details>, count and options

function createFacet(facet) {
  const details = el("details", { class: "facet", "data-facet": facet.name });
  const chosen = el("span", { class: "pill-count", "aria-hidden": "true", hidden: true });
  const chosenWords = el("span", { class: "sr-only" });
  const options = el("div", { class: "facet-options" });
  const legendId = `facet-${facet.name}-legend`;
  details.append(
    el("summary", {}, el("span", {}, facet.label), chosen, chosenWords),
    el("fieldset", { class: "facet-panel", "aria-labelledby": legendId },
      el("legend", { id: legendId, class: "sr-only" }, facet.label),
      options));
  details.addEventListener("toggle", () => {
    if (!details.open) return;
    for (const other of facetParts.values()) {
      if (other.details !== details) other.details.open = false;
    }
  });
  const parts = { details, chosen, chosenWords, options, items: new Map(), facet };
  facetParts.set(facet.name, parts);
  $("facets").append(details);
  return parts;
}

function facetOption(parts, value) {
  const facet = parts.facet;
  const input = el("input", { type: "checkbox", name: facet.name, value: String(value) });
  input.addEventListener("change", () => {
    changeView((v) => {
      const chosen = v.facets[facet.name];
      v.facets[facet.name] = input.checked
        ? [...chosen, String(value)]
        : chosen.filter((c) => c !== String(value));
    });
  });
  const text = el("span", {});
  const label = el("label", { class: "option" }, input, text);
  const item = { label, input, text, name: "" };
  parts.items.set(String(value), item);
  return item;
}

let lastFacets = null;
function renderFacets(facets) {
  lastFacets = facets;
  for (const facet of FACETS) {
    const parts = facetParts.get(facet.name) || createFacet(facet);
    const chosen = view.facets[facet.name];
    const values = new Map();
    for (const found of facets[facet.name] || []) {
      const value = String(found.value);
      const name = facet.names?.get(value) || found.label || value;
      values.set(value, { name, count: found.count });
    }
    for (const value of chosen) {
      // Chosen but matching nothing now: still there, to be unticked.
      if (!values.has(value)) values.set(value, { name: nameOf(facet, value), count: 0 });
    }
    const order = facet.names
      ? [...values.keys()].sort((a, b) => indexIn(facet.names, a) - indexIn(facet.names, b))
      : [...values.keys()].sort((a, b) => values.get(a).name.localeCompare(values.get(b).name));
    const desired = order.map((value) => {
      const item = parts.items.get(value) || facetOption(parts, value);
      const { name, count } = values.get(value);
      item.name = name;
      item.text.textContent = `${name} (${count})`;
      item.input.checked = chosen.includes(value);
      return item.label;
    });
    for (const [value, item] of parts.items) {
      if (!values.has(value)) {
        item.label.remove();
        parts.items.delete(value);
      }
    }
    placeInOrder(parts.options, desired);
    parts.details.hidden = values.size === 0;
    parts.chosen.hidden = chosen.length === 0;
    parts.chosen.textContent = chosen.length ? String(chosen.length) : "";
    parts.chosenWords.textContent = chosen.length ? `, ${chosen.length} selected` : "";
  }
  renderChips();
}

function indexIn(names, value) {
  const index = [...names.keys()].indexOf(value);
  return index === -1 ? names.size : index;
}

function nameOf(facet, value) {
  return facet.names?.get(value)
    || facetParts.get(facet.name)?.items.get(value)?.name
    || `${facet.label} ${value}`;
}

function renderChips() {
  const chips = [];
  const chip = (text, remove) => el("li", {},
    el("button", { type: "button", class: "chip", "aria-label": `Remove filter ${text}`, onclick: remove },
      el("span", {}, text), el("span", { class: "chip-x", "aria-hidden": "true" }, "×")));
  if (view.q.trim()) {
    chips.push(chip(`Search: “${view.q.trim()}”`, () => changeView((v) => { v.q = ""; })));
  }
  if (view.due) {
    chips.push(chip(DUE_NAMES.get(view.due), () => changeView((v) => { v.due = ""; })));
  }
  for (const facet of FACETS) {
    for (const value of view.facets[facet.name]) {
      chips.push(chip(`${facet.label}: ${nameOf(facet, value)}`, () => changeView((v) => {
        v.facets[facet.name] = v.facets[facet.name].filter((c) => c !== value);
      })));
    }
  }
  const hadFocus = $("active-filters").contains(document.activeElement);
  $("active-filters").replaceChildren(...chips);
  $("active-filters-wrap").hidden = chips.length === 0;
  if (hadFocus) ($("active-filters").querySelector("button") || $("q")).focus();
  const count = chips.length;
  $("filters-toggle-count").hidden = count === 0;
  $("filters-toggle-count").textContent = String(count);
}

/** The controls show the view (after a URL change, or a chip removed). */
function syncControls() {
  const q = $("q");
  if (q.value.trim() !== view.q.trim()) q.value = view.q;
  $("sort").value = view.sort;
  $("due").value = view.due;
  for (const parts of facetParts.values()) {
    const chosen = view.facets[parts.facet.name];
    for (const [value, item] of parts.items) item.input.checked = chosen.includes(value);
  }
  if (lastFacets) renderFacets(lastFacets);
  else renderChips();
}

function clearFilters() {
  changeView((v) => {
    const sort = v.sort;
    Object.assign(v, emptyView(), { sort });
  });
  $("q").focus();
}

// ---- counts and states --------------------------------------------------------------------

let total = null;
function renderCount(facets) {
  const chosen = view.facets.source;
  total = (facets.source || [])
    .filter((s) => chosen.length === 0 || chosen.includes(String(s.value)))
    .reduce((sum, s) => sum + s.count, 0);
  $("task-count").textContent = `(${total})`;
}

function renderStates() {
  const shown = rows.size;
  const error = failed;
  $("tasks-error").hidden = !error;
  if (error) {
    $("tasks-error-text").textContent = `Could not load your tasks. ${error.message}`;
  }
  const empty = loadedOnce && shown === 0 && !error;
  $("tasks-empty").hidden = !empty;
  $("load-more").hidden = !nextCursor || shown === 0;
  $("shown-count").textContent = total != null && total > shown ? `Showing ${shown} of ${total}` : "";
  if (!empty) return;
  const connected = Boolean(companyMapping)
    || integrations?.some((i) => i.state !== "disconnected");
  const starting = integrations?.some((i) => i.state === "pending"
    || ((i.state === "active" || i.state === "syncing") && !i.sync?.last_job));
  const showClear = filtersActive();
  let title;
  let text;
  if (!showClear && companyMapping && companyMapping.state !== "confirmed") {
    title = "Your ConnectWise member is not confirmed yet";
    text = "An admin of your company confirms your mapping; then your work appears here.";
  } else if (showClear) {
    title = "No tasks match";
    text = "Nothing assigned to you matches these filters. Try fewer filters or another search.";
  } else if (integrations && !connected) {
    title = "Connect ConnectWise to see your work";
    text = "Your open service tickets and project work appear here once ConnectWise is connected.";
  } else if (starting) {
    title = "Your tasks are on their way";
    text = "The first sync with ConnectWise is running; tickets appear here as they arrive.";
  } else {
    title = "No open tasks";
    text = "Nothing is assigned to you right now.";
  }
  $("tasks-empty-title").textContent = title;
  $("tasks-empty-text").textContent = text;
  $("empty-clear").hidden = !showClear;
  $("empty-connect").hidden = showClear || !integrations || connected;
}

// ---- wiring ------------------------------------------------------------------------------------

export function initTasks() {
  setInterval(refreshSlas, SLA_REFRESH_MS);
  let searchTimer = null;
  const q = $("q");
  q.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      if (q.value.trim() !== view.q.trim()) changeView((v) => { v.q = q.value; }, { push: false });
    }, SEARCH_DELAY_MS);
  });
  $("filter-form").addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(searchTimer);
    if (q.value.trim() !== view.q.trim()) changeView((v) => { v.q = q.value; });
  });
  $("sort").addEventListener("change", (event) => changeView((v) => { v.sort = event.target.value; }));
  $("due").addEventListener("change", (event) => changeView((v) => { v.due = event.target.value; }));
  $("clear-filters").addEventListener("click", clearFilters);
  $("empty-clear").addEventListener("click", clearFilters);
  $("tasks-retry").addEventListener("click", () => {
    failed = null;
    renderStates();
    loadView({ fresh: !loadedOnce });
  });
  $("refresh").addEventListener("click", async () => {
    const button = $("refresh");
    button.disabled = true;
    button.textContent = "Refreshing…";
    failed = null;
    try {
      await (loadedOnce ? reload() : loadView({ fresh: true }));
    } finally {
      button.disabled = false;
      button.textContent = "Refresh";
    }
  });
  $("load-more").addEventListener("click", loadMore);
  const toggle = $("filters-toggle");
  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", String(open));
    $("filter-more").classList.toggle("is-open", open);
  });
  // Facet pop-overs close on Escape (back to their button) and on a click elsewhere.
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    for (const parts of facetParts.values()) {
      if (parts.details.open) {
        parts.details.open = false;
        parts.details.querySelector("summary").focus();
      }
    }
  });
  document.addEventListener("click", (event) => {
    for (const parts of facetParts.values()) {
      if (parts.details.open && !parts.details.contains(event.target)) parts.details.open = false;
    }
  });
}

/** Forgets everything shown (signing out). */
export function resetTasks() {
  generation += 1;
  controller?.abort();
  for (const row of rows.values()) row.li.remove();
  rows.clear();
  loadedOnce = false;
  failed = null;
  nextCursor = null;
  shownFromServer = 0;
  integrations = null;
  companyMapping = null;
}
