// The dashboard: plain JavaScript, no build step. The session lives in an HttpOnly
// cookie set by the gateway; this script never sees a token. ConnectWise keys exist here
// only while the user types them into the API-key form, which is cleared once sent.
"use strict";

const $ = (id) => document.getElementById(id);
let liveStream = null;
let reloadTimer = null;

// What `?connectwise=<outcome>` (set by the OAuth callback) means, in plain words.
const OAUTH_OUTCOMES = new Map([
  ["connected", { ok: true, text: "ConnectWise is connected. Your tickets will appear shortly." }],
  ["denied", { ok: false, text: "You declined access in ConnectWise. Nothing was connected." }],
  ["expired_state", { ok: false, text: "That sign-in link expired or was already used. Please start again." }],
  ["exchange_failed", { ok: false, text: "ConnectWise did not complete the sign-in. Please try again." }],
]);
const STATUS_LABELS = new Map([
  ["active", "Active"], ["pending", "Pending"], ["error", "Error"], ["expired", "Expired"],
  ["paused", "Paused"], ["disconnected", "Disconnected"],
]);
const AUTH_METHOD_LABELS = new Map([
  ["oauth2", "OAuth"], ["api_key", "API keys"], ["impersonation", "API keys (impersonation)"],
]);

async function api(path, options = {}) {
  const response = await fetch(`/api/v1${path}`, {
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    ...options,
  });
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error(problemText(body) || response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

// A problem document in words; for invalid input, which fields and why (never values).
function problemText(problem) {
  if (!problem) return "";
  const message = problem.detail || problem.title || "";
  if (!Array.isArray(problem.errors) || problem.errors.length === 0) return message;
  const fields = problem.errors.map((e) => {
    const field = Array.isArray(e.loc) && e.loc.length > 1 ? `${e.loc[e.loc.length - 1]}: ` : "";
    return `${field}${e.msg}`;
  });
  return `${message} ${fields.join("; ")}`;
}

function field(form, name) {
  return form.elements.namedItem(name).value.trim();
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

// Links from source data open only if they are web links (never javascript: and the like).
function safeHref(url) {
  try {
    const parsed = new URL(url, window.location.origin);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
  } catch {
    return null;
  }
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
  const href = task.url ? safeHref(task.url) : null;
  const title = href
    ? el("a", { href, target: "_blank", rel: "noopener noreferrer" }, task.title)
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
    const page = await api("/tasks?limit=200");
    const list = $("tasks");
    list.replaceChildren(...page.items.map(renderTask));
    const count = page.items.length;
    $("task-count").textContent = page.next_cursor ? `(${count}+)` : `(${count})`;
    $("tasks-status").textContent = count ? "" :
      "No open tasks. Connect ConnectWise below, or enjoy the quiet.";
  } catch (error) {
    if (error.status === 401) return showLogin();
    $("tasks-status").textContent = `Could not load tasks: ${error.message}`;
  }
}

function memberText(integration) {
  const { member_identifier: identifier, member_name: name } = integration;
  if (identifier && name) return `${name} (${identifier})`;
  return identifier || name || "member not known yet";
}

function renderIntegration(integration) {
  const status = STATUS_LABELS.has(integration.status) ? integration.status : "unknown";
  const titleId = `integration-${integration.id}-title`;
  const actions = el("div", { class: "actions" });
  if (status === "expired" || status === "error") {
    const reconnect = el("button", { type: "button", "aria-describedby": titleId }, "Reconnect");
    reconnect.addEventListener("click", () => openConnect(integration));
    actions.append(reconnect);
  }
  if (status !== "disconnected") {
    const disconnect = el("button",
      { type: "button", class: "secondary", "aria-describedby": titleId }, "Disconnect");
    disconnect.addEventListener("click", () => disconnectIntegration(integration));
    actions.append(disconnect);
  }
  const method = AUTH_METHOD_LABELS.get(integration.auth_method) || integration.auth_method;
  return el("li", {
    class: `integration integration-${status}`,
    "data-integration-id": integration.id,
    "data-status": status,
  },
  el("div", { class: "integration-title" },
    el("span", { class: "badge badge-connectwise" }, "ConnectWise"),
    el("span", { id: titleId },
      `${integration.site} · ${integration.company_id} · ${memberText(integration)}`)),
  el("div", { class: "meta" },
    el("span", { class: `badge integration-status status-${status}` },
      STATUS_LABELS.get(status) || integration.status),
    el("span", {}, `Connected with ${method}`)),
  integration.last_error
    ? el("p", { class: "integration-error" }, `Last error: ${integration.last_error}`)
    : null,
  actions.childElementCount ? actions : null);
}

async function loadIntegrations() {
  try {
    const integrations = await api("/integrations");
    $("integration-list").replaceChildren(...integrations.map(renderIntegration));
    const live = integrations.filter((i) => i.status !== "disconnected");
    $("integrations-status").textContent = live.length ? "" : "Nothing is connected yet.";
    if (live.length === 0) $("connect").open = true;
  } catch (error) {
    if (error.status === 401) return showLogin();
    $("integrations-error").textContent = `Could not load integrations: ${error.message}`;
  }
}

// Open the connect forms, prefilled from an integration when reconnecting one.
function openConnect(integration) {
  const oauth = $("oauth-form");
  const apiKey = $("connect-form");
  for (const form of [oauth, apiKey]) {
    form.elements.namedItem("site").value = integration.site || "";
    form.elements.namedItem("company_id").value = integration.company_id || "";
  }
  const member = integration.member_identifier || "";
  apiKey.elements.namedItem("member").value = integration.auth_method === "oauth2" ? "" : member;
  $("connect").open = true;
  const target = integration.auth_method === "oauth2"
    ? oauth.querySelector("button[type=submit]")
    : apiKey.elements.namedItem("public_key");
  target.scrollIntoView({ block: "center" });
  target.focus();
}

async function disconnectIntegration(integration) {
  const what = `${integration.site} · ${integration.company_id}`;
  const sure = window.confirm(
    `Disconnect ConnectWise (${what})?\n\nSyncing stops, the stored credentials are deleted ` +
    "and its tasks leave your dashboard.");
  if (!sure) return;
  $("integrations-error").textContent = "";
  try {
    await api(`/integrations/${encodeURIComponent(integration.id)}`, { method: "DELETE" });
    $("integrations-status").textContent = `Disconnected ConnectWise (${what}).`;
    await Promise.all([loadIntegrations(), loadTasks()]);
  } catch (error) {
    if (error.status === 401) return showLogin();
    $("integrations-error").textContent = `Could not disconnect: ${error.message}`;
  }
  // The button that had focus is gone with the old list.
  $("integrations-title").focus();
}

async function submitting(form, errorId, action) {
  const button = form.querySelector("button[type=submit]");
  $(errorId).textContent = "";
  button.disabled = true;
  try {
    await action();
  } catch (error) {
    if (error.status === 401) return showLogin();
    $(errorId).textContent = error.message;
  } finally {
    button.disabled = false;
  }
}

async function startOAuth(form) {
  const started = await api("/integrations/connectwise/oauth/start", {
    method: "POST",
    body: JSON.stringify({ site: field(form, "site"), company_id: field(form, "company_id") }),
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
    private_key: field(form, "private_key"),
    impersonate: form.elements.namedItem("impersonate").checked,
  };
  const member = field(form, "member");
  if (member) body.member = member;
  await api("/integrations/connectwise/api-key", { method: "POST", body: JSON.stringify(body) });
  form.reset();
  syncImpersonation(form);
  $("connect").open = false;
  await loadIntegrations();
  $("integrations-status").textContent = "Connected. Your tickets will appear in a moment.";
  setTimeout(loadTasks, 3000);
}

// Impersonation acts as a named member, so the member becomes required with it.
function syncImpersonation(form) {
  form.elements.namedItem("member").required = form.elements.namedItem("impersonate").checked;
}

// Show the outcome the OAuth callback put in the URL, then take it out of the URL.
function takeOAuthOutcome() {
  const url = new URL(window.location.href);
  if (!url.searchParams.has("connectwise")) return null;
  const outcome = url.searchParams.get("connectwise");
  url.searchParams.delete("connectwise");
  history.replaceState(history.state, "", `${url.pathname}${url.search}${url.hash}`);
  const known = OAUTH_OUTCOMES.get(outcome);
  if (!known) return null;
  const banner = $("connectwise-banner");
  banner.classList.add(known.ok ? "banner-ok" : "banner-problem");
  banner.hidden = false;
  // Filled a moment after it is shown, so screen readers announce the status.
  setTimeout(() => { banner.textContent = known.text; }, 100);
  return outcome;
}

function reloadSoon() {
  // A burst of changes (a sync) reloads once.
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(loadTasks, 250);
}

function watchTasks() {
  // Live changes as Server-Sent Events; the browser reconnects by itself and resumes
  // after the last event it saw. `reset`: changes were missed, so load again.
  liveStream?.close();
  liveStream = new EventSource("/api/v1/tasks/stream");
  for (const name of ["task.upserted", "task.deleted", "reset"]) {
    liveStream.addEventListener(name, reloadSoon);
  }
}

function showLogin() {
  liveStream?.close();
  liveStream = null;
  $("login").hidden = false;
  for (const id of ["dashboard", "integrations", "whoami"]) $(id).hidden = true;
}

async function showDashboard(me) {
  $("login").hidden = true;
  for (const id of ["dashboard", "integrations", "whoami"]) $(id).hidden = false;
  $("whoami-name").textContent = `${me.name || me.user_id} · ${me.tenant_id}`;
  watchTasks();
  await Promise.all([loadTasks(), loadIntegrations()]);
}

function focusIntegrations() {
  $("integrations").scrollIntoView({ block: "start" });
  $("integrations-title").focus({ preventScroll: true });
}

async function start() {
  const outcome = takeOAuthOutcome();
  const onSettings = window.location.pathname === "/settings";
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("login-error").textContent = "";
    const form = event.target;
    const body = { user_id: field(form, "user_id"), tenant_id: field(form, "tenant_id") };
    if (field(form, "name")) body.name = field(form, "name");
    try {
      await api("/session/dev-login", { method: "POST", body: JSON.stringify(body) });
      await showDashboard(await api("/me"));
      if (onSettings) focusIntegrations();
    } catch (error) {
      $("login-error").textContent = error.message;
    }
  });
  $("oauth-form").addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(event.target, "oauth-error", () => startOAuth(event.target));
  });
  $("connect-form").addEventListener("submit", (event) => {
    event.preventDefault();
    submitting(event.target, "connect-error", () => connectWithKeys(event.target));
  });
  const keysForm = $("connect-form");
  keysForm.elements.namedItem("impersonate").addEventListener("change",
    () => syncImpersonation(keysForm));
  $("refresh").addEventListener("click", loadTasks);
  $("logout").addEventListener("click", async () => {
    await api("/session/logout", { method: "POST" });
    showLogin();
  });
  let me;
  try {
    me = await api("/me");
  } catch {
    showLogin();
    return;
  }
  await showDashboard(me);
  if (outcome === "connected") setTimeout(loadTasks, 3000);
  else if (outcome) $("connect").open = true;
  if (onSettings || outcome) focusIntegrations();
}

start();
