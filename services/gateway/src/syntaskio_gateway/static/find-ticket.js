// Find any ticket: search ConnectWise by number or summary words as the user's own
// member (`GET /api/v1/tickets/search`), as they type. A result opens like a task
// (`/tasks/{task_id}`), also when it is not on the user's dashboard, to log time or a
// note on it. The server caches a query for 30 s; this waits for a pause in typing and
// drops an answer that a newer query overtook.

import { api } from "./api.js";
import { $, el } from "./dom.js";
import { pathOf } from "./ticket.js";

const PAUSE_MS = 400;
const NUMBER = /^#?[1-9]\d{0,9}$/;
const MOST_CHARACTERS = 100;

let pause = null;
let controller = null;
let asked = ""; // the last query sent, so retyping it sends nothing

/** A query worth sending: a ticket number, or words of two characters or more. */
export function searchable(text) {
  const query = text.trim().replace(/\s+/g, " ");
  if (!query || query.length > MOST_CHARACTERS) return null;
  if (NUMBER.test(query)) return query;
  const words = query.split(" ");
  return words.length <= 6 && words.every((w) => w.length >= 2) && query.length >= 3 ? query : null;
}

function say(text) {
  $("find-status").textContent = text;
}

function result(ticket) {
  const facts = [ticket.company, ticket.board, ticket.status].filter(Boolean).join(" · ");
  const tags = [];
  if (ticket.on_dashboard) tags.push(el("span", { class: "note-flag" }, "On your dashboard"));
  if (ticket.closed) tags.push(el("span", { class: "note-flag" }, "Closed"));
  return el(
    "li",
    { class: "find-result" },
    el(
      "a",
      { href: pathOf(ticket.task_id), "data-task": ticket.task_id },
      el("span", { class: "task-number" }, `#${ticket.ticket_id}`),
      " ",
      ticket.summary,
    ),
    el("span", { class: "muted find-facts" }, facts),
    ...tags,
  );
}

async function run({ force = false } = {}) {
  clearTimeout(pause);
  const query = searchable($("find-q").value);
  const kind = $("find-kind").value;
  const key = `${kind}\u001f${query}`;
  if (!query) {
    controller?.abort();
    asked = "";
    $("find-results").replaceChildren();
    say($("find-q").value.trim() ? "Type a ticket number, or words of two letters or more." : "");
    return;
  }
  if (key === asked && !force) return;
  asked = key;
  controller?.abort();
  const ctrl = new AbortController();
  controller = ctrl;
  say("Searching ConnectWise…");
  try {
    const answer = await api(
      `/tickets/search?${new URLSearchParams({ q: query, source_type: kind })}`,
      { signal: ctrl.signal },
    );
    if (controller !== ctrl) return;
    $("find-results").replaceChildren(...answer.tickets.map(result));
    const count = answer.tickets.length;
    say(count === 0
      ? "No ticket found. ConnectWise shows you what your member may see."
      : `${count}${answer.more ? "+" : ""} found as ${answer.member}${answer.more ? "; narrow the search to see more" : ""}.`);
  } catch (error) {
    if (error.name === "AbortError" || controller !== ctrl) return;
    asked = ""; // a retry sends it again
    $("find-results").replaceChildren();
    say(error.message);
  } finally {
    if (controller === ctrl) controller = null;
  }
}

export function initFindTicket() {
  $("find-form").addEventListener("submit", (event) => {
    event.preventDefault();
    run({ force: true });
  });
  $("find-q").addEventListener("input", () => {
    clearTimeout(pause);
    pause = setTimeout(run, PAUSE_MS);
  });
  $("find-kind").addEventListener("change", () => run());
}
