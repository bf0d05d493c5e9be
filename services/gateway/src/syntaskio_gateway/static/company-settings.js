// The company's settings: read by every technician's page (a time entry's default length)
// and changed by admins in the console (ConnectWise on or off for the company, the default
// time, the status a logged change moves its ticket to).

import { api } from "./api.js";
import { $, announce } from "./dom.js";

const DEFAULTS = {
  connectwise_enabled: true, default_time_minutes: 15, sla_warning_minutes: 60, log_change_status: null,
};
let current = { ...DEFAULTS };

/** Loads the company's settings (the defaults until they arrive, or if they cannot). */
export async function loadCompanySettings() {
  try {
    current = { ...DEFAULTS, ...(await api("/settings")) };
  } catch {
    current = { ...DEFAULTS };
  }
  return current;
}

/** A new time entry's hours, from the company's default minutes (two decimals). */
export function defaultHours() {
  return Math.round((current.default_time_minutes / 60) * 100) / 100;
}

/** How close (minutes) an SLA target is flagged. */
export function slaWarningMinutes() {
  return current.sla_warning_minutes;
}

/** The status a logged change moves its ticket to, by name (null: none). */
export function logChangeStatus() {
  return current.log_change_status;
}

/** Fills the console's settings form with what is stored. */
export async function showSettingsForm() {
  const settings = await loadCompanySettings();
  const form = $("company-settings-form");
  form.elements.namedItem("connectwise_enabled").checked = settings.connectwise_enabled;
  form.elements.namedItem("default_time_minutes").value = String(settings.default_time_minutes);
  form.elements.namedItem("sla_warning_minutes").value = String(settings.sla_warning_minutes);
  form.elements.namedItem("log_change_status").value = settings.log_change_status || "";
  $("company-settings-error").textContent = "";
}

async function save(form) {
  const status = form.elements.namedItem("log_change_status").value.trim();
  const body = {
    connectwise_enabled: form.elements.namedItem("connectwise_enabled").checked,
    default_time_minutes: Number(form.elements.namedItem("default_time_minutes").value),
    sla_warning_minutes: Number(form.elements.namedItem("sla_warning_minutes").value),
    log_change_status: status || null,
  };
  current = { ...DEFAULTS, ...(await api("/admin/settings", { method: "PUT", body })) };
  announce(
    $("company-settings-feedback"),
    current.connectwise_enabled
      ? "Settings saved."
      : "Settings saved. ConnectWise is off: nothing syncs or is written back until it is turned on.",
  );
}

/** Wires the console's settings form; `saved` runs after a change is stored. */
export function initCompanySettings({ saved = () => {} } = {}) {
  const form = $("company-settings-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    $("company-settings-error").textContent = "";
    button.disabled = true;
    try {
      await save(form);
      saved();
    } catch (error) {
      if (error.status !== 401) $("company-settings-error").textContent = error.message;
    } finally {
      button.disabled = false;
    }
  });
}
