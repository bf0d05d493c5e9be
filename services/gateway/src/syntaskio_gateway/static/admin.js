// The admin console (/admin): every ConnectWise connection of the company with its state,
// who connected it, last and next sync, API budget and sync history; pause, resume, sync
// now, full resync and disconnect; the form that connects the company once; and, below,
// the technicians' member mapping (admin-mappings.js) and the audit log (admin-audit.js).
// What is shown comes from /api/v1/admin, which answers only the company's admins: anyone
// else is told why, in the API's own words. The keys typed into the form are cleared once
// sent.

import { api } from "./api.js";
import { $, announce, el } from "./dom.js";
import {
  METHOD_LABELS, STATE_LABELS, cardParts, historyTable, hostOf, shownState, statItems,
} from "./integration-view.js";
import * as audit from "./admin-audit.js";
import * as mappings from "./admin-mappings.js";
import * as companySettings from "./company-settings.js";

const HISTORY_SIZE = 15;
// The company's connection in these states is in use: no second one is offered.
const IN_USE = new Set(["pending", "active", "paused"]);

const cards = new Map(); // integration id → its card's parts
let connections = [];
let users = [];
let loading = null;
let shown = false; // whether the console is on screen (polls stop when it is not)
let connectOffered = null; // whether "Connect the company" was offered at the last render

/** The company's connection (not a technician's own), unless disconnected. */
function companyConnection() {
  return connections.find((i) => i.scope === "tenant" && i.status !== "disconnected") || null;
}

function nameOf(userId) {
  if (!userId) return null;
  const user = users.find((u) => u.user_id === userId);
  return user?.name || userId;
}

/** Shows the console: connections, mapping and audit log, loaded afresh. */
export async function showConsole() {
  shown = true;
  const ok = await loadConnections();
  if (!ok) return;
  await loadUsers();
  await Promise.all([
    mappings.showMappings(companyConnection(), users),
    companySettings.showSettingsForm(),
    audit.loadAudit({ connections, users }),
  ]);
}

export function hideConsole() {
  shown = false;
}

/** Reloads the connections (the page polls this while the console is on screen). */
export function refreshConnections() {
  if (!shown) return Promise.resolve(false);
  return loadConnections();
}

function refuse(message) {
  $("admin-body").hidden = true;
  $("admin-refused").hidden = false;
  $("admin-refused-text").textContent = message;
  $("admin-refresh").hidden = true;
}

/** Loads and shows the connections; concurrent calls share one request. */
function loadConnections() {
  loading ??= (async () => {
    try {
      const list = await api("/admin/integrations");
      connections = list;
      $("admin-error").textContent = "";
      $("admin-refused").hidden = true;
      $("admin-refresh").hidden = false;
      $("admin-body").hidden = false;
      render(list);
      return true;
    } catch (error) {
      if (error.status === 403) refuse(error.message);
      else if (error.status !== 401) $("admin-error").textContent = `Could not load the connections: ${error.message}`;
      return false;
    } finally {
      loading = null;
    }
  })();
  return loading;
}

async function loadUsers() {
  try {
    users = await api("/admin/users");
  } catch (error) {
    if (error.status !== 401) $("admin-error").textContent = `Could not load the company's users: ${error.message}`;
  }
}

/** After an action: what it changed, shown again (connections, mapping, audit). */
async function afterAction({ mapping = false } = {}) {
  await loadConnections();
  const jobs = [audit.loadAudit({ connections, users })];
  if (mapping) jobs.push(mappings.showMappings(companyConnection(), users));
  await Promise.all(jobs);
}

function render(list) {
  // The company's first, then the technicians' own; disconnected ones last.
  const rank = (i) => Number(i.state === "disconnected") * 2 + Number(i.scope !== "tenant");
  const ordered = [...list].sort((a, b) => rank(a) - rank(b));
  const container = $("admin-connections");
  const seen = new Set();
  ordered.forEach((integration, index) => {
    seen.add(integration.id);
    const card = cards.get(integration.id) || createCard(integration);
    cards.set(integration.id, card);
    updateCard(card, integration);
    if (container.children[index] !== card.li) container.insertBefore(card.li, container.children[index] || null);
  });
  for (const [id, card] of cards) {
    if (!seen.has(id)) {
      card.li.remove();
      cards.delete(id);
    }
  }
  $("admin-connections-empty").hidden = list.length > 0;
  // "Connect the company" while it has no connection in use; unfolded when it has none.
  const company = companyConnection();
  const offered = !company || !IN_USE.has(company.status);
  const connect = $("admin-connect");
  if (offered && connectOffered !== true) connect.open = !company;
  connect.hidden = !offered;
  connectOffered = offered;
}

function createCard(integration) {
  const id = integration.id;
  const titleId = `admin-integration-${id}-title`;
  const card = {
    ...cardParts(integration, titleId, "h3"),
    scope: el("span", { class: "badge badge-scope" }),
  };
  const button = (text, cls, onclick) => el("button", {
    type: "button", class: `${cls} button-small`, "aria-describedby": titleId, onclick,
  }, text);
  card.buttons = {
    pause: button("Pause", "button-secondary", () => act(card, "pause")),
    resume: button("Resume", "button-primary", () => act(card, "resume")),
    sync: button("Sync now", "button-secondary", () => syncNow(card, false)),
    resync: button("Full resync", "button-secondary", () => syncNow(card, true)),
    disconnect: button("Disconnect", "button-danger-quiet", () => confirmDisconnect(card)),
  };
  card.history.append(el("summary", {}, "Sync history"), card.historyBody);
  card.history.addEventListener("toggle", () => {
    if (card.history.open) loadHistory(card);
  });
  const { pause, resume, sync, resync, disconnect } = card.buttons;
  card.li.append(el("article", { class: "card", "aria-labelledby": titleId },
    el("div", { class: "card-head" },
      el("div", { class: "card-title" },
        el("span", { class: "badge badge-connectwise" }, "ConnectWise"),
        card.scope,
        card.title),
      card.pill),
    card.sub,
    card.reason,
    card.stats,
    el("div", { class: "card-actions" }, pause, resume, sync, resync, disconnect),
    card.feedback,
    card.alert,
    card.history));
  return card;
}

function whoText(integration) {
  const method = METHOD_LABELS.get(integration.auth_method) || integration.auth_method;
  if (integration.scope === "tenant") {
    const by = nameOf(integration.connected_by);
    return `Connected by ${by || "an admin"} with ${method}`;
  }
  const member = integration.member_identifier ? ` as ${integration.member_identifier}` : "";
  return `${nameOf(integration.user_id) || "A technician"}'s own connection${member} · ${method}`;
}

function updateCard(card, integration) {
  const before = card.integration;
  card.integration = integration;
  const state = shownState(integration);
  card.li.dataset.state = state;
  card.li.dataset.scope = integration.scope || "personal";
  card.li.className = `integration integration-${state}`;
  card.title.textContent = `${hostOf(integration.site)} · ${integration.company_id}`;
  card.scope.textContent = integration.scope === "tenant" ? "Company" : "Personal";
  card.pill.className = `state-pill state-${state}`;
  card.pill.textContent = STATE_LABELS.get(state);
  card.sub.textContent = whoText(integration);
  const reason = ["expired", "error", "degraded"].includes(state)
    ? integration.state_reason || integration.last_error : null;
  const paused = state === "paused"
    ? "Paused: nothing is synced or written back until it is resumed." : null;
  card.reason.textContent = reason || paused || "";
  card.reason.hidden = !(reason || paused);
  card.stats.replaceChildren(...statItems(integration));
  card.stats.hidden = card.stats.childElementCount === 0;

  const status = integration.status;
  if (before.status !== status) announce(card.feedback, "");
  const { pause, resume, sync, resync, disconnect } = card.buttons;
  pause.hidden = status !== "active";
  resume.hidden = status !== "paused";
  sync.hidden = status !== "active";
  resync.hidden = status !== "active";
  disconnect.hidden = status === "disconnected";
  card.history.hidden = status === "disconnected" || status === "pending";
  const job = integration.sync?.last_job;
  const key = job ? `${job.id} ${job.status}` : "";
  if (card.history.open && before !== integration && key !== card.historyKey) loadHistory(card);
}

function path(card, tail = "") {
  return `/admin/integrations/${encodeURIComponent(card.integration.id)}${tail}`;
}

async function loadHistory(card) {
  const job = card.integration.sync?.last_job;
  card.historyKey = job ? `${job.id} ${job.status}` : "";
  if (!card.historyBody.childElementCount) {
    card.historyBody.replaceChildren(el("p", { class: "muted" }, "Loading…"));
  }
  try {
    const jobs = await api(path(card, `/sync-jobs?limit=${HISTORY_SIZE}`));
    card.historyBody.replaceChildren(historyTable(jobs, card.title.id, { detailed: true }));
  } catch (error) {
    if (error.status === 401) return;
    card.historyKey = null;
    card.historyBody.replaceChildren(
      el("p", { class: "error" }, `Could not load the sync history: ${error.message}`));
  }
}

/** Runs one action of a card's: its button waits, its outcome is said on the card. */
async function running(card, button, failure, action) {
  button.disabled = true;
  card.alert.textContent = "";
  try {
    await action();
  } catch (error) {
    announce(card.feedback, "");
    if (error.status !== 401) card.alert.textContent = `${failure}: ${error.message}`;
  } finally {
    button.disabled = false;
  }
}

const PAUSE_WORDS = {
  pause: { failure: "Could not pause", done: "Paused. Nothing syncs and nothing is written back until it is resumed." },
  resume: { failure: "Could not resume", done: "Resumed. It syncs again now." },
};

async function act(card, action) {
  const words = PAUSE_WORDS[action];
  await running(card, card.buttons[action], words.failure, async () => {
    await api(path(card, `/${action}`), { method: "POST" });
    await afterAction();
    announce(card.feedback, words.done);
    // The button pressed is hidden now; its counterpart takes the focus.
    const next = card.buttons[action === "pause" ? "resume" : "pause"];
    if (!next.hidden) next.focus();
  });
}

async function syncNow(card, resync) {
  const button = card.buttons[resync ? "resync" : "sync"];
  await running(card, button, resync ? "Could not start a full resync" : "Could not start a sync", async () => {
    await api(path(card, `/sync${resync ? "?resync=true" : ""}`), { method: "POST" });
    announce(card.feedback, resync
      ? "Full resync requested: everything assigned is listed again, within the API budget."
      : "Sync requested. It runs as soon as the API budget allows.");
    setTimeout(() => refreshConnections().then(() => {
      if (card.history.open) loadHistory(card);
    }), 1000);
    await audit.loadAudit({ connections, users });
  });
}

let disconnecting = null;
function confirmDisconnect(card) {
  disconnecting = card;
  const integration = card.integration;
  const whose = integration.scope === "tenant"
    ? "every mapped technician's company tasks leave their dashboards"
    : "its tasks leave the technician's dashboard";
  $("admin-disconnect-text").textContent =
    `Syncing with ${hostOf(integration.site)} (${integration.company_id}) stops, the stored `
    + `credentials are deleted and ${whose}. It can be connected again later.`;
  const dialog = $("admin-disconnect-dialog");
  dialog.returnValue = "";
  dialog.showModal();
}

async function disconnect(card) {
  await running(card, card.buttons.disconnect, "Could not disconnect", async () => {
    const integration = card.integration;
    await api(path(card), { method: "DELETE" });
    await afterAction({ mapping: integration.scope === "tenant" });
    announce($("admin-status"),
      `Disconnected ${hostOf(integration.site)} · ${integration.company_id}.`);
  });
  if (!card.li.isConnected || card.buttons.disconnect.hidden) $("admin-connections-title").focus();
}

// ---- connecting the company -------------------------------------------------------------

function field(form, name) {
  return form.elements.namedItem(name).value.trim();
}

async function connectCompany(form) {
  const body = {
    site: field(form, "site"),
    company_id: field(form, "company_id"),
    public_key: field(form, "public_key"),
    private_key: form.elements.namedItem("private_key").value,
  };
  try {
    await api("/admin/integrations/connectwise/api-key", { method: "POST", body });
  } finally {
    // The keys do not stay in the page, whatever the outcome.
    form.elements.namedItem("private_key").value = "";
  }
  form.reset();
  $("admin-connect").open = false;
  await afterAction({ mapping: true });
  announce($("admin-status"), "The company is connected. Map its technicians to their ConnectWise members below.");
}

/** Connects the company through ConnectWise's sign-in (OAuth): off to its consent page,
 * back at the console with `?connectwise=<outcome>`. */
async function connectCompanyWithOAuth(form) {
  const site = form.elements.namedItem("site");
  const company = form.elements.namedItem("company_id");
  if (!site.reportValidity() || !company.reportValidity()) return;
  const started = await api("/admin/integrations/connectwise/oauth/start", {
    method: "POST",
    body: { site: site.value.trim(), company_id: company.value.trim() },
  });
  window.location.assign(started.authorization_url);
}

/** Opens the connect form (after an OAuth attempt that did not connect). */
export function openConnect() {
  $("admin-connect").open = true;
}

export function initAdmin() {
  const form = $("admin-connect-form");
  $("admin-connect-oauth").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    $("admin-connect-error").textContent = "";
    button.disabled = true;
    try {
      await connectCompanyWithOAuth(form);
    } catch (error) {
      if (error.status !== 401) $("admin-connect-error").textContent = error.message;
      button.disabled = false;
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    $("admin-connect-error").textContent = "";
    button.disabled = true;
    try {
      await connectCompany(form);
    } catch (error) {
      if (error.status !== 401) $("admin-connect-error").textContent = error.message;
    } finally {
      button.disabled = false;
    }
  });
  $("admin-disconnect-dialog").addEventListener("close", () => {
    const card = disconnecting;
    disconnecting = null;
    if (card && $("admin-disconnect-dialog").returnValue === "confirm") disconnect(card);
  });
  $("admin-refresh").addEventListener("click", async () => {
    const button = $("admin-refresh");
    button.disabled = true;
    try {
      await showConsole();
    } finally {
      button.disabled = false;
    }
  });
  mappings.initMappings({ changed: () => audit.loadAudit({ connections, users }) });
  companySettings.initCompanySettings({ saved: () => audit.loadAudit({ connections, users }) });
  audit.initAudit();
}

export function resetAdmin() {
  shown = false;
  for (const card of cards.values()) card.li.remove();
  cards.clear();
  connections = [];
  users = [];
  connectOffered = null;
  $("admin-body").hidden = true;
  $("admin-refused").hidden = true;
  $("admin-error").textContent = "";
  $("admin-status").textContent = "";
  mappings.resetMappings();
  audit.resetAudit();
}
