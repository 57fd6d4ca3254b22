// Calls to the JSON API from signed-in pages. Every call that changes something
// carries the page's CSRF token (<meta name="csrf-token">, rendered for the
// session) in X-CSRF-Token; the server refuses a cookie-authenticated change
// without it (403 csrf_failed) as well as one from another origin.

const meta = document.querySelector('meta[name="csrf-token"]');

export const csrfToken = meta ? meta.content : "";

// fetch() for the API: same-origin cookies, the CSRF header, JSON in and out.
// Resolves with the parsed body; rejects with the API's `error` object
// ({code, message, field?}) or {code: "http_error"} when there is none.
export async function api(method, url, body) {
  const headers = { "X-CSRF-Token": csrfToken, Accept: "application/json" };
  const init = { method, credentials: "same-origin", headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  const payload = await response.json().catch(() => ({}));
  if (!response.ok) throw payload.error || { code: "http_error", message: `HTTP ${response.status}` };
  return payload;
}

// The raw Response, for bodies that are not JSON (CSV upload, file downloads).
export function apiFetch(url, init = {}) {
  const headers = new Headers(init.headers || {});
  headers.set("X-CSRF-Token", csrfToken);
  return fetch(url, { ...init, credentials: "same-origin", headers });
}
