// Write-back from a task row: complete, add a note, log time. Each change is sent once
// per Idempotency-Key (the same key when the same submission is retried), then followed
// until ConnectWise has it. Completing is optimistic: the row looks closed at once and
// is rolled back if the change fails.

import { writeBack } from "./commands.js";
import { defaultHours } from "./company-settings.js";
import { announce, el } from "./dom.js";
import { timerBox } from "./timers.js";


/**
 * Gives a task row (its `li`, `task`, and the `actions`, `panel`, `feedback` and `alert`
 * elements; `busy` counts actions under way, `completed` is set once closed) its actions.
 * `onSettled(row)` is called when an action is over: the row may have left the list.
 */
export function addActions(row, onSettled) {
  row.onSettled = onSettled;
  row.keys = new Map(); // submission → Idempotency-Key, reused when it is retried
  row.forms = {}; // the note and time forms, made when first opened (drafts survive)
  row.open = null; // which of them is showing
  const titleId = `task-title-${row.task.id}`;
  const button = (text, onclick, extra = {}) => el("button", {
    type: "button", class: "button-secondary button-small", "aria-describedby": titleId, onclick, ...extra,
  }, text);
  row.buttons = {
    complete: button("Complete", () => completeTask(row), { class: "button-secondary button-small action-complete" }),
    note: button("Add note", () => togglePanel(row, "note"), { "aria-expanded": "false", "aria-controls": row.panel.id }),
    time: button("Log time", () => togglePanel(row, "time"), { "aria-expanded": "false", "aria-controls": row.panel.id }),
  };
  row.actions.append(row.buttons.complete, row.buttons.note, row.buttons.time,
    timerBox(row.task.id, `#${row.task.external_id}`));
}

function togglePanel(row, which) {
  const opening = row.open !== which;
  row.open = opening ? which : null;
  for (const name of ["note", "time"]) {
    row.buttons[name].setAttribute("aria-expanded", String(row.open === name));
  }
  if (!opening) {
    row.panel.hidden = true;
    return;
  }
  const form = row.forms[which] || (row.forms[which] = which === "note" ? noteForm(row) : timeForm(row));
  row.panel.replaceChildren(form);
  row.panel.hidden = false;
  form.querySelector("textarea, input").focus();
}

function closePanel(row) {
  if (!row.open) return;
  const button = row.buttons[row.open];
  row.open = null;
  row.panel.hidden = true;
  for (const name of ["note", "time"]) row.buttons[name].setAttribute("aria-expanded", "false");
  if (row.panel.contains(document.activeElement) || document.activeElement === document.body) {
    button.focus();
  }
}

function formActions(submitText, row) {
  return el("div", { class: "form-actions" },
    el("button", { type: "submit", class: "button-primary button-small" }, submitText),
    el("button", { type: "button", class: "button-secondary button-small", onclick: () => closePanel(row) }, "Cancel"));
}

function noteForm(row) {
  const id = row.task.id;
  const form = el("form", { class: "action-form", "aria-label": `Add a note to #${row.task.external_id}` },
    el("label", { for: `note-text-${id}` }, "Note"),
    el("textarea", { id: `note-text-${id}`, name: "text", rows: "3", required: true, maxlength: "4000" }),
    el("label", { class: "checkbox" },
      el("input", { type: "checkbox", name: "internal", checked: true }),
      "Internal note (not visible to the customer)"),
    formActions("Add note", row));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = form.elements.namedItem("text").value.trim();
    if (!text) return;
    const body = { text, internal: form.elements.namedItem("internal").checked };
    submitChange(row, form, { path: "notes", body, saving: "Saving note…", done: "Note added", failure: "Could not add the note" });
  });
  return form;
}

function timeForm(row) {
  const id = row.task.id;
  const form = el("form", { class: "action-form", "aria-label": `Log time on #${row.task.external_id}` },
    el("div", { class: "field-inline" },
      el("label", { for: `time-hours-${id}` }, "Hours"),
      el("input", {
        id: `time-hours-${id}`, name: "hours", type: "number", inputmode: "decimal",
        min: "0.01", max: "24", step: "0.01", required: true, class: "input-hours",
        value: String(defaultHours()),
      })),
    el("label", { for: `time-notes-${id}` }, "Notes ", el("span", { class: "optional" }, "(optional)")),
    el("textarea", { id: `time-notes-${id}`, name: "notes", rows: "2", maxlength: "4000" }),
    formActions("Log time", row));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const hours = Number(form.elements.namedItem("hours").value);
    if (!(hours > 0 && hours <= 24)) return;
    const notes = form.elements.namedItem("notes").value.trim();
    const body = { hours: Math.round(hours * 100) / 100 };
    if (notes) body.notes = notes;
    submitChange(row, form, {
      path: "time-entries", body, saving: "Logging time…",
      done: `Time logged (${body.hours} h)`, failure: "Could not log the time",
    });
  });
  return form;
}

async function submitChange(row, form, { path, body, saving, done, failure }) {
  const submit = form.querySelector("button[type=submit]");
  submit.disabled = true;
  form.setAttribute("aria-busy", "true");
  row.busy += 1;
  row.alert.textContent = "";
  say(row, saving, "progress");
  try {
    const outcome = await writeBack(row.keys, `${path} ${JSON.stringify(body)}`, row.task.id, path, body);
    if (outcome.state === "pending") {
      say(row, "ConnectWise has not confirmed it yet; it will be saved once it does.", "progress");
    } else if (outcome.state === "succeeded") {
      form.reset();
      closePanel(row);
      say(row, done, "done");
    } else {
      say(row, "");
      row.alert.textContent = `${failure}: ${outcome.message}`;
    }
  } finally {
    submit.disabled = false;
    form.removeAttribute("aria-busy");
    settle(row);
  }
}

async function completeTask(row) {
  row.busy += 1;
  row.alert.textContent = "";
  closePanel(row);
  setClosing(row, true);
  say(row, "Closing…", "progress");
  try {
    const outcome = await writeBack(row.keys, "complete", row.task.id, "complete", undefined);
    if (outcome.state === "pending") {
      setClosing(row, false);
      say(row, "ConnectWise has not confirmed it yet; the list updates once it does.", "progress");
    } else if (outcome.state === "succeeded") {
      row.completed = true;
      row.li.classList.remove("is-closing");
      row.li.classList.add("is-completed");
      say(row, "Completed", "done");
    } else {
      setClosing(row, false);
      say(row, "");
      row.alert.textContent = `Could not complete the task: ${outcome.message}`;
    }
  } finally {
    settle(row);
  }
}

function say(row, text, tone = "") {
  row.feedback.dataset.tone = tone;
  announce(row.feedback, text);
}

/** Optimistic: the row looks closed at once; rolled back if the change fails. */
function setClosing(row, closing) {
  row.li.classList.toggle("is-closing", closing);
  for (const button of Object.values(row.buttons)) button.disabled = closing;
  if (closing) row.li.setAttribute("aria-busy", "true");
  else row.li.removeAttribute("aria-busy");
}

/** An action finished: buttons follow the outcome; the list hears of it. */
function settle(row) {
  row.busy -= 1;
  if (row.completed) {
    row.li.removeAttribute("aria-busy");
    for (const button of Object.values(row.buttons)) button.disabled = true;
  }
  row.onSettled(row);
}
