// The JSON API, as the signed-in token sees it. Every page reads and writes through here,
// with `Authorization: Bearer <token>`: the UI can do exactly what the token may do.

import { h, fill } from "./dom.js";

const KEY = "hookd.token";

export function token() {
  return sessionStorage.getItem(KEY);
}

export function signIn(value) {
  sessionStorage.setItem(KEY, value);
}

export function signOut() {
  sessionStorage.removeItem(KEY);
}

/** An error answer of the API: its status, `code` and a message a person can act on. */
export class ApiError extends Error {
  constructor(status, body) {
    super(describe(status, body));
    this.status = status;
    this.code = body && typeof body.code === "string" ? body.code : null;
  }
}

function describe(status, body) {
  if (body && Array.isArray(body.detail)) {
    // 422: [{loc, msg, type}], naming the field.
    return body.detail
      .map((d) => `${(d.loc || []).filter((l) => l !== "body").join(".") || "request"}: ${d.msg}`)
      .join("; ");
  }
  if (body && body.detail) return `${body.detail}${body.code ? ` (${body.code})` : ""}`;
  return `the server answered ${status}`;
}

/**
 * Calls the API: `path` is under /api/v1, unless it is an ingest route (`/ingest/api/v1/…`),
 * which is taken as it is. Resolves to the parsed answer (null for 204).
 */
export async function api(method, path, body, tokenOverride) {
  const headers = { Authorization: `Bearer ${tokenOverride || token() || ""}` };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path.startsWith("/ingest/") ? path : `/api/v1${path}`, init);
  } catch (e) {
    throw new ApiError(0, { detail: `hookd could not be reached (${e.message})` });
  }
  const text = await response.text();
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = { detail: text };
    }
  }
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed;
}

export const get = (path) => api("GET", path);

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== "") q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** `encodeURIComponent`, for ids and uids in paths. */
export const enc = encodeURIComponent;

/** An error box for a failed read or action. */
export function failure(error) {
  return h("div", { class: "error", role: "alert" }, error.message || String(error));
}

/**
 * Runs an action from a form or button: disables it while running, shows the API's error
 * (or `done`'s message) in `status`, and returns the result (`true` for an answer without
 * a body, such as 204; undefined on error).
 */
export async function act(control, status, run, done) {
  control.disabled = true;
  fill(status);
  try {
    const result = await run();
    if (done) fill(status, h("div", { class: "ok", role: "status" }, done));
    return result ?? true;
  } catch (e) {
    fill(status, failure(e));
    return undefined;
  } finally {
    control.disabled = false;
  }
}

/**
 * A button for an action that cannot be undone (a delete, a revoke): asks `question` first,
 * then runs `run` as [`act`] does, showing its error in `status`, and calls `then` once it
 * succeeded. `kind` is the button's class ("link" in tables, "secondary" on cards).
 */
export function confirmed(label, { question, status, run, then, kind = "link" }) {
  const button = h(
    "button",
    {
      type: "button",
      class: kind,
      onclick: async () => {
        if (!window.confirm(question)) return;
        if (await act(button, status, run)) then();
      },
    },
    label,
  );
  return button;
}
