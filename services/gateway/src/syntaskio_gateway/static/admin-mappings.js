// The admin console's member mapping: every technician who has signed in to the company,
// with the ConnectWise member they are under the company's connection — proposed (found
// by e-mail), requested (by the technician) or confirmed (synced). The admin confirms,
// changes or removes a mapping, or has mappings proposed by e-mail. A refusal (a member
// ConnectWise does not have, one already mapped to someone else) is said on its row, in
// the API's words.

import { api } from "./api.js";
import { $, announce, el } from "./dom.js";

const STATE_WORDS = new Map([
  ["proposed", "Proposed"], ["requested", "Requested"], ["confirmed", "Confirmed"],
]);
const STATE_HINTS = new Map([
  ["proposed", "Found by e-mail; not synced until confirmed"],
  ["requested", "Asked for by the technician; not synced until confirmed"],
  ["confirmed", "Synced: this member's work is theirs"],
]);

let integration = null; // the company's connection the mapping is under
let knownUsers = []; // the company's users, as last shown
let shownMappings = []; // the mappings, as last shown
let onChanged = () => {};

/** The rows of the table: every user, with their mapping (or none), by name. */
export function mappingRows(users, mappings) {
  const byUser = new Map(mappings.map((m) => [m.user_id, m]));
  const rows = users.map((user) => ({
    userId: user.user_id,
    name: user.name || byUser.get(user.user_id)?.user_name || user.user_id,
    email: user.email || byUser.get(user.user_id)?.user_email || null,
    mapping: byUser.get(user.user_id) || null,
  }));
  const listed = new Set(users.map((u) => u.user_id));
  for (const mapping of mappings) {
    if (!listed.has(mapping.user_id)) {
      rows.push({
        userId: mapping.user_id,
        name: mapping.user_name || mapping.user_id,
        email: mapping.user_email,
        mapping,
      });
    }
  }
  return rows.sort((a, b) => a.name.localeCompare(b.name) || a.userId.localeCompare(b.userId));
}

function mappingPath(userId = null) {
  const base = `/admin/integrations/${encodeURIComponent(integration.id)}/mappings`;
  return userId == null ? base : `${base}/${encodeURIComponent(userId)}`;
}

/** Shows the mapping under `company` (the company's connection, or null: none yet). */
export async function showMappings(company, users) {
  integration = company;
  knownUsers = users;
  const wrap = $("admin-mapping-wrap");
  $("admin-propose").hidden = !company || company.status !== "active";
  if (!company) {
    wrap.replaceChildren(el("p", { class: "muted empty-note" },
      "Connect the company first: technicians are mapped to the members of its ConnectWise."));
    return;
  }
  try {
    const mappings = await api(mappingPath());
    shownMappings = mappings;
    $("admin-mapping-error").textContent = "";
    const rows = mappingRows(users, mappings);
    wrap.replaceChildren(rows.length ? table(rows) : el("p", { class: "muted empty-note" },
      "Nobody has signed in yet: technicians appear here after their first sign-in."));
  } catch (error) {
    if (error.status !== 401) $("admin-mapping-error").textContent = `Could not load the mapping: ${error.message}`;
  }
}

function table(rows) {
  const head = ["Technician", "Mapping", "ConnectWise member", "Actions"];
  return el("table", { class: "history-table mapping-table", "aria-labelledby": "admin-mapping-title" },
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...rows.map(row)));
}

function row(entry) {
  const { userId, name, email, mapping } = entry;
  const state = mapping?.state || "none";
  const rowId = `mapping-${[...userId].map((c) => c.charCodeAt(0).toString(16)).join("")}`;
  const input = el("input", {
    id: `${rowId}-member`, name: "member_identifier", class: "member-input", maxlength: "30",
    spellcheck: "false", autocomplete: "off", value: mapping?.member_identifier || "",
    "aria-describedby": `${rowId}-error`,
  });
  const error = el("p", { id: `${rowId}-error`, class: "row-error", role: "alert" });
  const parts = { input, error };
  const button = (text, cls, onclick) => el("button", {
    type: "button", class: `${cls} button-small`, "aria-describedby": `${rowId}-name`, onclick,
  }, text);
  const confirm = button("Confirm", "button-primary", () => save(parts, mapping.member_identifier, "confirm"));
  const change = button(mapping ? "Change" : "Map", "button-secondary", () => save(parts, input.value.trim(), "change"));
  const remove = button("Remove", "button-danger-quiet", () => removeMapping(parts, userId, name));
  parts.buttons = [confirm, change, remove];
  parts.userId = userId;
  parts.name = name;
  confirm.hidden = !(state === "proposed" || state === "requested");
  remove.hidden = !mapping;
  // Enter in the field does what "Change" does.
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      change.click();
    }
  });
  const member = mapping?.member_name && mapping.member_name !== mapping.member_identifier
    ? el("span", { class: "muted member-name" }, `in ConnectWise: ${mapping.member_name}`) : null;
  return el("tr", { "data-user-id": userId, "data-state": state },
    el("td", {},
      el("span", { id: `${rowId}-name`, class: "user-name" }, name),
      email || name !== userId ? el("span", { class: "muted user-detail" }, email || userId) : null),
    el("td", {},
      el("span", { class: `mapping-state mapping-${state}`, title: STATE_HINTS.get(state) || "" },
        STATE_WORDS.get(state) || "Not mapped"),
      member),
    el("td", {},
      el("label", { class: "sr-only", for: input.id }, `ConnectWise member of ${name}`),
      input,
      error),
    el("td", {}, el("div", { class: "row-actions" }, confirm, change, remove)));
}

function busy(parts, on) {
  for (const button of parts.buttons) button.disabled = on;
  parts.input.disabled = on;
}

async function save(parts, memberIdentifier, how) {
  parts.error.textContent = "";
  if (!memberIdentifier) {
    parts.error.textContent = "Enter the technician's ConnectWise member identifier.";
    parts.input.focus();
    return;
  }
  busy(parts, true);
  try {
    const saved = await api(mappingPath(parts.userId), {
      method: "PUT", body: { member_identifier: memberIdentifier },
    });
    await showMappings(integration, knownUsers);
    announce($("admin-mapping-feedback"), how === "confirm"
      ? `Confirmed: ${parts.name} is ${saved.member_identifier} in ConnectWise.`
      : `Mapped ${parts.name} to ${saved.member_identifier}.`);
    onChanged();
  } catch (error) {
    busy(parts, false);
    if (error.status !== 401) parts.error.textContent = error.message;
    parts.input.focus();
  }
}

async function removeMapping(parts, userId, name) {
  parts.error.textContent = "";
  busy(parts, true);
  try {
    await api(mappingPath(userId), { method: "DELETE" });
    await showMappings(integration, knownUsers);
    announce($("admin-mapping-feedback"), `Removed ${name}'s mapping.`);
    onChanged();
  } catch (error) {
    busy(parts, false);
    if (error.status !== 401) parts.error.textContent = error.message;
  }
}

async function propose() {
  const button = $("admin-propose");
  $("admin-mapping-error").textContent = "";
  button.disabled = true;
  try {
    const before = new Set(shownMappings.map((m) => m.user_id));
    const proposed = await api(`${mappingPath()}/propose`, { method: "POST" });
    await showMappings(integration, knownUsers);
    const count = proposed.filter((m) => m.state === "proposed" && !before.has(m.user_id)).length;
    announce($("admin-mapping-feedback"), count
      ? `Proposed ${count} ${count === 1 ? "mapping" : "mappings"} by e-mail. Confirm them to start syncing.`
      : "No new mapping found by e-mail.");
    onChanged();
  } catch (error) {
    if (error.status !== 401) $("admin-mapping-error").textContent = `Could not propose mappings: ${error.message}`;
  } finally {
    button.disabled = false;
  }
}

export function initMappings({ changed }) {
  onChanged = changed;
  $("admin-propose").addEventListener("click", propose);
}

export function resetMappings() {
  integration = null;
  knownUsers = [];
  shownMappings = [];
  $("admin-mapping-wrap").replaceChildren();
  $("admin-mapping-feedback").textContent = "";
  $("admin-mapping-error").textContent = "";
}
