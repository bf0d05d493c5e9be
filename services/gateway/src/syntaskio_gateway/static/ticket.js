// A ticket's detail (`/tasks/{id}`): what ConnectWise holds on one of the user's
// tickets — description, notes, time, contact, schedule — read through the connector and
// kept fresh while it is open (the live stream names the task when it changes).
// Everything from ConnectWise is put in the page as text; only web links in it become
// links, and those open in a new tab without the page's context.

import { api } from "./api.js";
import { defaultHours, logChangeStatus } from "./company-settings.js";
import { $, announce, el, formatDateTime, parseDate, safeHref } from "./dom.js";
import { writeBack } from "./commands.js";
import { timerBox } from "./timers.js";

const PATH = /^\/tasks\/([0-9a-f-]{36})$/;
const LIVE_DELAY_MS = 500;
const WEB_LINK = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/gi;
const KIND_NAMES = new Map([["service_ticket", "Service ticket"], ["project_ticket", "Project ticket"]]);

let shownId = null; // the task whose detail is on screen
let shown = null; // its detail
let controller = null;
let liveTimer = null;
let busy = 0; // changes under way: live reloads wait for them (each reloads when over)
const keys = new Map(); // submission → Idempotency-Key, reused while it is retried

/** The task id a path opens (`/tasks/{id}`), or null. */
export function taskIdOf(path) {
  return PATH.exec(path)?.[1] || null;
}

export function pathOf(taskId) {
  return `/tasks/${encodeURIComponent(taskId)}`;
}

/** Opens a task's detail (the view is already showing). */
export function showTicket(taskId) {
  if (taskId !== shownId) {
    keys.clear();
    for (const id of ["status-select", "log-work-type", "log-status"]) $(id).replaceChildren();
    $("log-form").reset();
    $("log-hours").value = String(defaultHours());
    say("");
    $("ticket-alert").textContent = "";
  }
  shownId = taskId;
  shown = null;
  $("ticket-body").hidden = true;
  $("ticket-error").hidden = true;
  $("ticket-loading").hidden = false;
  return load({ quiet: false });
}

export function hideTicket() {
  shownId = null;
  controller?.abort();
  clearTimeout(liveTimer);
}

/** A live change: the open ticket is read again when it is the one that changed. */
export function liveChange(name, data) {
  if (!shownId) return;
  const changedId = name === "task.upserted" ? data?.task?.id : data?.id;
  if (name !== "reset" && changedId !== shownId) return;
  clearTimeout(liveTimer);
  liveTimer = setTimeout(() => load({ quiet: true }), LIVE_DELAY_MS);
}

async function load({ quiet }) {
  if (quiet && busy > 0) return; // would show the ticket as it was before the change
  const taskId = shownId;
  controller?.abort();
  const ctrl = new AbortController();
  controller = ctrl;
  try {
    const detail = await api(`/tasks/${encodeURIComponent(taskId)}/detail`, { signal: ctrl.signal });
    if (taskId !== shownId) return;
    shown = detail;
    render(detail);
    $("ticket-error").hidden = true;
  } catch (error) {
    if (error.name === "AbortError" || taskId !== shownId) return;
    // Keep what is shown (the next change retries), unless the ticket left the dashboard.
    if (quiet && !$("ticket-body").hidden && error.status !== 404) return;
    $("ticket-error-text").textContent = error.status === 404
      ? "This ticket is not on your dashboard (any more)."
      : `The ticket could not be loaded. ${error.message}`;
    $("ticket-body").hidden = true;
    $("ticket-error").hidden = false;
  } finally {
    if (controller === ctrl) controller = null;
    if (taskId === shownId) $("ticket-loading").hidden = true;
  }
}

/** Text with its web links as links; never HTML. */
export function textWithLinks(text) {
  const parts = [];
  let at = 0;
  for (const match of String(text).matchAll(WEB_LINK)) {
    const href = safeHref(match[0]);
    if (!href) continue;
    parts.push(String(text).slice(at, match.index));
    parts.push(el("a", { href, target: "_blank", rel: "noopener noreferrer nofollow" }, match[0]));
    at = match.index + match[0].length;
  }
  parts.push(String(text).slice(at));
  return parts;
}

function when(value) {
  const date = parseDate(value);
  return date ? el("time", { datetime: value }, formatDateTime(date)) : null;
}

function hours(value) {
  return value == null ? "—" : `${Math.round(value * 100) / 100} h`;
}

function fact(term, ...value) {
  if (value.every((v) => v == null || v === "")) return null;
  return el("div", { class: "fact" }, el("dt", {}, term), el("dd", {}, ...value));
}

const SLA_STEPS = [["respond_by", "respond"], ["plan_by", "plan"], ["resolve_by", "resolve"]];

function slaFact(sla) {
  if (!sla) return null;
  const steps = SLA_STEPS.filter(([key]) => sla[key]).map(([key, stage]) => el("span", {
    class: stage === sla.stage ? "sla-step is-next" : "sla-step",
  }, `${stage[0].toUpperCase()}${stage.slice(1)} by `, when(sla[key])));
  const verdict = sla.in_sla === false ? el("span", { class: "note-flag note-internal" }, "Out of SLA") : null;
  return fact(sla.name ? `SLA (${sla.name})` : "SLA", el("span", { class: "sla-steps" }, ...steps), verdict);
}

function contactFacts(contact) {
  if (!contact) return null;
  const phone = contact.phone
    ? el("a", { href: `tel:${contact.phone.replace(/[^0-9+]/g, "")}` }, contact.phone)
    : null;
  const email = contact.email && /^[^\s@<>]+@[^\s@<>]+$/.test(contact.email)
    ? el("a", { href: `mailto:${contact.email}` }, contact.email)
    : contact.email;
  const href = safeHref(contact.url);
  const name = href
    ? el("a", { href, target: "_blank", rel: "noopener noreferrer" }, contact.name || "Contact",
      el("span", { class: "sr-only" }, " (opens in ConnectWise, new tab)"))
    : contact.name;
  return fact("Contact", el("span", { class: "contact" },
    name, phone ? el("span", {}, " · ", phone) : null, email ? el("span", {}, " · ", email) : null));
}

function noteFlags(note) {
  const flags = [];
  if (note.discussion) flags.push(["discussion", "Discussion"]);
  if (note.internal) flags.push(["internal", "Internal"]);
  if (note.resolution) flags.push(["resolution", "Resolution"]);
  return flags.map(([kind, label]) => el("span", { class: `note-flag note-${kind}` }, label));
}

function render(detail) {
  const kind = KIND_NAMES.get(detail.source_type) || detail.source_type;
  const href = safeHref(detail.url);
  $("ticket-kind").textContent = kind;
  $("ticket-number").textContent = `#${detail.ticket_id}`;
  $("ticket-title").textContent = detail.summary;
  $("ticket-found").hidden = detail.on_dashboard !== false;
  const link = $("ticket-link");
  link.hidden = !href;
  if (href) link.href = href;
  const status = detail.status;
  $("ticket-status").replaceChildren(status
    ? el("span", { class: `status-pill ${status.closed ? "status-completed" : "status-in_progress"}` }, status.name)
    : "");
  const type = [detail.type, detail.sub_type, detail.item].filter(Boolean).join(" / ");
  $("ticket-facts").replaceChildren(...[
    fact("Company", detail.company),
    contactFacts(detail.contact),
    fact("Site", detail.site),
    fact(detail.project ? "Project" : "Board", detail.project || detail.board),
    fact("Phase", detail.phase),
    fact("Priority", detail.priority),
    fact("Type", type || null),
    fact("Owner", detail.owner),
    fact("Resources", detail.resources.join(", ")),
    fact("Required by", when(detail.required_date)),
    slaFact(detail.sla),
    fact("Hours", `${hours(detail.actual_hours)} of ${hours(detail.budget_hours)} budgeted`),
  ].filter(Boolean));

  $("ticket-description").replaceChildren(...(detail.description
    ? textWithLinks(detail.description)
    : [el("span", { class: "muted" }, "No description.")]));

  $("ticket-notes-count").textContent = detail.notes.length ? `(${detail.notes.length})` : "";
  $("ticket-notes").replaceChildren(...detail.notes.map((note) => el("li", {
    class: "note", "data-note-id": String(note.id),
  },
  el("div", { class: "note-head" },
    el("span", { class: "note-author" }, note.author || "Someone"), when(note.created_at), ...noteFlags(note)),
  el("p", { class: "note-text" }, ...textWithLinks(note.text)))));
  $("ticket-notes-empty").hidden = detail.notes.length > 0;

  const total = detail.time_entries.reduce((sum, e) => sum + (e.hours || 0), 0);
  $("ticket-time-total").textContent = detail.time_entries.length ? `(${hours(total)})` : "";
  $("ticket-time").replaceChildren(...detail.time_entries.map((entry) => el("tr", {
    "data-time-entry-id": String(entry.id),
  },
  el("td", {}, when(entry.started_at)),
  el("td", {}, entry.member || ""),
  el("td", { class: "number" }, hours(entry.hours)),
  el("td", {}, entry.work_type || "", entry.billable_option ? ` · ${entry.billable_option}` : ""),
  el("td", { class: "time-notes" }, ...textWithLinks(entry.notes || "")))));
  $("ticket-time-table").hidden = detail.time_entries.length === 0;
  $("ticket-time-empty").hidden = detail.time_entries.length > 0;

  $("ticket-schedule").replaceChildren(...detail.schedule_entries.map((entry) => el("li", {
    class: entry.mine ? "schedule-entry is-mine" : "schedule-entry",
  },
  when(entry.starts_at), entry.ends_at ? " – " : "", when(entry.ends_at),
  ` · ${entry.member_name || entry.member || "Someone"}`,
  entry.mine ? el("span", { class: "note-flag" }, "You") : null,
  entry.done ? el("span", { class: "note-flag" }, "Done") : null)));
  $("ticket-schedule-empty").hidden = detail.schedule_entries.length > 0;

  fillChoices(detail);
  const timer = $("ticket-timer");
  if (timer.firstElementChild?.dataset.taskId !== shownId) {
    timer.replaceChildren(timerBox(shownId, `#${detail.ticket_id}`));
  }
  const fetched = parseDate(detail.fetched_at);
  $("ticket-fetched").textContent = fetched ? `Read from ConnectWise ${formatDateTime(fetched)}` : "";
  $("ticket-body").hidden = false;
  document.title = `Syntaskio — #${detail.ticket_id} ${detail.summary}`;
}

// ---- working on the ticket: status, log a change -------------------------------------

const CLOSES = " (closes the ticket)";

function statusOption(status, selected = false) {
  return el("option", { value: String(status.id), selected }, `${status.name}${status.closed ? CLOSES : ""}`);
}

/** The forms' choices from the detail; what the technician picked stays picked. */
function fillChoices(detail) {
  const statusSelect = $("status-select");
  const picked = statusSelect.value || String(detail.status?.id);
  statusSelect.replaceChildren(...detail.statuses.map((s) => statusOption(s, String(s.id) === picked)));
  $("status-form").hidden = detail.statuses.length === 0;

  const workType = $("log-work-type");
  const pickedType = workType.value;
  workType.replaceChildren(...detail.work_types.map((w) => el("option", {
    value: String(w.id), selected: pickedType ? String(w.id) === pickedType : w.default,
  }, w.billable_option ? `${w.name} · ${billing(w.billable_option)}` : w.name)));
  workType.closest(".field").hidden = detail.work_types.length === 0;

  const logStatus = $("log-status");
  const pickedStatus = logStatus.value;
  const named = logChangeStatus();
  const companys = named
    ? detail.statuses.find((s) => s.name.trim().toLowerCase() === named.trim().toLowerCase())
    : null;
  logStatus.replaceChildren(
    companys
      ? el("option", { value: "" }, `${companys.name} (your company's default)`)
      : el("option", { value: "" }, "Leave it as it is"),
    companys ? el("option", { value: "keep" }, "Leave it as it is") : null,
    ...detail.statuses.filter((s) => s !== companys).map((s) => statusOption(s)),
  );
  if ([...logStatus.options].some((o) => o.value === pickedStatus)) logStatus.value = pickedStatus;
}

const BILLING = new Map([
  ["Billable", "billable"], ["DoNotBill", "do not bill"], ["NoCharge", "no charge"], ["NoDefault", "no default"],
]);

function billing(option) {
  return BILLING.get(option) || option;
}

function say(text, tone = "") {
  const node = $("ticket-feedback");
  node.dataset.tone = tone;
  announce(node, text);
}

/** Sends a change once (per Idempotency-Key), follows it until ConnectWise has it, and
 * reads the ticket again. `before()` shows it at once; `undo()` takes that back if the
 * change fails. True when it succeeded. */
async function change(path, body, { form, saving, done, failure, before = () => {}, undo = () => {} }) {
  const taskId = shownId;
  const submit = form.querySelector("button[type=submit]");
  submit.disabled = true;
  form.setAttribute("aria-busy", "true");
  busy += 1;
  $("ticket-alert").textContent = "";
  before();
  say(saving, "progress");
  try {
    const outcome = await writeBack(keys, `${taskId} ${path} ${JSON.stringify(body)}`, taskId, path, body);
    if (outcome.state === "pending") {
      say("ConnectWise has not confirmed it yet; it shows here once it does.", "progress");
      return false;
    }
    if (outcome.state === "failed") {
      undo();
      say("");
      $("ticket-alert").textContent = `${failure}: ${outcome.message}`;
      return false;
    }
    say(done, "done");
    return true;
  } finally {
    busy -= 1;
    submit.disabled = false;
    form.removeAttribute("aria-busy");
    if (taskId === shownId) load({ quiet: true });
  }
}

function changeStatus(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const statusId = Number($("status-select").value);
  const target = shown?.statuses.find((s) => s.id === statusId);
  if (!target || statusId === shown?.status?.id) return;
  const pill = $("ticket-status");
  const previous = [...pill.childNodes];
  change("status", { status_id: statusId }, {
    form,
    saving: `Moving to ${target.name}…`,
    done: `Status changed to ${target.name}`,
    failure: "Could not change the status",
    // Optimistic: the new status shows at once, and goes back if ConnectWise refuses.
    before: () => pill.replaceChildren(el("span", {
      class: `status-pill is-saving ${target.closed ? "status-completed" : "status-in_progress"}`,
    }, target.name)),
    undo: () => pill.replaceChildren(...previous),
  });
}

async function logChange(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const text = $("log-note").value.trim();
  const hours = Number($("log-hours").value || 0);
  if (!text && !(hours > 0)) {
    $("ticket-alert").textContent = "Write a note or enter the hours worked (or both).";
    return;
  }
  if (hours && !(hours > 0 && hours <= 24)) {
    $("ticket-alert").textContent = "Hours must be more than 0 and at most 24.";
    return;
  }
  const body = {};
  if (text) {
    body.note = {
      text,
      internal: form.elements.namedItem("visibility").value === "internal",
      resolution: form.elements.namedItem("resolution").checked,
    };
  }
  if (hours > 0) {
    body.time_entry = { hours: Math.round(hours * 100) / 100 };
    const workType = $("log-work-type").value;
    if (workType) body.time_entry.work_type_id = Number(workType);
    if ($("log-billable").value) body.time_entry.billable_option = $("log-billable").value;
  }
  const status = $("log-status").value;
  if (status === "keep") body.keep_status = true;
  else if (status) body.status_id = Number(status);
  const ok = await change("log-change", body, {
    form,
    saving: "Logging the change…",
    done: "Change logged",
    failure: "Could not log the change",
  });
  if (ok) {
    $("log-note").value = "";
    $("log-hours").value = String(defaultHours());
    form.elements.namedItem("resolution").checked = false;
  }
}

export function initTicket() {
  $("ticket-retry").addEventListener("click", () => {
    if (shownId) showTicket(shownId);
  });
  $("status-form").addEventListener("submit", changeStatus);
  $("log-form").addEventListener("submit", logChange);
}
