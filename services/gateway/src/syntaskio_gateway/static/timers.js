// A timer per task: start, pause, resume, stop (logged as a time entry) or discard. The
// gateway keeps the timers, so they survive a reload; other tabs of this browser hear of
// each change at once (BroadcastChannel) and every tab reads them again when shown.
// A timer shows wherever the page has an element `.timer[data-task-id]` (task rows, the
// ticket's detail): `timerBox(taskId)` makes one; every box is redrawn on each change.

import { api, ApiError, newIdempotencyKey } from "./api.js";
import { announce, el } from "./dom.js";
import { follow, outcomeError } from "./commands.js";

const channel = typeof BroadcastChannel === "function" ? new BroadcastChannel("syntaskio-timers") : null;
let timers = new Map(); // task id → { state, started_at, running_since, elapsed_seconds }
let ticking = null;
const stopKeys = new Map(); // task id → Idempotency-Key of its stop, while it is retried

/** The timers, from the gateway; boxes are redrawn. */
export async function loadTimers() {
  try {
    const list = await api("/timers");
    timers = new Map(list.map((t) => [t.task_id, t]));
  } catch {
    return; // keep what is shown; the next load tries again
  }
  drawAll();
}

export function resetTimers() {
  timers = new Map();
  drawAll();
}

/** A box showing the task's timer and its buttons. */
export function timerBox(taskId, label) {
  const box = el("div", { class: "timer", "data-task-id": taskId, "data-label": label || "" });
  draw(box);
  return box;
}

function elapsedSeconds(timer) {
  const since = timer.running_since ? (Date.now() - Date.parse(timer.running_since)) / 1000 : 0;
  return timer.elapsed_seconds + Math.max(0, since);
}

function clock(seconds) {
  const whole = Math.floor(seconds);
  const h = Math.floor(whole / 3600);
  const m = String(Math.floor((whole % 3600) / 60)).padStart(2, "0");
  const s = String(whole % 60).padStart(2, "0");
  return `${h}:${m}:${s}`;
}

function drawAll() {
  for (const box of document.querySelectorAll(".timer[data-task-id]")) draw(box);
  const running = [...timers.values()].some((t) => t.running_since);
  if (running && !ticking) ticking = setInterval(tick, 1000);
  if (!running && ticking) {
    clearInterval(ticking);
    ticking = null;
  }
}

function tick() {
  for (const node of document.querySelectorAll(".timer [data-timer-clock]")) {
    const timer = timers.get(node.closest(".timer").dataset.taskId);
    if (timer) node.textContent = clock(elapsedSeconds(timer));
  }
}

function draw(box) {
  const taskId = box.dataset.taskId;
  const timer = timers.get(taskId);
  const about = box.dataset.label ? ` (${box.dataset.label})` : "";
  const button = (text, onclick, extra = {}) => el("button", {
    type: "button", class: "button-secondary button-small", onclick, ...extra,
  }, text, el("span", { class: "sr-only" }, about));
  const status = box.querySelector(".timer-status") || el("span", { class: "timer-status", role: "status" });
  if (!timer) {
    box.dataset.state = "off";
    box.replaceChildren(button("Start timer", () => act(box, "running")), status);
    return;
  }
  box.dataset.state = timer.state;
  box.replaceChildren(
    el("span", { class: "timer-clock", "data-timer-clock": "", title: timer.state === "paused" ? "Paused" : "Running" },
      clock(elapsedSeconds(timer))),
    timer.state === "running"
      ? button("Pause", () => act(box, "paused"))
      : button("Resume", () => act(box, "running")),
    button("Stop and log", () => stop(box), { class: "button-primary button-small" }),
    timer.state === "paused" ? button("Discard", () => discard(box)) : null,
    status,
  );
}

function say(box, text) {
  const status = box.querySelector(".timer-status");
  if (status) announce(status, text);
}

function changed(taskId, timer) {
  if (timer) timers.set(taskId, timer);
  else timers.delete(taskId);
  drawAll();
  channel?.postMessage("changed");
}

async function act(box, state) {
  const taskId = box.dataset.taskId;
  try {
    changed(taskId, await api(`/tasks/${encodeURIComponent(taskId)}/timer`, { method: "PUT", body: { state } }));
  } catch (error) {
    say(box, `Timer: ${error.message}`);
  }
}

async function discard(box) {
  const taskId = box.dataset.taskId;
  try {
    await api(`/tasks/${encodeURIComponent(taskId)}/timer`, { method: "DELETE" });
    changed(taskId, null);
  } catch (error) {
    if (error.status === 404) changed(taskId, null);
    else say(box, `Timer: ${error.message}`);
  }
}

async function stop(box) {
  const taskId = box.dataset.taskId;
  if (!stopKeys.has(taskId)) stopKeys.set(taskId, newIdempotencyKey());
  for (const button of box.querySelectorAll("button")) button.disabled = true;
  say(box, "Logging the time…");
  try {
    const accepted = await api(`/tasks/${encodeURIComponent(taskId)}/timer/stop`, {
      method: "POST", headers: { "Idempotency-Key": stopKeys.get(taskId) },
    });
    changed(taskId, null); // stopped: the time is on its way to ConnectWise
    const command = await follow(accepted);
    stopKeys.delete(taskId);
    const shown = document.querySelector(`.timer[data-task-id="${CSS.escape(taskId)}"]`) || box;
    if (command === null) say(shown, "ConnectWise has not confirmed the time yet.");
    else if (command.status === "succeeded") say(shown, "Time logged");
    else say(shown, `Could not log the time: ${outcomeError(command)}`);
  } catch (error) {
    if (!(error instanceof ApiError && error.retryable)) stopKeys.delete(taskId);
    say(box, `Could not stop the timer: ${error.message}`);
    for (const button of box.querySelectorAll("button")) button.disabled = false;
  }
}

export function initTimers() {
  channel?.addEventListener("message", () => loadTimers());
}
