// The page: plain JavaScript modules, no build step. One page serves five views — the
// dashboard (`/`, its filters in the query string), My day (`/my-day`), a ticket's detail (`/tasks/{id}`),
// the settings (`/settings`, where the OAuth flow comes back to) and, for the company's
// admins, the admin console (`/admin`). The session lives in an HttpOnly cookie set by the gateway; nothing here
// ever sees a token, and nothing is kept in localStorage.

import * as admin from "./admin.js";
import { api, whenUnauthorized } from "./api.js";
import * as company from "./company-connection.js";
import { loadCompanySettings } from "./company-settings.js";
import { $ } from "./dom.js";
import { initFindTicket } from "./find-ticket.js";
import * as notifications from "./notifications.js";
import * as myDay from "./my-day.js";
import * as settings from "./settings.js";
import * as tasks from "./tasks.js";
import * as ticket from "./ticket.js";
import * as timers from "./timers.js";

// What `?connectwise=<outcome>` (set by the OAuth callback) means, in plain words.
const OAUTH_OUTCOMES = new Map([
  ["connected", { ok: true, text: "ConnectWise is connected. Your tickets will appear shortly." }],
  ["denied", { ok: false, text: "You declined access in ConnectWise. Nothing was connected." }],
  ["expired_state", { ok: false, text: "That sign-in link expired or was already used. Please start again." }],
  ["exchange_failed", { ok: false, text: "ConnectWise did not complete the sign-in. Please try again." }],
]);
const COMPANY_CONNECTED =
  "The company is connected. Map its technicians to their ConnectWise members below.";
const LIVE_LABELS = new Map([
  ["connecting", "Connecting…"], ["live", "Live"], ["reconnecting", "Reconnecting…"],
  ["offline", "Offline"],
]);
const SETTINGS_REFRESH_MS = 5000; // while the settings are on screen
const DASHBOARD_REFRESH_MS = 30_000; // for the dashboard's "connection expired" notice
const INTEGRATIONS_AFTER_EVENT_MS = 3000;
// What the gateway takes as `return_to` for the sign-in with the company's account: a
// path of this site (never `//elsewhere`), at most 500 characters.
const LOCAL_PATH = /^\/(?![/\\])[A-Za-z0-9/._~%!$&'()*+,;=:@?-]{0,499}$/;

let signedIn = false;
let currentView = null;
let liveStream = null;
let streamRetry = null;
let pollTimer = null;
let integrationsTimer = null;
let signInMethods = null; // the gateway's answer (a promise), asked for once per page

const VIEWS = {
  tasks: { section: "dashboard", heading: "tasks-title", title: "Syntaskio — My tasks" },
  "my-day": { section: "my-day", heading: "my-day-title", title: "Syntaskio — My day" },
  settings: { section: "integrations", heading: "integrations-title", title: "Syntaskio — Settings" },
  admin: { section: "admin", heading: "admin-title", title: "Syntaskio — Admin console" },
  ticket: { section: "ticket", heading: "ticket-title", title: "Syntaskio — Ticket" },
};
const PATHS = new Map([["/settings", "settings"], ["/admin", "admin"], ["/my-day", "my-day"]]);

function viewOf(path) {
  if (ticket.taskIdOf(path)) return "ticket";
  return PATHS.get(path) || "tasks";
}

function showView(name, { focus = false } = {}) {
  currentView = name;
  for (const [view, { section }] of Object.entries(VIEWS)) $(section).hidden = view !== name;
  document.title = VIEWS[name].title;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (focus) $(VIEWS[name].heading).focus();
  if (name === "settings") {
    settings.loadIntegrations();
    company.loadCompanyConnection();
  }
  if (name === "my-day") myDay.showMyDay();
  else myDay.hideMyDay();
  if (name === "admin") admin.showConsole();
  else admin.hideConsole();
  if (name === "ticket") ticket.showTicket(ticket.taskIdOf(window.location.pathname));
  else ticket.hideTicket();
  schedulePoll();
}

/** A task's detail, at its own URL. */
function openTicket(taskId) {
  const url = ticket.pathOf(taskId);
  if (url !== window.location.pathname) history.pushState({ view: "ticket" }, "", url);
  $("connectwise-banner").hidden = true;
  showView("ticket", { focus: true });
}

function navigate(name) {
  const url = name === "tasks" ? `/${tasks.dashboardSearch()}` : `/${name}`;
  if (url !== `${window.location.pathname}${window.location.search}`) {
    history.pushState({ view: name }, "", url);
  }
  // Messages about what just happened are old news on the other view.
  $("connectwise-banner").hidden = true;
  $("integrations-status").textContent = "";
  $("admin-status").textContent = "";
  showView(name, { focus: true });
}

// Settings and the admin console's connections refresh every few seconds while on
// screen (syncs come and go); the dashboard checks now and then whether a connection
// needs attention.
function schedulePoll() {
  clearTimeout(pollTimer);
  if (!signedIn) return;
  const delay = currentView === "tasks" || currentView === "my-day"
    ? DASHBOARD_REFRESH_MS : SETTINGS_REFRESH_MS;
  pollTimer = setTimeout(async () => {
    if (!document.hidden) await refreshView();
    schedulePoll();
  }, delay);
}

function refreshView() {
  if (currentView === "admin") return admin.refreshConnections();
  myDay.liveChange(); // snoozes run out, and days end (only when it is on screen)
  return Promise.all([settings.loadIntegrations(), company.loadCompanyConnection()]);
}

function integrationsSoon() {
  if (integrationsTimer) return;
  integrationsTimer = setTimeout(() => {
    integrationsTimer = null;
    if (signedIn) settings.loadIntegrations();
  }, INTEGRATIONS_AFTER_EVENT_MS);
}

function setLive(state) {
  const node = $("live-status");
  node.dataset.state = state;
  node.textContent = LIVE_LABELS.get(state);
  node.title = state === "live"
    ? "Changes in ConnectWise show up here as they happen."
    : "Live updates are paused; the list may be out of date.";
}

function watchTasks() {
  // Live changes as Server-Sent Events; the browser reconnects by itself and resumes
  // after the last event it saw. `reset`: changes were missed, so load again.
  liveStream?.close();
  clearTimeout(streamRetry);
  const stream = new EventSource("/api/v1/tasks/stream");
  liveStream = stream;
  setLive("connecting");
  stream.addEventListener("open", () => setLive("live"));
  stream.addEventListener("error", async () => {
    if (stream !== liveStream) return;
    if (stream.readyState !== EventSource.CLOSED) {
      setLive("reconnecting");
      return;
    }
    // Refused for good (no session, or the gateway is away): find out which.
    setLive("offline");
    try {
      await api("/me");
    } catch {
      // 401 shows sign-in; anything else: try again shortly.
    }
    if (signedIn && stream === liveStream) streamRetry = setTimeout(watchTasks, 10_000);
  });
  // Once subscribed, load again: changes made between the first load and the
  // subscription were not sent on this stream. (Reconnects resume where they left off.)
  let subscribed = false;
  stream.addEventListener("ready", () => {
    if (!subscribed) tasks.liveChange();
    subscribed = true;
  });
  for (const name of ["task.upserted", "task.deleted", "reset"]) {
    stream.addEventListener(name, (event) => {
      tasks.liveChange();
      myDay.liveChange();
      notifications.notificationsSoon();
      ticket.liveChange(name, parseEventData(event.data));
      integrationsSoon();
    });
  }
}

function parseEventData(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

// The session's token is short-lived: renewed half way through its life while the page
// is open (a new token of the same session, in the cookie), until the session's end,
// when the gateway answers 401 and the sign-in screen shows.
let renewal = null;
function scheduleRenewal(seconds) {
  clearTimeout(renewal);
  if (!(seconds > 0)) return;
  const wait = Math.max(5, Math.min(seconds / 2, seconds - 60));
  renewal = setTimeout(renewSession, wait * 1000);
}

async function renewSession() {
  try {
    const renewed = await api("/session/renew", { method: "POST" });
    scheduleRenewal(renewed.expires_in);
  } catch (error) {
    if (error.status !== 401) renewal = setTimeout(renewSession, 60_000); // try again
  }
}

// Leaves the signed-in part of the page: no live updates, no polling, nothing shown.
function leaveApp() {
  signedIn = false;
  clearTimeout(renewal);
  liveStream?.close();
  liveStream = null;
  clearTimeout(streamRetry);
  clearTimeout(pollTimer);
  tasks.resetTasks();
  timers.resetTimers();
  myDay.resetMyDay();
  notifications.resetNotifications();
  settings.resetSettings();
  company.resetCompanyConnection();
  admin.resetAdmin();
  for (const id of ["dashboard", "my-day", "integrations", "admin", "nav", "nav-admin", "whoami", "attention"]) {
    $(id).hidden = true;
  }
}

function showLogin() {
  const wasSignedIn = signedIn;
  leaveApp();
  $("login").hidden = false;
  document.title = "Syntaskio — Sign in";
  if (wasSignedIn) $("login-error").textContent = "Your session has ended. Please sign in again.";
  showSignInMethods({ focus: wasSignedIn });
}

// The sign-in with the company's account comes back to the page the person is on.
function companySignInUrl() {
  const here = `${window.location.pathname}${window.location.search}`;
  const returnTo = LOCAL_PATH.test(here) ? here : "/";
  return `/api/v1/session/login?return_to=${encodeURIComponent(returnTo)}`;
}

// The ways to sign in that are on here: the company's account, the development login.
async function showSignInMethods({ focus = false } = {}) {
  for (const id of ["login-company", "login-dev", "login-unavailable"]) $(id).hidden = true;
  $("login-loading").hidden = false;
  let methods = null;
  let problem = "";
  try {
    signInMethods ??= api("/session/methods");
    methods = await signInMethods;
  } catch (error) {
    signInMethods = null; // asked again next time
    problem = `The ways to sign in could not be loaded. ${error.message}`;
  }
  if (signedIn || $("login").hidden) return; // signed in meanwhile
  $("login-loading").hidden = true;
  const company = Boolean(methods?.identity_provider);
  const dev = Boolean(methods?.dev_login);
  if (company) $("login-company-link").href = companySignInUrl();
  $("login-company").hidden = !company;
  $("login-dev").hidden = !dev;
  // One primary action: the company's account when it is offered.
  const devButton = $("login-form").querySelector("button[type=submit]");
  devButton.classList.toggle("button-primary", !company);
  devButton.classList.toggle("button-secondary", company);
  $("login-unavailable").hidden = company || dev;
  $("login-unavailable-text").textContent = problem
    || "Signing in is not set up here yet. Please ask your administrator.";
  $("login-retry").hidden = !problem;
  if (focus) {
    if (company) $("login-company-link").focus();
    else if (dev) $("login-user").focus();
  }
}

/** The identity provider's sign-out page, if the gateway named a web address. */
function providerSignOutUrl(url) {
  return typeof url === "string" && /^https?:\/\//i.test(url) ? url : null;
}

async function signOut() {
  const button = $("logout");
  button.disabled = true;
  let signedOut = null;
  try {
    signedOut = await api("/session/logout", { method: "POST" });
  } catch {
    // The sign-in screen either way (a 401: the session had already ended).
  } finally {
    button.disabled = false;
  }
  const provider = providerSignOutUrl(signedOut?.end_session_url);
  if (provider) {
    // End the provider's session too; it sends the browser back to this site.
    leaveApp();
    window.location.assign(provider);
    return;
  }
  showLogin();
}

function enterApp(me, outcome) {
  signedIn = true;
  $("login").hidden = true;
  $("login-error").textContent = "";
  $("nav").hidden = false;
  $("whoami").hidden = false;
  $("whoami-name").textContent = `${me.name || me.user_id} · ${me.tenant_id}`;
  // The console is linked for admins only (the API refuses anyone else in any case).
  $("nav-admin").hidden = !me.roles?.includes("admin");
  company.setUser(me);
  scheduleRenewal(me.expires_at ? (Date.parse(me.expires_at) - Date.now()) / 1000 : 0);
  loadCompanySettings();
  timers.loadTimers();
  notifications.startNotifications();
  const name = viewOf(window.location.pathname);
  tasks.showView(name === "tasks" ? window.location.search : "");
  watchTasks();
  showView(name);
  if (name === "tasks") {
    settings.loadIntegrations();
    company.loadCompanyConnection();
  }
  if (outcome && outcome !== "connected") {
    if (name === "admin") admin.openConnect();
    else settings.openConnect();
  }
  if (outcome) $("integrations-title").focus({ preventScroll: true });
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
  const forCompany = viewOf(url.pathname) === "admin";
  const text = forCompany && known.ok ? COMPANY_CONNECTED : known.text;
  const banner = $("connectwise-banner");
  banner.classList.add(known.ok ? "banner-ok" : "banner-problem");
  banner.hidden = false;
  $("connectwise-banner-link").hidden = !known.ok || forCompany;
  // Filled a moment after it is shown, so screen readers announce the status.
  setTimeout(() => { $("connectwise-banner-text").textContent = text; }, 100);
  return outcome;
}

function field(form, name) {
  return form.elements.namedItem(name).value.trim();
}

async function start() {
  whenUnauthorized(showLogin);
  tasks.initTasks();
  settings.initSettings();
  settings.onIntegrations((list) => tasks.setIntegrations(list));
  company.initCompanyConnection({
    loaded: (view) => {
      settings.setCompanyConnected(Boolean(view));
      tasks.setCompanyConnection(view);
    },
  });
  admin.initAdmin();
  ticket.initTicket();
  initFindTicket();
  notifications.initNotifications();
  timers.initTimers();
  myDay.initMyDay();

  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const button = form.querySelector("button[type=submit]");
    $("login-error").textContent = "";
    const body = {
      user_id: field(form, "user_id"),
      tenant_id: field(form, "tenant_id"),
      roles: field(form, "role") === "admin" ? ["technician", "admin"] : ["technician"],
    };
    if (field(form, "name")) body.name = field(form, "name");
    if (field(form, "email")) body.email = field(form, "email");
    button.disabled = true;
    try {
      await api("/session/dev-login", { method: "POST", body });
      enterApp(await api("/me"), null);
    } catch (error) {
      $("login-error").textContent = error.message;
    } finally {
      button.disabled = false;
    }
  });
  $("logout").addEventListener("click", signOut);
  $("login-retry").addEventListener("click", () => {
    $("login-error").textContent = "";
    showSignInMethods({ focus: true });
  });
  // In-page links between the views (plain links without JavaScript).
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-view], a[data-task]");
    if (!link || event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    if (!signedIn) return;
    event.preventDefault();
    if (link.dataset.task) {
      openTicket(link.dataset.task);
      return;
    }
    if (link.id === "empty-connect") settings.openConnect();
    navigate(link.dataset.view);
  });
  window.addEventListener("popstate", () => {
    if (!signedIn) return;
    const name = viewOf(window.location.pathname);
    if (name === currentView && name === "ticket") {
      ticket.showTicket(ticket.taskIdOf(window.location.pathname));
      return;
    }
    if (name === "tasks" && window.location.search !== tasks.dashboardSearch()) {
      tasks.showView(window.location.search);
    }
    showView(name);
  });
  document.addEventListener("visibilitychange", () => {
    if (document.hidden || !signedIn) return;
    timers.loadTimers();
    refreshView();
    schedulePoll();
  });

  const outcome = takeOAuthOutcome();
  let me;
  try {
    me = await api("/me");
  } catch {
    showLogin();
    return;
  }
  enterApp(me, outcome);
}

start();
