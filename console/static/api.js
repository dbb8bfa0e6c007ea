// The only way the console reaches data: the /v1 API, with the key from session storage.

const STORAGE_KEY = "answerdesk.key";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function storedKey() {
  return sessionStorage.getItem(STORAGE_KEY);
}

export function keepKey(key) {
  sessionStorage.setItem(STORAGE_KEY, key);
}

export function forgetKey() {
  sessionStorage.removeItem(STORAGE_KEY);
}

// fetch /v1…; `json` sends a JSON body, `form` a FormData; errors become ApiError with the API's message.
export async function api(path, { method = "GET", json, form, key } = {}) {
  const headers = { Authorization: `Bearer ${key || storedKey() || ""}`, Accept: "application/json" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body, credentials: "omit", cache: "no-store" });
  } catch {
    throw new ApiError(0, "network", "The server cannot be reached.");
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = data && data.error ? data.error : {};
    throw new ApiError(response.status, error.code || "http_" + response.status, error.message || response.statusText);
  }
  return data;
}

export function query(params) {
  const entries = Object.entries(params).filter(([, value]) => value !== "" && value !== undefined && value !== null);
  return entries.length ? "?" + new URLSearchParams(entries).toString() : "";
}
