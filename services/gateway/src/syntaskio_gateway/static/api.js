// Talking to the gateway: one fetch wrapper that turns RFC 9457 problem documents into
// readable errors. The session is an HttpOnly cookie: nothing here ever sees a token.

let onUnauthorized = () => {};

/** Called whenever the gateway answers 401 (the session is gone): show sign-in. */
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

export class ApiError extends Error {
  constructor(message, status, retryAfter = null) {
    super(message);
    this.name = "ApiError";
    this.status = status; // 0: the gateway could not be reached
    this.retryAfter = retryAfter; // seconds, for 429 and 503
  }

  /** Whether sending the same request again may work (and then must reuse its key). */
  get retryable() {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

/**
 * Calls `/api/v1{path}` (or an `/api/v1/...` path the API handed out, like a
 * `status_url`). Resolves with the JSON body (null for 204); rejects with ApiError.
 */
export async function api(path, { method = "GET", body, headers = {}, signal } = {}) {
  const url = path.startsWith("/api/v1/") ? path : `/api/v1${path}`;
  const sent = { Accept: "application/json, application/problem+json", ...headers };
  if (body !== undefined) sent["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError("Syntaskio cannot be reached. Check your connection and try again.", 0);
  }
  const payload = response.status === 204 ? null : await response.json().catch(() => null);
  if (response.ok) return payload;
  const retryAfter = retryAfterSeconds(response.headers.get("Retry-After"));
  let message = problemText(payload) || response.statusText || `HTTP ${response.status}`;
  if (response.status === 429) {
    message = retryAfter
      ? `Too many requests. Try again in ${retryAfter} s.`
      : "Too many requests. Try again in a moment.";
  }
  if (response.status === 401) onUnauthorized();
  throw new ApiError(message, response.status, retryAfter);
}

function retryAfterSeconds(value) {
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

/** A problem document in words; for invalid input, which fields and why (never values). */
export function problemText(problem) {
  if (!problem || typeof problem !== "object") return "";
  const message = problem.detail || problem.title || "";
  if (!Array.isArray(problem.errors) || problem.errors.length === 0) return message;
  const fields = problem.errors.map((e) => {
    const loc = Array.isArray(e.loc) ? e.loc.filter((part) => part !== "body") : [];
    const name = loc.length ? `${loc[loc.length - 1]}: ` : "";
    return `${name}${e.msg || e.message || "invalid"}`;
  });
  return `${message} ${fields.join("; ")}`.trim();
}

/** A fresh Idempotency-Key (a random UUID), also outside secure contexts. */
export function newIdempotencyKey() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
