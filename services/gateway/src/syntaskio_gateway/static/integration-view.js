// How a ConnectWise connection is shown, on the settings page and in the admin console:
// its state in words, its sync figures (last and next sync, API budget, webhooks) and its
// sync history. Text only ever goes in as text.

import { el, formatDateTime, formatDuration, fromNow, parseDate } from "./dom.js";

export const STATE_LABELS = new Map([
  ["pending", "Pending"], ["active", "Active"], ["syncing", "Syncing"], ["degraded", "Degraded"],
  ["paused", "Paused"], ["expired", "Expired"], ["error", "Error"], ["disconnected", "Disconnected"],
]);
export const METHOD_LABELS = new Map([
  ["oauth2", "OAuth"], ["api_key", "API keys"], ["impersonation", "API keys (impersonation)"],
]);
const TRIGGER_LABELS = new Map([
  ["scheduled", "Scheduled"], ["manual", "Manual"], ["connected", "First sync"],
  ["webhook", "Webhook"], ["write_back", "Write-back"], ["resumed", "Resumed"],
  ["members_changed", "Members changed"],
]);
const JOB_LABELS = new Map([
  ["running", "Running"], ["succeeded", "Succeeded"], ["deferred", "Deferred"], ["failed", "Failed"],
  ["interrupted", "Interrupted"],
]);

/** The state to show: one of STATE_LABELS (anything unknown shows as an error). */
/** The parts every connection card has (title, state, figures, messages, history), for
 * the settings page and the admin console to add their own to. */
export function cardParts(integration, titleId, titleTag) {
  return {
    integration,
    li: el("li", { class: "integration", "data-integration-id": integration.id }),
    title: el(titleTag, { id: titleId, class: "card-title-text" }),
    pill: el("span", { class: "state-pill" }),
    sub: el("p", { class: "card-sub muted" }),
    reason: el("p", { class: "card-reason" }),
    stats: el("dl", { class: "stats" }),
    feedback: el("p", { class: "card-feedback", role: "status" }),
    alert: el("p", { class: "card-error", role: "alert" }),
    history: el("details", { class: "history" }),
    historyBody: el("div", { class: "table-wrap" }),
    historyKey: null,
  };
}

export function shownState(integration) {
  return STATE_LABELS.has(integration.state) ? integration.state : "error";
}

export function hostOf(site) {
  try {
    return new URL(site.includes("://") ? site : `https://${site}`).host;
  } catch {
    return site;
  }
}

function stat(term, ...value) {
  return el("div", { class: "stat" }, el("dt", {}, term), el("dd", {}, ...value));
}

export function timeEl(date, words) {
  return el("time", { datetime: date.toISOString(), title: formatDateTime(date) }, words);
}

/** Last and next sync, API budget and webhooks, as the items of a `<dl class="stats">`. */
export function statItems(integration) {
  if (integration.state === "disconnected") {
    const when = parseDate(integration.disconnected_at);
    return when ? [stat("Disconnected", timeEl(when, fromNow(when)))] : [];
  }
  const sync = integration.sync;
  if (!sync) {
    const validated = parseDate(integration.last_validated_at);
    return validated ? [stat("Last checked", timeEl(validated, fromNow(validated)))] : [];
  }
  const items = [];
  const job = sync.last_job;
  if (job) {
    const at = parseDate(job.finished_at) || parseDate(job.started_at);
    const outcome = JOB_LABELS.get(job.status) || job.status;
    const detail = job.status === "running"
      ? "running now"
      : `${outcome.toLowerCase()} · ${job.fetched} fetched`;
    items.push(stat("Last sync", timeEl(at, fromNow(at)), el("span", { class: "muted" }, ` · ${detail}`)));
  } else {
    items.push(stat("Last sync", "Not yet"));
  }
  if (integration.status === "paused") {
    items.push(stat("Next sync", "Not until resumed"));
  } else {
    const next = integration.status === "active" ? parseDate(sync.next_sync_at) : null;
    if (next) items.push(stat("Next sync", timeEl(next, next < new Date() ? "due now" : fromNow(next))));
  }
  const budget = sync.budget;
  if (budget) {
    const paused = parseDate(budget.paused_until);
    items.push(stat("API budget",
      el("span", { class: "budget-text" }, `used ${budget.used_last_hour} of ${budget.limit_per_hour} this hour`),
      el("meter", {
        class: "budget-meter", min: "0", max: String(budget.limit_per_hour),
        low: String(Math.round(budget.limit_per_hour * 0.7)),
        high: String(Math.round(budget.limit_per_hour * 0.9)),
        optimum: "0", value: String(budget.used_last_hour),
        "aria-label": "API requests used this hour",
      }),
      paused && paused > new Date()
        ? el("span", { class: "muted" }, ` · paused until ${formatDateTime(paused)}`) : null));
  }
  const hooks = sync.webhooks;
  if (hooks?.enabled) {
    const rejected = Object.values(hooks.rejected || {}).reduce((a, b) => a + b, 0);
    const words = hooks.registered
      ? `Registered · ${hooks.accepted} received${rejected ? `, ${rejected} rejected` : ""}`
      : `Not registered${hooks.error ? ` (${hooks.error})` : ""}`;
    items.push(stat("Webhooks", words));
  }
  return items;
}

/** "Full" when the run listed any entity in full (first sync, full resync), else the
 * incremental run it usually is. */
function listingOf(job) {
  const modes = Object.values(job.modes || {});
  if (modes.length === 0) return "—";
  return modes.includes("full") ? "Full" : "Incremental";
}

/**
 * The sync runs, newest first. `detailed` (the admin console) adds what each run listed
 * and published.
 */
export function historyTable(jobs, titleId, { detailed = false } = {}) {
  if (jobs.length === 0) return el("p", { class: "muted" }, "No syncs yet.");
  const head = detailed
    ? ["Started", "Trigger", "Listing", "Status", "Fetched", "Published", "API requests", "Duration", "Error"]
    : ["Started", "Trigger", "Status", "Fetched", "API requests", "Duration", "Error"];
  return el("table", { class: "history-table", "aria-describedby": titleId },
    el("caption", { class: "sr-only" }, `The last ${jobs.length} syncs, newest first`),
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...jobs.map((job) => {
      const started = parseDate(job.started_at);
      return el("tr", { "data-status": job.status, "data-trigger": job.trigger },
        el("td", {}, started ? timeEl(started, formatDateTime(started)) : "—"),
        el("td", {}, TRIGGER_LABELS.get(job.trigger) || job.trigger),
        detailed ? el("td", { class: "job-listing" }, listingOf(job)) : null,
        el("td", {}, el("span", { class: `job-status job-${job.status}` }, JOB_LABELS.get(job.status) || job.status)),
        el("td", { class: "num" }, String(job.fetched)),
        detailed ? el("td", { class: "num" }, String(job.published)) : null,
        el("td", { class: "num" }, String(job.api_requests)),
        el("td", { class: "num" }, formatDuration(job.duration_ms)),
        el("td", { class: "job-error" }, job.error || ""));
    })));
}
