// Talking to /api/v1: the signed-in token, errors, the session and what its role allows.

const TOKEN_KEY = "registrum.token";
export const ROLES = ["viewer", "editor", "reviewer", "admin"];

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export function token() {
  return localStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
}

// A token typed in the sign-in page goes as a bearer token; a session made by signing in
// through the identity provider rides on its HTTP-only cookie, and its writes carry the
// session's CSRF token (from /me).
export function authHeaders(method = "GET") {
  const t = token();
  if (t) return { Authorization: `Bearer ${t}` };
  const csrf = session.me && session.me.csrf_token;
  return csrf && !["GET", "HEAD"].includes(method) ? { "X-CSRF-Token": csrf } : {};
}

// The URL of an API path ("/projects/x/runs") with query parameters; an array value
// repeats its parameter, null and undefined values are left out.
export function apiUrl(path, query = {}) {
  const url = new URL(`/api/v1${path}`, location.origin);
  for (const [key, value] of Object.entries(query)) {
    if (value === null || value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) url.searchParams.append(key, v);
  }
  return url.toString();
}

// Calls the API; resolves to the parsed JSON (null for 204), rejects with ApiError.
// A 401 sends the user to the sign-in page, unless `quiet401` is set.
export async function api(path, { method = "GET", query = {}, body, quiet401 = false } = {}) {
  const headers = { Accept: "application/json", ...authHeaders(method) };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(apiUrl(path, query), init);
  if (response.status === 204) return null;
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = { detail: text };
  }
  if (!response.ok) {
    const detail = parsed && (parsed.detail ?? parsed.error?.message ?? parsed.error ?? parsed.message);
    const message = typeof detail === "string" ? detail : JSON.stringify(detail ?? parsed);
    if (response.status === 401 && !quiet401 && !location.hash.startsWith("#/signin")) {
      location.hash = `#/signin?next=${encodeURIComponent(location.hash || "#/")}`;
    }
    throw new ApiError(response.status, message || response.statusText, parsed);
  }
  return parsed;
}

// Downloads an API path as a file (with the token, which a plain link would not send).
export async function download(path, filename, query = {}) {
  const response = await fetch(apiUrl(path, query), { headers: authHeaders() });
  if (!response.ok) throw new ApiError(response.status, response.statusText, null);
  const url = URL.createObjectURL(await response.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// Who is signed in: filled by loadSession() before the first page renders.
//   session.me     the /me record ({name, server_admin, roles?: {project: role}})
//   session.auth   whether the server asks for a token
export const session = { me: null, auth: false };

// How the server signs people in (/auth/providers): {auth, oidc: {name, login_url} | null}.
export async function signinOptions() {
  const response = await fetch("/auth/providers", { headers: { Accept: "application/json" } });
  return response.ok ? response.json() : { auth: true, oidc: null };
}

// Ends the session: a browser session at the server (its cookie), a typed token here.
export async function signOut() {
  const csrf = session.me && session.me.csrf_token;
  if (csrf) {
    await fetch("/auth/signout", { method: "POST", headers: { "X-CSRF-Token": csrf } });
  }
  setToken(null);
  session.me = null;
}

export async function loadSession() {
  try {
    session.me = await api("/me", { quiet401: true });
    session.auth = session.me && session.me.name !== "local" ? true : !!token();
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) throw err;
    session.me = null;
    session.auth = true;
  }
  return session;
}

// Whether the signed-in user holds at least `role` in `project` (server admins hold every
// role). Without auth everyone may do everything.
export function can(project, role) {
  const me = session.me;
  if (!me) return false;
  if (me.server_admin) return true;
  const held = (me.roles || {})[project];
  return held !== undefined && ROLES.indexOf(held) >= ROLES.indexOf(role);
}
