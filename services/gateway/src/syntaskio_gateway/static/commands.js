// Following a write-back command the gateway accepted until ConnectWise has it.

import { api, ApiError } from "./api.js";

const POLL_EVERY_MS = 1000;
const POLL_FOR_MS = 60_000;
const FINISHED = new Set(["succeeded", "failed", "rejected"]);

/** Polls the command until it finishes (or a minute passes): its final view, or null. */
export async function follow(accepted) {
  const url = accepted?.status_url;
  if (typeof url !== "string" || !url.startsWith("/api/v1/commands/")) {
    throw new ApiError("The server gave no way to follow the change.", 502);
  }
  const deadline = Date.now() + POLL_FOR_MS;
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, POLL_EVERY_MS));
    let command;
    try {
      command = await api(url);
    } catch (error) {
      if (error instanceof ApiError && error.retryable) continue;
      throw error;
    }
    if (FINISHED.has(command.status)) return command;
  }
  return null;
}

export function outcomeError(command) {
  return command.error || (command.status === "rejected"
    ? "ConnectWise refused the change."
    : "The change could not be made in ConnectWise.");
}
