// The settings page's view of the company's ConnectWise connection (made once by an
// admin): where it points, whether it syncs, and the technician's own member mapping —
// with the form that asks for one (a named member, or blank: the member with the
// technician's e-mail). An admin confirms it; then that member's work is on the dashboard.

import { api } from "./api.js";
import { $, announce } from "./dom.js";
import { STATE_LABELS, hostOf } from "./integration-view.js";

let me = null; // the signed-in user (for their e-mail)
let loading = null;
let onLoaded = () => {};

/** What the technician is told about their mapping (null: not mapped yet). */
export function mappingText(mapping) {
  if (!mapping) {
    return "You are not mapped to a ConnectWise member yet, so none of the company's work shows as yours.";
  }
  const member = mapping.member_name && mapping.member_name !== mapping.member_identifier
    ? `${mapping.member_name} (${mapping.member_identifier})`
    : mapping.member_identifier;
  if (mapping.state === "confirmed") {
    return `Confirmed: you are ${member} in ConnectWise. Their open work is on your dashboard.`;
  }
  if (mapping.state === "proposed") {
    return `Proposed: ${member}, found by your e-mail. An admin confirms it before your work is synced.`;
  }
  return `Requested: ${member}. An admin confirms it before your work is synced.`;
}

function hint() {
  return me?.email
    ? `Leave it blank to be matched by your e-mail (${me.email}).`
    : "Your sign-in has no verified e-mail: name your ConnectWise member identifier.";
}

function show(view) {
  const panel = $("company");
  panel.hidden = false;
  const state = STATE_LABELS.has(view.status) ? view.status : "error";
  const pill = $("company-state");
  pill.className = `state-pill state-${state}`;
  pill.textContent = STATE_LABELS.get(state);
  const paused = view.status === "paused" ? " · Paused by an admin: nothing syncs until it is resumed." : "";
  $("company-site").textContent = `${hostOf(view.site)} · ${view.company_id}${paused}`;
  const mapping = $("company-mapping");
  mapping.dataset.state = view.mapping?.state || "none";
  mapping.textContent = mappingText(view.mapping);
  $("mapping-request-title").textContent = view.mapping ? "Ask for another member" : "Request your mapping";
  $("mapping-request-hint").textContent = hint();
}

/** Loads and shows the company's connection; hidden when the company has none. */
export function loadCompanyConnection() {
  loading ??= (async () => {
    try {
      const view = await api("/integrations/tenant");
      show(view);
      onLoaded(view);
    } catch (error) {
      if (error.status === 404) {
        $("company").hidden = true;
        onLoaded(null);
      }
      // Anything else: what is shown stays until the next load.
    } finally {
      loading = null;
    }
  })();
  return loading;
}

async function requestMapping(form) {
  const input = form.elements.namedItem("member_identifier");
  const memberIdentifier = input.value.trim();
  const body = memberIdentifier ? { member_identifier: memberIdentifier } : {};
  const mapping = await api("/integrations/tenant/mapping-request", { method: "POST", body });
  form.reset();
  await loadCompanyConnection();
  announce($("mapping-request-feedback"), mapping.state === "confirmed"
    ? `You are ${mapping.member_identifier} in ConnectWise.`
    : `Mapping to ${mapping.member_identifier} requested. An admin confirms it.`);
}

/** `loaded(view)` is told after each load what the company's connection is (null: none). */
export function initCompanyConnection({ loaded }) {
  onLoaded = loaded;
  const form = $("mapping-request-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    $("mapping-request-error").textContent = "";
    announce($("mapping-request-feedback"), "");
    button.disabled = true;
    try {
      await requestMapping(form);
    } catch (error) {
      if (error.status !== 401) $("mapping-request-error").textContent = error.message;
    } finally {
      button.disabled = false;
    }
  });
}

export function setUser(user) {
  me = user;
  $("mapping-request-hint").textContent = hint();
}

export function resetCompanyConnection() {
  me = null;
  $("company").hidden = true;
  $("mapping-request-form").reset();
  $("mapping-request-error").textContent = "";
  $("mapping-request-feedback").textContent = "";
}
