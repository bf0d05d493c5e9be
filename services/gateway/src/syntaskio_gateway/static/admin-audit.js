// The admin console's audit log: who connected, leased, paused, mapped or disconnected
// what, and when — newest first, filtered by action, user and connection (the filters are
// the API's query parameters). Details are shown as text, never as markup.

import { api } from "./api.js";
import { $, announce, el, formatDateTime, parseDate } from "./dom.js";
import { hostOf, timeEl } from "./integration-view.js";

const LIMIT = 100;

let connections = [];
let users = [];
const actionsSeen = new Set(); // every action listed so far, for the filter
let request = 0; // only the answer to the newest request is shown

/** "mapping.confirmed" → "Mapping confirmed". */
export function actionWords(action) {
  const words = String(action).replace(/[._:-]+/g, " ").trim();
  return words ? words[0].toUpperCase() + words.slice(1) : "";
}

function userName(userId) {
  if (!userId) return "System";
  return users.find((u) => u.user_id === userId)?.name || userId;
}

function connectionName(integrationId) {
  if (!integrationId) return "—";
  const found = connections.find((i) => i.id === integrationId);
  if (!found) return integrationId;
  const scope = found.scope === "tenant" ? "company" : userName(found.user_id);
  return `${hostOf(found.site)} · ${found.company_id} (${scope})`;
}

// Detail fields said in words; a user id among them is shown by name.
const DETAIL_NAMES = new Map([
  ["mapped_user_id", "for"], ["member_identifier", "member"], ["previous_state", "was"],
]);

/** A record's details as "key: value" text. */
function detailText(detail) {
  return Object.entries(detail || {})
    .filter(([, value]) => value != null && value !== "")
    .map(([key, value]) => {
      const name = DETAIL_NAMES.get(key) || key.replace(/_/g, " ");
      const shown = key === "mapped_user_id" ? userName(value)
        : typeof value === "object" ? JSON.stringify(value) : value;
      return `${name}: ${shown}`;
    })
    .join(" · ");
}

function setOptions(select, options, anyLabel) {
  const current = select.value;
  const known = new Set(options.map(([value]) => value));
  // What is selected stays selectable, even if nothing lists it any more.
  if (current && !known.has(current)) options.push([current, current]);
  select.replaceChildren(el("option", { value: "" }, anyLabel),
    ...options.map(([value, label]) => el("option", { value }, label)));
  select.value = current;
}

function fillFilters() {
  setOptions($("audit-action"),
    [...actionsSeen].sort().map((a) => [a, actionWords(a)]), "Any action");
  setOptions($("audit-user"),
    users.map((u) => [u.user_id, u.name ? `${u.name} (${u.user_id})` : u.user_id]), "Anyone");
  setOptions($("audit-integration"),
    connections.map((i) => [i.id, connectionName(i.id)]), "Any connection");
}

function filters() {
  const params = new URLSearchParams({ limit: String(LIMIT) });
  for (const name of ["action", "user_id", "integration_id"]) {
    const value = $("audit-filters").elements.namedItem(name).value;
    if (value) params.set(name, value);
  }
  return params;
}

/** Loads the log with the filters chosen (`context`: the console's connections and users). */
export async function loadAudit(context = {}) {
  if (context.connections) connections = context.connections;
  if (context.users) users = context.users;
  const mine = ++request;
  const params = filters();
  const wrap = $("audit-wrap");
  wrap.setAttribute("aria-busy", "true");
  try {
    const records = await api(`/admin/audit?${params}`);
    if (mine !== request) return;
    for (const record of records) actionsSeen.add(record.action);
    fillFilters();
    $("audit-error").textContent = "";
    wrap.replaceChildren(table(records, params.size > 1));
    announce($("audit-status"), `${records.length} audit ${records.length === 1 ? "record" : "records"} shown.`);
  } catch (error) {
    if (mine !== request || error.status === 401) return;
    $("audit-error").textContent = `Could not load the audit log: ${error.message}`;
  } finally {
    if (mine === request) wrap.setAttribute("aria-busy", "false");
  }
}

function table(records, filtered) {
  if (records.length === 0) {
    return el("p", { class: "muted empty-note" },
      filtered ? "Nothing in the audit log matches these filters." : "Nothing has happened yet.");
  }
  const head = ["When", "Action", "Who", "Connection", "Details"];
  return el("table", { class: "history-table audit-table", "aria-labelledby": "admin-audit-title" },
    el("caption", { class: "sr-only" }, `The last ${records.length} records, newest first`),
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...records.map((record) => {
      const at = parseDate(record.at);
      return el("tr", { "data-action": record.action },
        el("td", {}, at ? timeEl(at, formatDateTime(at)) : "—"),
        el("td", { class: "audit-action" }, actionWords(record.action)),
        el("td", {}, userName(record.user_id)),
        el("td", {}, connectionName(record.integration_id)),
        el("td", { class: "audit-detail" }, detailText(record.detail)));
    })));
}

export function initAudit() {
  const form = $("audit-filters");
  form.addEventListener("change", () => loadAudit());
  form.addEventListener("submit", (event) => event.preventDefault());
  $("audit-clear").addEventListener("click", () => {
    form.reset();
    loadAudit();
  });
}

export function resetAudit() {
  connections = [];
  users = [];
  actionsSeen.clear();
  request += 1;
  $("audit-filters").reset();
  $("audit-wrap").replaceChildren();
  $("audit-error").textContent = "";
}
