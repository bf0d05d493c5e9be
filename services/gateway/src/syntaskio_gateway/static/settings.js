// Integration settings: each connection's state, sync status, API budget and history;
// what it syncs (project phases) and how often; sync now, reconnect, disconnect; and the forms that
// connect ConnectWise (OAuth or API keys). ConnectWise keys exist here only while typed
// into the form, cleared once sent.

import { api } from "./api.js";
import { $, announce, el, safeHref } from "./dom.js";
import {
  METHOD_LABELS, STATE_LABELS, cardParts, historyTable, hostOf, statItems,
} from "./integration-view.js";

const HISTORY_SIZE = 10;
// What turning project phases on costs, said where it is turned on (docs/connectwise.md).
const PHASES_COST = "Lists the open phases of every project you work on: about one ConnectWise "
  + "request per project each hour. Off: your project tickets already show their project and phase.";
// How often a connection may be synced on its own schedule (minutes; "" = the service's
// default): the bounds the API enforces are 2 to 1,440.
const INTERVALS = [["", "Default"], ["2", "Every 2 minutes"], ["5", "Every 5 minutes"],
  ["15", "Every 15 minutes"], ["30", "Every 30 minutes"], ["60", "Every hour"],
  ["240", "Every 4 hours"], ["1440", "Once a day"]];
const INTERVAL_NOTE = "Changes you make in ConnectWise reach your tasks at once when it can "
  + "call us back; the schedule catches anything else. Each sync uses a few of the "
  + "connection's 1,000 requests an hour.";
// Connections whose options are kept (and can be changed): the others show none.
const WITH_OPTIONS = new Set(["active", "error", "expired"]);
const NOTHING_CONNECTED = "Nothing is connected yet.";

const cards = new Map(); // integration id → its card's parts
const listeners = [];
let loading = null;
let lastList = [];
// Whether the company has a ConnectWise connection (company-connection.js): then a
// technician needs no connection of their own, and the forms are not pressed on them.
let companyConnected = false;
let connectOpenedForThem = false; // the forms were unfolded by the page, not by the user

export function setCompanyConnected(connected) {
  companyConnected = connected;
  $("personal-title").hidden = !connected;
  if (connected && connectOpenedForThem) $("connect").open = false;
  connectOpenedForThem = false;
}

/** Calls `listener(integrations)` after every load (the dashboard's empty state uses it). */
export function onIntegrations(listener) {
  listeners.push(listener);
}

export function integrationsNow() {
  return lastList;
}

/** Loads and shows the integrations; concurrent calls share one request. */
export function loadIntegrations() {
  loading ??= (async () => {
    try {
      const requestedAt = Date.now();
      const list = await api("/integrations");
      lastList = list;
      $("integrations-error").textContent = "";
      render(list, requestedAt);
      for (const listener of listeners) listener(list);
      return list;
    } catch (error) {
      if (error.status !== 401) {
        $("integrations-error").textContent = `Could not load integrations: ${error.message}`;
      }
      return null;
    } finally {
      loading = null;
    }
  })();
  return loading;
}

/** Whether something is under way that the page should follow closely. */
export function settingsBusy() {
  return lastList.some((i) => i.state === "syncing" || i.state === "pending"
    || i.sync?.last_job?.status === "running");
}

function render(list, requestedAt) {
  const ordered = [...list].sort((a, b) =>
    Number(a.state === "disconnected") - Number(b.state === "disconnected"));
  const container = $("integration-list");
  const seen = new Set();
  ordered.forEach((integration, index) => {
    seen.add(integration.id);
    const card = cards.get(integration.id) || createCard(integration);
    cards.set(integration.id, card);
    updateCard(card, integration, requestedAt);
    if (container.children[index] !== card.li) container.insertBefore(card.li, container.children[index] || null);
  });
  for (const [id, card] of cards) {
    if (!seen.has(id)) {
      card.li.remove();
      cards.delete(id);
    }
  }
  const live = list.filter((i) => i.state !== "disconnected");
  const status = $("integrations-status");
  if (live.length === 0 && !status.textContent) status.textContent = NOTHING_CONNECTED;
  if (live.length > 0 && status.textContent === NOTHING_CONNECTED) status.textContent = "";
  if (live.length === 0 && !companyConnected && !$("connect").open) {
    $("connect").open = true;
    connectOpenedForThem = true;
  }
}

function createCard(integration) {
  const id = integration.id;
  const titleId = `integration-${id}-title`;
  const card = {
    ...cardParts(integration, titleId, "h2"),
    phases: el("input", {
      type: "checkbox", id: `integration-${id}-phases`, name: "project_phases",
      "aria-describedby": `integration-${id}-phases-cost`,
    }),
    interval: el("select", {
      id: `integration-${id}-interval`, name: "sync_interval_minutes",
      "aria-describedby": `integration-${id}-interval-note`,
    }, ...INTERVALS.map(([value, label]) => el("option", { value }, label))),
    optionsBox: el("div", { class: "card-options" }),
    optionsNote: el("p", { class: "muted hint" }),
    // Whether a change of options is being saved, and when the last one settled: a
    // listing requested before then may still show the old value.
    savingOptions: false,
    optionsSettledAt: 0,
  };
  card.phases.addEventListener("change", () => saveProjectPhases(card));
  card.interval.addEventListener("change", () => saveInterval(card));
  card.optionsBox.append(
    el("label", { class: "checkbox", for: card.phases.id }, card.phases, "Show project phases as tasks"),
    el("p", { id: `integration-${id}-phases-cost`, class: "muted hint option-cost" }, PHASES_COST),
    el("div", { class: "option-row" },
      el("label", { for: card.interval.id }, "Sync on a schedule"), card.interval),
    el("p", { id: `integration-${id}-interval-note`, class: "muted hint" }, INTERVAL_NOTE),
    card.optionsNote);
  const button = (text, cls, onclick) =>
    el("button", { type: "button", class: `${cls} button-small`, "aria-describedby": titleId, onclick }, text);
  card.buttons = {
    sync: button("Sync now", "button-secondary", () => syncNow(card)),
    reconnect: button("Reconnect", "button-primary", () => reconnect(card.integration)),
    disconnect: button("Disconnect", "button-danger-quiet", () => confirmDisconnect(card)),
  };
  card.history.append(
    el("summary", {}, "Sync history"),
    card.historyBody);
  card.history.addEventListener("toggle", () => {
    if (card.history.open) loadHistory(card);
  });
  card.li.append(el("article", { class: "card", "aria-labelledby": titleId },
    el("div", { class: "card-head" },
      el("div", { class: "card-title" },
        el("span", { class: "badge badge-connectwise" }, "ConnectWise"),
        card.title),
      card.pill),
    card.sub,
    card.reason,
    card.stats,
    card.optionsBox,
    el("div", { class: "card-actions" }, card.buttons.sync, card.buttons.reconnect, card.buttons.disconnect),
    card.feedback,
    card.alert,
    card.history));
  return card;
}

function memberText(integration) {
  const { member_identifier: identifier, member_name: name } = integration;
  if (identifier && name) return `${name} (${identifier})`;
  return identifier || name || "member not known yet";
}

function updateCard(card, integration, requestedAt = Date.now()) {
  const before = card.integration;
  card.integration = integration;
  const state = STATE_LABELS.has(integration.state) ? integration.state : "error";
  card.li.dataset.state = state;
  card.li.className = `integration integration-${state}`;
  card.title.textContent = `${hostOf(integration.site)} · ${integration.company_id}`;
  card.pill.className = `state-pill state-${state}`;
  card.pill.textContent = STATE_LABELS.get(state);
  const method = METHOD_LABELS.get(integration.auth_method) || integration.auth_method;
  card.sub.textContent = `${memberText(integration)} · Connected with ${method}`;
  const reason = ["expired", "error", "degraded", "paused"].includes(state)
    ? integration.state_reason || integration.last_error : null;
  card.reason.textContent = reason || "";
  card.reason.hidden = !reason;
  card.stats.replaceChildren(...statItems(integration));
  card.stats.hidden = card.stats.childElementCount === 0;

  const status = integration.status;
  if (before.status !== status) announce(card.feedback, ""); // said of the old state
  const { sync, reconnect, disconnect } = card.buttons;
  sync.hidden = status !== "active";
  sync.textContent = state === "error" || state === "degraded" ? "Retry sync" : "Sync now";
  reconnect.hidden = !(status === "expired" || status === "error");
  disconnect.hidden = status === "disconnected";
  card.history.hidden = status === "disconnected" || status === "pending";
  updateOptions(card, integration, requestedAt);
  // The history follows along while open, when a sync has started or finished since.
  const job = integration.sync?.last_job;
  const key = job ? `${job.id} ${job.status}` : "";
  if (card.history.open && before !== integration && key !== card.historyKey) loadHistory(card);
}

async function loadHistory(card) {
  const integration = card.integration;
  const job = integration.sync?.last_job;
  card.historyKey = job ? `${job.id} ${job.status}` : "";
  if (!card.historyBody.childElementCount) {
    card.historyBody.replaceChildren(el("p", { class: "muted" }, "Loading…"));
  }
  try {
    const jobs = await api(
      `/integrations/${encodeURIComponent(integration.id)}/sync-jobs?limit=${HISTORY_SIZE}`);
    card.historyBody.replaceChildren(historyTable(jobs, card.title.id));
  } catch (error) {
    if (error.status === 401) return;
    card.historyKey = null;
    card.historyBody.replaceChildren(
      el("p", { class: "error" }, `Could not load the sync history: ${error.message}`));
  }
}

function updateOptions(card, integration, requestedAt) {
  card.optionsBox.hidden = !WITH_OPTIONS.has(integration.status);
  // Not while a change is being saved, nor from a listing that may predate it.
  if (card.savingOptions || requestedAt < card.optionsSettledAt) return;
  // Without the sync status the options shown are only the defaults: not to be changed.
  const known = Boolean(integration.sync);
  card.phases.checked = Boolean(integration.options?.project_phases);
  card.phases.disabled = !known;
  card.interval.value = String(integration.options?.sync_interval_minutes ?? "");
  card.interval.disabled = !known;
  card.optionsNote.textContent = known ? "" : "Sync options cannot be shown right now.";
  card.optionsNote.hidden = known;
}

/** Saves the switch's new state at once (it already shows it); puts it back on failure. */
function saveProjectPhases(card) {
  const wanted = card.phases.checked;
  return saveOption(card, card.phases, { project_phases: wanted }, {
    saving: wanted ? "Turning project phases on…" : "Turning project phases off…",
    saved: (options) => (options.project_phases
      ? "Project phases are on. They appear as tasks after the next sync."
      : "Project phases are off. They leave your tasks after the next sync."),
    failed: "Could not change project phases",
    undo: () => { card.phases.checked = !wanted; },
  });
}

/** Saves the chosen schedule at once; puts the previous one back on failure. */
function saveInterval(card) {
  const before = String(card.integration.options?.sync_interval_minutes ?? "");
  const chosen = card.interval.value;
  const label = card.interval.selectedOptions[0]?.textContent ?? chosen;
  return saveOption(card, card.interval, { sync_interval_minutes: chosen ? Number(chosen) : null }, {
    saving: "Changing the sync schedule…",
    saved: () => (chosen ? `Syncs ${label.toLowerCase()} from now on.` : "Syncs on the default schedule from now on."),
    failed: "Could not change the sync schedule",
    undo: () => { card.interval.value = before; },
  });
}

/** PUTs the connection's options with `change` applied; `input` is disabled meanwhile. */
async function saveOption(card, input, change, messages) {
  card.savingOptions = true;
  input.disabled = true;
  card.alert.textContent = "";
  announce(card.feedback, messages.saving);
  try {
    const saved = await api(`/integrations/${encodeURIComponent(card.integration.id)}/sync-options`, {
      method: "PUT", body: { ...card.integration.options, ...change },
    });
    card.integration = { ...card.integration, options: saved };
    card.phases.checked = Boolean(saved?.project_phases);
    card.interval.value = String(saved?.sync_interval_minutes ?? "");
    announce(card.feedback, messages.saved(saved ?? {}));
    setTimeout(loadIntegrations, 1000);
  } catch (error) {
    messages.undo();
    announce(card.feedback, "");
    if (error.status !== 401) card.alert.textContent = `${messages.failed}: ${error.message}`;
  } finally {
    card.savingOptions = false;
    card.optionsSettledAt = Date.now();
    input.disabled = false;
  }
}

async function syncNow(card) {
  const button = card.buttons.sync;
  button.disabled = true;
  card.alert.textContent = "";
  try {
    await api(`/integrations/${encodeURIComponent(card.integration.id)}/sync`, { method: "POST" });
    announce(card.feedback, "Sync requested. It runs as soon as the API budget allows.");
    setTimeout(loadIntegrations, 1000);
  } catch (error) {
    announce(card.feedback, "");
    if (error.status !== 401) card.alert.textContent = `Could not start a sync: ${error.message}`;
  } finally {
    button.disabled = false;
  }
}

// ---- connecting --------------------------------------------------------------------------

function field(form, name) {
  return form.elements.namedItem(name).value.trim();
}

async function startOAuth(site, companyId) {
  const started = await api("/integrations/connectwise/oauth/start", {
    method: "POST", body: { site, company_id: companyId },
  });
  if (!started || !safeHref(started.authorization_url)) {
    throw new Error("The sign-in address from the server is not a web address.");
  }
  window.location.assign(started.authorization_url);
}

async function connectWithKeys(form) {
  const body = {
    site: field(form, "site"),
    company_id: field(form, "company_id"),
    public_key: field(form, "public_key"),
    private_key: form.elements.namedItem("private_key").value,
    impersonate: form.elements.namedItem("impersonate").checked,
  };
  const member = field(form, "member");
  if (member) body.member = member;
  try {
    await api("/integrations/connectwise/api-key", { method: "POST", body });
  } finally {
    // The keys do not stay in the page, whatever the outcome.
    form.elements.namedItem("private_key").value = "";
  }
  form.reset();
  syncImpersonation(form);
  $("connect").open = false;
  await loadIntegrations();
  announce($("integrations-status"), "Connected. Your tickets will appear in a moment.");
}

function syncImpersonation(form) {
  // Impersonation acts as a named member, so the member becomes required with it.
  form.elements.namedItem("member").required = form.elements.namedItem("impersonate").checked;
}

async function submitting(form, errorId, action) {
  const button = form.querySelector("button[type=submit]");
  $(errorId).textContent = "";
  button.disabled = true;
  try {
    await action();
  } catch (error) {
    if (error.status !== 401) $(errorId).textContent = error.message;
  } finally {
    button.disabled = false;
  }
}

/** Connect again: OAuth ones go straight back through ConnectWise's consent; API-key
 * ones open the key form, prefilled except for the keys. */
async function reconnect(integration) {
  const card = cards.get(integration.id);
  if (integration.auth_method === "oauth2") {
    card.buttons.reconnect.disabled = true;
    card.alert.textContent = "";
    try {
      await startOAuth(integration.site, integration.company_id);
    } catch (error) {
      if (error.status !== 401) card.alert.textContent = `Could not reconnect: ${error.message}`;
      card.buttons.reconnect.disabled = false;
    }
    return;
  }
  openKeyForm(integration);
}

function openKeyForm(integration) {
  const form = $("connect-form");
  form.elements.namedItem("site").value = integration.site || "";
  form.elements.namedItem("company_id").value = integration.company_id || "";
  form.elements.namedItem("member").value = integration.member_identifier || "";
  form.elements.namedItem("impersonate").checked = integration.auth_method === "impersonation";
  syncImpersonation(form);
  $("connect").open = true;
  const target = form.elements.namedItem("public_key");
  target.scrollIntoView({ block: "center" });
  target.focus();
}

let disconnecting = null;
function confirmDisconnect(card) {
  disconnecting = card;
  const integration = card.integration;
  $("disconnect-text").textContent =
    `Syncing with ${hostOf(integration.site)} (${integration.company_id}) stops, the stored `
    + "credentials are deleted and its tasks leave your dashboard. You can connect again later.";
  const dialog = $("disconnect-dialog");
  dialog.returnValue = "";
  dialog.showModal();
}

async function disconnect(card) {
  const integration = card.integration;
  card.alert.textContent = "";
  try {
    await api(`/integrations/${encodeURIComponent(integration.id)}`, { method: "DELETE" });
    $("connectwise-banner").hidden = true; // "connected" is no longer news
    announce($("integrations-status"),
      `Disconnected ConnectWise (${hostOf(integration.site)} · ${integration.company_id}).`);
    await loadIntegrations();
  } catch (error) {
    if (error.status !== 401) card.alert.textContent = `Could not disconnect: ${error.message}`;
  }
  // The button that had focus is hidden now.
  if (!card.li.isConnected || card.buttons.disconnect.hidden) $("integrations-title").focus();
}

export function initSettings() {
  $("oauth-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    submitting(form, "oauth-error", () => startOAuth(field(form, "site"), field(form, "company_id")));
  });
  const keys = $("connect-form");
  keys.addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(keys, "connect-error", () => connectWithKeys(keys));
  });
  keys.elements.namedItem("impersonate").addEventListener("change", () => syncImpersonation(keys));
  $("disconnect-dialog").addEventListener("close", () => {
    const card = disconnecting;
    disconnecting = null;
    if (card && $("disconnect-dialog").returnValue === "confirm") disconnect(card);
  });
}

/** Opens the connect forms (after a failed OAuth attempt, or from the dashboard). */
export function openConnect() {
  $("connect").open = true;
}

export function resetSettings() {
  for (const card of cards.values()) card.li.remove();
  cards.clear();
  lastList = [];
  setCompanyConnected(false);
}
