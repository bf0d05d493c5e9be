// The dashboard: plain JavaScript, no build step. The session lives in an HttpOnly
// cookie set by the gateway; this script never sees a token or a ConnectWise key.
"use strict";

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 15000;
let refreshTimer = null;

async function api(path, options = {}) {
  const response = await fetch(`/api/v1${path}`, {
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    ...options,
  });
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error((body && (body.detail || body.title)) || response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

function formData(form) {
  return Object.fromEntries(new FormData(form).entries());
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

function dueText(dueAt) {
  if (!dueAt) return null;
  const due = new Date(dueAt);
  const overdue = due < new Date();
  return el("span", { class: overdue ? "overdue" : "" },
    `${overdue ? "Overdue · " : "Due "}${due.toLocaleDateString()}`);
}

function renderTask(task) {
  const data = task.source_data || {};
  const title = task.url
    ? el("a", { href: task.url, target: "_blank", rel: "noopener noreferrer" }, task.title)
    : el("span", {}, task.title);
  return el("li", { class: "task", "data-task-id": task.id },
    el("div", { class: "task-title" },
      el("span", { class: "badge badge-connectwise", title: "From ConnectWise" }, "ConnectWise"),
      el("span", { class: "muted" }, `#${task.external_id}`),
      title),
    el("div", { class: "meta" },
      el("span", { class: "badge status" }, task.source_status || task.status),
      el("span", { class: `priority-${task.priority}` }, `Priority: ${task.priority}`),
      dueText(task.due_at),
      data.company ? el("span", {}, data.company.name || data.company.identifier) : null,
      data.board ? el("span", {}, `Board: ${data.board.name}`) : null));
}

async function loadTasks() {
  try {
    const page = await api("/tasks");
    const list = $("tasks");
    list.replaceChildren(...page.items.map(renderTask));
    $("task-count").textContent = `(${page.count})`;
    $("tasks-status").textContent = page.count ? "" :
      "No open tasks. Connect ConnectWise below, or enjoy the quiet.";
  } catch (error) {
    if (error.status === 401) return showLogin();
    $("tasks-status").textContent = `Could not load tasks: ${error.message}`;
  }
}

async function loadIntegrations() {
  try {
    const integrations = await api("/integrations");
    $("integration-list").replaceChildren(...integrations.map((i) =>
      el("li", {}, el("span", { class: "badge badge-connectwise" }, "ConnectWise"), " ",
        `${i.site} · ${i.company_id} · member ${i.member_identifier} · `,
        el("strong", {}, i.status), i.last_error ? ` — ${i.last_error}` : "")));
    $("connect").open = integrations.length === 0;
  } catch (error) {
    $("integration-list").replaceChildren(el("li", { class: "error" }, error.message));
  }
}

function showLogin() {
  clearInterval(refreshTimer);
  $("login").hidden = false;
  for (const id of ["dashboard", "integrations", "whoami"]) $(id).hidden = true;
}

async function showDashboard(me) {
  $("login").hidden = true;
  for (const id of ["dashboard", "integrations", "whoami"]) $(id).hidden = false;
  $("whoami-name").textContent = `${me.name || me.user_id} · ${me.tenant_id}`;
  await Promise.all([loadTasks(), loadIntegrations()]);
  clearInterval(refreshTimer);
  refreshTimer = setInterval(loadTasks, REFRESH_MS);
}

async function start() {
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("login-error").textContent = "";
    try {
      await api("/session/dev-login", { method: "POST", body: JSON.stringify(formData(event.target)) });
      await showDashboard(await api("/me"));
    } catch (error) {
      $("login-error").textContent = error.message;
    }
  });
  $("connect-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("connect-error").textContent = "";
    try {
      await api("/integrations/connectwise/api-key",
        { method: "POST", body: JSON.stringify(formData(event.target)) });
      event.target.reset();
      await loadIntegrations();
      $("tasks-status").textContent = "Connected. Your tickets will appear in a moment.";
      setTimeout(loadTasks, 3000);
    } catch (error) {
      $("connect-error").textContent = error.message;
    }
  });
  $("refresh").addEventListener("click", loadTasks);
  $("logout").addEventListener("click", async () => {
    await api("/session/logout", { method: "POST" });
    showLogin();
  });
  try {
    await showDashboard(await api("/me"));
  } catch {
    showLogin();
  }
}

start();
