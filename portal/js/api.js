// The DCV Fleet API: JSON calls with the ID token, one refresh-and-retry on a 401, and errors as
// sentences a person can act on.

import { SESSION_EXPIRED } from "./auth.js";

class ApiError extends Error {
  /** status: the HTTP status, or 0 when no answer came back. */
  constructor(message, status, body = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
  }

  /** The request may or may not have been carried out: the same request may be sent again. */
  get retryable() {
    return this.status === 0 || this.status >= 500;
  }
}

const NETWORK_ERROR = "Cannot reach DCV Fleet. Check your connection and try again.";

function messageFor(status, body) {
  if (status === 429) return "Too many requests right now. Wait a moment and try again.";
  if (typeof body.message === "string" && body.message && status < 500) return body.message;
  if (status === 403) return "You are not allowed to do that.";
  if (status === 404) return "Not found.";
  if (status >= 500) return `DCV Fleet had a problem (HTTP ${status}). Try again in a moment.`;
  return `The request failed (HTTP ${status}).`;
}

/** An auth failure as an ApiError: offline (status 0), or the session is over (401). */
function fromAuthError(error) {
  return error.type === "NetworkError"
    ? new ApiError(NETWORK_ERROR, 0)
    : new ApiError(SESSION_EXPIRED, 401);
}

/** onReachable(bool): told after every call whether the API (or Cognito) could be reached. */
export function createApi(apiUrl, auth, onReachable = () => {}) {
  const base = apiUrl.replace(/\/+$/, "");

  function unreachable() {
    onReachable(false);
    return new ApiError(NETWORK_ERROR, 0);
  }

  function authFailure(error) {
    return error.type === "NetworkError" ? unreachable() : fromAuthError(error);
  }

  async function token() {
    try {
      return await auth.idToken();
    } catch (error) {
      throw authFailure(error);
    }
  }

  async function send(method, url, body, headers) {
    const init = { method, headers: { Authorization: await token(), ...headers } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch {
      throw unreachable();
    }
    onReachable(true);
    return response;
  }

  async function request(method, path, { query, body, headers } = {}) {
    const url = new URL(`${base}${path}`);
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
    }
    let response = await send(method, url, body, headers);
    if (response.status === 401) {
      // The token was refused (expired early, or revoked): one refresh, one retry.
      try {
        await auth.refresh();
      } catch (error) {
        throw authFailure(error);
      }
      response = await send(method, url, body, headers);
      if (response.status === 401) {
        auth.expire();
        throw new ApiError(SESSION_EXPIRED, 401);
      }
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new ApiError(messageFor(response.status, data), response.status, data);
    return data;
  }

  return {
    get: (path, query) => request("GET", path, { query }),
    post: (path, body, headers) => request("POST", path, { body, headers }),
    put: (path, body) => request("PUT", path, { body }),
    patch: (path, body) => request("PATCH", path, { body }),
    delete: (path) => request("DELETE", path),
  };
}

/** POST /sessions with an Idempotency-Key, reused while the same body is retried after a failure
 * that may have reached the server (network error, 5xx), so a retry never makes two desktops. */
export function desktopRequester(api) {
  let pending = null; // {key, body} of the request whose outcome is unknown
  let notice = null; // what the API said about the person's e-mail notifications, until shown
  async function requestDesktop(spec) {
    const body = JSON.stringify(spec);
    if (pending?.body !== body) pending = { key: crypto.randomUUID(), body };
    try {
      const accepted = await api.post("/sessions", spec, { "Idempotency-Key": pending.key });
      pending = null;
      notice = accepted.notifications?.message ?? notice;
      return accepted;
    } catch (error) {
      if (!(error instanceof ApiError && error.retryable)) pending = null;
      throw error;
    }
  }
  /** The notice of the last request (its e-mail address was just subscribed: confirm it), once. */
  requestDesktop.takeNotice = () => {
    const taken = notice;
    notice = null;
    return taken;
  };
  return requestDesktop;
}
