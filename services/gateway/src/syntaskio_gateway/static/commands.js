// Following a write-back command the gateway accepted until ConnectWise has it.

import { api, ApiError, newIdempotencyKey } from "./api.js";

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

/**
 * Asks for a change on a task (`POST /api/v1/tasks/{id}/{path}`) and follows it until
 * ConnectWise has it. The submission's Idempotency-Key is kept in `keys` while sending
 * it again could still be the same request (no answer, or ConnectWise not done yet), so
 * a retry never makes a second change. Resolves with `{ state }`: "succeeded",
 * "pending" (not confirmed within a minute) or "failed" (with `message`).
 */
export async function writeBack(keys, submission, taskId, path, body) {
  if (!keys.has(submission)) keys.set(submission, newIdempotencyKey());
  try {
    const accepted = await api(`/tasks/${encodeURIComponent(taskId)}/${path}`, {
      method: "POST", body, headers: { "Idempotency-Key": keys.get(submission) },
    });
    const command = await follow(accepted);
    if (command === null) return { state: "pending" };
    keys.delete(submission); // that command is over: trying again is a new one
    return command.status === "succeeded"
      ? { state: "succeeded" }
      : { state: "failed", message: outcomeError(command) };
  } catch (error) {
    if (!(error instanceof ApiError && error.retryable)) keys.delete(submission);
    return { state: "failed", message: error.message };
  }
}
